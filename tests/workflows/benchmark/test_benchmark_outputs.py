"""The benchmark compares every output (logits and backbone features) of every backend with PyTorch."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from vit5_infer.errors import BenchError
from vit5_infer.files import json_text
from vit5_infer.load_options import LoadOptions
from vit5_infer.workflows.benchmark import BenchSettings, TimingPlan, make_result, report, run_benchmark

CASE = "hybrid_pool_film"  # CLS, registers and a padded Hyena grid


def _outputs(seed: int, noise: float = 0.0, tokens_noise: float = 0.0) -> dict:
    rng = np.random.default_rng(seed)
    out = {"logits": rng.normal(size=(2, 10)), "patch_tokens": 10 * rng.normal(size=(2, 4, 4, 8))}
    out["logits"] = out["logits"] + noise
    out["patch_tokens"] = out["patch_tokens"] + tokens_noise * np.random.default_rng(seed + 1).normal(size=(2, 4, 4, 8))
    return out


def _row(tokens_noise: float = 0.0, precision: str = "fp32", backend: str = "ort"):
    return make_result(backend, precision, 2, "cpu", [5.0, 6.0], _outputs(0), _outputs(0, tokens_noise=tokens_noise))


def test_make_result_compares_every_output():
    r = _row()
    assert list(r.outputs) == ["logits", "patch_tokens"]
    assert r.outputs["patch_tokens"]["cosine"] == pytest.approx(1.0) and r.outputs["patch_tokens"]["passed"] is True
    assert {"relative_error", "min_vector_cosine", "max_abs_err"} <= set(r.outputs["patch_tokens"])
    assert "top1_agreement" not in r.outputs["patch_tokens"] and r.outputs["logits"]["top1_agreement"] == 1.0
    assert r.accuracy["top1_agreement"] == 1.0  # the logits' figures stay at the top level


def test_a_feature_that_misses_fails_the_row_and_is_named():
    r = _row(tokens_noise=0.05)  # logits exact; tokens off by ~5e-2 on values ~10: fails FP32's max-abs bound
    assert not r.passed and r.failure.startswith("patch_tokens: max abs error")
    assert r.outputs["logits"]["passed"] is True and r.outputs["patch_tokens"]["passed"] is False
    assert _row(tokens_noise=0.05, precision="fp16").passed  # cosine ~0.99999 is enough at FP16


def test_features_only_accuracy_is_the_worst_output():
    ref, out = _outputs(0), _outputs(0, tokens_noise=0.01)
    r = make_result(
        "ort", "fp32", 2, "cpu", [1.0], {"patch_tokens": ref["patch_tokens"]}, {"patch_tokens": out["patch_tokens"]}
    )
    assert r.accuracy["top1_agreement"] is None and r.accuracy["cosine"] == r.outputs["patch_tokens"]["cosine"]
    headers, rows = report.table_rows([r])
    assert rows[0][headers.index("top1")] == "-"


def test_reports_carry_per_output_columns(tmp_path):
    rows = [_row(backend="torch"), _row(tokens_noise=0.05)]
    headers, table = report.table_rows(rows)
    assert "cos patch_tokens" in headers and headers[-1] == "ok"
    assert len({len(headers)} | {len(row) for row in table}) == 1
    parsed = list(csv.DictReader(io.StringIO(report.csv_text(rows))))
    assert float(parsed[0]["patch_tokens_cosine"]) == pytest.approx(1.0)
    assert float(parsed[1]["patch_tokens_max_abs_err"]) > 1e-2 and parsed[1]["passed"] == "False"
    document = json.loads(json_text(report.report_dict({}, {}, rows)))
    assert document["results"][1]["outputs"]["patch_tokens"]["passed"] is False


@pytest.fixture(scope="module")
def load(golden_dir):
    return LoadOptions(config=golden_dir / f"{CASE}.json")


def test_checkpoint_bench_with_features(golden_dir, load):
    settings = BenchSettings(
        backends=["torch", "ort"],
        batches=[1, 2],
        outputs=["patch_tokens", "logits", "cls_token"],
        timing=TimingPlan(warmup=0, iters=1),
        load=load,
    )
    bench = run_benchmark(golden_dir / f"{CASE}.safetensors", settings)
    assert bench.settings["outputs"] == ["patch_tokens", "logits", "cls_token"]
    assert {(r.backend, r.batch) for r in bench.results} == {("torch", 1), ("torch", 2), ("ort", 1), ("ort", 2)}
    for r in bench.results:
        assert list(r.outputs) == ["patch_tokens", "logits", "cls_token"] and r.passed, r.failure
        assert r.outputs["patch_tokens"]["cosine"] >= 0.99999
    assert all(r.outputs["cls_token"]["max_abs_err"] == 0.0 for r in bench.results if r.backend == "torch")


def test_onnx_bench_compares_the_graph_outputs(golden_dir, load, tmp_path):
    from vit5_infer.exporters import export_onnx
    from vit5_infer.loading import load_source

    model, source = load_source(golden_dir / f"{CASE}.safetensors", load)
    path = tmp_path / "features.onnx"
    export_onnx(model, path, source=source, outputs="pre_logits,register_tokens", validate=False)
    timing = TimingPlan(warmup=0, iters=1)
    bench = run_benchmark(path, BenchSettings(backends=["torch", "ort"], timing=timing))
    assert [list(r.outputs) for r in bench.results] == [["pre_logits", "register_tokens"]] * 2
    assert all(r.passed for r in bench.results)
    subset = run_benchmark(path, BenchSettings(backends=["ort"], timing=timing, outputs=["register_tokens"]))
    assert list(subset.results[0].outputs) == ["register_tokens"]
    with pytest.raises(BenchError, match="features.onnx has no output logits.*export it with --outputs") as info:
        run_benchmark(path, BenchSettings(backends=["ort"], timing=timing, outputs=["logits", "pre_logits"]))
    assert "\n" not in str(info.value)


def test_asking_a_quantized_graph_for_features_names_a_way_that_exists(golden_dir, tmp_path):
    """'export it with --outputs pre_logits' was the advice, but quantized exports output logits only."""
    import vit5_infer
    from vit5_infer.errors import BenchError
    from vit5_infer.exporters import GraphForm
    from vit5_infer.exporters.quantization import QuantizationSettings, export_quantized, seeded_calibration
    from vit5_infer.workflows.sources import compared_outputs

    model = vit5_infer.load_model(golden_dir / "attn_cls_r4.safetensors")
    graph = tmp_path / "q.onnx"
    with pytest.warns(UserWarning, match="accuracy on real images is unknown"):
        seeded = seeded_calibration(tuple(model.input_shape), count=8, held_out=4)
    export_quantized(model, graph, QuantizationSettings("int8"), seeded, GraphForm(validate=False))
    with pytest.raises(BenchError) as caught:
        compared_outputs(model, ["pre_logits"], graph)
    message = str(caught.value)
    assert "q.onnx has no output pre_logits" in message and "int8 graphs output logits only" in message
    assert "bench the float graph or the checkpoint with --outputs pre_logits" in message
