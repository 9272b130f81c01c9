"""The block kinds of ``layer_pattern``, in one registry: letter -> everything that differs per kind.

Adding a block kind is one layer module, one ONNX emitter and one ``register_block_kind`` call; the
config, the network, architecture inference and the exporter all dispatch through here, and an
unknown letter is a ConfigError everywhere.

Each hook is a callable or a ``"module:function"`` reference, resolved on first use: the registry is
plain data, so the config can consult it without importing torch or the exporter.

Hooks (see the built-in kinds for examples):
- ``validate(config)``: raise ConfigError for what this kind cannot build (its section missing, ...);
- ``build(config) -> ViT5ResidualBlock``: the residual block of this kind;
- ``detect(state_dict, prefix) -> settings | None``: this kind's per-block settings read from the
  weights at ``blocks.N.``, or None when the block is not of this kind;
- ``configure(settings_by_block, hidden_dim, overrides) -> {config field: value}``: the config
  section(s) from every block's settings (``overrides``: what weights cannot tell; pop what you use);
- ``emit(builder, block, x, context) -> tensor``: the ONNX of the block's sequence mixer
  (``context``: tokens, out_scale, query_rows, long_conv lowering, conditioning).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Union

from .errors import ConfigError

Hook = Union[str, Callable[..., Any]]


@dataclass(frozen=True)
class BlockKind:
    letter: str
    name: str
    validate: Hook
    build: Hook
    detect: Hook
    configure: Hook
    emit: Hook
    #: blocks of this kind see the padded token sequence (upstream's ``padding_types``)
    pads: bool = False

    def hook(self, name: str) -> Callable[..., Any]:
        value = getattr(self, name)
        if callable(value):
            return value
        module, _, attr = value.partition(":")
        return getattr(importlib.import_module(module), attr)


_KINDS: dict[str, BlockKind] = {}


def register_block_kind(kind: BlockKind, replace: bool = False) -> BlockKind:
    if len(kind.letter) != 1 or not kind.letter.isalpha() or not kind.letter.isupper():
        raise ConfigError(f"a block kind's letter must be one upper-case letter, got {kind.letter!r}")
    if kind.letter in _KINDS and not replace:
        raise ConfigError(f"block kind {kind.letter!r} is already registered ({_KINDS[kind.letter].name})")
    _KINDS[kind.letter] = kind
    return kind


def unregister_block_kind(letter: str) -> None:
    _KINDS.pop(letter, None)


def block_kinds() -> dict[str, BlockKind]:
    return dict(_KINDS)


def block_kind(letter: str) -> BlockKind:
    kind = _KINDS.get(letter)
    if kind is None:
        known = ", ".join(f"{k.letter} ({k.name})" for k in _KINDS.values())
        raise ConfigError(f"unknown block type {letter!r} in layer_pattern; supported: {known}")
    return kind


def pads(letter: str) -> bool:
    """Whether blocks of this kind see the padded token sequence."""
    return block_kind(letter).pads


register_block_kind(BlockKind(
    "A", "attention",
    validate="vit5_infer.config:validate_attention",
    build="vit5_infer.network:build_attention_block",
    detect="vit5_infer.inference:detect_attention",
    configure="vit5_infer.inference:configure_attention",
    emit="vit5_infer.exporters.lowering:emit_attention",
))
register_block_kind(BlockKind(
    "H", "Hyena",
    validate="vit5_infer.config:validate_hyena",
    build="vit5_infer.network:build_hyena_block",
    detect="vit5_infer.inference:detect_hyena",
    configure="vit5_infer.inference:configure_hyena",
    emit="vit5_infer.exporters.lowering:emit_hyena",
    pads=True,
))
