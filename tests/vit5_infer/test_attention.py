"""ViT5Attention against a direct reading of SPEC 3.1 / 3.4."""

from __future__ import annotations

import math

import pytest
import torch
from vit5_tiny import randomize, tiny_config

from vit5_infer import InputError, ViT5ClassificationNet
from vit5_infer.layers import ViT5Attention
from vit5_infer.layers.rope import rope_tables


def spec_rot(v):
    q4 = v.shape[-1] // 4
    return torch.cat([-v[..., q4 : 2 * q4], v[..., :q4], -v[..., 3 * q4 :], v[..., 2 * q4 : 3 * q4]], dim=-1)


def spec_attention(attn: ViT5Attention, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, eps=1e-6):
    """Per-head loop: qkv -> (RMSNorm q, k over hd) -> RoPE -> softmax(q k^T * scale) v -> merge -> proj."""
    b, t, d = x.shape
    h = attn.num_heads
    hd = d // h
    u = x @ attn.qkv.weight.T
    if attn.qkv.bias is not None:
        u = u + attn.qkv.bias
    heads = []
    for i in range(h):
        q = u[..., i * hd : (i + 1) * hd]
        k = u[..., d + i * hd : d + (i + 1) * hd]
        v = u[..., 2 * d + i * hd : 2 * d + (i + 1) * hd]
        if attn.q_norm is not None:
            q = q / torch.sqrt((q * q).mean(-1, keepdim=True) + eps) * attn.q_norm.weight
            k = k / torch.sqrt((k * k).mean(-1, keepdim=True) + eps) * attn.k_norm.weight
        q = q * cos + spec_rot(q) * sin
        k = k * cos + spec_rot(k) * sin
        scores = (q @ k.transpose(-1, -2)) * hd**-0.5
        heads.append(torch.softmax(scores, dim=-1) @ v)
    merged = torch.cat(heads, dim=-1)
    out = merged @ attn.proj.weight.T
    if attn.proj.bias is not None:
        out = out + attn.proj.bias
    return out


@pytest.mark.parametrize(
    "has_cls, registers, qk_norm, bias",
    [(True, 4, "rmsnorm", False), (False, 0, None, True), (True, 0, "rmsnorm", True), (False, 9, "rmsnorm", False)],
)
def test_attention_forward_matches_spec(has_cls, registers, qk_norm, bias):
    torch.manual_seed(0)
    attn = ViT5Attention(16, 2, 3, 3, registers, has_cls, qk_norm, 10000.0, 100.0, qkv_bias=bias, out_proj_bias=bias)
    randomize(attn, seed=1, scale=0.5)
    t = 9 + int(has_cls) + registers
    x = torch.randn(2, t, 16)
    cos, sin = rope_tables(3, 3, 8, has_cls, registers, 10000.0, 100.0)
    with torch.no_grad():
        torch.testing.assert_close(attn(x), spec_attention(attn, x, cos, sin), atol=1e-5, rtol=1e-5)


def test_attention_keys_and_shapes():
    attn = ViT5Attention(16, 2, 3, 3, 4, True, "rmsnorm", qkv_bias=False)
    shapes = {k: tuple(v.shape) for k, v in attn.state_dict().items()}
    assert shapes == {
        "qkv.weight": (48, 16),
        "proj.weight": (16, 16),
        "q_norm.weight": (8,),
        "k_norm.weight": (8,),
    }
    assert attn.q_norm is not attn.k_norm  # two independent instances
    assert attn.rope_cos.shape == (9 + 1 + 4, 8)


def test_attention_default_scale_is_head_dim_inverse_sqrt():
    attn = ViT5Attention(384, 6, 14, 14, 4, True, "rmsnorm")
    assert attn.scale == 0.125


def test_attention_rejects_token_count_not_matching_rope_table():
    attn = ViT5Attention(16, 2, 3, 3, 4, True, "rmsnorm")
    with pytest.raises(InputError, match="expects 14 tokens"):
        attn(torch.randn(1, 15, 16))


@pytest.mark.parametrize("readout, registers, rows", [("cls", 4, 9 + 1 + 4), ("gap", 4, 9 + 4), ("gap", 0, 9)])
def test_network_derives_has_cls_from_readout(readout, registers, rows):
    # SPEC 9.2: the table length must be N + (readout == cls) + R.
    model = ViT5ClassificationNet(tiny_config(pattern="A", readout=readout, registers=registers))
    assert model.blocks[0].sequence_mixer.rope_cos.shape[0] == rows


def test_attention_flop_count_formula():
    t, d, hd = 14, 16, 8
    attn = ViT5Attention(d, 2, 3, 3, 4, True, "rmsnorm")
    base = 6 * t * d * d + 4 * t * d + 4 * t * t * d + 2 * t * d * d
    assert attn.flop_count(t) == base + 2 * 3 * t * hd  # QK RMSNorm counted per head only
    plain = ViT5Attention(d, 2, 3, 3, 4, True, None)
    assert plain.flop_count(t) == base
    assert plain.flop_count(t, inference=True) == base


def test_l2_attention_qk_norm_flop_count_is_a_clear_error():
    # SPEC 9.16: upstream raises AttributeError; the toolkit must say why.
    attn = ViT5Attention(16, 2, 3, 3, 4, True, "l2")
    with pytest.raises(NotImplementedError, match="L2"):
        attn.flop_count(14)
    model = ViT5ClassificationNet(tiny_config(pattern="A", qk_norm="l2"))
    with pytest.raises(NotImplementedError, match="L2 attention QK-norm"):
        model.flop_count()


def test_l2_attention_qk_norm_forward():
    attn = randomize(ViT5Attention(16, 2, 3, 3, 0, False, "l2"), seed=3)
    x = torch.randn(1, 9, 16)
    u = (x @ attn.qkv.weight.T).reshape(1, 9, 3, 2, 8)
    q, k = u[:, :, 0], u[:, :, 1]
    qn = q / q.norm(dim=-1, keepdim=True)
    kn = k / k.norm(dim=-1, keepdim=True)
    with torch.no_grad():
        got_q, got_k, _ = attn.project_qkv(x)
    cos, sin = attn.rope_cos[:, None], attn.rope_sin[:, None]
    torch.testing.assert_close(got_q, qn * cos + spec_rot(qn) * sin)
    torch.testing.assert_close(got_k, kn * cos + spec_rot(kn) * sin)
    assert math.isclose(attn.scale, 8**-0.5)
