"""Runners for every backend (PyTorch, torch.compile, ONNX Runtime, TensorRT) and the TensorRT engine builder.

Import the pieces from their modules (``vit5_infer.engines.registry``, ``.tensorrt_builder``,
``.tensorrt_runner``, ...; an engine's manifest is ``vit5_infer.engine_manifest``); this package imports
nothing heavy on its own.
"""

from .base import Runner
from .errors import (
    BackendError,
    BackendUnavailableError,
    EngineBuildError,
    EngineMismatchError,
    ManifestError,
    NoGPUError,
    TensorRTUnavailableError,
)

__all__ = [
    "BackendError",
    "BackendUnavailableError",
    "EngineBuildError",
    "EngineMismatchError",
    "ManifestError",
    "NoGPUError",
    "Runner",
    "TensorRTUnavailableError",
]
