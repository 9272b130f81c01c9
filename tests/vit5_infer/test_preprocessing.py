"""Hostile images for ``--images`` (issue 12): wide-range modes scaled by their range or refused,
decompression bombs refused, all in one line."""

from __future__ import annotations

import numpy as np
import pytest

from vit5_infer.errors import InputError
from vit5_infer.preprocessing import Preprocessing, load_image

Image = pytest.importorskip("PIL.Image")
PRE = Preprocessing(image_size=16, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def _ramp(dtype, top) -> np.ndarray:
    """A left-to-right ramp from 0 to ``top`` (16x16)."""
    return np.tile(np.linspace(0, top, 16), (16, 1)).astype(dtype)


def _eight_bit(path) -> np.ndarray:
    Image.fromarray(_ramp(np.uint8, 255)).save(path)
    return load_image(path, PRE)


def test_16_bit_png_is_scaled_by_its_range_not_clipped(tmp_path):
    Image.fromarray(_ramp(np.uint16, 65535)).save(tmp_path / "wide.png")
    wide = load_image(tmp_path / "wide.png", PRE)
    assert 0.3 < wide.mean() < 0.7  # clipping to 0-255 would make it all white (mean 1.0)
    np.testing.assert_allclose(wide, _eight_bit(tmp_path / "narrow.png"), atol=1.5 / 255)


def test_float_tiff_in_0_1_is_read_as_is(tmp_path):
    Image.fromarray(_ramp(np.float32, 1.0)).save(tmp_path / "float.tif")
    x = load_image(tmp_path / "float.tif", PRE)
    np.testing.assert_allclose(x, _eight_bit(tmp_path / "narrow.png"), atol=1.5 / 255)


@pytest.mark.parametrize("name, array, fragment", [
    ("int32.tif", _ramp(np.int32, 2**20), "32-bit integer images"),
    ("float_big.tif", _ramp(np.float32, 1000.0), "values in 0..1"),
    ("float_nan.tif", np.full((16, 16), np.nan, dtype=np.float32), "no NaN"),
])
def test_images_without_a_defined_range_are_refused(tmp_path, name, array, fragment):
    Image.fromarray(array).save(tmp_path / name)
    with pytest.raises(InputError, match=fragment) as info:
        load_image(tmp_path / name, PRE)
    assert name in str(info.value) and "\n" not in str(info.value)


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    Image.new("L", (64, 64)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 64 // 4)  # 4x over: Pillow raises, not warns
    with pytest.raises(InputError, match="too large to decode safely") as info:
        load_image(tmp_path / "bomb.png", PRE)
    assert "bomb.png" in str(info.value)


def test_hand_edited_preprocessing_metadata_is_one_line():
    from vit5_infer.errors import Vit5Error

    for bad in ({"mean": ["a", 0, 0]}, {"std": [0, 1, 1]}, {"crop_ratio": 7}, {"interpolation": "magic"},
                {"image_size": "32"}, {"mean": 5}):
        with pytest.raises(Vit5Error, match="preprocessing"):
            Preprocessing.from_metadata({"preprocessing": bad}, 32)
    with pytest.raises(Vit5Error, match="not an object"):
        Preprocessing.from_metadata({"preprocessing": [1, 2]}, 32)
