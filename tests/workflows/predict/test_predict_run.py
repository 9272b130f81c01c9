"""vit5 predict end to end through the library entry, on the smallest golden network's graph: rows,
columns and .npy references against the runner's own outputs, bad images, resume, shards, fingerprints."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from predict_data import read_rows, write_images

from vit5_infer.errors import PredictError
from vit5_infer.workflows.predict import PredictOptions, Shard, predict
from vit5_infer.workflows.predict.dataset import METADATA_NAME


def _options(graph, images, out, **kw):
    kw.setdefault("workers", 0)
    return PredictOptions(source=str(graph), images=images, output=out, batch=4, rows_per_file=5, **kw)


def test_rows_match_the_runner_and_bad_images_are_rows(predict_graph, tmp_path):
    from vit5_infer.engines.registry import make_runner
    from vit5_infer.preprocessing import load_images

    images = tmp_path / "images"
    files = write_images(images, 9, bad=("bad.png",))
    out = tmp_path / "out"
    summary = predict(
        _options(
            predict_graph,
            images,
            out,
            outputs=("pre_logits", "patch_tokens", "register_tokens"),
            normalize=True,
            topk=3,
            workers=2,
            summary=tmp_path / "s.json",
        )
    )
    assert (summary.rows, summary.errors, summary.skipped, summary.parts) == (10, 1, 0, 2)
    assert json.loads((tmp_path / "s.json").read_text())["rows"] == 10
    rows = read_rows(out)
    assert [r["index"] for r in rows] == list(range(10))
    assert rows[-1]["path"].endswith("bad.png") and rows[-1]["classes"] is None and rows[-1]["patch_tokens"] is None
    assert "cannot decode" in rows[-1]["error"]
    # the same images through the same runner, by hand
    from vit5_infer.preprocessing import Preprocessing

    pre = Preprocessing(image_size=32)
    x = load_images(files, pre, len(files))
    with make_runner("ort", predict_graph) as runner:
        expected = runner.run(x)
    order = np.argsort(-expected["logits"], axis=1, kind="stable")[:, :3]
    assert [r["classes"] for r in rows[:9]] == order.tolist()
    probs = np.exp(expected["logits"] - expected["logits"].max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    np.testing.assert_allclose([r["scores"] for r in rows[:9]], np.take_along_axis(probs, order, 1), atol=1e-6)
    feats = expected["pre_logits"] / np.linalg.norm(expected["pre_logits"], axis=1, keepdims=True)
    np.testing.assert_allclose([r["pre_logits"] for r in rows[:9]], feats, atol=1e-5)
    for name in ("patch_tokens", "register_tokens"):
        for i, row in enumerate(rows[:9]):
            ref = row[name]
            array = np.load(out / "_arrays" / ref["file"], mmap_mode="r")
            np.testing.assert_allclose(array[ref["row"]], expected[name][i], atol=1e-5)
    meta = json.loads((out / METADATA_NAME).read_text())
    assert meta["fingerprint"]["onnx_sha256"] and meta["fingerprint"]["backend"] == "ort"
    assert meta["inputs"]["count"] == 10 and meta["toolkit"].startswith("vit5-infer ")
    import pyarrow.parquet as pq

    for part in out.glob("part-*.parquet"):
        assert json.loads(pq.read_schema(part).metadata[b"vit5_predict"]) == meta


def test_resume_shards_and_fingerprints(predict_graph, tmp_path):
    images = tmp_path / "images"
    write_images(images, 13)
    full = tmp_path / "full"
    predict(_options(predict_graph, images, full))
    reference = read_rows(full)

    # two shards into one dataset give the same rows
    sharded = tmp_path / "sharded"
    a = predict(_options(predict_graph, images, sharded, shard=Shard.parse("1/2")))
    b = predict(_options(predict_graph, images, sharded, shard=Shard.parse("0/2")))
    assert (a.rows, b.rows) == (7, 6)
    assert _without_names(read_rows(sharded)) == _without_names(reference)

    # a lost part is redone on resume, and only it
    lost = sorted(full.glob("part-*.parquet"))[1]
    lost.unlink()
    again = predict(_options(predict_graph, images, full))
    assert (again.rows, again.skipped) == (5, 8)
    assert _without_names(read_rows(full)) == _without_names(reference)
    assert predict(_options(predict_graph, images, full)).rows == 0

    # another model, options or input list: refused unless --overwrite
    with pytest.raises(PredictError, match="another model or input list.*--overwrite"):
        predict(_options(predict_graph, images, full, topk=2))
    write_images(images / "more", 1)
    with pytest.raises(PredictError, match="inputs.sha256"):
        predict(_options(predict_graph, images, full))
    done = predict(_options(predict_graph, images, full, topk=2, overwrite=True))
    assert done.rows == 14 and len(read_rows(full)[0]["classes"]) == 2


def test_shards_running_at_the_same_time_fill_one_dataset(predict_graph, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    images = tmp_path / "images"
    write_images(images, 17)
    predict(_options(predict_graph, images, tmp_path / "one"))
    with ThreadPoolExecutor(3) as pool:
        runs = [
            pool.submit(predict, _options(predict_graph, images, tmp_path / "many", shard=Shard(i, 3)))
            for i in range(3)
        ]
        assert sum(run.result().rows for run in runs) == 17
    assert _without_names(read_rows(tmp_path / "many")) == _without_names(read_rows(tmp_path / "one"))


def test_labels_and_a_folder_that_is_not_a_dataset(predict_graph, tmp_path):
    images = tmp_path / "images"
    for name in ("cat", "dog"):
        write_images(images / name, 2, seed=len(name))
    labels = tmp_path / "labels.json"
    labels.write_text('{"cat": 3, "dog": 7}')
    summary = predict(_options(predict_graph, images, tmp_path / "out", labels=labels))
    assert [r["label"] for r in read_rows(tmp_path / "out")] == [3, 3, 7, 7]
    assert summary.labelled == 4 and 0.0 <= summary.top1 <= summary.top5 <= 1.0
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(PredictError, match="not a dataset"):
        predict(_options(predict_graph, images, other))
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]


def test_a_checkpoint_is_exported_and_fingerprinted_by_its_weights(predict_graph, golden_dir, tmp_path):
    from predict_data import CASE

    images = tmp_path / "images"
    write_images(images, 5)
    predict(_options(predict_graph, images, tmp_path / "graph"))
    summary = predict(_options(golden_dir / f"{CASE}.safetensors", images, tmp_path / "checkpoint"))
    assert summary.rows == 5
    from_graph, from_checkpoint = read_rows(tmp_path / "graph"), read_rows(tmp_path / "checkpoint")
    assert [r["classes"] for r in from_checkpoint] == [r["classes"] for r in from_graph]
    np.testing.assert_allclose([r["scores"] for r in from_checkpoint], [r["scores"] for r in from_graph], atol=1e-5)
    fingerprint = json.loads((tmp_path / "checkpoint" / METADATA_NAME).read_text())["fingerprint"]
    from vit5_infer.workflows.predict.model import file_sha256

    assert fingerprint["weights_sha256"] == file_sha256(golden_dir / f"{CASE}.safetensors")
    assert fingerprint["precision"] == "fp32" and fingerprint["source"].startswith("checkpoint ")


def _without_names(rows):
    """Rows without the .npy file names (random per part)."""
    return [{k: v for k, v in r.items() if k not in ("patch_tokens", "register_tokens")} for r in rows]


@pytest.fixture(autouse=True)
def _no_leftovers(tmp_path):
    yield
    staged = [p for p in tmp_path.rglob(".*.tmp")]
    assert not staged, staged
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_the_ray_actor_pads_a_short_batch_and_keeps_its_rows(predict_graph, tmp_path):
    """``Vit5Predictor`` called as Ray Data would call it (no Ray needed to construct it): a batch shorter
    than the spec's gives its own rows only, equal to the runner's outputs on those images."""
    from vit5_infer.engines.registry import make_runner
    from vit5_infer.preprocessing import Preprocessing, load_images
    from vit5_infer.workflows.predict.model import RunnerSpec
    from vit5_infer.workflows.predict.ray_pipeline import Vit5Predictor

    files = write_images(tmp_path / "images", 3)
    x = load_images(files, Preprocessing(image_size=32), len(files))
    actor = Vit5Predictor(RunnerSpec("ort", "fp32", str(predict_graph), batch=5), topk=2, scores="logits")
    try:
        index = np.arange(3)
        rows = actor({"index": index, "path": files, "error": [""] * 3, "decode_s": np.zeros(3), "pixels": x})
    finally:
        actor.runner.release()
        actor.runner = None
    with make_runner("ort", predict_graph) as runner:
        logits = runner.run(x)["logits"]
    assert rows["classes"].shape == (3, 2) and rows["compute_s"].shape == (3,)
    assert rows["classes"].tolist() == np.argsort(-logits, axis=1, kind="stable")[:, :2].tolist()
    np.testing.assert_allclose(rows["scores"], np.sort(logits, axis=1)[:, ::-1][:, :2], rtol=1e-5)


def test_a_torch_backend_writes_the_asked_outputs(predict_graph, golden_dir, tmp_path):
    from predict_data import CASE

    images = tmp_path / "images"
    write_images(images, 3)
    asked = dict(outputs=("pre_logits", "patch_tokens"), normalize=True)
    predict(_options(predict_graph, images, tmp_path / "graph", **asked))
    summary = predict(
        _options(golden_dir / f"{CASE}.safetensors", images, tmp_path / "torch", backend="torch", **asked)
    )
    assert (summary.rows, summary.errors, summary.backend) == (3, 0, "torch")
    from_graph, from_torch = read_rows(tmp_path / "graph"), read_rows(tmp_path / "torch")
    assert [r["classes"] for r in from_torch] == [r["classes"] for r in from_graph]
    np.testing.assert_allclose([r["pre_logits"] for r in from_torch], [r["pre_logits"] for r in from_graph], atol=1e-4)
    tokens = [
        np.load(tmp_path / "torch" / "_arrays" / r["patch_tokens"]["file"])[r["patch_tokens"]["row"]]
        for r in from_torch
    ]
    expected = [
        np.load(tmp_path / "graph" / "_arrays" / r["patch_tokens"]["file"])[r["patch_tokens"]["row"]]
        for r in from_graph
    ]
    np.testing.assert_allclose(tokens, expected, atol=1e-4)
