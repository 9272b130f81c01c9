"""Two-layer MLP of the residual blocks (SPEC section 4)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..vocabulary import GATED_ACTIVATIONS


def _swiglu(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=-1)
    return b * F.silu(a)


def _glu(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=-1)
    return a * torch.sigmoid(b)


# "gelu" upstream is the exact erf form, whatever its docstring says (SPEC 9.15).
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": lambda x: F.gelu(x),
    "gelu_exact": lambda x: F.gelu(x),
    "relu": F.relu,
    "silu": F.silu,
    "glu": _glu,
    "swiglu": _swiglu,
}


class MLP(nn.Module):
    def __init__(self, dim: int, activation: str = "gelu", expansion_factor: float = 2.0, bias: bool = False):
        super().__init__()
        self.dim = dim
        self.activation = activation
        self.hidden_dim = int(dim * expansion_factor)
        self.gated = activation in GATED_ACTIVATIONS
        width = self.hidden_dim * (2 if self.gated else 1)
        self.layer1 = nn.Linear(dim, width, bias=bias)
        self.layer2 = nn.Linear(self.hidden_dim, dim, bias=bias)
        self._act = ACTIVATIONS[activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer2(self._act(self.layer1(x)))

    def flop_count(self, num_tokens: int) -> int:
        g = 2 if self.gated else 1
        t, d, h = num_tokens, self.dim, self.hidden_dim
        return 2 * t * d * g * h + (2 if self.gated else 1) * t * h + 2 * t * h * d
