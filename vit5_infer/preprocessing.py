"""Image preprocessing, in one place: what an exported graph records in its metadata, what
``vit5 bench --images`` and INT8 calibration apply to real images.

The default is upstream's evaluation pipeline (SPEC 8.4): bicubic resize of the shorter side to
``image_size / crop_ratio``, centre crop to ``image_size``, pixels scaled to 0-1 and normalized
with the ImageNet mean and std.  Pillow is imported only when images are decoded.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import numpy as np

from .caller_warnings import warn_at_caller
from .errors import InputError, Vit5Error
from .vocabulary import INTERPOLATIONS, PathLike

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm")
#: Pixels are scaled to 0-1 before normalization, so a mean outside this range or a std outside
#: STD_RANGE is a mistake (a 0-255 mean, a typo); the bounds also keep normalized values finite in FP32.
MEAN_LIMIT = 10.0
STD_RANGE = (1e-3, 1e3)
#: The longest shorter side an image is resized to before the centre crop (image_size / crop_ratio):
#: a tiny crop_ratio would otherwise ask for a resize to millions of pixels a side.
MAX_RESIZE_SIDE = 4096


def check_channels(name: str, values, what: Optional[str] = None) -> tuple:
    """``values`` (mean or std, one per channel R, G, B) as floats, or InputError naming ``what``
    (default ``preprocessing NAME``): three finite values, a mean within +-MEAN_LIMIT, a std in STD_RANGE."""
    what = what or f"preprocessing {name}"
    try:
        values = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be numbers, got {values!r}") from None
    if len(values) != 3:
        raise InputError(f"{what} needs 3 values (R, G, B), got {list(values)}")
    if not all(math.isfinite(v) for v in values):
        raise InputError(f"{what} must be finite numbers, got {list(values)}")
    if name == "std":
        low, high = STD_RANGE
        if not all(low <= v <= high for v in values):
            raise InputError(
                f"{what} values must lie in [{low:g}, {high:g}] (pixels are scaled to 0-1), got {list(values)}"
            )
    elif not all(abs(v) <= MEAN_LIMIT for v in values):
        raise InputError(
            f"{what} values must lie in [-{MEAN_LIMIT:g}, {MEAN_LIMIT:g}] (pixels are scaled to 0-1), "
            f"got {list(values)}"
        )
    return values


def check_crop_ratio(crop_ratio, image_size: Optional[int] = None, what: str = "preprocessing crop_ratio") -> float:
    """``crop_ratio`` as a float in (0, 1] whose resize (``image_size / crop_ratio``) stays within
    MAX_RESIZE_SIDE; InputError otherwise."""
    try:
        ratio = float(crop_ratio)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a number, got {crop_ratio!r}") from None
    if not 0.0 < ratio <= 1.0:
        raise InputError(f"{what} must lie in (0, 1], got {crop_ratio!r}")
    if image_size is not None and not image_size / ratio <= MAX_RESIZE_SIDE:
        raise InputError(
            f"{what} {crop_ratio!r} resizes {image_size}-pixel images to a shorter side past "
            f"{MAX_RESIZE_SIDE} pixels; use at least {image_size / MAX_RESIZE_SIDE:.3g}"
        )
    return ratio


@dataclass(frozen=True)
class Preprocessing:
    image_size: int = 224
    crop_ratio: float = 1.0
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    interpolation: str = "bicubic"

    def __post_init__(self):
        if not isinstance(self.image_size, int) or self.image_size < 1:
            raise InputError(f"preprocessing image_size must be a positive integer, got {self.image_size!r}")
        check_crop_ratio(self.crop_ratio, self.image_size)
        for name in ("mean", "std"):
            check_channels(name, getattr(self, name))
        if self.interpolation not in INTERPOLATIONS:
            raise InputError(
                f"preprocessing interpolation must be one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r}"
            )

    @property
    def resize_to(self) -> int:
        """Length of the shorter side after the resize, before the centre crop."""
        return int(self.image_size / self.crop_ratio)

    def to_metadata(self, layout: str = "nchw") -> dict:
        """The ``preprocessing`` entry of an exported graph's metadata."""
        return {
            "image_size": self.image_size,
            "resize_shorter_side": self.resize_to,
            "crop_ratio": float(self.crop_ratio),
            "interpolation": self.interpolation,
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
            "scale": "0-1",
            "layout": layout,
            "channels": "RGB",
        }

    @classmethod
    def from_metadata(cls, metadata: Optional[dict], image_size: int) -> Preprocessing:
        """The graph's recorded preprocessing, else SPEC 8.4 at the model's input size."""
        pre = (metadata or {}).get("preprocessing") or {}
        if not isinstance(pre, dict):
            raise Vit5Error("the graph's preprocessing metadata is not an object; re-export the model")
        known = {k: pre[k] for k in ("image_size", "crop_ratio", "mean", "std", "interpolation") if k in pre}
        try:
            for key in ("mean", "std"):
                if key in known:
                    known[key] = tuple(float(v) for v in known[key])
            if "crop_ratio" in known:
                known["crop_ratio"] = float(known["crop_ratio"])
        except (TypeError, ValueError):
            raise Vit5Error(f"the graph's preprocessing metadata has non-numeric values: {pre}") from None
        known.setdefault("image_size", image_size)
        try:
            return cls(**known)
        except InputError as exc:
            raise Vit5Error(f"the graph's preprocessing metadata is invalid: {exc}") from None

    def with_overrides(self, **fields) -> Preprocessing:
        """A copy with the fields the user set (those that are not None) replaced."""
        given = {name: value for name, value in fields.items() if value is not None}
        return replace(self, **given) if given else self

    def with_image_size(self, image_size: int) -> Preprocessing:
        return replace(self, image_size=image_size)


def image_files(folder: PathLike, what: str = "--images") -> list[Path]:
    """Every image file below ``folder`` (recursively, symlinked folders not followed), sorted by path.
    A folder below it that cannot be read is skipped with a warning naming it; ``folder`` itself
    unreadable is an InputError."""
    folder = Path(folder)
    unreadable: list[OSError] = []
    found = []
    for root, _, names in os.walk(folder, onerror=unreadable.append):
        found += [Path(root) / name for name in names if Path(name).suffix.lower() in IMAGE_SUFFIXES]
    for exc in unreadable:
        if Path(exc.filename or folder) == folder:
            raise InputError(f"{what}: cannot read {folder} ({exc.strerror or type(exc).__name__})")
        warn_at_caller(
            f"{what}: cannot read folder {exc.filename} ({exc.strerror or type(exc).__name__}); its images are left out"
        )
    return sorted(p for p in found if p.is_file())


def list_images(folder: PathLike, what: str = "--images") -> list[Path]:
    """Every image file below ``folder`` (``image_files``); InputError when there is none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{what}: {folder} is not a directory")
    files = image_files(folder, what)
    if not files:
        raise InputError(f"{what}: no image files ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return files


def preprocess_image(image, pre: Preprocessing) -> np.ndarray:
    """A PIL image -> float32 CHW: RGB, resize of the shorter side, centre crop, normalize."""
    from PIL import Image

    image = _as_rgb(image)
    w, h = image.size
    scale = pre.resize_to / min(w, h)
    new_w, new_h = max(pre.resize_to, round(w * scale)), max(pre.resize_to, round(h * scale))
    resample = {
        "bicubic": Image.Resampling.BICUBIC,
        "bilinear": Image.Resampling.BILINEAR,
        "nearest": Image.Resampling.NEAREST,
    }[pre.interpolation]
    if (new_w, new_h) != (w, h):
        image = image.resize((new_w, new_h), resample=resample)
    left, top = (new_w - pre.image_size) // 2, (new_h - pre.image_size) // 2
    image = image.crop((left, top, left + pre.image_size, top + pre.image_size))
    x: np.ndarray = np.asarray(image, dtype=np.float32) / 255.0
    x = (x - np.asarray(pre.mean, dtype=np.float32)) / np.asarray(pre.std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


# Single-channel modes with more than 8 bits, and the value that is full white in each.  Pillow's
# convert("RGB") clips them to 0-255 instead of scaling: a 16-bit PNG would become all white.
_WIDE_GREY = {"I;16": 65535.0, "I;16L": 65535.0, "I;16B": 65535.0, "I;16N": 65535.0}


def _as_rgb(image):
    """``image`` as 8-bit RGB, wide single-channel images scaled by their mode's range (not clipped)."""
    from PIL import Image

    mode = image.mode
    if mode in _WIDE_GREY:
        grey = np.asarray(image, dtype=np.float64) / _WIDE_GREY[mode]
    elif mode == "F":
        grey = np.asarray(image, dtype=np.float64)
        if not np.isfinite(grey).all() or grey.min() < 0.0 or grey.max() > 1.0:
            raise InputError("a floating-point image must hold values in 0..1 (no NaN/Inf); convert it to 8 or 16 bits")
    elif mode == "I":
        raise InputError("32-bit integer images have no defined white level; convert them to 8 or 16 bits per channel")
    else:
        return image.convert("RGB")
    # Rounded to 8 bits, like every other input: the same pipeline as an 8-bit export of the image.
    grey8 = np.clip(np.round(grey * 255.0), 0, 255).astype(np.uint8)
    return Image.fromarray(grey8).convert("RGB")


def _pillow():
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise Vit5Error("decoding images needs Pillow: pip install 'vit5-infer[images]'") from None
    return Image, UnidentifiedImageError


def _decoded(source, pre: Preprocessing) -> np.ndarray:
    """``source`` (a path or a file object) decoded and preprocessed.  Pillow's decoders fail on damaged
    data with whatever their parser hits (OSError, ValueError, SyntaxError for a bad PNG chunk,
    struct.error, EOFError, IndexError, ...): every such failure is the file's, raised as a DecodeError."""
    Image, _ = _pillow()
    img = None
    try:
        img = Image.open(source)
        img.load()
    except Image.DecompressionBombError as exc:
        _close(img)
        raise DecodeError(
            "too large to decode safely (a decompression bomb?); resize it below Pillow's MAX_IMAGE_PIXELS", exc
        ) from None
    except (KeyboardInterrupt, MemoryError, RecursionError):
        _close(img)
        raise
    except Exception as exc:  # noqa: BLE001 - see the docstring: the decoders' failures have no common type
        _close(img)
        raise DecodeError(str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__, exc) from None
    with img:
        return preprocess_image(img, pre)


def _close(img) -> None:
    if img is not None:
        img.close()


class DecodeError(InputError):
    """Bytes no image decoder of Pillow can read."""

    def __init__(self, reason: str, cause: BaseException):
        super().__init__(reason)
        self.cause_type = type(cause).__name__


def load_image(path: PathLike, pre: Preprocessing, what: str = "--images") -> np.ndarray:
    """One preprocessed image ``[3, S, S]``; InputError for a file Pillow cannot decode."""
    try:
        return _decoded(path, pre)
    except DecodeError as exc:
        raise InputError(f"{what}: cannot decode {path} ({exc})") from None
    except InputError as exc:
        raise InputError(f"{what}: {path}: {exc}") from None


def decode_image(data: bytes, pre: Preprocessing, what: str = "image") -> np.ndarray:
    """One preprocessed image ``[3, S, S]`` from encoded bytes (PNG, JPEG, ...), as a server receives
    it; InputError for bytes Pillow cannot decode."""
    try:
        return _decoded(io.BytesIO(bytes(data)), pre)
    except DecodeError as exc:
        raise InputError(f"{what}: cannot decode {len(data)} bytes as an image ({exc.cause_type})") from None


def load_images(files_or_folder, pre: Preprocessing, count: int, what: str = "--images") -> np.ndarray:
    """``count`` preprocessed images ``[count, 3, S, S]`` (the files cycled when there are fewer)."""
    _pillow()  # before anything else: a missing Pillow is the first thing to say
    files = list_images(files_or_folder, what) if isinstance(files_or_folder, (str, Path)) else list(files_or_folder)
    cache: dict[Path, np.ndarray] = {}
    out = []
    for i in range(count):
        path = Path(files[i % len(files)])
        if path not in cache:
            cache[path] = load_image(path, pre, what)
        out.append(cache[path])
    return np.stack(out)


def seeded_pixels(shape, seed: int = 0) -> np.ndarray:
    """Seeded standard-normal float32 ``pixel_values`` of ``shape`` (the scale of normalized images): the
    inputs every command that takes ``--seed`` runs on, so that one seed gives one set of images.  The
    first ``n`` samples of a larger batch are the samples of batch ``n``."""
    return np.random.default_rng(seed).standard_normal(tuple(shape)).astype(np.float32)


def to_layout(pixels, layout: str):
    """NCHW ``pixels`` (a numpy array or a torch tensor) in ``layout``: as they are for nchw, channels
    last (and contiguous) for nhwc."""
    if layout != "nhwc":
        return pixels
    if isinstance(pixels, np.ndarray):
        return np.ascontiguousarray(pixels.transpose(0, 2, 3, 1))
    return pixels.permute(0, 2, 3, 1).contiguous()
