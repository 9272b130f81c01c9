"""MLP activations and FLOPs (SPEC 4, 9.15)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vit5_infer.layers import MLP


def _mlp(activation, dim=4, factor=2.0):
    torch.manual_seed(0)
    m = MLP(dim, activation, factor)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape))
    return m


def test_gelu_is_exact_erf():
    m = _mlp("gelu")
    x = torch.randn(3, 4) * 2
    a = x @ m.layer1.weight.T
    exact = 0.5 * a * (1 + torch.erf(a / math.sqrt(2)))
    torch.testing.assert_close(m(x), exact @ m.layer2.weight.T, atol=1e-5, rtol=1e-5)
    tanh = F.gelu(a, approximate="tanh") @ m.layer2.weight.T
    assert (m(x) - tanh).abs().max() > 1e-5
    torch.testing.assert_close(_mlp("gelu_exact")(x), m(x))


def test_glu_gates_with_second_half():
    m = _mlp("glu")
    assert tuple(m.layer1.weight.shape) == (16, 4)
    x = torch.randn(2, 4)
    u = x @ m.layer1.weight.T
    a, b = u[:, :8], u[:, 8:]
    torch.testing.assert_close(m(x), (a * torch.sigmoid(b)) @ m.layer2.weight.T)


def test_swiglu_silu_on_first_half():
    m = _mlp("swiglu")
    x = torch.randn(2, 4)
    u = x @ m.layer1.weight.T
    a, b = u[:, :8], u[:, 8:]
    torch.testing.assert_close(m(x), (b * F.silu(a)) @ m.layer2.weight.T)


def test_bias_keys_only_when_requested():
    assert set(MLP(4, "gelu", 4.0).state_dict()) == {"layer1.weight", "layer2.weight"}
    assert set(MLP(4, "gelu", 4.0, bias=True).state_dict()) == {
        "layer1.weight",
        "layer1.bias",
        "layer2.weight",
        "layer2.bias",
    }


@pytest.mark.parametrize("activation, g", [("gelu", 1), ("relu", 1), ("silu", 1), ("glu", 2), ("swiglu", 2)])
def test_mlp_flop_count(activation, g):
    m = MLP(8, activation, 4.0)
    t, d, hm = 5, 8, 32
    assert m.flop_count(t) == 2 * t * d * g * hm + (2 if g == 2 else 1) * t * hm + 2 * t * hm * d
