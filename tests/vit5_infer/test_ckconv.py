"""FFT long convolution (SPEC 5.6) against an explicit loop and the flipped-kernel conv2d."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vit5_infer.layers.ckconv import direct_conv2d, fft_size, fftconv2d


def loop_conv(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """y[b,c,i,j] = sum_{dy,dx} x[b,c,i-dy,j-dx] * kernel[c, dy+X-1, dx+Y-1] (x zero outside)."""
    b, c, nx, ny = x.shape
    y = torch.zeros(b, c, nx, ny, dtype=torch.float64)
    for bi in range(b):
        kb = kernel[bi if kernel.shape[0] > 1 else 0]
        for ci in range(c):
            for i in range(nx):
                for j in range(ny):
                    acc = 0.0
                    for dy in range(-(nx - 1), nx):
                        for dx in range(-(ny - 1), ny):
                            if 0 <= i - dy < nx and 0 <= j - dx < ny:
                                acc += float(x[bi, ci, i - dy, j - dx]) * float(kb[ci, dy + nx - 1, dx + ny - 1])
                    y[bi, ci, i, j] = acc
    return y


def flipped_conv2d(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Depthwise cross-correlation with the kernel flipped in both axes, padding (X-1, Y-1), per sample."""
    b, c, nx, ny = x.shape
    out = []
    for bi in range(b):
        k = kernel[bi if kernel.shape[0] > 1 else 0].flip(-2, -1)[:, None]
        out.append(F.conv2d(x[bi : bi + 1], k, padding=(nx - 1, ny - 1), groups=c))
    return torch.cat(out)


def _inputs(b, c, nx, ny, kb, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, c, nx, ny, generator=gen)
    kernel = torch.randn(kb, c, 2 * nx - 1, 2 * ny - 1, generator=gen)
    return x, kernel


@pytest.mark.parametrize("kb", [1, 2], ids=["shared", "per_sample"])
def test_fftconv_matches_explicit_loop(kb):
    x, kernel = _inputs(2, 3, 3, 4, kb)
    ref = loop_conv(x, kernel)
    torch.testing.assert_close(fftconv2d(x, kernel).double(), ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kb", [1, 3], ids=["shared", "per_sample"])
@pytest.mark.parametrize("nx, ny", [(5, 4), (6, 4), (4, 7)])
def test_fftconv_matches_flipped_kernel_conv2d(kb, nx, ny):
    x, kernel = _inputs(3, 4, nx, ny, kb, seed=nx * ny)
    torch.testing.assert_close(fftconv2d(x, kernel), flipped_conv2d(x, kernel), atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("kb", [1, 2], ids=["shared", "per_sample"])
def test_direct_conv2d_matches_loop(kb):
    x, kernel = _inputs(2, 2, 3, 3, kb, seed=7)
    torch.testing.assert_close(direct_conv2d(x, kernel).double(), loop_conv(x, kernel), atol=1e-5, rtol=0)


def test_shortcut_term_is_per_channel_times_input():
    x, kernel = _inputs(2, 3, 4, 4, 1, seed=3)
    shortcut = torch.tensor([0.5, -2.0, 3.0])
    with_sc = fftconv2d(x, kernel, shortcut)
    without = fftconv2d(x, kernel)
    torch.testing.assert_close(with_sc - without, shortcut[None, :, None, None] * x, atol=1e-5, rtol=0)
    ref = loop_conv(x, kernel) + shortcut.double()[None, :, None, None] * x.double()
    torch.testing.assert_close(with_sc.double(), ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(direct_conv2d(x, kernel, shortcut), with_sc, atol=2e-5, rtol=0)


def test_centre_tap_alone_is_identity_times_tap():
    x, _ = _inputs(1, 2, 3, 5, 1)
    kernel = torch.zeros(1, 2, 5, 9)
    kernel[0, :, 2, 4] = torch.tensor([2.0, -1.0])  # centre tap [X-1, Y-1]
    torch.testing.assert_close(
        fftconv2d(x, kernel), x * torch.tensor([2.0, -1.0])[None, :, None, None], atol=1e-6, rtol=0
    )


def test_offset_tap_is_a_convolution_not_a_correlation():
    # Tap (dy, dx) = (+1, 0) moves content one row DOWN: y[i] = x[i - 1].
    x, _ = _inputs(1, 1, 4, 3, 1)
    kernel = torch.zeros(1, 1, 7, 5)
    kernel[0, 0, 3 + 1, 2] = 1.0
    y = fftconv2d(x, kernel)
    torch.testing.assert_close(y[0, 0, 1:], x[0, 0, :-1], atol=1e-6, rtol=0)
    torch.testing.assert_close(y[0, 0, 0], torch.zeros(3), atol=1e-6, rtol=0)


def test_fft_size_formula():
    assert fft_size(14, 27) == 28  # double grid: 2N
    assert fft_size(15, 29) == 30
    assert fft_size(5, 3) == 7  # N + (K+1)//2
    assert fft_size(5, 9) == 10


def test_fftconv_small_odd_kernel_is_same_convolution():
    # Kernels smaller than the double grid: F = N + (K+1)//2, crop [K//2, K//2 + N) -> "same" conv.
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(2, 3, 6, 5, generator=gen)
    kernel = torch.randn(1, 3, 3, 5, generator=gen)
    ref = F.conv2d(x, kernel[0].flip(-2, -1)[:, None], padding=(1, 2), groups=3)
    torch.testing.assert_close(fftconv2d(x, kernel), ref, atol=2e-5, rtol=0)


def test_fftconv_preserves_input_dtype():
    x, kernel = _inputs(1, 2, 3, 3, 1)
    y = fftconv2d(x.double(), kernel)
    assert y.dtype == torch.float64
