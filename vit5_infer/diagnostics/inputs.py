"""Inputs for a comparison: seeded noise or preprocessed images, in the graph's shape and layout."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import onnx

from vit5_infer.errors import InputError
from vit5_infer.preprocessing import Preprocessing, load_images
from vit5_infer.vocabulary import PathLike


def graph_input_spec(model: onnx.ModelProto) -> tuple[tuple[int, ...], str]:
    """(input shape without the batch axis, layout) of an image graph.

    The layout is the exporter's metadata where present, else read from the shape (the channel
    axis is the short one).
    """
    from vit5_infer.exporters.metadata import read_metadata

    dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in model.graph.input[0].type.tensor_type.shape.dim)
    sample = dims[1:]
    if len(sample) != 3 or any(d is None for d in sample):
        shown = "x".join("?" if d is None else str(d) for d in dims)
        raise InputError(f"the graph's input {model.graph.input[0].name} ({shown}) is not a static image shape [N, C, H, W] or [N, H, W, C]")
    layout = (read_metadata(model).get("preprocessing") or {}).get("layout")
    if layout not in ("nchw", "nhwc"):
        layout = "nhwc" if sample[2] < sample[0] else "nchw"
    return tuple(sample), layout


def seeded_inputs(sample_shape: Sequence[int], batch: int, seed: int = 0) -> np.ndarray:
    """Standard-normal inputs (the scale of normalized images)."""
    if batch < 1:
        raise InputError(f"batch must be >= 1, got {batch}")
    return np.random.default_rng(seed).standard_normal((batch, *sample_shape)).astype(np.float32)


def image_inputs(folder: PathLike, batch: int, preprocessing: Preprocessing, layout: str = "nchw") -> np.ndarray:
    """The first ``batch`` images of ``folder`` (sorted, cycled), preprocessed, in ``layout``."""
    if batch < 1:
        raise InputError(f"batch must be >= 1, got {batch}")
    images = load_images(folder, preprocessing, batch)
    return np.ascontiguousarray(images.transpose(0, 2, 3, 1)) if layout == "nhwc" else images
