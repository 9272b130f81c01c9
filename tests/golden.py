"""The vendored upstream data (tests/data, see its README): paths, case names and loaders."""

from __future__ import annotations

from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data"
GOLDEN = DATA / "golden"
DIGITS = DATA / "digits"
GOLDEN_CASES = ["attn_cls_r4", "attn_gap_r0_bias", "hyena_gap", "hybrid_pool_film", "hybrid_compress_concat"]
# What the weights of a bare state_dict cannot tell (see vit5_infer.architecture.OVERRIDES).
BARE_OVERRIDES = {"attn_gap_r0_bias": {"num_heads": 2, "rope_base": 1000.0}}


def load_golden_io(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(pixel_values NCHW float32, upstream logits) of a golden case."""
    data = np.load(GOLDEN / f"{name}.npz")
    return np.ascontiguousarray(data["input_nhwc"].transpose(0, 3, 1, 2)), data["logits"]


def load_golden_features(name: str) -> dict[str, np.ndarray]:
    """Upstream's features of a golden case (pre_logits, patch_tokens, cls_token, register_tokens)."""
    with np.load(GOLDEN / f"{name}.features.npz") as data:
        return {key: data[key] for key in data.files}
