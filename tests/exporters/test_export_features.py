"""Graphs with backbone outputs (``export_onnx(..., outputs=...)``): upstream's features through ONNX
Runtime, exact output names, metadata, per-output validation, reduced precision, readout pruning."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from export_cases import GOLDEN, GOLDEN_CASES, cosine, load_golden_io
from onnx import TensorProto

from vit5_infer.errors import Vit5Error
from vit5_infer.exporters import build_graph, export_onnx, graph_outputs
from vit5_infer.outputs import OutputError, available_outputs

ATOL = 1e-4  # through ONNX Runtime, relative to max(1, max |upstream|) of each output


def _all(golden_exports, name: str) -> str:
    """Every output the case's network has: one export per case and opset carries all of them."""
    return ",".join(available_outputs(golden_exports.model(name)[0].config))


def _run_all(golden_exports, path, pixels: np.ndarray) -> dict:
    s = golden_exports.session(path)
    names = [o.name for o in s.get_outputs()]
    return dict(zip(names, s.run(names, {"pixel_values": pixels})))


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("opset", [23, 18])
@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_fp32_features_match_upstream_through_ort(golden_exports, golden_features, name, opset, batch):
    result = golden_exports.export(name, opset=opset, outputs=_all(golden_exports, name))
    pixels, logits = load_golden_io(name)
    upstream = {"logits": logits, **golden_features(name)}
    got = _run_all(golden_exports, result.path, pixels[:batch])
    assert list(got) == list(available_outputs(golden_exports.model(name)[0].config))
    for key, want in upstream.items():
        want = want[:batch]
        assert got[key].shape == want.shape and got[key].dtype == np.float32, key
        bound = ATOL * max(1.0, float(np.abs(want).max()))
        err = float(np.abs(got[key] - want).max())
        assert err <= bound, f"{name} opset {opset} batch {batch} {key}: max abs error {err:.3g} > {bound:.3g}"


@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_outputs_names_shapes_metadata_and_validation(golden_exports, name):
    result = golden_exports.export(name, outputs=_all(golden_exports, name))
    names = _all(golden_exports, name).split(",")
    graph = onnx.load(str(result.path))
    assert [o.name for o in graph.graph.output] == names
    assert graph_outputs(graph) == result.metadata["outputs"]
    assert list(result.metadata["outputs"]) == names
    grid = golden_exports.model(name)[0].config.grid_size
    assert result.metadata["outputs"]["patch_tokens"][1:3] == [grid, grid]
    v = result.validation
    assert v.passed is True and list(v.outputs) == names
    for key, comparison in v.outputs.items():
        assert comparison.within_tolerance("fp32") == (True, "ok") and comparison.cosine >= 0.99999, key
        assert comparison.shape[0] == 4  # batches 1 and 3
    assert v.comparison is v.outputs["logits"].logits and v.comparison.top1_agreement == 1.0
    report = v.to_dict()
    assert report["max_abs_err"] == v.comparison.max_abs_err  # the logits' figures at the top level
    assert list(report["outputs"]) == names
    for entry in report["outputs"].values():
        assert entry["passed"] is True and {"relative_error", "max_abs_err", "min_vector_cosine"} <= set(entry)


@pytest.mark.parametrize("outputs", ["patch_tokens,pre_logits", "register_tokens", "cls_token,logits"])
def test_any_subset_in_the_order_asked(golden_exports, golden_features, outputs):
    name = "attn_cls_r4"
    result = golden_exports.export(name, outputs=outputs)
    got = _run_all(golden_exports, result.path, load_golden_io(name)[0])
    assert list(got) == outputs.split(",")
    for key in got:
        if key != "logits":
            np.testing.assert_allclose(got[key], golden_features(name)[key], rtol=0, atol=1e-4)


def _last_attention_queries(graph: onnx.ModelProto) -> str:
    """The op producing the query input of the last Attention node (opset 23)."""
    producers = {out: node for node in graph.graph.node for out in node.output}
    attention = [n for n in graph.graph.node if n.op_type == "Attention"][-1]
    return producers[attention.input[0]].op_type


@pytest.mark.parametrize("name", ["attn_cls_r4", "hybrid_pool_film"])
def test_readout_pruning_only_without_token_outputs(golden_exports, name):
    """cls readout: the last attention block computes only the CLS query, unless tokens are asked for."""
    logits_only = onnx.load(str(golden_exports.export(name).path))
    pooled_only = build_graph(golden_exports.model(name)[0], outputs="pre_logits")[0]
    with_tokens = onnx.load(str(golden_exports.export(name, outputs=_all(golden_exports, name)).path))
    assert _last_attention_queries(logits_only) == "Slice"
    assert _last_attention_queries(pooled_only) == "Slice"
    assert _last_attention_queries(with_tokens) == "Split"


@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_fp16_features_cosine(golden_exports, golden_features, name):
    pixels, logits = load_golden_io(name)
    result = golden_exports.export(name, precision="fp16", outputs=_all(golden_exports, name))
    got = _run_all(golden_exports, result.path, pixels)
    for key, want in {"logits": logits, **golden_features(name)}.items():
        assert got[key].dtype == np.float32
        assert cosine(got[key], want) >= 0.999, key
        assert result.validation.outputs[key].cosine >= 0.999, key


def test_reduced_io_dtype_applies_to_every_output(golden_exports, golden_features):
    name = "hybrid_pool_film"
    result = golden_exports.export(name, precision="fp16", io_dtype="fp16", outputs=_all(golden_exports, name))
    graph = onnx.load(str(result.path))
    assert {o.type.tensor_type.elem_type for o in graph.graph.output} == {TensorProto.FLOAT16}
    got = _run_all(golden_exports, result.path, load_golden_io(name)[0].astype(np.float16))
    for key, want in golden_features(name).items():
        assert got[key].dtype == np.float16 and cosine(got[key], want) >= 0.999, key


def test_bf16_features_validated_per_output(golden_exports):
    name = "hybrid_compress_concat"
    result = golden_exports.export(name, precision="bf16", outputs=_all(golden_exports, name))
    v = result.validation
    assert v.passed is True and v.method.startswith("ORT CPU, BF16")
    assert list(v.outputs) == _all(golden_exports, name).split(",")
    assert all(c.cosine >= 0.999 for c in v.outputs.values()), v.to_dict()["outputs"]


@pytest.mark.parametrize(
    "name, outputs", [("attn_gap_r0_bias", "pre_logits,cls_token"), ("hyena_gap", "register_tokens")]
)
def test_missing_token_output_is_refused_before_writing(golden_exports, tmp_path, name, outputs):
    target = tmp_path / "m.onnx"
    with pytest.raises(OutputError) as info:
        export_onnx(golden_exports.model(name)[0], target, outputs=outputs)
    assert isinstance(info.value, Vit5Error) and "\n" not in str(info.value)
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_validation_names_the_output_that_misses(golden_exports):
    """A graph validated against another model with the same architecture fails, naming an output."""
    from vit5_infer import resolve_model
    from vit5_infer.exporters import validate_graph

    path = golden_exports.export("attn_cls_r4", outputs="patch_tokens,cls_token").path
    other, _ = resolve_model(GOLDEN / "attn_cls_r4.ckpt", config=GOLDEN / "attn_cls_r4.json", weights="raw")
    bad = validate_graph(path, other, "fp32", "nchw", (1,))
    assert bad.passed is False and list(bad.outputs) == ["patch_tokens", "cls_token"]
    assert bad.comparison is None  # no logits in this graph
    assert bad.reason.split(":")[0] == bad.failing().name in ("patch_tokens", "cls_token")


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("version", ["10.8", "10.14", "10.15", "11.1"])
@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_token_outputs_pass_the_tensorrt_parser_check(golden_exports, name, version, precision):
    """A graph with every output, exported for TensorRT ``version``, parses there; and the outputs add
    no issue of their own to the logits-only graph's report."""
    from vit5_infer.exporters.tensorrt_compat import check_tensorrt_compat

    model = golden_exports.model(name)[0]
    target = f"tensorrt={version}"
    with_tokens = build_graph(model, precision=precision, target=target, outputs=available_outputs(model.config))[0]
    logits_only = build_graph(model, precision=precision, target=target)[0]
    report = check_tensorrt_compat(with_tokens, version)
    assert report.compatible, report.lines()
    rules = {(i.rule, i.severity, i.op_type) for i in report.issues}
    assert rules <= {(i.rule, i.severity, i.op_type) for i in check_tensorrt_compat(logits_only, version).issues}
