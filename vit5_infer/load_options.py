"""``LoadOptions``: how to load a model from a preset or checkpoint, as one value.

Kept apart from ``loading`` so that holding (or parsing) the options imports no torch: the CLI builds
one per command before it knows whether it will load anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SEED_LIMIT = 2**63  # torch.Generator.manual_seed takes a 64-bit seed; numpy's generators fewer bits


def check_seed(seed) -> int:
    """``seed`` if it is an integer in 0 .. 2**63-1, else a ConfigError naming the range."""
    from .errors import ConfigError

    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        raise ConfigError(f"seed must be an integer from 0 to 2**63-1, got {seed!r}")
    return seed


@dataclass(frozen=True)
class LoadOptions:
    """Everything ``resolve_model`` takes but the source (``loading.load_source`` takes the two)."""

    config: Any = None  # None, a ViT5Config, a dict or a JSON path
    weights: str = "ema"
    trust_pickle: bool = False
    seed: int = 0
    overrides: tuple = ()  # (name, value) pairs; see vit5_infer.architecture.OVERRIDES

    def __post_init__(self):
        check_seed(self.seed)
