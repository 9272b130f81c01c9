"""Architecture inference: the ViT5Config that a state_dict was saved from.

Everything with a parameter is read from key presence and shapes.  What leaves no trace in the
weights (RoPE bases, L_cache, gate kinds, mask parametrization, heads without QK-norm) takes the
upstream default and can be overridden (see ``OVERRIDES``).
"""

from __future__ import annotations

import math
import re
from typing import Any

from .blocks import block_kinds
from .config import NetworkConfig, ViT5Config, section_from_dict
from .errors import CheckpointError, ConfigError
from .weight_shapes import require_keys, same_for_all, shape_of

# Override name -> (config section, field).
OVERRIDES = {
    "num_heads": ("attention", "num_heads"),
    "rope_base": ("attention", "rope_base"),
    "reg_rope_base": ("attention", "reg_rope_base"),
    "attention_qk_norm": ("attention", "qk_norm"),
    "attention_scale": ("attention", "scale"),
    "L_cache": ("hyena", "L_cache"),
    "gate": ("hyena", "gate"),
    "gate_2": ("hyena", "gate_2"),
    "hyena_qk_norm": ("hyena", "qk_norm"),
    "mask_parametrization": ("hyena.mask", "parametrization"),
    "min_attenuation_at_step": ("hyena.mask", "min_attenuation_at_step"),
    "max_attenuation_at_limit": ("hyena.mask", "max_attenuation_at_limit"),
    "mlp_activation": ("", "mlp_activation"),
    "norm_eps": ("", "norm_eps"),
    "num_classes": ("network", "num_classes"),
}


def apply_overrides(config: ViT5Config, **overrides) -> ViT5Config:
    for name, value in overrides.items():
        if value is None:
            continue
        if name not in OVERRIDES:
            raise ConfigError(f"unknown architecture override {name!r}; known: {', '.join(OVERRIDES)}")
        section, attr = OVERRIDES[name]
        target = config
        for part in filter(None, section.split(".")):
            target = getattr(target, part)
            if target is None:
                raise ConfigError(f"override {name!r} does not apply: the model has no {section} section")
        setattr(target, attr, value)
    return config


def _block_indices(sd: dict) -> list[int]:
    indices = sorted({int(m.group(1)) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k))})
    if not indices:
        raise CheckpointError("not a ViT-5 state_dict: no 'blocks.N.' keys")
    if indices != list(range(len(indices))):
        raise CheckpointError(f"block indices are not contiguous: {indices}")
    return indices


def _mlp_settings(sd: dict, prefix: str, hidden_dim: int) -> tuple[float, bool, bool]:
    rows = shape_of(sd, prefix + "mlp.layer1.weight", 2)[0]
    hidden = shape_of(sd, prefix + "mlp.layer2.weight", 2)[1]
    gated = rows == 2 * hidden
    return hidden / hidden_dim, gated, prefix + "mlp.layer1.bias" in sd


def infer_config(sd: dict, **overrides) -> ViT5Config:
    require_keys(sd, ["patch_embed.weight", "pos_embed", "out_norm.weight", "out_proj.weight"])
    hidden_dim, in_channels, patch, patch_w = shape_of(sd, "patch_embed.weight", 4)
    if patch != patch_w:
        raise CheckpointError(f"non-square patches {patch}x{patch_w} are not supported")
    n = shape_of(sd, "pos_embed", 3)[1]
    grid = math.isqrt(n)
    if grid * grid != n:
        raise CheckpointError(f"pos_embed has {n} patches, not a square grid; only square images are supported")
    registers = shape_of(sd, "reg_token", 3)[1] if "reg_token" in sd else 0
    ratio = None
    if "cls_token" in sd:
        readout = "cls"
    elif "register_neck.weight" in sd:
        readout = "register_concat"
        ratio = hidden_dim // shape_of(sd, "register_neck.weight", 2)[0]
    else:
        readout = "gap"

    kinds = block_kinds()
    pattern, mlp, layer_scale = "", {}, {}
    settings: dict[str, dict[int, dict]] = {}  # block letter -> block index -> its settings
    for i in _block_indices(sd):
        prefix = f"blocks.{i}."
        try:
            results = [(letter, kinds[letter].detect(sd, prefix)) for letter in kinds]
        except (KeyError, IndexError, ValueError, TypeError) as exc:  # a kind's detector met a key it needs missing
            raise CheckpointError(f"block {i}: weights of an unexpected layout ({type(exc).__name__}: {exc})") from None
        found = [(letter, value) for letter, value in results if value is not None]
        if len(found) != 1:
            names = ", ".join(kind.name for kind in kinds.values())
            letters = ", ".join(letter for letter, _ in found)
            raise CheckpointError(
                f"block {i}: unknown sequence mixer (keys of none of: {names})"
                if not found
                else f"block {i}: keys of several block kinds ({letters})"
            )
        kind, value = found[0]
        settings.setdefault(kind, {})[i] = value
        require_keys(sd, [prefix + "mlp.layer1.weight", prefix + "mlp.layer2.weight", prefix + "input_norm.weight"])
        pattern += kind
        mlp[i] = (kind,) + _mlp_settings(sd, prefix, hidden_dim)
        layer_scale[i] = prefix + "ls_attn.gamma" in sd

    expansions = {i: v[1] for i, v in mlp.items()}
    expansion = same_for_all(expansions, "MLP width")
    gated = same_for_all({i: v[2] for i, v in mlp.items()}, "MLP gating")
    mlp_bias = {}
    for kind in sorted(set(pattern)):
        mlp_bias[kind] = same_for_all({i: v[3] for i, v in mlp.items() if v[0] == kind}, f"MLP bias of {kind} blocks")
    activation = overrides.pop("mlp_activation", None)
    if activation is None:
        if gated:
            raise CheckpointError(
                "gated MLP (GLU or SwiGLU): the weights cannot tell which; pass mlp_activation (CLI: --mlp-activation)"
            )
        activation = "gelu_exact"

    sections: dict[str, Any] = {}  # config section -> its fields, from the kinds' configure hooks
    for letter, by_block in settings.items():
        try:
            sections.update(kinds[letter].configure(by_block, hidden_dim, overrides))
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise CheckpointError(f"{kinds[letter].name} blocks: weights of an unexpected layout ({exc})") from None
    config = ViT5Config(
        network=NetworkConfig(
            in_channels=in_channels,
            num_classes=shape_of(sd, "out_proj.weight", 2)[0],
            hidden_dim=hidden_dim,
            num_blocks=len(pattern),
            patch_size=patch,
            image_size=grid * patch,
            num_registers=registers,
            readout=readout,
            layer_pattern=pattern,
            neck_compression_ratio=ratio,
        ),
        mlp_bias=mlp_bias,
        mlp_expansion_factor=expansion,
        mlp_activation=activation,
        layer_scale=same_for_all(layer_scale, "LayerScale presence"),
        **{name: section_from_dict(name, value) for name, value in sections.items()},
    )
    return apply_overrides(config, **overrides)
