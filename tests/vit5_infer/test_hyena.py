"""Hyena operator, QKV wrapper and token adapter against a direct reading of SPEC 5.1-5.3."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from vit5_tiny import randomize, tiny_config

from vit5_infer.blocks.hyena import build_hyena


def _rms(x, w, eps=1e-6):  # over the last axis
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def spec_hyena_adapter(adapter, x):
    """SPEC 5.1-5.3 step by step, with the long conv as a flipped-kernel depthwise conv2d (SPEC 5.6)."""
    b, t, d = x.shape
    w = adapter.grid_w
    rows = t // w
    qkv = adapter.inner_mixer
    hy = qkv.mixer
    grid = x.reshape(b, rows, w, d)  # token t -> (t // w, t % w)
    u = grid @ qkv.qkv_proj.weight.T
    q, k, v = u[..., :d], u[..., d : 2 * d], u[..., 2 * d :]
    q, k, v = (z.permute(0, 3, 1, 2) for z in (q, k, v))
    s = F.conv2d(torch.cat([q, k, v], 1), hy.short_conv.weight, padding=1, groups=3 * d)
    q, k, v = s[:, :d], s[:, d : 2 * d], s[:, 2 * d :]
    q = q / q.norm(dim=1, keepdim=True).clamp_min(1e-12)
    z = q * F.silu(k)
    z = _rms(z.permute(0, 2, 3, 1), hy.pixelhyena_norm.weight).permute(0, 3, 1, 2)
    gc = hy.global_conv
    kernel, kgrid = gc.kernel()
    if gc.mask is not None:
        kernel = gc.mask(kgrid, kernel)
    kernel = kernel.permute(0, 3, 1, 2)[0].flip(-2, -1)[:, None]
    h = F.conv2d(z, kernel, padding=(rows - 1, w - 1), groups=d) + gc.shortcut[None, :, None, None] * z
    y = h * torch.sigmoid(v)
    y = _rms(y.permute(0, 2, 3, 1), hy.output_norm.weight)
    return (y @ qkv.out_proj.weight.T).reshape(b, t, d)


@pytest.mark.parametrize("mask", [False, True])
def test_hyena_adapter_forward_matches_spec(mask):
    cfg = tiny_config(pattern="H", readout="cls", registers=4, hidden=8, mask=mask).validate()
    adapter = randomize(build_hyena(cfg), seed=4, scale=0.4)
    x = torch.randn(2, cfg.num_padded_tokens, 8)
    with torch.no_grad():
        torch.testing.assert_close(adapter(x), spec_hyena_adapter(adapter, x), atol=2e-5, rtol=1e-4)


def test_hyena_keys_match_spec():
    cfg = tiny_config(pattern="H", readout="gap", registers=0, hidden=8, mask=True).validate()
    keys = {k: tuple(v.shape) for k, v in build_hyena(cfg).state_dict().items()}
    p = "inner_mixer."
    assert keys[p + "qkv_proj.weight"] == (24, 8)
    assert keys[p + "out_proj.weight"] == (8, 8)
    assert keys[p + "mixer.short_conv.weight"] == (24, 1, 3, 3)
    assert keys[p + "mixer.global_conv.shortcut"] == (8,)
    assert keys[p + "mixer.global_conv.mask.std_param"] == (2, 8)
    assert keys[p + "mixer.pixelhyena_norm.weight"] == (8,)
    assert keys[p + "mixer.output_norm.weight"] == (8,)
    assert not any("q_norm" in k or "k_norm" in k or "short_conv.bias" in k for k in keys)


def test_hyena_adapter_rejects_tokens_not_filling_rows():
    cfg = tiny_config(pattern="H", readout="gap", registers=0, hidden=8).validate()
    adapter = build_hyena(cfg)
    with pytest.raises(ValueError, match="do not fill rows of width 3"):
        adapter(torch.randn(1, 10, 8))


def test_ckconv_rejects_grid_it_was_not_built_for():
    cfg = tiny_config(pattern="H", readout="gap", registers=0, hidden=8).validate()
    adapter = build_hyena(cfg)
    with pytest.raises(ValueError, match="built for a"):
        adapter(torch.randn(1, 12, 8))  # 4 rows of 3, built for 3 rows


def test_hyena_k_is_normalized_only_with_identity_gate():
    cfg = tiny_config(pattern="H", readout="gap", registers=0, hidden=8).validate()
    assert build_hyena(cfg).inner_mixer.mixer.normalize_k is False
    cfg.hyena.gate = "identity"
    assert build_hyena(cfg).inner_mixer.mixer.normalize_k is True


def test_hyena_flop_count_formula():
    # D = C = 8, grid 3x3 (S = 9), SIREN E = Hd = 8, 3 layers, no FiLM, no mask.
    cfg = tiny_config(pattern="H", readout="gap", registers=0, hidden=8).validate()
    adapter = build_hyena(cfg)
    c, s, t, d = 8, 9, 9, 8
    g = 5 * 5
    siren = 2 * g * 2 * 8 + g * 8 + 2 * (2 * g * 8 * 8 + g * 8) + 2 * g * 8 * c
    np_prod, log_sum = 6 * 6, 2 * math.log2(6)

    def conv(n_fft, kernel):
        return int(kernel + n_fft * 5 * c * np_prod * log_sum + 6 * c * np_prod + c * s)

    def hyena(conv_flops):
        return (
            2 * 1 * (3 * c) * s * 3 * 3  # depthwise short conv
            + 3 * c * s  # q L2-norm
            + c * s
            + c * s  # q * silu(k)
            + 3 * c * s  # pixel norm
            + conv_flops
            + c * s
            + c * s  # * sigmoid(v)
            + 3 * c * s  # output norm
        )

    train = 2 * t * d * 3 * d + hyena(conv(3, siren)) + 2 * t * d * d
    infer = 2 * t * d * 3 * d + hyena(conv(2, 0)) + 2 * t * d * d
    assert adapter.flop_count(t, inference=False) == train
    assert adapter.flop_count(t, inference=True) == infer
