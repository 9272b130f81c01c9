"""PyTorch -> ONNX export of ViT-5 networks: baked RoPE tables and Hyena kernels, fused ops,
FP16/BF16 graphs, validated against PyTorch on every export."""

from .export import (
    OPSETS,
    PRECISIONS,
    ExportError,
    ExportResult,
    Validation,
    build_graph,
    export_onnx,
    summarize,
    validate_graph,
)
from .form import GraphForm
from .graph import iter_nodes
from .long_conv import LOWERINGS
from .metadata import config_from_metadata, graph_outputs, read_metadata
from .precision import convert_precision, graph_precision
from .targets import ExportTarget

__all__ = [
    "ExportError",
    "ExportResult",
    "ExportTarget",
    "GraphForm",
    "LOWERINGS",
    "OPSETS",
    "PRECISIONS",
    "build_graph",
    "config_from_metadata",
    "convert_precision",
    "export_onnx",
    "graph_outputs",
    "graph_precision",
    "iter_nodes",
    "read_metadata",
    "summarize",
    "validate_graph",
    "Validation",
]
