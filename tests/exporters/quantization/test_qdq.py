"""Q/DQ placement and stored weights of the two quantized layouts (cpu, tensorrt)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper

from vit5_infer import load_model, resolve_model
from vit5_infer.exporters import build_graph
from vit5_infer.exporters.graph import KEEP_FP32
from vit5_infer.exporters.quantization import (
    QuantizationError,
    QuantScheme,
    activation_tensors,
    attention_inputs,
    attention_products,
    quantizable_nodes,
    quantize_graph,
)
from vit5_infer.exporters.quantization.qdq import quantize_weight, storable_scale
from vit5_infer.exporters.targets import ExportTarget
from vit5_infer.exporters.tensorrt_compat import check_tensorrt_compat


@pytest.fixture(scope="module")
def hyena_graph(golden_dir) -> onnx.ModelProto:
    return build_graph(load_model(golden_dir / "hyena_gap.safetensors"), 23)[0]


@pytest.fixture(scope="module")
def attn_graph(golden_dir) -> onnx.ModelProto:
    return build_graph(load_model(golden_dir / "attn_cls_r4.safetensors"), 23)[0]


def _ranges(graph):
    return {name: (-2.0, 3.0) for name in activation_tensors(quantizable_nodes(graph))}


def _scheme(precision, target, opset=23):
    return QuantScheme(precision, ExportTarget.parse(target), opset)


def test_candidates_are_weighted_gemms_outside_fp32_regions(hyena_graph):
    inits = {i.name for i in hyena_graph.graph.initializer}
    nodes = quantizable_nodes(hyena_graph)
    assert nodes and all(n.op_type in ("MatMul", "Conv") and n.input[1] in inits for n in nodes)
    assert not any(n.doc_string == KEEP_FP32 for n in nodes)
    # the long convolution's DFT products are tagged FP32 and must not be quantized
    long_conv = [n for n in hyena_graph.graph.node if n.op_type == "MatMul" and n.doc_string == KEEP_FP32]
    assert long_conv and not {n.name for n in long_conv} & {n.name for n in nodes}


@pytest.mark.parametrize("precision", ["int8", "fp8"])
def test_weights_symmetric_per_output_channel(precision):
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((16, 6)).astype(np.float32) * np.array([0.01, 0.1, 1, 3, 10, 30], dtype=np.float32)
    stored, scale = quantize_weight(weight, axis=1, precision=precision)
    assert scale.shape == (6,)
    restored = stored.astype(np.float32) * scale
    if precision == "int8":
        assert stored.dtype == np.int8 and np.abs(stored).max() <= 127
        assert np.all(np.abs(restored - weight) <= scale / 2 + 1e-7)
    else:
        assert stored.dtype == ml_dtypes.float8_e4m3fn
        assert np.all(np.abs(restored - weight) <= np.abs(weight) / 16 + scale * 2**-9)
    # each channel's largest weight maps onto the type's largest value
    assert np.allclose(np.abs(restored).max(axis=0), np.abs(weight).max(axis=0), rtol=1e-6)


def _producers(model):
    return {o: n for n in model.graph.node for o in n.output}


def _init(model, name):
    return next(i for i in model.graph.initializer if i.name == name)


@pytest.mark.parametrize("precision,target", [("int8", "cpu"), ("int8", "tensorrt"), ("fp8", "tensorrt")])
def test_layout_of_each_target(attn_graph, precision, target):
    nodes = quantizable_nodes(attn_graph)
    model = quantize_graph(attn_graph, _ranges(attn_graph), _scheme(precision, target), [n.name for n in nodes])
    onnx.checker.check_model(model)
    producers = _producers(model)
    quantized = [n for n in model.graph.node if n.name in {m.name for m in nodes}]
    act_zero = {"cpu": TensorProto.UINT8, "tensorrt": TensorProto.INT8}[target]
    if precision == "fp8":
        act_zero = TensorProto.FLOAT8E4M3FN
    for node in quantized:
        act_dq, weight_dq = producers[node.input[0]], producers[node.input[1]]
        assert act_dq.op_type == weight_dq.op_type == "DequantizeLinear"
        q = producers[act_dq.input[0]]
        assert q.op_type == "QuantizeLinear"
        zero = _init(model, act_dq.input[2])
        assert zero.data_type == act_zero and list(zero.dims) == []
        if target == "tensorrt":
            assert not numpy_helper.to_array(zero).astype(np.float32).any()  # symmetric: zero point 0
        stored = _init(model, weight_dq.input[0])
        assert stored.data_type == (TensorProto.FLOAT8E4M3FN if precision == "fp8" else TensorProto.INT8)
        axis = next(a.i for a in weight_dq.attribute if a.name == "axis")
        out_channels = stored.dims[1] if node.op_type == "MatMul" else stored.dims[0]
        assert axis == (1 if node.op_type == "MatMul" else 0)
        assert list(_init(model, weight_dq.input[1]).dims) == [out_channels]
    # only the GEMMs asked for are quantized: the attention products are a separate choice (below)
    for node in model.graph.node:
        if node.op_type in ("Attention", "RMSNormalization", "Softmax"):
            assert all(producers.get(i) is None or producers[i].op_type != "DequantizeLinear" for i in node.input)
    float_inits = {i.data_type for i in model.graph.initializer} & {TensorProto.FLOAT, TensorProto.FLOAT16}
    if target == "tensorrt":
        assert TensorProto.FLOAT16 in float_inits  # FP16 elsewhere
    else:
        assert float_inits == {TensorProto.FLOAT}
    # the float weights of quantized layers are gone: only the stored quantized ones remain
    names = {i.name for i in model.graph.initializer}
    assert not any(n.input[1] in names for n in nodes)


def test_fp8_needs_tensorrt_and_opset_19():
    with pytest.raises(QuantizationError, match="TensorRT only"):
        _scheme("fp8", "cpu")
    with pytest.raises(QuantizationError) as info:
        _scheme("fp8", "tensorrt=10.8", 18)
    message = str(info.value)
    assert "\n" not in message and "opset 19" in message and "tensorrt=10.8 graph is opset 18" in message
    assert "leave --opset out" in message and "--precision int8" in message
    assert _scheme("fp8", "tensorrt=10.14").scale_dtype is np.float16


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_scales_are_positive_values_of_their_storage_type(dtype):
    scale = np.array([0.0, 1e-12, 3.07e-8, 1e-7, 1e-3, 0.1, 1e9], np.float32)
    stored = storable_scale(scale, dtype)
    assert stored.dtype == np.float32 and np.all(stored.astype(dtype) > 0)
    assert np.array_equal(stored.astype(dtype).astype(np.float32), stored)  # exact in the storage type
    finite = scale <= np.finfo(dtype).max
    assert np.all(stored[finite] >= scale[finite])  # rounded up: no value leaves the quantized range
    assert np.all(
        stored[finite]
        <= np.maximum(scale[finite] * (1 + 2 * np.finfo(dtype).eps), scale[finite] + np.finfo(dtype).smallest_subnormal)
    )
    assert storable_scale(np.float32(0.5), dtype).shape == ()  # activation scales are scalars


@pytest.mark.parametrize("precision", ["int8", "fp8"])
def test_near_dead_weight_channels_keep_a_positive_fp16_scale(precision):
    """Channels with max |w| ~ 1e-6 (the digits networks have some) would store an FP16 scale of 0 if rounded to
    nearest, which TensorRT's parser rejects; quantized against the FP16 scale, they still restore."""
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((16, 4)).astype(np.float32) * np.array([1e-9, 3e-6, 1e-3, 1.0], np.float32)
    stored, scale = quantize_weight(weight, axis=1, precision=precision, scale_dtype=np.float16)
    assert np.all(scale.astype(np.float16) > 0)
    restored = stored.astype(np.float32) * scale.astype(np.float16).astype(np.float32)
    assert np.all(np.abs(restored - weight) <= np.abs(weight) / 8 + scale)


def test_tensorrt_graph_with_a_dead_channel_parses(attn_graph):
    model = onnx.ModelProto.FromString(attn_graph.SerializeToString())
    node = quantizable_nodes(model)[1]
    weight = _init(model, node.input[1])
    array = numpy_helper.to_array(weight).copy()
    array[:, 0] = 1e-7  # one output channel all but dead
    weight.CopyFrom(numpy_helper.from_array(array, weight.name))
    quantized = quantize_graph(model, _ranges(model), _scheme("int8", "tensorrt"), [node.name])
    assert check_tensorrt_compat(quantized, "11.0").compatible
    scales = [
        numpy_helper.to_array(_init(quantized, n.input[1]))
        for n in quantized.graph.node
        if n.op_type == "DequantizeLinear"
    ]
    assert all(s.dtype == np.float16 and (s > 0).all() for s in scales)


def test_old_tensorrt_forms_keep_fp32_outside_qdq(golden_dir):
    """Opset 18 has no FP16 Q/DQ: the TensorRT 10.0-10.13 form stays FP32 (the builder adds FP16)."""
    old = build_graph(load_model(golden_dir / "attn_cls_r4.safetensors"), 18)[0]
    scheme = _scheme("int8", "tensorrt=10.8", 18)
    model = quantize_graph(old, _ranges(old), scheme, [n.name for n in quantizable_nodes(old)])
    onnx.checker.check_model(model)
    assert scheme.float_precision == "fp32"
    assert TensorProto.FLOAT16 not in {i.data_type for i in model.graph.initializer}


def test_quantize_does_not_modify_its_input(attn_graph):
    before = attn_graph.SerializeToString()
    quantize_graph(attn_graph, _ranges(attn_graph), _scheme("int8", "cpu"), [quantizable_nodes(attn_graph)[0].name])
    assert attn_graph.SerializeToString() == before


# The TensorRT forms of attention: (target, opset) -> the op computing Q x K^T.
ATTENTION_FORMS = [
    ("tensorrt=10.8", 19, "MatMul"),
    ("tensorrt=10.14", 23, "Attention"),
    ("tensorrt=10.15", 23, "Attention"),
    ("tensorrt", 23, "Attention"),
]


def _attention_ranges(graph):
    tensors = activation_tensors(quantizable_nodes(graph)) + [
        t for n in attention_products(graph) for t in attention_inputs(n)
    ]
    return {name: (-2.0, 3.0) for name in tensors}


def _quantized_input(model, producers, name):
    """The QuantizeLinear -> DequantizeLinear pair that produces ``name``, or None."""
    dq = producers.get(name)
    if dq is None or dq.op_type != "DequantizeLinear":
        return None
    q = producers[dq.input[0]]
    assert q.op_type == "QuantizeLinear" and q.input[1] == dq.input[1] and q.input[2] == dq.input[2]
    return q, dq


@pytest.mark.parametrize("precision", ["int8", "fp8"])
@pytest.mark.parametrize("target,opset,op", ATTENTION_FORMS)
def test_tensorrt_quantizes_both_attention_products(golden_dir, target, opset, op, precision):
    """Q/DQ on Q and K^T before the first product and on the softmax output and V before the second
    (Q, K, V of the Attention op), per tensor and symmetric, except the single-query block of a cls readout."""
    model = load_model(golden_dir / "attn_cls_r4.safetensors")  # blocks 'AA', cls readout
    graph = build_graph(model, opset, target=target)[0]
    products = attention_products(graph)
    assert {n.op_type for n in products} == {op}
    assert all(n.name.startswith("blocks.0/") for n in products)  # blocks.1 computes only the cls query
    assert len(products) == (2 if op == "MatMul" else 1)
    scheme = _scheme(precision, target, opset)
    quantized = quantize_graph(
        graph, _attention_ranges(graph), scheme, [n.name for n in quantizable_nodes(graph)], [n.name for n in products]
    )
    onnx.checker.check_model(quantized)
    producers = _producers(quantized)
    zero_type = TensorProto.FLOAT8E4M3FN if precision == "fp8" else TensorProto.INT8
    attention_nodes = [
        n
        for n in quantized.graph.node
        if n.op_type == "Attention" or (n.op_type == "MatMul" and n.name.split("/")[-1] in ("qk_matmul", "pv_matmul"))
    ]
    assert len(attention_nodes) == 2 * (2 if op == "MatMul" else 1)
    for node in attention_nodes:
        pairs = [_quantized_input(quantized, producers, name) for name in attention_inputs(node)]
        if node.name.startswith("blocks.1/"):
            assert pairs == [None] * len(pairs), node.name  # matrix-vector: left in FP16
            continue
        assert None not in pairs, node.name
        for _q, dq in pairs:
            assert list(_init(quantized, dq.input[1]).dims) == []  # per tensor
            zero = _init(quantized, dq.input[2])
            assert zero.data_type == zero_type and not numpy_helper.to_array(zero).astype(np.float32).any()
        sources = [producers[q.input[0]].op_type for q, _ in pairs]
        if node.name.endswith("qk_matmul"):
            assert sources[1] == "Transpose"  # K^T, right before the product
        elif node.name.endswith("pv_matmul"):
            assert sources[0] == "Softmax"
    report = check_tensorrt_compat(quantized, ExportTarget.parse(target).check_version())
    assert report.compatible, "\n".join(report.lines())


def test_register_readout_queries_are_quantized(golden_dir):
    """register_concat reads 4 tokens: its last block is a matrix-matrix product and is quantized."""

    def golden(name):
        return resolve_model(golden_dir / f"{name}.safetensors", config=golden_dir / f"{name}.json")[0]

    graph = build_graph(golden("hybrid_compress_concat"), 23, target="tensorrt")[0]
    assert [n.op_type for n in attention_products(graph)] == ["Attention"]
    gap = build_graph(golden("attn_gap_r0_bias"), 19, target="tensorrt=10.8")[0]
    assert len(attention_products(gap)) == 4  # both products of both blocks


def test_cpu_layout_never_quantizes_attention(attn_graph):
    products = [n.name for n in attention_products(attn_graph)]
    assert products and not _scheme("int8", "cpu").quantizes_attention
    with pytest.raises(QuantizationError, match="does not quantize attention"):
        quantize_graph(attn_graph, _attention_ranges(attn_graph), _scheme("int8", "cpu"), [], products)
