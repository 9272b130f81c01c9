"""Errors of the engines: each one is a user-facing Vit5Error whose message fits on one line."""

from __future__ import annotations

from typing import Optional

# the engine manifest's errors are the core's (vit5_infer.engine_manifest); engines' users find them here too
from vit5_infer.errors import EngineMismatchError, ManifestError, Vit5Error  # noqa: F401

TENSORRT_INSTALL_HINT = "pip install 'vit5-infer[tensorrt]'"


def first_line(exc: BaseException, empty: Optional[str] = None) -> str:
    """The first line of an exception's message, for a one-line error; ``empty`` (default: the exception's
    type name) when it has no message."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else (type(exc).__name__ if empty is None else empty)


class BackendError(Vit5Error, ValueError):
    """An unknown backend name, or a source the backend cannot run (wrong file kind, missing file)."""


class BackendUnavailableError(Vit5Error, RuntimeError):
    """The backend exists but this machine cannot run it (missing package, provider or GPU)."""


class TensorRTUnavailableError(BackendUnavailableError):
    """The ``tensorrt`` Python package cannot be imported."""

    def __init__(self, detail: str = ""):
        message = f"TensorRT is not installed: {TENSORRT_INSTALL_HINT} (needs an NVIDIA GPU and driver)"
        if detail:
            message += f" [{detail}]"
        super().__init__(message)


class NoGPUError(BackendUnavailableError):
    """No usable NVIDIA GPU (no driver, no device, or a CPU-only build)."""

    def __init__(self, what: str = "this step", detail: str = ""):
        message = f"{what} needs an NVIDIA GPU, but none is usable here"
        if detail:
            message += f" ({detail})"
        message += "; run it on a machine with an NVIDIA GPU and driver"
        super().__init__(message)


class EngineBuildError(Vit5Error, RuntimeError):
    """TensorRT rejected the network (parse or build failure) or a build option is invalid."""
