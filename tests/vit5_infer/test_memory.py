"""The batch memory estimate that refuses hopeless batch sizes before anything is allocated."""

from __future__ import annotations

import pytest

from vit5_infer import get_preset
from vit5_infer.errors import InputError
from vit5_infer.memory import batch_bytes, check_batch_fits, physical_memory_bytes


def test_estimate_grows_with_batch_and_covers_the_inputs():
    config = get_preset("vit5-small")
    one = batch_bytes(config, 1)
    assert batch_bytes(config, 8) == 8 * one
    assert one > 3 * 224 * 224 * 4  # at least the input image itself


def test_hopeless_batch_is_refused_with_an_estimate():
    config = get_preset("vit5-small")
    with pytest.raises(InputError, match=r"--batch 100000000 needs about [\d.]+ GiB") as info:
        check_batch_fits(config, 100_000_000)
    assert "machine's" in str(info.value)
    check_batch_fits(config, 1)  # a single image always fits


def test_physical_memory_is_known_here():
    total = physical_memory_bytes()
    assert total is None or total > 2**28
