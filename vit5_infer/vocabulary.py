"""The words every layer of the toolkit shares: precisions, tensor names, file suffixes, callbacks.

Spelled once here so that the exporter, the engines, the benchmark and the CLI cannot drift apart
(a graph labelled "fp16" by one and "bf16" by another, an engine suffix known to one command only).
Pure Python: importing this pulls in nothing heavy.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable
from pathlib import Path
from typing import Optional, Union

PathLike = Union[str, "os.PathLike[str]", Path]

#: A progress callback: receives one short human-readable message per step of a long operation.
Progress = Optional[Callable[[str], None]]


class Precision(str, enum.Enum):
    """Numeric precision of a graph, engine or runner."""

    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"
    INT8 = "int8"
    FP8 = "fp8"

    def __str__(self) -> str:
        return self.value

    @property
    def is_float(self) -> bool:
        """fp32/fp16/bf16: a graph computes in this type (as opposed to a quantized graph)."""
        return self in FLOAT_PRECISIONS

    @property
    def is_quantized(self) -> bool:
        return self in QUANTIZED_PRECISIONS

    @classmethod
    def parse(cls, value: Union[str, Precision], allowed: tuple[Precision, ...] | None = None) -> Precision:
        """``value`` as a Precision; ValueError naming the allowed ones otherwise."""
        allowed = allowed or tuple(cls)
        try:
            precision = cls(str(value).lower())
        except ValueError:
            precision = None
        if precision is None or precision not in allowed:
            raise ValueError(f"unknown precision {value!r}; use one of {', '.join(p.value for p in allowed)}")
        return precision


FLOAT_PRECISIONS = (Precision.FP32, Precision.FP16, Precision.BF16)
REDUCED_FLOAT_PRECISIONS = (Precision.FP16, Precision.BF16)
QUANTIZED_PRECISIONS = (Precision.INT8, Precision.FP8)
#: every precision by name, as flags and metadata spell them
PRECISION_NAMES = tuple(p.value for p in Precision)

#: calibration of INT8/FP8 graphs: the range estimators, and the defaults measured on the digits networks and
#: vit5-small (benchmarks/quantization.py)
CALIBRATION_METHODS = ("max", "percentile", "entropy")
DEFAULT_CALIBRATION_METHOD = "max"
DEFAULT_CALIBRATION_COUNT = 128
#: image resize filters of the preprocessing
INTERPOLATIONS = ("bicubic", "bilinear", "nearest")

#: the MLP activations of upstream's blocks; the gated ones (GLU, SwiGLU) split a doubled first layer in two
MLP_ACTIVATIONS = ("gelu", "gelu_exact", "relu", "silu", "glu", "swiglu")
GATED_ACTIVATIONS = ("glu", "swiglu")

#: The one graph input: float pixels ``[B, C, H, W]`` (or ``[B, H, W, C]`` for an nhwc export).
INPUT_NAME = "pixel_values"
#: The default graph output.
LOGITS = "logits"

#: TensorRT engine files this toolkit writes and reads; the manifest is ``ENGINE + MANIFEST_SUFFIX``.
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
ENGINE_MANIFEST_SUFFIX = ".json"
ONNX_SUFFIX = ".onnx"
#: External weights of an ONNX file ``model.onnx`` live in ``model.onnx.data``.
EXTERNAL_DATA_SUFFIX = ".data"


def is_onnx_path(path: PathLike) -> bool:
    return str(path).lower().endswith(ONNX_SUFFIX)


def is_engine_path(path: PathLike) -> bool:
    return Path(path).suffix.lower() in ENGINE_SUFFIXES


#: Every output a graph or runner can give, by name: the classifier's ``logits`` and the backbone
#: features (``pre_logits`` [B, F], ``patch_tokens`` [B, Hp, Wp, C], ``cls_token`` [B, C],
#: ``register_tokens`` [B, R, C]).
OUTPUT_NAMES = (LOGITS, "pre_logits", "patch_tokens", "cls_token", "register_tokens")
