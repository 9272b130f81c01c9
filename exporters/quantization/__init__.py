"""INT8/FP8 graphs: calibration on images, Q/DQ placement per target, per-layer sensitivity,
and the validated quantized export."""

from .calibration import (
    DEFAULT_COUNT,
    DEFAULT_METHOD,
    METHODS,
    CalibrationData,
    CalibrationError,
    calibration_inputs,
    collect_stats,
    load_calibration_images,
    ranges_from_stats,
    seeded_calibration,
)
from .export import export_quantized, resolve_scheme, validate_quantized
from .qdq import (
    QuantizationError,
    QuantScheme,
    activation_tensors,
    attention_inputs,
    attention_products,
    insert_qdq,
    quantizable_nodes,
    quantize_graph,
)
from .sensitivity import LayerSensitivity, layer_sensitivity, sensitive_layers
from .settings import DEFAULT_KEEP_FLOAT, QuantizationSettings

__all__ = [
    "CalibrationData",
    "CalibrationError",
    "DEFAULT_COUNT",
    "DEFAULT_KEEP_FLOAT",
    "DEFAULT_METHOD",
    "LayerSensitivity",
    "METHODS",
    "QuantScheme",
    "QuantizationSettings",
    "QuantizationError",
    "activation_tensors",
    "attention_inputs",
    "attention_products",
    "calibration_inputs",
    "collect_stats",
    "export_quantized",
    "insert_qdq",
    "layer_sensitivity",
    "load_calibration_images",
    "quantizable_nodes",
    "quantize_graph",
    "ranges_from_stats",
    "resolve_scheme",
    "seeded_calibration",
    "sensitive_layers",
    "validate_quantized",
]
