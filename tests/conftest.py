"""Shared fixtures: the upstream conformance data in ../shared/golden."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
GOLDEN = (REPO.parent / "shared" / "golden").resolve()
GOLDEN_CASES = ["attn_cls_r4", "attn_gap_r0_bias", "hyena_gap", "hybrid_pool_film", "hybrid_compress_concat"]
# What the weights of a bare state_dict cannot tell (see vit5_infer.inference.OVERRIDES).
BARE_OVERRIDES = {"attn_gap_r0_bias": {"num_heads": 2, "rope_base": 1000.0}}


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    if not GOLDEN.is_dir():
        pytest.fail(f"golden data not found at {GOLDEN}; tests must run from a checkout beside ../shared")
    return GOLDEN


def load_golden_io(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(pixel_values NCHW float32, upstream logits) of a golden case."""
    data = np.load(GOLDEN / f"{name}.npz")
    return np.ascontiguousarray(data["input_nhwc"].transpose(0, 3, 1, 2)), data["logits"]
