"""Errors of serving: each one is a user-facing Vit5Error whose message fits on one line."""

from __future__ import annotations

from vit5_infer.errors import Vit5Error

SERVE_INSTALL_HINT = "pip install 'vit5-infer[serve]'"


class ServeError(Vit5Error, RuntimeError):
    """The server cannot start or stopped unexpectedly (port taken, Triton failed, bad option)."""


class ServeUnavailableError(ServeError):
    """The serving extra (PyTriton, tritonclient) is not installed or cannot run here."""


class RepositoryError(Vit5Error, ValueError):
    """A Triton model repository that cannot be written as asked (bad name, existing model, bad graph)."""
