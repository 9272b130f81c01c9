"""ViT5Config: JSON round trip, unknown fields and the SPEC section 9 validation errors."""

from __future__ import annotations

import json

import pytest
from vit5_tiny import tiny_config

from vit5_infer import ConfigError, FilmConfig, ViT5Config

from golden import GOLDEN_CASES


@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_json_round_trip_of_golden_configs(golden_dir, name, tmp_path):
    cfg = ViT5Config.from_json(golden_dir / f"{name}.json")
    path = tmp_path / "cfg.json"
    path.write_text(cfg.to_json())
    again = ViT5Config.from_json(path)
    assert again == cfg
    assert again.to_dict() == cfg.to_dict()
    assert ViT5Config.from_dict(json.loads(cfg.to_json())) == cfg


def test_json_values_are_read_into_typed_sections(golden_dir):
    cfg = ViT5Config.from_json(golden_dir / "hybrid_pool_film.json")
    assert cfg.network.layer_pattern == "HA"
    assert cfg.attention.num_heads == 4
    assert cfg.hyena.L_cache == 6
    assert cfg.hyena.mask.type == "gaussian"  # nested section became a MaskConfig
    assert cfg.film.num_film_layers == 3 and cfg.film.film_after_pos_embed is True


@pytest.mark.parametrize("section", [None, "network", "attention", "hyena", "film"])
def test_from_dict_rejects_unknown_field(golden_dir, section):
    data = json.loads((golden_dir / "hybrid_pool_film.json").read_text())
    if section is None:
        data["bogus_field"] = 1
    else:
        data[section]["bogus_field"] = 1
    with pytest.raises(ConfigError, match="bogus_field"):
        ViT5Config.from_dict(data)


def test_from_dict_rejects_unknown_mask_field(golden_dir):
    data = json.loads((golden_dir / "hybrid_pool_film.json").read_text())
    data["hyena"]["mask"]["sigma"] = 2
    with pytest.raises(ConfigError, match="sigma"):
        ViT5Config.from_dict(data)


def test_from_dict_missing_required_field_is_config_error(golden_dir):
    data = json.loads((golden_dir / "attn_cls_r4.json").read_text())
    del data["network"]["hidden_dim"]
    with pytest.raises(ConfigError, match="hidden_dim"):
        ViT5Config.from_dict(data)


def test_from_dict_without_network_section():
    with pytest.raises(ConfigError, match="network"):
        ViT5Config.from_dict({"attention": {"num_heads": 2}})


def test_from_json_missing_file_and_bad_json(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        ViT5Config.from_json(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        ViT5Config.from_json(bad)


def test_derived_geometry_matches_spec_section_0():
    # 224/16, CLS + 4 registers: T0 = 201, pad 9, T = 210, 15 Hyena rows.
    cfg = tiny_config(pattern="HA", registers=4, hidden=16, patch=16, image=224, l_cache=15)
    assert (cfg.grid_size, cfg.num_patches, cfg.num_tokens) == (14, 196, 201)
    assert (cfg.num_pad, cfg.num_padded_tokens, cfg.hyena_rows) == (9, 210, 15)
    assert cfg.block_tokens(0) == 210 and cfg.block_tokens(1) == 201  # H padded, A stripped


def test_l_cache_defaults_to_hyena_rows():
    cfg = tiny_config(pattern="H", readout="cls", registers=4)  # 9 + 1 + 4 = 14 -> pad 1 -> 5 rows
    assert cfg.hyena_rows == 5
    assert cfg.l_cache() == (5, 5)
    cfg.hyena.L_cache = [7, 4]
    assert cfg.l_cache() == (7, 4)


# ---- SPEC section 9 pitfalls that validate() turns into ConfigError ----------------------------


@pytest.mark.parametrize("registers", [2, 3, 5, 8])
def test_non_square_registers_with_attention_rejected(registers):
    with pytest.raises(ConfigError, match=f"num_registers={registers} is not a perfect square"):
        tiny_config(pattern="A", registers=registers).validate()


def test_hybrid_preset_with_8_registers_rejected():
    cfg = tiny_config(pattern="HA", registers=8)
    with pytest.raises(ConfigError, match="perfect square"):
        cfg.validate()


@pytest.mark.parametrize("registers", [0, 1, 4, 9])
def test_square_registers_with_attention_accepted(registers):
    tiny_config(pattern="A", registers=registers).validate()


def test_non_square_registers_without_attention_accepted():
    tiny_config(pattern="H", registers=3).validate()  # only the attention RoPE needs a square


def test_register_concat_without_ratio():
    with pytest.raises(ConfigError, match="neck_compression_ratio"):
        tiny_config(readout="register_concat", ratio=None).validate()


def test_register_concat_without_registers():
    with pytest.raises(ConfigError, match="num_registers > 0"):
        tiny_config(readout="register_concat", ratio=4, registers=0).validate()


def test_register_concat_ratio_not_dividing_hidden_dim():
    with pytest.raises(ConfigError, match="not divisible by neck_compression_ratio 3"):
        tiny_config(readout="register_concat", ratio=3, hidden=16).validate()


def test_film_without_registers():
    cfg = tiny_config(pattern="H", readout="gap", registers=0, film=FilmConfig(num_film_layers=3))
    with pytest.raises(ConfigError, match="num_registers is 0"):
        cfg.validate()


def test_film3_before_num_film_layers_mismatch():
    # SPEC 9.17: 3 FiLM layers without film_after_pos_embed on a 3-layer SIREN (2 hidden layers).
    film = FilmConfig(num_film_layers=3, film_after_pos_embed=False)
    with pytest.raises(ConfigError, match="num_film_layers=3.*expected 2"):
        tiny_config(pattern="H", film=film).validate()


def test_film_layers_counted_with_pos_embed():
    film = FilmConfig(num_film_layers=2, film_after_pos_embed=True)
    with pytest.raises(ConfigError, match="expected 3"):
        tiny_config(pattern="H", film=film).validate()
    tiny_config(pattern="H", film=FilmConfig(num_film_layers=3, film_after_pos_embed=True)).validate()
    tiny_config(pattern="H", film=FilmConfig(num_film_layers=2, film_after_pos_embed=False)).validate()


def test_film_after_pos_embed_needs_embedding_equal_hidden():
    film = FilmConfig(num_film_layers=3, film_after_pos_embed=True)
    cfg = tiny_config(pattern="H", film=film, kernel_embedding=4, kernel_hidden=8)
    with pytest.raises(ConfigError, match="kernel_embedding_dim == kernel_hidden_dim"):
        cfg.validate()


def test_film_without_hyena_blocks():
    cfg = tiny_config(pattern="A", film=FilmConfig())
    with pytest.raises(ConfigError, match="film"):
        cfg.validate()


def test_compress_concat_needs_compressed_dim():
    film = FilmConfig(conditioning="register_compress_concat", num_film_layers=3, compressed_dim=None)
    with pytest.raises(ConfigError, match="compressed_dim"):
        tiny_config(pattern="H", film=film).validate()


def test_layer_pattern_length_mismatch():
    cfg = tiny_config(pattern="AA")
    cfg.network.num_blocks = 3
    with pytest.raises(ConfigError, match="'AA' has 2 characters but num_blocks is 3"):
        cfg.validate()


def test_unknown_block_type_M():
    cfg = tiny_config(pattern="AM")
    with pytest.raises(ConfigError, match="unknown block type 'M'.*supported: A \\(attention\\), H \\(Hyena\\)"):
        cfg.validate()


@pytest.mark.parametrize("l_cache", [1, 0, [4, 1]])
def test_l_cache_below_two_rejected(l_cache):
    with pytest.raises(ConfigError, match="L_cache must be >= 2"):
        tiny_config(pattern="H", l_cache=l_cache).validate()


def test_image_size_not_multiple_of_patch_rejected():
    with pytest.raises(ConfigError, match="not a multiple of patch_size"):
        tiny_config(image=14, patch=4).validate()


def test_unknown_readout_rejected():
    with pytest.raises(ConfigError, match="readout"):
        tiny_config(readout="mean").validate()


def test_missing_sections_rejected():
    cfg = tiny_config(pattern="A")
    cfg.attention = None
    with pytest.raises(ConfigError, match="no 'attention' section"):
        cfg.validate()
    cfg = tiny_config(pattern="H")
    cfg.hyena = None
    with pytest.raises(ConfigError, match="no 'hyena' section"):
        cfg.validate()


def test_heads_not_dividing_hidden_dim():
    with pytest.raises(ConfigError, match="not divisible by num_heads 3"):
        tiny_config(hidden=16, heads=3).validate()


def test_head_dim_not_multiple_of_four():
    with pytest.raises(ConfigError, match="multiple of 4"):
        tiny_config(hidden=12, heads=2).validate()  # head_dim 6


def test_config_errors_are_value_errors():
    assert issubclass(ConfigError, ValueError)


# ---- hostile values: the wrong type or sign anywhere in the JSON -----------------------


@pytest.mark.parametrize(
    "section, field, value, fragment",
    [
        ("network", "hidden_dim", "64", "network.hidden_dim must be an integer"),
        ("network", "num_classes", None, "network.num_classes must not be null"),
        ("network", "num_registers", -4, "network.num_registers must be >= 0"),
        ("network", "patch_size", 4.0, "network.patch_size must be an integer"),
        ("network", "layer_pattern", ["A", "A"], "network.layer_pattern must be a string"),
        ("attention", "qkv_bias", [1], "attention.qkv_bias must be true or false"),
        ("attention", "num_heads", True, "attention.num_heads must be an integer"),
        ("attention", "rope_base", "x", "attention.rope_base must be a number"),
        ("attention", "rope_base", -1.0, "attention.rope_base must be > 0"),
        ("attention", "scale", 0, "attention.scale must be > 0"),
        ("", "norm_eps", None, "norm_eps must not be null"),
        ("", "norm_eps", -1e-6, "norm_eps must be > 0"),
        ("", "mlp_expansion_factor", "4", "mlp_expansion_factor must be a number"),
        ("", "layer_scale", "yes", "layer_scale must be true or false"),
        ("", "mlp_bias", [], "mlp_bias must map"),
    ],
)
def test_wrong_types_and_signs_are_config_errors(golden_dir, tmp_path, section, field, value, fragment):
    data = json.loads((golden_dir / "attn_cls_r4.json").read_text())
    (data[section] if section else data)[field] = value
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=fragment):
        ViT5Config.from_json(path)
    with pytest.raises(ConfigError, match=fragment):
        ViT5Config.from_dict(data).validate()


@pytest.mark.parametrize(
    "field, value, fragment",
    [
        ("kernel_hidden_dim", -32, "hyena.kernel_hidden_dim must be > 0"),
        ("L_cache", [1, 2, 3], "hyena.L_cache must be an integer or two integers"),
        ("L_cache", "14", "hyena.L_cache must be an integer or two integers"),
        ("grn", None, "hyena.grn must not be null"),
        ("mask", "gaussian", "config section 'hyena.mask' must be an object"),
    ],
)
def test_wrong_hyena_values_are_config_errors(golden_dir, field, value, fragment):
    data = json.loads((golden_dir / "hyena_gap.json").read_text())
    data["hyena"][field] = value
    with pytest.raises(ConfigError, match=fragment):
        ViT5Config.from_dict(data).validate()


def test_film_negative_size_is_config_error(golden_dir):
    data = json.loads((golden_dir / "hybrid_pool_film.json").read_text())
    data["film"]["film_hidden_dim"] = -64
    with pytest.raises(ConfigError, match="film.film_hidden_dim must be > 0"):
        ViT5Config.from_dict(data).validate()


def test_nan_and_infinity_are_config_errors(golden_dir, tmp_path):
    text = (golden_dir / "attn_cls_r4.json").read_text().replace('"norm_eps": 1e-06', '"norm_eps": NaN')
    path = tmp_path / "nan.json"
    path.write_text(text)
    assert "NaN" in text
    with pytest.raises(ConfigError, match="norm_eps must be finite"):
        ViT5Config.from_json(path)


def test_config_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes('{"network": "caf\u00e9"}'.encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        ViT5Config.from_json(path)
    path.write_bytes(b"\xff\xfe{\x00")
    with pytest.raises(ConfigError, match="not UTF-8"):
        ViT5Config.from_json(path)


def test_golden_configs_pass_the_type_checks(golden_dir):
    for name in GOLDEN_CASES:
        ViT5Config.from_json(golden_dir / f"{name}.json").validate()


def test_a_derived_size_without_its_section_is_a_config_error():
    hyena_only = tiny_config(pattern="HH")
    with pytest.raises(ConfigError, match="no 'attention' section"):
        hyena_only.head_dim  # noqa: B018 - the property raises
    with pytest.raises(ConfigError, match="no 'film' section"):
        hyena_only.film_cond_dim()
    no_ratio = tiny_config(readout="register_concat")
    with pytest.raises(ConfigError, match="neck_compression_ratio"):
        no_ratio.head_input_dim  # noqa: B018 - the property raises
