"""Which runtime an export is for, and the graph form that runtime accepts.

``ort`` (the default; ``cpu`` is accepted as a synonym) is ONNX Runtime on any provider: it runs every
form, so the exporter picks by opset alone.  ``tensorrt`` is TensorRT's ONNX parser, whose op
support grew release by release.  The form follows from the features of the target's release in
the release table (vit5_infer.tensorrt_releases): ``ATTENTION_OP`` (10.14+) gives the fused opset-23
``Attention`` op, else opset 18 with MatMul-Softmax-MatMul; ``RMS_NORMALIZATION_OP`` (10.15+) gives the
``RMSNormalization`` op, else primitive ops with FP32 statistics.

``tensorrt`` without a version means the newest form; ``tensorrt=10.8`` picks the form that release
parses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from vit5_infer import tensorrt_releases
from vit5_infer.errors import Vit5Error
from vit5_infer.tensorrt_releases import (
    ATTENTION_OP,
    RMS_NORMALIZATION_OP,
    parse_tensorrt_version,
    version_text,
)

RUNTIMES = ("ort", "tensorrt")


class TargetError(Vit5Error, ValueError):
    pass


@dataclass(frozen=True)
class ExportTarget:
    runtime: str = "ort"
    #: TensorRT (major, minor) the graph must parse on; None: the newest form
    version: Optional[tuple[int, int]] = None

    @classmethod
    def parse(cls, text: str | ExportTarget | None) -> ExportTarget:
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
            raise TargetError(
                f"unknown export target {text!r}; use ort, tensorrt or tensorrt=MAJOR.MINOR (e.g. tensorrt=10.8)"
            )
        if version is None:
            return cls("tensorrt")
        if not tensorrt_releases.is_supported(version):
            raise TargetError(
                f"TensorRT {version_text(version)} is not supported; vit5-infer builds for TensorRT "
                f"{version_text(tensorrt_releases.oldest())} to {tensorrt_releases.supported_majors()[-1]}.x"
            )
        return cls("tensorrt", version)

    @property
    def is_tensorrt(self) -> bool:
        return self.runtime == "tensorrt"

    def has(self, feature: str) -> bool:
        """Whether the parser of this target has ``feature`` (the newest form when no version is given)."""
        return self.version is None or tensorrt_releases.has(self.version, feature)

    def default_opset(self) -> int:
        return 23 if not self.is_tensorrt or self.has(ATTENTION_OP) else 18

    def allows_opset(self, opset: int) -> bool:
        return not self.is_tensorrt or opset < 23 or self.has(ATTENTION_OP)

    def fused_attention(self, opset: int) -> bool:
        """The opset-23 ``Attention`` op (else MatMul-Softmax-MatMul)."""
        return opset >= 23 and (not self.is_tensorrt or self.has(ATTENTION_OP))

    def fused_rms_norm(self, opset: int) -> bool:
        """The opset-23 ``RMSNormalization`` op (else primitive ops with FP32 statistics)."""
        return opset >= 23 and (not self.is_tensorrt or self.has(RMS_NORMALIZATION_OP))

    def check_version(self) -> str:
        """The TensorRT version whose parser rules an export for this target must pass."""
        if self.version is None:
            # the newest parser: the form `tensorrt` without a version stands for
            return tensorrt_releases.parser_releases()[-1].text
        return version_text(self.version)

    def __str__(self) -> str:
        if not self.is_tensorrt:
            return "ort"
        return "tensorrt" if self.version is None else f"tensorrt={self.version[0]}.{self.version[1]}"
