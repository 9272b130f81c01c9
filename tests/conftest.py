"""Shared fixtures: the upstream conformance data vendored in tests/data (see tests/data/README.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parent / "data"
GOLDEN = DATA / "golden"
DIGITS = DATA / "digits"
GOLDEN_CASES = ["attn_cls_r4", "attn_gap_r0_bias", "hyena_gap", "hybrid_pool_film", "hybrid_compress_concat"]
# What the weights of a bare state_dict cannot tell (see vit5_infer.inference.OVERRIDES).
BARE_OVERRIDES = {"attn_gap_r0_bias": {"num_heads": 2, "rope_base": 1000.0}}


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", default=False,
                     help="also run the slow tier (full-size presets); .ci/run runs it as its own step")


def pytest_collection_modifyitems(config, items):
    # -m given explicitly (e.g. `-m slow`) decides on its own; otherwise the slow tier needs --slow.
    if config.getoption("--slow") or config.getoption("-m"):
        return
    skip = pytest.mark.skip(reason="slow tier: run with --slow (or -m slow)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    if not GOLDEN.is_dir():
        pytest.fail(f"vendored golden data missing at {GOLDEN} (see tests/data/README.md)")
    return GOLDEN


@pytest.fixture(scope="session")
def digits_dir() -> Path:
    if not DIGITS.is_dir():
        pytest.fail(f"vendored digits data missing at {DIGITS} (see tests/data/README.md)")
    return DIGITS


def load_golden_io(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(pixel_values NCHW float32, upstream logits) of a golden case."""
    data = np.load(GOLDEN / f"{name}.npz")
    return np.ascontiguousarray(data["input_nhwc"].transpose(0, 3, 1, 2)), data["logits"]


def load_golden_features(name: str) -> dict[str, np.ndarray]:
    """Upstream's features of a golden case (pre_logits, patch_tokens, cls_token, register_tokens)."""
    with np.load(GOLDEN / f"{name}.features.npz") as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="session")
def golden_io():
    """``golden_io(name) -> (pixel_values NCHW, upstream logits)``."""
    return load_golden_io


@pytest.fixture(scope="session")
def golden_features():
    """``golden_features(name) -> {feature name: array}``."""
    return load_golden_features
