"""A small ONNX graph builder: unique names, initializers from tensors, opset-aware helpers.

Nodes that must stay in float32 when a graph is converted to FP16/BF16 (norm statistics, softmax,
the long convolution, the SIREN sines) carry ``KEEP_FP32`` in their doc_string; the precision pass
(exporters/precision.py) reads it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Optional, Union

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from vit5_infer.tensorrt_releases import ATTENTION_ANY_RANK
from vit5_infer.vocabulary import EXTERNAL_DATA_SUFFIX

from .targets import ExportTarget

KEEP_FP32 = "vit5:keep_fp32"
#: producer_name of the graphs this toolkit builds: their float32 regions are exactly the KEEP_FP32 nodes
PRODUCER = "vit5-infer"
# ONNX Runtime 1.31 reads IR version <= 11 graphs; IR 10 covers opset 23.
IR_VERSION = 10
# Protobuf cannot serialize a single message past 2 GiB; graphs larger than this keep their weights in a
# separate file.
EXTERNAL_DATA_THRESHOLD = 1_800_000_000
#: tensors smaller than this stay inline in a graph whose weights are external (shape constants among them)
EXTERNAL_DATA_MIN_BYTES = 1024


class GraphBuilder:
    def __init__(self, opset: int, target: ExportTarget = ExportTarget()):
        self.opset = opset
        self.target = target
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self._names: dict[str, int] = {}
        self._const_cache: dict[tuple, str] = {}
        self._weight_cache: dict[tuple, str] = {}
        self._const_prefix = ""  # subgraphs prefix theirs: names must not shadow the outer graph's
        self._scope: list[str] = []
        self.keep_fp32 = False  # nodes added while True are tagged KEEP_FP32

    @property
    def fused_attention(self) -> bool:
        """Emit the opset-23 ``Attention`` op (else MatMul-Softmax-MatMul)."""
        return self.target.fused_attention(self.opset)

    @property
    def attention_4d(self) -> bool:
        """Feed ``Attention`` 4-D [B, heads, T, head_dim] tensors (TensorRT 10.14 takes no other)."""
        return self.target.is_tensorrt and not self.target.has(ATTENTION_ANY_RANK)

    @property
    def fused_rms_norm(self) -> bool:
        return self.target.fused_rms_norm(self.opset)

    # ---- naming ---------------------------------------------------------------------------------
    def scope(self, name: str) -> _Scope:
        return _Scope(self, name)

    def fp32_region(self) -> _Fp32Region:
        return _Fp32Region(self)

    def unique(self, base: str, sep: str = "/") -> str:
        full = sep.join(self._scope + [base])
        count = self._names.get(full, 0)
        self._names[full] = count + 1
        return full if count == 0 else f"{full}_{count}"

    # ---- tensors ----------------------------------------------------------------------------------
    def weight(self, name: str, array, dtype=np.float32) -> str:
        """An initializer from a NumPy array or torch tensor (copied), named by its module path
        (``blocks.3.input_norm.weight``).  Identical arrays are stored once (the DFT matrices of
        every Hyena block, repeated tables)."""
        if hasattr(array, "detach"):
            array = array.detach().cpu().numpy()
        array = np.ascontiguousarray(np.asarray(array, dtype=dtype))
        key = (array.dtype.str, array.shape, hashlib.sha1(array.tobytes()).hexdigest())
        if key not in self._weight_cache:
            full = self.unique(name, sep=".")
            self.initializers.append(numpy_helper.from_array(array, full))
            self._weight_cache[key] = full
        return self._weight_cache[key]

    def const(self, values, dtype=np.int64) -> str:
        """A small shared constant (shapes, axes, indices, scalars)."""
        array = np.asarray(values, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._const_cache:
            name = f"{self._const_prefix}const_{len(self._const_cache)}"
            self.initializers.append(numpy_helper.from_array(array, name))
            self._const_cache[key] = name
        return self._const_cache[key]

    # ---- nodes ----------------------------------------------------------------------------------
    def op(self, op_type: str, inputs: Sequence[Optional[str]], name: str | None = None, **attrs) -> str:
        """One node with one output; returns the output's name."""
        return self.op_multi(op_type, inputs, 1, name, **attrs)[0]

    def op_multi(
        self, op_type: str, inputs: Sequence[Optional[str]], num_outputs: int, name: str | None = None, **attrs
    ) -> list[str]:
        """One node with ``num_outputs`` outputs; returns their names."""
        base = name or op_type
        outputs = [self.unique(f"{base}_out{i}" if num_outputs > 1 else f"{base}_out") for i in range(num_outputs)]
        node = helper.make_node(op_type, [i or "" for i in inputs], outputs, name=self.unique(base), **attrs)
        if self.keep_fp32:
            node.doc_string = KEEP_FP32
        self.nodes.append(node)
        return outputs

    def input(self, name: str, elem_type: int, shape: Sequence) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, list(shape)))
        return name

    def output(self, tensor: str, name: str, elem_type: int, shape: Sequence) -> None:
        self.nodes.append(helper.make_node("Identity", [tensor], [name], name=self.unique("output")))
        self.outputs.append(helper.make_tensor_value_info(name, elem_type, list(shape)))

    # ---- opset-aware helpers ---------------------------------------------------------------------
    def reduce(self, op_type: str, x: str, axes: Iterable[int], keepdims: int = 1) -> str:
        axes = list(axes)
        if self.opset >= 18 or op_type == "ReduceSum":
            return self.op(op_type, [x, self.const(axes)], keepdims=keepdims)
        return self.op(op_type, [x], axes=axes, keepdims=keepdims)

    def reshape(self, x: str, shape: Sequence[int]) -> str:
        return self.op("Reshape", [x, self.const(list(shape))])

    def transpose(self, x: str, perm: Sequence[int]) -> str:
        return self.op("Transpose", [x], perm=list(perm))

    def split(self, x: str, sizes: Sequence[int], axis: int) -> list[str]:
        return self.op_multi("Split", [x, self.const(list(sizes))], len(sizes), axis=axis)

    def slice(self, x: str, start: int, end: int, axis: int) -> str:
        return self.op("Slice", [x, self.const([start]), self.const([end]), self.const([axis])])

    def reverse(self, x: str, axis: int) -> str:
        """``x`` reversed along ``axis``: one Slice with step -1."""
        return self.op("Slice", [x, self.const([-1]), self.const([-(2**62)]), self.const([axis]), self.const([-1])])

    def linear_module(self, x: str, module, name: str, out_scale: np.ndarray | None = None) -> str:
        """``module(x) * out_scale`` for an ``nn.Linear``; the scale (a folded LayerScale) goes into the
        weight rows and bias, so it costs nothing at run time."""
        weight = as_float32(module.weight)
        bias = None if module.bias is None else as_float32(module.bias)
        if out_scale is not None:
            weight = weight * out_scale[:, None]
            bias = None if bias is None else bias * out_scale
        return self.linear(x, weight, bias, name)

    def subgraph(self, name: str) -> GraphBuilder:
        """A builder for a nested graph (a Scan/Loop/If body) with its own nodes and initializers."""
        child = GraphBuilder(self.opset, self.target)
        child._scope = [name]
        child._const_prefix = f"{name}/"
        child.keep_fp32 = self.keep_fp32
        return child

    def build_subgraph(self, name: str, inputs: list, outputs: list) -> onnx.GraphProto:
        return helper.make_graph(self.nodes, name, inputs, outputs, self.initializers)

    def linear(self, x: str, weight, bias=None, name: str = "linear") -> str:
        """``x @ weight.T + bias`` with weight in nn.Linear storage ``[out, in]``."""
        y = self.op("MatMul", [x, self.weight(f"{name}.weight", as_float32(weight).T)], name=f"{name}/MatMul")
        if bias is not None:
            y = self.op("Add", [y, self.weight(f"{name}.bias", as_float32(bias))], name=f"{name}/Add")
        return y

    def build(self, name: str, doc: str = "") -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, self.inputs, self.outputs, self.initializers, doc_string=doc)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", self.opset)],
            ir_version=IR_VERSION,
            producer_name=PRODUCER,
        )
        return model


def iter_nodes(graph: onnx.GraphProto) -> Iterable[onnx.NodeProto]:
    """Every node of ``graph`` and, recursively, of its subgraphs (Scan/Loop/If bodies)."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from iter_nodes(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from iter_nodes(sub)


def as_float32(t) -> np.ndarray:
    """A torch tensor or array-like as a float32 NumPy array (weights, tables)."""
    if hasattr(t, "detach"):
        return t.detach().cpu().float().numpy()
    return np.asarray(t, np.float32)


class _Scope:
    def __init__(self, builder: GraphBuilder, name: str):
        self.builder, self.name = builder, name

    def __enter__(self):
        self.builder._scope.append(self.name)
        return self.builder

    def __exit__(self, *exc):
        self.builder._scope.pop()
        return False


class _Fp32Region:
    def __init__(self, builder: GraphBuilder):
        self.builder = builder

    def __enter__(self):
        self.previous = self.builder.keep_fp32
        self.builder.keep_fp32 = True
        return self.builder

    def __exit__(self, *exc):
        self.builder.keep_fp32 = self.previous
        return False


FLOAT = TensorProto.FLOAT
FLOAT16 = TensorProto.FLOAT16
BFLOAT16 = TensorProto.BFLOAT16


def external_data_path(path: Union[str, Path]) -> Path:
    """Where a graph saved to ``path`` keeps its weights when they are external: ``OUTPUT.data``."""
    path = Path(path)
    return path.with_name(path.name + EXTERNAL_DATA_SUFFIX)


def save_graph(model: onnx.ModelProto, path: Union[str, Path], external: Optional[bool] = None) -> bool:
    """Write ``model`` to ``path``; its initializers of EXTERNAL_DATA_MIN_BYTES or more go to the file
    ``<name>.data`` beside it when ``external`` (by default: past the protobuf limit).  Whether they did."""
    path = Path(path)
    if external is None:
        external = model.ByteSize() > EXTERNAL_DATA_THRESHOLD
    if external:
        # Marked by hand: onnx's convert_model_to_external_data refuses when a file of the location's
        # name exists relative to the *working directory*, not the graph's folder.
        from onnx.external_data_helper import set_external_data

        # onnx appends to an existing data file: one left from an earlier save would only grow.  A file the
        # model's own tensors still point at (read without their data) is kept: appending is then right.
        data = external_data_path(path)
        if data.name not in _unread_locations(model):
            data.unlink(missing_ok=True)

        for tensor in _initializers(model.graph):
            if tensor.HasField("raw_data") and len(tensor.raw_data) >= EXTERNAL_DATA_MIN_BYTES:
                set_external_data(tensor, data.name)
    onnx.save_model(model, str(path))
    return external


def external_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """The tensors of ``model`` whose values are stored in another file (onnx.load reads these in)."""
    from onnx.external_data_helper import uses_external_data

    from vit5_infer.files import graph_tensors

    for graph in (model.graph, *model.functions):  # the model's own messages: reading them in fills the model
        yield from (tensor for tensor in graph_tensors(graph) if uses_external_data(tensor))


def _unread_locations(model: onnx.ModelProto) -> set[str]:
    """The external-data files the tensors of ``model`` still point at, their values not read in."""
    return {
        os.path.normpath(entry.value)
        for tensor in external_tensors(model)
        if not tensor.HasField("raw_data")
        for entry in tensor.external_data
        if entry.key == "location"
    }


def _initializers(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """The initializers of ``graph`` and of every subgraph, at any depth."""
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                yield from _initializers(sub)
