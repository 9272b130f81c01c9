"""Gaussian kernel mask (SPEC 5.7, 9.10): bounds, clamping and the formula."""

from __future__ import annotations

import math

import pytest
import torch
from vit5_tiny import tiny_config

from vit5_infer import ViT5ClassificationNet
from vit5_infer.layers import GaussianModulationND
from vit5_infer.layers.siren import coordinate_grid


def test_bounds_for_l_cache_15():
    mask = GaussianModulationND(2, 8, grid_size=29)
    assert mask.min_std == pytest.approx(0.03328504, abs=1e-8)
    assert mask.max_std == pytest.approx(3.12215677, abs=1e-8)


@pytest.mark.parametrize("grid_size, a_step, a_limit", [(11, 0.1, 0.95), (29, 0.2, 0.9), (7, 0.05, 0.99)])
def test_bounds_formula(grid_size, a_step, a_limit):
    mask = GaussianModulationND(2, 4, grid_size, a_step, a_limit)
    assert mask.min_std == pytest.approx((2 / (grid_size - 1)) * math.sqrt(-1 / (2 * math.log(a_step))), rel=1e-12)
    assert mask.max_std == pytest.approx(math.sqrt(-1 / (2 * math.log(a_limit))), rel=1e-12)


def test_network_derives_grid_size_from_l_cache_not_input():
    # Grid rows 5 but L_cache 15 -> grid_size 29 (SPEC 9.10).
    cfg = tiny_config(pattern="H", readout="cls", registers=4, l_cache=15, mask=True)
    model = ViT5ClassificationNet(cfg)
    mask = model.blocks[0].sequence_mixer.inner_mixer.mixer.global_conv.mask
    assert mask.grid_size == 29
    assert mask.min_std == pytest.approx(0.03328504, abs=1e-8)
    cfg = tiny_config(pattern="H", readout="cls", registers=4, l_cache=[6, 9], mask=True)
    mask = ViT5ClassificationNet(cfg).blocks[0].sequence_mixer.inner_mixer.mixer.global_conv.mask
    assert mask.grid_size == 2 * 9 - 1


def test_mask_formula_with_stds_inside_bounds():
    mask = GaussianModulationND(2, 3, grid_size=9)
    std = torch.tensor([[0.3, 0.5, 1.0], [0.7, 0.2, 2.0]])
    with torch.no_grad():
        mask.std_param.copy_(std)
    grid = coordinate_grid((5, 5), (3, 4))
    got = mask.mask(grid)
    assert got.shape == (1, 5, 7, 3)
    for i in range(5):
        for j in range(7):
            y, x = grid[0, i, j].tolist()
            for c in range(3):
                expected = math.exp(-0.5 * (y * y / std[0, c].item() ** 2 + x * x / std[1, c].item() ** 2))
                assert got[0, i, j, c].item() == pytest.approx(expected, rel=1e-5)
    kernel = torch.randn(2, 5, 7, 3)
    torch.testing.assert_close(mask(grid, kernel), kernel * got)


def test_std_is_clamped_without_mutating_the_parameter():
    mask = GaussianModulationND(2, 3, grid_size=29)
    raw = torch.tensor([[0.001, 1.0, 50.0], [-1.0, 0.5, 3.2]])
    with torch.no_grad():
        mask.std_param.copy_(raw)
    lo, hi = mask.min_std, mask.max_std
    expected = torch.tensor([[lo, 1.0, hi], [lo, 0.5, hi]])
    torch.testing.assert_close(mask.std(), expected)
    grid = coordinate_grid((15, 15), (3, 3))
    ref = GaussianModulationND(2, 3, grid_size=29)
    with torch.no_grad():
        ref.std_param.copy_(expected)
    torch.testing.assert_close(mask.mask(grid), ref.mask(grid))
    assert torch.equal(mask.std_param.detach(), raw)  # no in-place clamp


@pytest.mark.parametrize("param, transform", [("log", torch.exp), ("softplus", torch.nn.functional.softplus)])
def test_log_and_softplus_parametrizations(param, transform):
    mask = GaussianModulationND(2, 4, grid_size=29, parametrization=param)
    raw = torch.tensor([[-5.0, -1.0, 0.0, 3.0], [0.5, -2.0, 1.0, -10.0]])
    with torch.no_grad():
        mask.std_param.copy_(raw)
    torch.testing.assert_close(mask.std(), transform(raw).clamp(mask.min_std, mask.max_std))
