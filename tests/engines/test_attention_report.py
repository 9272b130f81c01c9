"""Reading fused attention from the engine inspector's JSON (text in TensorRT's documented layout)."""

from __future__ import annotations

import json

import onnx
from onnx import helper

from vit5_infer.engines.attention_report import fused_attention_layers, is_fused_attention_layer, onnx_has_attention


def _info(layers) -> str:
    return json.dumps({"Layers": layers, "Bindings": ["pixel_values", "logits"]})


def test_myelin_fused_mha_kernel():
    layers = [
        {"Name": "/blocks.0/attn/qkv/MatMul_myl0_16", "LayerType": "gemm", "TacticName": "sm90_xmma_gemm_f16f16",
         "Metadata": "[ONNX Layer: /blocks.0/attn/qkv/MatMul]"},
        {"Name": "_gemm_mha_v2_myl0_17", "LayerType": "kgen", "TacticName": "_gemm_mha_v2_0x957a2fe2",
         "Metadata": "[ONNX Layer: /blocks.0/attn/MatMul][ONNX Layer: /blocks.0/attn/Softmax]"},
    ]
    assert fused_attention_layers(_info(layers)) == ["_gemm_mha_v2_myl0_17"]


def test_attention_layer_type():
    assert is_fused_attention_layer({"Name": "blocks.0.attention", "LayerType": "Attention"})
    assert is_fused_attention_layer({"Name": "x", "LayerType": "kATTENTION"})


def test_unfused_attention_is_not_reported():
    # Separate gemm + softmax whose *names* mention attention (from the ONNX node names) are not fused.
    layers = [
        {"Name": "[MATRIX_MULTIPLY]_[scaled_dot_product_attention]_matrix_multiply", "LayerType": "gemm",
         "TacticName": "sm80_xmma_gemm_f16f16_f16f16", "Metadata": "[ONNX Layer: /attn/mha/MatMul]"},
        {"Name": "/blocks.0/attn/Softmax", "LayerType": "Softmax", "TacticName": "softmax_kernel"},
    ]
    assert fused_attention_layers(_info(layers)) == []


def test_layer_names_only_and_garbage():
    assert fused_attention_layers(_info(["conv1", "fmha_layer_3"])) == ["fmha_layer_3"]
    assert fused_attention_layers("not json") == []
    assert fused_attention_layers("{}") == []


def _model(op_types):
    nodes = [helper.make_node(op, ["x"], [f"y{i}"]) for i, op in enumerate(op_types)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])], [])
    return helper.make_model(graph)


def test_onnx_has_attention():
    assert onnx_has_attention(_model(["Relu", "Attention"]))
    assert onnx_has_attention(_model(["MatMul", "Softmax", "MatMul"]))
    assert not onnx_has_attention(_model(["Conv", "Mul"]))
