"""Plain, typed, JSON-serializable architecture description of a ViT-5 network.

The JSON shape is the one of ``tests/data/golden/*.json``: a ``network`` section with the network's
own constructor numbers, and ``attention`` / ``hyena`` / ``film`` sections shared by every block of
that type.  ``validate()`` turns every upstream pitfall of SPEC section 9 into a ConfigError.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Optional, Union

from .blocks import block_kind, pads
from .errors import ConfigError
from .vocabulary import MLP_ACTIVATIONS

READOUTS = ("cls", "gap", "register_concat")


def _from_dict(cls, data: dict, where: str):
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}")
    return cls(**data)


@dataclass
class AttentionConfig:
    num_heads: int
    qk_norm: Optional[str] = "rmsnorm"  # "rmsnorm", "l2" or None
    rope_base: float = 10000.0
    reg_rope_base: float = 100.0
    qkv_bias: bool = False
    out_proj_bias: bool = False
    scale: Optional[float] = None  # None: head_dim ** -0.5


@dataclass
class MaskConfig:
    type: str = "gaussian"
    parametrization: str = "direct"  # "direct", "log" or "softplus"
    min_attenuation_at_step: float = 0.1
    max_attenuation_at_limit: float = 0.95
    init_extent: float = 1.0


@dataclass
class HyenaConfig:
    kernel: str = "siren"
    kernel_hidden_dim: int = 32
    kernel_num_layers: int = 3
    kernel_embedding_dim: int = 32
    omega_0: float = 10.0
    hidden_omega_0: float = 1.0
    kernel_bias: bool = True
    # Per-axis coordinate extent of the SIREN grid; None derives it from the grid rows (SPEC 9.9).
    L_cache: Union[int, list, None] = None
    grid_type: str = "double"
    fft_padding: str = "zero"
    short_conv_kernel_size: int = 3
    short_conv_bias: bool = False
    gate: str = "silu"
    gate_2: Optional[str] = "sigmoid"
    qk_norm: Optional[str] = "l2"  # "l2" or None
    pixelhyena_norm: Optional[str] = "rmsnorm"
    output_norm: Optional[str] = "rmsnorm"
    mask: Optional[MaskConfig] = None
    grn: bool = False
    qkv_bias: bool = False
    out_proj_bias: bool = False

    def __post_init__(self):
        if isinstance(self.mask, dict):
            self.mask = _from_dict(MaskConfig, self.mask, "hyena.mask")


@dataclass
class FilmConfig:
    conditioning: str = "register_pooling"  # or "register_compress_concat"
    film_hidden_dim: int = 64
    num_film_layers: int = 3
    film_after_pos_embed: bool = True
    compressed_dim: Optional[int] = None


@dataclass
class NetworkConfig:
    in_channels: int
    num_classes: int
    hidden_dim: int
    num_blocks: int
    patch_size: int
    image_size: int
    num_registers: int
    readout: str
    layer_pattern: str
    neck_compression_ratio: Optional[int] = None


#: the config's sections, by name: the network's own numbers and the settings shared by blocks of a kind
SECTIONS: dict[str, type] = {
    "network": NetworkConfig,
    "attention": AttentionConfig,
    "hyena": HyenaConfig,
    "film": FilmConfig,
}


def section_from_dict(name: str, data: Any) -> Any:
    """The section ``name`` from its JSON object (None stays None); ConfigError for a bad one."""
    if name not in SECTIONS:
        raise ConfigError(f"unknown config section {name!r}; known: {', '.join(SECTIONS)}")
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ConfigError(f"config section '{name}' must be an object or null")
    try:
        return _from_dict(SECTIONS[name], data, name)
    except TypeError as exc:
        raise ConfigError(f"config section '{name}': {exc}") from None


@dataclass
class ViT5Config:
    network: NetworkConfig
    attention: Optional[AttentionConfig] = None
    hyena: Optional[HyenaConfig] = None
    film: Optional[FilmConfig] = None
    mlp_bias: dict = field(default_factory=dict)
    norm_eps: float = 1e-6
    mlp_expansion_factor: float = 4.0
    mlp_activation: str = "gelu_exact"
    layer_scale: bool = True  # False: upstream layer_scale_init <= 0, LayerScale is Identity
    grn_eps: float = 1e-6

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict) -> ViT5Config:
        if not isinstance(data, dict) or "network" not in data:
            raise ConfigError("architecture config must be a JSON object with a 'network' section")
        data = dict(data)
        for name in SECTIONS:
            data[name] = section_from_dict(name, data.get(name))
        try:
            return _from_dict(cls, data, "config")
        except TypeError as exc:
            raise ConfigError(f"config: {exc}") from None

    @classmethod
    def from_json(cls, path: Union[str, Path]) -> ViT5Config:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise ConfigError(f"config file {path} is not UTF-8 text") from None
        except (json.JSONDecodeError, RecursionError) as exc:
            raise ConfigError(f"config file {path} is not valid JSON: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}") from None
        try:
            return cls.from_dict(data).check_types()
        except ConfigError as exc:
            raise ConfigError(f"config file {path}: {exc}") from None

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    def replace(self, **sections) -> ViT5Config:
        return replace(self, **sections)

    # ---- derived geometry (SPEC section 0) -----------------------------------------------------
    @property
    def grid_size(self) -> int:
        return self.network.image_size // self.network.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_size * self.grid_size

    @property
    def has_cls(self) -> bool:
        return self.network.readout == "cls"

    @property
    def num_tokens(self) -> int:
        """T0: patches, CLS and registers."""
        return self.num_patches + int(self.has_cls) + self.network.num_registers

    @property
    def num_pad(self) -> int:
        return (-self.num_tokens) % self.grid_size

    @property
    def num_padded_tokens(self) -> int:
        return self.num_tokens + self.num_pad

    @property
    def hyena_rows(self) -> int:
        return self.num_padded_tokens // self.grid_size

    @property
    def block_types(self) -> str:
        return self.network.layer_pattern

    def block_tokens(self, index: int) -> int:
        """How many tokens block ``index`` receives."""
        return self.num_padded_tokens if pads(self.network.layer_pattern[index]) else self.num_tokens

    def l_cache(self) -> tuple:
        """Per-axis (y, x) SIREN cache extent."""
        value = self.hyena.L_cache if self.hyena is not None else None
        if value is None:
            value = self.hyena_rows
        if isinstance(value, (list, tuple)):
            if len(value) != 2:
                raise ConfigError(f"hyena.L_cache must be an int or two ints, got {value!r}")
            return (int(value[0]), int(value[1]))
        return (int(value), int(value))

    @property
    def head_dim(self) -> int:
        att = self.attention
        if att is None:
            raise ConfigError("the config has no 'attention' section, so no head_dim")
        return self.network.hidden_dim // att.num_heads

    @property
    def mlp_hidden_dim(self) -> int:
        return int(self.network.hidden_dim * self.mlp_expansion_factor)

    # ---- validation (SPEC section 9) -----------------------------------------------------------
    def check_types(self) -> ViT5Config:
        """ConfigError naming the field for a value of the wrong type or sign (a string where a number
        belongs, null, a list for a bool, a negative size, a NaN): before any of it reaches torch."""
        sections: list[tuple[str, Any]] = [
            ("", self),
            *((name, getattr(self, name)) for name in SECTIONS),
            ("hyena.mask", self.hyena.mask if isinstance(self.hyena, HyenaConfig) else None),
        ]
        for where, section in sections:
            if section is None:
                continue
            expected = _SECTION_TYPES.get(where)
            if expected is not None and not isinstance(section, expected):
                raise ConfigError(f"config section '{where}' must be an object, got {type(section).__name__}")
            for f in fields(section):
                if f.name in _NESTED_FIELDS:
                    continue
                # a string: this module's annotations are postponed (PEP 563)
                _check_field(f"{where + '.' if where else ''}{f.name}", getattr(section, f.name), str(f.type))
        if not isinstance(self.mlp_bias, dict) or not all(
            isinstance(k, str) and isinstance(v, bool) for k, v in self.mlp_bias.items()
        ):
            raise ConfigError(f"mlp_bias must map block letters to true/false, got {self.mlp_bias!r}")
        return self

    def validate(self) -> ViT5Config:
        self.check_types()
        net = self.network
        for name in ("in_channels", "num_classes", "hidden_dim", "num_blocks", "patch_size", "image_size"):
            value = getattr(net, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"network.{name} must be a positive integer, got {value!r}")
        if net.num_registers < 0:
            raise ConfigError(f"network.num_registers must be >= 0, got {net.num_registers}")
        if net.image_size % net.patch_size:
            # 9.11: the stride-P conv would silently drop the border pixels.
            raise ConfigError(
                f"image_size {net.image_size} is not a multiple of patch_size {net.patch_size}; "
                "upstream would silently drop pixels"
            )
        if net.readout not in READOUTS:
            raise ConfigError(f"readout must be one of {', '.join(READOUTS)}, got {net.readout!r}")
        pattern = net.layer_pattern
        if len(pattern) != net.num_blocks:
            raise ConfigError(
                f"layer_pattern {pattern!r} has {len(pattern)} characters but num_blocks is {net.num_blocks}"
            )
        kinds = [block_kind(letter) for letter in dict.fromkeys(pattern)]  # ConfigError for unknown letters
        if net.readout == "register_concat":
            ratio = net.neck_compression_ratio
            if ratio is None or ratio <= 0:
                raise ConfigError("readout 'register_concat' needs network.neck_compression_ratio")
            if net.num_registers == 0:
                raise ConfigError("readout 'register_concat' needs num_registers > 0")
            if net.hidden_dim % ratio:
                raise ConfigError(f"hidden_dim {net.hidden_dim} is not divisible by neck_compression_ratio {ratio}")
        if self.mlp_activation not in MLP_ACTIVATIONS:
            raise ConfigError(
                f"mlp_activation must be one of {', '.join(MLP_ACTIVATIONS)}, got {self.mlp_activation!r}"
            )
        for kind in kinds:
            kind.validate(self)
        if self.film is not None and "H" not in pattern:
            raise ConfigError("a 'film' section needs Hyena ('H') blocks to condition")
        return self

    # ---- helpers used by the modules ----------------------------------------------------------
    def mlp_has_bias(self, block_type: str) -> bool:
        return bool(self.mlp_bias.get(block_type, False))

    def film_cond_dim(self) -> int:
        film, net = self.film, self.network
        if film is None:
            raise ConfigError("the config has no 'film' section, so no conditioning")
        if film.conditioning == "register_pooling":
            return net.hidden_dim
        if film.compressed_dim is None:
            raise ConfigError("film.conditioning 'register_compress_concat' needs film.compressed_dim")
        return net.num_registers * film.compressed_dim

    @property
    def head_input_dim(self) -> int:
        net = self.network
        if net.readout == "register_concat":
            if not net.neck_compression_ratio:
                raise ConfigError("readout 'register_concat' needs network.neck_compression_ratio")
            return net.num_registers * net.hidden_dim // net.neck_compression_ratio
        return net.hidden_dim

    def l_cache_exceeded(self) -> Sequence[str]:
        """Axes whose grid extent exceeds L_cache (upstream silently extends the SIREN grid)."""
        ly, lx = self.l_cache()
        out = []
        if self.hyena_rows > ly:
            out.append(f"rows {self.hyena_rows} > L_cache {ly}")
        if self.grid_size > lx:
            out.append(f"columns {self.grid_size} > L_cache {lx}")
        return out


_SECTION_TYPES: dict[str, type] = {**SECTIONS, "hyena.mask": MaskConfig}
#: fields that hold a section, checked as sections of their own
_NESTED_FIELDS = (*SECTIONS, "mask")
# Fields that are sizes or strictly positive settings (>= 0 where 0 means "none").
_POSITIVE = {
    "kernel_hidden_dim",
    "kernel_num_layers",
    "kernel_embedding_dim",
    "short_conv_kernel_size",
    "film_hidden_dim",
    "num_film_layers",
    "compressed_dim",
    "neck_compression_ratio",
    "norm_eps",
    "grn_eps",
    "mlp_expansion_factor",
    "rope_base",
    "reg_rope_base",
    "scale",
    "omega_0",
    "hidden_omega_0",
    "init_extent",
    "num_heads",
    "in_channels",
    "num_classes",
    "hidden_dim",
    "num_blocks",
    "patch_size",
    "image_size",
}
_NON_NEGATIVE = {"num_registers"}


def _type_name(value: Any) -> str:
    return (
        "null"
        if value is None
        else {bool: "a boolean", str: "a string", list: "a list", dict: "an object"}.get(
            type(value), type(value).__name__
        )
    )


def _check_field(name: str, value: Any, annotation: str) -> None:
    """One field against its annotation (a string: this module uses postponed annotations)."""
    optional = "Optional" in annotation or "None" in annotation
    if value is None:
        if optional:
            return
        raise ConfigError(f"{name} must not be null")
    base = annotation.replace("Optional[", "").rstrip("]")
    if base.startswith("Union[int, list"):  # L_cache: N or [rows, cols]
        items = value if isinstance(value, list) else [value]
        if (
            isinstance(value, list)
            and len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in items)
        ):
            raise ConfigError(f"{name} must be an integer or two integers, got {value!r}")
        return
    if base == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {_type_name(value)} {value!r}")
        return
    if base == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, got {_type_name(value)} {value!r}")
        return
    if base in ("int", "float"):
        ok = isinstance(value, int) if base == "int" else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok:
            kind = "an integer" if base == "int" else "a number"
            raise ConfigError(f"{name} must be {kind}, got {_type_name(value)} {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{name} must be finite, got {value!r}")
        leaf = name.rsplit(".", 1)[-1]
        if leaf in _POSITIVE and value <= 0:
            raise ConfigError(f"{name} must be > 0, got {value!r}")
        if leaf in _NON_NEGATIVE and value < 0:
            raise ConfigError(f"{name} must be >= 0, got {value!r}")


def config_summary(config: ViT5Config) -> dict[str, Any]:
    """Short human-facing description used by `vit5 inspect` and `vit5 presets`."""
    net = config.network
    out = {
        "hidden_dim": net.hidden_dim,
        "blocks": net.num_blocks,
        "pattern": net.layer_pattern,
        "image_size": net.image_size,
        "patch_size": net.patch_size,
        "registers": net.num_registers,
        "readout": net.readout,
        "classes": net.num_classes,
    }
    if config.attention is not None:
        out["heads"] = config.attention.num_heads
    return out
