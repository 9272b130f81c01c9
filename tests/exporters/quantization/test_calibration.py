"""Calibration inputs (images, seeded) and the clipping ranges of each method."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from vit5_infer.exporters.quantization import CalibrationError, calibration_inputs, collect_stats, ranges_from_stats
from vit5_infer.exporters.quantization.calibration import HISTOGRAM_BINS, TensorStats, threshold
from vit5_infer.preprocessing import Preprocessing

DIGITS_PRE = Preprocessing(image_size=32, mean=(0.5,) * 3, std=(0.25,) * 3)


def test_images_split_into_calibration_and_held_out(digits_dir):
    data = calibration_inputs(digits_dir / "calibration", input_shape=(3, 32, 32), preprocessing=DIGITS_PRE, count=24)
    assert data.calibration.shape == (24, 3, 32, 32) and data.calibration.dtype == np.float32
    assert len(data.held_out) == 40  # 20% of the 200 images
    assert not data.seeded and data.preprocessing == DIGITS_PRE
    # held-out images are never calibration images
    flat_cal = {x.tobytes() for x in data.calibration}
    assert not any(x.tobytes() in flat_cal for x in data.held_out)
    # the user's preprocessing is applied: digits are 0..1 pixels normalized with mean 0.5, std 0.25
    assert data.calibration.min() >= -2.0 - 1e-6 and data.calibration.max() <= 2.0 + 1e-6


def test_preprocessing_takes_the_model_input_size(digits_dir):
    data = calibration_inputs(digits_dir / "calibration", input_shape=(3, 16, 16), preprocessing=DIGITS_PRE, count=2)
    assert data.calibration.shape[1:] == (3, 16, 16) and data.preprocessing.image_size == 16


def test_seeded_inputs_only_when_asked_and_with_a_warning():
    with pytest.raises(CalibrationError, match="needs calibration images") as info:
        calibration_inputs(None, input_shape=(3, 8, 8), preprocessing=DIGITS_PRE)
    assert "\n" not in str(info.value)
    with pytest.warns(UserWarning, match="accuracy on real images is unknown"):
        data = calibration_inputs(None, input_shape=(3, 8, 8), preprocessing=DIGITS_PRE, count=4, seeded=True)
    assert data.seeded and data.calibration.shape == (4, 3, 8, 8) and len(data.held_out) >= 1


def _write_png(path, mode="RGB", size=(8, 8)):
    from PIL import Image

    Image.new(mode, size, color=0).save(path)


@pytest.mark.parametrize(
    "setup,fragment",
    [
        ("empty", "no image files"),
        ("unreadable", "cannot decode"),
        ("missing", "is not a directory"),
        ("one", "at least 2 images"),
    ],
)
def test_bad_calibration_folders_are_one_line_errors(tmp_path, setup, fragment):
    folder = tmp_path / "images"
    if setup != "missing":
        (folder / "nested").mkdir(parents=True)
    if setup == "unreadable":
        _write_png(folder / "good.png")
        (folder / "nested" / "broken.png").write_bytes(b"not a png")
    if setup == "one":
        _write_png(folder / "nested" / "only.png")
    with pytest.raises(CalibrationError, match=fragment) as info:
        calibration_inputs(folder, input_shape=(3, 8, 8), preprocessing=DIGITS_PRE, count=4)
    assert "\n" not in str(info.value)


def test_model_channel_count_must_match_rgb_images(digits_dir):
    with pytest.raises(CalibrationError, match="takes 1"):
        calibration_inputs(digits_dir / "calibration", input_shape=(1, 32, 32), preprocessing=DIGITS_PRE)


def test_count_must_be_positive(digits_dir):
    with pytest.raises(CalibrationError, match="calibration-count"):
        calibration_inputs(digits_dir / "calibration", input_shape=(3, 32, 32), preprocessing=DIGITS_PRE, count=0)


def _stats_with_outlier() -> TensorStats:
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.standard_normal(200_000), [40.0]])
    hist = np.histogram(np.abs(values), bins=HISTOGRAM_BINS, range=(0, 40.0))[0]
    return TensorStats(float(values.min()), 40.0, hist)


def test_methods_order_and_clip_outliers():
    stats = _stats_with_outlier()
    t_max, t_pct, t_ent = (threshold(stats, m) for m in ("max", "percentile", "entropy"))
    assert t_max == 40.0
    assert 3.0 < t_pct < 6.0  # the 99.99th percentile of |N(0,1)| is ~3.9
    assert 2.0 < t_ent < 40.0
    with pytest.raises(CalibrationError, match="max, percentile, entropy"):
        ranges_from_stats({"x": stats}, "mse")


def test_ranges_never_exceed_what_was_seen():
    stats = TensorStats(minimum=-0.5, maximum=8.0, histogram=np.ones(HISTOGRAM_BINS, dtype=np.int64))
    low, high = ranges_from_stats({"x": stats}, "percentile")["x"]
    assert low == -0.5 and 7.9 < high <= 8.0


def test_collect_stats_sees_every_batch():
    x = helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, [None, 2])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 2])
    graph = helper.make_graph(
        [helper.make_node("Relu", ["pixel_values"], ["h"]), helper.make_node("Neg", ["h"], ["logits"])], "g", [x], [y]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    inputs = np.zeros((40, 2), dtype=np.float32)
    inputs[33, 1] = 5.0  # in the third batch of 16
    inputs[2, 0] = -3.0
    stats = collect_stats(model, ["h", "pixel_values"], inputs)
    assert stats["h"].minimum == 0.0 and stats["h"].maximum == 5.0
    assert stats["pixel_values"].minimum == -3.0 and stats["pixel_values"].amax == 5.0
    assert stats["h"].histogram.sum() == inputs.size
