"""Engine manifest: create / write / read, compatibility checks and their rebuild messages (no TensorRT needed)."""

from __future__ import annotations

import json

import pytest

import vit5_infer
from vit5_infer.engine_manifest import (
    check_compatible,
    create_manifest,
    find_manifest,
    manifest_path_for,
    mismatches,
    profile_shapes,
    read_manifest,
    rebuild_command,
    write_manifest,
)
from vit5_infer.engines.errors import EngineMismatchError, ManifestError
from vit5_infer.errors import Vit5Error


@pytest.fixture
def built(tmp_path):
    onnx_path = tmp_path / "model.onnx"
    onnx_path.write_bytes(b"not really onnx, only hashed")
    engine_path = tmp_path / "model.engine"
    manifest = create_manifest(
        onnx_path=onnx_path,
        engine_path=engine_path,
        tensorrt_version="10.14.1",
        gpu_name="NVIDIA H100 80GB HBM3",
        compute_capability="9.0",
        precision="fp16",
        profiles=profile_shapes((3, 224, 224), 1, 8, 32),
        build_flags={"strongly_typed": True, "optimization_level": 3, "workspace_gib": None, "timing_cache": None},
        attention_fused=True,
        fused_attention_layers=["_gemm_mha_v2_myl0_17"],
    )
    return onnx_path, engine_path, manifest


def test_manifest_sits_beside_the_engine(tmp_path):
    assert manifest_path_for(tmp_path / "model.engine") == tmp_path / "model.engine.json"


def test_create_records_the_build(built):
    onnx_path, _, manifest = built
    import hashlib

    assert manifest.onnx_sha256 == hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    assert manifest.toolkit_version == vit5_infer.__version__
    assert manifest.engine_file == "model.engine"
    assert manifest.profiles == {
        "pixel_values": {"min": [1, 3, 224, 224], "opt": [8, 3, 224, 224], "max": [32, 3, 224, 224]}
    }
    assert manifest.created_at.endswith("+00:00")


def test_write_then_read_round_trips(built):
    _, engine_path, manifest = built
    path = write_manifest(manifest, engine_path)
    assert path == manifest_path_for(engine_path)
    data = json.loads(path.read_text())
    for field in (
        "tensorrt_version",
        "gpu_name",
        "compute_capability",
        "onnx_sha256",
        "precision",
        "profiles",
        "build_flags",
        "toolkit_version",
        "created_at",
    ):
        assert field in data
    assert read_manifest(engine_path) == manifest
    assert read_manifest(path) == manifest  # the JSON path itself works too
    assert find_manifest(engine_path) == manifest
    assert not list(engine_path.parent.glob(".*.tmp"))  # the atomic write left no temp file


def test_fields_from_a_newer_toolkit_are_ignored(built):
    _, engine_path, manifest = built
    data = manifest.to_dict()
    data["added_later"] = 1
    manifest_path_for(engine_path).write_text(json.dumps(data))
    assert read_manifest(engine_path) == manifest


def test_missing_manifest(tmp_path):
    with pytest.raises(ManifestError, match="manifest not found"):
        read_manifest(tmp_path / "model.engine")
    assert find_manifest(tmp_path / "model.engine") is None


@pytest.mark.parametrize(
    "content, match",
    [
        ("{not json", "not a readable JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"precision": "fp16"}', "missing field"),
    ],
)
def test_broken_manifest_is_one_line(tmp_path, content, match):
    manifest_path_for(tmp_path / "m.engine").write_text(content)
    with pytest.raises(ManifestError, match=match) as info:
        read_manifest(tmp_path / "m.engine")
    assert "\n" not in str(info.value)
    assert isinstance(info.value, Vit5Error)


def test_same_machine_is_compatible(built):
    _, _, manifest = built
    check_compatible(manifest, "10.14.1", "NVIDIA H100 80GB HBM3", "9.0")
    check_compatible(manifest, "10.14.1", "nvidia  h100 80gb hbm3", "9.0")  # spacing/case are not a difference
    assert mismatches(manifest, "10.14.1", "NVIDIA H100 80GB HBM3", "9.0") == []


def test_other_tensorrt_version_says_how_to_rebuild(built):
    _, engine_path, manifest = built
    with pytest.raises(EngineMismatchError) as info:
        check_compatible(manifest, "11.0.0", "NVIDIA H100 80GB HBM3", "9.0", engine_path=engine_path)
    message = str(info.value)
    assert "\n" not in message
    assert "TensorRT 10.14.1 vs 11.0.0 here" in message
    assert f"vit5 build-engine {manifest.onnx_path} -o {engine_path} --fp16 --opt-batch 8 --max-batch 32" in message
    assert isinstance(info.value, Vit5Error)


def test_other_gpu_architecture(built):
    _, _, manifest = built
    with pytest.raises(EngineMismatchError, match=r"compute capability 9\.0\) vs NVIDIA A100-SXM4-40GB \(8\.0\)"):
        check_compatible(manifest, "10.14.1", "NVIDIA A100-SXM4-40GB", "8.0")


@pytest.mark.parametrize(
    "built_on, here, capability",
    [
        ("NVIDIA H100 80GB HBM3", "NVIDIA H100 NVL", "9.0"),
        ("NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe", "9.0"),
        ("NVIDIA A100-SXM4-40GB", "NVIDIA A100-SXM4-80GB", "8.0"),
    ],
)
def test_other_gpu_of_the_same_compute_capability_loads_with_a_warning(built, built_on, here, capability):
    """TensorRT loads a plan on any GPU of the compute capability it was built for; only its tactics were
    timed on the other model, which is a warning, not a refusal."""
    from vit5_infer.engine_manifest import EngineTunedElsewhereWarning

    _, _, manifest = built
    manifest.gpu_name, manifest.compute_capability = built_on, capability
    assert mismatches(manifest, "10.14.1", here, capability) == []
    with pytest.warns(
        EngineTunedElsewhereWarning, match=f"built on {built_on}; TensorRT timed its kernels there, not on this {here}"
    ):
        notes = check_compatible(manifest, "10.14.1", here, capability)
    assert len(notes) == 1 and "\n" not in notes[0]


def test_a_post_release_of_the_same_build_is_the_same_tensorrt(built):
    """tensorrt.__version__ 10.14.1.48.post1 is the 10.14.1.48 build repackaged: its plans load there."""
    _, _, manifest = built
    manifest.tensorrt_version = "10.14.1.48"
    assert mismatches(manifest, "10.14.1.48.post1", manifest.gpu_name, manifest.compute_capability) == []
    assert mismatches(manifest, "10.14.1.49", manifest.gpu_name, manifest.compute_capability) == [
        "TensorRT 10.14.1.48 vs 10.14.1.49 here"
    ]


def test_both_differ_lists_both(built):
    _, _, manifest = built
    found = mismatches(manifest, "10.13.0", "NVIDIA L4", "8.9")
    assert len(found) == 2


def test_rebuild_command_spells_only_non_default_flags(built):
    _, _, manifest = built
    manifest.precision = "fp32"
    manifest.profiles = profile_shapes((3, 32, 32), 1, 1, 8)
    assert rebuild_command(manifest, "out/m.engine") == f"vit5 build-engine {manifest.onnx_path} -o out/m.engine"
    manifest.precision = "bf16"
    manifest.build_flags.update(timing_cache="cache dir/t.cache", workspace_gib=4.0, optimization_level=5)
    command = rebuild_command(manifest, "m.engine")
    assert command.endswith("--bf16 --timing-cache 'cache dir/t.cache' --workspace 4 --optimization-level 5")
    manifest.precision = "int8"  # a Q/DQ graph: built with --int8 (the flag says what the graph must be)
    assert " -o m.engine --int8 " in rebuild_command(manifest, "m.engine")


def test_records_the_graph_outputs(tmp_path):
    """The builder passes exporters.graph_outputs(graph): name -> shape, in graph order."""
    from vit5_infer import load_model
    from vit5_infer.exporters import build_graph, graph_outputs

    from golden import GOLDEN

    model = load_model(GOLDEN / "attn_cls_r4.safetensors", config=GOLDEN / "attn_cls_r4.json")
    graph, _ = build_graph(model, outputs="pre_logits,patch_tokens")
    outputs = graph_outputs(graph)
    assert outputs == {"pre_logits": ["batch", 64], "patch_tokens": ["batch", 4, 4, 64]}
    onnx_path = tmp_path / "model.onnx"
    onnx_path.write_bytes(graph.SerializeToString())
    engine_path = tmp_path / "model.engine"
    manifest = create_manifest(
        onnx_path=onnx_path,
        engine_path=engine_path,
        tensorrt_version="10.14.1",
        gpu_name="NVIDIA H100 80GB HBM3",
        compute_capability="9.0",
        precision="fp32",
        profiles=profile_shapes((3, 32, 32), 1, 1, 8),
        build_flags={},
        outputs=outputs,
    )
    write_manifest(manifest, engine_path)
    assert read_manifest(engine_path).outputs == [
        {"name": "pre_logits", "shape": ["batch", 64]},
        {"name": "patch_tokens", "shape": ["batch", 4, 4, 64]},
    ]


def test_manifest_without_outputs_still_reads(built):
    """Manifests written before the outputs field existed load with no outputs recorded."""
    _, engine_path, manifest = built
    data = manifest.to_dict()
    del data["outputs"]
    manifest_path_for(engine_path).write_text(json.dumps(data))
    assert read_manifest(engine_path).outputs == []


@pytest.mark.parametrize(
    "field, value",
    [
        ("precision", 16),
        ("profiles", [1, 8, 32]),
        ("build_flags", "fast"),
        ("onnx_path", None),
        ("attention_fused", "yes"),
        ("fused_attention_layers", "all"),
        ("format", True),
        ("source", "preset"),
    ],
)
def test_manifest_fields_of_the_wrong_type_are_one_line(built, field, value):
    _, engine_path, manifest = built
    data = manifest.to_dict()
    data[field] = value
    engine_path.with_name(engine_path.name + ".json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=f"field '{field}' must be") as info:
        read_manifest(engine_path)
    assert "\n" not in str(info.value)
