"""Architecture inference from bare weights (vit5_infer.architecture)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from vit5_infer import CheckpointError, ConfigError, ViT5Config
from vit5_infer.architecture import apply_overrides, infer_config
from vit5_infer.checkpoint import read_state_dict

from golden import BARE_OVERRIDES, GOLDEN_CASES

WEIGHT_DETERMINED_HYENA = (
    "kernel_hidden_dim",
    "kernel_num_layers",
    "kernel_embedding_dim",
    "kernel_bias",
    "short_conv_kernel_size",
    "short_conv_bias",
    "pixelhyena_norm",
    "output_norm",
    "grn",
    "qkv_bias",
    "out_proj_bias",
)


def _infer(golden_dir, name, **extra):
    sd = read_state_dict(golden_dir / f"{name}.safetensors")
    return infer_config(sd, **{**BARE_OVERRIDES.get(name, {}), **extra})


@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_inferred_config_matches_json_on_weight_determined_fields(golden_dir, name):
    ref = ViT5Config.from_json(golden_dir / f"{name}.json")
    got = _infer(golden_dir, name)
    assert dataclasses.asdict(got.network) == dataclasses.asdict(ref.network)
    assert got.mlp_bias == ref.mlp_bias
    assert got.mlp_expansion_factor == ref.mlp_expansion_factor
    assert got.layer_scale == ref.layer_scale
    assert (got.attention is None) == (ref.attention is None)
    if ref.attention is not None:
        for f in ("num_heads", "qk_norm", "qkv_bias", "out_proj_bias"):
            assert getattr(got.attention, f) == getattr(ref.attention, f), f
    assert (got.hyena is None) == (ref.hyena is None)
    if ref.hyena is not None:
        for f in WEIGHT_DETERMINED_HYENA:
            assert getattr(got.hyena, f) == getattr(ref.hyena, f), f
        assert (got.hyena.mask is None) == (ref.hyena.mask is None)
        # L_cache is not in the weights: the default (grid rows) is what every golden case used.
        assert got.l_cache() == ref.l_cache()
    assert got.film == ref.film


@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_inferred_config_equals_json_except_l_cache(golden_dir, name):
    ref = ViT5Config.from_json(golden_dir / f"{name}.json")
    got = _infer(golden_dir, name)
    if ref.hyena is not None:
        got.hyena.L_cache = ref.hyena.L_cache
    assert got == ref


def test_heads_cannot_be_inferred_without_qk_norm(golden_dir):
    sd = read_state_dict(golden_dir / "attn_gap_r0_bias.safetensors")
    with pytest.raises(CheckpointError, match="pass num_heads"):
        infer_config(sd)


def test_rope_base_defaults_when_not_overridden(golden_dir):
    sd = read_state_dict(golden_dir / "attn_gap_r0_bias.safetensors")
    assert infer_config(sd, num_heads=2).attention.rope_base == 10000.0
    assert infer_config(sd, num_heads=2, rope_base=None).attention.rope_base == 10000.0  # None: not given
    assert infer_config(sd, num_heads=2, rope_base=1000.0).attention.rope_base == 1000.0


def test_unknown_override_rejected(golden_dir):
    with pytest.raises(ConfigError, match="unknown architecture override 'heads'"):
        _infer(golden_dir, "attn_cls_r4", heads=4)


def test_override_for_missing_section_rejected(golden_dir):
    with pytest.raises(ConfigError, match="no hyena section"):
        _infer(golden_dir, "attn_cls_r4", L_cache=7)


def test_overrides_set_fields(golden_dir):
    cfg = ViT5Config.from_json(golden_dir / "hybrid_pool_film.json")
    apply_overrides(cfg, L_cache=9, mask_parametrization="log", num_classes=3, norm_eps=1e-5)
    assert cfg.hyena.L_cache == 9
    assert cfg.hyena.mask.parametrization == "log"
    assert cfg.network.num_classes == 3
    assert cfg.norm_eps == 1e-5


def test_film_generator_without_register_conditioning_rejected(golden_dir):
    sd = read_state_dict(golden_dir / "hybrid_pool_film.safetensors")
    del sd["blocks.0.register_pooling.logits"]
    with pytest.raises(CheckpointError, match="FiLM generator without register conditioning"):
        infer_config(sd)


def test_gated_mlp_needs_activation(golden_dir):
    sd = read_state_dict(golden_dir / "attn_cls_r4.safetensors")
    for i in range(2):
        w = sd[f"blocks.{i}.mlp.layer1.weight"]
        sd[f"blocks.{i}.mlp.layer1.weight"] = torch.cat([w, w])  # [2 * Hm, D]
    with pytest.raises(CheckpointError, match="pass mlp_activation"):
        infer_config(sd)
    cfg = infer_config(sd, mlp_activation="swiglu")
    assert cfg.mlp_activation == "swiglu"


def test_unknown_mixer_rejected(golden_dir):
    sd = read_state_dict(golden_dir / "attn_cls_r4.safetensors")
    sd = {k.replace("blocks.1.sequence_mixer.qkv.", "blocks.1.sequence_mixer.in_proj."): v for k, v in sd.items()}
    with pytest.raises(CheckpointError, match="block 1: unknown sequence mixer"):
        infer_config(sd)


def test_non_square_patch_grid_rejected(golden_dir):
    sd = read_state_dict(golden_dir / "attn_cls_r4.safetensors")
    sd["pos_embed"] = torch.zeros(1, 15, 64)
    with pytest.raises(CheckpointError, match="not a square grid"):
        infer_config(sd)


# ---- hostile state_dicts ------------------------------------------------------------


def _golden_state(golden_dir, name):
    from safetensors.torch import load_file

    return load_file(str(golden_dir / f"{name}.safetensors"))


@pytest.mark.parametrize(
    "key, change, fragment",
    [
        ("pos_embed", lambda t: t.flatten(), "pos_embed has shape .* 3-D"),
        ("patch_embed.weight", lambda t: t.flatten(), "patch_embed.weight has shape .* 4-D"),
        ("blocks.0.sequence_mixer.q_norm.weight", lambda t: t[0], "q_norm.weight has shape \\[\\]; .* 1-D"),
        ("reg_token", lambda t: t[0, 0], "reg_token has shape .* 3-D"),
        ("out_proj.weight", lambda t: t[0], "out_proj.weight has shape .* 2-D"),
        ("blocks.1.mlp.layer1.weight", lambda t: t[None], "mlp.layer1.weight has shape .* 2-D"),
    ],
)
def test_tensors_of_an_unexpected_rank_are_checkpoint_errors(golden_dir, key, change, fragment):
    state = _golden_state(golden_dir, "attn_cls_r4")
    state[key] = change(state[key])
    with pytest.raises(CheckpointError, match=fragment):
        infer_config(state)


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("hyena_gap", "positional_embedding.linear.weight"),
        ("hyena_gap", "mixer.short_conv.weight"),
        ("hybrid_pool_film", "film_generator.mlp.2.weight"),
        ("hybrid_compress_concat", "register_pooling.compress.weight"),
    ],
)
def test_missing_hyena_and_film_keys_are_checkpoint_errors(golden_dir, name, fragment):
    state = _golden_state(golden_dir, name)
    dropped = [k for k in state if k.endswith(fragment)]
    assert dropped
    for key in dropped:
        del state[key]
    with pytest.raises(CheckpointError):
        infer_config(state)
