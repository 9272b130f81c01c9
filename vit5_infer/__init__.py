"""vit5-infer: exact, fast inference for NVIDIA nvsubquadratic ViT-5 networks.

One import namespace: the exporters, engines and CLI live in ``vit5_infer.exporters``,
``vit5_infer.engines`` and ``vit5_infer.cli``.
"""

from pathlib import Path as _Path

__version__ = "0.1.0"

# In a source checkout the sibling folders exporters/, engines/ and cli/ sit next to this package;
# an installed wheel maps them inside it.  Extending __path__ makes both layouts import the same way.
_root = _Path(__file__).resolve().parent.parent
if (_root / "pyproject.toml").is_file() and (_root / "exporters" / "__init__.py").is_file():
    __path__.append(str(_root))  # noqa: F821 - __path__ is defined for packages

from .config import AttentionConfig, FilmConfig, HyenaConfig, MaskConfig, NetworkConfig, ViT5Config  # noqa: E402
from .errors import CheckpointError, ConfigError, InputError, Vit5Error  # noqa: E402
from .loading import ModelSource, example_inputs, load_model, resolve_model  # noqa: E402
from .network import ViT5ClassificationNet  # noqa: E402
from .presets import PRESETS, get_preset, preset_names  # noqa: E402

__all__ = [
    "AttentionConfig",
    "CheckpointError",
    "ConfigError",
    "FilmConfig",
    "HyenaConfig",
    "InputError",
    "MaskConfig",
    "ModelSource",
    "NetworkConfig",
    "PRESETS",
    "ViT5ClassificationNet",
    "ViT5Config",
    "Vit5Error",
    "__version__",
    "example_inputs",
    "get_preset",
    "load_model",
    "preset_names",
    "resolve_model",
]
