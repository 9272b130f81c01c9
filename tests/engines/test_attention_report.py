"""The fusion report: kernels from crafted engine-inspector JSON (the layouts TensorRT 10.x writes at
DETAILED and LAYER_NAMES_ONLY verbosity) counted against the attention blocks of ONNX graphs."""

from __future__ import annotations

import json

import onnx
import pytest
from onnx import TensorProto, helper

from vit5_infer.engines.attention_report import (
    FUSED,
    IATTENTION_UNVERIFIED,
    NO_ATTENTION,
    NOT_FUSED,
    PARTIAL,
    UNKNOWN,
    AttentionBlock,
    attention_blocks,
    count_attention_blocks,
    fused_attention_layers,
    fusion_report,
    inspector_layers,
    is_fused_attention_kernel,
)

from golden_exports import golden_model


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
    qkv = _layer(
        f"/blocks.{i}/{scope}/qkv/MatMul_myl0_{10 * i}",
        "gemm",
        "sm90_xmma_gemm_f16f16_f16f32_f32_tn_n_tilesize128x128x64_warpgroupsize1x1x1_execute_segment_k_off",
        f"[ONNX Layer: /blocks.{i}/{scope}/qkv/MatMul]",
    )
    if fused:
        return [
            qkv,
            _layer(
                f"_gemm_mha_v2_myl0_{10 * i + 1}",
                "kgen",
                "_gemm_mha_v2_0x957a2fe2b6cf4f3d8a3a0e35b5f0a1c2",
                f"[ONNX Layer: /blocks.{i}/{scope}/qk_matmul][ONNX Layer: /blocks.{i}/{scope}/Softmax]"
                f"[ONNX Layer: /blocks.{i}/{scope}/pv_matmul]",
            ),
        ]
    return [
        qkv,
        _layer(
            f"/blocks.{i}/{scope}/qk_matmul_myl0_{10 * i + 1}",
            "gemm",
            "sm80_xmma_gemm_f16f16_f16f16_f16_nn_n_tilesize32x32x64_stage6_warpsize2x2x1_tensor16x8x16",
            f"[ONNX Layer: /blocks.{i}/{scope}/qk_matmul]",
        ),
        _layer(
            f"__myl_CastMulMaxSubExpSumDivCast_myl0_{10 * i + 2}",
            "kgen",
            "__myl_CastMulMaxSubExpSumDivCast_0xf2543c36ff9f104bbb1655b0183afb47",
            f"[ONNX Layer: /blocks.{i}/{scope}/Softmax]",
        ),
        _layer(
            f"/blocks.{i}/{scope}/pv_matmul_myl0_{10 * i + 3}",
            "gemm",
            "sm80_xmma_gemm_f16f16_f16f16_f16_nn_n_tilesize64x32x64_stage4_warpsize2x2x1_tensor16x8x16",
            f"[ONNX Layer: /blocks.{i}/{scope}/pv_matmul]",
        ),
    ]


def _blocks(count, scope="attn", single_query_last=False, op="Softmax"):
    """The AttentionBlocks attention_blocks() finds for the graph _block's layers were built from."""
    return [
        AttentionBlock(
            f"/blocks.{i}/{scope}",
            (f"/blocks.{i}/{scope}/Softmax", f"/blocks.{i}/{scope}/qk_matmul", f"/blocks.{i}/{scope}/pv_matmul"),
            op,
            single_query_last and i == count - 1,
        )
        for i in range(count)
    ]


def _sync_layers():
    # Myelin's stream events: a TacticName key, empty.
    return [_layer("__mye6916", "wait", ""), _layer("__mye6918", "signal", "")]


@pytest.mark.parametrize("trt11", [False, True])
def test_every_block_fused(trt11):
    layers = _sync_layers() + _block(0, True) + _block(1, True)
    if trt11:
        layers = [dict(layer, Inputs=[_tensor("i", True)], Outputs=[_tensor("o", True)]) for layer in layers]
    report = fusion_report(_info(layers), attention_blocks=_blocks(2))
    assert report.verdict == FUSED and report.fused is True
    assert report.fused_layers == ("_gemm_mha_v2_myl0_1", "_gemm_mha_v2_myl0_11")
    assert "2 of 2 attention block(s) have a fused kernel (2 kernel(s))" in report.summary()
    assert report.unfused_blocks == () and report.notes == ()


def test_some_blocks_fused():
    report = fusion_report(_info(_block(0, True) + _block(1, False)), attention_blocks=_blocks(2))
    assert report.verdict == PARTIAL and report.fused is False
    assert report.fused_layers == ("_gemm_mha_v2_myl0_1",)
    assert report.unfused_blocks == ("/blocks.1/attn",) and "no fused kernel in /blocks.1/attn" in report.detail


def test_unfused_attention_in_nodes_named_mha_is_not_fused():
    # A user's attention scope called "mha": layer names and metadata say mha, the kernels do not.
    report = fusion_report(
        _info(_block(0, False, scope="mha") + _block(1, False, scope="fused_mha")),
        attention_blocks=_blocks(1, "mha") + _blocks(2, "fused_mha")[1:],
    )
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
    data = fusion_report(_info(_block(0, True)), _blocks(1)).to_dict()
    assert json.loads(json.dumps(data)) == {
        "verdict": FUSED,
        "attention_blocks": 1,
        "fused_layers": ["_gemm_mha_v2_myl0_1"],
        "detail": "1 of 1 attention block(s) have a fused kernel (1 kernel(s))",
        "unfused_blocks": [],
        "notes": [],
    }


def test_a_bare_block_count_says_kernels_were_not_attributed():
    report = fusion_report(_info(_block(0, True)), 1)
    assert report.verdict == FUSED and report.detail.endswith("not attributed to blocks")


# ---- fusion counted per block ---------------------------------------------------------------------------
def _split_block(i):
    """Block i's attention split over two fused MHA kernels (both carry its nodes in their metadata)."""
    fused = _block(i, True)
    second = dict(fused[1], Name=f"_gemm_mha_v2_myl0_{10 * i + 5}", TacticName="_gemm_mha_v2_0x1234")
    return fused + [second]


def test_one_block_split_into_two_kernels_does_not_make_up_for_an_unfused_one():
    """Two fused kernels for two blocks, both block 0's: the old count (kernels >= blocks) said fused."""
    report = fusion_report(_info(_split_block(0) + _block(1, False)), _blocks(2))
    assert len(report.fused_layers) == 2
    assert report.verdict == PARTIAL and report.fused is False
    assert report.unfused_blocks == ("/blocks.1/attn",)
    assert report.detail == (
        "1 of 2 attention block(s) have a fused kernel (2 kernel(s)); no fused kernel in /blocks.1/attn"
    )


def test_every_unfused_block_is_named():
    report = fusion_report(_info(_block(0, False) + _block(1, True) + _block(2, False) + _block(3, False)), _blocks(4))
    assert report.verdict == PARTIAL
    assert report.unfused_blocks == ("/blocks.0/attn", "/blocks.2/attn", "/blocks.3/attn")
    assert report.detail.endswith("no fused kernel in /blocks.0/attn, /blocks.2/attn, /blocks.3/attn")


def test_block_names_are_not_prefixes_of_each_other():
    """/blocks.1/... must not claim a kernel of /blocks.10/... (nor MatMul one of MatMul_1)."""
    blocks = _blocks(11)
    layers = [layer for i in range(11) for layer in _block(i, i == 10)]
    report = fusion_report(_info(layers), blocks)
    assert report.unfused_blocks == tuple(b.name for b in blocks[:10])


def test_a_cls_readout_last_block_unfused_is_explained_not_warned():
    """The last block of a cls readout computes one query ([B,h,1,d] x [B,h,d,T]): a matrix-vector product
    that TensorRT runs as gemm kernels; that alone is no missed fusion."""
    layers = _block(0, True) + _block(1, True) + _block(2, False)
    report = fusion_report(_info(layers), _blocks(3, single_query_last=True))
    assert report.verdict == FUSED and report.fused is True
    assert report.unfused_blocks == ("/blocks.2/attn",)
    assert any("/blocks.2/attn computes one query (cls readout" in note for note in report.notes)
    assert "computes one query" in report.summary() and "\n" not in report.summary()


def test_a_single_query_block_does_not_excuse_other_unfused_blocks():
    layers = _block(0, False) + _block(1, True) + _block(2, False)
    report = fusion_report(_info(layers), _blocks(3, single_query_last=True))
    assert report.verdict == PARTIAL and report.unfused_blocks == ("/blocks.0/attn", "/blocks.2/attn")


def test_fused_kernels_that_name_no_block_are_unknown():
    layers = [
        dict(layer, Metadata="", Name=f"__myl_fused_{n}") for n, layer in enumerate(_block(0, True) + _block(1, True))
    ]
    report = fusion_report(_info(layers), _blocks(2))
    assert report.verdict == UNKNOWN and report.fused is None and len(report.fused_layers) == 2


def test_an_unattributed_fused_kernel_leaves_the_unfused_blocks_unknown():
    """A fused kernel whose layer names no node may be the missing block's: neither fused nor partly fused."""
    anonymous = [dict(layer, Metadata="", Name="__myl_fused_9") for layer in _block(1, True)]
    report = fusion_report(_info(_block(0, True) + anonymous), _blocks(2))
    assert report.verdict == UNKNOWN and report.unfused_blocks == ("/blocks.1/attn",)
    assert "1 fused kernel(s) name no block, so whether /blocks.1/attn have one is unknown" in report.detail


def test_a_short_node_name_is_not_found_inside_a_longer_one():
    blocks = [AttentionBlock("a", ("Softmax", "MatMul", "MatMul_1")), AttentionBlock("b", ("/b/Softmax",))]
    layers = [_layer("fused", "kgen", "_gemm_mha_v2_0x1", "[ONNX Layer: /b/Softmax][ONNX Layer: MatMul_12]")]
    report = fusion_report(_info(layers), blocks)
    assert report.verdict == PARTIAL and report.unfused_blocks == ("a",)


@pytest.mark.parametrize("op, noted", [("Attention", True), ("Softmax", False)])
def test_iattention_kernel_names_are_reported_unverified(op, noted):
    report = fusion_report(_info(_block(0, True)), _blocks(1, op=op))
    assert (IATTENTION_UNVERIFIED in report.notes) is noted
    assert (IATTENTION_UNVERIFIED in report.summary()) is noted
    assert (IATTENTION_UNVERIFIED in fusion_report("{}", _blocks(1, op=op)).notes) is noted


# ---- attention blocks of ONNX graphs -----------------------------------------------------------------
def _chain(ops):
    """x -> op0 -> op1 -> ... (MatMul takes a second graph input)."""
    nodes, current = [], "x"
    for i, op in enumerate(ops):
        inputs = [current, "w"] if op == "MatMul" else [current]
        nodes.append(helper.make_node(op, inputs, [f"t{i}"], **({"to": TensorProto.FLOAT} if op == "Cast" else {})))
        current = f"t{i}"
    value = helper.make_tensor_value_info
    graph = helper.make_graph(
        nodes,
        "g",
        [value("x", TensorProto.FLOAT, None), value("w", TensorProto.FLOAT, None)],
        [value(current, TensorProto.FLOAT, None)],
    )
    return helper.make_model(graph)


@pytest.mark.parametrize(
    "ops, blocks",
    [
        (["MatMul", "Softmax", "MatMul"], 1),
        (["MatMul", "Mul", "Softmax", "MatMul"], 1),  # scaled scores
        (["MatMul", "Cast", "Softmax", "Cast", "MatMul"], 1),  # FP32 softmax in an FP16 graph
        (["MatMul", "Softmax", "QuantizeLinear", "DequantizeLinear", "MatMul"], 1),  # quantized probabilities
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


@pytest.mark.parametrize("opset, op", [(18, "Softmax"), (23, "Attention")])
def test_attention_blocks_of_a_cls_export(tmp_path, opset, op):
    """attn_cls_r4 has two attention blocks; with the cls readout the last one computes one query."""
    from vit5_infer.exporters import export_onnx

    path = tmp_path / "m.onnx"
    export_onnx(golden_model("attn_cls_r4"), path, opset=opset, validate=False)
    blocks = attention_blocks(onnx.load(str(path)))
    assert [(b.name, b.op, b.single_query) for b in blocks] == [
        ("blocks.0/sequence_mixer", op, False),
        ("blocks.1/sequence_mixer", op, True),
    ]
    assert f"blocks.1/sequence_mixer/{op}" in blocks[1].nodes


@pytest.mark.parametrize("precision", ["int8", "fp8"])
def test_attention_blocks_of_a_quantized_tensorrt_export(precision):
    """The opset-19 TensorRT form quantizes both products (Q/DQ between Softmax and the second MatMul):
    the blocks are still found, so the fusion verdict of an INT8/FP8 engine is not 'no attention'."""
    from vit5_infer.exporters import build_graph
    from vit5_infer.exporters.quantization import (
        QuantScheme,
        activation_tensors,
        attention_inputs,
        attention_products,
        quantizable_nodes,
        quantize_graph,
    )
    from vit5_infer.exporters.targets import ExportTarget

    graph = build_graph(golden_model("attn_cls_r4"), 19, target="tensorrt=10.8")[0]
    products = attention_products(graph)
    tensors = activation_tensors(quantizable_nodes(graph)) + [t for n in products for t in attention_inputs(n)]
    scheme = QuantScheme(precision, ExportTarget.parse("tensorrt=10.8"), 19)
    quantized = quantize_graph(
        graph,
        {t: (-2.0, 3.0) for t in tensors},
        scheme,
        [n.name for n in quantizable_nodes(graph)],
        [n.name for n in products],
    )
    dequantized = {n.output[0] for n in quantized.graph.node if n.op_type == "DequantizeLinear"}
    pv = [n for n in quantized.graph.node if n.name == "blocks.0/sequence_mixer/pv_matmul"]
    assert len(pv) == 1 and set(pv[0].input) <= dequantized
    blocks = attention_blocks(quantized)
    assert [(b.name, b.single_query) for b in blocks] == [
        ("blocks.0/sequence_mixer", False),
        ("blocks.1/sequence_mixer", True),
    ]
