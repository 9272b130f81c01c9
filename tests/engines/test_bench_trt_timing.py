"""`vit5 bench -b trt` measured as trtexec measures: which rows and labels appear, what each figure spans, and
the --cuda-graph checks.  The TensorRT runner runs through Polygraphy's real code with the stand-ins of
trt_standins.py, whose "GPU" takes 1 ms per copy and 5 ms per engine run on a virtual clock: the figures below
prove the bookkeeping (what each one includes), never a GPU timing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from trt_standins import FakeEngine, engine_file, install

from vit5_infer.engines.tensorrt_runner import TensorRTRunner
from vit5_infer.errors import BenchError
from vit5_infer.workflows.benchmark import report, timing
from vit5_infer.workflows.benchmark.run import BackendPlan, BenchSettings, check_cuda_graph, run_backend
from vit5_infer.workflows.benchmark.timing import TIMING_FIGURES, TimingPlan, time_measured

from cli_runner import run_vit5


class Clock:
    """Host clock advancing 0.1 s per reading."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        self.now += 0.1
        return self.now


def test_time_measured_keeps_what_the_device_measured():
    values = iter(range(1, 100))
    samples = time_measured(lambda: next(values), TimingPlan(warmup=2, iters=3))
    assert samples == [3.0, 4.0, 5.0]  # two warm-up samples dropped; host time plays no part
    budget = time_measured(lambda: 1.0, TimingPlan(warmup=0, iters=None, seconds=0.25), clock=Clock())
    assert len(budget) == 3  # --seconds (0.25 s of host time, 0.1 s per sample here) still budgets it


def _pixels(batch):
    return np.random.default_rng(batch).standard_normal((batch, 3, 4, 4)).astype(np.float32)


def _reference(x, profile):
    return {"logits": np.stack([x.reshape(len(x), -1).mean(axis=1), np.full(len(x), profile, np.float32)], axis=1)}


@pytest.mark.parametrize("cuda_graph", [False, True])
def test_trt_rows_are_gpu_compute_and_host_latency(monkeypatch, tmp_path, cuda_graph):
    cudart = install(monkeypatch, "11.1.0", copy_ms=1.0)
    engine = FakeEngine(cudart, profiles=[(1, 1, 1), (2, 4, 8)], compute_ms=5.0)
    path = engine_file(tmp_path, "m", engine)
    inputs = {1: _pixels(1), 4: _pixels(4)}
    references = {1: _reference(inputs[1], 0), 4: _reference(inputs[4], 1)}
    plan = BackendPlan("trt", "fp32", lambda: TensorRTRunner(path))
    shown = []
    rows = run_backend(
        plan,
        inputs,
        references,
        TimingPlan(warmup=1, iters=3),
        cuda_graph=cuda_graph,
        iteration_progress=lambda label, phase, done, total: shown.append(label),
    )
    assert [(r.batch, r.timing, r.cuda_graph) for r in rows] == [
        (1, "gpu_compute", cuda_graph),
        (1, "host_latency", cuda_graph),
        (4, "gpu_compute", cuda_graph),
        (4, "host_latency", cuda_graph),
    ]
    assert all(r.passed for r in rows), [r.failure for r in rows]
    assert [r.latency_ms["mean"] for r in rows] == [5.0, 7.0, 5.0, 7.0]  # copies only in host latency
    assert [r.iterations for r in rows] == [3] * 4
    assert rows[2].throughput_per_s == pytest.approx(4 / 5e-3)
    assert set(shown) == {
        "trt [fp32] batch 1 gpu compute",
        "trt [fp32] batch 1 host latency",
        "trt [fp32] batch 4 gpu compute",
        "trt [fp32] batch 4 host latency",
    }

    document = json.loads(json.dumps(report.report_dict({"name": "m"}, {}, rows, {"cuda_graph": cuda_graph})))
    assert document["timings"] == {
        "gpu_compute": TIMING_FIGURES["gpu_compute"],
        "host_latency": TIMING_FIGURES["host_latency"],
    }
    assert [row["timing"] for row in document["results"]] == ["gpu_compute", "host_latency"] * 2
    headers, table = report.table_rows(rows)
    labels = [line[headers.index("timing")] for line in table]
    suffix = " +graph" if cuda_graph else ""
    assert labels == [f"gpu compute{suffix}", f"host latency{suffix}"] * 2
    assert report.csv_text(rows).splitlines()[1].split(",")[4:6] == ["gpu_compute", str(cuda_graph)]


@pytest.mark.parametrize("cuda_graph", [False, True])
def test_trt_figures_keep_the_enqueue_host_time_out_as_trtexec_does(monkeypatch, tmp_path, cuda_graph):
    """trtexec keeps two queries in flight (sampleInference.cpp: depth 1 + overlap, sync on the older one), so a
    query's compute-start event is reached when the query before it ends, not while execute_async_v3 is still
    working on the host; its "Latency" is H2D + GPU compute + D2H, each timed by its own events.  Here
    execute_async_v3 spends 2 ms of host time before its kernel reaches the stream (the stand-in's virtual
    clocks): with a query waited for before the next is enqueued, GPU compute would read 7 ms and host
    latency 8 ms.  The figures prove the bookkeeping only, never a GPU timing."""
    cudart = install(monkeypatch, "10.8.0", copy_ms=1.0)
    engine = FakeEngine(cudart, profiles=[(1, 4, 8)], compute_ms=5.0, enqueue_host_ms=2.0)
    path = engine_file(tmp_path, "m", engine)
    x = _pixels(4)
    rows = run_backend(
        BackendPlan("trt", "fp32", lambda: TensorRTRunner(path)),
        {4: x},
        {4: _reference(x, 0)},
        TimingPlan(warmup=0, iters=4),
        cuda_graph=cuda_graph,
    )
    assert [(r.timing, r.latency_ms["min"], r.latency_ms["max"]) for r in rows] == [
        ("gpu_compute", 5.0, 5.0),
        ("host_latency", 7.0, 7.0),
    ]
    assert all(r.passed for r in rows), [r.failure for r in rows]


def test_the_next_query_is_enqueued_before_the_host_waits_for_the_last(monkeypatch):
    """The order of calls a series makes: each cudaEventSynchronize (the host waiting for a query's end event)
    comes after the enqueue of the query behind it, with two event pairs taking turns."""
    from polygraphy import cuda

    from vit5_infer.engines.tensorrt_timing import EngineTimer

    cudart = install(monkeypatch, "10.8.0")
    engine = FakeEngine(cudart, profiles=[(1, 4, 8)])
    x = _pixels(2)
    with EngineTimer(engine, "pixel_values", ["logits"], x, x.shape, 0, cuda.wrapper()) as timer:
        context = engine.contexts[0]
        waited = []
        real_synchronize = cudart._cudaEventSynchronize

        def synchronize(event):
            waited.append((event.value, context.enqueues))
            return real_synchronize(event)

        monkeypatch.setattr(cudart, "_cudaEventSynchronize", synchronize)
        before = context.enqueues
        for _ in range(3):
            timer.gpu_compute_ms()
        ends = [timer._slots[slot]["compute"][1] for slot in (0, 1)]
        # the lead query (slot 0) is waited for once query 1 is enqueued, query 1 once query 2 is, ...
        assert waited == [(ends[0], before + 2), (ends[1], before + 3), (ends[0], before + 4), (ends[1], before + 5)]


def test_other_backends_keep_one_end_to_end_row():
    class Runner:
        device = "cpu"

        def run(self, x):
            return {"logits": np.ones((len(x), 2), np.float32)}

        def peak_memory_bytes(self):
            return None

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    x = np.zeros((2, 3, 4, 4), np.float32)
    rows = run_backend(
        BackendPlan("ort", "fp32", Runner),
        {2: x},
        {2: {"logits": np.ones((2, 2), np.float32)}},
        TimingPlan(warmup=0, iters=2),
        cuda_graph=True,
    )
    assert [(r.timing, r.cuda_graph) for r in rows] == [("end_to_end", False)]
    assert report.table_rows(rows)[1][0][3] == "end to end"


def test_cuda_graph_needs_trt():
    with pytest.raises(BenchError) as info:
        BenchSettings(backends=["ort", "torch"], cuda_graph=True).check()
    assert str(info.value) == (
        "--cuda-graph replays a CUDA graph of a TensorRT engine's enqueue; the backends here "
        "(ort, torch) run no engine: add -b trt, or leave --cuda-graph out"
    )
    BenchSettings(backends=["trt", "ort"], cuda_graph=True).check()
    check_cuda_graph(False, ["ort"])
    with pytest.raises(BenchError, match="add -b trt"):
        check_cuda_graph(True, ["torch"])  # the backends available here, when none were named


def test_unknown_timing_figure_is_refused():
    from vit5_infer.workflows.benchmark.results import make_result

    with pytest.raises(ValueError, match="unknown timing figure 'wall'"):
        make_result("ort", "fp32", 1, "cpu", [1.0], np.ones((1, 2)), np.ones((1, 2)), timing="wall")
    assert set(TIMING_FIGURES) == {timing.END_TO_END, timing.GPU_COMPUTE, timing.HOST_LATENCY}


def test_cli_cuda_graph_on_a_non_trt_backend_is_one_line(tmp_path):
    proc = run_vit5("bench", "vit5-small", "-b", "ort", "--cuda-graph", "--json", tmp_path / "r.json", process=True)
    assert proc.returncode in (1, 2), proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --cuda-graph replays"), proc.stderr
    assert not (tmp_path / "r.json").exists()
