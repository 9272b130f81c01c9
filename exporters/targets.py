"""Which runtime an export is for, and the graph form that runtime accepts.

``ort`` (the default; ``cpu`` is accepted as a synonym) is ONNX Runtime on any provider: it runs every
form, so the exporter picks by opset alone.  ``tensorrt`` is TensorRT's ONNX parser, whose op
support grew release by release (onnx/onnx-tensorrt ``docs/operators.md`` of each release):

| TensorRT          | opset | attention                      | RMSNorm                |
|-------------------|-------|--------------------------------|------------------------|
| >= 10.15          | 23    | fused ``Attention`` op         | ``RMSNormalization`` op |
| 10.14             | 23    | fused ``Attention`` op         | primitive ops          |
| 10.0 .. 10.13     | 18    | MatMul-Softmax-MatMul (Myelin) | primitive ops          |

``tensorrt`` without a version means the newest form (the 10.15+ one); ``tensorrt=10.8`` picks the
form that release parses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from vit5_infer.errors import Vit5Error

RUNTIMES = ("ort", "tensorrt")
# TensorRT versions this toolkit builds for (tensorrt_support.SUPPORTED_MAJORS).
TENSORRT_MIN, TENSORRT_MAX_MAJOR = (10, 0), 11
ATTENTION_OP_SINCE = (10, 14)
RMS_NORMALIZATION_OP_SINCE = (10, 15)


class TargetError(Vit5Error, ValueError):
    pass


# MAJOR[.MINOR[.PATCH[.BUILD]]], and a pip post release ("10.14.1.48.post1") is its release
_VERSION = r"(\d+)(?:\.(\d+))?(?:\.\d+)*(?:\.?post\d*)?"


def parse_tensorrt_version(text: str) -> Optional[tuple[int, int]]:
    """(major, minor) of a TensorRT version such as "10.8", "10.14.1.48" or "10.14.1.48.post1"; None if
    ``text`` is not one."""
    match = re.fullmatch(rf"\s*{_VERSION}\s*", str(text))
    return (int(match.group(1)), int(match.group(2) or 0)) if match else None


@dataclass(frozen=True)
class ExportTarget:
    runtime: str = "ort"
    #: TensorRT (major, minor) the graph must parse on; None: the newest form
    version: Optional[tuple[int, int]] = None

    @classmethod
    def parse(cls, text: "str | ExportTarget | None") -> "ExportTarget":
        """``ort`` / ``cpu`` / ``tensorrt`` / ``tensorrt=10.8`` (also ``tensorrt-10.8``, ``tensorrt10.8.0``)."""
        if isinstance(text, ExportTarget):
            return text
        if text is None:
            return cls()
        spec = str(text).strip().lower()
        if spec in ("ort", "cpu", "onnxruntime"):
            return cls("ort")
        match = re.fullmatch(r"(?:tensorrt|trt)(?:\s*[=:\- ]?\s*(.+))?", spec)
        version = None if match is None or match.group(1) is None else parse_tensorrt_version(match.group(1))
        if match is None or (match.group(1) is not None and version is None):
            raise TargetError(f"unknown export target {text!r}; use ort, tensorrt or tensorrt=MAJOR.MINOR (e.g. tensorrt=10.8)")
        if version is None:
            return cls("tensorrt")
        if version < TENSORRT_MIN or version[0] > TENSORRT_MAX_MAJOR:
            raise TargetError(
                f"TensorRT {version[0]}.{version[1]} is not supported; vit5-infer builds for TensorRT "
                f"{TENSORRT_MIN[0]}.{TENSORRT_MIN[1]} to {TENSORRT_MAX_MAJOR}.x"
            )
        return cls("tensorrt", version)

    @property
    def is_tensorrt(self) -> bool:
        return self.runtime == "tensorrt"

    def _at_least(self, release: tuple[int, int]) -> bool:
        return self.version is None or self.version >= release

    def default_opset(self) -> int:
        return 23 if not self.is_tensorrt or self._at_least(ATTENTION_OP_SINCE) else 18

    def allows_opset(self, opset: int) -> bool:
        return not self.is_tensorrt or opset < 23 or self._at_least(ATTENTION_OP_SINCE)

    def fused_attention(self, opset: int) -> bool:
        """The opset-23 ``Attention`` op (else MatMul-Softmax-MatMul)."""
        return opset >= 23 and (not self.is_tensorrt or self._at_least(ATTENTION_OP_SINCE))

    def fused_rms_norm(self, opset: int) -> bool:
        """The opset-23 ``RMSNormalization`` op (else primitive ops with FP32 statistics)."""
        return opset >= 23 and (not self.is_tensorrt or self._at_least(RMS_NORMALIZATION_OP_SINCE))

    def check_version(self) -> str:
        """The TensorRT version whose parser rules an export for this target must pass."""
        if self.version is None:
            return "11.0"  # the newest parser: the form `tensorrt` without a version stands for
        return f"{self.version[0]}.{self.version[1]}"

    def __str__(self) -> str:
        if not self.is_tensorrt:
            return "ort"
        return "tensorrt" if self.version is None else f"tensorrt={self.version[0]}.{self.version[1]}"
