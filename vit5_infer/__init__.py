"""vit5-infer: exact, fast inference for NVIDIA nvsubquadratic ViT-5 networks.

One import namespace: the exporters, engines and CLI live in ``vit5_infer.exporters``,
``vit5_infer.engines`` and ``vit5_infer.cli`` (the root folders exporters/, engines/ and cli/ are
mapped there by pyproject.toml's package-dir).

The public names below are imported on first use (PEP 562), so ``import vit5_infer`` (and the
``vit5`` command's ``--help``) does not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# public name -> submodule that defines it
_LAZY = {
    "AttentionConfig": "config",
    "FilmConfig": "config",
    "HyenaConfig": "config",
    "MaskConfig": "config",
    "NetworkConfig": "config",
    "ViT5Config": "config",
    "CheckpointError": "errors",
    "ConfigError": "errors",
    "InputError": "errors",
    "Vit5Error": "errors",
    "ModelSource": "loading",
    "example_inputs": "loading",
    "load_model": "loading",
    "resolve_model": "loading",
    "ViT5ClassificationNet": "network",
    "PRESETS": "presets",
    "get_preset": "presets",
    "preset_names": "presets",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vit5_infer' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # static analysers see the eager imports ("X as X": re-exported)
    from .config import AttentionConfig as AttentionConfig
    from .config import FilmConfig as FilmConfig
    from .config import HyenaConfig as HyenaConfig
    from .config import MaskConfig as MaskConfig
    from .config import NetworkConfig as NetworkConfig
    from .config import ViT5Config as ViT5Config
    from .errors import CheckpointError as CheckpointError
    from .errors import ConfigError as ConfigError
    from .errors import InputError as InputError
    from .errors import Vit5Error as Vit5Error
    from .loading import ModelSource as ModelSource
    from .loading import example_inputs as example_inputs
    from .loading import load_model as load_model
    from .loading import resolve_model as resolve_model
    from .network import ViT5ClassificationNet as ViT5ClassificationNet
    from .presets import PRESETS as PRESETS
    from .presets import get_preset as get_preset
    from .presets import preset_names as preset_names
