"""Calibration inputs (real images or, on request, seeded noise) and the activation ranges they give.

Ranges are collected by running the FP32 graph on ONNX Runtime with the tensors to be quantized
exposed as extra outputs: the graph that is quantized is the graph that is measured, whatever
lowering it uses.  Three ways to turn the observed values into a clipping threshold:

- ``max``: the largest |x| seen (no clipping);
- ``percentile``: the 99.99th percentile of |x| (clips rare outliers);
- ``entropy``: the threshold whose 8-bit histogram is closest in KL divergence to the observed one
  (TensorRT's and ORT's entropy calibration).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Optional

import numpy as np
import onnx

from vit5_infer.caller_warnings import warn_at_caller
from vit5_infer.errors import Vit5Error
from vit5_infer.preprocessing import Preprocessing, list_images, load_image
from vit5_infer.vocabulary import CALIBRATION_METHODS as METHODS
from vit5_infer.vocabulary import DEFAULT_CALIBRATION_COUNT as DEFAULT_COUNT
from vit5_infer.vocabulary import DEFAULT_CALIBRATION_METHOD as DEFAULT_METHOD  # noqa: F401 - the package exports it
from vit5_infer.vocabulary import INPUT_NAME, PathLike

PERCENTILE = 99.99
HISTOGRAM_BINS = 2048
#: images kept back from calibration to validate the quantized graph on
HELD_OUT_FRACTION, HELD_OUT_MAX = 0.2, 64
RUN_BATCH = 16


class CalibrationError(Vit5Error, ValueError):
    pass


@dataclass(frozen=True)
class CalibrationData:
    """Preprocessed NCHW float32 inputs: ``calibration`` sets the ranges, ``held_out`` validates."""

    calibration: np.ndarray
    held_out: np.ndarray
    source: str  # a folder, or "seeded"
    preprocessing: Optional[Preprocessing] = None

    @property
    def seeded(self) -> bool:
        return self.source == "seeded"

    def describe(self) -> dict:
        return {
            "source": self.source,
            "calibration_inputs": int(len(self.calibration)),
            "held_out_inputs": int(len(self.held_out)),
        }


def _split(count_available: int, count: int) -> tuple[int, int]:
    """(calibration, held-out) sizes: held-out images are never used for calibration."""
    held = min(HELD_OUT_MAX, max(1, int(round(count_available * HELD_OUT_FRACTION))))
    if count_available < 2:
        raise CalibrationError(
            f"calibration needs at least 2 images (one is held out for validation), found {count_available}"
        )
    return min(count, count_available - held), held


def load_calibration_images(
    folder: PathLike, pre: Preprocessing, in_channels: int, count: int = DEFAULT_COUNT, seed: int = 0
) -> CalibrationData:
    """Images below ``folder`` (recursively), shuffled with ``seed`` and split into calibration and
    held-out sets; a one-line CalibrationError for an empty folder, an undecodable file or images
    the model cannot take."""
    if count < 1:
        raise CalibrationError(f"--calibration-count must be >= 1, got {count}")
    if in_channels != 3:
        raise CalibrationError(f"--calibration: images decode to 3 channels (RGB) but the model takes {in_channels}")
    try:
        files = list_images(folder, "--calibration")
    except Vit5Error as exc:
        raise CalibrationError(str(exc)) from None
    order = np.random.default_rng(seed).permutation(len(files))
    n_cal, n_held = _split(len(files), count)
    chosen = [files[i] for i in order[: n_cal + n_held]]
    try:
        arrays = [load_image(path, pre, "--calibration") for path in chosen]
    except Vit5Error as exc:
        raise CalibrationError(str(exc)) from None
    stacked = np.stack(arrays).astype(np.float32)
    return CalibrationData(stacked[n_held:], stacked[:n_held], str(folder), pre)


def seeded_calibration(input_shape: tuple, count: int = 16, held_out: int = 8, seed: int = 0) -> CalibrationData:
    """Standard-normal inputs (the scale of normalized images); the accuracy this gives on real
    images is unknown, which the caller is warned about."""
    warn_at_caller("calibrating on seeded random inputs: the quantized graph's accuracy on real images is unknown")
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((count + held_out, *input_shape)).astype(np.float32)
    return CalibrationData(data[held_out:], data[:held_out], "seeded")


def batches(inputs: np.ndarray, size: int = RUN_BATCH) -> Iterable[np.ndarray]:
    for start in range(0, len(inputs), size):
        yield inputs[start : start + size]


def _session_with_outputs(model: onnx.ModelProto, tensors: list[str]):
    from vit5_infer.ort_sessions import create_session

    probe = onnx.ModelProto.FromString(model.SerializeToString())
    present = {o.name for o in probe.graph.output}
    for name in tensors:
        if name not in present:
            probe.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    return create_session(probe, quiet=True)


@dataclass
class TensorStats:
    minimum: float
    maximum: float
    histogram: np.ndarray  # counts of |x| over [0, amax]

    @property
    def amax(self) -> float:
        return max(abs(self.minimum), abs(self.maximum))


def collect_stats(model: onnx.ModelProto, tensors: list[str], inputs: np.ndarray) -> dict[str, TensorStats]:
    """Min, max and a histogram of |x| of each tensor over ``inputs`` (two passes: range, histogram)."""
    session = _session_with_outputs(model, tensors)
    lo = {t: np.inf for t in tensors}
    hi = {t: -np.inf for t in tensors}
    for batch in batches(inputs):
        for name, value in zip(tensors, session.run(tensors, {INPUT_NAME: batch})):
            lo[name] = min(lo[name], float(value.min()))
            hi[name] = max(hi[name], float(value.max()))
    hist = {t: np.zeros(HISTOGRAM_BINS, dtype=np.int64) for t in tensors}
    for batch in batches(inputs):
        for name, value in zip(tensors, session.run(tensors, {INPUT_NAME: batch})):
            amax = max(abs(lo[name]), abs(hi[name])) or 1.0
            hist[name] += np.histogram(np.abs(value), bins=HISTOGRAM_BINS, range=(0.0, amax))[0]
    return {t: TensorStats(lo[t], hi[t], hist[t]) for t in tensors}


def _percentile_threshold(stats: TensorStats, percentile: float = PERCENTILE) -> float:
    cdf = np.cumsum(stats.histogram) / max(1, stats.histogram.sum())
    index = int(np.searchsorted(cdf, percentile / 100.0))
    return stats.amax * min(HISTOGRAM_BINS, index + 1) / HISTOGRAM_BINS


def _entropy_threshold(stats: TensorStats, levels: int = 128, stride: int = 16) -> float:
    """The clip (in bins) minimizing KL(P || Q), P: observed |x| clipped, Q: P on ``levels`` levels."""
    hist = stats.histogram.astype(np.float64)
    if hist.sum() == 0:
        return stats.amax
    best, best_kl = HISTOGRAM_BINS, np.inf
    for edge in range(levels, HISTOGRAM_BINS + 1, stride):
        reference = hist[:edge].copy()
        reference[-1] += hist[edge:].sum()
        chunks = np.array_split(hist[:edge], levels)
        expanded = []
        for chunk in chunks:
            nonzero = chunk > 0
            fill = chunk.sum() / max(1, nonzero.sum())
            expanded.append(np.where(nonzero, fill, 0.0))
        candidate = np.concatenate(expanded)
        p = reference / reference.sum()
        q = candidate / max(candidate.sum(), 1e-12)
        mask = p > 0
        q = np.where(mask & (q == 0), 1e-12, q)
        kl = float(np.sum(p[mask] * np.log(p[mask] / q[mask])))
        if kl < best_kl:
            best, best_kl = edge, kl
    return stats.amax * best / HISTOGRAM_BINS


def threshold(stats: TensorStats, method: str) -> float:
    if method == "max":
        return stats.amax
    if method == "percentile":
        return _percentile_threshold(stats)
    if method == "entropy":
        return _entropy_threshold(stats)
    raise CalibrationError(f"calibration method must be one of {', '.join(METHODS)}, got {method!r}")


def ranges_from_stats(stats: dict[str, TensorStats], method: str) -> dict[str, tuple[float, float]]:
    """Per tensor (low, high) clipping range: the threshold clips |x|, never beyond what was seen."""
    if method not in METHODS:
        raise CalibrationError(f"calibration method must be one of {', '.join(METHODS)}, got {method!r}")
    out = {}
    for name, s in stats.items():
        t = threshold(s, method) or 1e-8
        out[name] = (max(s.minimum, -t), min(s.maximum, t))
    return out


def calibration_inputs(
    folder: Optional[PathLike],
    *,
    input_shape: tuple,
    preprocessing: Preprocessing,
    count: int = DEFAULT_COUNT,
    seeded: bool = False,
    seed: int = 0,
    precision: str = "int8",
) -> CalibrationData:
    """What a quantized export calibrates on: the images below ``folder``, or seeded inputs only when
    asked for explicitly (``seeded``); a one-line CalibrationError otherwise."""
    if folder is not None and seeded:
        raise CalibrationError("give either --calibration DIR or --calibrate-on-seeded-inputs, not both")
    if folder is None and not seeded:
        raise CalibrationError(
            f"--precision {precision} needs calibration images: --calibration DIR (a folder of images, searched "
            "recursively), or --calibrate-on-seeded-inputs to accept unknown accuracy"
        )
    if count < 1:
        raise CalibrationError(f"--calibration-count must be >= 1, got {count}")
    if seeded:
        return seeded_calibration(tuple(input_shape), count=count, held_out=max(8, count // 2), seed=seed)
    if preprocessing.image_size != input_shape[-1]:
        preprocessing = preprocessing.with_image_size(int(input_shape[-1]))
    return load_calibration_images(folder, preprocessing, int(input_shape[0]), count=count, seed=seed)
