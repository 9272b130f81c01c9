"""RegisterPooling, RegisterCompressConcat and KernelFiLMGenerator (SPEC 6)."""

from __future__ import annotations

import math

import pytest
import torch

from vit5_infer.layers import KernelFiLMGenerator, RegisterCompressConcat, RegisterPooling


def test_register_pooling_softmax_weighted_sum():
    pool = RegisterPooling(3)
    with torch.no_grad():
        pool.logits.copy_(torch.tensor([0.0, 1.0, -2.0]))
    regs = torch.randn(2, 3, 5)
    w = [math.exp(v) for v in (0.0, 1.0, -2.0)]
    w = [v / sum(w) for v in w]
    expected = w[0] * regs[:, 0] + w[1] * regs[:, 1] + w[2] * regs[:, 2]
    torch.testing.assert_close(pool(regs), expected)
    assert pool(regs).shape == (2, 5)
    assert pool.flop_count(5) == 3 * 3 + 2 * 3 * 5


def test_register_compress_concat_is_register_major():
    comp = RegisterCompressConcat(3, 4, 2)
    assert tuple(comp.compress.weight.shape) == (2, 4) and comp.compress.bias is None
    regs = torch.randn(2, 3, 4)
    out = comp(regs)
    assert out.shape == (2, 6) and comp.out_dim == 6
    for r in range(3):
        for j in range(2):
            torch.testing.assert_close(out[:, r * 2 + j], regs[:, r] @ comp.compress.weight[j])
    assert comp.flop_count(4) == 3 * 2 * 4 * 2


def test_film_generator_chunking_gamma_first_beta_second():
    hd, n = 3, 2
    gen = KernelFiLMGenerator(cond_dim=4, kernel_hidden_dim=hd, num_film_layers=n, film_hidden_dim=5)
    with torch.no_grad():
        gen.mlp[2].weight.zero_()
        gen.mlp[2].bias.copy_(torch.arange(n * 2 * hd, dtype=torch.float32))
    pairs = gen(torch.randn(2, 4))
    assert len(pairs) == n
    # Output o = [g0 (0..2) | b0 (3..5) | g1 (6..8) | b1 (9..11)].
    torch.testing.assert_close(pairs[0][0], torch.tensor([[0.0, 1.0, 2.0]] * 2))
    torch.testing.assert_close(pairs[0][1], torch.tensor([[3.0, 4.0, 5.0]] * 2))
    torch.testing.assert_close(pairs[1][0], torch.tensor([[6.0, 7.0, 8.0]] * 2))
    torch.testing.assert_close(pairs[1][1], torch.tensor([[9.0, 10.0, 11.0]] * 2))


def test_film_generator_mlp_uses_exact_gelu():
    gen = KernelFiLMGenerator(4, 2, 1, 6)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in gen.parameters():
            p.copy_(torch.randn(p.shape))
    cond = torch.randn(3, 4) * 2
    a = cond @ gen.mlp[0].weight.T + gen.mlp[0].bias
    erf_gelu = 0.5 * a * (1 + torch.erf(a / math.sqrt(2)))
    tanh_gelu = torch.nn.functional.gelu(a, approximate="tanh")
    out = erf_gelu @ gen.mlp[2].weight.T + gen.mlp[2].bias
    pairs = gen(cond)
    got = torch.cat([pairs[0][0], pairs[0][1]], dim=1)
    torch.testing.assert_close(got, out, atol=1e-5, rtol=1e-5)
    tanh_out = tanh_gelu @ gen.mlp[2].weight.T + gen.mlp[2].bias
    assert (got - tanh_out).abs().max() > 1e-5  # would not match the tanh approximation


def test_film_generator_keys_and_flops():
    gen = KernelFiLMGenerator(384, 32, 3, 64)
    shapes = {k: tuple(v.shape) for k, v in gen.state_dict().items()}
    assert shapes == {
        "mlp.0.weight": (64, 384),
        "mlp.0.bias": (64,),
        "mlp.2.weight": (192, 64),
        "mlp.2.bias": (192,),
    }
    assert gen.flop_count() == 2 * 384 * 64 + 64 + 2 * 64 * 192


@pytest.mark.parametrize("n", [1, 2, 3])
def test_film_generator_pair_count(n):
    gen = KernelFiLMGenerator(4, 5, n, 6)
    pairs = gen(torch.randn(2, 4))
    assert len(pairs) == n and all(g.shape == (2, 5) and b.shape == (2, 5) for g, b in pairs)
