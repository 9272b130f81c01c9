"""The block kinds of ``layer_pattern``: letter -> the facts every stage shares (name, padding).

What a stage does with a kind lives with the stage, in a table keyed by the kind's letter and filled by
value where the stage's code is: the config's checks (``config.BLOCK_VALIDATORS``), architecture
inference (``architecture.BLOCK_DETECTORS``), the network (``network.BLOCK_BUILDERS``) and the ONNX exporter
(``exporters.lowering.EMITTERS``).  So this module imports no stage, and no stage imports one above it.

Adding a block kind is one layer module, one ``register_block_kind`` call and one entry in each stage's
table (see the built-in kinds); tests check that every registered kind has all of them, and an unknown
letter is a ConfigError everywhere.

The stages' hooks:
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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from .errors import ConfigError

Hook = TypeVar("Hook")


@dataclass(frozen=True)
class BlockKind:
    letter: str
    name: str
    #: blocks of this kind see the padded token sequence (upstream's ``padding_types``)
    pads: bool = False


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


def kind_hook(table: Mapping[str, Hook], letter: str, what: str) -> Hook:
    """A stage's hook for the kind ``letter`` (ConfigError for an unknown letter or a missing hook)."""
    kind = block_kind(letter)
    hook = table.get(letter)
    if hook is None:
        raise ConfigError(f"block kind {letter!r} ({kind.name}) has no {what}")
    return hook


register_block_kind(BlockKind("A", "attention"))
register_block_kind(BlockKind("H", "Hyena", pads=True))
