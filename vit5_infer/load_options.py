"""``LoadOptions``: how to load a model from a preset or checkpoint, as one value.

Kept apart from ``loading`` so that holding (or parsing) the options imports no torch: the CLI builds
one per command before it knows whether it will load anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    from .loading import ModelSource
    from .network import ViT5ClassificationNet


@dataclass(frozen=True)
class LoadOptions:
    """Everything ``resolve_model`` takes but the source."""

    config: Any = None  # None, a ViT5Config, a dict or a JSON path
    weights: str = "ema"
    trust_pickle: bool = False
    seed: int = 0
    overrides: tuple = ()  # (name, value) pairs; see vit5_infer.inference.OVERRIDES

    def resolve(self, source: Union[str, Path]) -> tuple["ViT5ClassificationNet", "ModelSource"]:
        from .loading import resolve_model

        return resolve_model(source, config=self.config, weights=self.weights, trust_pickle=self.trust_pickle,
                             seed=self.seed, **dict(self.overrides))
