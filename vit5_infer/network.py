"""ViT5ClassificationNet and its construction from a ViT5Config (SPEC section 1)."""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from .blocks import block_kind, pads
from .caller_warnings import warn_at_caller
from .config import ViT5Config
from .errors import InputError
from .layers import (
    RMSNorm,
    ViT5ResidualBlock,
)
from .outputs import CLS_TOKEN, PATCH_TOKENS, PRE_LOGITS, REGISTER_TOKENS, select_outputs
from .vocabulary import LOGITS


def build_block(config: ViT5Config, letter: str) -> ViT5ResidualBlock:
    return block_kind(letter).build(config)


class ViT5ClassificationNet(nn.Module):
    """Inference-only ViT-5 classifier: ``forward(pixel_values [B, C, S, S]) -> logits [B, classes]``."""

    _zero_pad: torch.Tensor  # a buffer, declared for type checkers (nn.Module resolves it dynamically)
    register_neck: nn.Linear | None

    def __init__(self, config: ViT5Config):
        super().__init__()
        config.validate()
        exceeded = config.l_cache_exceeded() if "H" in config.network.layer_pattern else []
        if exceeded:
            # SPEC 9.9: upstream silently extends the SIREN grid past L_cache.
            warn_at_caller(
                f"Hyena grid exceeds L_cache ({'; '.join(exceeded)}); the SIREN is evaluated beyond its "
                "trained coordinate range, as upstream does"
            )
        self.config = config
        net = config.network
        d, n, r = net.hidden_dim, config.num_patches, net.num_registers
        # Attribute order is the upstream state_dict order.
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d)) if config.has_cls else None
        self.pos_embed = nn.Parameter(torch.zeros(1, n, d))
        self.reg_token = nn.Parameter(torch.zeros(1, r, d)) if r > 0 else None
        self.patch_embed = nn.Conv2d(net.in_channels, d, net.patch_size, stride=net.patch_size, bias=False)
        self.blocks = nn.ModuleList(build_block(config, t) for t in net.layer_pattern)
        self.register_neck = None
        if net.readout == "register_concat":
            assert net.neck_compression_ratio, "validate() requires it for register_concat"
            self.register_neck = nn.Linear(d, d // net.neck_compression_ratio, bias=False)
        self.out_norm = RMSNorm(config.head_input_dim, config.norm_eps)
        self.out_proj = nn.Linear(config.head_input_dim, net.num_classes, bias=False)
        self.register_buffer("_zero_pad", torch.zeros(1, config.num_pad, d), persistent=False)
        self.eval()

    @property
    def input_shape(self) -> tuple[int, int, int]:
        net = self.config.network
        return (net.in_channels, net.image_size, net.image_size)

    def check_input(self, pixel_values: torch.Tensor) -> None:
        expected = self.input_shape
        dtype = self.patch_embed.weight.dtype
        if not isinstance(pixel_values, torch.Tensor):
            hint = "; wrap it with torch.from_numpy(x)" if type(pixel_values).__module__ == "numpy" else ""
            raise InputError(
                f"pixel_values must be a torch.Tensor, got {type(pixel_values).__module__}."
                f"{type(pixel_values).__name__}{hint}"
            )
        if pixel_values.dtype != dtype:
            want, got = (str(t).replace("torch.", "") for t in (dtype, pixel_values.dtype))
            raise InputError(f"pixel_values must be {want}, got {got}")
        if pixel_values.dim() != 4 or tuple(pixel_values.shape[1:]) != expected:
            # SPEC 9.11: other sizes would silently drop pixels or break pos_embed.
            raise InputError(
                f"pixel_values must have shape [B, {expected[0]}, {expected[1]}, {expected[2]}], "
                f"got {list(pixel_values.shape)}"
            )

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Token sequence ``[patches | CLS | registers | padding]`` of length T."""
        b = pixel_values.shape[0]
        x = self.patch_embed(pixel_values).flatten(2).transpose(1, 2) + self.pos_embed
        parts = [x]
        if self.cls_token is not None:
            parts.append(self.cls_token.expand(b, -1, -1))
        if self.reg_token is not None:
            parts.append(self.reg_token.expand(b, -1, -1))
        if self._zero_pad.shape[1]:
            parts.append(self._zero_pad.expand(b, -1, -1).to(x.dtype))
        return torch.cat(parts, dim=1)

    def run_blocks(self, x: torch.Tensor) -> torch.Tensor:
        t0, pad = self.config.num_tokens, self.config.num_pad
        for kind, block in zip(self.config.network.layer_pattern, self.blocks):
            if pad and not pads(kind):
                x = torch.cat([block(x[:, :t0]), x[:, t0:]], dim=1)
            else:
                x = block(x)
        return x

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """The readout's vector before ``out_norm``: CLS token, patch mean or register neck."""
        net = self.config.network
        n = self.config.num_patches
        if net.readout == "cls":
            return x[:, n]
        if net.readout == "gap":
            return x[:, :n].mean(dim=1)
        assert self.register_neck is not None, "built for the register_concat readout"
        return self.register_neck(x[:, n : n + net.num_registers]).flatten(1)

    def readout(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_proj(self.out_norm(self.pool(x)))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        self.check_input(pixel_values)
        return self.readout(self.run_blocks(self.embed(pixel_values)))

    def token_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Backbone features of the last block's token sequence ``x`` (see vit5_infer.outputs)."""
        cfg, net = self.config, self.config.network
        n, g, r = cfg.num_patches, cfg.grid_size, net.num_registers
        features = {
            PRE_LOGITS: self.out_norm(self.pool(x)),
            PATCH_TOKENS: x[:, :n].reshape(x.shape[0], g, g, x.shape[-1]),  # row-major, padding excluded
        }
        if cfg.has_cls:
            features[CLS_TOKEN] = x[:, n]
        if r:
            start = n + int(cfg.has_cls)
            features[REGISTER_TOKENS] = x[:, start : start + r]
        return features

    def forward_features(self, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every backbone feature of the network, by name: ``pre_logits`` [B, F], ``patch_tokens``
        [B, Hp, Wp, C] and, where the network has them, ``cls_token`` [B, C] and ``register_tokens``
        [B, R, C] (the token outputs are the last block's, without the final norm)."""
        self.check_input(pixel_values)
        return self.token_features(self.run_blocks(self.embed(pixel_values)))

    def forward_outputs(self, pixel_values: torch.Tensor, outputs=None) -> dict[str, torch.Tensor]:
        """The requested outputs (any of vit5_infer.vocabulary.OUTPUT_NAMES, default ``logits``), by
        name in the order asked; OutputError for one this network does not have."""
        names = select_outputs(self.config, outputs)
        self.check_input(pixel_values)
        features = self.token_features(self.run_blocks(self.embed(pixel_values)))
        if LOGITS in names:
            features[LOGITS] = self.out_proj(features[PRE_LOGITS])
        return {name: features[name] for name in names}

    def flop_count(self, inference: bool = False) -> int:
        cfg, net = self.config, self.config.network
        d, n, p = net.hidden_dim, cfg.num_patches, net.patch_size
        total = 2 * net.in_channels * d * p * p * n + n * d
        for i, block in enumerate(self.blocks):
            total += cast(ViT5ResidualBlock, block).flop_count(cfg.block_tokens(i), inference)
        if net.readout == "register_concat":
            assert net.neck_compression_ratio, "validate() requires it for register_concat"
            total += net.num_registers * 2 * d * (d // net.neck_compression_ratio)
        elif net.readout == "gap":
            total += n * d
        dh = cfg.head_input_dim
        return total + self.out_norm.flop_count(1) + 2 * dh * net.num_classes

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
