"""Serving on NVIDIA Triton Inference Server: ``vit5 serve`` through PyTriton, and model
repositories for the stock server (``vit5 triton-repo``).

PyTriton and tritonclient (the ``serve`` extra) are imported only when a server starts, a client
connects or a written ``config.pbtxt`` is checked.
"""

from .batching import IMAGES_INPUT, BatchedModel
from .errors import RepositoryError, ServeError, ServeUnavailableError
from .model_repository import RepositoryResult, parse_model_config, write_model_repository
from .pytriton_server import ModelServer, ServeOptions, serve
from .signature import ModelSignature, TensorSpec, engine_signature, onnx_signature
from .source import ServedModel, model_name, resolve_served_model

__all__ = [
    "BatchedModel",
    "IMAGES_INPUT",
    "ModelServer",
    "ModelSignature",
    "RepositoryError",
    "RepositoryResult",
    "ServeError",
    "ServeOptions",
    "ServeUnavailableError",
    "ServedModel",
    "TensorSpec",
    "engine_signature",
    "model_name",
    "onnx_signature",
    "parse_model_config",
    "resolve_served_model",
    "serve",
    "write_model_repository",
]
