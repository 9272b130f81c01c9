"""Tiny hand-built architectures for the reference-module tests (fast on 2 CPU cores)."""

from __future__ import annotations

import torch

from vit5_infer import AttentionConfig, FilmConfig, HyenaConfig, MaskConfig, NetworkConfig, ViT5Config


def tiny_config(
    pattern: str = "A",
    readout: str = "cls",
    registers: int = 4,
    hidden: int = 16,
    heads: int = 2,
    patch: int = 4,
    image: int = 12,
    classes: int = 5,
    ratio=None,
    qk_norm="rmsnorm",
    l_cache=None,
    mask: bool = False,
    grn: bool = False,
    film: FilmConfig | None = None,
    kernel_hidden: int = 8,
    kernel_embedding: int = 8,
    kernel_layers: int = 3,
) -> ViT5Config:
    has_a, has_h = "A" in pattern, "H" in pattern
    return ViT5Config(
        network=NetworkConfig(
            in_channels=3,
            num_classes=classes,
            hidden_dim=hidden,
            num_blocks=len(pattern),
            patch_size=patch,
            image_size=image,
            num_registers=registers,
            readout=readout,
            layer_pattern=pattern,
            neck_compression_ratio=ratio,
        ),
        attention=AttentionConfig(num_heads=heads, qk_norm=qk_norm) if has_a else None,
        hyena=HyenaConfig(
            kernel_hidden_dim=kernel_hidden,
            kernel_embedding_dim=kernel_embedding,
            kernel_num_layers=kernel_layers,
            L_cache=l_cache,
            mask=MaskConfig() if mask else None,
            grn=grn,
        )
        if has_h
        else None,
        film=film,
        mlp_bias={k: False for k in set(pattern)},
    )


@torch.no_grad()
def randomize(module: torch.nn.Module, seed: int = 0, scale: float = 0.3) -> torch.nn.Module:
    """Non-trivial parameters (norm gains around 1) so that every term of a formula matters."""
    gen = torch.Generator().manual_seed(seed)
    for name, p in module.named_parameters():
        noise = torch.randn(p.shape, generator=gen)
        if name.endswith("norm.weight") or name.endswith("gamma"):
            p.copy_(1.0 + 0.2 * noise)
        elif name.endswith("std_param"):
            p.copy_(0.2 + 0.5 * torch.rand(p.shape, generator=gen))
        else:
            p.copy_(scale * noise)
    return module
