"""SIREN implicit kernel over a 2-D coordinate grid (SPEC 5.5)."""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from .film import KernelFiLMGenerator


def axis_coordinates(cache_len: int, request_len: int) -> torch.Tensor:
    """The central ``2*request_len - 1`` SIREN coordinates of an axis with cache extent ``cache_len``.

    Tap offset d sits at d / (cache_len - 1).  When the request exceeds the cache, upstream rebuilds
    the cache with a wider limit so the spacing is kept; this reproduces that float32 linspace.
    """
    extent = max(cache_len, request_len)
    limit = 1.0 + (extent - cache_len) / (cache_len - 1)
    points = torch.linspace(-limit, limit, 2 * extent - 1, dtype=torch.float32)
    offset = extent - request_len
    return points[offset : offset + 2 * request_len - 1]


def coordinate_grid(l_cache: tuple[int, ...], seq_lens: tuple[int, ...]) -> torch.Tensor:
    """``[1, 2*s_y - 1, 2*s_x - 1, 2]`` grid, last axis ordered (y, x)."""
    ys = axis_coordinates(l_cache[0], seq_lens[0])
    xs = axis_coordinates(l_cache[1], seq_lens[1])
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gy, gx], dim=-1).unsqueeze(0)


class PositionalEmbedding(nn.Module):
    def __init__(self, data_dim: int, embedding_dim: int, bias: bool):
        super().__init__()
        self.linear = nn.Linear(data_dim, embedding_dim, bias=bias)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        w = self.linear.weight
        out = nn.functional.linear(
            grid.float(), w.float(), None if self.linear.bias is None else self.linear.bias.float()
        )
        return out.to(w.dtype)


class SIRENKernelND(nn.Module):
    """Kernel ``[1 or B, 2s_y-1, 2s_x-1, out_dim]`` (channels-last) from sines of linear maps.

    omega_0 / hidden_omega_0 only matter at initialization upstream: the learned weights already
    hold the frequencies, so the forward is a plain ``sin``.
    """

    grid: torch.Tensor  # a buffer, declared for type checkers (nn.Module resolves it dynamically)
    l_cache: tuple[int, ...]
    seq_lens: tuple[int, ...]

    def __init__(
        self,
        out_dim: int,
        mlp_hidden_dim: int,
        num_layers: int,
        embedding_dim: int,
        l_cache: tuple[int, int],
        seq_lens: tuple[int, int],
        use_bias: bool = True,
        film_generator: KernelFiLMGenerator | None = None,
        film_after_pos_embed: bool = False,
        data_dim: int = 2,
    ):
        super().__init__()
        self.out_dim = out_dim
        self.data_dim = data_dim
        self.embedding_dim = embedding_dim
        self.mlp_hidden_dim = mlp_hidden_dim
        self.l_cache = tuple(l_cache)
        self.seq_lens = tuple(seq_lens)
        self.positional_embedding = PositionalEmbedding(data_dim, embedding_dim, use_bias)
        widths = [embedding_dim] + [mlp_hidden_dim] * (num_layers - 1)
        self.hidden_linears = nn.ModuleList(
            nn.Linear(widths[i], widths[i + 1], bias=use_bias) for i in range(num_layers - 1)
        )
        self.out_linear = nn.Linear(mlp_hidden_dim, out_dim, bias=use_bias)
        self.film_generator = film_generator
        self.film_after_pos_embed = film_after_pos_embed
        self.register_buffer("grid", coordinate_grid(self.l_cache, self.seq_lens), persistent=False)

    @property
    def has_film(self) -> bool:
        return self.film_generator is not None

    def _apply(self, fn, recurse=True):
        # SPEC 9.12: the coordinates must stay float32 whatever dtype the module is cast to.
        super()._apply(fn, recurse)
        self.grid = coordinate_grid(self.l_cache, self.seq_lens).to(self.grid.device)
        return self

    def forward(self, conditioning: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        generator = self.film_generator
        film = generator(conditioning) if (generator is not None and conditioning is not None) else None
        h = torch.sin(self.positional_embedding(self.grid))
        offset = 0
        if film is not None and self.film_after_pos_embed:
            h = _modulate(h, *film[0])
            offset = 1
        for i, linear in enumerate(self.hidden_linears):
            h = torch.sin(linear(h))
            if film is not None:
                h = _modulate(h, *film[i + offset])
        return self.out_linear(h), self.grid

    def flop_count(self, inference: bool = False) -> int:
        if inference and not self.has_film:
            return 0  # the kernel is input-independent and cacheable
        g = 1
        for s in self.seq_lens:
            g *= 2 * s - 1
        e, hd = self.embedding_dim, self.mlp_hidden_dim
        total = 2 * g * self.data_dim * e + g * e
        for linear in cast("list[nn.Linear]", list(self.hidden_linears)):
            total += 2 * g * linear.in_features * linear.out_features + g * linear.out_features
        total += 2 * g * hd * self.out_dim
        if self.film_generator is not None:
            n_mod = len(self.hidden_linears) + int(self.film_after_pos_embed)
            total += self.film_generator.flop_count() + n_mod * 2 * g * hd
        return total


def _modulate(h: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    # gamma/beta are [B, Hd]; broadcast over the 2-D grid.
    return gamma[:, None, None, :] * h + beta[:, None, None, :]
