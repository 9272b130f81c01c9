"""vit5 predict's option and input checks, called as library functions: each bad input is one
PredictError/InputError line before any work (nothing is written)."""

from __future__ import annotations

import numpy as np
import pytest
from predict_data import write_images

from vit5_infer.errors import InputError, PredictError
from vit5_infer.preprocessing import Preprocessing
from vit5_infer.workflows.predict import PredictOptions, Shard, plan
from vit5_infer.workflows.predict.columns import l2_normalize, top_k
from vit5_infer.workflows.predict.dataset import finished_ranges, part_name, pending_parts, remove_stale_staging
from vit5_infer.workflows.predict.decode import decode_chunk
from vit5_infer.workflows.predict.inputs import read_inputs


@pytest.mark.parametrize("text", ["3/2", "2/2", "a/b", "1/0", "-1/2", "1", "1/2/3", ""])
def test_bad_shards_are_refused(text):
    with pytest.raises(PredictError, match="--shard"):
        Shard.parse(text)


def test_shards_split_the_list_without_overlap():
    for total in (0, 1, 7, 100):
        for count in (1, 2, 3, 8):
            covered = []
            for index in range(count):
                start, end = Shard.parse(f"{index}/{count}").bounds(total)
                covered += range(start, end)
            assert covered == list(range(total))


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"batch": 0}, "--batch"),
        ({"topk": 0}, "--topk"),
        ({"workers": -1}, "--workers"),
        ({"rows_per_file": 0}, "--rows-per-file"),
        ({"scores": "probits"}, "--scores"),
        ({"outputs": ("logits",)}, "unknown output"),
        ({"outputs": ("embedding",)}, "unknown output"),
        ({"normalize": True}, "--normalize"),
        ({"ray_address": "auto"}, "add --ray"),
        ({"precision": "fp64"}, "unknown precision"),
        ({"calibration": "cal"}, "--calibration"),
    ],
)
def test_option_checks(tmp_path, changes, fragment):
    options = PredictOptions(source="m.onnx", images=tmp_path, output=tmp_path / "out", **changes)
    with pytest.raises(PredictError, match=fragment):
        options.check()


def _plan(tmp_path, images, output=None, **kw):
    return plan(PredictOptions(source="m.onnx", images=images, output=output or tmp_path / "out", **kw))


def test_bad_inputs_and_outputs_are_refused_before_any_work(tmp_path):
    images = tmp_path / "images"
    write_images(images, 2)
    (tmp_path / "empty").mkdir()
    file_out = tmp_path / "taken.parquet"
    file_out.write_bytes(b"x")
    cases = [
        (dict(images=tmp_path / "missing"), PredictError, "does not exist"),
        (dict(images=tmp_path / "empty"), PredictError, "no image files"),
        (dict(images=images, output=images / "out"), InputError, "overlaps the input"),
        (dict(images=images, output=images), InputError, "overlaps the input"),
        (dict(images=images / "000.png"), PredictError, "not a manifest"),
        (dict(images=images, output=file_out), InputError, "is a file"),
        (dict(images=images, summary=tmp_path / "out" / "s.json"), PredictError, "inside the dataset"),
        (dict(images=images, summary=tmp_path / "s.txt"), InputError, "must end in .json"),
    ]
    for kw, error, fragment in cases:
        with pytest.raises(error, match=fragment):
            _plan(tmp_path, **kw)
    assert not (tmp_path / "out").exists()


def test_manifests(tmp_path):
    images = tmp_path / "images"
    files = write_images(images, 3)
    (tmp_path / "list.txt").write_text("images/000.png\n\n# a comment\n" + str(files[2]) + "\n")
    assert read_inputs(tmp_path / "list.txt").paths == (str(files[0]), str(files[2]))
    (tmp_path / "list.csv").write_text("path,label\nimages/001.png,3\n")
    assert read_inputs(tmp_path / "list.csv").paths == (str(files[1]),)
    (tmp_path / "nopath.csv").write_text("file\nimages/001.png\n")
    with pytest.raises(PredictError, match="no 'path' column"):
        read_inputs(tmp_path / "nopath.csv")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"file": ["images/000.png"]}), tmp_path / "nopath.parquet")
    with pytest.raises(PredictError, match="no 'path' column"):
        read_inputs(tmp_path / "nopath.parquet")
    pq.write_table(pa.table({"path": ["images/002.png"]}), tmp_path / "list.parquet")
    assert read_inputs(tmp_path / "list.parquet").paths == (str(files[2]),)
    (tmp_path / "none.txt").write_text("\n")
    with pytest.raises(PredictError, match="lists no image"):
        read_inputs(tmp_path / "none.txt")
    # the hash follows the list: another order is another input list
    a, b = read_inputs(tmp_path / "list.txt"), read_inputs(tmp_path / "list.csv")
    assert a.digest() != b.digest() and a.digest() == read_inputs(tmp_path / "list.txt").digest()


def test_resume_ranges_come_from_part_names(tmp_path):
    for start, end in [(0, 10), (10, 20), (30, 35), (50, 60)]:
        (tmp_path / part_name(start, end)).write_bytes(b"")
    (tmp_path / ".part-0000000020-0000000030-aaaaaaaaaaaa.parquet.x.tmp").write_bytes(b"")  # staged, not done
    done = finished_ranges(tmp_path)
    assert done == [(0, 20), (30, 35), (50, 60)]
    assert list(pending_parts((0, 70), done, 10)) == [(20, 30), (35, 40), (40, 50), (60, 70)]
    assert list(pending_parts((25, 55), done, 10)) == [(25, 30), (35, 40), (40, 50)]
    assert list(pending_parts((0, 20), done, 10)) == []
    assert list(pending_parts((0, 7), [], 3)) == [(0, 3), (3, 6), (6, 7)]
    assert part_name(0, 10) != part_name(0, 10)  # resumed runs and shards never collide


def test_staging_of_a_killed_run_is_removed_once_its_range_is_done(tmp_path):
    (tmp_path / "_arrays").mkdir()
    (tmp_path / part_name(0, 10)).write_bytes(b"")
    stale = [
        tmp_path / ".part-0000000000-0000000010-aaaaaaaaaaaa.parquet.x1.tmp",
        tmp_path / "_arrays" / ".part-0000000000-0000000010-aaaaaaaaaaaa.patch_tokens.npy.x2.tmp",
    ]
    live = [
        tmp_path / ".part-0000000010-0000000020-bbbbbbbbbbbb.parquet.x3.tmp",  # another shard, still writing
        tmp_path / "_arrays" / ".part-0000000005-0000000015-cccccccccccc.patch_tokens.npy.x4.tmp",
    ]
    for path in stale + live:
        path.write_bytes(b"")
    assert remove_stale_staging(tmp_path) == 2
    assert [p.exists() for p in stale + live] == [False, False, True, True]


def test_top_k_and_normalize():
    logits = np.array([[1.0, 3.0, 2.0, 3.0], [0.0, 0.0, 0.0, 5.0]], np.float32)
    classes, scores = top_k(logits, 2, "softmax")
    assert classes.tolist() == [[1, 3], [3, 0]]  # ties: the lower class first
    p = np.exp(logits[0]) / np.exp(logits[0]).sum()
    np.testing.assert_allclose(scores[0], p[[1, 3]], rtol=1e-6)
    assert top_k(logits, 1, "logits")[1].tolist() == [[3.0], [5.0]]
    np.testing.assert_allclose(np.linalg.norm(l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]])), axis=1), [1.0, 0.0])


def test_a_bad_image_is_a_row_error_and_the_rest_of_its_chunk_decodes(tmp_path):
    files = write_images(tmp_path, 2, bad=("broken.png",))
    paths = [str(files[0]), str(tmp_path / "broken.png"), str(files[1]), str(tmp_path / "gone.png")]
    chunk = decode_chunk(range(4), paths, Preprocessing(image_size=8))
    assert chunk.errors[0] is None and chunk.errors[2] is None
    assert "broken.png" in chunk.errors[1] and "cannot decode" in chunk.errors[1] and "\n" not in chunk.errors[1]
    assert "gone.png" in chunk.errors[3]
    assert np.abs(chunk.pixels[[0, 2]]).sum() > 0 and not chunk.pixels[[1, 3]].any()


def test_a_short_batch_is_padded_with_zero_images_in_the_graph_layout():
    from vit5_infer.workflows.predict.model import RunnerSpec

    pixels = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2) + 1
    padded = RunnerSpec("ort", "fp32", "g.onnx", batch=4).batch_input(pixels)
    assert padded.shape == (4, 3, 2, 2) and padded.dtype == np.float32
    np.testing.assert_array_equal(padded[:2], pixels)
    assert not padded[2:].any()
    nhwc = RunnerSpec("ort", "fp32", "g.onnx", batch=4, layout="nhwc").batch_input(pixels)
    assert nhwc.shape == (4, 2, 2, 3) and nhwc.flags.c_contiguous
    np.testing.assert_array_equal(nhwc[:2], pixels.transpose(0, 2, 3, 1))
    whole = RunnerSpec("ort", "fp32", "g.onnx", batch=2).batch_input(pixels)
    assert whole is pixels  # a whole NCHW batch runs as decoded, uncopied


def test_a_ray_decode_stage_reads_the_preprocessing_it_is_given_as_metadata(tmp_path):
    from vit5_infer.workflows.predict.ray_pipeline import decode_batch

    files = write_images(tmp_path, 2, size=(30, 40))
    pre = Preprocessing(
        image_size=8, crop_ratio=0.5, mean=(0.1, 0.2, 0.3), std=(0.5, 0.6, 0.7), interpolation="nearest"
    )
    batch = {"index": np.arange(2), "path": np.asarray([str(f) for f in files], dtype=object)}
    decoded = decode_batch(batch, pre.to_metadata())
    np.testing.assert_array_equal(decoded["pixels"], decode_chunk(range(2), [str(f) for f in files], pre).pixels)
    assert decoded["error"].tolist() == ["", ""]


def test_ray_refuses_every_backend_that_runs_the_pytorch_model(tmp_path, monkeypatch):
    """Ray is a stand-in here (find_spec answers for it): the refusal comes before Ray is imported."""
    import importlib.util

    from vit5_infer.engines.registry import BACKENDS, runs

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: object() if name == "ray" else find_spec(name, *a)
    )
    images = tmp_path / "images"
    write_images(images, 2)
    for backend in BACKENDS:
        if runs(backend) == "model":
            with pytest.raises(PredictError, match="--ray runs a file on every actor"):
                _plan(tmp_path, images, ray=True, backend=backend)
        else:
            assert _plan(tmp_path, images, ray=True, backend=backend).bounds == (0, 2)
