"""load_model end to end: every golden case, with and without its JSON; EMA vs raw; presets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from vit5_tiny import tiny_config

from vit5_infer import CheckpointError, ViT5ClassificationNet, ViT5Config, example_inputs, load_model, resolve_model
from vit5_infer.errors import ConfigError, InputError

from golden import BARE_OVERRIDES, GOLDEN_CASES, load_golden_io


def _logits(model, name):
    x, _ = load_golden_io(name)
    with torch.no_grad():
        out = model(torch.from_numpy(x))
    assert out.dtype == torch.float32
    return out.numpy()


@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_golden_with_json_config(golden_dir, name):
    model = load_model(golden_dir / f"{name}.safetensors", config=golden_dir / f"{name}.json")
    assert isinstance(model, ViT5ClassificationNet) and not model.training
    _, ref = load_golden_io(name)
    np.testing.assert_allclose(_logits(model, name), ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_golden_from_bare_safetensors(golden_dir, name):
    model = load_model(golden_dir / f"{name}.safetensors", **BARE_OVERRIDES.get(name, {}))
    _, ref = load_golden_io(name)
    np.testing.assert_allclose(_logits(model, name), ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_golden_loads_strictly(golden_dir, name):
    from safetensors.torch import load_file

    sd = load_file(str(golden_dir / f"{name}.safetensors"))
    model = ViT5ClassificationNet(ViT5Config.from_json(golden_dir / f"{name}.json"))
    result = model.load_state_dict(sd, strict=True)
    assert not result.missing_keys and not result.unexpected_keys


def test_golden_config_as_dict_and_object(golden_dir):
    cfg = ViT5Config.from_json(golden_dir / "hyena_gap.json")
    _, ref = load_golden_io("hyena_gap")
    for c in (cfg, cfg.to_dict()):
        model = load_model(golden_dir / "hyena_gap.safetensors", config=c)
        np.testing.assert_allclose(_logits(model, "hyena_gap"), ref, atol=1e-5, rtol=0)


def test_attn_gap_without_rope_override_gives_other_logits(golden_dir):
    # rope_base is not in the weights: the default 10000 is a different model.
    model = load_model(golden_dir / "attn_gap_r0_bias.safetensors", num_heads=2)
    _, ref = load_golden_io("attn_gap_r0_bias")
    assert np.abs(_logits(model, "attn_gap_r0_bias") - ref).max() > 1e-4


def test_ckpt_ema_weights_match_golden(golden_dir):
    model = load_model(golden_dir / "attn_cls_r4.ckpt")
    _, ref = load_golden_io("attn_cls_r4")
    np.testing.assert_allclose(_logits(model, "attn_cls_r4"), ref, atol=1e-5, rtol=0)
    model = load_model(golden_dir / "attn_cls_r4.ckpt", config=golden_dir / "attn_cls_r4.json", weights="ema")
    np.testing.assert_allclose(_logits(model, "attn_cls_r4"), ref, atol=1e-5, rtol=0)


def test_ckpt_raw_weights_give_other_logits(golden_dir):
    model = load_model(golden_dir / "attn_cls_r4.ckpt", weights="raw")
    _, ref = load_golden_io("attn_cls_r4")
    assert np.abs(_logits(model, "attn_cls_r4") - ref).max() > 1e-3


def test_resolve_model_records_source(golden_dir):
    _, source = resolve_model(golden_dir / "attn_cls_r4.ckpt", weights="raw")
    assert source.kind == "checkpoint" and source.weights == "raw"
    assert source.sha256 is not None and len(source.sha256) == 64


def test_preset_loads_with_seeded_weights():
    model, source = resolve_model("vit5-small-hyena", seed=5)
    assert model.config.network.layer_pattern == "H" * 12 and not model.training
    assert source.kind == "preset" and source.seed == 5


def test_preset_seed_is_deterministic():
    # A config given with a preset name replaces the preset's architecture (kept tiny here).
    tiny = tiny_config(pattern="HA", registers=4, hidden=16)
    a = load_model("vit5-small-hybrid", config=tiny, seed=1).state_dict()
    b = load_model("vit5-small-hybrid", config=tiny, seed=1).state_dict()
    c = load_model("vit5-small-hybrid", config=tiny, seed=2).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["blocks.1.mlp.layer1.weight"], c["blocks.1.mlp.layer1.weight"])


def test_unknown_name_is_neither_preset_nor_file():
    with pytest.raises(CheckpointError, match="neither a preset"):
        load_model("vit5-tiny-does-not-exist")


def test_example_inputs_shape_and_seed(golden_dir):
    model = load_model(golden_dir / "hyena_gap.safetensors")
    x = example_inputs(model, batch=2, seed=3)
    assert x.shape == (2, 3, 32, 32)
    assert torch.equal(x, example_inputs(model, batch=2, seed=3))
    with torch.no_grad():
        assert model(x).shape == (2, 10)


# ---- hostile Python API calls ----------------------------------------------------------
@pytest.mark.parametrize(
    "override, fragment",
    [
        ({"num_heads": "x"}, "num_heads must be an integer"),
        ({"num_heads": 2.5}, "num_heads must be an integer"),
        ({"rope_base": float("nan")}, "rope_base must be finite"),
        ({"norm_eps": -1.0}, "norm_eps must be > 0"),
        ({"num_classes": -3}, "num_classes must be > 0"),
    ],
)
def test_overrides_of_the_wrong_type_are_config_errors(override, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_model("vit5-small", **override)


@pytest.mark.parametrize("seed", [-1, 2**63, 10**23, 1.5, "0"])
def test_seed_out_of_range_is_a_config_error(seed):
    from vit5_infer.load_options import LoadOptions

    with pytest.raises(ConfigError, match="seed must be an integer from 0 to 2\\*\\*63-1"):
        load_model("vit5-small", seed=seed)
    with pytest.raises(ConfigError, match="seed"):
        LoadOptions(seed=seed)


def test_numpy_input_gets_a_clear_message(golden_dir):
    model = load_model(golden_dir / "attn_cls_r4.safetensors")
    x = np.zeros((1, *model.input_shape), dtype=np.float32)
    with pytest.raises(InputError, match="must be a torch.Tensor, got numpy.ndarray; wrap it with torch.from_numpy"):
        model(x)


def test_load_source_takes_the_options_as_one_value(golden_dir):
    """loading.load_source(source, LoadOptions) is resolve_model with the options spread out; holding the
    options imports nothing of loading (load_options sits below it)."""
    import ast
    from pathlib import Path

    from vit5_infer.load_options import LoadOptions
    from vit5_infer.loading import load_source

    checkpoint = golden_dir / "attn_cls_r4.safetensors"
    options = LoadOptions(config=golden_dir / "attn_cls_r4.json", overrides=(("num_heads", 4),))
    model, origin = load_source(checkpoint, options)
    expected, expected_origin = resolve_model(checkpoint, config=options.config, num_heads=4)
    assert origin == expected_origin and model.config == expected.config
    with pytest.raises(CheckpointError, match="no separate raw weights"):
        load_source(checkpoint, LoadOptions(weights="raw"))
    source = (Path(__file__).resolve().parents[2] / "vit5_infer" / "load_options.py").read_text()
    imported = {node.module for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)}
    assert not any(name and name.endswith("loading") for name in imported)
