"""FP32 graph -> FP16/BF16 graph that keeps the numerically sensitive nodes in float32.

This is what autocast does in PyTorch, made explicit in the graph: TensorRT 11 builds exactly the
types a graph states (strongly typed networks), so this graph is what `--fp16` engines are built
from.  Nodes tagged KEEP_FP32 by the exporter stay float32; for graphs from elsewhere, ops that are
sensitive by nature (norm statistics, softmax, sines, long convolutions) are kept float32 too.
"""

from __future__ import annotations

import dataclasses
import math
import os
import stat
from pathlib import Path
from typing import Optional, Union

import ml_dtypes
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from vit5_infer.errors import Vit5Error
from vit5_infer.graph_metadata import GraphFile
from vit5_infer.vocabulary import QUANTIZED_PRECISIONS

from .graph import EXTERNAL_DATA_MIN_BYTES, KEEP_FP32, PRODUCER, external_tensors, save_graph

REDUCED = {"fp16": TensorProto.FLOAT16, "bf16": TensorProto.BFLOAT16}
# Used for graphs not exported by this toolkit (no KEEP_FP32 tags to read).
SENSITIVE_OPS = {
    "Softmax",
    "ReduceMean",
    "ReduceL2",
    "ReduceSum",
    "ReduceSumSquare",
    "Sqrt",
    "Reciprocal",
    "Pow",
    "Sin",
    "Cos",
    "Scan",
    "DFT",
    "Erf",
}
# Ops whose outputs are not float whatever their inputs.
NON_FLOAT_OUTPUT_OPS = {"Shape", "Size", "NonZero", "ArgMax", "ArgMin"}


class PrecisionError(Vit5Error):
    pass


def _float_tensors(model: onnx.ModelProto) -> set[str]:
    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    floats = set()
    for info in list(graph.value_info) + list(graph.input) + list(graph.output):
        if info.type.tensor_type.elem_type == TensorProto.FLOAT:
            floats.add(info.name)
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT:
            floats.add(init.name)
    return floats


def _keeps_fp32(node: onnx.NodeProto, tagged: bool) -> bool:
    if tagged:
        return node.doc_string == KEEP_FP32
    return node.op_type in SENSITIVE_OPS


def convert_precision(model: onnx.ModelProto, precision: str, io_dtype: str = "fp32") -> onnx.ModelProto:
    """A copy of ``model`` computing in ``precision`` ("fp16" or "bf16") outside the float32 regions."""
    if precision not in REDUCED:
        raise PrecisionError(f"precision must be one of {', '.join(REDUCED)}, got {precision!r}")
    if io_dtype not in ("fp32", precision):
        raise PrecisionError(f"io dtype must be fp32 or {precision}, got {io_dtype!r}")
    low = REDUCED[precision]
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    floats = _float_tensors(model)
    # A graph of ours may have no float32 region at all (TensorRT's attention-only forms): its tags, none,
    # still say what stays FP32.
    tagged = model.producer_name == PRODUCER or any(node.doc_string == KEEP_FP32 for node in graph.node)

    initializers = {init.name: init for init in graph.initializer}
    consumers: dict[str, set[int]] = {}
    for node in graph.node:
        for name in node.input:
            if name in initializers:
                consumers.setdefault(name, set()).add(TensorProto.FLOAT if _keeps_fp32(node, tagged) else low)

    dtype: dict[str, int] = {}
    for name, init in initializers.items():
        if name in floats and consumers.get(name) == {low}:
            array = numpy_helper.to_array(init)
            if low == TensorProto.FLOAT16:
                init.CopyFrom(numpy_helper.from_array(array.astype("float16"), name))
            else:
                init.CopyFrom(_bf16_tensor(name, array))
            dtype[name] = low
        elif name in floats:
            dtype[name] = TensorProto.FLOAT

    io_type = TensorProto.FLOAT if io_dtype == "fp32" else low
    for inp in graph.input:
        if inp.name in floats:
            inp.type.tensor_type.elem_type = io_type
            dtype[inp.name] = io_type

    new_nodes: list[onnx.NodeProto] = []
    casts: dict[tuple[str, int], str] = {}

    def cast(name: str, to: int) -> str:
        key = (name, to)
        if key not in casts:
            out = f"{name}/cast_{'fp32' if to == TensorProto.FLOAT else precision}"
            new_nodes.append(helper.make_node("Cast", [name], [out], to=to, name=out))
            casts[key] = out
        return casts[key]

    for node in graph.node:
        region = TensorProto.FLOAT if _keeps_fp32(node, tagged) else low
        for i, name in enumerate(node.input):
            if name in dtype and dtype[name] != region:
                node.input[i] = cast(name, region)
        for name in node.output:
            if name in floats and node.op_type not in NON_FLOAT_OUTPUT_OPS:
                dtype[name] = region
        new_nodes.append(node)

    for out in graph.output:
        if out.name in floats and dtype.get(out.name) != io_type:
            producer = next(n for n in new_nodes if out.name in n.output)
            inner = f"{out.name}/{precision}"
            producer.output[list(producer.output).index(out.name)] = inner
            new_nodes.append(helper.make_node("Cast", [inner], [out.name], to=io_type, name=f"{out.name}/cast_out"))
        if out.name in floats:
            out.type.tensor_type.elem_type = io_type

    del graph.node[:]
    graph.node.extend(new_nodes)
    del graph.value_info[:]
    return model


def round_to_bf16(array: np.ndarray) -> np.ndarray:
    """float32 values rounded to the nearest bfloat16 (ties to even), kept as float32."""
    return np.asarray(array, dtype=np.float32).astype(ml_dtypes.bfloat16).astype(np.float32)


def _bf16_tensor(name: str, array: np.ndarray) -> onnx.TensorProto:
    """float32 -> bfloat16 initializer, stored as raw bits."""
    tensor = onnx.TensorProto()
    tensor.name = name
    tensor.data_type = TensorProto.BFLOAT16
    tensor.dims.extend(array.shape)
    tensor.raw_data = np.ascontiguousarray(array, dtype=np.float32).astype(ml_dtypes.bfloat16).tobytes()
    return tensor


def graph_precision(model: onnx.ModelProto, metadata: dict | None = None) -> str:
    """The precision of a graph: what the exporter recorded in its metadata, else the reduced type its
    weights are stored in (fp16 / bf16), else fp32."""
    recorded = (metadata or {}).get("precision")
    if recorded in ("fp32", "fp16", "bf16", "int8", "fp8"):
        return str(recorded)
    kinds = {init.data_type for init in model.graph.initializer}
    if TensorProto.FLOAT16 in kinds:
        return "fp16"
    if TensorProto.BFLOAT16 in kinds:
        return "bf16"
    return "fp32"


def check_build_precision(onnx_path, have: str, precision: str) -> None:
    """Refuse, in one line naming the flag or export that fits, an engine of ``precision`` from a graph of
    precision ``have``.  Buildable: the graph's own precision, no flag (``fp32``) on a quantized graph (its
    metadata says what it is), and fp16/bf16 from an FP32 graph (converted).  Needs only the recorded
    precision, so a build can check it before TensorRT is loaded."""
    if have == precision:
        return
    if have in QUANTIZED_PRECISIONS:
        if precision != "fp32":
            raise PrecisionError(f"{onnx_path} is an {have} graph; build it with --{have} (or no precision flag)")
        return
    if have != "fp32":
        raise PrecisionError(
            f"{onnx_path} is already an {have} graph; build it with --{have}, or export an FP32 graph for --{precision}"
            if precision != "fp32"
            else f"{onnx_path} is an {have} graph; build it with --{have}"
        )
    if precision not in REDUCED:
        quantize = (
            f"; an {precision} engine is built from a quantized graph: 'vit5 export SOURCE --precision "
            f"{precision} --target tensorrt --calibration DIR'"
            if precision in QUANTIZED_PRECISIONS
            else ""
        )
        raise PrecisionError(f"cannot convert {onnx_path} to {precision}; use fp32, fp16 or bf16{quantize}")


#: the keys of a tensor's external data TensorRT's parser takes; it fails on any other (onnx-tensorrt
#: WeightsContext.cpp, and onnx2trt_utils.cpp before it), such as the ``basepath`` onnx itself tolerates
EXTERNAL_DATA_KEYS = frozenset({"location", "offset", "length", "checksum"})


def graph_at_precision(
    onnx_graph: Union[str, Path, GraphFile], precision: str, workdir
) -> tuple[Path, str, onnx.ModelProto]:
    """(file, its precision, the loaded graph) to build an engine of ``precision`` from ``onnx_graph`` (a path,
    or the GraphFile a build read it into).

    An FP32 graph asked for fp16/bf16 is converted into ``workdir`` (norms, softmax, long convolutions
    and SIREN stay FP32): only then are its external weights read.  A graph that already has the requested
    types, or a quantized graph, is used as it is: the graph returned has only its small external tensors
    read in (shape constants, which the build's shape inference needs), its weights stay on disk.  Any other
    combination is a user error.
    """
    graph = onnx_graph if isinstance(onnx_graph, GraphFile) else GraphFile.read(onnx_graph)
    if graph.model is None or not _external_data_in_place(graph.model, graph.path):
        # onnx.load of the whole file names what is wrong in one line (or reads it after all: carry on with it)
        graph = dataclasses.replace(graph, model=_load_with_weights(graph.path))
    onnx_path, model = graph.path, graph.model
    assert model is not None
    have = graph_precision(model, graph.metadata)
    check_build_precision(onnx_path, have, precision)
    if have == precision or have in QUANTIZED_PRECISIONS:
        _check_external_data_for_tensorrt(model, onnx_path)
        return onnx_path, have, _with_weights(model, onnx_path, up_to=EXTERNAL_DATA_MIN_BYTES)
    converted = convert_precision(_with_weights(model, onnx_path), precision)
    out = Path(workdir) / f"{onnx_path.stem}.{precision}.onnx"
    save_graph(converted, out)
    return out, precision, converted


def _external_data_in_place(model: onnx.ModelProto, onnx_path: Path) -> bool:
    """Whether every external tensor's bytes lie in a plain file beside the graph, within its size, found without
    reading them.  False leaves the verdict to onnx.load, which refuses such files (and symbolic or hard links)."""
    from onnx.external_data_helper import ExternalDataInfo

    for tensor in external_tensors(model):
        try:
            info = ExternalDataInfo(tensor)
            status = os.lstat(os.path.join(_base_dir(onnx_path), info.location))
        except (OSError, ValueError, TypeError):
            return False
        offset = info.offset or 0
        if not stat.S_ISREG(status.st_mode) or status.st_nlink != 1 or offset > status.st_size:
            return False
        if not _resolves_in_place(onnx_path, info.location):
            return False
        if info.length is not None and info.length > status.st_size - offset:
            return False
    return True


def _check_external_data_for_tensorrt(model: onnx.ModelProto, onnx_path: Path) -> None:
    """PrecisionError for external data that TensorRT's parser reads differently from onnx.load, found before the
    GPU is set up (onnx-tensorrt WeightsContext): keys other than EXTERNAL_DATA_KEYS fail the parse, and a tensor
    without a ``length`` (or with 0) is read as the whole file from its offset, so it needs offset 0 and a file of
    exactly its size.  Only for a graph handed to TensorRT as it is: a converted graph is saved again."""
    from onnx.external_data_helper import ExternalDataInfo

    for tensor in external_tensors(model):
        extra = sorted({entry.key for entry in tensor.external_data} - EXTERNAL_DATA_KEYS)
        if extra:
            raise PrecisionError(
                f"{onnx_path}: tensor {tensor.name!r} has the external-data key {extra[0]!r}; TensorRT's parser "
                f"takes only {', '.join(sorted(EXTERNAL_DATA_KEYS))} (save the graph again with onnx.save_model)"
            )
        info = ExternalDataInfo(tensor)
        needed = _byte_size(tensor)
        if needed is None:
            continue
        if info.length and info.length != needed:
            raise PrecisionError(
                f"{onnx_path}: tensor {tensor.name!r} has the external-data length {info.length}; its shape needs "
                f"{needed} bytes, and TensorRT's parser fails on the difference"
            )
        if info.length:
            continue
        size = os.stat(os.path.join(_base_dir(onnx_path), info.location)).st_size
        if (info.offset or 0) != 0 or size != needed:
            raise PrecisionError(
                f"{onnx_path}: tensor {tensor.name!r} has no external-data 'length' (or 0), so TensorRT's parser reads "
                f"all {size} bytes of {info.location} for it, from offset {info.offset or 0}; its shape needs {needed}"
            )


def _resolves_in_place(onnx_path: Path, location: str) -> bool:
    """Whether ``location`` names its file through no symbolic link (a linked folder on the way included), as
    onnx.load requires."""
    base = _base_dir(onnx_path)
    return os.path.realpath(os.path.join(base, location)) == os.path.join(
        os.path.realpath(base), os.path.normpath(location)
    )


def _with_weights(model: onnx.ModelProto, onnx_path: Path, up_to: Optional[int] = None) -> onnx.ModelProto:
    """``model`` with its external tensors read in, as onnx.load(onnx_path) has them (``up_to``: only those of at
    most that many bytes): a copy, when there are any to read."""
    from onnx.external_data_helper import load_external_data_for_model, load_external_data_for_tensor

    sizes = [_byte_size(tensor) for tensor in external_tensors(model)]
    wanted = [i for i, size in enumerate(sizes) if up_to is None or (size is not None and size <= up_to)]
    if not wanted:
        return model
    loaded = onnx.ModelProto()
    loaded.CopyFrom(model)
    tensors = list(external_tensors(loaded))  # read in place below: the same messages, their data filled in
    try:
        if up_to is None:
            load_external_data_for_model(loaded, _base_dir(onnx_path))
        else:
            for i in wanted:
                load_external_data_for_tensor(tensors[i], _base_dir(onnx_path))
                tensors[i].data_location = TensorProto.DEFAULT
                del tensors[i].external_data[:]
    except Exception as exc:  # noqa: BLE001 - IO errors become one line
        raise _unreadable(onnx_path, exc) from None
    for i in wanted:
        if sizes[i] is not None and len(tensors[i].raw_data) != sizes[i]:
            raise PrecisionError(
                f"{onnx_path}: external data of tensor {tensors[i].name!r} has {len(tensors[i].raw_data)} bytes, "
                f"its shape needs {sizes[i]} (a 'length' entry missing or wrong)"
            )
    return loaded


#: bits per element of the types narrower than a byte, packed (onnx.helper's size rule: ceil(count * bits / 8))
_SUB_BYTE_BITS = {
    getattr(TensorProto, name): bits
    for name, bits in (
        ("INT4", 4),
        ("UINT4", 4),
        ("FLOAT4E2M1", 4),
        ("INT2", 2),
        ("UINT2", 2),
        ("FLOAT6E2M3", 6),
        ("FLOAT6E3M2", 6),
    )
    if hasattr(TensorProto, name)
}


def _byte_size(tensor: onnx.TensorProto) -> Optional[int]:
    """The bytes of ``tensor``'s raw data, from its type and shape; None where that is not fixed (strings) or the
    type is unknown to this onnx (nothing is checked of such a tensor)."""
    count = math.prod(tensor.dims)
    if tensor.data_type in _SUB_BYTE_BITS:
        return -(-count * _SUB_BYTE_BITS[tensor.data_type] // 8)
    if tensor.data_type == TensorProto.STRING:
        return None
    try:
        return count * np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
    except (KeyError, ValueError, TypeError):
        return None


def _load_with_weights(onnx_path: Path) -> onnx.ModelProto:
    try:
        return onnx.load(str(onnx_path))
    except Exception as exc:  # noqa: BLE001 - protobuf/IO errors become one line
        raise _unreadable(onnx_path, exc) from None


def _unreadable(onnx_path: Path, exc: Exception) -> PrecisionError:
    return PrecisionError(f"{onnx_path}: not a readable ONNX model ({str(exc).splitlines()[0]})")


def _base_dir(onnx_path: Path) -> str:
    """The folder onnx.load resolves the graph's external data locations in."""
    return os.path.dirname(os.path.abspath(onnx_path))


def emulate_in_fp32(model: onnx.ModelProto) -> onnx.ModelProto:
    """A float32 graph that rounds every reduced-precision tensor of ``model`` to its type.

    ONNX Runtime's CPU provider has no BF16 kernels; this graph lets a BF16 export be validated
    on CPU: the values carried between nodes are exactly the BF16 ones (rounded on each node's
    output), while each node computes in float32, as TensorRT's BF16 kernels accumulate.
    """
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    inferred = onnx.shape_inference.infer_shapes(model).graph
    types = {v.name: v.type.tensor_type.elem_type for v in list(inferred.value_info) + list(inferred.output)}
    reduced = {TensorProto.BFLOAT16, TensorProto.FLOAT16}
    low = next((init.data_type for init in graph.initializer if init.data_type in reduced), TensorProto.BFLOAT16)
    for init in graph.initializer:
        if init.data_type in reduced:
            init.CopyFrom(numpy_helper.from_array(_reduced_to_fp32(init), init.name))

    nodes: list[onnx.NodeProto] = []

    def round_trip(source: str, target: str, tag: str) -> None:
        nodes.append(helper.make_node("Cast", [source], [f"{target}/{tag}"], to=low, name=f"{target}/{tag}"))
        nodes.append(
            helper.make_node("Cast", [f"{target}/{tag}"], [target], to=TensorProto.FLOAT, name=f"{target}/{tag}_back")
        )

    for inp in graph.input:
        if inp.type.tensor_type.elem_type in reduced:
            inp.type.tensor_type.elem_type = TensorProto.FLOAT
    for node in graph.node:
        if node.op_type == "Cast" and _cast_target(node) in reduced:
            round_trip(node.input[0], node.output[0], "round")
            continue
        float_outputs = [o for o in node.output if types.get(o) in reduced]
        for i, name in enumerate(node.output):
            if name in float_outputs:
                node.output[i] = f"{name}/unrounded"
        nodes.append(node)
        for name in float_outputs:
            round_trip(f"{name}/unrounded", name, "round")
    for out in graph.output:
        out.type.tensor_type.elem_type = TensorProto.FLOAT
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]
    return model


def _cast_target(node: onnx.NodeProto) -> int:
    return next(a.i for a in node.attribute if a.name == "to")


def _reduced_to_fp32(init: onnx.TensorProto) -> np.ndarray:
    if init.data_type == TensorProto.FLOAT16:
        return numpy_helper.to_array(init).astype(np.float32)
    return np.frombuffer(init.raw_data, dtype=ml_dtypes.bfloat16).astype(np.float32).reshape(tuple(init.dims))
