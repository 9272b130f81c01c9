"""Explicit quantization of an FP32 ViT-5 graph: QuantizeLinear/DequantizeLinear around the weighted
MatMul and Conv nodes, with the weights stored quantized.

Two layouts, one per target (``exporters.targets``):

- ``ort`` (CPU): activations uint8 with a zero point (the full calibrated range), weights int8
  symmetric per output channel.  ONNX Runtime's CPU provider fuses ``DQ(u8) x DQ(s8) -> MatMul``
  into its integer GEMM kernels; everything else stays FP32.
- ``tensorrt``: TensorRT explicit quantization: symmetric signed INT8 or FP8 (E4M3) everywhere
  (zero point 0), per-channel weight scales on the output-channel axis, per-tensor activations,
  and FP16 elsewhere (``convert_precision``, which keeps norms, softmax and the long convolution
  in FP32).  Both attention products are quantized too, the placement TensorRT fuses into its
  INT8/FP8 attention kernels (ModelOpt's default): Q and K^T before the first batched MatMul and the
  softmax output and V before the second in the MatMul-Softmax-MatMul form; Q, K and V of the
  ``Attention`` op, whose softmax output is internal to the op.  Single-query products (the last block
  of a ``cls`` readout, a matrix-vector product) stay unquantized, as ModelOpt leaves them for TensorRT.

Which nodes are quantized is the caller's choice (``quantizable_nodes`` lists the candidates; the
sensitivity report says which to leave out).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from vit5_infer.errors import Vit5Error

from ..graph import KEEP_FP32
from ..precision import convert_precision
from ..targets import ExportTarget

FP8_MAX = 448.0  # largest finite float8 e4m3fn
INT8_MAX = 127.0
QUANTIZED_OPS = ("MatMul", "Conv", "Gemm")
#: opset of QuantizeLinear/DequantizeLinear with float8 types, and with float16 inputs
FP8_MIN_OPSET = FP16_QDQ_MIN_OPSET = 19


class QuantizationError(Vit5Error, ValueError):
    pass


@dataclass(frozen=True)
class QuantScheme:
    """What a quantized graph stores: ``precision`` int8/fp8 laid out for ``target``."""

    precision: str
    target: ExportTarget
    opset: int = 23

    def __post_init__(self):
        if self.precision not in ("int8", "fp8"):
            raise QuantizationError(f"quantized precision must be int8 or fp8, got {self.precision!r}")
        if self.precision == "fp8" and not self.target.is_tensorrt:
            raise QuantizationError(
                "fp8 graphs are for TensorRT only (ONNX Runtime's CPU provider has no FP8 GEMM); use --target tensorrt"
            )
        if self.precision == "fp8" and self.opset < FP8_MIN_OPSET:
            raise QuantizationError(
                f"fp8 needs opset {FP8_MIN_OPSET} or newer (FP8 QuantizeLinear/DequantizeLinear) and the {self.target} "
                f"graph is opset {self.opset}: leave --opset out (opset {FP8_MIN_OPSET} for this target), or use "
                f"--precision int8"
            )

    @property
    def asymmetric_activations(self) -> bool:
        return not self.target.is_tensorrt

    @property
    def quantizes_attention(self) -> bool:
        """Q/DQ on the attention products' activations (``attention_products``): TensorRT's layout only."""
        return self.target.is_tensorrt

    @property
    def float_precision(self) -> str:
        """Precision of the unquantized remainder of the graph.  Q/DQ of FP16 tensors exist from
        opset 19, which is why quantized TensorRT graphs are opset 19 or newer by default: our engines
        are strongly typed, so an FP32 remainder (an explicit ``--opset 17/18``) would run FP32."""
        return "fp16" if self.target.is_tensorrt and self.opset >= FP16_QDQ_MIN_OPSET else "fp32"

    @property
    def scale_dtype(self) -> type:
        """The type scales are stored in: that of the tensors they quantize (``convert_precision``
        turns them to FP16 with the rest of an FP16 graph)."""
        return np.float16 if self.float_precision == "fp16" else np.float32

    def describe(self) -> dict:
        if self.precision == "fp8":
            act = weight = "float8e4m3fn symmetric"
        elif self.asymmetric_activations:
            act, weight = "uint8 asymmetric", "int8 symmetric"
        else:
            act = weight = "int8 symmetric"
        return {
            "precision": self.precision,
            "target": str(self.target),
            "activations": f"{act} per tensor",
            "weights": f"{weight} per output channel",
            "elsewhere": self.float_precision,
        }


FLOAT8_TYPES = (
    TensorProto.FLOAT8E4M3FN,
    TensorProto.FLOAT8E4M3FNUZ,
    TensorProto.FLOAT8E5M2,
    TensorProto.FLOAT8E5M2FNUZ,
)


def has_float8(model: onnx.ModelProto) -> bool:
    """Whether ``model`` stores FP8 tensors (an FP8 Q/DQ graph's weights and zero points)."""
    return any(init.data_type in FLOAT8_TYPES for init in model.graph.initializer)


def graph_opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _weight_axis(node: onnx.NodeProto) -> int:
    """Output-channel axis of the weight: MatMul B is [in, out]; Conv W is [out, in/g, kh, kw]."""
    if node.op_type == "MatMul":
        return 1
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return 0 if trans_b else 1
    return 0


def quantizable_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """MatMul/Conv/Gemm nodes that multiply an activation by a stored weight, outside the regions the
    exporter keeps in FP32 (the Hyena long convolution's DFTs, SIREN)."""
    inits = {init.name: init for init in model.graph.initializer}
    out = []
    for node in model.graph.node:
        if node.op_type not in QUANTIZED_OPS or node.doc_string == KEEP_FP32 or len(node.input) < 2:
            continue
        if node.input[0] in inits or node.input[1] not in inits:
            continue
        weight = inits[node.input[1]]
        if weight.data_type != TensorProto.FLOAT or len(weight.dims) < 2:
            continue
        out.append(node)
    return out


def activation_tensors(nodes: list[onnx.NodeProto]) -> list[str]:
    return list(dict.fromkeys(node.input[0] for node in nodes))


def attention_products(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The attention nodes whose activation inputs get Q/DQ in TensorRT's layout: the MatMul before a
    Softmax (Q x K^T) and the MatMul after it (P x V), and the ``Attention`` op (Q, K, V).  Nodes that
    compute a single query row are left out: a matrix-vector product runs no faster quantized."""
    graph = onnx.shape_inference.infer_shapes(model).graph
    shapes = {v.name: v.type.tensor_type.shape for v in list(graph.value_info) + list(graph.input)}
    producers = {out: node for node in graph.node for out in node.output}
    softmax_inputs = {node.input[0] for node in graph.node if node.op_type == "Softmax"}
    out = []
    for node in model.graph.node:
        if node.op_type == "MatMul":
            first = node.output[0] in softmax_inputs
            second = getattr(producers.get(node.input[0]), "op_type", None) == "Softmax"
            if not (first or second):
                continue
        elif node.op_type != "Attention":
            continue
        if not _single_query(shapes.get(node.input[0])):
            out.append(node)
    return out


def attention_inputs(node: onnx.NodeProto) -> list[str]:
    """The activation inputs of an attention product that are quantized: both MatMul operands, or Q, K, V."""
    return list(node.input[:2] if node.op_type == "MatMul" else node.input[:3])


def _single_query(shape) -> bool:
    """Whether the query-row dimension (second to last of Q, or of the softmax output) is 1."""
    if shape is None or len(shape.dim) < 2:
        return False
    rows = shape.dim[len(shape.dim) - 2]
    return rows.HasField("dim_value") and rows.dim_value == 1


def storable_scale(scale, dtype: type = np.float32) -> np.ndarray:
    """``scale`` (float32) rounded up to a positive finite value of ``dtype``, the type it is stored in.

    A scale under the smallest FP16 would be stored as 0, which TensorRT's parser rejects ("Scale
    coefficients must all be positive") and which divides by zero in QuantizeLinear; rounding up (not
    to nearest) keeps every value of the tensor inside the quantized range."""
    info = np.finfo(dtype)
    wanted = np.clip(np.asarray(scale, dtype=np.float32), info.smallest_subnormal, info.max).astype(np.float32)
    stored = np.atleast_1d(wanted.astype(dtype))
    below = stored.astype(np.float32) < np.atleast_1d(wanted)
    stored[below] = np.nextafter(stored[below], dtype(np.inf))
    return stored.astype(np.float32).reshape(wanted.shape)


def _activation_params(low: float, high: float, scheme: QuantScheme) -> tuple[np.ndarray, np.ndarray]:
    """(scale, zero point) of one activation tensor."""
    if scheme.precision == "fp8":
        amax = max(abs(low), abs(high), 1e-8)
        return storable_scale(amax / FP8_MAX, scheme.scale_dtype), np.zeros((), dtype=np.float32)
    if scheme.asymmetric_activations:
        low, high = min(low, 0.0), max(high, 0.0)
        scale = storable_scale(max(high - low, 1e-8) / 255.0, scheme.scale_dtype)
        zero = np.uint8(np.clip(round(-low / float(scale)), 0, 255))
        return scale, np.asarray(zero, dtype=np.uint8)
    amax = max(abs(low), abs(high), 1e-8)
    return storable_scale(amax / INT8_MAX, scheme.scale_dtype), np.zeros((), dtype=np.int8)


def _zero_point(zero: np.ndarray, scheme: QuantScheme, name: str) -> onnx.TensorProto:
    if scheme.precision == "fp8":
        return helper.make_tensor(name, TensorProto.FLOAT8E4M3FN, [], [0.0])
    return numpy_helper.from_array(zero, name)


def quantize_weight(
    weight: np.ndarray, axis: int, precision: str, scale_dtype: type = np.float32
) -> tuple[np.ndarray, np.ndarray]:
    """(stored weight, per-channel scale): symmetric, zero point 0, scale from each channel's max,
    rounded to ``scale_dtype`` before quantizing so the stored scale is the one the weight used."""
    reduce = tuple(i for i in range(weight.ndim) if i != axis)
    amax = np.maximum(np.abs(weight).max(axis=reduce), 1e-12).astype(np.float32)
    shape = [1] * weight.ndim
    shape[axis] = -1
    if precision == "fp8":
        import ml_dtypes

        scale = storable_scale(amax / FP8_MAX, scale_dtype)
        q = np.clip(weight / scale.reshape(shape), -FP8_MAX, FP8_MAX).astype(ml_dtypes.float8_e4m3fn)
    else:
        scale = storable_scale(amax / INT8_MAX, scale_dtype)
        q = np.clip(np.round(weight / scale.reshape(shape)), -INT8_MAX, INT8_MAX).astype(np.int8)
    return q, scale


def insert_qdq(
    model: onnx.ModelProto,
    ranges: dict[str, tuple[float, float]],
    scheme: QuantScheme,
    nodes: list[str],
    attention: Sequence[str] = (),
) -> onnx.ModelProto:
    """A copy of FP32 ``model`` with Q/DQ on the activation and stored-quantized weights of ``nodes``, and
    on the activation inputs (``attention_inputs``) of the ``attention`` nodes."""
    opset = graph_opset(model)
    if opset != scheme.opset:
        raise QuantizationError(f"internal: the scheme is for opset {scheme.opset}, the graph has opset {opset}")
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    selected, attention_nodes = set(nodes), set(attention)
    if attention_nodes and not scheme.quantizes_attention:
        raise QuantizationError(f"internal: the {scheme.target} layout does not quantize attention products")
    weight_uses: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            if name in inits:
                weight_uses[name] = weight_uses.get(name, 0) + 1
    dequantized: dict[str, str] = {}  # activation tensor -> its dequantized copy
    new_nodes: list[onnx.NodeProto] = []
    new_inits: list[onnx.TensorProto] = []

    def dequantize(act: str, node: onnx.NodeProto) -> str:
        """The Q/DQ copy of activation ``act`` (one per tensor, however many nodes read it)."""
        if act not in ranges:
            raise QuantizationError(f"internal: no calibrated range for {act} (input of {node.name})")
        if act not in dequantized:
            scale, zero = _activation_params(*ranges[act], scheme)
            base = f"{act}/quant"
            new_inits.extend(
                [numpy_helper.from_array(scale, f"{base}/scale"), _zero_point(zero, scheme, f"{base}/zero_point")]
            )
            new_nodes.append(
                helper.make_node(
                    "QuantizeLinear",
                    [act, f"{base}/scale", f"{base}/zero_point"],
                    [f"{base}/q"],
                    name=f"{base}/QuantizeLinear",
                )
            )
            new_nodes.append(
                helper.make_node(
                    "DequantizeLinear",
                    [f"{base}/q", f"{base}/scale", f"{base}/zero_point"],
                    [f"{base}/dq"],
                    name=f"{base}/DequantizeLinear",
                )
            )
            dequantized[act] = f"{base}/dq"
        return dequantized[act]

    for node in graph.node:
        if node.name in attention_nodes:
            for i, act in enumerate(attention_inputs(node)):
                node.input[i] = dequantize(act, node)
            new_nodes.append(node)
            continue
        if node.name not in selected:
            new_nodes.append(node)
            continue
        weight_name = node.input[1]
        node.input[0] = dequantize(node.input[0], node)

        axis = _weight_axis(node)
        stored, scale = quantize_weight(
            numpy_helper.to_array(inits[weight_name]).astype(np.float32), axis, scheme.precision, scheme.scale_dtype
        )
        wbase = f"{weight_name}/quant" if weight_uses[weight_name] == 1 else f"{node.name}/weight_quant"
        new_inits.append(numpy_helper.from_array(stored, f"{wbase}/stored"))
        new_inits.append(numpy_helper.from_array(scale, f"{wbase}/scale"))
        if scheme.precision == "fp8":
            new_inits.append(
                helper.make_tensor(
                    f"{wbase}/zero_point", TensorProto.FLOAT8E4M3FN, list(scale.shape), [0.0] * scale.size
                )
            )
        else:
            new_inits.append(numpy_helper.from_array(np.zeros(scale.shape, dtype=np.int8), f"{wbase}/zero_point"))
        new_nodes.append(
            helper.make_node(
                "DequantizeLinear",
                [f"{wbase}/stored", f"{wbase}/scale", f"{wbase}/zero_point"],
                [f"{wbase}/dq"],
                name=f"{wbase}/DequantizeLinear",
                axis=axis,
            )
        )
        node.input[1] = f"{wbase}/dq"
        weight_uses[weight_name] -= 1
        new_nodes.append(node)
    still_used = {name for node in new_nodes for name in node.input}
    kept = [init for init in graph.initializer if init.name in still_used]
    del graph.initializer[:]
    graph.initializer.extend(kept + new_inits)
    del graph.node[:]
    graph.node.extend(new_nodes)
    return model


def quantize_graph(
    model: onnx.ModelProto,
    ranges: dict[str, tuple[float, float]],
    scheme: QuantScheme,
    nodes: list[str],
    attention: Sequence[str] = (),
) -> onnx.ModelProto:
    """The deployable quantized graph: Q/DQ inserted, and for TensorRT the remainder in FP16."""
    quantized = insert_qdq(model, ranges, scheme, nodes, attention)
    if scheme.float_precision == "fp16":
        quantized = convert_precision(quantized, "fp16")
    return quantized
