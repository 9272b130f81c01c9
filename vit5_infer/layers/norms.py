"""Normalization layers: RMSNorm, L2Norm, GlobalResponseNorm (SPEC sections 2 and 4)."""

from __future__ import annotations

import torch
from torch import nn


class RMSNorm(nn.Module):
    """``x * rsqrt(mean(x^2) + eps) * weight`` over the last axis, computed in float32."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (y * self.weight.float()).to(x.dtype)

    def flop_count(self, num_tokens: int) -> int:
        return 3 * num_tokens * self.dim


class L2Norm(nn.Module):
    """``x / max(||x||_2, eps)`` along ``dim``; no parameters and, as upstream, no flop_count."""

    def __init__(self, dim: int = -1, eps: float = 1e-12):
        super().__init__()
        self.dim = dim
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / x.norm(p=2, dim=self.dim, keepdim=True).clamp_min(self.eps)


class GlobalResponseNorm(nn.Module):
    """ConvNeXt-V2 GRN over every token of ``[B, T, D]``."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.gamma = nn.Parameter(torch.zeros(dim))
        self.beta = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = x.pow(2).sum(dim=1, keepdim=True).sqrt()
        n = g / (g.mean(dim=-1, keepdim=True) + self.eps)
        return self.gamma * (x * n) + self.beta + x

    def flop_count(self, num_tokens: int) -> int:
        return 6 * num_tokens * self.dim


class LayerScale(nn.Module):
    def __init__(self, dim: int, init_value: float = 1e-4):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma
