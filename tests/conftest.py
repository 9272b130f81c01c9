"""Shared fixtures and the slow tier: the upstream data vendored in tests/data (see tests/data/README.md).

Test modules import data helpers from ``golden`` (never from conftest) and take the fixtures below."""

from __future__ import annotations

from pathlib import Path

import pytest

from golden import DIGITS, GOLDEN, load_golden_features, load_golden_io


def pytest_addoption(parser):
    parser.addoption(
        "--slow",
        action="store_true",
        default=False,
        help="also run the slow tier (full-size presets); .ci/run runs it as its own step",
    )


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


@pytest.fixture(scope="session")
def golden_io():
    """``golden_io(name) -> (pixel_values NCHW, upstream logits)``."""
    return load_golden_io


@pytest.fixture(scope="session")
def golden_features():
    """``golden_features(name) -> {feature name: array}``."""
    return load_golden_features
