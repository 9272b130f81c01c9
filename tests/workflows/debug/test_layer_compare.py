"""Per-layer comparison of reduced-precision graphs against FP32 (ONNX Runtime CPU), and ``vit5 debug``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from vit5_infer import resolve_model
from vit5_infer.cli.main import main
from vit5_infer.engines.tensorrt_support import tensorrt_installed
from vit5_infer.errors import InputError, Vit5Error
from vit5_infer.exporters.export import build_graph
from vit5_infer.vocabulary import Precision
from vit5_infer.workflows.debug import (
    FP16_MAX,
    LAYER_TOLERANCES,
    LayerCompareError,
    LayerTolerance,
    compare_layers,
    compare_outputs,
    compare_precisions,
    norm_input_stats,
    tensor_metrics,
)
from vit5_infer.workflows.debug.scopes import block_of

_MODELS: dict = {}


@pytest.fixture(scope="module")
def golden(golden_dir, golden_io):
    """``golden(name) -> (model, pixel_values)``, loaded once per module."""

    def load(name: str):
        if name not in _MODELS:
            model, _ = resolve_model(golden_dir / f"{name}.safetensors", config=golden_dir / f"{name}.json")
            _MODELS[name] = (model, golden_io(name)[0])
        return _MODELS[name]

    return load


def expected_blocks(model) -> set[str]:
    return {"embed", "head"} | {f"blocks.{i}" for i in range(model.config.network.num_blocks)}


# ---- metrics ----------------------------------------------------------------------------------------
def test_metrics_are_scale_free_and_handle_zeros():
    rng = np.random.default_rng(0)
    r = rng.standard_normal(1000)
    c = r + 1e-3 * rng.standard_normal(1000)
    rel, cos, max_abs, ref_max = tensor_metrics(r, c)
    rel_big, cos_big, max_abs_big, _ = tensor_metrics(1e4 * r, 1e4 * c)
    assert rel == pytest.approx(rel_big) and cos == pytest.approx(cos_big)
    assert 5e-4 < rel < 2e-3 and max_abs_big == pytest.approx(1e4 * max_abs)
    assert ref_max == pytest.approx(np.abs(r).max())
    assert tensor_metrics(np.zeros(4), np.zeros(4))[:2] == (0.0, 1.0)
    rel, cos, _, _ = tensor_metrics(np.zeros(4), np.ones(4))
    assert rel == float("inf") and cos == 0.0
    assert tensor_metrics(r, -r)[1] == pytest.approx(-1.0)


def test_block_of_reads_exporter_and_torch_scopes():
    assert block_of("blocks.3/attn/qkv/MatMul") == "blocks.3"
    assert block_of("/blocks.12/mlp/fc1/MatMul") == "blocks.12"
    assert block_of("blocks.1/hyena/Reshape_out_7/cast_fp16") == "blocks.1"
    assert block_of("embed/patch_embed") == "embed"
    assert block_of("output") == "graph"


def test_compare_outputs_verdicts_and_unmatched():
    b = helper
    graph = b.make_graph(
        [
            b.make_node("Relu", ["x"], ["blocks.0/a"], name="blocks.0/relu"),
            b.make_node("Neg", ["blocks.0/a"], ["blocks.1/b"], name="blocks.1/neg"),
            b.make_node("Abs", ["blocks.1/b"], ["blocks.2/c"], name="blocks.2/abs"),
        ],
        "g",
        [b.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [b.make_tensor_value_info("blocks.2/c", TensorProto.FLOAT, [4])],
    )
    model = b.make_model(graph)
    ref = {
        "blocks.0/a": np.ones(4, np.float32),
        "blocks.1/b": np.ones(4, np.float32),
        "blocks.2/c": np.ones(4, np.float32),
    }
    cand = {
        "blocks.0/a": np.ones(4, np.float16),
        "blocks.1/b": np.array([1, 1, 1, 2], np.float32),
        "blocks.2/c": np.array([1, 1, np.inf, 1], np.float32),
        "blocks.0/a/cast_fp32": np.ones(4, np.float32),
    }
    rows, unmatched = compare_outputs(model, ref, cand, LAYER_TOLERANCES[Precision.FP16])
    assert [(r.name, r.block, r.op_type, r.verdict) for r in rows] == [
        ("blocks.0/a", "blocks.0", "Relu", "ok"),
        ("blocks.1/b", "blocks.1", "Neg", "out of tolerance"),
        ("blocks.2/c", "blocks.2", "Abs", "non-finite"),
    ]
    assert unmatched == ("blocks.0/a/cast_fp32",)


# ---- graphs on ONNX Runtime ---------------------------------------------------------------------------
def test_fp32_against_itself_is_exact(golden):
    model, pixels = golden("hyena_gap")
    result = compare_precisions(model, "fp32", pixels)
    assert result.passed and result.first_failing is None
    assert result.precision == "fp32" and result.tolerance == LAYER_TOLERANCES[Precision.FP32]
    assert len(result.rows) > 50 and not result.unmatched
    assert all(row.rel_l2 == 0.0 and row.cosine == pytest.approx(1.0) for row in result.rows)
    assert {b.block for b in result.blocks} == expected_blocks(model) | {"graph"}


@pytest.mark.parametrize("case", ["attn_cls_r4", "hyena_gap", "hybrid_pool_film"])
def test_fp16_rows_are_finite_for_every_block(golden, case):
    model, pixels = golden(case)
    result = compare_precisions(model, "fp16", pixels)
    assert result.precision == "fp16" and result.batch == len(pixels)
    assert expected_blocks(model) <= {row.block for row in result.rows}
    for row in result.rows:
        assert np.isfinite([row.rel_l2, row.cosine, row.max_abs]).all(), row
    # FP16 rounding is seen, and stays within the FP16 tolerance on these networks
    assert max(row.rel_l2 for row in result.rows) > 1e-4
    assert result.passed, result.first_failing
    # the precision pass's casts have no FP32 counterpart
    assert result.unmatched and all("/cast_" in name or name.endswith("/fp16") for name in result.unmatched)
    assert "logits" in {row.name for row in result.rows}


def test_bf16_graph_runs_emulated(golden):
    model, pixels = golden("attn_cls_r4")
    result = compare_precisions(model, "bf16", pixels)
    assert result.precision == "bf16" and result.tolerance == LAYER_TOLERANCES[Precision.BF16]
    fp16_error = max(r.rel_l2 for r in compare_precisions(model, "fp16", pixels).rows)
    assert max(r.rel_l2 for r in result.rows) > 3 * fp16_error  # 8 mantissa bits against 11
    assert result.passed, result.first_failing


def test_perturbed_weight_in_block_1_is_first_failing_there(golden):
    model, pixels = golden("hyena_gap")
    reference, _ = build_graph(model)
    candidate, _ = build_graph(model, precision="fp16")
    # the first projection of block 1 (Hyena's qkv), right after the block's input norm
    consumer = next(n for n in candidate.graph.node if n.op_type == "MatMul" and n.name.startswith("blocks.1/"))
    target = consumer.input[1]
    init = next(i for i in candidate.graph.initializer if i.name == target)
    weight = numpy_helper.to_array(init)
    noise = np.random.default_rng(0).standard_normal(weight.shape) * 0.1 * weight.astype(np.float32).std()
    init.CopyFrom(numpy_helper.from_array((weight + noise).astype(weight.dtype), target))

    result = compare_layers(reference, candidate, pixels)
    first = result.first_failing
    assert first is not None and first.block == "blocks.1"
    assert first.name == consumer.output[0] and first.op_type == "MatMul"
    by_block = {b.block: b for b in result.blocks}
    assert by_block["embed"].failing == 0 and by_block["blocks.0"].failing == 0
    assert by_block["blocks.1"].first_failing is first
    rows = {row.name: row for row in result.rows}
    assert rows["blocks.1/RMSNormalization_out"].passed  # the tensor just before it is fine


def test_spectral_long_conv_is_not_flagged_for_its_magnitude(golden):
    model, pixels = golden("hyena_gap")
    result = compare_precisions(model, "fp16", pixels)
    spectral = [row for row in result.rows if "/long_conv/" in row.name]
    rest = [row for row in result.rows if "/long_conv/" not in row.name]
    assert spectral and all(row.passed for row in spectral)
    # The DFT sums carry the graph's largest absolute errors by far (an absolute bound that passes
    # the rest flags them), while relative to their size they are as good as any other tensor.
    assert max(result.rows, key=lambda r: r.max_abs) in spectral
    assert max(r.max_abs for r in spectral) > 10 * max(r.max_abs for r in rest)
    assert max(r.rel_l2 for r in spectral) < 2 * max(r.rel_l2 for r in rest)


def test_explicit_tolerance_and_worst(golden):
    model, pixels = golden("attn_cls_r4")
    result = compare_precisions(model, "fp16", pixels, tolerance=LayerTolerance(rel_l2=1e-4, cosine=0.9999))
    assert not result.passed
    worst = result.worst(3)
    assert len(worst) == 3 and worst[0].rel_l2 >= worst[1].rel_l2 >= worst[2].rel_l2
    assert result.first_failing is result.failing[0]
    data = result.to_dict()
    assert data["first_failing"] == result.first_failing.name and len(data["tensors"]) == len(result.rows)
    json.dumps(data)


def test_files_and_errors(golden, tmp_path):
    model, pixels = golden("attn_cls_r4")
    reference, _ = build_graph(model)
    onnx.save(reference, str(tmp_path / "ref.onnx"))
    onnx.save(build_graph(model, precision="fp16")[0], str(tmp_path / "cand.onnx"))
    result = compare_layers(tmp_path / "ref.onnx", tmp_path / "cand.onnx", pixels[:1])
    assert result.reference == str(tmp_path / "ref.onnx") and result.batch == 1 and result.precision == "fp16"
    with pytest.raises(LayerCompareError, match="not found"):
        compare_layers(tmp_path / "missing.onnx", tmp_path / "cand.onnx", pixels)
    with pytest.raises(InputError, match="do not fit"):
        compare_layers(reference, reference, pixels[:, :, :8])
    with pytest.raises(LayerCompareError, match="backend"):
        compare_layers(reference, reference, pixels, backend="tensorflow")
    with pytest.raises(LayerCompareError, match="precision"):
        compare_precisions(model, "int4", pixels)


@pytest.mark.skipif(
    tensorrt_installed(), reason="TensorRT is installed here: the missing-package message cannot be seen"
)
def test_tensorrt_backend_without_tensorrt_says_so(golden):
    model, pixels = golden("attn_cls_r4")
    with pytest.raises(Vit5Error, match="TensorRT is not installed"):
        compare_precisions(model, "fp16", pixels, backend="trt")


def test_tensorrt_path_uses_only_existing_polygraphy_and_documented_tensorrt_names():
    """TensorRT cannot run here: check statically what the marked TensorRT runner calls."""
    import ast
    import importlib

    from vit5_infer.workflows.debug import marked_runners

    tree = ast.parse(Path(marked_runners.__file__).read_text())
    imports = [
        (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("polygraphy")
        for alias in node.names
    ]
    for module, attribute in imports:
        assert hasattr(importlib.import_module(module), attribute), f"{module}.{attribute} not in Polygraphy"
    assert {"modify_network_outputs", "TrtRunner"} <= {a for _, a in imports}
    used = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "trt"
    }
    # all in the TensorRT 10.x and 11.x Python API; LayerType.ATTENTION_INPUT from 10.14 (read with getattr)
    assert used <= {"__version__", "LayerType"}
    top_level = {alias.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
    assert "tensorrt" not in top_level


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_tensorrt_candidate_against_ort(golden):
    pytest.importorskip("tensorrt", reason="needs TensorRT: pip install 'vit5-infer[tensorrt]'")
    from vit5_infer.engines.cuda_device import has_cuda_driver

    if not has_cuda_driver():
        pytest.skip("needs an NVIDIA GPU and driver")
    model, pixels = golden("attn_cls_r4")
    result = compare_precisions(model, "fp16", pixels, backend="trt")
    assert result.backend == "trt"
    assert expected_blocks(model) <= {row.block for row in result.rows}
    assert all(np.isfinite(row.rel_l2) for row in result.rows)
    assert result.passed, result.first_failing


# ---- normalization inputs ------------------------------------------------------------------------------
def test_norm_input_stats_sum_of_squares():
    # an FP16 tensor cast up to FP32 before the norm, as the precision pass writes it
    nodes = [
        helper.make_node("Cast", ["blocks.2/x"], ["blocks.2/x/cast_fp32"], to=TensorProto.FLOAT),
        helper.make_node(
            "RMSNormalization",
            ["blocks.2/x/cast_fp32", "w"],
            ["blocks.2/y"],
            name="blocks.2/RMSNormalization",
            axis=-1,
            stash_type=1,
        ),
    ]
    model = helper.make_model(helper.make_graph(nodes, "g", [], []))
    x = np.full((1, 3, 384), 1.0, np.float16)
    x[0, 1] = 400.0  # one token at |x| = 400 over 384 channels: sum 6.1e7
    x[0, 2, 0] = -13.0
    fed = {"blocks.2/x": x, "blocks.2/x/cast_fp32": x.astype(np.float32)}
    (row,) = norm_input_stats(model, fed, {"blocks.2/x": x.astype(np.float32) / 2})
    assert (row.block, row.tensor, row.channels, row.dtype) == ("blocks.2", "blocks.2/x/cast_fp32", 384, "float32")
    assert row.max_abs == 400.0 and row.max_sum_sq == pytest.approx(384 * 400.0**2)
    assert row.sum_sq_exceeds_fp16 and row.max_sum_sq > FP16_MAX
    assert row.reference_max_abs == 200.0  # found through the Cast
    assert norm_input_stats(model, {}) == ()


def test_norm_inputs_of_a_hyena_graph(golden):
    model, pixels = golden("hyena_gap")
    result = compare_precisions(model, "fp16", pixels)
    norms = result.norm_inputs
    # per Hyena block: input norm, Hyena's two norms, MLP norm; then the head's norm
    assert len(norms) == 4 * model.config.network.num_blocks + 1
    assert all(n.op_type == "RMSNormalization" and n.max_sum_sq > 0 for n in norms)
    assert all(n.reference_max_sum_sq == pytest.approx(n.max_sum_sq, rel=1e-2) for n in norms)
    assert {n.dtype for n in norms} == {"float32"}  # reduced graphs keep norm statistics in FP32


# ---- vit5 debug --------------------------------------------------------------------------------------
def run_cli(*args) -> int:
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    return info.value.code


def test_cli_on_golden_checkpoint_writes_json(golden_dir, tmp_path, capsys):
    out = tmp_path / "report.json"
    code = run_cli(
        "debug",
        golden_dir / "hyena_gap.safetensors",
        "--config",
        golden_dir / "hyena_gap.json",
        "--precision",
        "fp16",
        "--batch",
        "2",
        "--top",
        "3",
        "--json",
        out,
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "per block" in captured.out and "blocks.1" in captured.out
    assert "compared tensors are within tolerance" in captured.out
    report = json.loads(out.read_text())
    assert report["precision"] == "fp16" and report["batch"] == 2 and report["passed"] is True
    assert {b["block"] for b in report["blocks"]} >= {"embed", "blocks.0", "blocks.1", "head"}
    assert report["tensors"] and report["norm_inputs"] and report["inputs"] == {"seed": 0}


def test_cli_out_of_tolerance_still_exits_0(golden_dir, tmp_path, capsys):
    model, _ = resolve_model(golden_dir / "attn_cls_r4.safetensors")
    onnx.save(build_graph(model)[0], str(tmp_path / "ref.onnx"))
    onnx.save(build_graph(model, precision="fp16")[0], str(tmp_path / "cand.onnx"))
    code = run_cli(
        "debug",
        "--reference",
        tmp_path / "ref.onnx",
        "--candidate",
        tmp_path / "cand.onnx",
        "--rel-l2",
        "1e-5",
        "--top",
        "0",
        "--json",
        tmp_path / "r.json",
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "leave tolerance; first:" in captured.out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["passed"] is False and report["tolerance"]["rel_l2"] == 1e-5
    assert report["candidate"] == str(tmp_path / "cand.onnx")


def test_cli_real_images(digits_dir, tmp_path, capsys):
    code = run_cli(
        "debug",
        digits_dir / "digits_attn.safetensors",
        "--images",
        digits_dir / "calibration",
        "--mean",
        "0.5",
        "--std",
        "0.25",
        "--batch",
        "3",
        "--top",
        "0",
        "--json",
        tmp_path / "d.json",
    )
    assert code == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "d.json").read_text())
    assert report["batch"] == 3 and report["inputs"] == str(digits_dir / "calibration")
    assert report["passed"] is True


@pytest.mark.parametrize(
    "make_args, fragment",
    [
        (lambda src, tmp: ["--reference", tmp / "a.onnx", "--candidate", tmp / "b.onnx"], "not found"),
        (lambda src, tmp: [src, "--std", "0,1"], "one value or three"),
        # one option check through the command; every check: tests/workflows/debug/test_run.py
        (lambda src, tmp: ["--reference", tmp / "a.onnx"], "--reference and --candidate go together"),
    ],
)
def test_cli_errors_are_one_line(golden_dir, tmp_path, capsys, make_args, fragment):
    code = run_cli("debug", *make_args(golden_dir / "attn_cls_r4.safetensors", tmp_path))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith("error: ") and fragment in err[0], err


# ---- foreign graphs: one line, not IndexError or onnx's ValidationError ------------------------------
def _identity_graph(inputs: int) -> onnx.ModelProto:
    values = [helper.make_tensor_value_info(f"x{i}", TensorProto.FLOAT, [1, 3, 8, 8]) for i in range(inputs)]
    nodes = [helper.make_node("Identity", [f"x{i}"], [f"y{i}"]) for i in range(inputs)]
    outputs = [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, [1, 3, 8, 8]) for i in range(inputs)]
    if not inputs:
        zeros = numpy_helper.from_array(np.zeros((1, 3, 8, 8), np.float32))
        nodes = [helper.make_node("Constant", [], ["y0"], value=zeros)]
        outputs = [helper.make_tensor_value_info("y0", TensorProto.FLOAT, [1, 3, 8, 8])]
    return helper.make_model(helper.make_graph(nodes, "g", values, outputs))


@pytest.mark.parametrize("inputs, fragment", [(0, "has 0 inputs (none)"), (2, "has 2 inputs (x0, x1)")])
def test_a_graph_without_exactly_one_input_is_refused(inputs, fragment):
    from vit5_infer.workflows.debug.inputs import graph_input_spec

    graph = _identity_graph(inputs)
    with pytest.raises(InputError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        graph_input_spec(graph)
    with pytest.raises(InputError, match="exactly one"):
        compare_layers(graph, graph, np.zeros((1, 3, 8, 8), np.float32))


def test_a_graph_whose_external_data_is_missing_is_one_line(tmp_path):
    from onnx.external_data_helper import convert_model_to_external_data

    from vit5_infer.workflows.debug.layer_compare import load_graph

    weights = numpy_helper.from_array(np.ones((64, 64), np.float32), "w")
    graph = helper.make_model(
        helper.make_graph(
            [helper.make_node("Add", ["x", "w"], ["y"])],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 64])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [64, 64])],
            [weights],
        )
    )
    convert_model_to_external_data(graph, location="ref.onnx.data", size_threshold=0)
    onnx.save(graph, str(tmp_path / "ref.onnx"))
    (tmp_path / "ref.onnx.data").unlink()
    with pytest.raises(Vit5Error, match="ref.onnx: not a readable ONNX model") as info:
        load_graph(tmp_path / "ref.onnx", "reference")
    assert "\n" not in str(info.value)


def test_debug_batch_that_cannot_fit_is_refused_before_running(golden):
    from vit5_infer.memory import physical_memory_bytes
    from vit5_infer.workflows.debug.inputs import check_batch

    model = golden("attn_cls_r4")[0]
    with pytest.raises(InputError, match="--batch must be >= 1"):
        check_batch((3, 32, 32), 0)
    if physical_memory_bytes() is None:
        pytest.skip("this platform does not report its memory size")
    with pytest.raises(InputError, match="--batch 1000000000 needs about .* for its inputs alone"):
        check_batch((3, 32, 32), 1_000_000_000)
    # Inputs that take a quarter of the memory fit; every block's marked activations of both graphs do not.
    batch = physical_memory_bytes() // (2 * 4 * 3 * 32 * 32) // 4
    check_batch((3, 32, 32), batch)
    with pytest.raises(InputError, match=f"--batch {batch} needs about .* inputs and activations"):
        check_batch((3, 32, 32), batch, model.config)
    check_batch((3, 32, 32), 2, model.config)


def test_the_tensorrt_comparison_parses_as_the_builder_does():
    """One network-parse function (engines.tensorrt_builder.parse_network, with decomposable attention) serves
    `vit5 build-engine` and `vit5 debug --backend trt`, so the graph debug checks is the one engines build."""
    import ast

    from vit5_infer.workflows.debug import marked_runners

    tree = ast.parse(Path(marked_runners.__file__).read_text())
    called = {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert {"parse_network", "with_decomposable_attentions"} <= called
    assert not any(isinstance(node, ast.Attribute) and node.attr == "OnnxParser" for node in ast.walk(tree))


def test_default_target_is_the_form_the_installed_tensorrt_parses(monkeypatch):
    """The TensorRT module is a stand-in carrying only the ``__version__`` a pip package reports: this checks
    the target text, not a TensorRT parse."""
    import types

    from vit5_infer.engines import tensorrt_support
    from vit5_infer.workflows.build_engine import tensorrt_target
    from vit5_infer.workflows.debug.layer_compare import default_target

    monkeypatch.setattr(
        tensorrt_support, "import_tensorrt", lambda: types.SimpleNamespace(__version__="10.14.1.48.post1")
    )
    assert default_target("trt") == "tensorrt=10.14"
    assert default_target("ort") == "ort"
    assert tensorrt_target("10.8.0.43") == "tensorrt=10.8"
