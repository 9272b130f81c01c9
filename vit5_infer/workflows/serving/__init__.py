"""Serving on NVIDIA Triton Inference Server: ``vit5 serve`` through PyTriton, and model
repositories for the stock server (``vit5 triton-repo``).

The entries are ``serve(ServingOptions(...), progress)`` and ``write_repository(RepositoryWriteOptions(...),
progress)`` (``workflow``); ``pytriton_server.serve`` serves a resolved ``ServedModel``.

PyTriton and tritonclient (the ``serve`` extra) are imported only when a server starts, a client
connects or a written ``config.pbtxt`` is checked.
"""

from .batching import IMAGES_INPUT, BatchedModel
from .errors import RepositoryError, ServeError, ServeUnavailableError
from .model_repository import RepositoryOptions, RepositoryResult, parse_model_config, write_model_repository
from .pytriton_server import ModelServer, ServeOptions
from .signature import ModelSignature, TensorSpec, engine_signature, onnx_signature
from .source import EXPORT_PRECISIONS, ServedModel, model_name, resolve_served_model
from .workflow import RepositoryWriteOptions, ServingOptions, serve, write_repository

__all__ = [
    "EXPORT_PRECISIONS",
    "BatchedModel",
    "IMAGES_INPUT",
    "ModelServer",
    "ModelSignature",
    "RepositoryError",
    "RepositoryOptions",
    "RepositoryResult",
    "RepositoryWriteOptions",
    "ServeError",
    "ServeOptions",
    "ServeUnavailableError",
    "ServedModel",
    "ServingOptions",
    "TensorSpec",
    "engine_signature",
    "model_name",
    "onnx_signature",
    "parse_model_config",
    "resolve_served_model",
    "serve",
    "write_model_repository",
    "write_repository",
]
