"""ViT5ClassificationNet and its construction from a ViT5Config (SPEC section 1)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import cast

import torch
from torch import nn

from .blocks import kind_hook, pads
from .config import ViT5Config
from .errors import InputError
from .layers import (
    MLP,
    CKConvND,
    GaussianModulationND,
    GlobalResponseNorm,
    Hyena,
    KernelFiLMGenerator,
    QKVSequenceMixer,
    RegisterCompressConcat,
    RegisterPooling,
    RMSNorm,
    SIRENKernelND,
    ViT5Attention,
    ViT5HyenaAdapter,
    ViT5ResidualBlock,
)
from .outputs import CLS_TOKEN, PATCH_TOKENS, PRE_LOGITS, REGISTER_TOKENS, select_outputs
from .vocabulary import LOGITS


def build_attention(config: ViT5Config) -> ViT5Attention:
    att, net = config.attention, config.network
    assert att is not None, "validate() requires the attention section for 'A' blocks"
    return ViT5Attention(
        hidden_dim=net.hidden_dim,
        num_heads=att.num_heads,
        num_patches_h=config.grid_size,
        num_patches_w=config.grid_size,
        num_registers=net.num_registers,
        has_cls=config.has_cls,  # SPEC 9.2: always derived from the readout
        qk_norm=att.qk_norm,
        rope_base=att.rope_base,
        reg_rope_base=att.reg_rope_base,
        qkv_bias=att.qkv_bias,
        out_proj_bias=att.out_proj_bias,
        scale=att.scale,
        norm_eps=config.norm_eps,
    )


def build_hyena(config: ViT5Config) -> ViT5HyenaAdapter:
    hy, net, film = config.hyena, config.network, config.film
    assert hy is not None, "validate() requires the hyena section for 'H' blocks"
    d = net.hidden_dim
    l_cache = config.l_cache()
    seq_lens = (config.hyena_rows, config.grid_size)
    generator = None
    if film is not None:
        generator = KernelFiLMGenerator(
            config.film_cond_dim(), hy.kernel_hidden_dim, film.num_film_layers, film.film_hidden_dim
        )
    kernel = SIRENKernelND(
        out_dim=d,
        mlp_hidden_dim=hy.kernel_hidden_dim,
        num_layers=hy.kernel_num_layers,
        embedding_dim=hy.kernel_embedding_dim,
        l_cache=l_cache,
        seq_lens=seq_lens,
        use_bias=hy.kernel_bias,
        film_generator=generator,
        film_after_pos_embed=bool(film and film.film_after_pos_embed),
    )
    mask = None
    if hy.mask is not None:
        m = hy.mask
        mask = GaussianModulationND(
            2,
            d,
            grid_size=2 * max(l_cache) - 1,  # SPEC 9.10: bounds derive from the cache, not the input
            min_attenuation_at_step=m.min_attenuation_at_step,
            max_attenuation_at_limit=m.max_attenuation_at_limit,
            init_extent=m.init_extent,
            parametrization=m.parametrization,
        )
    mixer = Hyena(
        d,
        CKConvND(d, kernel, mask),
        short_conv_kernel_size=hy.short_conv_kernel_size,
        short_conv_bias=hy.short_conv_bias,
        gate=hy.gate,
        gate_2=hy.gate_2,
        qk_norm=hy.qk_norm,
        pixelhyena_norm=hy.pixelhyena_norm,
        output_norm=hy.output_norm,
        norm_eps=config.norm_eps,
    )
    inner = QKVSequenceMixer(d, mixer, qkv_bias=hy.qkv_bias, out_proj_bias=hy.out_proj_bias)
    return ViT5HyenaAdapter(inner, grid_w=config.grid_size)


def residual_block(
    config: ViT5Config,
    letter: str,
    mixer: nn.Module,
    register_pooling: nn.Module | None = None,
    grn: GlobalResponseNorm | None = None,
) -> ViT5ResidualBlock:
    """A pre-norm residual block around ``mixer`` with this config's MLP, norms and LayerScale."""
    net = config.network
    d = net.hidden_dim
    mlp = MLP(d, config.mlp_activation, config.mlp_expansion_factor, bias=config.mlp_has_bias(letter))
    return ViT5ResidualBlock(
        mixer,
        mlp,
        d,
        norm_eps=config.norm_eps,
        layer_scale=config.layer_scale,
        register_pooling=register_pooling,
        num_registers=net.num_registers,
        register_start_idx=config.num_patches + int(config.has_cls),  # SPEC 9.8: injected, never guessed
        grn=grn,
    )


def build_attention_block(config: ViT5Config) -> ViT5ResidualBlock:
    return residual_block(config, "A", build_attention(config))


def build_hyena_block(config: ViT5Config) -> ViT5ResidualBlock:
    net, film, hy = config.network, config.film, config.hyena
    assert hy is not None, "validate() requires the hyena section for 'H' blocks"
    pooling: nn.Module | None = None
    if film is not None:
        if film.conditioning == "register_pooling":
            pooling = RegisterPooling(net.num_registers)
        else:
            assert film.compressed_dim is not None, "validate() requires it for register_compress_concat"
            pooling = RegisterCompressConcat(net.num_registers, net.hidden_dim, film.compressed_dim)
    grn = GlobalResponseNorm(net.hidden_dim, config.grn_eps) if hy.grn else None
    return residual_block(config, "H", build_hyena(config), pooling, grn)


#: block kind letter -> the residual block of that kind (blocks.py)
BLOCK_BUILDERS: dict[str, Callable[[ViT5Config], ViT5ResidualBlock]] = {
    "A": build_attention_block,
    "H": build_hyena_block,
}


def build_block(config: ViT5Config, letter: str) -> ViT5ResidualBlock:
    return kind_hook(BLOCK_BUILDERS, letter, "network builder")(config)


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
            warnings.warn(
                f"Hyena grid exceeds L_cache ({'; '.join(exceeded)}); the SIREN is evaluated beyond its "
                "trained coordinate range, as upstream does",
                stacklevel=2,
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
