"""vit5 predict on a real local Ray instance (ray.init(num_cpus=2), no mock): the same rows as the
local run, through ``predict(..., ray=True)`` and through ``Vit5Predictor`` in a pipeline of one's own."""

from __future__ import annotations

import numpy as np
import pytest
from predict_data import read_rows, write_images

ray = pytest.importorskip("ray", reason="Ray Data is not installed (pip install 'vit5-infer[ray]')")
pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'vit5-infer[ray]')")

from vit5_infer.workflows.predict import PredictOptions, predict  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _drop_array_files(rows):
    return [{k: v for k, v in r.items() if k != "register_tokens"} for r in rows]


def test_ray_rows_equal_the_local_rows(predict_graph, tmp_path, local_ray):
    images = tmp_path / "images"
    write_images(images, 11, bad=("bad.png",))
    common = dict(
        source=str(predict_graph),
        images=images,
        batch=4,
        rows_per_file=5,
        outputs=("pre_logits", "register_tokens"),
        normalize=True,
    )
    predict(PredictOptions(output=tmp_path / "local", workers=0, **common))
    summary = predict(PredictOptions(output=tmp_path / "ray", ray=True, workers=1, **common))
    assert (summary.rows, summary.errors, summary.parts) == (12, 1, 3)
    local, remote = read_rows(tmp_path / "local"), read_rows(tmp_path / "ray")
    assert _drop_array_files(remote) == _drop_array_files(local)
    for a, b in zip(local, remote):
        if a["error"] is None:
            x = np.load(tmp_path / "local" / "_arrays" / a["register_tokens"]["file"])[a["register_tokens"]["row"]]
            y = np.load(tmp_path / "ray" / "_arrays" / b["register_tokens"]["file"])[b["register_tokens"]["row"]]
            np.testing.assert_array_equal(x, y)
    assert not [p for p in (tmp_path / "ray").iterdir() if p.name.startswith("_vit5-work-")]
    # resuming on Ray writes nothing more
    assert predict(PredictOptions(output=tmp_path / "ray", ray=True, workers=1, **common)).rows == 0


def test_vit5_predictor_in_a_pipeline_of_ones_own(predict_graph, tmp_path, local_ray):
    from ray.data import ActorPoolStrategy

    from vit5_infer.engines.registry import make_runner
    from vit5_infer.preprocessing import Preprocessing, load_images
    from vit5_infer.workflows.predict import Vit5Predictor, decode_batch
    from vit5_infer.workflows.predict.model import RunnerSpec

    files = write_images(tmp_path / "images", 6)
    pre = Preprocessing(image_size=32)
    spec = RunnerSpec("ort", "fp32", str(predict_graph), batch=3)
    ds = ray.data.from_items([{"index": i, "path": str(p)} for i, p in enumerate(files)])
    ds = ds.map_batches(
        decode_batch, fn_kwargs={"preprocessing": pre.to_metadata()}, batch_format="numpy", batch_size=3
    )
    ds = ds.map_batches(
        Vit5Predictor,
        fn_constructor_kwargs={"spec": spec, "topk": 2, "scores": "logits"},
        compute=ActorPoolStrategy(size=1),
        num_gpus=0,
        batch_size=3,
        batch_format="numpy",
    )
    rows = sorted(ds.take_all(), key=lambda r: r["index"])
    with make_runner("ort", predict_graph) as runner:
        logits = runner.run(load_images(files, pre, len(files)))["logits"]
    assert [list(r["classes"]) for r in rows] == np.argsort(-logits, axis=1, kind="stable")[:, :2].tolist()
    np.testing.assert_allclose([r["scores"] for r in rows], np.sort(logits, axis=1)[:, ::-1][:, :2], rtol=1e-6)
