"""Inputs for a comparison: seeded noise or preprocessed images, in the graph's shape and layout."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from vit5_infer.errors import InputError
from vit5_infer.preprocessing import Preprocessing, load_images, seeded_pixels, to_layout
from vit5_infer.vocabulary import PathLike

if TYPE_CHECKING:
    import onnx  # imported where used: the CLI imports this package before it parses its flags


def image_input(model: onnx.ModelProto) -> onnx.ValueInfoProto:
    """The graph's one input (initializers listed as inputs by old IR versions left out); InputError for a
    graph with none or with several: a comparison feeds one image batch."""
    weights = {init.name for init in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in weights]
    if len(inputs) != 1:
        names = ", ".join(value.name for value in inputs[:4]) or "none"
        raise InputError(f"the graph has {len(inputs)} inputs ({names}); an image graph takes exactly one")
    return inputs[0]


def check_batch(sample_shape: Sequence[int], batch: int, config=None) -> None:
    """InputError for a ``batch`` below 1 or one whose inputs, or whose marked activations (every tensor
    of both graphs kept, roughly two forward passes per block), cannot fit in this machine's memory."""
    from vit5_infer.memory import check_batch_fits, check_inputs_fit

    if batch < 1:
        raise InputError(f"--batch must be >= 1, got {batch}")
    check_inputs_fit(sample_shape, batch, "--batch", copies=2)
    if config is not None:
        check_batch_fits(config, batch, "--batch", copies=2 * config.network.num_blocks)


def graph_input_spec(model: onnx.ModelProto) -> tuple[tuple[int, ...], str]:
    """(input shape without the batch axis, layout) of an image graph.

    The layout is the exporter's metadata where present, else read from the shape (the channel
    axis is the short one).
    """
    from vit5_infer.graph_metadata import read_metadata

    value = image_input(model)
    dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim)
    sample = dims[1:]
    if len(sample) != 3 or any(d is None for d in sample):
        shown = "x".join("?" if d is None else str(d) for d in dims)
        raise InputError(
            f"the graph's input {value.name} ({shown}) is not a static image shape [N, C, H, W] or [N, H, W, C]"
        )
    shape = tuple(int(d) for d in sample if d is not None)
    layout = (read_metadata(model).get("preprocessing") or {}).get("layout")
    if layout not in ("nchw", "nhwc"):
        layout = "nhwc" if shape[2] < shape[0] else "nchw"
    return shape, layout


def seeded_inputs(sample_shape: Sequence[int], batch: int, seed: int = 0) -> np.ndarray:
    """Standard-normal inputs (the scale of normalized images)."""
    if batch < 1:
        raise InputError(f"batch must be >= 1, got {batch}")
    return seeded_pixels((batch, *sample_shape), seed)


def image_inputs(folder: PathLike, batch: int, preprocessing: Preprocessing, layout: str = "nchw") -> np.ndarray:
    """The first ``batch`` images of ``folder`` (sorted, cycled), preprocessed, in ``layout``."""
    if batch < 1:
        raise InputError(f"batch must be >= 1, got {batch}")
    images = load_images(folder, preprocessing, batch)
    return to_layout(images, layout)
