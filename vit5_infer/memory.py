"""How much host memory a batch needs, estimated before anything is allocated.

A mistyped ``--batch 100000`` must be refused in one line, not by the kernel's OOM killer after
the machine has swapped for minutes.  The estimate is deliberately rough (inputs, the widest
activations of one block, attention scores, logits) and only guards against the hopeless.
"""

from __future__ import annotations

import os
from typing import Optional

from .errors import InputError

FLOAT_BYTES = 4


def batch_bytes(config, batch: int) -> int:
    """Approximate peak bytes of one FP32 forward pass over ``batch`` images (inputs included)."""
    net = config.network
    tokens = config.num_padded_tokens
    pixels = net.in_channels * net.image_size * net.image_size
    widest = max(config.mlp_hidden_dim * 2, 3 * net.hidden_dim)
    per_image = pixels + tokens * (widest + 4 * net.hidden_dim)
    if config.attention is not None:
        per_image += config.attention.num_heads * config.num_tokens**2 * 2
    return batch * (per_image + net.num_classes) * FLOAT_BYTES


def physical_memory_bytes() -> Optional[int]:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


def check_batch_fits(config, batch: int, what: str = "--batch", copies: int = 1) -> None:
    """InputError when ``copies`` forward passes at ``batch`` cannot fit in this machine's memory."""
    total = physical_memory_bytes()
    need = batch_bytes(config, batch) * copies
    if total is not None and need > total:
        raise InputError(
            f"{what} {batch} needs about {need / 2**30:.1f} GiB for inputs and activations, more than this "
            f"machine's {total / 2**30:.1f} GiB of memory; use a smaller batch"
        )


def check_inputs_fit(sample_shape, count: int, what: str = "--batch", copies: int = 1) -> None:
    """InputError when ``count`` FP32 inputs of ``sample_shape`` (``copies`` times over) cannot fit in
    this machine's memory: the guard for options that hold every input at once (calibration sets,
    comparison batches), where activations are computed a few inputs at a time."""
    per_input = FLOAT_BYTES
    for dim in sample_shape:
        per_input *= int(dim)
    total = physical_memory_bytes()
    need = per_input * int(count) * copies
    if total is not None and need > total:
        raise InputError(
            f"{what} {count} needs about {need / 2**30:.1f} GiB for its inputs alone, more than this machine's "
            f"{total / 2**30:.1f} GiB of memory; use a smaller {what}"
        )
