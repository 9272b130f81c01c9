"""build-engine's options checked before TensorRT is looked for: several optimization profiles
(--batch-profiles), --workspace, a timing cache that is also an output, the model-source options; the
manifest and the Triton config of a several-profile engine; where set_decomposable_attentions is imported."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from vit5_infer.engine_manifest import (
    batch_profiles_shapes,
    create_manifest,
    profile_envelope,
    profile_shapes,
    read_manifest,
    rebuild_command,
    write_manifest,
)
from vit5_infer.engines.errors import EngineBuildError
from vit5_infer.engines.tensorrt_builder import check_build_options, check_input_shape
from vit5_infer.engines.tensorrt_support import MAX_PROFILE_BATCH, parse_batch_profiles
from vit5_infer.workflows.build_engine import build_engine

from cli_runner import run_vit5

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "text, profiles",
    [
        ("1,2-8,16-64", [(1, 1, 1), (2, 8, 8), (16, 64, 64)]),
        ("4", [(4, 4, 4)]),
        ("1-64", [(1, 64, 64)]),
        ("1, 2-4-8 ,9-9", [(1, 1, 1), (2, 4, 8), (9, 9, 9)]),
    ],
)
def test_batch_profiles(text, profiles):
    assert parse_batch_profiles(text) == profiles


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "takes comma-separated N, MIN-MAX or MIN-OPT-MAX"),
        ("1,,2", "got '' in '1,,2'"),
        ("1-x", "got '1-x'"),
        ("1-2-3-4", "got '1-2-3-4'"),
        ("-3", "got '-3'"),
        ("0-4", "'0-4' must satisfy 1 <= MIN <= OPT <= MAX"),
        ("8-2", "'8-2' must satisfy"),
        ("2-9-8", "'2-9-8' must satisfy"),
        (f"1-{MAX_PROFILE_BATCH + 1}", "must satisfy 1 <= MIN <= OPT <= MAX <= 2147483647"),
        ("1,2-8,4-64", "'4-64' overlaps or precedes 2-8"),
        ("16-64,1", "'1' overlaps or precedes 16-64"),
        ("2-8,8-16", "'8-16' overlaps"),
    ],
)
def test_bad_batch_profiles_are_one_line(text, match):
    with pytest.raises(EngineBuildError, match=match) as info:
        parse_batch_profiles(text)
    assert "\n" not in str(info.value)


def test_check_build_options_returns_the_profiles():
    assert check_build_options("fp16", 1, 4, 16, None, 3) == [(1, 4, 16)]
    assert check_build_options("fp16", 1, 1, 8, None, 3, "1,2-8") == [(1, 1, 1), (2, 8, 8)]
    assert check_build_options("fp16", 1, 1, 8, None, 3, [(1, 1, 1), (2, 4, 8)]) == [(1, 1, 1), (2, 4, 8)]
    with pytest.raises(EngineBuildError, match="--batch-profiles replaces --min-batch"):
        check_build_options("fp16", 1, 1, 32, None, 3, "1,2-8")
    with pytest.raises(EngineBuildError, match="must satisfy 1 <= min <= opt <= max <= 2147483647"):
        check_build_options("fp16", 1, 1, 2**31, None, 3)


@pytest.mark.parametrize("workspace", [float("nan"), float("inf"), float("-inf"), -1.0, 0.0, 1e-12])
def test_a_workspace_that_is_not_a_positive_finite_size_is_refused(workspace):
    with pytest.raises(EngineBuildError, match="--workspace") as info:
        check_build_options("fp16", 1, 1, 8, workspace, 3)
    assert "\n" not in str(info.value)


def test_a_profile_batch_beyond_memory_is_refused():
    with pytest.raises(EngineBuildError, match="a profile batch of 2000000000 needs .* GiB for its pixel_values alone"):
        check_input_shape({"pixel_values": (-1, 3, 224, 224)}, "m.onnx", [(1, 1, 1), (2, 2000000000, 2000000000)])


@pytest.mark.parametrize("cache_name", ["model.engine", "model.engine.json", "model.engine.layers.json"])
def test_a_timing_cache_that_is_an_output_not_yet_written_is_refused(onnx_file, tmp_path, cache_name):
    """The outputs do not exist yet: the paths are compared, not the files."""
    out = tmp_path / "out"
    with pytest.raises(EngineBuildError, match=f"--timing-cache: .*{cache_name} is also") as info:
        build_engine(onnx_file, out / "model.engine", timing_cache=out / ".." / "out" / cache_name)
    assert "\n" not in str(info.value) and not out.exists()


def test_a_timing_cache_that_is_the_exported_onnx_is_refused(tmp_path):
    with pytest.raises(EngineBuildError, match="is also the exported ONNX"):
        build_engine("vit5-small", tmp_path / "m.engine", timing_cache=tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_model_source_options_are_refused_for_an_onnx_source(onnx_file, tmp_path):
    from vit5_infer.load_options import LoadOptions

    with pytest.raises(EngineBuildError, match="model-source options .* apply to a preset or checkpoint"):
        build_engine(onnx_file, tmp_path / "m.engine", load=LoadOptions(trust_pickle=True))


# ---- the manifest and the Triton config of a several-profile engine -------------------------------------
def _several_profile_manifest(tmp_path, onnx_path=None, batch_profiles="1,2-8,16-64"):
    if onnx_path is None:
        onnx_path = tmp_path / "model.onnx"
        onnx_path.write_bytes(b"hashed only")
    profiles = batch_profiles_shapes((3, 32, 32), parse_batch_profiles(batch_profiles))
    manifest = create_manifest(
        onnx_path=onnx_path,
        engine_path=tmp_path / "model.plan",
        tensorrt_version="10.16.1.11",
        gpu_name="NVIDIA H100 80GB HBM3",
        compute_capability="9.0",
        precision="fp16",
        profiles=profile_envelope(profiles),
        optimization_profiles=profiles,
        build_flags={},
    )
    write_manifest(manifest, tmp_path / "model.plan")
    return manifest


def test_the_manifest_records_every_profile(tmp_path):
    _several_profile_manifest(tmp_path)
    manifest = read_manifest(tmp_path / "model.plan")
    assert [p["pixel_values"]["max"][0] for p in manifest.profile_list()] == [1, 8, 64]
    assert manifest.optimization_profiles[1] == {
        "pixel_values": {"min": [2, 3, 32, 32], "opt": [8, 3, 32, 32], "max": [8, 3, 32, 32]}
    }
    # the batch range of the whole engine, where one-profile readers look
    assert manifest.profiles == {"pixel_values": {"min": [1, 3, 32, 32], "opt": [1, 3, 32, 32], "max": [64, 3, 32, 32]}}
    assert rebuild_command(manifest, "m.plan").endswith(" -o m.plan --fp16 --batch-profiles 1,2-8,16-64")


def test_a_manifest_written_before_several_profiles_reads_as_one_profile(tmp_path):
    manifest = _several_profile_manifest(tmp_path)
    data = manifest.to_dict()
    del data["optimization_profiles"]
    data["profiles"] = profile_shapes((3, 32, 32), 1, 4, 16)
    (tmp_path / "model.plan.json").write_text(json.dumps(data))
    old = read_manifest(tmp_path / "model.plan")
    assert old.profile_list() == [profile_shapes((3, 32, 32), 1, 4, 16)]
    assert "--opt-batch 4 --max-batch 16" in rebuild_command(old, "m.plan")


def test_an_explicit_opt_survives_the_rebuild_command(tmp_path):
    manifest = _several_profile_manifest(tmp_path)
    manifest.optimization_profiles = batch_profiles_shapes((3, 32, 32), parse_batch_profiles("1,2-4-8"))
    assert rebuild_command(manifest, "m.plan").endswith("--batch-profiles 1,2-4-8")


def test_triton_config_lists_every_profile_of_the_plan(tmp_path, golden_dir):
    """Triton uses profile 0 only unless the instance group names the others (ModelInstanceGroup.profile,
    repeated string, in triton-inference-server/common's model_config.proto)."""
    from vit5_infer.exporters import export_onnx
    from vit5_infer.workflows.serving.model_repository import write_model_repository

    from golden_exports import golden_model

    onnx_path = export_onnx(golden_model("attn_cls_r4"), tmp_path / "model.onnx", validate=False).path
    _several_profile_manifest(tmp_path, onnx_path, "1,2-8,9-64")  # no gap: a served engine takes every batch
    (tmp_path / "model.plan").write_bytes(b"engine bytes are copied, never read")
    result = write_model_repository(tmp_path / "model.plan", tmp_path / "repo")
    text = result.config_path.read_text()
    assert 'profile: [ "0", "1", "2" ]' in text and "max_batch_size: 64" in text


def test_a_one_profile_plan_names_no_profile(tmp_path, golden_dir):
    from vit5_infer.exporters import export_onnx
    from vit5_infer.workflows.serving.model_repository import write_model_repository

    from golden_exports import golden_model

    onnx_path = export_onnx(golden_model("attn_cls_r4"), tmp_path / "model.onnx", validate=False).path
    manifest = create_manifest(
        onnx_path=onnx_path,
        engine_path=tmp_path / "model.plan",
        tensorrt_version="10.16.1.11",
        gpu_name="NVIDIA H100",
        compute_capability="9.0",
        precision="fp32",
        profiles=profile_shapes((3, 32, 32), 1, 4, 16),
        build_flags={},
    )
    write_manifest(manifest, tmp_path / "model.plan")
    (tmp_path / "model.plan").write_bytes(b"engine")
    assert "profile:" not in write_model_repository(tmp_path / "model.plan", tmp_path / "repo").config_path.read_text()


# ---- set_decomposable_attentions: imported only where TensorRT 10.14+ uses it ---------------------------
@pytest.mark.parametrize("module", ["engines/tensorrt_builder.py"])  # debug's runner builds through it too
def test_set_decomposable_attentions_is_imported_only_under_the_attention_check(module):
    """Polygraphy added set_decomposable_attentions in 0.53; an import at function entry would fail every
    build on an older Polygraphy, including TensorRT < 10.14 builds that never use it."""
    tree = ast.parse((REPO / module).read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    imports = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and any(alias.name == "set_decomposable_attentions" for alias in node.names)
    ]
    assert imports
    for node in imports:
        guard = parents[node]
        while not isinstance(guard, (ast.If, ast.FunctionDef, ast.Module)):
            guard = parents[guard]
        assert isinstance(guard, ast.If), f"{module}:{node.lineno} imports set_decomposable_attentions unconditionally"
        condition = ast.unparse(guard.test)
        assert "decomposable" in condition or "has_attention_layers" in condition, condition


# ---- the CLI: one line each ---------------------------------------------------------------------------
def _one_line(proc, fragment):
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, golden_dir):
    from vit5_infer.exporters import export_onnx

    from golden_exports import golden_model

    return export_onnx(golden_model("attn_cls_r4"), tmp_path_factory.mktemp("cli") / "m.onnx", validate=False).path


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--workspace", "nan"], "--workspace must be a positive number of GiB (got nan)"),
        (["--timing-cache", "{out}"], "is also the engine this build writes"),
        (["--batch-profiles", "1,2-8,4-64"], "'4-64' overlaps or precedes 2-8"),
        (["--batch-profiles", "1,2-8", "--max-batch", "4"], "--batch-profiles replaces --max-batch"),
        (["--hardware-compatibility", "turing+"], "--hardware-compatibility must be one of"),
        (["--config", "tests/data/golden/attn_cls_r4.json"], "apply to a preset or checkpoint"),
    ],
)
def test_build_engine_refuses_in_one_line_before_tensorrt(exported, tmp_path, args, fragment):
    out = tmp_path / "new" / "m.engine"
    _one_line(run_vit5("build-engine", exported, "-o", out, *[a.format(out=out) for a in args], process=True), fragment)
    assert not out.parent.exists()


def test_build_engine_takes_the_model_source_options(tmp_path, golden_dir):
    """A checkpoint that needs --config and --num-heads reaches the build (here: TensorRT is missing)."""
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here; the missing-TensorRT path cannot be exercised")
    proc = run_vit5(
        "build-engine",
        golden_dir / "attn_cls_r4.safetensors",
        "-o",
        tmp_path / "m.engine",
        "--config",
        golden_dir / "attn_cls_r4.json",
        "--num-heads",
        "4",
        "--weights",
        "raw",
        "--trust-pickle",
        "--batch-profiles",
        "1,2-8",
        "--version-compatible",
        "--hardware-compatibility",
        "ampere+",
        process=True,
    )
    _one_line(proc, "TensorRT is not installed")
    assert list(tmp_path.iterdir()) == []
