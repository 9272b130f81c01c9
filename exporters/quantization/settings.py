"""``QuantizationSettings``: what a quantized export quantizes and how, apart from the graph's form and
the data it calibrates on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from vit5_infer.vocabulary import DEFAULT_CALIBRATION_METHOD

#: Layers left in higher precision unless told otherwise, by measurement (benchmarks/quantization.py,
#: README): the patch embedding (it sees raw pixels), the classifier and Hyena's depthwise short
#: convolution are the most sensitive layers of both digits networks at INT8 and FP8, and together
#: hold well under 1% of the GEMM work.
DEFAULT_KEEP_FLOAT = ("embed/", "head/", "short_conv")


@dataclass(frozen=True)
class QuantizationSettings:
    """``precision``: int8 or fp8.  ``method``: how calibration turns observed values into ranges
    (exporters.quantization.calibration).  ``keep_float``: node-name patterns left unquantized, GEMMs and,
    for TensorRT, attention products alike; None: ``DEFAULT_KEEP_FLOAT``.  ``sensitivity``: also measure
    each layer alone and keep the outliers in higher precision."""

    precision: str
    method: str = DEFAULT_CALIBRATION_METHOD
    keep_float: Optional[Sequence[str]] = None
    sensitivity: bool = False

    def __post_init__(self):
        if self.keep_float is not None:
            object.__setattr__(self, "keep_float", tuple(self.keep_float))

    @property
    def kept(self) -> tuple[str, ...]:
        """The node-name patterns left in higher precision."""
        return tuple(DEFAULT_KEEP_FLOAT if self.keep_float is None else self.keep_float)
