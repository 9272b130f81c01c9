"""What each normalization node is fed: max |x| and the sum of squares it reduces.

An RMS norm of FP16 inputs whose statistics are accumulated in FP16 overflows once the sum of
squares over the normalized channels passes FP16's largest value (65504), whatever the mean would
be.  ONNX's ``stash_type=1`` asks for float32 statistics; whether a runtime honours it is its
business, so these numbers say how much headroom a graph needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Optional

import numpy as np

from .scopes import block_of

if TYPE_CHECKING:
    import onnx  # imported where used: the CLI imports this package before it parses its flags

NORM_OPS = ("RMSNormalization", "LayerNormalization")
FP16_MAX = 65504.0


@dataclass(frozen=True)
class NormInputStats:
    node: str
    op_type: str
    block: str
    tensor: str
    #: number of values each statistic reduces (the product of the normalized axes)
    channels: int
    #: the type the node is fed (float32 when the precision pass casts its input up)
    dtype: str
    max_abs: float
    #: largest sum of x**2 over the normalized axes, over all rows
    max_sum_sq: float
    reference_max_abs: Optional[float] = None
    reference_max_sum_sq: Optional[float] = None

    @property
    def sum_sq_exceeds_fp16(self) -> bool:
        return self.max_sum_sq > FP16_MAX

    def to_dict(self) -> dict:
        return {**asdict(self), "sum_sq_exceeds_fp16": self.sum_sq_exceeds_fp16}


def _axis(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "axis"), -1)


def _stats(x: np.ndarray, axis: int) -> tuple[int, float, float]:
    x = np.asarray(x, dtype=np.float64)
    first = axis % x.ndim
    axes = tuple(range(first, x.ndim))
    channels = int(np.prod([x.shape[a] for a in axes]))
    return channels, float(np.abs(x).max()), float(np.square(x).sum(axis=axes).max())


def _before_casts(name: str, casts: Mapping[str, str]) -> str:
    """The tensor a chain of Casts started from: the name the FP32 graph gives the same value."""
    seen = set()
    while name in casts and name not in seen:
        seen.add(name)
        name = casts[name]
    return name


def norm_input_stats(
    model: onnx.ModelProto,
    outputs: Mapping[str, np.ndarray],
    reference_outputs: Optional[Mapping[str, np.ndarray]] = None,
) -> tuple[NormInputStats, ...]:
    """One row per normalization node of ``model`` whose input is in ``outputs`` (graph order).

    The reference columns come from ``reference_outputs`` under the input's name, or, where the
    precision pass inserted Casts before the node, under the name of the tensor they convert.
    """
    casts = {node.output[0]: node.input[0] for node in model.graph.node if node.op_type == "Cast"}
    reference_outputs = reference_outputs or {}
    rows = []
    for node in model.graph.node:
        if node.op_type not in NORM_OPS or node.input[0] not in outputs:
            continue
        name, axis = node.input[0], _axis(node)
        fed = np.asarray(outputs[name])
        channels, max_abs, max_sum_sq = _stats(fed, axis)
        ref = reference_outputs.get(name)
        if ref is None:
            ref = reference_outputs.get(_before_casts(name, casts))
        ref_abs = ref_sum = None
        if ref is not None and np.shape(ref) == fed.shape:
            _, ref_abs, ref_sum = _stats(ref, axis)
        rows.append(
            NormInputStats(
                node.name,
                node.op_type,
                block_of(node.name),
                name,
                channels,
                str(fed.dtype),
                max_abs,
                max_sum_sq,
                ref_abs,
                ref_sum,
            )
        )
    return tuple(rows)
