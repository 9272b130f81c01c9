"""One benchmark row: latency, throughput, GFLOP/s and the accuracy verdict against the PyTorch reference,
for every output compared (logits and backbone features)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Optional, Union

import numpy as np

from vit5_infer.metrics import compare_outputs, outputs_within_tolerance
from vit5_infer.vocabulary import LOGITS

from .timing import END_TO_END, TIMING_FIGURES, latency_stats

ACCURACY_KEYS = ("max_abs_err", "mean_abs_err", "cosine", "top1_agreement", "top5_agreement")
#: per-output figures of ``BenchResult.outputs`` (top-1/top-5 too for logits)
OUTPUT_KEYS = ("cosine", "min_vector_cosine", "relative_error", "max_abs_err", "mean_abs_err")

Outputs = Union[np.ndarray, Mapping[str, np.ndarray]]


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
    failure: Optional[str] = None  # why the accuracy misses the precision's tolerance (naming the output)
    #: every compared output by name: OUTPUT_KEYS (and top-1/top-5 for logits), passed, reason
    outputs: dict = field(default_factory=dict)
    #: accuracy on a labelled image folder: {"images": n, "top1": x, "top5": y}, when there is one
    dataset: Optional[dict] = None
    #: what latency_ms measures: a key of timing.TIMING_FIGURES (end_to_end, gpu_compute, host_latency)
    timing: str = END_TO_END
    #: whether the engine ran as a replayed CUDA graph of its enqueue (bench --cuda-graph)
    cuda_graph: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def make_result(
    backend: str,
    precision: str,
    batch: int,
    device: str,
    samples_ms: Sequence[float],
    reference: Outputs,
    candidate: Outputs,
    flops_per_image: Optional[int] = None,
    peak_memory_bytes: Optional[int] = None,
    timing: str = END_TO_END,
    cuda_graph: bool = False,
) -> BenchResult:
    """Latency, throughput, accuracy and pass/fail of one backend at one batch size.

    ``reference`` and ``candidate``: logits arrays, or {output name: array} (every output of
    ``reference`` is compared).  ``accuracy`` holds the logits' figures when logits are compared,
    else the worst over the outputs (smallest cosine, largest errors; no top-1/top-5).
    """
    if timing not in TIMING_FIGURES:
        raise ValueError(f"unknown timing figure {timing!r}; one of {', '.join(TIMING_FIGURES)}")
    latency = latency_stats(samples_ms)
    reference = reference if isinstance(reference, Mapping) else {LOGITS: reference}
    candidate = candidate if isinstance(candidate, Mapping) else {LOGITS: candidate}
    comparisons = compare_outputs(reference, candidate)
    passed, reason = outputs_within_tolerance(comparisons, precision)
    outputs = {}
    for name, comparison in comparisons.items():
        ok, why = comparison.within_tolerance(precision)
        figures = {k: getattr(comparison, k) for k in OUTPUT_KEYS}
        if comparison.logits is not None:
            figures.update(top1_agreement=comparison.top1_agreement, top5_agreement=comparison.top5_agreement)
        outputs[name] = {**figures, "passed": ok, "reason": why}
    if LOGITS in comparisons:
        accuracy = {k: getattr(comparisons[LOGITS].logits, k) for k in ACCURACY_KEYS}
    else:
        values = list(comparisons.values())
        accuracy = {
            "max_abs_err": max(c.max_abs_err for c in values),
            "mean_abs_err": max(c.mean_abs_err for c in values),
            "cosine": min(c.cosine for c in values),
            "top1_agreement": None,
            "top5_agreement": None,
        }
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
        outputs=outputs,
        timing=timing,
        cuda_graph=cuda_graph,
    )
