"""Timing a runner: warm-up, a timed loop (fixed count and/or time budget), latency statistics."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from vit5_infer.errors import BenchError

LATENCY_KEYS = ("mean", "p50", "p90", "p99", "min", "max", "std")

#: What a row's latency measures ("timing" in the bench JSON and CSV): name -> what is inside the figure.
TIMING_FIGURES = {
    "end_to_end": "one Runner.run call on host arrays, host wall clock: copies, synchronization and Python included",
    "gpu_compute": "the TensorRT enqueue alone between CUDA events, input and output resident on the GPU, the next "
    "query enqueued before the host waits (trtexec's GPU Compute Time)",
    "host_latency": "the sum of the H2D copy from pinned host memory, the enqueue and the D2H copies, each between "
    "its own CUDA events (trtexec's Latency)",
}
END_TO_END, GPU_COMPUTE, HOST_LATENCY = TIMING_FIGURES


def latency_stats(samples_ms: Sequence[float]) -> dict:
    """Summary of per-batch latencies in milliseconds (percentiles by linear interpolation)."""
    if len(samples_ms) == 0:
        raise BenchError("no timed iterations: raise --iters or --seconds")
    a = np.asarray(samples_ms, dtype=np.float64)
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {
        "mean": float(a.mean()),
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "min": float(a.min()),
        "max": float(a.max()),
        # population std: the spread of what was measured, not an estimate for unseen runs
        "std": float(a.std()),
    }


def _no_wait() -> None:
    pass


def synchronizer(device: str) -> Callable[[], None]:
    """What waits for queued GPU work on ``device`` (``Runner.infer`` already returns host data, this guards
    async runners), resolved once: the timed loop calls it every iteration, inside the measured time."""
    if device != "cuda":
        return _no_wait
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return _no_wait
    return torch.cuda.synchronize if torch.cuda.is_available() else _no_wait


#: The longest time budget per backend and batch: past it (or an infinite one) a run never ends.
MAX_SECONDS = 86400.0


#: timed iterations of ``vit5 bench`` when neither --iters nor --seconds is given
DEFAULT_ITERS = 20


@dataclass
class TimingPlan:
    warmup: int = 5
    iters: Optional[int] = 50  # None: as many as fit in ``seconds``
    seconds: Optional[float] = None  # None: exactly ``iters``

    def __post_init__(self):
        if self.warmup < 0:
            raise BenchError(f"--warmup must be >= 0, got {self.warmup}")
        if self.iters is None and self.seconds is None:
            raise BenchError("give --iters or --seconds")
        if self.iters is not None and self.iters < 1:
            raise BenchError(f"--iters must be >= 1, got {self.iters}")
        if self.seconds is not None and not 0 < self.seconds <= MAX_SECONDS:
            raise BenchError(f"--seconds must be > 0 and at most {MAX_SECONDS:g} (a day), got {self.seconds}")

    @classmethod
    def from_flags(cls, warmup: int, iters: Optional[int], seconds: Optional[float]) -> TimingPlan:
        """``--warmup/--iters/--seconds``: 20 timed iterations when neither bound is given."""
        return cls(
            warmup=warmup, iters=iters if iters is not None or seconds is not None else DEFAULT_ITERS, seconds=seconds
        )

    @property
    def total(self) -> Optional[int]:
        """Expected number of timed iterations, when known (for progress bars)."""
        return self.iters


ProgressFn = Callable[[str, int, Optional[int]], None]  # (phase "warmup"/"timed", done, total)


def _timed_loop(
    step: Callable[[], float], plan: TimingPlan, progress: Optional[ProgressFn], clock: Callable[[], float]
) -> list[float]:
    """Warm up, then collect ``step()`` (one sample in ms) until ``plan.iters`` samples or ``plan.seconds`` of
    host time, whichever comes first (at least one sample always)."""
    for i in range(plan.warmup):
        step()
        if progress:
            progress("warmup", i + 1, plan.warmup)
    samples: list[float] = []
    started = clock()
    while True:
        samples.append(step())
        if progress:
            progress("timed", len(samples), plan.iters)
        if plan.iters is not None and len(samples) >= plan.iters:
            break
        if plan.seconds is not None and clock() - started >= plan.seconds:
            break
    return samples


def time_runner(
    infer: Callable[[np.ndarray], Any],
    inputs: np.ndarray,
    plan: TimingPlan,
    device: str = "cpu",
    progress: Optional[ProgressFn] = None,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[list[float], Any]:
    """Warm up, then time ``infer(inputs)`` once per iteration (``Runner.infer``, or ``Runner.run``
    for every output by name): the ``end_to_end`` figure.

    Returns (latencies in ms, the result of the last call: an array, or a dict of them as is).  The loop stops
    after ``plan.iters`` iterations, or once ``plan.seconds`` of timed work have passed, whichever comes first (at least
    one timed iteration always runs).
    """
    last: list = [None]
    synchronize = synchronizer(device)

    def step() -> float:
        t0 = clock()
        last[0] = infer(inputs)
        synchronize()
        return (clock() - t0) * 1e3

    samples = _timed_loop(step, plan, progress, clock)
    out = last[0]
    return samples, out if isinstance(out, dict) else np.asarray(out)


def time_measured(
    measure: Callable[[], float],
    plan: TimingPlan,
    progress: Optional[ProgressFn] = None,
    clock: Callable[[], float] = time.perf_counter,
) -> list[float]:
    """Like ``time_runner``, but each sample is what ``measure()`` returns: milliseconds the device timed itself
    (between CUDA events: ``gpu_compute`` and ``host_latency``), not host wall clock.  ``plan.seconds`` still
    budgets host time."""
    return _timed_loop(lambda: float(measure()), plan, progress, clock)
