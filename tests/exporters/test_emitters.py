"""The exporter owns one ONNX emitter per block kind (vit5_infer.blocks)."""

from __future__ import annotations

from vit5_infer.blocks import block_kinds
from vit5_infer.exporters.lowering import EMITTERS


def test_every_block_kind_has_an_emitter():
    assert set(EMITTERS) == set(block_kinds())
