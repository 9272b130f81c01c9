"""The Hyena block kind ("H"): the SIREN-kernel long convolution of nvsubquadratic's ViT-5 (SPEC 4-7)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Optional

from ..errors import CheckpointError, ConfigError
from ..weight_shapes import same_for_all, shape_of
from .registry import BlockKind, register_block_kind

HYENA = "sequence_mixer.inner_mixer."
CONV = HYENA + "mixer.global_conv."
KERNEL = CONV + "kernel."
GATES = ("silu", "sigmoid", "gelu", "relu", "identity")


def validate(config: Any) -> None:
    """SPEC 9.4, 9.8-9.10."""
    net, hy = config.network, config.hyena
    if hy is None:
        raise ConfigError("layer_pattern has Hyena blocks but the config has no 'hyena' section")
    if hy.kernel != "siren":
        raise ConfigError(f"hyena.kernel {hy.kernel!r} is not supported (only 'siren')")
    if hy.grid_type != "double" or hy.fft_padding != "zero":
        raise ConfigError(
            f"hyena grid_type={hy.grid_type!r}, fft_padding={hy.fft_padding!r} is not supported; "
            "every ViT-5 preset uses grid_type='double', fft_padding='zero'"
        )
    if hy.kernel_num_layers < 2:
        raise ConfigError("hyena.kernel_num_layers must be >= 2")
    for name in ("gate", "gate_2"):
        value = getattr(hy, name)
        if value is not None and value not in GATES:
            raise ConfigError(f"hyena.{name} must be one of {', '.join(GATES)}, got {value!r}")
    if hy.qk_norm not in (None, "l2"):
        raise ConfigError(f"hyena.qk_norm must be 'l2' or null, got {hy.qk_norm!r}")
    for name in ("pixelhyena_norm", "output_norm"):
        if getattr(hy, name) not in (None, "rmsnorm"):
            raise ConfigError(f"hyena.{name} must be 'rmsnorm' or null")
    if hy.short_conv_kernel_size % 2 == 0:
        raise ConfigError("hyena.short_conv_kernel_size must be odd ('same' padding)")
    if config.num_padded_tokens % config.grid_size:
        raise ConfigError("internal: padded token count is not a multiple of the grid width")  # 9.4
    l_cache = config.l_cache()
    if min(l_cache) < 2:
        raise ConfigError(f"hyena.L_cache must be >= 2 on every axis, got {l_cache}")
    if hy.mask is not None:
        if hy.mask.type != "gaussian":
            raise ConfigError(f"hyena.mask.type {hy.mask.type!r} is not supported (only 'gaussian')")
        if hy.mask.parametrization not in ("direct", "log", "softplus"):
            raise ConfigError(f"hyena.mask.parametrization {hy.mask.parametrization!r} is not supported")
        for name in ("min_attenuation_at_step", "max_attenuation_at_limit"):
            value = getattr(hy.mask, name)
            if not 0.0 < value < 1.0:
                raise ConfigError(f"hyena.mask.{name} must lie in (0, 1), got {value}")
    film = config.film
    if film is not None:
        # 9.8: a FiLM generator without register conditioning is silently unused upstream.
        if net.num_registers == 0:
            raise ConfigError("FiLM conditioning reads the register tokens, but num_registers is 0")
        if film.conditioning not in ("register_pooling", "register_compress_concat"):
            raise ConfigError(f"film.conditioning {film.conditioning!r} is not supported")
        if film.conditioning == "register_compress_concat" and not film.compressed_dim:
            raise ConfigError("film.conditioning 'register_compress_concat' needs film.compressed_dim")
        expected = hy.kernel_num_layers - 1 + int(film.film_after_pos_embed)
        if film.num_film_layers != expected:
            raise ConfigError(
                f"film.num_film_layers={film.num_film_layers} but the SIREN has "
                f"{hy.kernel_num_layers - 1} hidden layers"
                f"{' plus the positional embedding' if film.film_after_pos_embed else ''}: expected {expected}"
            )
        if film.film_after_pos_embed and hy.kernel_embedding_dim != hy.kernel_hidden_dim:
            raise ConfigError("film_after_pos_embed needs kernel_embedding_dim == kernel_hidden_dim")


def _hyena_settings(sd: Mapping[str, Any], prefix: str) -> dict:
    k = prefix + KERNEL
    hidden = sorted(
        int(m.group(1)) for key in sd if (m := re.match(re.escape(k) + r"hidden_linears\.(\d+)\.weight$", key))
    )
    if not hidden:
        raise CheckpointError(f"{prefix}: Hyena block without a SIREN kernel (no hidden_linears); unsupported kernel")
    conv_w = shape_of(sd, prefix + HYENA + "mixer.short_conv.weight")
    return {
        "kernel_embedding_dim": shape_of(sd, k + "positional_embedding.linear.weight", 2)[0],
        "kernel_hidden_dim": shape_of(sd, k + "hidden_linears.0.weight", 2)[0],
        "kernel_num_layers": len(hidden) + 1,
        "kernel_bias": k + "out_linear.bias" in sd,
        "short_conv_kernel_size": conv_w[-1],
        "short_conv_bias": prefix + HYENA + "mixer.short_conv.bias" in sd,
        "pixelhyena_norm": "rmsnorm" if prefix + HYENA + "mixer.pixelhyena_norm.weight" in sd else None,
        "output_norm": "rmsnorm" if prefix + HYENA + "mixer.output_norm.weight" in sd else None,
        "mask": prefix + CONV + "mask.std_param" in sd,
        "grn": prefix + "grn.gamma" in sd,
        "qkv_bias": prefix + HYENA + "qkv_proj.bias" in sd,
        "out_proj_bias": prefix + HYENA + "out_proj.bias" in sd,
    }


def _film_settings(sd: Mapping[str, Any], prefix: str, kernel_hidden_dim: int):
    g = prefix + KERNEL + "film_generator.mlp."
    if g + "0.weight" not in sd:
        return None
    film_hidden, _cond = shape_of(sd, g + "0.weight", 2)
    n_layers = shape_of(sd, g + "2.weight", 2)[0] // (2 * kernel_hidden_dim)
    if prefix + "register_pooling.logits" in sd:
        return {"conditioning": "register_pooling", "film_hidden_dim": film_hidden, "num_film_layers": n_layers}
    if prefix + "register_pooling.compress.weight" in sd:
        return {
            "conditioning": "register_compress_concat",
            "film_hidden_dim": film_hidden,
            "num_film_layers": n_layers,
            "compressed_dim": shape_of(sd, prefix + "register_pooling.compress.weight", 2)[0],
        }
    # SPEC 9.8: upstream would silently ignore this generator.
    raise CheckpointError(f"{prefix}: FiLM generator without register conditioning; upstream never uses it")


def detect(sd: Mapping[str, Any], prefix: str) -> Optional[dict]:
    if prefix + HYENA + "qkv_proj.weight" not in sd:
        return None
    hyena = _hyena_settings(sd, prefix)
    return {"hyena": hyena, "film": _film_settings(sd, prefix, hyena["kernel_hidden_dim"])}


def configure(by_block: dict, hidden_dim: int, overrides: dict) -> dict:
    hyena = dict(same_for_all({i: v["hyena"] for i, v in by_block.items()}, "Hyena settings"))
    hyena["mask"] = {} if hyena["mask"] else None  # the mask's settings leave no trace: upstream's defaults
    film = same_for_all({i: v["film"] for i, v in by_block.items()}, "FiLM settings")
    if film is not None:
        film = dict(film, film_after_pos_embed=film["num_film_layers"] == hyena["kernel_num_layers"])
    return {"hyena": hyena, "film": film}


def build_hyena(config: Any):
    """The Hyena mixer of ``config`` (a validated ViT5Config)."""
    from ..layers import (  # torch: imported when a network is built, not with the config
        CKConvND,
        GaussianModulationND,
        Hyena,
        KernelFiLMGenerator,
        QKVSequenceMixer,
        SIRENKernelND,
        ViT5HyenaAdapter,
    )

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


def build(config: Any):
    from ..layers import GlobalResponseNorm, RegisterCompressConcat, RegisterPooling, residual_block

    net, film, hy = config.network, config.film, config.hyena
    assert hy is not None, "validate() requires the hyena section for 'H' blocks"
    pooling: Any = None
    if film is not None:
        if film.conditioning == "register_pooling":
            pooling = RegisterPooling(net.num_registers)
        else:
            assert film.compressed_dim is not None, "validate() requires it for register_compress_concat"
            pooling = RegisterCompressConcat(net.num_registers, net.hidden_dim, film.compressed_dim)
    grn = GlobalResponseNorm(net.hidden_dim, config.grn_eps) if hy.grn else None
    return residual_block(config, "H", build_hyena(config), pooling, grn)


register_block_kind(
    BlockKind("H", "Hyena", validate=validate, detect=detect, configure=configure, build=build, pads=True)
)
