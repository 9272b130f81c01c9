"""The benchmark pipeline's pieces: statistics, timing loop, results and their verdicts, report writers,
preprocessing."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from vit5_infer import preprocessing
from vit5_infer.errors import BenchError, InputError, Vit5Error
from vit5_infer.workflows.benchmark import environment, report, results, timing


def test_latency_stats_match_numpy_percentiles():
    samples = [float(v) for v in range(1, 101)]  # 1..100 ms
    stats = timing.latency_stats(samples)
    assert set(stats) == set(timing.LATENCY_KEYS)
    assert stats["mean"] == pytest.approx(50.5)
    assert stats["p50"] == pytest.approx(50.5)
    assert stats["p90"] == pytest.approx(90.1)
    assert stats["p99"] == pytest.approx(99.01)
    assert (stats["min"], stats["max"]) == (1.0, 100.0)
    assert stats["std"] == pytest.approx(np.std(samples))


def test_latency_stats_needs_samples():
    with pytest.raises(BenchError):
        timing.latency_stats([])


class FakeClock:
    """Each infer call takes ``step`` seconds of fake time."""

    def __init__(self, step: float):
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        return self.now

    def infer(self, x):
        self.now += self.step
        return x * 2


def test_time_runner_fixed_iterations_after_warmup():
    clock = FakeClock(0.004)
    calls = []
    samples, out = timing.time_runner(
        clock.infer,
        np.ones((1, 3)),
        timing.TimingPlan(warmup=3, iters=7),
        clock=clock,
        progress=lambda phase, done, total: calls.append((phase, done, total)),
    )
    assert len(samples) == 7
    assert samples == pytest.approx([4.0] * 7)
    assert np.array_equal(out, np.full((1, 3), 2.0))
    assert calls[:3] == [("warmup", 1, 3), ("warmup", 2, 3), ("warmup", 3, 3)]
    assert calls[-1] == ("timed", 7, 7)


def test_time_runner_time_budget_stops_early():
    clock = FakeClock(0.1)
    samples, _ = timing.time_runner(
        clock.infer, np.zeros(1), timing.TimingPlan(warmup=0, iters=None, seconds=0.45), clock=clock
    )
    assert len(samples) == 5  # 0.1 s each: the fifth crosses 0.45 s
    samples, _ = timing.time_runner(
        clock.infer, np.zeros(1), timing.TimingPlan(warmup=0, iters=2, seconds=10.0), clock=clock
    )
    assert len(samples) == 2  # whichever limit comes first


def test_time_runner_resolves_the_cuda_wait_once_outside_the_loop(monkeypatch):
    """A cuda runner waits for the GPU after every call; whether torch has CUDA is asked once, not inside
    each timed iteration (torch's CUDA here is a stand-in: this proves the call pattern, not a GPU wait)."""
    import torch

    asked, waits = [], []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: asked.append(1) or True)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: waits.append(1))
    clock = FakeClock(0.001)
    samples, _ = timing.time_runner(
        clock.infer, np.zeros(1), timing.TimingPlan(warmup=2, iters=5), device="cuda", clock=clock
    )
    assert len(samples) == 5
    assert len(waits) == 7  # after every warm-up and timed call
    assert len(asked) == 1


@pytest.mark.parametrize("kwargs", [{"warmup": -1}, {"iters": 0}, {"iters": None, "seconds": None}, {"seconds": 0.0}])
def test_timing_plan_rejects_bad_values(kwargs):
    with pytest.raises(BenchError):
        timing.TimingPlan(**kwargs)


def _result(backend="ort", batch=8, precision="fp32", cand_noise=0.0):
    rng = np.random.default_rng(batch)
    ref = rng.normal(size=(batch, 10))
    return results.make_result(
        backend,
        precision,
        batch,
        "cpu",
        [10.0, 12.0, 14.0],
        ref,
        ref + cand_noise,
        flops_per_image=2_000_000_000,
        peak_memory_bytes=3 * 2**20,
    )


def test_make_result_throughput_flops_and_verdict():
    r = _result()
    assert r.latency_ms["mean"] == pytest.approx(12.0)
    assert r.throughput_per_s == pytest.approx(8 / 0.012)
    assert r.gflops_per_s == pytest.approx(2.0 * 8 / 0.012)
    assert r.passed and r.failure is None
    assert set(r.accuracy) == set(results.ACCURACY_KEYS)
    assert r.accuracy["max_abs_err"] == 0.0 and r.accuracy["cosine"] == pytest.approx(1.0)


def test_make_result_applies_the_precision_tolerance():
    # A uniform shift of 0.001 keeps the cosine above FP32's bound but misses its max-abs bound; FP16 has none.
    shifted = _result(cand_noise=0.001)
    assert not shifted.passed and "max abs" in shifted.failure
    assert _result(precision="fp16", cand_noise=0.01).passed
    assert not _result(precision="fp16", cand_noise=5.0).passed


def test_report_json_shape(tmp_path):
    rows = [_result("torch", 1), _result("ort", 8)]
    document = report.report_dict({"name": "m"}, {"cpu": "x"}, rows)
    path = tmp_path / "r.json"
    report.write_json(document, path)
    data = json.loads(path.read_text())
    assert list(data) == ["model", "environment", "timings", "results"]
    assert data["timings"] == {"end_to_end": timing.TIMING_FIGURES["end_to_end"]}
    row = data["results"][1]
    assert (row["backend"], row["precision"], row["batch"]) == ("ort", "fp32", 8)
    assert (row["timing"], row["cuda_graph"]) == ("end_to_end", False)
    assert set(row["latency_ms"]) == set(timing.LATENCY_KEYS)
    assert set(row["accuracy"]) == set(results.ACCURACY_KEYS)
    assert row["throughput_per_s"] > 0


def test_csv_has_one_row_per_result(tmp_path):
    path = tmp_path / "r.csv"
    report.write_csv([_result("torch", 1), _result("ort", 8)], path)
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert [r["backend"] for r in rows] == ["torch", "ort"]
    assert float(rows[1]["latency_mean_ms"]) == pytest.approx(12.0)
    assert rows[0]["passed"] == "True"


def test_markdown_table_is_rectangular():
    text = report.format_markdown([_result("torch", 1), _result("ort", 8, cand_noise=1.0)])
    lines = text.strip().splitlines()
    assert len(lines) == 4
    assert len({line.count("|") for line in lines}) == 1
    assert "FAIL" in lines[3] and "yes" in lines[2]


def test_plot_without_matplotlib_is_a_clear_error(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(BenchError, match="matplotlib"):
        report.plot_latency([_result()], tmp_path / "p.png")


def test_plot_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "p.png"
    report.plot_latency([_result("torch", 1), _result("ort", 1), _result("ort", 8)], path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_environment_records_versions():
    env = environment.capture_environment()
    for key in ("cpu", "cpu_count", "python", "torch", "onnxruntime", "tensorrt", "driver", "cuda_available"):
        assert key in env
    import torch

    assert env["torch"] == torch.__version__


def test_preprocessing_defaults_follow_spec():
    pre = preprocessing.Preprocessing.from_metadata({}, 224)
    assert (pre.image_size, pre.resize_to, pre.interpolation) == (224, 224, "bicubic")
    assert pre.mean == (0.485, 0.456, 0.406) and pre.std == (0.229, 0.224, 0.225)
    pre = preprocessing.Preprocessing.from_metadata({"preprocessing": {"image_size": 32, "crop_ratio": 0.875}}, 224)
    assert (pre.image_size, pre.resize_to) == (32, 36)


def test_images_without_pillow_is_a_clear_error(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pil(name, *args, **kwargs):
        if name == "PIL" or name.startswith("PIL."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pil)
    with pytest.raises(Vit5Error, match="Pillow"):
        preprocessing.load_images(tmp_path, preprocessing.Preprocessing(), 1)


def test_images_folder_errors(tmp_path):
    with pytest.raises(InputError, match="not a directory"):
        preprocessing.list_images(tmp_path / "missing")
    with pytest.raises(InputError, match="no image files"):
        preprocessing.list_images(tmp_path)


def test_preprocess_image_resize_crop_normalize():
    Image = pytest.importorskip("PIL.Image")
    # 40x20 image: left half red, right half blue; shorter side -> 16, so 32x16, center crop 16x16
    arr = np.zeros((20, 40, 3), dtype=np.uint8)
    arr[:, :20, 0] = 255
    arr[:, 20:, 2] = 255
    pre = preprocessing.Preprocessing(image_size=16)
    x = preprocessing.preprocess_image(Image.fromarray(arr), pre)
    assert x.shape == (3, 16, 16) and x.dtype == np.float32
    # far left column of the crop is red, far right blue (normalized)
    assert x[0, 8, 0] == pytest.approx((1 - 0.485) / 0.229, abs=0.05)
    assert x[2, 8, -1] == pytest.approx((1 - 0.406) / 0.225, abs=0.05)


def test_report_json_writes_null_for_non_finite_numbers(tmp_path):
    bad = _result("ort", 2, cand_noise=float("nan"))
    assert not bad.passed and "NaN" in bad.failure
    path = tmp_path / "r.json"
    report.write_json(report.report_dict({"name": "m"}, {}, [bad]), path)
    text = path.read_text()

    def reject(token):
        raise AssertionError(f"non-JSON token {token} in the report")

    assert json.loads(text, parse_constant=reject)["results"][0]["accuracy"]["cosine"] is None


# ---- what a given ONNX file or engine allows --------------------------------------------
def test_static_batch_graph_runs_only_at_its_batch():
    from vit5_infer.workflows.sources import check_graph_batches

    check_graph_batches("m.onnx", {"batch": 4}, [4])
    check_graph_batches("m.onnx", {"batch": "dynamic"}, [1, 8])
    with pytest.raises(BenchError, match="static batch of 4; run it with --batch 4"):
        check_graph_batches("m.onnx", {"batch": 4}, [1])


def test_graph_layout_from_metadata():
    from vit5_infer.workflows.sources import graph_layout

    assert graph_layout({}) == "nchw"
    assert graph_layout({"preprocessing": {"layout": "nhwc"}}) == "nhwc"
    with pytest.raises(BenchError, match="layout"):
        graph_layout({"preprocessing": {"layout": "chwn"}})


def test_engine_backends_run_the_engine_itself(tmp_path):
    from vit5_infer.workflows.benchmark.run import engine_backends

    with pytest.raises(BenchError, match="engine not found"):
        engine_backends(tmp_path / "gone.engine", None, ["torch", "ort"])
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"serialized")
    assert engine_backends(engine, None, ["torch", "ort"]) == ["trt"]  # never silently ORT
    notes = []
    assert engine_backends(engine, ["ort", "trt"], ["torch", "ort"], notes.append) == ["ort", "trt"]
    assert notes and "not the engine itself" in notes[0]


def test_non_finite_candidate_outputs_fail_accuracy():
    inf = _result("ort", 2, precision="fp16", cand_noise=float("inf"))
    assert not inf.passed and inf.failure


def test_pairs_that_cannot_run_are_named_before_any_work(digits_dir):
    """fp8 on ONNX Runtime alone leaves nothing to run: one error before any export; pairs that cannot run
    beside others that can are warnings."""
    from vit5_infer.workflows.benchmark import BenchSettings, TimingPlan, run_benchmark

    settings = BenchSettings(
        backends=["ort"],
        precisions=["fp8"],
        calibration=digits_dir / "calibration",
        timing=TimingPlan(warmup=0, iters=1),
    )
    with pytest.raises(
        BenchError, match=r"nothing to benchmark: ort \[fp8\] cannot run; FP8 graphs run on TensorRT only"
    ):
        run_benchmark(digits_dir / "digits_attn.safetensors", settings, warn=pytest.fail)
    warned = []
    settings = BenchSettings(
        backends=["torch", "ort"],
        precisions=["fp32", "fp8"],
        calibration=digits_dir / "calibration",
        timing=TimingPlan(warmup=0, iters=1),
    )
    report = run_benchmark(digits_dir / "digits_attn.safetensors", settings, warn=warned.append)
    assert [(r.backend, r.precision) for r in report.results] == [("torch", "fp32"), ("ort", "fp32")]
    assert warned == [
        "torch [fp8] skipped: PyTorch runs no quantized graph",
        "ort [fp8] skipped: FP8 graphs run on TensorRT only (use -b trt)",
    ]


@pytest.mark.parametrize(
    "kwargs, fragments",
    [
        ({"calibration": "CAL"}, ["--calibration", "--precision int8"]),
        ({"preprocessing": {"mean": [0.5] * 3, "std": None}}, ["--mean", "--images DIR"]),
        ({"preprocessing": {"mean": None, "std": [0.25] * 3}}, ["--std", "--images DIR"]),
    ],
)
def test_flags_nothing_would_read_are_refused(digits_dir, kwargs, fragments):
    """--calibration without int8/fp8, --mean/--std without images to preprocess: said, not ignored."""
    from vit5_infer.workflows.benchmark import BenchSettings

    kwargs = {k: digits_dir / "calibration" if v == "CAL" else v for k, v in kwargs.items()}
    with pytest.raises(BenchError) as caught:
        BenchSettings(backends=["ort"], **kwargs).check()
    for fragment in fragments:
        assert fragment in str(caught.value)


@pytest.fixture(scope="module")
def fp32_graph(golden_dir, tmp_path_factory):
    import vit5_infer
    from vit5_infer.exporters import export_onnx

    path = tmp_path_factory.mktemp("graph") / "m.onnx"
    export_onnx(vit5_infer.load_model(golden_dir / "attn_cls_r4.safetensors"), path, validate=False)
    return path


@pytest.mark.parametrize(
    "kwargs, fragments",
    [
        (
            {"precisions": ["int8"]},
            ["m.onnx is an fp32 graph", "its own precision", "--precision int8", "--calibration"],
        ),
        ({"precisions": ["fp32", "int8"], "calibration": "CAL"}, ["m.onnx is an fp32 graph", "--precision int8"]),
        ({"calibration": "CAL", "precisions": ["fp32", "fp8"], "backends": ["trt"]}, ["fp8"]),
    ],
)
def test_a_given_graph_is_not_quantized_by_bench(fp32_graph, digits_dir, kwargs, fragments):
    """An ONNX file runs at its own precision: asking it for int8 is refused, never answered with an fp32 row."""
    from vit5_infer.workflows.benchmark import BenchSettings, TimingPlan, run_benchmark

    kwargs = {k: digits_dir / "calibration" if v == "CAL" else v for k, v in kwargs.items()}
    settings = BenchSettings(**{"backends": ["ort"], **kwargs}, timing=TimingPlan(warmup=0, iters=1))
    with pytest.raises(BenchError) as caught:
        run_benchmark(fp32_graph, settings, progress=lambda message: pytest.fail(f"work started: {message}"))
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_calibration_with_a_given_graph_is_refused(fp32_graph, digits_dir):
    from vit5_infer.workflows.benchmark import BenchSettings, run_benchmark

    settings = BenchSettings(backends=["ort"], precisions=["fp32"], calibration=digits_dir / "calibration")
    with pytest.raises(BenchError, match="--calibration"):
        run_benchmark(fp32_graph, settings)
