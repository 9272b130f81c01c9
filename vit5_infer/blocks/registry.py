"""The registry of block kinds: letter -> one ``BlockKind`` value carrying every core stage's hook.

The registry sits below the config, so a kind's hooks receive the config without importing it (its type
would close an import cycle through the config's own validation); they read its fields by name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..layers.block import ViT5ResidualBlock

#: config -> None; raises ConfigError for what blocks of this kind cannot build
Validate = Callable[[Any], None]
#: (state_dict, "blocks.N.") -> this kind's per-block settings, or None when the block is of another kind
Detect = Callable[[Mapping[str, Any], str], Optional[dict]]
#: (block index -> settings, hidden_dim, overrides) -> {config section: its fields, or None}; pops the overrides
#: it uses (what weights cannot tell)
Configure = Callable[[dict, int, dict], dict]
#: config -> the residual block of this kind, torch imported when called
Build = Callable[[Any], "ViT5ResidualBlock"]


@dataclass(frozen=True)
class BlockKind:
    """One letter of ``layer_pattern`` and what each core stage does with blocks of that kind."""

    letter: str
    name: str
    validate: Validate = field(repr=False)
    detect: Detect = field(repr=False)
    configure: Configure = field(repr=False)
    build: Build = field(repr=False)
    #: blocks of this kind see the padded token sequence (upstream's ``padding_types``)
    pads: bool = False


_KINDS: dict[str, BlockKind] = {}


def register_block_kind(kind: BlockKind, replace: bool = False) -> BlockKind:
    if len(kind.letter) != 1 or not kind.letter.isalpha() or not kind.letter.isupper():
        raise ConfigError(f"a block kind's letter must be one upper-case letter, got {kind.letter!r}")
    if kind.letter in _KINDS and not replace:
        raise ConfigError(f"block kind {kind.letter!r} is already registered ({_KINDS[kind.letter].name})")
    hooks = ("validate", "detect", "configure", "build")
    missing = [hook for hook in hooks if not callable(getattr(kind, hook))]
    if missing:
        raise ConfigError(f"block kind {kind.letter!r} ({kind.name}): {', '.join(missing)} must be callable")
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
