"""Elementary ops shared by every emitter (norms, activations): one place that decides their ONNX form.

The form follows the builder's opset and export target (``GraphBuilder.fused_rms_norm``): a fused
op where the runtime has one, else primitive ops with their statistics in float32.
"""

from __future__ import annotations

import numpy as np

from .graph import GraphBuilder


def rms_norm(b: GraphBuilder, x: str, weight: np.ndarray, eps: float, name: str) -> str:
    """RMSNorm over the last axis; ``name`` is the norm module's name (its weight becomes ``name.weight``).

    An all-ones weight (the QK norm's, whose real weight is folded into the RoPE tables) costs no Mul in
    the primitive form; ``RMSNormalization`` keeps it, as its scale input is required."""
    if b.fused_rms_norm and b.target.is_tensorrt:
        # TensorRT's importer casts the input to the stash_type (FP32), computes the statistics there and
        # casts back to the input's type itself (onnx-tensorrt onnxOpImporters.cpp, RMSNormalization), so
        # a reduced-precision graph needs no explicit Casts around the node.
        return _rms_normalization(b, x, weight, eps, name)
    # Elsewhere the norm is an explicit float32 island in reduced-precision graphs (what autocast does):
    # the sum of squares of a Hyena activation overflows FP16 (|x| ~ 400 over 384 channels) and the
    # primitive form has no stash_type.  ONNX Runtime 1.31 also keeps FP16 RMSNormalization statistics in
    # FP32 (no overflow at |x| ~ 400), but its form keeps the island it was measured with.
    with b.fp32_region():
        if b.fused_rms_norm:
            return _rms_normalization(b, x, weight, eps, name)
        mean_sq = b.reduce("ReduceMean", b.op("Mul", [x, x]), [-1])
        inv_rms = b.op("Reciprocal", [b.op("Sqrt", [b.op("Add", [mean_sq, b.const(eps, np.float32)])])])
        normalized = b.op("Mul", [x, inv_rms])
        if np.all(weight == 1):
            return normalized
        return b.op("Mul", [normalized, b.weight(f"{name}.weight", weight)])


def _rms_normalization(b: GraphBuilder, x: str, weight: np.ndarray, eps: float, name: str) -> str:
    return b.op("RMSNormalization", [x, b.weight(f"{name}.weight", weight)], axis=-1, epsilon=eps, stash_type=1)


def describe_norm(b: GraphBuilder) -> str:
    """How ``rms_norm`` lowers on this builder, for the export's lowering report."""
    if not b.fused_rms_norm:
        return "primitive ops (fp32)"
    return "RMSNormalization op (fp32 statistics: stash_type)" if b.target.is_tensorrt else "RMSNormalization op (fp32)"


def l2_normalize(b: GraphBuilder, x: str, axis: int = -1, eps: float = 1e-12) -> str:
    with b.fp32_region():
        norm = b.reduce("ReduceL2", x, [axis])
        return b.op("Div", [x, b.op("Max", [norm, b.const(eps, np.float32)])])


def gelu(b: GraphBuilder, x: str) -> str:
    if b.opset >= 20:
        return b.op("Gelu", [x], approximate="none")
    inner = b.op("Erf", [b.op("Mul", [x, b.const(1.0 / np.sqrt(2.0), np.float32)])])
    half = b.op("Mul", [x, b.const(0.5, np.float32)])
    return b.op("Mul", [half, b.op("Add", [inner, b.const(1.0, np.float32)])])


def silu(b: GraphBuilder, x: str) -> str:
    return b.op("Mul", [x, b.op("Sigmoid", [x])])


def activation(b: GraphBuilder, kind: str | None, x: str) -> str:
    if kind in (None, "identity"):
        return x
    if kind in ("gelu", "gelu_exact"):
        return gelu(b, x)
    if kind == "relu":
        return b.op("Relu", [x])
    if kind == "silu":
        return silu(b, x)
    if kind == "sigmoid":
        return b.op("Sigmoid", [x])
    raise ValueError(f"no ONNX lowering for activation {kind!r}")
