"""Built-in architectures (SPEC section 10) with concrete numbers instead of LazyConfig."""

from __future__ import annotations

import copy

from .config import AttentionConfig, FilmConfig, HyenaConfig, MaskConfig, NetworkConfig, ViT5Config
from .errors import ConfigError


def _network(hidden_dim: int, num_blocks: int, pattern: str, readout: str, registers: int) -> NetworkConfig:
    return NetworkConfig(
        in_channels=3,
        num_classes=1000,
        hidden_dim=hidden_dim,
        num_blocks=num_blocks,
        patch_size=16,
        image_size=224,
        num_registers=registers,
        readout=readout,
        layer_pattern=pattern,
    )


def _attention(num_heads: int) -> AttentionConfig:
    return AttentionConfig(num_heads=num_heads, qk_norm="rmsnorm", rope_base=10000.0, reg_rope_base=100.0)


def _hyena(l_cache: int, mask: bool, grn: bool) -> HyenaConfig:
    return HyenaConfig(
        kernel_hidden_dim=32,
        kernel_num_layers=3,
        kernel_embedding_dim=32,
        omega_0=10.0,
        hidden_omega_0=1.0,
        kernel_bias=True,
        L_cache=l_cache,
        mask=MaskConfig() if mask else None,
        grn=grn,
    )


def _attention_model(hidden_dim: int, num_blocks: int, heads: int) -> ViT5Config:
    return ViT5Config(
        network=_network(hidden_dim, num_blocks, "A" * num_blocks, "cls", 4),
        attention=_attention(heads),
        mlp_bias={"A": False},
    )


PRESETS: dict[str, ViT5Config] = {
    # A: ViT-5-S attention (v5/attention_pretrain.py)
    "vit5-small": _attention_model(384, 12, 6),
    "vit5-base": _attention_model(768, 12, 12),
    "vit5-large": _attention_model(1024, 24, 16),
    # B: ViT-5-S Hyena GAP (v5/hyena_gap_pretrain.py)
    "vit5-small-hyena": ViT5Config(
        network=_network(384, 12, "H" * 12, "gap", 0),
        hyena=_hyena(14, mask=False, grn=False),
        mlp_bias={"H": False},
    ),
    # C: hybrid HA + FiLM with 4 registers; the upstream FiLM helper's R=8 cannot run (SPEC 9.1).
    "vit5-small-hybrid": ViT5Config(
        network=_network(384, 12, "HA" * 6, "cls", 4),
        attention=_attention(6),
        hyena=_hyena(15, mask=True, grn=True),
        film=FilmConfig(
            conditioning="register_pooling", film_hidden_dim=64, num_film_layers=3, film_after_pos_embed=True
        ),
        mlp_bias={"A": False, "H": False},
    ),
}

PRESET_DESCRIPTIONS = {
    "vit5-small": "ViT-5-S, 12 attention blocks, CLS + 4 registers",
    "vit5-base": "ViT-5-B, 768 wide, 12 attention blocks, 12 heads",
    "vit5-large": "ViT-5-L, 1024 wide, 24 attention blocks, 16 heads",
    "vit5-small-hyena": "ViT-5-S Hyena, 12 Hyena blocks, GAP readout",
    "vit5-small-hybrid": "ViT-5-S hybrid HA x6, Gaussian mask, GRN, register-pooled FiLM, 4 registers",
}


# (parameters, inference FLOPs per image) of each preset, so that listing them needs no torch;
# tests/vit5_infer/test_presets.py recomputes both from the modules.
PRESET_SIZES = {
    "vit5-small": (22010112, 9412799616),
    "vit5-base": (86486016, 35896538880),
    "vit5-large": (304108544, 125762936832),
    "vit5-small-hyena": (22323456, 8881398864),
    "vit5-small-hybrid": (22399704, 9696041718),
}


def preset_names() -> list[str]:
    return list(PRESETS)


def get_preset(name: str) -> ViT5Config:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; available: {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])
