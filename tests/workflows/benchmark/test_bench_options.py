"""The checks of ``vit5 bench`` reached through its library entry, ``benchmark(BenchOptions, progress)``, with
no subprocess: every refusal is one Vit5Error raised before any work (the real entry point is exercised once
per error class in tests/cli)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import typer

from vit5_infer.errors import BenchError, Vit5Error
from vit5_infer.load_options import LoadOptions
from vit5_infer.workflows.backends import backend_names
from vit5_infer.workflows.benchmark import BenchOptions, BenchSettings, TimingPlan, accuracy_failure, benchmark
from vit5_infer.workflows.benchmark.results import make_result

CASE = "attn_cls_r4"
QUICK = TimingPlan(warmup=0, iters=1)


def no_work(message: str) -> None:
    pytest.fail(f"work started: {message}")


def refused(options: BenchOptions, *fragments: str, before_work: bool = False) -> str:
    """The one-line error ``benchmark`` raises for ``options``, before any report (and, ``before_work``,
    before the first step)."""
    with pytest.raises(Vit5Error) as info:
        benchmark(
            options,
            progress=no_work if before_work else None,
            on_report=lambda report: pytest.fail("a report was made"),
        )
    line = str(info.value)
    assert "\n" not in line
    for fragment in fragments:
        assert fragment in line, line
    return line


@pytest.fixture
def checkpoint(golden_dir, tmp_path) -> Path:
    path = tmp_path / "model.safetensors"
    shutil.copy(golden_dir / f"{CASE}.safetensors", path)
    return path


def _images(folder: Path, count: int = 2) -> Path:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def test_a_missing_graph_or_engine_is_not_found(tmp_path):
    refused(BenchOptions(str(tmp_path / "missing.onnx")), "not found")
    (tmp_path / "gone.engine.json").write_text("{}")
    refused(BenchOptions(str(tmp_path / "gone.engine")), "engine not found")


def test_a_report_never_overwrites_the_config(checkpoint, golden_dir, tmp_path):
    config = tmp_path / "arch.json"
    config.write_text((golden_dir / f"{CASE}.json").read_text())
    before = config.read_bytes()
    settings = BenchSettings(backends=["torch"], load=LoadOptions(config=config))
    refused(BenchOptions(str(checkpoint), settings, json=config), "also an input", before_work=True)
    assert config.read_bytes() == before


def test_no_report_lands_inside_an_input_folder(checkpoint, tmp_path):
    images = _images(tmp_path / "images")
    before = sorted(p.name for p in images.iterdir())
    settings = BenchSettings(backends=["torch"], images=images)
    refused(
        BenchOptions(str(checkpoint), settings, plot=images / "0.png"), "--plot", "an input folder", before_work=True
    )
    assert sorted(p.name for p in images.iterdir()) == before


def test_report_suffixes_are_checked_before_any_work(checkpoint, tmp_path):
    refused(
        BenchOptions(str(checkpoint), BenchSettings(backends=["torch"]), csv=tmp_path / "r.json"),
        "--csv",
        before_work=True,
    )


def test_numbers_out_of_range(checkpoint):
    refused(BenchOptions("vit5-small", BenchSettings(backends=["torch"], batches=[100_000_000])), "GiB")
    refused(BenchOptions(str(checkpoint), BenchSettings(backends=["torch"], threads=-3)), "threads", before_work=True)


@pytest.mark.parametrize("iters, seconds", [(None, float("inf")), (3, float("nan"))])
def test_the_timing_flags_are_checked_where_they_are_combined(iters, seconds):
    with pytest.raises(BenchError, match="--seconds must be > 0 and at most"):
        TimingPlan.from_flags(3, iters, seconds)
    assert TimingPlan.from_flags(3, None, None) == TimingPlan(warmup=3, iters=20, seconds=None)
    assert TimingPlan.from_flags(0, None, 2.0) == TimingPlan(warmup=0, iters=None, seconds=2.0)


def test_an_output_the_network_lacks(golden_dir):
    settings = BenchSettings(outputs=["cls_token"], timing=QUICK)
    refused(BenchOptions(str(golden_dir / "hyena_gap.safetensors"), settings), "no CLS token")


def test_labels_need_images_and_must_name_every_class_folder(digits_dir, tmp_path):
    images = tmp_path / "images"
    for digit, word in [(1, "one"), (2, "two")]:
        (images / word).mkdir(parents=True)
        for first in sorted((digits_dir / "test" / str(digit)).glob("*.png"))[:2]:
            shutil.copy(first, images / word / first.name)
    labels = tmp_path / "classes.json"
    labels.write_text('{"one": 1}')
    source = str(digits_dir / "digits_attn.safetensors")
    refused(BenchOptions(source, BenchSettings(labels=labels)), "give --images DIR too", before_work=True)
    settings = BenchSettings(
        backends=["ort"],
        batches=[2],
        images=images,
        labels=labels,
        timing=QUICK,
        preprocessing={"mean": (0.5,) * 3, "std": (0.25,) * 3},
    )
    with pytest.raises(Vit5Error, match="class folder 'two'.*not in the labels file"):
        benchmark(BenchOptions(source, settings))


def test_a_labels_file_with_a_duplicate_key(checkpoint, tmp_path):
    images = tmp_path / "images"
    _images(images / "a", 1)
    _images(images / "b", 1)
    (tmp_path / "labels.json").write_text('{"a": 0, "b": 1, "a": 2}')
    settings = BenchSettings(backends=["torch"], images=images, labels=tmp_path / "labels.json", timing=QUICK)
    refused(BenchOptions(str(checkpoint), settings), "duplicate key 'a'", before_work=True)


def test_a_given_graph_is_not_quantized_and_nothing_is_printed(golden_dir, digits_dir, tmp_path):
    """``bench model.onnx --precision int8 --calibration DIR`` must not print an fp32 row and pass."""
    import vit5_infer
    from vit5_infer.exporters import export_onnx

    graph = tmp_path / "model.onnx"
    export_onnx(vit5_infer.load_model(golden_dir / f"{CASE}.safetensors"), graph, validate=False)
    settings = BenchSettings(backends=["ort"], precisions=["int8"], calibration=digits_dir / "calibration")
    refused(
        BenchOptions(str(graph), settings),
        "is an fp32 graph and runs at its own precision",
        "--precision int8 --calibration DIR",
        before_work=True,
    )


def test_the_accuracy_failure_names_each_row():
    import numpy as np

    good = make_result("ort", "fp32", 1, "cpu", [1.0], {"logits": np.ones((1, 10))}, {"logits": np.ones((1, 10))})
    bad = make_result("ort", "fp16", 1, "cpu", [1.0], {"logits": np.ones((1, 10))}, {"logits": -np.ones((1, 10))})
    report = type("Report", (), {"failures": [r for r in (good, bad) if not r.passed]})()
    error = accuracy_failure(report)
    assert isinstance(error, BenchError) and str(error).startswith("accuracy outside tolerance: ort[fp16] batch 1")
    assert accuracy_failure(type("Report", (), {"failures": []})()) is None


def test_flag_lists_are_parsed_with_the_registry_s_names():
    from vit5_infer.cli.parsing import parse_int_list, parse_name_list

    with pytest.raises(typer.BadParameter) as info:
        parse_int_list("0,x", "--batch")
    assert info.value.param_hint == "--batch"
    with pytest.raises(typer.BadParameter, match="tpu"):
        parse_name_list("torch,tpu", "--backends", backend_names())
    with pytest.raises(typer.BadParameter, match="empty value in '1,,2'"):
        parse_int_list("1,,2", "--batch")


def test_reports_are_written_after_the_table_and_named(checkpoint, tmp_path):
    events = []
    settings = BenchSettings(backends=["torch"], timing=QUICK)
    options = BenchOptions(str(checkpoint), settings, json=tmp_path / "r.json", csv=tmp_path / "r.csv")
    report = benchmark(options, on_report=lambda r: events.append("table"), on_written=events.append)
    assert events == ["table", tmp_path / "r.json", tmp_path / "r.csv"]
    assert json.loads((tmp_path / "r.json").read_text())["results"][0]["backend"] == "torch"
    assert report.results[0].passed


def test_an_unknown_precision_names_every_precision():
    from vit5_infer.workflows.predict import PredictOptions

    with pytest.raises(BenchError) as bench:
        BenchSettings(precisions=["fp64"]).check()
    assert str(bench.value) == "unknown precision(s) fp64; use fp32, fp16, bf16, int8 or fp8"
    with pytest.raises(Vit5Error) as predict:
        PredictOptions(source="s", images="i", output="o", precision="fp64").check()
    assert str(predict.value) == "unknown precision 'fp64'; use one of fp32, fp16, bf16, int8, fp8"
