"""ViT5ClassificationNet: token layout, padding, readouts, block wiring and input checks (SPEC 1, 2, 9)."""

from __future__ import annotations

import pytest
import torch
from vit5_tiny import randomize, tiny_config

from vit5_infer import ConfigError, FilmConfig, InputError, ViT5ClassificationNet, get_preset, load_model

from golden import load_golden_io


def _golden(golden_dir, name):
    return load_model(golden_dir / f"{name}.safetensors", config=golden_dir / f"{name}.json")


# ---- construction-time pitfalls (SPEC 9) -------------------------------------------------------


def test_non_square_registers_with_attention_fail_at_construction():
    with pytest.raises(ConfigError, match="num_registers=8 is not a perfect square"):
        ViT5ClassificationNet(tiny_config(pattern="HA", registers=8))


def test_upstream_film_preset_with_8_registers_is_rejected():
    cfg = get_preset("vit5-small-hybrid")
    cfg.network.num_registers = 8
    with pytest.raises(ConfigError, match="use 4 or 9 registers"):
        ViT5ClassificationNet(cfg)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(readout="register_concat", ratio=None), "neck_compression_ratio"),
        (dict(readout="register_concat", ratio=4, registers=0), "num_registers > 0"),
        (dict(readout="register_concat", ratio=3), "not divisible"),
        (dict(pattern="H", registers=0, readout="gap", film=FilmConfig()), "num_registers is 0"),
        (dict(pattern="H", film=FilmConfig(num_film_layers=3, film_after_pos_embed=False)), "num_film_layers"),
        (dict(pattern="H", film=FilmConfig(), kernel_embedding=4), "kernel_embedding_dim == kernel_hidden_dim"),
        (dict(pattern="AM"), "unknown block type .M."),
        (dict(pattern="H", l_cache=1), "L_cache must be >= 2"),
    ],
)
def test_construction_raises_config_error(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ViT5ClassificationNet(tiny_config(**kwargs))


def test_construction_rejects_layer_pattern_length_mismatch():
    cfg = tiny_config(pattern="HA")
    cfg.network.num_blocks = 4
    with pytest.raises(ConfigError, match="num_blocks is 4"):
        ViT5ClassificationNet(cfg)


# ---- inputs (SPEC 9.11) -----------------------------------------------------------------------


def test_wrong_image_size_rejected():
    model = ViT5ClassificationNet(get_preset("vit5-small"))
    with pytest.raises(InputError, match=r"\[B, 3, 224, 224\].*232, 232"):
        model(torch.zeros(1, 3, 232, 232))


def test_nhwc_input_rejected():
    model = ViT5ClassificationNet(tiny_config())
    with pytest.raises(InputError, match=r"\[B, 3, 12, 12\]"):
        model(torch.zeros(2, 12, 12, 3))


def test_unbatched_input_rejected():
    model = ViT5ClassificationNet(tiny_config())
    with pytest.raises(InputError):
        model(torch.zeros(3, 12, 12))


def test_input_error_is_a_value_error():
    assert issubclass(InputError, ValueError)


# ---- token layout and block routing (SPEC 1.3) ---------------------------------------------------


def test_embed_layout_patches_cls_registers_padding(golden_dir):
    model = _golden(golden_dir, "hybrid_pool_film")  # 16 patches, CLS, 4 registers, 3 pad -> 24
    x = torch.from_numpy(load_golden_io("hybrid_pool_film")[0])
    with torch.no_grad():
        tokens = model.embed(x)
        patches = torch.nn.functional.conv2d(x, model.patch_embed.weight, stride=8)
    assert tokens.shape == (3, 24, 64)
    b = x.shape[0]
    # row-major patch tokens t = row * Gw + col, plus pos_embed
    expected_patches = patches.permute(0, 2, 3, 1).reshape(b, 16, 64) + model.pos_embed
    torch.testing.assert_close(tokens[:, :16], expected_patches)
    torch.testing.assert_close(tokens[:, 16], model.cls_token[0].expand(b, -1))
    torch.testing.assert_close(tokens[:, 17:21], model.reg_token.expand(b, -1, -1))
    assert torch.equal(tokens[:, 21:], torch.zeros(b, 3, 64))
    assert "_zero_pad" not in model.state_dict()


def test_run_blocks_pads_hyena_and_strips_attention(golden_dir):
    model = _golden(golden_dir, "hybrid_pool_film")  # "HA", T0 = 21, T = 24
    x = torch.from_numpy(load_golden_io("hybrid_pool_film")[0])
    with torch.no_grad():
        tokens = model.embed(x)
        after_h = model.blocks[0](tokens)  # H sees all 24 tokens
        after_a = torch.cat([model.blocks[1](after_h[:, :21]), after_h[:, 21:]], dim=1)
        got = model.run_blocks(tokens)
    torch.testing.assert_close(got, after_a, atol=0, rtol=0)
    assert after_h[:, 21:].abs().max() > 0  # padding evolves inside Hyena blocks
    assert torch.equal(got[:, 21:], after_h[:, 21:])  # and is carried through attention untouched


def test_readouts(golden_dir):
    for name in ("attn_cls_r4", "attn_gap_r0_bias", "hybrid_compress_concat"):
        model = _golden(golden_dir, name)
        cfg = model.config
        n, r = cfg.num_patches, cfg.network.num_registers
        tokens = torch.randn(2, cfg.num_padded_tokens, cfg.network.hidden_dim)
        with torch.no_grad():
            got = model.readout(tokens)
            if cfg.network.readout == "cls":
                pooled = tokens[:, n]
            elif cfg.network.readout == "gap":
                pooled = tokens[:, :n].mean(1)  # patches only
            else:
                regs = tokens[:, n : n + r] @ model.register_neck.weight.T
                pooled = regs.reshape(2, -1)  # register-major
            w = model.out_norm.weight
            normed = pooled / torch.sqrt(pooled.pow(2).mean(-1, keepdim=True) + 1e-6) * w
            expected = normed @ model.out_proj.weight.T
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_register_concat_head_dimension(golden_dir):
    model = _golden(golden_dir, "hybrid_compress_concat")  # R = 4, D = 64, ratio 4
    assert tuple(model.out_norm.weight.shape) == (4 * 64 // 4,)
    assert tuple(model.register_neck.weight.shape) == (16, 64)


# ---- residual block (SPEC 2) ---------------------------------------------------------------------


def _rms(x, w, eps=1e-6):
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def test_block_reads_registers_from_normalized_tokens_and_applies_grn():
    film = FilmConfig(num_film_layers=3, film_after_pos_embed=True)
    cfg = tiny_config(pattern="H", registers=4, hidden=8, mask=True, grn=True, film=film)
    model = randomize(ViT5ClassificationNet(cfg), seed=5, scale=0.3)
    block = model.blocks[0]
    assert block.register_start_idx == 9 + 1
    x = torch.randn(2, cfg.num_padded_tokens, 8)
    with torch.no_grad():
        a = _rms(x, block.input_norm.weight)
        regs = a[:, 10:14]
        cond = (regs * torch.softmax(block.register_pooling.logits, 0)[None, :, None]).sum(1)
        m = block.sequence_mixer(a, conditioning=cond)
        g = m.pow(2).sum(1, keepdim=True).sqrt()
        m = block.grn.gamma * (m * g / (g.mean(-1, keepdim=True) + 1e-6)) + block.grn.beta + m
        x1 = x + block.ls_attn.gamma * m
        h = _rms(x1, block.mlp_norm.weight) @ block.mlp.layer1.weight.T
        h = torch.nn.functional.gelu(h) @ block.mlp.layer2.weight.T
        expected = x1 + block.ls_mlp.gamma * h
        torch.testing.assert_close(block(x), expected, atol=1e-5, rtol=1e-5)
        # The conditioning matters: other registers give another output.
        x2 = x.clone()
        x2[:, 10:14] += 1.0
        assert (block(x2)[:, :9] - block(x)[:, :9]).abs().max() > 1e-4


def test_layer_scale_off_removes_keys():
    cfg = tiny_config(pattern="A")
    cfg.layer_scale = False
    keys = ViT5ClassificationNet(cfg).state_dict()
    assert not any("ls_attn" in k or "ls_mlp" in k for k in keys)


def test_hybrid_preset_state_dict_keys_match_spec_1_5():
    model = ViT5ClassificationNet(get_preset("vit5-small-hybrid"))  # R = 4
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    h = "blocks.0.sequence_mixer.inner_mixer."
    expected = {
        "cls_token": (1, 1, 384),
        "pos_embed": (1, 196, 384),
        "reg_token": (1, 4, 384),
        "patch_embed.weight": (384, 3, 16, 16),
        "blocks.0.input_norm.weight": (384,),
        h + "mixer.global_conv.shortcut": (384,),
        h + "mixer.global_conv.kernel.positional_embedding.linear.weight": (32, 2),
        h + "mixer.global_conv.kernel.positional_embedding.linear.bias": (32,),
        h + "mixer.global_conv.kernel.hidden_linears.0.weight": (32, 32),
        h + "mixer.global_conv.kernel.hidden_linears.0.bias": (32,),
        h + "mixer.global_conv.kernel.hidden_linears.1.weight": (32, 32),
        h + "mixer.global_conv.kernel.hidden_linears.1.bias": (32,),
        h + "mixer.global_conv.kernel.out_linear.weight": (384, 32),
        h + "mixer.global_conv.kernel.out_linear.bias": (384,),
        h + "mixer.global_conv.kernel.film_generator.mlp.0.weight": (64, 384),
        h + "mixer.global_conv.kernel.film_generator.mlp.0.bias": (64,),
        h + "mixer.global_conv.kernel.film_generator.mlp.2.weight": (192, 64),
        h + "mixer.global_conv.kernel.film_generator.mlp.2.bias": (192,),
        h + "mixer.global_conv.mask.std_param": (2, 384),
        h + "mixer.short_conv.weight": (1152, 1, 3, 3),
        h + "mixer.pixelhyena_norm.weight": (384,),
        h + "mixer.output_norm.weight": (384,),
        h + "qkv_proj.weight": (1152, 384),
        h + "out_proj.weight": (384, 384),
        "blocks.0.mlp_norm.weight": (384,),
        "blocks.0.mlp.layer1.weight": (1536, 384),
        "blocks.0.mlp.layer2.weight": (384, 1536),
        "blocks.0.ls_attn.gamma": (384,),
        "blocks.0.ls_mlp.gamma": (384,),
        "blocks.0.register_pooling.logits": (4,),
        "blocks.0.grn.gamma": (384,),
        "blocks.0.grn.beta": (384,),
        "blocks.1.input_norm.weight": (384,),
        "blocks.1.sequence_mixer.qkv.weight": (1152, 384),
        "blocks.1.sequence_mixer.proj.weight": (384, 384),
        "blocks.1.sequence_mixer.q_norm.weight": (64,),
        "blocks.1.sequence_mixer.k_norm.weight": (64,),
        "blocks.1.mlp_norm.weight": (384,),
        "blocks.1.mlp.layer1.weight": (1536, 384),
        "blocks.1.mlp.layer2.weight": (384, 1536),
        "blocks.1.ls_attn.gamma": (384,),
        "blocks.1.ls_mlp.gamma": (384,),
    }
    first_two = {k: v for k, v in shapes.items() if not k.startswith("blocks.") or k.split(".")[1] in "01"}
    first_two = {k: v for k, v in first_two.items() if not k.startswith("out_")}
    assert first_two == expected
    assert shapes["out_norm.weight"] == (384,) and shapes["out_proj.weight"] == (1000, 384)
    keys = list(shapes)
    assert keys[:4] == ["cls_token", "pos_embed", "reg_token", "patch_embed.weight"]
    assert keys[-2:] == ["out_norm.weight", "out_proj.weight"]
    assert len([k for k in keys if k.endswith("register_pooling.logits")]) == 6  # H blocks at even indices


def test_model_is_in_eval_mode_after_construction():
    assert not ViT5ClassificationNet(tiny_config()).training


# ---- dtypes (SPEC 9.12) ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.uint8])
def test_wrong_input_dtype_is_input_error(dtype):
    model = ViT5ClassificationNet(tiny_config())
    with pytest.raises(InputError):
        model(torch.zeros(1, 3, 12, 12, dtype=dtype))


def test_siren_grid_stays_float32_under_reduced_precision():
    model = ViT5ClassificationNet(tiny_config(pattern="H", readout="gap", registers=0, hidden=8)).to(torch.bfloat16)
    grid = model.blocks[0].sequence_mixer.inner_mixer.mixer.global_conv.kernel.grid
    assert grid.dtype == torch.float32
