"""RMSNorm, L2Norm, GRN and LayerScale formulas (SPEC 2 and 4)."""

from __future__ import annotations

import math

import pytest
import torch

from vit5_infer.layers import GlobalResponseNorm, L2Norm, LayerScale, RMSNorm


def test_rmsnorm_formula():
    norm = RMSNorm(4, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([1.0, 2.0, -0.5, 0.25]))
    x = torch.tensor([[1.0, -2.0, 3.0, 0.5], [0.0, 0.0, 0.0, 1e-3]])
    out = norm(x)
    for r in range(2):
        ms = sum(v * v for v in x[r].tolist()) / 4
        for c in range(4):
            expected = x[r, c].item() / math.sqrt(ms + 1e-6) * norm.weight[c].item()
            assert out[r, c].item() == pytest.approx(expected, rel=1e-5, abs=1e-7)


def test_rmsnorm_eps_matters_and_dtype_is_kept():
    x = torch.full((1, 4), 1e-4)
    assert RMSNorm(4, eps=1e-6)(x)[0, 0].item() == pytest.approx(1e-4 / math.sqrt(1e-8 + 1e-6), rel=1e-5)
    assert RMSNorm(4, eps=1e-2)(x)[0, 0].item() == pytest.approx(1e-4 / math.sqrt(1e-8 + 1e-2), rel=1e-5)
    norm = RMSNorm(4)
    y = norm(torch.randn(2, 4, dtype=torch.bfloat16))
    assert y.dtype == torch.bfloat16


def test_rmsnorm_flop_count():
    assert RMSNorm(384).flop_count(210) == 3 * 210 * 384


def test_l2norm_formula_and_eps():
    x = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    out = L2Norm(dim=-1)(x)
    torch.testing.assert_close(out[0], torch.tensor([0.6, 0.8]))
    assert torch.equal(out[1], torch.zeros(2))  # divided by eps, not NaN
    tiny = torch.tensor([[1e-13, 0.0]])
    torch.testing.assert_close(L2Norm(dim=-1)(tiny), tiny / 1e-12)  # max(||x||, 1e-12)
    x = torch.randn(2, 5, 3)
    torch.testing.assert_close(L2Norm(dim=1)(x), x / x.norm(dim=1, keepdim=True))
    assert not hasattr(L2Norm(), "flop_count")  # as upstream (SPEC 4)


def test_grn_formula_loop():
    gen = torch.Generator().manual_seed(0)
    b, t, d = 2, 5, 3
    x = torch.randn(b, t, d, generator=gen)
    grn = GlobalResponseNorm(d, eps=1e-6)
    with torch.no_grad():
        grn.gamma.copy_(torch.tensor([0.5, -1.0, 2.0]))
        grn.beta.copy_(torch.tensor([0.1, 0.2, -0.3]))
    out = grn(x)
    for bi in range(b):
        g = [math.sqrt(sum(x[bi, ti, di].item() ** 2 for ti in range(t))) for di in range(d)]
        mean_g = sum(g) / d
        for ti in range(t):
            for di in range(d):
                v = x[bi, ti, di].item()
                n = g[di] / (mean_g + 1e-6)
                expected = grn.gamma[di].item() * (v * n) + grn.beta[di].item() + v
                assert out[bi, ti, di].item() == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_grn_zero_params_is_identity_and_flops():
    grn = GlobalResponseNorm(4)
    x = torch.randn(2, 3, 4)
    torch.testing.assert_close(grn(x), x)
    assert grn.flop_count(10) == 6 * 10 * 4


def test_layer_scale():
    ls = LayerScale(3, init_value=1e-4)
    assert torch.equal(ls.gamma.detach(), torch.full((3,), 1e-4))
    with torch.no_grad():
        ls.gamma.copy_(torch.tensor([1.0, 2.0, 3.0]))
    x = torch.randn(2, 4, 3)
    torch.testing.assert_close(ls(x), x * torch.tensor([1.0, 2.0, 3.0]))
