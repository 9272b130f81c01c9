"""The FP16-attention comparison of the debug workflow (``vit5_infer.workflows.debug.fp16_attention``) on the
trained digits attention network and a few of its images."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vit5_infer.exporters import build_graph
from vit5_infer.exporters.graph import KEEP_FP32
from vit5_infer.loading import load_model
from vit5_infer.workflows.debug.fp16_attention import fp16_attention_comparison, keep_attention_fp32
from vit5_infer.workflows.export import PreprocessingOverrides

DIGITS_PRE = PreprocessingOverrides(mean=(0.5,) * 3, std=(0.25,) * 3)


@pytest.fixture(scope="module")
def images(digits_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    for image in sorted((digits_dir / "calibration").rglob("*.png"))[:8]:
        shutil.copy(image, folder / image.name)
    return folder


@pytest.mark.parametrize(
    "opset, target, newly_marked",
    # the exporter keeps Softmax in FP32 already: the MatMul-Softmax-MatMul form adds its two products
    [(23, "tensorrt", {"Attention"}), (18, "ort", {"MatMul"})],
)
def test_only_the_attention_nodes_are_kept_in_fp32(digits_dir, opset, target, newly_marked):
    graph, _ = build_graph(load_model(digits_dir / "digits_attn.safetensors"), opset=opset, target=target)
    original = [node.doc_string for node in graph.graph.node]
    kept = keep_attention_fp32(graph)
    assert [node.doc_string for node in graph.graph.node] == original  # the given graph is left as it is
    attention = [
        n
        for n in kept.graph.node
        if n.op_type in ("Attention", "Softmax") or "qk_matmul" in n.name or "pv_matmul" in n.name
    ]
    assert len(attention) == (6 if opset == 23 else 18)  # per block: Attention, or two products and a softmax
    assert all(n.doc_string == KEEP_FP32 for n in attention)
    marked = [n for n, o in zip(kept.graph.node, original) if n.doc_string != o]
    assert {n.op_type for n in marked} == newly_marked


def test_each_form_gives_an_fp16_and_an_fp32_attention_row(digits_dir, images):
    forms = ((18, "ort"),)
    rows = fp16_attention_comparison(digits_dir / "digits_attn.safetensors", images, DIGITS_PRE, forms)
    assert [(r.opset, r.target, r.attention) for r in rows] == [(18, "ort", "fp16"), (18, "ort", "fp32")]
    for row in rows:
        assert 0.9999 < row.cosine <= 1.0 + 1e-6
        assert row.top1_agreement == 1.0
        assert row.max_abs_err > 0  # FP16 rounding is emulated, not upcast away
    # the marks reach the precision pass: the two graphs compute differently
    assert rows[0].max_abs_err != rows[1].max_abs_err
