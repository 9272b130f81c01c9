"""One benchmark row: latency, throughput, GFLOP/s and the accuracy verdict against the PyTorch reference."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional, Sequence

import numpy as np

from vit5_infer.metrics import compare_logits, within_tolerance

from .timing import latency_stats

ACCURACY_KEYS = ("max_abs_err", "mean_abs_err", "cosine", "top1_agreement", "top5_agreement")


@dataclass(frozen=True)
class BenchResult:
    backend: str
    precision: str
    batch: int
    device: str
    latency_ms: dict
    throughput_per_s: float
    accuracy: dict
    iterations: int
    gflops_per_s: Optional[float] = None
    peak_memory_bytes: Optional[int] = None
    passed: bool = True
    failure: Optional[str] = None  # why the accuracy misses the precision's tolerance

    def to_dict(self) -> dict:
        return asdict(self)


def make_result(
    backend: str,
    precision: str,
    batch: int,
    device: str,
    samples_ms: Sequence[float],
    reference: np.ndarray,
    candidate: np.ndarray,
    flops_per_image: Optional[int] = None,
    peak_memory_bytes: Optional[int] = None,
) -> BenchResult:
    """Latency, throughput, accuracy and pass/fail of one backend at one batch size."""
    latency = latency_stats(samples_ms)
    metrics = compare_logits(reference, candidate)
    passed, reason = within_tolerance(metrics, precision)
    accuracy = {k: getattr(metrics, k) for k in ACCURACY_KEYS}
    seconds = latency["mean"] / 1e3
    throughput = batch / seconds if seconds > 0 else math.inf
    gflops = flops_per_image * batch / seconds / 1e9 if flops_per_image and seconds > 0 else None
    return BenchResult(
        backend=backend,
        precision=precision,
        batch=batch,
        device=device,
        latency_ms=latency,
        throughput_per_s=throughput,
        accuracy=accuracy,
        iterations=len(samples_ms),
        gflops_per_s=gflops,
        peak_memory_bytes=peak_memory_bytes,
        passed=passed,
        failure=None if passed else reason,
    )


