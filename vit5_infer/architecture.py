"""Architecture inference: the ViT5Config that a state_dict was saved from.

Everything with a parameter is read from key presence and shapes.  What leaves no trace in the
weights (RoPE bases, L_cache, gate kinds, mask parametrization, heads without QK-norm) takes the
upstream default and can be overridden (see ``OVERRIDES``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, NamedTuple, Optional

from .blocks import block_kinds, kind_hook
from .config import AttentionConfig, FilmConfig, HyenaConfig, MaskConfig, NetworkConfig, ViT5Config
from .errors import CheckpointError, ConfigError

HYENA = "sequence_mixer.inner_mixer."
CONV = HYENA + "mixer.global_conv."
KERNEL = CONV + "kernel."

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


def _shape(sd: dict, key: str, rank: int | None = None) -> tuple:
    """The shape of ``sd[key]``; CheckpointError when it is missing or not of ``rank`` dimensions."""
    if key not in sd:
        raise CheckpointError(f"not a ViT-5 state_dict: missing {key}")
    shape = tuple(sd[key].shape)
    if rank is not None and len(shape) != rank:
        raise CheckpointError(f"{key} has shape {list(shape)}; a ViT-5 checkpoint has a {rank}-D tensor there")
    return shape


def _require(sd: dict, keys) -> None:
    missing = [k for k in keys if k not in sd]
    if missing:
        raise CheckpointError(f"not a ViT-5 state_dict: missing {', '.join(missing)}")


def _same_for_all(values: dict, what: str):
    distinct = {repr(v) for v in values.values()}
    if len(distinct) > 1:
        raise CheckpointError(f"blocks disagree on {what} ({', '.join(sorted(distinct))}); not supported")
    return next(iter(values.values()))


def _block_indices(sd: dict) -> list[int]:
    indices = sorted({int(m.group(1)) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k))})
    if not indices:
        raise CheckpointError("not a ViT-5 state_dict: no 'blocks.N.' keys")
    if indices != list(range(len(indices))):
        raise CheckpointError(f"block indices are not contiguous: {indices}")
    return indices


def _mlp_settings(sd: dict, prefix: str, hidden_dim: int) -> tuple[float, bool, bool]:
    rows = _shape(sd, prefix + "mlp.layer1.weight", 2)[0]
    hidden = _shape(sd, prefix + "mlp.layer2.weight", 2)[1]
    gated = rows == 2 * hidden
    return hidden / hidden_dim, gated, prefix + "mlp.layer1.bias" in sd


def _attention_settings(sd: dict, prefix: str, hidden_dim: int) -> dict:
    p = prefix + "sequence_mixer."
    out: dict[str, Any] = {
        "qkv_bias": p + "qkv.bias" in sd,
        "out_proj_bias": p + "proj.bias" in sd,
        "qk_norm": None,
        "head_dim": None,
    }
    if p + "q_norm.weight" in sd:
        out["qk_norm"] = "rmsnorm"
        out["head_dim"] = _shape(sd, p + "q_norm.weight", 1)[0]
    return out


def _hyena_settings(sd: dict, prefix: str) -> dict:
    k = prefix + KERNEL
    hidden = sorted(
        int(m.group(1)) for key in sd if (m := re.match(re.escape(k) + r"hidden_linears\.(\d+)\.weight$", key))
    )
    if not hidden:
        raise CheckpointError(f"{prefix}: Hyena block without a SIREN kernel (no hidden_linears); unsupported kernel")
    conv_w = _shape(sd, prefix + HYENA + "mixer.short_conv.weight")
    return {
        "kernel_embedding_dim": _shape(sd, k + "positional_embedding.linear.weight", 2)[0],
        "kernel_hidden_dim": _shape(sd, k + "hidden_linears.0.weight", 2)[0],
        "kernel_num_layers": len(hidden) + 1,
        "kernel_bias": k + "out_linear.bias" in sd,
        "short_conv_kernel_size": conv_w[-1],
        "short_conv_bias": prefix + HYENA + "mixer.short_conv.bias" in sd,
        "pixelhyena_norm": "rmsnorm" if prefix + HYENA + "mixer.pixelhyena_norm.weight" in sd else None,
        "output_norm": "rmsnorm" if prefix + HYENA + "mixer.output_norm.weight" in sd else None,
        "mask": prefix + CONV + "mask.std_param" in sd,
        "grn": prefix + "grn.gamma" in sd,
        "qkv_bias": prefix + HYENA + "qkv_proj.bias" in sd,
        "out_proj_bias": prefix + HYENA + "out_proj.bias" in sd,
    }


def _film_settings(sd: dict, prefix: str, kernel_hidden_dim: int):
    g = prefix + KERNEL + "film_generator.mlp."
    if g + "0.weight" not in sd:
        return None
    film_hidden, _cond = _shape(sd, g + "0.weight", 2)
    n_layers = _shape(sd, g + "2.weight", 2)[0] // (2 * kernel_hidden_dim)
    if prefix + "register_pooling.logits" in sd:
        return {"conditioning": "register_pooling", "film_hidden_dim": film_hidden, "num_film_layers": n_layers}
    if prefix + "register_pooling.compress.weight" in sd:
        return {
            "conditioning": "register_compress_concat",
            "film_hidden_dim": film_hidden,
            "num_film_layers": n_layers,
            "compressed_dim": _shape(sd, prefix + "register_pooling.compress.weight", 2)[0],
        }
    # SPEC 9.8: upstream would silently ignore this generator.
    raise CheckpointError(f"{prefix}: FiLM generator without register conditioning; upstream never uses it")


def detect_attention(sd: dict, prefix: str):
    if prefix + "sequence_mixer.qkv.weight" not in sd:
        return None
    return _attention_settings(sd, prefix, _shape(sd, "patch_embed.weight", 4)[0])


def configure_attention(by_block: dict, hidden_dim: int, overrides: dict) -> dict:
    a = _same_for_all(by_block, "attention settings")
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
    return {
        "attention": AttentionConfig(
            num_heads=heads, qk_norm=a["qk_norm"], qkv_bias=a["qkv_bias"], out_proj_bias=a["out_proj_bias"]
        )
    }


def detect_hyena(sd: dict, prefix: str):
    if prefix + HYENA + "qkv_proj.weight" not in sd:
        return None
    hyena = _hyena_settings(sd, prefix)
    return {"hyena": hyena, "film": _film_settings(sd, prefix, hyena["kernel_hidden_dim"])}


def configure_hyena(by_block: dict, hidden_dim: int, overrides: dict) -> dict:
    h = dict(_same_for_all({i: v["hyena"] for i, v in by_block.items()}, "Hyena settings"))
    h["mask"] = MaskConfig() if h["mask"] else None
    hyena = HyenaConfig(**h)
    film = None
    f = _same_for_all({i: v["film"] for i, v in by_block.items()}, "FiLM settings")
    if f is not None:
        f = dict(f, film_after_pos_embed=f["num_film_layers"] == hyena.kernel_num_layers)
        film = FilmConfig(**f)
    return {"hyena": hyena, "film": film}


class BlockDetector(NamedTuple):
    """How architecture inference reads one block kind from the weights (blocks.py)."""

    detect: Callable[[dict, str], Optional[dict]]
    configure: Callable[[dict, int, dict], dict]


#: block kind letter -> how to read blocks of that kind from the weights
BLOCK_DETECTORS: dict[str, BlockDetector] = {
    "A": BlockDetector(detect_attention, configure_attention),
    "H": BlockDetector(detect_hyena, configure_hyena),
}


def _detector(letter: str) -> BlockDetector:
    return kind_hook(BLOCK_DETECTORS, letter, "weights detector")


def infer_config(sd: dict, **overrides) -> ViT5Config:
    _require(sd, ["patch_embed.weight", "pos_embed", "out_norm.weight", "out_proj.weight"])
    hidden_dim, in_channels, patch, patch_w = _shape(sd, "patch_embed.weight", 4)
    if patch != patch_w:
        raise CheckpointError(f"non-square patches {patch}x{patch_w} are not supported")
    n = _shape(sd, "pos_embed", 3)[1]
    grid = math.isqrt(n)
    if grid * grid != n:
        raise CheckpointError(f"pos_embed has {n} patches, not a square grid; only square images are supported")
    registers = _shape(sd, "reg_token", 3)[1] if "reg_token" in sd else 0
    ratio = None
    if "cls_token" in sd:
        readout = "cls"
    elif "register_neck.weight" in sd:
        readout = "register_concat"
        ratio = hidden_dim // _shape(sd, "register_neck.weight", 2)[0]
    else:
        readout = "gap"

    kinds = block_kinds()
    pattern, mlp, layer_scale = "", {}, {}
    settings: dict[str, dict[int, dict]] = {}  # block letter -> block index -> its settings
    for i in _block_indices(sd):
        prefix = f"blocks.{i}."
        try:
            results = [(letter, _detector(letter).detect(sd, prefix)) for letter in kinds]
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
        _require(sd, [prefix + "mlp.layer1.weight", prefix + "mlp.layer2.weight", prefix + "input_norm.weight"])
        pattern += kind
        mlp[i] = (kind,) + _mlp_settings(sd, prefix, hidden_dim)
        layer_scale[i] = prefix + "ls_attn.gamma" in sd

    expansions = {i: v[1] for i, v in mlp.items()}
    expansion = _same_for_all(expansions, "MLP width")
    gated = _same_for_all({i: v[2] for i, v in mlp.items()}, "MLP gating")
    mlp_bias = {}
    for kind in sorted(set(pattern)):
        mlp_bias[kind] = _same_for_all({i: v[3] for i, v in mlp.items() if v[0] == kind}, f"MLP bias of {kind} blocks")
    activation = overrides.pop("mlp_activation", None)
    if activation is None:
        if gated:
            raise CheckpointError(
                "gated MLP (GLU or SwiGLU): the weights cannot tell which; pass mlp_activation (CLI: --mlp-activation)"
            )
        activation = "gelu_exact"

    sections = {}
    for letter, by_block in settings.items():
        try:
            sections.update(_detector(letter).configure(by_block, hidden_dim, overrides))
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise CheckpointError(f"{kinds[letter].name} blocks: weights of an unexpected layout ({exc})") from None
    config = ViT5Config(
        network=NetworkConfig(
            in_channels=in_channels,
            num_classes=_shape(sd, "out_proj.weight", 2)[0],
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
        layer_scale=_same_for_all(layer_scale, "LayerScale presence"),
        **sections,
    )
    return apply_overrides(config, **overrides)
