"""The attention block kind ("A"): multi-head self-attention with 2-D RoPE and QK-norm (SPEC 3, 9.1)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Optional

from ..errors import CheckpointError, ConfigError
from ..weight_shapes import same_for_all, shape_of
from .registry import BlockKind, register_block_kind

QK_NORMS = (None, "rmsnorm", "l2")


def validate(config: Any) -> None:
    net, att = config.network, config.attention
    if att is None:
        raise ConfigError("layer_pattern has attention blocks but the config has no 'attention' section")
    if att.num_heads <= 0 or net.hidden_dim % att.num_heads:
        raise ConfigError(f"hidden_dim {net.hidden_dim} is not divisible by num_heads {att.num_heads}")
    if config.head_dim % 4:
        raise ConfigError(
            f"head_dim {config.head_dim} must be a multiple of 4 for the 2-D RoPE (two axes, paired halves)"
        )
    if att.qk_norm not in QK_NORMS:
        raise ConfigError(f"attention.qk_norm must be 'rmsnorm', 'l2' or null, got {att.qk_norm!r}")
    r = net.num_registers
    if r > 0 and math.isqrt(r) ** 2 != r:
        # 9.1: the register RoPE grid has floor(sqrt(R))^2 rows, so every forward would fail.
        lo, hi = math.isqrt(r) ** 2, (math.isqrt(r) + 1) ** 2
        raise ConfigError(
            f"num_registers={r} is not a perfect square: the attention RoPE register grid would have "
            f"{lo} rows and every forward pass would fail upstream; use {lo or 1} or {hi} registers"
        )


def detect(sd: Mapping[str, Any], prefix: str) -> Optional[dict]:
    p = prefix + "sequence_mixer."
    if p + "qkv.weight" not in sd:
        return None
    settings: dict[str, Any] = {
        "qkv_bias": p + "qkv.bias" in sd,
        "out_proj_bias": p + "proj.bias" in sd,
        "qk_norm": None,
        "head_dim": None,
    }
    if p + "q_norm.weight" in sd:
        settings["qk_norm"] = "rmsnorm"
        settings["head_dim"] = shape_of(sd, p + "q_norm.weight", 1)[0]
    return settings


def configure(by_block: dict, hidden_dim: int, overrides: dict) -> dict:
    a = same_for_all(by_block, "attention settings")
    heads = overrides.pop("num_heads", None)
    if heads is None:
        if a["head_dim"] is not None:
            heads = hidden_dim // a["head_dim"]
        elif hidden_dim % 64 == 0:
            heads = hidden_dim // 64  # upstream presets: head_dim 64
        else:
            raise CheckpointError(
                f"cannot infer the number of attention heads (no QK-norm weights and hidden_dim {hidden_dim} "
                "is not a multiple of 64); pass num_heads (CLI: --num-heads)"
            )
    fields = ("qk_norm", "qkv_bias", "out_proj_bias")
    return {"attention": {"num_heads": heads, **{name: a[name] for name in fields}}}


def build_attention(config: Any):
    """The attention mixer of ``config`` (a validated ViT5Config)."""
    from ..layers import ViT5Attention  # torch: imported when a network is built, not with the config

    att, net = config.attention, config.network
    return ViT5Attention(
        hidden_dim=net.hidden_dim,
        num_heads=att.num_heads,
        num_patches_h=config.grid_size,
        num_patches_w=config.grid_size,
        num_registers=net.num_registers,
        has_cls=config.has_cls,  # SPEC 9.2: always derived from the readout
        qk_norm=att.qk_norm,
        rope_base=att.rope_base,
        reg_rope_base=att.reg_rope_base,
        qkv_bias=att.qkv_bias,
        out_proj_bias=att.out_proj_bias,
        scale=att.scale,
        norm_eps=config.norm_eps,
    )


def build(config: Any):
    from ..layers import residual_block

    return residual_block(config, "A", build_attention(config))


register_block_kind(BlockKind("A", "attention", validate=validate, detect=detect, configure=configure, build=build))
