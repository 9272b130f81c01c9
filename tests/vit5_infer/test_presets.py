"""Built-in presets (SPEC 10): parameter counts and registry behaviour."""

from __future__ import annotations

import pytest
import torch

from vit5_infer import PRESETS, ConfigError, ViT5ClassificationNet, get_preset, preset_names


@pytest.mark.parametrize(
    "name, params",
    [("vit5-small", 22_010_112), ("vit5-small-hyena", 22_323_456), ("vit5-small-hybrid", 22_399_704)],
)
def test_preset_parameter_counts(name, params):
    model = ViT5ClassificationNet(get_preset(name))
    assert model.num_parameters() == params
    assert sum(v.numel() for v in model.state_dict().values()) == params  # buffers are non-persistent


def test_hybrid_with_8_registers_would_have_upstream_count_but_is_rejected():
    cfg = get_preset("vit5-small-hybrid")
    cfg.network.num_registers = 8
    with pytest.raises(ConfigError, match="perfect square"):
        ViT5ClassificationNet(cfg)


def test_hybrid_with_9_registers_keeps_l_cache_15():
    cfg = get_preset("vit5-small-hybrid")
    cfg.network.num_registers = 9
    cfg.validate()
    assert (cfg.num_tokens, cfg.num_pad, cfg.hyena_rows) == (206, 4, 15)
    assert cfg.l_cache() == (15, 15)
    assert not cfg.l_cache_exceeded()


@pytest.mark.parametrize(
    "name, pattern, readout, registers, rows, l_cache",
    [
        ("vit5-small", "A" * 12, "cls", 4, 15, None),
        ("vit5-small-hyena", "H" * 12, "gap", 0, 14, (14, 14)),
        ("vit5-small-hybrid", "HA" * 6, "cls", 4, 15, (15, 15)),
    ],
)
def test_preset_hyper_parameters(name, pattern, readout, registers, rows, l_cache):
    cfg = get_preset(name).validate()
    net = cfg.network
    assert (net.hidden_dim, net.num_blocks, net.patch_size, net.image_size, net.num_classes) == (384, 12, 16, 224, 1000)
    assert (net.layer_pattern, net.readout, net.num_registers) == (pattern, readout, registers)
    assert cfg.mlp_hidden_dim == 1536 and cfg.mlp_activation in ("gelu", "gelu_exact")
    assert cfg.hyena_rows == rows
    if l_cache:
        assert cfg.l_cache() == l_cache
    if cfg.attention is not None:
        att = cfg.attention
        assert (att.num_heads, att.qk_norm, att.rope_base, att.reg_rope_base) == (6, "rmsnorm", 10000.0, 100.0)
        assert cfg.head_dim == 64


def test_hybrid_preset_film_and_mask():
    cfg = get_preset("vit5-small-hybrid")
    assert cfg.hyena.mask is not None and cfg.hyena.grn
    assert cfg.film.conditioning == "register_pooling"
    assert (cfg.film.film_hidden_dim, cfg.film.num_film_layers, cfg.film.film_after_pos_embed) == (64, 3, True)
    assert cfg.film_cond_dim() == 384


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset 'vit5-huge'"):
        get_preset("vit5-huge")


def test_get_preset_returns_an_independent_copy():
    cfg = get_preset("vit5-small")
    cfg.network.num_registers = 9
    assert PRESETS["vit5-small"].network.num_registers == 4
    assert get_preset("vit5-small").network.num_registers == 4


def test_preset_names():
    names = preset_names()
    assert {"vit5-small", "vit5-small-hyena", "vit5-small-hybrid"} <= set(names)
    for name in names:
        get_preset(name).validate()


@pytest.mark.parametrize("name", preset_names())
def test_recorded_preset_sizes_match_the_modules(name):
    # `vit5 presets` prints PRESET_SIZES without importing torch; they must equal the modules' own counts.
    from vit5_infer.presets import PRESET_SIZES

    with torch.device("meta"):
        model = ViT5ClassificationNet(get_preset(name))
    assert PRESET_SIZES[name] == (model.num_parameters(), model.flop_count(inference=True))
