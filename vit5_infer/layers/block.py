"""ViT5ResidualBlock: pre-norm mixer and MLP branches with LayerScale, GRN and register pooling (SPEC 2)."""

from __future__ import annotations

from typing import Any, Protocol, cast

import torch
from torch import nn

from .mlp import MLP
from .norms import GlobalResponseNorm, LayerScale, RMSNorm


class _CountsFlops(Protocol):
    """The layers' ``flop_count``, which the block's mixer and pooling (any nn.Module) provide."""

    def flop_count(self, *args: Any) -> int: ...


class ViT5ResidualBlock(nn.Module):
    def __init__(
        self,
        sequence_mixer: nn.Module,
        mlp: MLP,
        hidden_dim: int,
        norm_eps: float = 1e-6,
        layer_scale: bool = True,
        register_pooling: nn.Module | None = None,
        num_registers: int = 0,
        register_start_idx: int = 1,
        grn: GlobalResponseNorm | None = None,
    ):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.input_norm = RMSNorm(hidden_dim, norm_eps)
        self.sequence_mixer = sequence_mixer
        self.mlp_norm = RMSNorm(hidden_dim, norm_eps)
        self.mlp = mlp
        self.ls_attn = LayerScale(hidden_dim) if layer_scale else None
        self.ls_mlp = LayerScale(hidden_dim) if layer_scale else None
        self.register_pooling = register_pooling
        self.grn = grn
        self.num_registers = num_registers
        self.register_start_idx = register_start_idx

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.input_norm(x)
        if self.register_pooling is not None:
            s = self.register_start_idx
            # Registers are read from the *normalized* tokens, as upstream's code does.
            cond = self.register_pooling(a[:, s : s + self.num_registers, :])
            m = self.sequence_mixer(a, conditioning=cond)
        else:
            m = self.sequence_mixer(a)
        if self.grn is not None:
            m = self.grn(m)
        x = x + (self.ls_attn(m) if self.ls_attn is not None else m)
        h = self.mlp(self.mlp_norm(x))
        return x + (self.ls_mlp(h) if self.ls_mlp is not None else h)

    def flop_count(self, num_tokens: int, inference: bool = False) -> int:
        t, d = num_tokens, self.hidden_dim
        total = self.input_norm.flop_count(t)
        if self.register_pooling is not None:
            total += cast(_CountsFlops, self.register_pooling).flop_count(d)
        total += cast(_CountsFlops, self.sequence_mixer).flop_count(t, inference)
        if self.grn is not None:
            total += self.grn.flop_count(t)
        total += t * d * ((self.ls_attn is not None) + (self.ls_mlp is not None))
        return total + self.mlp_norm.flop_count(t) + self.mlp.flop_count(t)


def residual_block(
    config: Any,
    letter: str,
    mixer: nn.Module,
    register_pooling: nn.Module | None = None,
    grn: GlobalResponseNorm | None = None,
) -> ViT5ResidualBlock:
    """A pre-norm residual block around ``mixer`` with the MLP, norms and LayerScale of ``config`` (a
    ViT5Config) for blocks of kind ``letter``."""
    net = config.network
    d = net.hidden_dim
    mlp = MLP(d, config.mlp_activation, config.mlp_expansion_factor, bias=config.mlp_has_bias(letter))
    return ViT5ResidualBlock(
        mixer,
        mlp,
        d,
        norm_eps=config.norm_eps,
        layer_scale=config.layer_scale,
        register_pooling=register_pooling,
        num_registers=net.num_registers,
        register_start_idx=config.num_patches + int(config.has_cls),  # SPEC 9.8: injected, never guessed
        grn=grn,
    )
