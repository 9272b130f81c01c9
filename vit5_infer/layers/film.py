"""Register conditioning of Hyena kernels: pooling, compression and the FiLM generator (SPEC 6)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class KernelFiLMGenerator(nn.Module):
    def __init__(self, cond_dim: int, kernel_hidden_dim: int, num_film_layers: int, film_hidden_dim: int = 64):
        super().__init__()
        self.cond_dim = cond_dim
        self.kernel_hidden_dim = kernel_hidden_dim
        self.num_film_layers = num_film_layers
        self.film_hidden_dim = film_hidden_dim
        self.mlp = nn.Sequential(
            nn.Linear(cond_dim, film_hidden_dim),
            nn.GELU(),  # exact erf form (SPEC 9.15)
            nn.Linear(film_hidden_dim, num_film_layers * 2 * kernel_hidden_dim),
        )

    def forward(self, cond: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = self.mlp(cond)
        hd = self.kernel_hidden_dim
        pairs = []
        for layer in range(self.num_film_layers):
            chunk = out[:, 2 * layer * hd : 2 * (layer + 1) * hd]
            pairs.append((chunk[:, :hd], chunk[:, hd:]))
        return pairs

    def flop_count(self) -> int:
        c, fh = self.cond_dim, self.film_hidden_dim
        return 2 * c * fh + fh + 2 * fh * (2 * self.num_film_layers * self.kernel_hidden_dim)


class RegisterPooling(nn.Module):
    """Softmax-weighted mean of the register tokens: ``[B, R, D] -> [B, D]``."""

    def __init__(self, num_registers: int):
        super().__init__()
        self.num_registers = num_registers
        self.logits = nn.Parameter(torch.zeros(num_registers))

    @property
    def out_dim_factor(self) -> int:
        return 1

    def forward(self, registers: torch.Tensor) -> torch.Tensor:
        weights = F.softmax(self.logits, dim=0)
        return (registers * weights[None, :, None]).sum(dim=1)

    def flop_count(self, dim: int) -> int:
        return 3 * self.num_registers + 2 * self.num_registers * dim


class RegisterCompressConcat(nn.Module):
    """Each register linearly compressed, then flattened register-major: ``[B, R*compressed_dim]``."""

    def __init__(self, num_registers: int, hidden_dim: int, compressed_dim: int):
        super().__init__()
        self.num_registers = num_registers
        self.compressed_dim = compressed_dim
        self.compress = nn.Linear(hidden_dim, compressed_dim, bias=False)

    @property
    def out_dim(self) -> int:
        return self.num_registers * self.compressed_dim

    def forward(self, registers: torch.Tensor) -> torch.Tensor:
        return self.compress(registers).flatten(1)

    def flop_count(self, dim: int) -> int:
        return self.num_registers * 2 * dim * self.compressed_dim
