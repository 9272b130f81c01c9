"""ViT5Attention: multi-head self-attention with QK-norm and register-aware 2-D RoPE (SPEC 3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from .norms import L2Norm, RMSNorm
from .rope import apply_rope, rope_tables


def make_qk_norm(kind, dim: int, eps: float):
    if kind is None:
        return None
    if kind == "rmsnorm":
        return RMSNorm(dim, eps)
    if kind == "l2":
        return L2Norm(dim=-1)
    raise ValueError(f"unknown qk_norm {kind!r}")


class ViT5Attention(nn.Module):
    rope_cos: torch.Tensor  # buffers, declared for type checkers (nn.Module resolves them dynamically)
    rope_sin: torch.Tensor

    def __init__(
        self,
        hidden_dim: int,
        num_heads: int,
        num_patches_h: int,
        num_patches_w: int,
        num_registers: int = 4,
        has_cls: bool = True,
        qk_norm: str | None = None,
        rope_base: float = 10000.0,
        reg_rope_base: float = 100.0,
        qkv_bias: bool = False,
        out_proj_bias: bool = False,
        scale: float | None = None,
        norm_eps: float = 1e-6,
    ):
        super().__init__()
        assert hidden_dim % num_heads == 0
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.head_dim = hidden_dim // num_heads
        self.scale = scale if scale is not None else self.head_dim**-0.5
        self.qk_norm_kind = qk_norm
        self.qkv = nn.Linear(hidden_dim, 3 * hidden_dim, bias=qkv_bias)
        self.proj = nn.Linear(hidden_dim, hidden_dim, bias=out_proj_bias)
        # Two independent instances, as upstream (separate q_norm / k_norm keys).
        self.q_norm = make_qk_norm(qk_norm, self.head_dim, norm_eps)
        self.k_norm = make_qk_norm(qk_norm, self.head_dim, norm_eps)
        cos, sin = rope_tables(
            num_patches_h, num_patches_w, self.head_dim, has_cls, num_registers, rope_base, reg_rope_base
        )
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    @property
    def num_tokens(self) -> int:
        return self.rope_cos.shape[0]

    def project_qkv(self, x: torch.Tensor):
        """q, k, v as ``[B, T, H, hd]``, with QK-norm and RoPE applied to q and k."""
        b, t, _ = x.shape
        if t != self.num_tokens:
            raise InputError(f"attention expects {self.num_tokens} tokens (its RoPE table), got {t}")
        q, k, v = self.qkv(x).reshape(b, t, 3, self.num_heads, self.head_dim).unbind(2)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        cos = self.rope_cos[:, None, :].to(q.dtype)
        sin = self.rope_sin[:, None, :].to(q.dtype)
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.project_qkv(x)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(b, t, d))

    def flop_count(self, num_tokens: int, inference: bool = False) -> int:
        t, d = num_tokens, self.hidden_dim
        total = 6 * t * d * d + 4 * t * d + 4 * t * t * d + 2 * t * d * d
        if self.q_norm is not None:
            if not hasattr(self.q_norm, "flop_count"):
                # 9.16: upstream raises AttributeError here; say why instead.
                raise NotImplementedError("flop_count is undefined for an L2 attention QK-norm (as upstream)")
            total += self.q_norm.flop_count(t) + self.k_norm.flop_count(t)
        return total
