"""RoPE tables and rotation against a direct, loop-based reading of SPEC 3.2 / 3.3."""

from __future__ import annotations

import math

import pytest
import torch

from vit5_infer.layers.rope import apply_rope, grid_angles, rope_tables, rotate_pairs, rotation_permutation


def spec_angles(rows: int, cols: int, hd: int, base: float) -> list[list[float]]:
    """SPEC 3.2: theta_j = 1 / base^(2j/h2); channel u of an axis half uses pos * theta_{u//2}."""
    h2 = hd // 2
    theta = [1.0 / base ** (2 * j / h2) for j in range(h2 // 2)]
    table = []
    for y in range(rows):
        for x in range(cols):
            table.append([y * theta[u // 2] for u in range(h2)] + [x * theta[u // 2] for u in range(h2)])
    return table


def spec_tables(gh, gw, hd, has_cls, registers, base, reg_base):
    angles = spec_angles(gh, gw, hd, base)
    cos = [[math.cos(a) for a in row] for row in angles]
    sin = [[math.sin(a) for a in row] for row in angles]
    if has_cls:
        cos.append([1.0] * hd)
        sin.append([0.0] * hd)
    if registers:
        r = math.isqrt(registers)
        reg = spec_angles(r, r, hd, reg_base)
        cos += [[math.cos(a) for a in row] for row in reg]
        sin += [[math.sin(a) for a in row] for row in reg]
    return torch.tensor(cos, dtype=torch.float64), torch.tensor(sin, dtype=torch.float64)


def spec_rot(v: list[float]) -> list[float]:
    """SPEC 3.3: [-v[q4:2q4], v[0:q4], -v[3q4:4q4], v[2q4:3q4]], written element by element."""
    hd = len(v)
    q4 = hd // 4
    out = [0.0] * hd
    for i in range(q4):
        out[i] = -v[q4 + i]
        out[q4 + i] = v[i]
        out[2 * q4 + i] = -v[3 * q4 + i]
        out[3 * q4 + i] = v[2 * q4 + i]
    return out


@pytest.mark.parametrize(
    "gh, gw, hd, has_cls, registers",
    [(3, 4, 16, True, 4), (3, 3, 8, False, 0), (2, 5, 16, True, 9), (4, 4, 64, False, 1), (3, 3, 16, True, 0)],
)
def test_rope_tables_match_spec(gh, gw, hd, has_cls, registers):
    cos, sin = rope_tables(gh, gw, hd, has_cls, registers, 10000.0, 100.0)
    ref_cos, ref_sin = spec_tables(gh, gw, hd, has_cls, registers, 10000.0, 100.0)
    assert cos.dtype == torch.float32 and sin.dtype == torch.float32
    assert cos.shape == (gh * gw + int(has_cls) + registers, hd)
    torch.testing.assert_close(cos.double(), ref_cos, atol=2e-6, rtol=0)
    torch.testing.assert_close(sin.double(), ref_sin, atol=2e-6, rtol=0)


def test_rope_base_changes_patch_rows_only():
    cos_a, _ = rope_tables(3, 3, 16, True, 4, 10000.0, 100.0)
    cos_b, _ = rope_tables(3, 3, 16, True, 4, 1000.0, 100.0)
    assert not torch.allclose(cos_a[:9], cos_b[:9])
    torch.testing.assert_close(cos_a[9:], cos_b[9:])
    ref_cos, _ = spec_tables(3, 3, 16, True, 4, 1000.0, 100.0)
    torch.testing.assert_close(cos_b.double(), ref_cos, atol=2e-6, rtol=0)


def test_cls_row_is_identity():
    n = 3 * 4
    cos, sin = rope_tables(3, 4, 16, True, 4, 10000.0, 100.0)
    assert torch.equal(cos[n], torch.ones(16))
    assert torch.equal(sin[n], torch.zeros(16))
    v = torch.randn(16)
    torch.testing.assert_close(apply_rope(v, cos[n], sin[n]), v, atol=0, rtol=0)


def test_register_grid_uses_reg_rope_base_on_sqrt_r_grid():
    # 9 registers -> 3x3 grid with base 100: register k sits at (k // 3, k % 3).
    hd, base = 16, 100.0
    cos, sin = rope_tables(2, 2, hd, False, 9, 10000.0, base)
    regs_cos, regs_sin = cos[4:], sin[4:]
    h2 = hd // 2
    for k in range(9):
        y, x = divmod(k, 3)
        for u in range(hd):
            pos = y if u < h2 else x
            angle = pos / base ** (2 * ((u % h2) // 2) / h2)
            assert regs_cos[k, u].item() == pytest.approx(math.cos(angle), abs=2e-6)
            assert regs_sin[k, u].item() == pytest.approx(math.sin(angle), abs=2e-6)


def test_register_table_has_floor_sqrt_squared_rows_for_non_square_r():
    # Upstream behaviour kept by the table builder (the config rejects it, SPEC 9.1): 8 -> 2x2 = 4 rows.
    cos, _ = rope_tables(14, 14, 64, True, 8, 10000.0, 100.0)
    assert cos.shape[0] == 196 + 1 + 4


def test_frequencies_are_repeat_interleaved():
    hd, base = 64, 10000.0
    angles = grid_angles(2, 1, hd, base)  # token 1 is (y=1, x=0)
    theta = [1.0 / base ** (2 * j / 32) for j in range(16)]
    for u in range(32):
        assert angles[1, u].item() == pytest.approx(theta[u // 2], rel=1e-6)
        assert angles[1, 32 + u].item() == 0.0  # x = 0


def test_quirk_pair_partners_use_different_angles():
    # SPEC 3.3: channel u < 16 uses theta_{u//2}, its rotation partner u+16 uses theta_{u//2+8}.
    hd, base = 64, 10000.0
    angles = grid_angles(2, 2, hd, base)
    token = 3  # (y=1, x=1)
    theta = [1.0 / base ** (2 * j / 32) for j in range(16)]
    for u in range(16):
        assert angles[token, u].item() == pytest.approx(theta[u // 2], rel=1e-6)
        assert angles[token, u + 16].item() == pytest.approx(theta[u // 2 + 8], rel=1e-6)
        assert angles[token, u].item() != pytest.approx(angles[token, u + 16].item(), rel=1e-3)
        # the X half has the same structure
        assert angles[token, 32 + u + 16].item() == pytest.approx(theta[u // 2 + 8], rel=1e-6)


def test_quirk_makes_rope_not_norm_preserving():
    cos, sin = rope_tables(4, 4, 64, False, 0, 10000.0, 100.0)
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(16, 64, generator=gen, dtype=torch.float64)
    out = apply_rope(v, cos.double(), sin.double())
    norms_in, norms_out = v.norm(dim=-1), out.norm(dim=-1)
    assert torch.allclose(norms_in[0], norms_out[0])  # position (0, 0): identity
    assert (norms_in[1:] - norms_out[1:]).abs().max() > 1e-3  # a true rotation would keep every norm


@pytest.mark.parametrize("hd", [4, 8, 16, 64])
def test_rotate_pairs_matches_spec(hd):
    gen = torch.Generator().manual_seed(hd)
    v = torch.randn(3, hd, generator=gen)
    out = rotate_pairs(v)
    for row in range(3):
        assert out[row].tolist() == pytest.approx(spec_rot(v[row].tolist()), abs=0)


def test_rotation_permutation_equals_rotate_pairs():
    v = torch.randn(5, 32)
    index, sign = rotation_permutation(32)
    torch.testing.assert_close(v[..., index] * torch.tensor(sign), rotate_pairs(v))


def test_apply_rope_matches_spec_elementwise():
    hd = 16
    cos, sin = rope_tables(3, 3, hd, True, 4, 10000.0, 100.0)
    gen = torch.Generator().manual_seed(1)
    v = torch.randn(cos.shape[0], hd, generator=gen)
    out = apply_rope(v, cos, sin)
    for t in range(cos.shape[0]):
        r = spec_rot(v[t].tolist())
        expected = [v[t, u].item() * cos[t, u].item() + r[u] * sin[t, u].item() for u in range(hd)]
        assert out[t].tolist() == pytest.approx(expected, abs=1e-6)


def test_apply_rope_broadcasts_over_batch_and_heads():
    cos, sin = rope_tables(2, 2, 8, False, 0, 10000.0, 100.0)
    v = torch.randn(2, 4, 3, 8)  # [B, T, H, hd]
    out = apply_rope(v, cos[:, None, :], sin[:, None, :])
    for b in range(2):
        for h in range(3):
            torch.testing.assert_close(out[b, :, h], apply_rope(v[b, :, h], cos, sin))
