"""2-D Hyena operator, its QKV wrapper and the token-sequence adapter (SPEC 5.1-5.3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .ckconv import CKConvND
from .norms import RMSNorm

GATE_FUNCTIONS = {
    "silu": F.silu,
    "sigmoid": torch.sigmoid,
    "gelu": F.gelu,
    "relu": F.relu,
    "identity": None,
    None: None,
}


def _channels_last_norm(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Hyena(nn.Module):
    """Short conv -> q * gate(k) -> norm -> long conv -> * gate2(v) -> norm, on ``[B, H, W, D]``."""

    def __init__(
        self,
        hidden_dim: int,
        global_conv: CKConvND,
        short_conv_kernel_size: int = 3,
        short_conv_bias: bool = False,
        gate: str | None = "silu",
        gate_2: str | None = "sigmoid",
        qk_norm: str | None = "l2",
        pixelhyena_norm: str | None = "rmsnorm",
        output_norm: str | None = "rmsnorm",
        norm_eps: float = 1e-6,
    ):
        super().__init__()
        d = hidden_dim
        self.hidden_dim = d
        self.global_conv = global_conv
        self.short_conv = nn.Conv2d(
            3 * d,
            3 * d,
            short_conv_kernel_size,
            padding=short_conv_kernel_size // 2,
            groups=3 * d,
            bias=short_conv_bias,
        )
        self.gate = gate if gate != "identity" else None
        # Upstream reuses the first gate when no second gate is configured.
        self.gate_2 = (gate_2 if gate_2 != "identity" else None) if gate_2 is not None else self.gate
        self.qk_norm = qk_norm
        # k is normalized only when the first gate is the identity (upstream rule).
        self.normalize_k = qk_norm is not None and self.gate is None
        self.pixelhyena_norm = RMSNorm(d, norm_eps) if pixelhyena_norm == "rmsnorm" else None
        self.output_norm = RMSNorm(d, norm_eps) if output_norm == "rmsnorm" else None

    @staticmethod
    def _l2_channels(x: torch.Tensor) -> torch.Tensor:
        return x / x.norm(p=2, dim=1, keepdim=True).clamp_min(1e-12)

    def forward(self, q, k, v, conditioning: torch.Tensor | None = None) -> torch.Tensor:
        d = self.hidden_dim
        u = torch.cat([t.permute(0, 3, 1, 2) for t in (q, k, v)], dim=1)
        q, k, v = self.short_conv(u).split(d, dim=1)
        if self.qk_norm is not None:
            q = self._l2_channels(q)
            if self.normalize_k:
                k = self._l2_channels(k)
        gate = GATE_FUNCTIONS[self.gate]
        z = q * gate(k) if gate is not None else q * k
        if self.pixelhyena_norm is not None:
            z = _channels_last_norm(self.pixelhyena_norm, z)
        h = self.global_conv(z, conditioning=conditioning)
        gate_2 = GATE_FUNCTIONS[self.gate_2]
        y = h * gate_2(v) if gate_2 is not None else h * v
        if self.output_norm is not None:
            y = _channels_last_norm(self.output_norm, y)
        return y.permute(0, 2, 3, 1)

    def flop_count(self, dims: tuple[int, int], inference: bool = False) -> int:
        c = self.hidden_dim
        s = dims[0] * dims[1]
        kh, kw = self.short_conv.kernel_size
        total = 2 * 1 * (3 * c) * s * kh * kw
        if self.qk_norm is not None:
            total += 3 * c * s
            if self.normalize_k:
                total += 3 * c * s
        total += c * s + (c * s if self.gate is not None else 0)
        if self.pixelhyena_norm is not None:
            total += 3 * c * s
        total += self.global_conv.flop_count(inference)
        total += c * s + (c * s if self.gate_2 is not None else 0)
        if self.output_norm is not None:
            total += 3 * c * s
        return total


class QKVSequenceMixer(nn.Module):
    """``out_proj(mixer(q, k, v))`` with ``q | k | v = qkv_proj(x)`` on channels-last input."""

    def __init__(self, hidden_dim: int, mixer: Hyena, qkv_bias: bool = False, out_proj_bias: bool = False):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.qkv_proj = nn.Linear(hidden_dim, 3 * hidden_dim, bias=qkv_bias)
        self.out_proj = nn.Linear(hidden_dim, hidden_dim, bias=out_proj_bias)
        self.mixer = mixer

    def forward(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        q, k, v = self.qkv_proj(x).chunk(3, dim=-1)
        return self.out_proj(self.mixer(q, k, v, **kwargs))

    def flop_count(self, dims: tuple[int, int], inference: bool = False) -> int:
        t, d = dims[0] * dims[1], self.hidden_dim
        return 2 * t * d * 3 * d + self.mixer.flop_count(dims, inference) + 2 * t * d * d


class ViT5HyenaAdapter(nn.Module):
    """Runs a 2-D mixer on a token sequence laid out row-major with ``grid_w`` columns."""

    def __init__(self, inner_mixer: QKVSequenceMixer, grid_w: int):
        super().__init__()
        self.inner_mixer = inner_mixer
        self.grid_w = grid_w

    def forward(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        b, t, d = x.shape
        if t % self.grid_w:
            raise ValueError(f"Hyena adapter: {t} tokens do not fill rows of width {self.grid_w}")  # SPEC 9.4
        y = self.inner_mixer(x.reshape(b, t // self.grid_w, self.grid_w, d), **kwargs)
        return y.reshape(b, t, d)

    def flop_count(self, num_tokens: int, inference: bool = False) -> int:
        return self.inner_mixer.flop_count((num_tokens // self.grid_w, self.grid_w), inference)
