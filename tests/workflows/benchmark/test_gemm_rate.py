"""The machine's FP32 GEMM rate (workflows.benchmark.gemm_rate): the bar CPU speeds are stated against."""

from __future__ import annotations

import math

import pytest

from vit5_infer.errors import BenchError
from vit5_infer.workflows.benchmark import gemm_rate


class StepClock:
    """Each call of ``run`` takes the next of ``durations`` seconds of fake time."""

    def __init__(self, durations):
        self.now, self.durations, self.calls = 0.0, list(durations), 0

    def __call__(self) -> float:
        return self.now

    def run(self) -> None:
        self.now += self.durations[self.calls]
        self.calls += 1


def test_best_seconds_is_the_fastest_timed_call_after_the_warm_up():
    # the warm-up calls (first two) are the fastest, and must not count
    clock = StepClock([0.001, 0.001, 0.5, 0.2, 0.3])
    assert gemm_rate.best_seconds(clock.run, repeats=3, warmup=2, clock=clock) == pytest.approx(0.2)
    assert clock.calls == 5


def test_the_rate_is_that_of_the_faster_library(monkeypatch):
    size, seconds = 32, [0.5, 0.25]  # PyTorch, then ONNX Runtime

    def fake_best_seconds(run, repeats):
        run()  # the product itself must run
        return seconds.pop(0)

    monkeypatch.setattr(gemm_rate, "best_seconds", fake_best_seconds)
    rate = gemm_rate.matmul_rate_gflops(threads=1, size=size, repeats=1)
    assert rate == pytest.approx(2 * size**3 / 0.25 / 1e9)
    assert seconds == []


def test_a_small_product_measures_a_positive_rate():
    rate = gemm_rate.matmul_rate_gflops(threads=1, size=64, repeats=2)
    assert math.isfinite(rate) and rate > 0


@pytest.mark.parametrize(
    "kwargs, name", [({"threads": 0}, "threads"), ({"size": -1}, "size"), ({"repeats": 1.5}, "repeats")]
)
def test_bad_settings_are_refused_before_any_work(kwargs, name):
    settings = {"threads": 1, "size": 8, "repeats": 1, **kwargs}
    with pytest.raises(BenchError, match=f"^{name} must be a positive integer"):
        gemm_rate.matmul_rate_gflops(**settings)
