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


if TYPE_CHECKING:  # static analysers see the eager imports
    from .config import AttentionConfig, FilmConfig, HyenaConfig, MaskConfig, NetworkConfig, ViT5Config
    from .errors import CheckpointError, ConfigError, InputError, Vit5Error
    from .loading import ModelSource, example_inputs, load_model, resolve_model
    from .network import ViT5ClassificationNet
    from .presets import PRESETS, get_preset, preset_names
