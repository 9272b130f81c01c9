"""Polygraphy runners that return every intermediate tensor of a graph, and one call that runs them.

ONNX Runtime: Polygraphy's ``ModifyOutputs(outputs=MARK_ALL)`` makes every node output a graph
output (tensors that are not float are left out: ORT cannot hand BF16 to NumPy, and shapes or
indices are not compared).  TensorRT: ``ModifyNetworkOutputs(outputs=MARK_ALL)`` on the parsed
network.  Marking a tensor as an output keeps it from being fused away, so a marked TensorRT
engine shows the numerics of the unfused layers, not the kernels a production engine picks.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from vit5_infer.errors import Vit5Error

if TYPE_CHECKING:
    import onnx  # imported where used: the CLI imports this package before it parses its flags


class LayerCompareError(Vit5Error):
    """A graph that cannot be marked, loaded or run for a per-layer comparison."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1][:300] if text else type(exc).__name__


def mark_all_tensors(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose outputs are every float tensor computed by its main graph."""
    import onnx
    from onnx import TensorProto
    from polygraphy import constants
    from polygraphy.backend.onnx import modify_outputs

    compared = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE}

    inferred = onnx.shape_inference.infer_shapes(model)
    types = {
        v.name: v.type.tensor_type.elem_type for v in list(inferred.graph.value_info) + list(inferred.graph.output)
    }
    produced = {out for node in inferred.graph.node for out in node.output if out}
    skipped = sorted(
        name for name in produced if types.get(name, TensorProto.UNDEFINED) not in compared | {TensorProto.UNDEFINED}
    )
    # Polygraphy reads the names as fnmatch patterns.
    exclude = [glob.escape(name) for name in skipped] or None
    return modify_outputs(inferred, outputs=constants.MARK_ALL, exclude_outputs=exclude, copy=True)


def ort_runner(model: onnx.ModelProto, name: str):
    """ONNX Runtime (CPU) runner on ``model`` with every float tensor marked as an output."""
    from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx

    marked = mark_all_tensors(model)
    return OnnxrtRunner(SessionFromOnnx(marked.SerializeToString(), providers=["cpu"]), name=name)


def tensorrt_runner(model: onnx.ModelProto, input_shape: Sequence[int], name: str):
    """TensorRT runner on an engine built from ``model`` (strongly typed: the graph's own types) with
    every layer output marked, for a fixed input shape; built as ``vit5 build-engine`` builds
    (decomposable attention where TensorRT has IAttention, TF32 allowed), parse errors as its one line."""
    from vit5_infer.engines.tensorrt_builder import parse_network, with_decomposable_attentions
    from vit5_infer.engines.tensorrt_support import (
        check_gpu_supported,
        cuda_initialized,
        import_tensorrt,
        require_gpu,
        tensorrt_cuda_runtime,
    )

    trt = import_tensorrt()
    check_gpu_supported(trt.__version__, require_gpu("a TensorRT per-layer comparison"))
    # Polygraphy's runner creates its CUDA wrapper on first use, where a pip-only CUDA 13 install has no
    # libcudart it can find: the runtime that matches TensorRT is loaded first.
    tensorrt_cuda_runtime()
    from polygraphy import constants
    from polygraphy.backend.trt import CreateConfig, EngineFromNetwork, Profile, TrtRunner, modify_network_outputs

    with cuda_initialized(trt.__version__, "a per-layer comparison"):
        parsed = parse_network(trt, model.SerializeToString(), "the candidate graph")
    network = parsed[1]
    parsed, _ = with_decomposable_attentions(trt, parsed)
    # The tensor between an IAttention's input and output layers lives inside the attention subgraph (no
    # ONNX tensor to compare it with); it is left unmarked rather than asked of TensorRT as an output.
    inside = [
        layer.get_output(i).name
        for layer in network
        if layer.type == getattr(trt.LayerType, "ATTENTION_INPUT", None)
        for i in range(layer.num_outputs)
    ]
    parsed = modify_network_outputs(
        parsed, outputs=constants.MARK_ALL, exclude_outputs=[glob.escape(name) for name in inside] or None
    )
    shape = tuple(int(d) for d in input_shape)
    profile = Profile().add(model.graph.input[0].name, min=shape, opt=shape, max=shape)
    config = CreateConfig(profiles=[profile], tf32=True)  # TensorRT's default; Polygraphy's is off
    return TrtRunner(EngineFromNetwork(parsed, config=config), name=name)


def run_runners(runners: Sequence, feed: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Outputs of each runner on one feed (Polygraphy's Comparator casts the feed to each input's dtype)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_state
    from polygraphy.comparator import Comparator
    from polygraphy.exception import PolygraphyException
    from polygraphy.logger import G_LOGGER

    # ONNX Runtime's errors are not RuntimeErrors; these are the ones a session load or run raises.
    failures = (
        PolygraphyException,
        ort_state.Fail,
        ort_state.InvalidGraph,
        ort_state.InvalidArgument,
        ort_state.NotImplemented,
        ort_state.RuntimeException,
    )
    try:
        with G_LOGGER.verbosity(G_LOGGER.CRITICAL + 1):
            results = Comparator.run(list(runners), data_loader=[feed])
    except failures as exc:
        raise LayerCompareError(f"cannot run the marked graphs: {_first_line(exc)}") from None
    return [dict(results[runner.name][0]) for runner in runners]
