"""The fusion report: kernels from crafted engine-inspector JSON (the layouts TensorRT 10.x writes at
DETAILED and LAYER_NAMES_ONLY verbosity) counted against the attention blocks of ONNX graphs."""

from __future__ import annotations

import json

import onnx
import pytest
from golden_exports import golden_model
from onnx import TensorProto, helper

from vit5_infer.engines.attention_report import (
    FUSED,
    NO_ATTENTION,
    NOT_FUSED,
    PARTIAL,
    UNKNOWN,
    count_attention_blocks,
    fused_attention_layers,
    fusion_report,
    inspector_layers,
    is_fused_attention_kernel,
)


def _info(layers) -> str:
    return json.dumps({"Layers": layers, "Bindings": ["pixel_values", "logits"]})


def _tensor(name, trt11):
    # TensorRT 11 splits 10.x's "Format/Datatype" into "Datatype" and "Format" (Polygraphy 0.53 reads both).
    layout = {"Datatype": "Half", "Format": "Row major linear"} if trt11 else {"Format/Datatype": "Half"}
    return {"Name": name, "Dimensions": [8, 17, 64], **layout}


def _layer(name, layer_type, tactic, metadata="", trt11=False):
    # The keys of a TensorRT 10.x DETAILED layer (Inputs/Outputs trimmed to one tensor each).
    return {
        "Name": name,
        "LayerType": layer_type,
        "Inputs": [_tensor(f"{name}_in", trt11)],
        "Outputs": [_tensor(f"{name}_out", trt11)],
        "TacticName": tactic,
        "StreamId": 0,
        "Metadata": metadata,
    }


def _block(i, fused, scope="attn"):
    qkv = _layer(f"/blocks.{i}/{scope}/qkv/MatMul_myl0_{10 * i}", "gemm",
                 "sm90_xmma_gemm_f16f16_f16f32_f32_tn_n_tilesize128x128x64_warpgroupsize1x1x1_execute_segment_k_off",
                 f"[ONNX Layer: /blocks.{i}/{scope}/qkv/MatMul]")
    if fused:
        return [qkv, _layer(f"_gemm_mha_v2_myl0_{10 * i + 1}", "kgen", "_gemm_mha_v2_0x957a2fe2b6cf4f3d8a3a0e35b5f0a1c2",
                            f"[ONNX Layer: /blocks.{i}/{scope}/qk_matmul][ONNX Layer: /blocks.{i}/{scope}/Softmax]"
                            f"[ONNX Layer: /blocks.{i}/{scope}/pv_matmul]")]
    return [
        qkv,
        _layer(f"/blocks.{i}/{scope}/qk_matmul_myl0_{10 * i + 1}", "gemm",
               "sm80_xmma_gemm_f16f16_f16f16_f16_nn_n_tilesize32x32x64_stage6_warpsize2x2x1_tensor16x8x16",
               f"[ONNX Layer: /blocks.{i}/{scope}/qk_matmul]"),
        _layer(f"__myl_CastMulMaxSubExpSumDivCast_myl0_{10 * i + 2}", "kgen",
               "__myl_CastMulMaxSubExpSumDivCast_0xf2543c36ff9f104bbb1655b0183afb47",
               f"[ONNX Layer: /blocks.{i}/{scope}/Softmax]"),
        _layer(f"/blocks.{i}/{scope}/pv_matmul_myl0_{10 * i + 3}", "gemm",
               "sm80_xmma_gemm_f16f16_f16f16_f16_nn_n_tilesize64x32x64_stage4_warpsize2x2x1_tensor16x8x16",
               f"[ONNX Layer: /blocks.{i}/{scope}/pv_matmul]"),
    ]


def _sync_layers():
    # Myelin's stream events: a TacticName key, empty.
    return [_layer("__mye6916", "wait", ""), _layer("__mye6918", "signal", "")]


@pytest.mark.parametrize("trt11", [False, True])
def test_every_block_fused(trt11):
    layers = _sync_layers() + _block(0, True) + _block(1, True)
    if trt11:
        layers = [dict(layer, Inputs=[_tensor("i", True)], Outputs=[_tensor("o", True)]) for layer in layers]
    report = fusion_report(_info(layers), attention_blocks=2)
    assert report.verdict == FUSED and report.fused is True
    assert report.fused_layers == ("_gemm_mha_v2_myl0_1", "_gemm_mha_v2_myl0_11")
    assert "2 fused attention kernel(s) for 2 attention block(s)" in report.summary()


def test_some_blocks_fused():
    report = fusion_report(_info(_block(0, True) + _block(1, False)), attention_blocks=2)
    assert report.verdict == PARTIAL and report.fused is False
    assert report.fused_layers == ("_gemm_mha_v2_myl0_1",)


def test_unfused_attention_in_nodes_named_mha_is_not_fused():
    # A user's attention scope called "mha": layer names and metadata say mha, the kernels do not.
    report = fusion_report(_info(_block(0, False, scope="mha") + _block(1, False, scope="fused_mha")), attention_blocks=2)
    assert report.verdict == NOT_FUSED and report.fused is False
    assert report.fused_layers == ()
    assert "0 fused attention kernel(s) for 2" in report.detail


def test_names_only_verbosity_is_unknown():
    # LAYER_NAMES_ONLY: strings, and a Myelin ForeignNode hides its kernels; a name saying fmha proves nothing.
    info = _info(["{ForeignNode[/patch_embed/Conv.../head/Gemm]}", "fmha_layer_3"])
    report = fusion_report(info, attention_blocks=2)
    assert report.verdict == UNKNOWN and report.fused is None
    assert "no kernel (tactic) names" in report.detail


@pytest.mark.parametrize("text", ["not json", "{}", "[]", '{"Layers": "x"}', json.dumps({"Layers": _sync_layers()})])
def test_no_usable_inspector_output_is_unknown(text):
    report = fusion_report(text, attention_blocks=3)
    assert report.verdict == UNKNOWN and report.fused is None and report.fused_layers == ()
    assert report.summary().startswith("attention: fusion unknown (")


def test_no_attention_in_the_graph():
    report = fusion_report(_info(_sync_layers()), attention_blocks=0)
    assert report.verdict == NO_ATTENTION and report.fused is None
    assert report.summary() == "attention: none in this network (nothing to fuse)"
    assert fusion_report("garbage", 0).verdict == NO_ATTENTION


@pytest.mark.parametrize(
    "tactic, fused",
    [
        ("_gemm_mha_v2_0x957a2fe2b6cf4f3d8a3a0e35b5f0a1c2", True),
        ("fmha_v2_flash_attention_fp16_64_64_S_40_sm86_kernel_nl", True),
        ("sm90_fmha_fwd_bf16_causal_kernel", True),
        ("fused_multihead_attention_v2_fp16_128_64_kernel", True),
        ("mha_sm80_fp16_64", True),
        ("sm80_xmma_gemm_f16f16_f16f16_f16_nn_n_tilesize32x32x64_stage6_warpsize2x2x1_tensor16x8x16", False),
        ("__myl_CastMulMaxSubExpSumDivCast_0xf2543c36ff9f104bbb1655b0183afb47", False),
        ("__myl_CastSumHalfDiv_0x3ac1", False),  # "SumHalf" contains "mha" but not as a token
        ("softmax_kernel", False),
        ("", False),
        ("0x0000000000000000", False),
    ],
)
def test_kernel_names(tactic, fused):
    assert is_fused_attention_kernel(tactic) is fused


def test_only_the_tactic_is_read():
    layer = _layer("_gemm_mha_v2_myl0_1", "kgen", "sm80_xmma_gemm_f16f16", "[ONNX Layer: /mha/Attention]")
    assert fused_attention_layers([layer]) == []
    assert fused_attention_layers([dict(layer, TacticName="_gemm_mha_v2_0x1")]) == ["_gemm_mha_v2_myl0_1"]


def test_inspector_layers():
    assert inspector_layers(_info(["a", "b"])) == ["a", "b"]
    assert inspector_layers("{") is None and inspector_layers('{"Bindings": []}') is None


def test_report_round_trips_to_json():
    data = fusion_report(_info(_block(0, True)), 1).to_dict()
    assert json.loads(json.dumps(data)) == {"verdict": FUSED, "attention_blocks": 1,
                                            "fused_layers": ["_gemm_mha_v2_myl0_1"],
                                            "detail": "1 fused attention kernel(s) for 1 attention block(s)"}


# ---- attention blocks of ONNX graphs -----------------------------------------------------------------
def _chain(ops):
    """x -> op0 -> op1 -> ... (MatMul takes a second graph input)."""
    nodes, current = [], "x"
    for i, op in enumerate(ops):
        inputs = [current, "w"] if op == "MatMul" else [current]
        nodes.append(helper.make_node(op, inputs, [f"t{i}"], **({"to": TensorProto.FLOAT} if op == "Cast" else {})))
        current = f"t{i}"
    value = helper.make_tensor_value_info
    graph = helper.make_graph(nodes, "g", [value("x", TensorProto.FLOAT, None), value("w", TensorProto.FLOAT, None)],
                              [value(current, TensorProto.FLOAT, None)])
    return helper.make_model(graph)


@pytest.mark.parametrize(
    "ops, blocks",
    [
        (["MatMul", "Softmax", "MatMul"], 1),
        (["MatMul", "Mul", "Softmax", "MatMul"], 1),  # scaled scores
        (["MatMul", "Cast", "Softmax", "Cast", "MatMul"], 1),  # FP32 softmax in an FP16 graph
        (["MatMul", "Softmax", "MatMul", "MatMul", "Softmax", "MatMul"], 2),
        (["Attention"], 1),
        (["Attention", "Relu", "Attention"], 2),
        (["MatMul", "Softmax"], 0),  # a classifier's softmax
        (["Softmax", "MatMul"], 0),
        (["MatMul", "Relu", "Softmax", "MatMul"], 0),  # not a pass-through op
        (["Conv", "Relu", "MatMul"], 0),
    ],
)
def test_count_attention_blocks(ops, blocks):
    assert count_attention_blocks(_chain(ops)) == blocks


def test_attention_inside_a_subgraph_counts():
    body = _chain(["MatMul", "Softmax", "MatMul"]).graph
    cond = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
    node = helper.make_node("If", ["c"], ["y"], then_branch=body, else_branch=body)
    graph = helper.make_graph([node], "g", [cond], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    assert count_attention_blocks(helper.make_model(graph)) == 2


@pytest.mark.parametrize("case, blocks", [("attn_cls_r4", 2), ("hybrid_pool_film", 1), ("hyena_gap", 0)])
@pytest.mark.parametrize("opset", [18, 23])
def test_count_attention_blocks_of_exports(tmp_path, case, blocks, opset):
    from vit5_infer.exporters import convert_precision, export_onnx

    path = tmp_path / f"{case}.onnx"
    export_onnx(golden_model(case), path, opset=opset, validate=False)
    model = onnx.load(str(path))
    assert count_attention_blocks(model) == blocks
    assert count_attention_blocks(convert_precision(model, "fp16")) == blocks
