"""ONNX Runtime inference sessions, made in one place.

Every session of the toolkit (the ``ort`` runners, export validation, calibration, sensitivity
probes, benchmarks) comes from ``create_session``, so the session options that matter (threads,
graph optimization level, log severity) are spelled once.  onnxruntime is imported only when a
session is made: importing this module costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Union

from .errors import Vit5Error

CPU_PROVIDER = "CPUExecutionProvider"

#: ``--graph-optimization`` name -> onnxruntime.GraphOptimizationLevel member
GRAPH_OPTIMIZATION_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "layout": "ORT_ENABLE_LAYOUT",  # onnxruntime >= 1.22
    "all": "ORT_ENABLE_ALL",
}
GRAPH_OPTIMIZATIONS = tuple(GRAPH_OPTIMIZATION_LEVELS)

#: onnxruntime's log severity for warnings and above hidden (3: errors only)
QUIET_LOG_SEVERITY = 3


class SessionOptionError(Vit5Error, ValueError):
    """A session option this onnxruntime cannot take (an unknown or too new graph optimization level)."""


def graph_optimization_level(ort: Any, name: str) -> Any:
    """The onnxruntime.GraphOptimizationLevel member for a GRAPH_OPTIMIZATIONS name."""
    if name not in GRAPH_OPTIMIZATION_LEVELS:
        raise SessionOptionError(f"unknown graph optimization {name!r}; use one of {', '.join(GRAPH_OPTIMIZATIONS)}")
    level = getattr(ort.GraphOptimizationLevel, GRAPH_OPTIMIZATION_LEVELS[name], None)
    if level is None:
        raise SessionOptionError(f"graph optimization {name!r} needs a newer onnxruntime ({ort.__version__} here)")
    return level


def create_session(
    model: Union[str, Path, bytes, Any],
    *,
    providers: Sequence[str] = (CPU_PROVIDER,),
    provider_options: Optional[Sequence[dict]] = None,
    threads: Optional[int] = None,
    graph_optimization: Optional[str] = None,
    quiet: bool = False,
    optimized_model_path: Optional[Union[str, Path]] = None,
) -> Any:
    """An onnxruntime.InferenceSession of ``model`` (a path, serialized bytes or an onnx.ModelProto).

    ``threads``: intra-op threads (None: onnxruntime's default); ``graph_optimization``: a
    GRAPH_OPTIMIZATIONS name (None: onnxruntime's default); ``quiet``: log errors only;
    ``optimized_model_path``: where onnxruntime writes the graph it optimized.  onnxruntime's own
    errors (a graph it cannot load) propagate unchanged: the caller knows what was being loaded."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if quiet:
        options.log_severity_level = QUIET_LOG_SEVERITY
    if threads:
        options.intra_op_num_threads = threads
    if graph_optimization is not None:
        options.graph_optimization_level = graph_optimization_level(ort, graph_optimization)
    if optimized_model_path is not None:
        options.optimized_model_filepath = str(optimized_model_path)
    if isinstance(model, Path):
        source: Union[str, bytes] = str(model)
    elif isinstance(model, (str, bytes)):
        source = model
    else:  # an onnx.ModelProto; onnx itself is not imported here
        source = model.SerializeToString()
    extra = {} if provider_options is None else {"provider_options": list(provider_options)}
    return ort.InferenceSession(source, sess_options=options, providers=list(providers), **extra)
