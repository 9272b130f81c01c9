"""Register-aware 2-D RoPE tables and the upstream rotation convention (SPEC section 3.2-3.3).

The frequencies are repeat-interleaved (theta0, theta0, theta1, theta1, ...) while the rotation pairs
channel u with u + head_dim/4 inside each axis half, so the two members of a "pair" use different
angles.  Upstream checkpoints were trained with this; it must not be replaced by standard RoPE.
"""

from __future__ import annotations

import math

import torch


def axis_frequencies(head_dim: int, base: float) -> torch.Tensor:
    half = head_dim // 2
    return 1.0 / (base ** (torch.arange(0, half, 2, dtype=torch.float32) / half))


def grid_angles(rows: int, cols: int, head_dim: int, base: float) -> torch.Tensor:
    """Angles ``[rows*cols, head_dim]``: y-angles in the first half, x-angles in the second."""
    theta = axis_frequencies(head_dim, base).repeat_interleave(2)
    ys, xs = torch.meshgrid(
        torch.arange(rows, dtype=torch.float32), torch.arange(cols, dtype=torch.float32), indexing="ij"
    )
    y_angles = ys.reshape(-1, 1) * theta
    x_angles = xs.reshape(-1, 1) * theta
    return torch.cat([y_angles, x_angles], dim=-1)


def rope_tables(
    grid_h: int, grid_w: int, head_dim: int, has_cls: bool, num_registers: int, base: float, reg_base: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables ``[N + has_cls + r*r, head_dim]`` in token order (patches, CLS, registers)."""
    angles = grid_angles(grid_h, grid_w, head_dim, base)
    cos, sin = [angles.cos()], [angles.sin()]
    if has_cls:
        cos.append(torch.ones(1, head_dim))
        sin.append(torch.zeros(1, head_dim))
    if num_registers > 0:
        r = math.isqrt(num_registers)
        reg = grid_angles(r, r, head_dim, reg_base)
        cos.append(reg.cos())
        sin.append(reg.sin())
    return torch.cat(cos), torch.cat(sin)


def rotate_pairs(v: torch.Tensor) -> torch.Tensor:
    """Split-half swap with negation, separately inside the Y half and the X half."""
    q4 = v.shape[-1] // 4
    a, b, c, d = v.split(q4, dim=-1)
    return torch.cat([-b, a, -d, c], dim=-1)


def rotation_permutation(head_dim: int) -> tuple[list[int], list[float]]:
    """``rotate_pairs(v) == v[..., index] * sign``: the rotation as one gather and a sign vector."""
    q4 = head_dim // 4
    index = list(range(q4, 2 * q4)) + list(range(0, q4)) + list(range(3 * q4, 4 * q4)) + list(range(2 * q4, 3 * q4))
    sign = [-1.0] * q4 + [1.0] * q4 + [-1.0] * q4 + [1.0] * q4
    return index, sign


def apply_rope(v: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    return v * cos + rotate_pairs(v) * sin
