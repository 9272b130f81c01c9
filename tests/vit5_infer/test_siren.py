"""SIREN coordinate grid (SPEC 5.5) and the SIREN kernel forward, with and without FiLM."""

from __future__ import annotations

import pytest
import torch
from vit5_tiny import randomize, tiny_config

from vit5_infer import ViT5ClassificationNet
from vit5_infer.layers import KernelFiLMGenerator, SIRENKernelND
from vit5_infer.layers.siren import axis_coordinates, coordinate_grid


@pytest.mark.parametrize("L, s", [(15, 15), (15, 14), (14, 14), (6, 4), (4, 2), (2, 2), (5, 1)])
def test_axis_coordinates_are_central_slice_of_linspace(L, s):
    full = torch.linspace(-1.0, 1.0, 2 * L - 1, dtype=torch.float32)
    got = axis_coordinates(L, s)
    assert got.dtype == torch.float32
    assert got.shape == (2 * s - 1,)
    assert torch.equal(got, full[L - s : L - s + 2 * s - 1])


@pytest.mark.parametrize("L, s", [(15, 15), (15, 14), (6, 4)])
def test_tap_offset_d_sits_at_d_over_L_minus_1(L, s):
    got = axis_coordinates(L, s).double()
    expected = torch.tensor([d / (L - 1) for d in range(-(s - 1), s)], dtype=torch.float64)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("L, s", [(14, 15), (4, 6), (2, 3)])
def test_exceeded_cache_extends_with_same_spacing(L, s):
    got = axis_coordinates(L, s)
    assert got.shape == (2 * s - 1,)
    limit = 1.0 + (s - L) / (L - 1)
    assert torch.equal(got, torch.linspace(-limit, limit, 2 * s - 1, dtype=torch.float32))
    spacing = got[1:] - got[:-1]
    torch.testing.assert_close(spacing, torch.full_like(spacing, 1.0 / (L - 1)), atol=1e-6, rtol=0)
    assert got[-1].item() == pytest.approx((s - 1) / (L - 1), abs=1e-6)


def test_coordinate_grid_layout_is_ij_with_y_first():
    grid = coordinate_grid((6, 4), (5, 3))
    assert grid.shape == (1, 9, 5, 2)
    assert grid.dtype == torch.float32
    ys, xs = axis_coordinates(6, 5), axis_coordinates(4, 3)
    for i in range(9):
        for j in range(5):
            assert grid[0, i, j, 0].item() == ys[i].item()
            assert grid[0, i, j, 1].item() == xs[j].item()


def test_coordinate_grid_centre_is_near_zero():
    grid = coordinate_grid((15, 15), (15, 14))
    assert grid.shape == (1, 29, 27, 2)
    assert grid[0, 14, 13].abs().max().item() < 1e-6


def test_network_uses_l_cache_not_input_rows_for_spacing():
    cfg = tiny_config(pattern="H", readout="gap", registers=0, l_cache=7)  # 3x3 grid, cache 7
    model = ViT5ClassificationNet(cfg)
    grid = model.blocks[0].sequence_mixer.inner_mixer.mixer.global_conv.kernel.grid
    assert grid.shape == (1, 5, 5, 2)
    torch.testing.assert_close(grid[0, :, 0, 0].double(), torch.arange(-2, 3).double() / 6, atol=1e-6, rtol=0)


def test_l_cache_exceeded_warns_and_extends():
    # 3x3 patches + CLS + 4 registers -> 14 tokens -> pad 1 -> 5 rows > L_cache 4 (SPEC 9.9).
    cfg = tiny_config(pattern="H", readout="cls", registers=4, l_cache=4)
    with pytest.warns(UserWarning, match="exceeds L_cache.*rows 5 > L_cache 4"):
        model = ViT5ClassificationNet(cfg)
    grid = model.blocks[0].sequence_mixer.inner_mixer.mixer.global_conv.kernel.grid
    assert grid.shape == (1, 9, 5, 2)
    torch.testing.assert_close(grid[0, :, 0, 0].double(), torch.arange(-4, 5).double() / 3, atol=1e-6, rtol=0)


def test_l_cache_not_exceeded_does_not_warn(recwarn):
    ViT5ClassificationNet(tiny_config(pattern="H", readout="cls", registers=4, l_cache=5))
    assert not [w for w in recwarn if "L_cache" in str(w.message)]


def _siren(film: bool, after_pos: bool, layers: int = 3):
    gen = KernelFiLMGenerator(6, 8, layers - 1 + int(after_pos), 5) if film else None
    siren = SIRENKernelND(4, 8, layers, 8, (5, 4), (3, 4), True, gen, after_pos)
    return randomize(siren, seed=2, scale=0.7)


def _spec_siren(siren: SIRENKernelND, film_pairs):
    """SPEC 5.5 steps 2-5 in float64."""
    grid = coordinate_grid(siren.l_cache, siren.seq_lens).double()
    pe = siren.positional_embedding.linear
    h = torch.sin(grid @ pe.weight.double().T + pe.bias.double())
    o = 0
    if film_pairs is not None and siren.film_after_pos_embed:
        g, b = film_pairs[0]
        h = g[:, None, None, :] * h + b[:, None, None, :]
        o = 1
    for i, lin in enumerate(siren.hidden_linears):
        h = torch.sin(h @ lin.weight.double().T + lin.bias.double())
        if film_pairs is not None:
            g, b = film_pairs[i + o]
            h = g[:, None, None, :] * h + b[:, None, None, :]
    return h @ siren.out_linear.weight.double().T + siren.out_linear.bias.double()


def _spec_film_pairs(gen: KernelFiLMGenerator, cond):
    l0, l2 = gen.mlp[0], gen.mlp[2]
    a = cond.double() @ l0.weight.double().T + l0.bias.double()
    a = 0.5 * a * (1.0 + torch.erf(a / 2**0.5))  # exact GELU
    out = a @ l2.weight.double().T + l2.bias.double()
    hd = gen.kernel_hidden_dim
    return [
        (out[:, 2 * i * hd : 2 * i * hd + hd], out[:, 2 * i * hd + hd : 2 * (i + 1) * hd])
        for i in range(gen.num_film_layers)
    ]


def test_siren_kernel_without_film_matches_spec():
    siren = _siren(film=False, after_pos=False)
    with torch.no_grad():
        kernel, grid = siren()
    assert kernel.shape == (1, 5, 7, 4)
    assert torch.equal(grid, coordinate_grid((5, 4), (3, 4)))
    torch.testing.assert_close(kernel.double(), _spec_siren(siren, None), atol=1e-5, rtol=1e-5)


def test_siren_positional_linear_columns_are_y_then_x():
    siren = _siren(film=False, after_pos=False)
    with torch.no_grad():
        siren.positional_embedding.linear.weight[:, 1] = 0.0  # ignore x
        kernel, _ = siren()
    # The kernel then depends only on the row (y) coordinate.
    torch.testing.assert_close(kernel, kernel[:, :, :1, :].expand_as(kernel))


@pytest.mark.parametrize("after_pos", [True, False])
def test_siren_kernel_with_film_matches_spec(after_pos):
    siren = _siren(film=True, after_pos=after_pos)
    # Seeded, so that the test is deterministic: 12 of 80 unseeded draws tried gave kernels up to 17 in
    # magnitude, where float32 rounding (up to 9e-6 of the largest value) exceeds the absolute tolerance.
    cond = torch.randn(3, 6, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        kernel, _ = siren(cond)
        ref = _spec_siren(siren, _spec_film_pairs(siren.film_generator, cond))
    assert kernel.shape == (3, 5, 7, 4)  # one kernel per sample
    torch.testing.assert_close(kernel.double(), ref, atol=2e-5, rtol=1e-5)
    # Samples differ: FiLM is active.
    assert (kernel[0] - kernel[1]).abs().max() > 1e-3


def test_siren_film_is_inactive_without_conditioning():
    siren = _siren(film=True, after_pos=True)
    with torch.no_grad():
        kernel, _ = siren(None)
    torch.testing.assert_close(kernel.double(), _spec_siren(siren, None), atol=1e-5, rtol=1e-5)


def test_siren_identity_film_equals_no_film():
    siren = _siren(film=True, after_pos=True)
    with torch.no_grad():
        last = siren.film_generator.mlp[2]
        last.weight.zero_()
        hd = 8
        bias = torch.zeros(last.bias.shape)
        for i in range(3):
            bias[2 * i * hd : 2 * i * hd + hd] = 1.0  # gamma = 1, beta = 0
        last.bias.copy_(bias)
        modulated, _ = siren(torch.randn(2, 6))
        plain, _ = siren(None)
    torch.testing.assert_close(modulated, plain.expand_as(modulated), atol=1e-6, rtol=0)


def test_siren_keys():
    siren = _siren(film=True, after_pos=True)
    keys = set(siren.state_dict())
    assert keys == {
        "positional_embedding.linear.weight",
        "positional_embedding.linear.bias",
        "hidden_linears.0.weight",
        "hidden_linears.0.bias",
        "hidden_linears.1.weight",
        "hidden_linears.1.bias",
        "out_linear.weight",
        "out_linear.bias",
        "film_generator.mlp.0.weight",
        "film_generator.mlp.0.bias",
        "film_generator.mlp.2.weight",
        "film_generator.mlp.2.bias",
    }
    assert "grid" not in keys  # non-persistent, rebuilt from L_cache


def test_siren_flop_count_formula():
    siren = _siren(film=False, after_pos=False)
    g = 5 * 7
    e = hd = 8
    expected = 2 * g * 2 * e + g * e + 2 * (2 * g * hd * hd + g * hd) + 2 * g * hd * 4
    assert siren.flop_count(inference=False) == expected
    assert siren.flop_count(inference=True) == 0
    film = _siren(film=True, after_pos=True)
    gen_flops = 2 * 6 * 5 + 5 + 2 * 5 * (2 * 3 * 8)
    with_film = expected + gen_flops + 3 * 2 * g * hd
    assert film.flop_count(inference=False) == with_film
    assert film.flop_count(inference=True) == with_film
