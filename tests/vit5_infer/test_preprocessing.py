"""Hostile images and preprocessing values: wide-range modes scaled by their range or refused,
decompression bombs and every other decoder failure refused, non-finite or absurd mean/std/crop
ratio refused, unreadable folders named; all in one line."""

from __future__ import annotations

import io
import math
import os
import struct

import numpy as np
import pytest

from vit5_infer.errors import InputError, Vit5Error
from vit5_infer.preprocessing import MAX_RESIZE_SIDE, Preprocessing, decode_image, list_images, load_image

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


@pytest.mark.parametrize(
    "name, array, fragment",
    [
        ("int32.tif", _ramp(np.int32, 2**20), "32-bit integer images"),
        ("float_big.tif", _ramp(np.float32, 1000.0), "values in 0..1"),
        ("float_nan.tif", np.full((16, 16), np.nan, dtype=np.float32), "no NaN"),
    ],
)
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

    for bad in (
        {"mean": ["a", 0, 0]},
        {"std": [0, 1, 1]},
        {"crop_ratio": 7},
        {"interpolation": "magic"},
        {"image_size": "32"},
        {"mean": 5},
    ):
        with pytest.raises(Vit5Error, match="preprocessing"):
            Preprocessing.from_metadata({"preprocessing": bad}, 32)
    with pytest.raises(Vit5Error, match="not an object"):
        Preprocessing.from_metadata({"preprocessing": [1, 2]}, 32)


# ---- every decoder failure is the file's: one line --------------------------------------------------
def broken_chunk_png() -> bytes:
    """A PNG whose second IDAT chunk has a broken type: Pillow identifies it, then raises SyntaxError in load()."""
    pixels = np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG", compress_level=0)  # uncompressed: several IDAT chunks
    data = buffer.getvalue()
    second = data.index(b"IDAT", data.index(b"IDAT") + 4)
    return data[:second] + b"I\x00AT" + data[second + 4 :]


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(_ramp(np.uint8, 255)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "name, data",
    [
        ("broken_chunk.png", broken_chunk_png()),
        ("truncated.png", _png()[:50]),
        ("random.png", bytes((i * 7919 + 13) % 256 for i in range(500))),
        ("empty.png", b""),
        ("text.jpg", b"not an image\n"),
    ],
)
def test_damaged_files_are_one_line(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(InputError, match=f"--calibration: cannot decode .*{name}") as info:
        load_image(path, PRE, "--calibration")
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="cannot decode"):
        decode_image(data, PRE)


@pytest.mark.parametrize(
    "failure",
    [
        SyntaxError("broken PNG file"),
        struct.error("unpack requires a buffer of 4 bytes"),
        EOFError(),
        IndexError("tuple index out of range"),
        KeyError("mode"),
        TypeError("bad tile"),
        ZeroDivisionError(),
        OSError("image file is truncated"),
        ValueError("tile cannot extend outside image"),
    ],
)
def test_whatever_a_decoder_raises_is_one_line(tmp_path, monkeypatch, failure):
    """Pillow's decoders raise what their parser hits; the class is covered by raising each from load()."""
    path, data = tmp_path / "image.png", _png()
    path.write_bytes(data)

    def fail(self):
        raise failure

    monkeypatch.setattr(Image.Image, "load", fail)
    monkeypatch.setattr("PIL.PngImagePlugin.PngImageFile.load", fail, raising=False)
    with pytest.raises(InputError, match="cannot decode") as info:
        load_image(path, PRE)
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match=type(failure).__name__):
        decode_image(data, PRE)


# ---- preprocessing values: finite and in range, wherever they come from ---------------------------
@pytest.mark.parametrize(
    "field, values, fragment",
    [
        ("mean", (math.nan, 0.5, 0.5), "finite"),
        ("mean", (math.inf, 0.5, 0.5), "finite"),
        ("mean", (1e300, 0.5, 0.5), "must lie in"),
        ("mean", (123.675, 116.28, 103.53), "scaled to 0-1"),  # a 0-255 mean
        ("std", (1e-300, 1.0, 1.0), "must lie in"),
        ("std", (0.0, 1.0, 1.0), "must lie in"),
        ("std", (-0.2, 0.2, 0.2), "must lie in"),
        ("std", (math.inf, 1.0, 1.0), "finite"),
        ("std", (math.nan, 1.0, 1.0), "finite"),
        ("std", (1e300, 1.0, 1.0), "must lie in"),
        ("mean", (0.5, 0.5), "needs 3 values"),
    ],
)
def test_non_finite_and_absurd_mean_or_std_are_refused(field, values, fragment):
    with pytest.raises(InputError, match=fragment):
        Preprocessing(image_size=32, **{field: values})
    with pytest.raises(InputError, match=fragment):
        PRE.with_overrides(**{field: values})
    with pytest.raises(Vit5Error, match="preprocessing metadata is invalid"):
        Preprocessing.from_metadata({"preprocessing": {field: list(values)}}, 32)


@pytest.mark.parametrize(
    "ratio, fragment",
    [
        (5e-324, "past 4096 pixels"),
        (1e-300, "past 4096 pixels"),
        (1e-4, "past 4096 pixels"),
        (0.0, r"\(0, 1\]"),
        (-0.5, r"\(0, 1\]"),
        (math.nan, r"\(0, 1\]"),
        (math.inf, r"\(0, 1\]"),
        (1.5, r"\(0, 1\]"),
    ],
)
def test_crop_ratio_is_bounded_so_the_resize_stays_small(ratio, fragment):
    with pytest.raises(InputError, match=fragment):
        Preprocessing(image_size=32, crop_ratio=ratio)
    with pytest.raises(Vit5Error, match="preprocessing metadata is invalid"):
        Preprocessing.from_metadata({"preprocessing": {"crop_ratio": ratio}}, 32)


def test_the_smallest_allowed_crop_ratio_still_works():
    pre = Preprocessing(image_size=32, crop_ratio=32 / MAX_RESIZE_SIDE)
    assert pre.resize_to == MAX_RESIZE_SIDE
    assert Preprocessing(image_size=224, crop_ratio=0.875).resize_to == 256


# ---- an unreadable folder is named, not skipped silently ------------------------------------------
def test_an_unreadable_folder_below_the_images_is_warned_about(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "locked").mkdir()
    Image.fromarray(_ramp(np.uint8, 255)).save(tmp_path / "a" / "x.png")
    real_scandir = os.scandir

    def scandir(path="."):  # root reads every folder: the refusal is made here, as the kernel makes it
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.warns(UserWarning, match=r"--images: cannot read folder .*locked \(Permission denied\)"):
        files = list_images(tmp_path)
    assert [p.name for p in files] == ["x.png"]
    monkeypatch.setattr(
        os, "scandir", lambda path=".": (_ for _ in ()).throw(PermissionError(13, "Permission denied", os.fspath(path)))
    )
    with pytest.raises(InputError, match="cannot read"):
        list_images(tmp_path)


def test_seeded_pixels_are_reproducible_standard_normal_float32():
    from vit5_infer.preprocessing import seeded_pixels

    first = seeded_pixels((4, 3, 8, 8), seed=5)
    assert first.dtype == np.float32 and first.shape == (4, 3, 8, 8)
    np.testing.assert_array_equal(first, seeded_pixels((4, 3, 8, 8), seed=5))
    np.testing.assert_array_equal(first[:2], seeded_pixels((2, 3, 8, 8), seed=5))
    assert abs(float(first.std()) - 1.0) < 0.2


def test_to_layout_moves_channels_last_for_numpy_and_torch():
    import torch

    from vit5_infer.preprocessing import to_layout

    pixels = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    assert to_layout(pixels, "nchw") is pixels
    nhwc = to_layout(pixels, "nhwc")
    assert nhwc.shape == (2, 4, 5, 3) and nhwc.flags["C_CONTIGUOUS"] and nhwc[1, 2, 3, 0] == pixels[1, 0, 2, 3]
    tensor = to_layout(torch.from_numpy(pixels), "nhwc")
    assert tensor.is_contiguous() and np.array_equal(tensor.numpy(), nhwc)
