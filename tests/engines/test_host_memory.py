import sys

import numpy as np
import pytest

from vit5_infer.engines.host_memory import peak_rss_bytes, reset_peak_rss

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux only)")


def test_peak_rss_follows_an_allocation_after_reset():
    assert reset_peak_rss()
    before = peak_rss_bytes()
    block = np.ones(64 * 1024 * 1024 // 8)  # 64 MiB, touched
    after = peak_rss_bytes()
    assert before is not None and after is not None
    assert after - before >= 48 * 1024 * 1024
    del block


def test_reset_lowers_the_peak_back_to_current_use():
    # reset first: the peak is then this block's, not whatever an earlier test in the same worker reached
    assert reset_peak_rss()
    block = np.ones(64 * 1024 * 1024 // 8)
    del block
    high = peak_rss_bytes()
    assert reset_peak_rss()
    assert peak_rss_bytes() < high
