"""Serving on NVIDIA Triton Inference Server: ``vit5 serve`` through PyTriton, and model
repositories for the stock server (``vit5 triton-repo``).

The entries are ``serve(ServingOptions(...), progress)`` and ``write_repository(RepositoryWriteOptions(...),
progress)`` (``workflow``); ``pytriton_server.serve`` serves a resolved ``ServedModel``.

PyTriton and tritonclient (the ``serve`` extra) are imported only when a server starts, a client
connects or a written ``config.pbtxt`` is checked.  The names below load their module on first use, so
that the CLI reads ``choices`` at import time without NumPy.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULES = {
    "BatchedModel": "batching",
    "IMAGES_INPUT": "batching",
    "ACCELERATOR_PRECISIONS": "choices",
    "EXPORT_PRECISIONS": "choices",
    "INSTANCE_KINDS": "choices",
    "RepositoryError": "errors",
    "ServeError": "errors",
    "ServeUnavailableError": "errors",
    "RepositoryOptions": "model_repository",
    "RepositoryResult": "model_repository",
    "parse_model_config": "model_repository",
    "write_model_repository": "model_repository",
    "ModelServer": "pytriton_server",
    "ServeOptions": "pytriton_server",
    "ModelSignature": "signature",
    "TensorSpec": "signature",
    "engine_signature": "signature",
    "onnx_signature": "signature",
    "ServedModel": "source",
    "model_name": "source",
    "resolve_served_model": "source",
    "RepositoryWriteOptions": "workflow",
    "ServingOptions": "workflow",
    "serve": "workflow",
    "write_repository": "workflow",
}

__all__ = sorted(_MODULES)


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_MODULES[name]}", __name__), name)
