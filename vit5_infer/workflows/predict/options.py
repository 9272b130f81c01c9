"""``PredictOptions``: everything ``predict`` takes, as one value, and the checks that need no file."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from vit5_infer.errors import PredictError
from vit5_infer.load_options import LoadOptions
from vit5_infer.vocabulary import LOGITS, OUTPUT_NAMES, PRECISION_NAMES, PathLike, Precision

SCORES = ("softmax", "logits")
#: outputs written as a fixed-size float32 list column in the Parquet files
VECTOR_OUTPUTS = ("pre_logits", "cls_token")
#: outputs too large for a row: written to .npy shards, the row holds the shard's file and row
ARRAY_OUTPUTS = ("patch_tokens", "register_tokens")
DEFAULT_ROWS_PER_FILE = 10_000
_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count``: a contiguous, deterministic slice of the input list."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: Optional[str]) -> Shard:
        """``i/N`` with 0 <= i < N; PredictError otherwise."""
        if text is None:
            return cls()
        match = _SHARD.match(str(text))
        if not match:
            raise PredictError(f"--shard takes i/N (shard i of N, counted from 0), got {text!r}")
        index, count = int(match.group(1)), int(match.group(2))
        if count < 1 or index >= count:
            raise PredictError(f"--shard {text}: i must lie in 0..N-1 and N must be >= 1")
        return cls(index, count)

    def bounds(self, total: int) -> tuple[int, int]:
        """The slice ``[start, end)`` of ``total`` inputs this shard owns (the same on every host)."""
        return self.index * total // self.count, (self.index + 1) * total // self.count

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class PredictOptions:
    source: str
    images: PathLike
    output: PathLike
    backend: Optional[str] = None  # None: ort for presets, checkpoints and ONNX files, trt for engines
    precision: str = "fp32"
    calibration: Optional[PathLike] = None
    load: LoadOptions = field(default_factory=LoadOptions)
    labels: Optional[PathLike] = None
    #: preprocessing fields set by the user (mean, std, crop_ratio): they win over the graph's metadata
    preprocessing: Optional[dict] = None
    outputs: tuple = ()  # extra outputs beside classes/scores (VECTOR_OUTPUTS, ARRAY_OUTPUTS)
    topk: int = 5
    scores: str = "softmax"
    normalize: bool = False
    batch: int = 32
    workers: int = 2
    threads: Optional[int] = None
    rows_per_file: int = DEFAULT_ROWS_PER_FILE
    shard: Shard = Shard()
    overwrite: bool = False
    summary: Optional[PathLike] = None
    ray: bool = False
    ray_address: Optional[str] = None
    #: Ray actors that run the model (each loads one runner) and GPUs per actor
    ray_actors: int = 1
    ray_gpus: float = 0.0

    def check(self) -> None:
        """One-line errors for values that cannot run, before any file is read."""
        if self.precision not in PRECISION_NAMES:
            raise PredictError(f"unknown precision {self.precision!r}; use one of {', '.join(PRECISION_NAMES)}")
        for name, value, low in (
            ("--batch", self.batch, 1),
            ("--topk", self.topk, 1),
            ("--workers", self.workers, 0),
            ("--rows-per-file", self.rows_per_file, 1),
            ("--ray-actors", self.ray_actors, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise PredictError(f"{name} must be an integer >= {low}, got {value!r}")
        if self.threads is not None and self.threads < 1:
            raise PredictError(f"--threads must be >= 1, got {self.threads}")
        if self.scores not in SCORES:
            raise PredictError(f"--scores must be {' or '.join(SCORES)}, got {self.scores!r}")
        bad = [name for name in self.outputs if name not in OUTPUT_NAMES or name == LOGITS]
        if bad:
            choices = ", ".join(n for n in OUTPUT_NAMES if n != LOGITS)
            raise PredictError(
                f"--outputs: unknown output(s) {', '.join(bad)}; choose from {choices} "
                f"(classes and scores come from the logits)"
            )
        if self.normalize and not any(name in VECTOR_OUTPUTS for name in self.outputs):
            raise PredictError(f"--normalize L2-normalizes {' or '.join(VECTOR_OUTPUTS)}: add --outputs pre_logits")
        if self.ray_address is not None and not self.ray:
            raise PredictError("--ray-address names the Ray cluster of --ray: add --ray")
        if self.ray_gpus < 0:
            raise PredictError(f"--ray-gpus must be >= 0, got {self.ray_gpus}")
        if self.calibration is not None and not Precision.parse(self.precision).is_quantized:
            raise PredictError(
                "--calibration calibrates int8/fp8 exports: add --precision int8 (or fp8), or leave --calibration out"
            )
        if Path(str(self.output)).name == "":
            raise PredictError("-o/--output must name a folder")

    @property
    def model_outputs(self) -> tuple:
        """What the runner must give: logits, then the asked outputs in their vocabulary order."""
        return (LOGITS,) + tuple(n for n in OUTPUT_NAMES if n in self.outputs and n != LOGITS)
