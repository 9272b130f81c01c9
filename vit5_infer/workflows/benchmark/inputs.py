"""The inputs every backend is benchmarked on (seeded or real images) and their PyTorch FP32 reference
(every compared output)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Union

from vit5_infer.preprocessing import Preprocessing, load_images, seeded_pixels


def seeded_inputs(model, batches: Iterable[int], seed: int) -> dict:
    """The same seeded ``pixel_values`` for every backend: batch size -> float32 NCHW array."""
    return {b: seeded_pixels((b, *model.input_shape), seed) for b in batches}


def image_inputs(folder: Union[str, Path], pre: Preprocessing, batches: Iterable[int]) -> dict:
    """Real images for every batch size (the first ``b`` images of the folder, cycled)."""
    batches = list(batches)
    images = load_images(folder, pre, max(batches))
    return {b: images[:b] for b in batches}


def reference_outputs(model, inputs: dict, outputs=None) -> dict:
    """PyTorch FP32 outputs of ``model`` for every batch of ``inputs``: batch size -> {name: array}
    (``outputs``: names from vit5_infer.vocabulary.OUTPUT_NAMES; default ``logits``)."""
    import torch

    with torch.inference_mode():
        return {
            b: {
                name: value.float().numpy()
                for name, value in model.forward_outputs(torch.from_numpy(x), outputs).items()
            }
            for b, x in inputs.items()
        }
