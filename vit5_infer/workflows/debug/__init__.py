"""The debug stage and its numerical diagnostics: where a reduced-precision graph departs from FP32.

``debug(options, progress)`` is the entry ``vit5 debug`` calls.

``compare_layers`` marks every tensor of two graphs as outputs, runs them (ONNX Runtime CPU, or
TensorRT for the candidate on a GPU) and compares them tensor by tensor with scale-free metrics;
``norm_input_stats`` says what each normalization node is fed; ``fp16_attention_comparison`` whether an
FP16 graph needs its attention in FP32.
"""

from .fp16_attention import AttentionPrecisionRow, fp16_attention_comparison
from .layer_compare import (
    LAYER_TOLERANCES,
    BlockSummary,
    LayerComparison,
    LayerTolerance,
    TensorComparison,
    compare_layers,
    compare_outputs,
    compare_precisions,
    tensor_metrics,
)
from .marked_runners import LayerCompareError, mark_all_tensors
from .norm_stats import FP16_MAX, NormInputStats, norm_input_stats
from .run import DebugOptions, DebugReport, check_debug_options, debug

__all__ = [
    "AttentionPrecisionRow",
    "FP16_MAX",
    "LAYER_TOLERANCES",
    "BlockSummary",
    "DebugOptions",
    "DebugReport",
    "LayerCompareError",
    "LayerComparison",
    "LayerTolerance",
    "NormInputStats",
    "TensorComparison",
    "check_debug_options",
    "compare_layers",
    "compare_outputs",
    "compare_precisions",
    "debug",
    "fp16_attention_comparison",
    "mark_all_tensors",
    "norm_input_stats",
    "tensor_metrics",
]
