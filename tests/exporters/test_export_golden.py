"""FP32 exports of the upstream golden cases reproduce upstream's logits on ONNX Runtime (CPU)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from export_cases import GOLDEN, GOLDEN_CASES, load_golden_io

from vit5_infer import resolve_model
from vit5_infer.exporters import export_onnx, validate_graph

ATOL = 1e-4


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("opset", [23, 18, 17])
@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_fp32_export_matches_upstream_logits(golden_exports, name, opset, batch):
    result = golden_exports.export(name, opset=opset)
    graph = onnx.load(str(result.path))
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param, "one dynamic-batch file for all batches"
    pixels, logits = load_golden_io(name)
    out = golden_exports.run(result.path, pixels[:batch])
    assert out.shape == logits[:batch].shape
    assert out.dtype == np.float32
    err = float(np.abs(out - logits[:batch]).max())
    assert err <= ATOL, f"{name} opset {opset} batch {batch}: max abs error {err:.3g} vs upstream"


@pytest.mark.parametrize("opset", [23, 18, 17])
@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_export_validation_report(golden_exports, name, opset):
    result = golden_exports.export(name, opset=opset)
    v = result.validation
    assert v is not None and v.passed is True, v
    assert v.batches == (1, 3)
    assert v.method == "ORT CPU"
    assert v.comparison.max_abs_err <= 1e-4
    assert result.opset == opset and result.precision == "fp32"


def test_training_checkpoint_exports_ema_weights(golden_exports, tmp_path):
    """The .ckpt holds the golden weights as EMA, perturbed raw weights beside them."""
    ema, ema_source = resolve_model(GOLDEN / "attn_cls_r4.ckpt", config=GOLDEN / "attn_cls_r4.json")
    raw, raw_source = resolve_model(GOLDEN / "attn_cls_r4.ckpt", config=GOLDEN / "attn_cls_r4.json", weights="raw")
    pixels, logits = load_golden_io("attn_cls_r4")
    ema_path = export_onnx(ema, tmp_path / "ema.onnx", source=ema_source).path
    raw_path = export_onnx(raw, tmp_path / "raw.onnx", source=raw_source).path
    assert np.abs(golden_exports.run(ema_path, pixels) - logits).max() <= ATOL
    # The raw weights give other logits: the graph really carries the selected weights.
    assert np.abs(golden_exports.run(raw_path, pixels) - logits).max() > 1e-2


def test_validate_graph_detects_a_different_model(golden_exports):
    """Model A's graph validated against model B (same architecture, other weights) fails."""
    ema_graph = golden_exports.export("attn_cls_r4", opset=23).path
    model_a, _ = golden_exports.model("attn_cls_r4")
    model_b, _ = resolve_model(GOLDEN / "attn_cls_r4.ckpt", config=GOLDEN / "attn_cls_r4.json", weights="raw")
    good = validate_graph(ema_graph, model_a, "fp32", "nchw", (1, 3))
    bad = validate_graph(ema_graph, model_b, "fp32", "nchw", (1, 3))
    assert good.passed is True
    assert bad.passed is False
    assert bad.reason != "ok" and bad.comparison.max_abs_err > 1e-4


@pytest.mark.parametrize("opset", [23, 18])
@pytest.mark.parametrize("lowering", ["direct", "spectral", "scan"])
@pytest.mark.parametrize("name", ["hyena_gap", "hybrid_pool_film", "hybrid_compress_concat"])
def test_every_long_conv_lowering_matches_upstream(golden_exports, name, lowering, opset):
    from vit5_infer.exporters.long_conv import choose

    result = golden_exports.export(name, opset=opset, lowering=lowering)
    pixels, logits = load_golden_io(name)
    for batch in (1, 3):
        err = float(np.abs(golden_exports.run(result.path, pixels[:batch]) - logits[:batch]).max())
        assert err <= ATOL, f"{name} {lowering} opset {opset} batch {batch}: max abs error {err:.3g}"
    method = choose(lowering, golden_exports.model(name)[0].config.film is not None)
    assert result.lowering["long_conv"].startswith(method)
    assert result.metadata["lowering"] == result.lowering
