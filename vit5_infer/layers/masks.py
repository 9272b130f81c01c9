"""Gaussian modulation of the Hyena kernel (SPEC 5.7)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class GaussianModulationND(nn.Module):
    """``kernel * exp(-1/2 sum_d grid_d^2 / std[d, c]^2)`` with std clamped into its bounds.

    Upstream clamps ``std_param`` in place through a forward pre-hook; checkpoints can hold values
    slightly outside the bounds, so the clamp is applied explicitly (without mutation) here.
    """

    def __init__(
        self,
        data_dim: int,
        num_channels: int,
        grid_size: int,
        min_attenuation_at_step: float = 0.1,
        max_attenuation_at_limit: float = 0.95,
        init_extent: float = 1.0,
        parametrization: str = "direct",
    ):
        super().__init__()
        self.parametrization = parametrization
        self.grid_size = grid_size
        self.min_std = (2.0 / (grid_size - 1)) * math.sqrt(-1.0 / (2.0 * math.log(min_attenuation_at_step)))
        self.max_std = math.sqrt(-1.0 / (2.0 * math.log(max_attenuation_at_limit)))
        self.std_param = nn.Parameter(torch.full((data_dim, num_channels), float(init_extent)))

    def std(self) -> torch.Tensor:
        p = self.std_param.float()
        if self.parametrization == "log":
            p = p.exp()
        elif self.parametrization == "softplus":
            p = F.softplus(p)
        return p.clamp(self.min_std, self.max_std)

    def mask(self, grid: torch.Tensor) -> torch.Tensor:
        """``[1, Ky, Kx, C]`` float32 mask for a ``[1, Ky, Kx, data_dim]`` float32 grid."""
        std = self.std()
        exponent = (grid[..., :, None].float() ** 2 / std**2).sum(dim=-2)
        return torch.exp(-0.5 * exponent)

    def forward(self, grid: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        return kernel * self.mask(grid).to(kernel.dtype)
