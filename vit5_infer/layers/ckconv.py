"""Continuous-kernel long convolution (CKConvND, SPEC 5.4) and its FFT / direct forms (SPEC 5.6)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .siren import SIRENKernelND


def fft_size(n: int, k: int) -> int:
    return min(n + (k + 1) // 2, 2 * n)


def fftconv2d(x: torch.Tensor, kernel: torch.Tensor, shortcut: torch.Tensor | None = None) -> torch.Tensor:
    """Upstream's ``fftconv2d_fp32_bhl``: x ``[B, C, X, Y]``, kernel ``[1|B, C, Kx, Ky]``."""
    n_x, n_y = x.shape[-2:]
    k_x, k_y = kernel.shape[-2:]
    f = (fft_size(n_x, k_x), fft_size(n_y, k_y))
    spectrum = torch.fft.rfft2(x.float(), s=f) * torch.fft.rfft2(kernel.float(), s=f)
    y = torch.fft.irfft2(spectrum, s=f)
    y = y[..., k_x // 2 : k_x // 2 + n_x, k_y // 2 : k_y // 2 + n_y].to(x.dtype)
    if shortcut is not None:
        y = y + shortcut.to(x.dtype)[:, None, None] * x
    return y


def direct_conv2d(x: torch.Tensor, kernel: torch.Tensor, shortcut: torch.Tensor | None = None) -> torch.Tensor:
    """The same operation as a depthwise cross-correlation with the kernel flipped in both axes.

    Exact for the double grid (kernel ``(2X-1) x (2Y-1)``) where no circular wrap reaches the crop.
    Per-sample kernels run as one grouped convolution over ``B*C`` channels.
    """
    b, c, n_x, n_y = x.shape
    k_x, k_y = kernel.shape[-2:]
    weight = kernel.flip(-2, -1)
    pad = (k_x // 2, k_y // 2)
    if weight.shape[0] == 1:
        y = F.conv2d(x, weight.reshape(c, 1, k_x, k_y).to(x.dtype), padding=pad, groups=c)
    else:
        y = F.conv2d(
            x.reshape(1, b * c, n_x, n_y), weight.reshape(b * c, 1, k_x, k_y).to(x.dtype), padding=pad, groups=b * c
        ).reshape(b, c, n_x, n_y)
    if shortcut is not None:
        y = y + shortcut.to(x.dtype)[:, None, None] * x
    return y


class CKConvND(nn.Module):
    """2-D long convolution whose ``(2H-1) x (2W-1)`` kernel comes from a SIREN (double grid)."""

    def __init__(self, hidden_dim: int, kernel: SIRENKernelND, mask: nn.Module | None = None):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.shortcut = nn.Parameter(torch.zeros(hidden_dim))
        self.kernel = kernel
        self.mask = mask

    @property
    def has_film(self) -> bool:
        return self.kernel.has_film

    def channels_first_kernel(self, conditioning: torch.Tensor | None = None) -> torch.Tensor:
        """The masked kernel as ``[1 or B, C, 2H-1, 2W-1]``."""
        kernel, grid = self.kernel(conditioning)
        if self.mask is not None:
            kernel = self.mask(grid, kernel)
        return kernel.permute(0, 3, 1, 2)

    def forward(self, z: torch.Tensor, conditioning: torch.Tensor | None = None) -> torch.Tensor:
        expected = tuple(self.kernel.seq_lens)
        if tuple(z.shape[-2:]) != expected:
            raise ValueError(f"CKConvND built for a {expected} grid got {tuple(z.shape[-2:])}")
        return fftconv2d(z, self.channels_first_kernel(conditioning), self.shortcut)

    def flop_count(self, inference: bool = False) -> int:
        seq = self.kernel.seq_lens
        padded = [2 * s for s in seq]  # double grid: Np = min(s + (k+1)//2, 2s) = 2s
        prod_np = math.prod(padded)
        n_fft = 2 if (inference and not self.has_film) else 3
        total: float = self.kernel.flop_count(inference)
        total += n_fft * 5 * self.hidden_dim * prod_np * sum(math.log2(n) for n in padded)
        total += 6 * self.hidden_dim * prod_np + self.hidden_dim * math.prod(seq)
        return int(total)
