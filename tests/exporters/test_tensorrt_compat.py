"""The static TensorRT parser check: one tiny crafted graph per rule that fails it, and the fixed
variant that passes; release boundaries; subgraph recursion; ``vit5 inspect --tensorrt`` exit codes."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from vit5_infer.errors import Vit5Error
from vit5_infer.exporters.tensorrt_compat import (
    CompatReport,
    TensorRTCompatError,
    check_tensorrt_compat,
    first_release_with,
    parser_tables,
    rule_release,
)

F = TensorProto.FLOAT


def model(nodes, inputs, outputs, initializers=(), opset=23, functions=()):
    graph = helper.make_graph(list(nodes), "g", list(inputs), list(outputs), list(initializers))
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10, functions=list(functions)
    )


def value(name, shape, elem=F):
    return helper.make_tensor_value_info(name, elem, shape)


def init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def rules(report: CompatReport, severity: str = "error") -> set[str]:
    return {issue.rule for issue in report.issues if issue.severity == severity}


def unary(op, opset=23, **attrs):
    return model(
        [helper.make_node(op, ["x"], ["y"], name="n", **attrs)], [value("x", [2, 4])], [value("y", [2, 4])], opset=opset
    )


def attention(q_shape=(1, 2, 5, 4), kv_shape=None, extra_inputs=(), outputs=("y",), inputs=None, **attrs):
    kv_shape = kv_shape or q_shape
    names = ["q", "k", "v", *extra_inputs]
    values = [value("q", list(q_shape)), value("k", list(kv_shape)), value("v", list(kv_shape))]
    values += [v for v in (inputs or [])]
    node = helper.make_node("Attention", names, list(outputs), name="attn", **attrs)
    return model([node], values, [value(o, None) for o in outputs])


# ---- versions ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "version, release",
    [
        ("10.0", "10.0"),
        ("10.8", "10.0"),
        ("10.13.3", "10.0"),
        ("10.14", "10.14"),
        ("10.14.1.48", "10.14"),
        ("10.15", "10.15"),
        ("10.16", "10.15"),
        ("11", "11"),
        ("11.0", "11"),
        ("11.1.0", "11"),
        ("10.14.1.48.post1", "10.14"),
        ("10.6.0.post2", "10.0"),  # pip post releases, as tensorrt.__version__ says
    ],
)
def test_versions_map_to_the_nearest_encoded_release(version, release):
    assert rule_release(version) == release


@pytest.mark.parametrize("version", ["9.3", "12.0", "ten", "", "10.x", "10.14.postfix"])
def test_unknown_versions_are_user_errors(version):
    with pytest.raises(TensorRTCompatError) as info:
        check_tensorrt_compat(unary("Relu"), version)
    assert isinstance(info.value, Vit5Error)


def test_files_that_are_not_onnx_are_user_errors(tmp_path):
    with pytest.raises(TensorRTCompatError, match="not found"):
        check_tensorrt_compat(tmp_path / "missing.onnx", "10.8")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\xff\x00 not a protobuf \x13\x37" * 10)
    with pytest.raises(TensorRTCompatError, match="not a readable ONNX model"):
        check_tensorrt_compat(junk, "10.8")


# ---- importers per release --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "op, first",
    [
        ("Attention", "10.14"),
        ("RMSNormalization", "10.15"),
        ("RotaryEmbedding", "10.15"),
        ("Swish", "11"),
        ("Gelu", "10.0"),
        ("Scan", "10.0"),
        ("DFT", None),
    ],
)
def test_first_release_with_an_importer(op, first):
    assert first_release_with(op) == first


def test_importer_sets_only_grow():
    importers = parser_tables().importers
    assert importers["10.0"] < importers["10.14"] < importers["10.15"] < importers["11"]


def test_rms_normalization_needs_10_15():
    graph = model(
        [helper.make_node("RMSNormalization", ["x", "w"], ["y"], name="norm", axis=-1, stash_type=1)],
        [value("x", [2, 3, 4])],
        [value("y", [2, 3, 4])],
        [init("w", np.ones(4, np.float32))],
    )
    rejected = check_tensorrt_compat(graph, "10.14")
    assert not rejected.compatible and rules(rejected) == {"no-importer"}
    issue = rejected.errors[0]
    assert (issue.node, issue.op_type) == ("norm", "RMSNormalization")
    assert "Plugin not found" in issue.message and "needs TensorRT >= 10.15" in issue.fix
    assert "--target tensorrt=10.14" in issue.fix
    assert check_tensorrt_compat(graph, "10.15").compatible
    assert check_tensorrt_compat(graph, "11.0").compatible


def test_rotary_embedding_needs_10_15():
    graph = model(
        [helper.make_node("RotaryEmbedding", ["x", "cos", "sin", "pos"], ["y"], name="rope")],
        [value("x", [1, 2, 3, 4]), value("pos", [1, 3], TensorProto.INT64)],
        [value("y", [1, 2, 3, 4])],
        [init("cos", np.ones((8, 2), np.float32)), init("sin", np.zeros((8, 2), np.float32))],
    )
    assert rules(check_tensorrt_compat(graph, "10.14")) == {"no-importer"}
    assert check_tensorrt_compat(graph, "10.15").compatible


def test_swish_needs_11():
    graph = unary("Swish", opset=24)
    assert rules(check_tensorrt_compat(graph, "10.16")) == {"no-importer"}
    assert check_tensorrt_compat(graph, "11.0").compatible


def test_op_without_any_importer_is_a_plugin_lookup_that_fails():
    report = check_tensorrt_compat(unary("DFT"), "11.1")
    assert rules(report) == {"no-importer"}
    assert "Plugin not found" in report.errors[0].message and "plugin named DFT" in report.errors[0].fix
    assert check_tensorrt_compat(unary("Relu"), "11.1").compatible


# ---- Attention --------------------------------------------------------------------------------------
def test_attention_needs_10_14():
    graph = attention()
    assert rules(check_tensorrt_compat(graph, "10.13")) == {"no-importer"}
    assert check_tensorrt_compat(graph, "10.14").compatible


@pytest.mark.parametrize("version", ["10.14", "10.15", "11.0"])
def test_attention_with_softmax_precision_is_rejected(version):
    report = check_tensorrt_compat(attention(softmax_precision=1), version)
    assert rules(report) == {"attention-softmax-precision"}
    assert f"--target tensorrt={version}" in report.errors[0].fix
    assert check_tensorrt_compat(attention(), version).compatible


def test_attention_softcap_is_rejected():
    assert rules(check_tensorrt_compat(attention(softcap=30.0), "10.15")) == {"attention-softcap"}
    assert check_tensorrt_compat(attention(softcap=0.0), "10.15").compatible


def test_attention_takes_one_output():
    report = check_tensorrt_compat(attention(outputs=("y", "present_k", "present_v")), "10.15")
    assert rules(report) == {"attention-outputs"}


@pytest.mark.parametrize(
    "index, rule", [(4, "attention-past-key"), (5, "attention-past-value"), (6, "attention-nonpad-kv-seqlen")]
)
def test_attention_kv_cache_inputs_are_rejected(index, rule):
    extra = [""] * (index - 3) + ["cache"]
    graph = attention(extra_inputs=extra, inputs=[value("cache", [1, 2, 5, 4])])
    assert rules(check_tensorrt_compat(graph, "10.15")) == {rule}


def test_attention_normalization_op_must_be_softmax_or_none():
    assert rules(check_tensorrt_compat(attention(TRT_normalization_op="sigmoid"), "10.15")) == {
        "attention-normalization-op"
    }
    assert check_tensorrt_compat(attention(TRT_normalization_op="none"), "10.15").compatible


def test_attention_qkv_ranks_must_agree_and_be_3d_or_4d():
    mixed = attention(q_shape=(1, 5, 8), kv_shape=(1, 2, 5, 4), q_num_heads=2, kv_num_heads=2)
    assert rules(check_tensorrt_compat(mixed, "10.15")) == {"attention-qkv-rank"}
    five_d = attention(q_shape=(1, 1, 2, 5, 4))
    assert rules(check_tensorrt_compat(five_d, "10.15")) == {"attention-qkv-rank"}


def test_3d_attention_needs_10_15_and_head_counts():
    with_heads = attention(q_shape=(1, 5, 8), q_num_heads=2, kv_num_heads=2)
    assert rules(check_tensorrt_compat(with_heads, "10.14")) == {"attention-3d"}
    assert check_tensorrt_compat(with_heads, "10.15").compatible
    assert check_tensorrt_compat(attention(), "10.14").compatible  # the 4-D form
    without_kv_heads = attention(q_shape=(1, 5, 8), q_num_heads=2)
    report = check_tensorrt_compat(without_kv_heads, "10.15")
    assert rules(report) == {"attention-3d-heads"} and "kv_num_heads" in report.errors[0].message


def test_attention_mask_rank():
    def masked(shape):
        return attention(extra_inputs=["mask"], inputs=[value("mask", list(shape), TensorProto.BOOL)])

    assert rules(check_tensorrt_compat(masked((1, 1, 1, 5, 5)), "10.15")) == {"attention-mask-rank"}
    assert check_tensorrt_compat(masked((5, 5)), "10.15").compatible  # the importer unsqueezes to 4-D
    assert rules(check_tensorrt_compat(masked((5, 5)), "10.14")) == {"attention-mask-rank"}
    assert check_tensorrt_compat(masked((1, 1, 5, 5)), "10.14").compatible


# ---- types --------------------------------------------------------------------------------------------
def test_cast_target_must_be_a_parser_type():
    report = check_tensorrt_compat(unary("Cast", to=TensorProto.FLOAT8E5M2), "11.0")
    assert rules(report) == {"unsupported-type"} and "FLOAT8E5M2" in report.errors[0].message
    assert check_tensorrt_compat(unary("Cast", to=TensorProto.FLOAT16), "11.0").compatible


def test_fp4_arrives_after_10_0():
    graph = unary("Cast", to=TensorProto.FLOAT4E2M1)
    assert rules(check_tensorrt_compat(graph, "10.8")) == {"unsupported-type"}
    assert check_tensorrt_compat(graph, "10.14").compatible


def test_graph_input_and_initializer_types():
    graph = model(
        [helper.make_node("Add", ["x", "b"], ["y"], name="add")],
        [value("x", [2], TensorProto.UINT16)],
        [value("y", [2], TensorProto.UINT16)],
        [init("b", np.ones(2, np.uint16))],
    )
    report = check_tensorrt_compat(graph, "10.15")
    assert rules(report) == {"unsupported-type"} and len(report.errors) == 3  # input, output, initializer
    graph = model(
        [helper.make_node("Add", ["x", "b"], ["y"], name="add")],
        [value("x", [2], TensorProto.INT32)],
        [value("y", [2], TensorProto.INT32)],
        [init("b", np.ones(2, np.int32))],
    )
    assert check_tensorrt_compat(graph, "10.15").compatible


def test_double_is_accepted_with_a_warning():
    graph = model(
        [helper.make_node("Add", ["x", "b"], ["y"], name="add")],
        [value("x", [2])],
        [value("y", [2])],
        [init("b", np.ones(2, np.float64))],
    )
    report = check_tensorrt_compat(graph, "10.15")
    assert report.compatible and rules(report, "warning") == {"double-downcast"}


def test_uint8_only_on_network_inputs_and_outputs():
    def chain(output_type):
        nodes = [helper.make_node("Cast", ["x"], ["u"], name="to_u8", to=TensorProto.UINT8)]
        if output_type != TensorProto.UINT8:
            nodes.append(helper.make_node("Cast", ["u"], ["y"], name="back", to=output_type))
        out = "y" if output_type != TensorProto.UINT8 else "u"
        return model(nodes, [value("x", [2])], [value(out, [2], output_type)])

    report = check_tensorrt_compat(chain(F), "10.15")
    assert rules(report) == {"uint8-intermediate"} and report.errors[0].node == "to_u8"
    assert check_tensorrt_compat(chain(TensorProto.UINT8), "10.15").compatible


def test_constant_with_string_or_sparse_value_is_rejected():
    strings = helper.make_node("Constant", [], ["c"], name="c", value_strings=["a", "b"])
    graph = model(
        [strings, helper.make_node("Identity", ["x"], ["y"], name="id")], [value("x", [2])], [value("y", [2])]
    )
    assert rules(check_tensorrt_compat(graph, "10.15")) == {"constant-attribute"}
    dense = helper.make_node("Constant", [], ["c"], name="c", value=init("v", np.ones(2, np.float32)))
    graph = model([dense, helper.make_node("Add", ["x", "c"], ["y"], name="add")], [value("x", [2])], [value("y", [2])])
    assert check_tensorrt_compat(graph, "10.15").compatible


# ---- other op rules -----------------------------------------------------------------------------------
def test_slice_takes_three_to_five_inputs():
    def sliced(n_inputs):
        extra = ["starts", "ends", "axes", "steps", "steps"][: n_inputs - 1]
        return model(
            [helper.make_node("Slice", ["x", *extra], ["y"], name="slice")],
            [value("x", [4])],
            [value("y", None)],
            [init("starts", [0]), init("ends", [2]), init("axes", [0]), init("steps", [1])],
        )

    assert rules(check_tensorrt_compat(sliced(2), "10.15")) == {"slice-inputs"}
    assert rules(check_tensorrt_compat(sliced(6), "10.15")) == {"slice-inputs"}
    assert check_tensorrt_compat(sliced(3), "10.15").compatible
    assert check_tensorrt_compat(sliced(5), "10.15").compatible


def test_reduce_axes_must_be_an_initializer():
    computed = model(
        [helper.make_node("ReduceMean", ["x", "axes"], ["y"], name="mean")],
        [value("x", [2, 4]), value("axes", [1], TensorProto.INT64)],
        [value("y", None)],
        opset=18,
    )
    assert rules(check_tensorrt_compat(computed, "10.8")) == {"reduce-axes-constant"}
    stored = model(
        [helper.make_node("ReduceMean", ["x", "axes"], ["y"], name="mean")],
        [value("x", [2, 4])],
        [value("y", None)],
        [init("axes", [1])],
        opset=18,
    )
    assert check_tensorrt_compat(stored, "10.8").compatible


def test_unsqueeze_axes_from_a_computed_tensor_is_a_warning():
    computed = model(
        [helper.make_node("Unsqueeze", ["x", "axes"], ["y"], name="unsq")],
        [value("x", [2]), value("axes", [1], TensorProto.INT64)],
        [value("y", None)],
    )
    report = check_tensorrt_compat(computed, "10.15")
    assert report.compatible and rules(report, "warning") == {"axes-constant"}
    stored = model(
        [helper.make_node("Unsqueeze", ["x", "axes"], ["y"], name="unsq")],
        [value("x", [2])],
        [value("y", None)],
        [init("axes", [0])],
    )
    assert not check_tensorrt_compat(stored, "10.15").issues


def test_layer_normalization_keeps_only_y():
    def layer_norm(outputs):
        return model(
            [helper.make_node("LayerNormalization", ["x", "s"], outputs, name="ln", axis=-1)],
            [value("x", [2, 4])],
            [value(o, None) for o in outputs if o],
            [init("s", np.ones(4, np.float32))],
        )

    assert rules(check_tensorrt_compat(layer_norm(["y", "mean", "inv_std"]), "10.15")) == {"layernorm-outputs"}
    assert check_tensorrt_compat(layer_norm(["y"]), "10.15").compatible


def test_rotary_embedding_position_ids_must_be_int64():
    def rope(pos_type):
        return model(
            [helper.make_node("RotaryEmbedding", ["x", "cos", "sin", "pos"], ["y"], name="rope")],
            [value("x", [1, 2, 3, 4]), value("pos", [1, 3], pos_type)],
            [value("y", [1, 2, 3, 4])],
            [init("cos", np.ones((8, 2), np.float32)), init("sin", np.zeros((8, 2), np.float32))],
        )

    assert rules(check_tensorrt_compat(rope(TensorProto.INT32), "10.15")) == {"rotary-position-ids"}
    assert check_tensorrt_compat(rope(TensorProto.INT64), "10.15").compatible


# ---- QuantizeLinear / DequantizeLinear ----------------------------------------------------------------
I8, U8, F16 = TensorProto.INT8, TensorProto.UINT8, TensorProto.FLOAT16
QDQ_VERSIONS = ["10.8", "10.14", "10.15", "11.0"]


def weight_dq(weight, scale, zero=None, opset=23, **attrs):
    """y = x @ DequantizeLinear(weight [in, out]): the weight layout of our quantized MatMuls."""
    weight, scale = np.asarray(weight), np.asarray(scale)
    inputs, inits = ["w", "w_scale"], [init("w", weight), init("w_scale", scale)]
    if zero is not None:
        inputs.append("w_zero")
        inits.append(init("w_zero", zero))
    x_type = TensorProto.FLOAT16 if scale.dtype == np.float16 else F
    nodes = [
        helper.make_node("DequantizeLinear", inputs, ["w_dq"], name="dq", **attrs),
        helper.make_node("MatMul", ["x", "w_dq"], ["y"], name="mm"),
    ]
    return model(nodes, [value("x", [2, weight.shape[0]], x_type)], [value("y", None, x_type)], inits, opset=opset)


def activation_qdq(
    scale=np.float32(0.5),
    zero=np.int8(0),
    x=("x", [2, 4], F),
    opset=23,
    q_attrs=None,
    dq_attrs=None,
    computed_zero=False,
):
    """x -> QuantizeLinear -> DequantizeLinear -> y, both sharing one scale and zero point."""
    zero_inputs = ["zero"] if zero is not None else []
    inits = [init("scale", scale)] + ([init("zero", zero)] if zero is not None and not computed_zero else [])
    inputs = [value(*x)] + (
        [value("zero", list(np.shape(zero)), helper.np_dtype_to_tensor_dtype(np.asarray(zero).dtype))]
        if computed_zero
        else []
    )
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "scale", *zero_inputs], ["q"], name="q", **(q_attrs or {})),
        helper.make_node("DequantizeLinear", ["q", "scale", *zero_inputs], ["y"], name="dq", **(dq_attrs or {})),
    ]
    return model(nodes, inputs, [value("y", None, x[2])], inits, opset=opset)


INT8_WEIGHT = np.arange(12, dtype=np.int8).reshape(3, 4)  # [in 3, out 4]
FOUR_SCALES = np.full(4, 0.01, np.float32)


def test_qdq_pairs_like_ours_parse_at_every_release():
    for version in QDQ_VERSIONS:
        opset = 18 if version == "10.8" else 23  # the graph forms of tensorrt=10.8 and newer
        assert not check_tensorrt_compat(activation_qdq(opset=opset), version).issues
        weights = weight_dq(INT8_WEIGHT, FOUR_SCALES, np.zeros(4, np.int8), opset=opset, axis=1)
        assert not check_tensorrt_compat(weights, version).issues


@pytest.mark.parametrize("version", QDQ_VERSIONS)
def test_qdq_scale_must_be_positive(version):
    # an FP16 scale that underflowed to 0 (what an FP16 graph stores for a near-dead weight channel)
    underflowed = FOUR_SCALES.astype(np.float16)
    underflowed[2] = np.float16(1e-9)
    report = check_tensorrt_compat(weight_dq(INT8_WEIGHT, underflowed, axis=1), version)
    assert rules(report) == {"qdq-scale"} and "1 value of scale w_scale not positive" in report.errors[0].message
    assert f"--target tensorrt={version}" in report.errors[0].fix
    smallest = FOUR_SCALES.astype(np.float16)
    smallest[2] = np.finfo(np.float16).smallest_subnormal
    assert check_tensorrt_compat(weight_dq(INT8_WEIGHT, smallest, axis=1), version).compatible


def test_qdq_scale_is_checked_once_and_must_be_a_float():
    shared_zero_scale = check_tensorrt_compat(activation_qdq(scale=np.float32(0.0)), "10.15")
    assert [(i.rule, i.node) for i in shared_zero_scale.errors] == [("qdq-scale", "q")]  # the first importer only
    integer = check_tensorrt_compat(activation_qdq(scale=np.int32(1)), "10.15")
    assert rules(integer) == {"qdq-scale"} and "INT32" in integer.errors[0].message
    assert check_tensorrt_compat(activation_qdq(scale=np.float16(0.5), x=("x", [2, 4], F16)), "10.15").compatible


@pytest.mark.parametrize("version", QDQ_VERSIONS)
def test_qdq_zero_point_must_be_zero(version):
    report = check_tensorrt_compat(activation_qdq(zero=np.int8(3)), version)
    assert rules(report) == {"qdq-zero-point-nonzero"} and len(report.errors) == 2  # Q and DQ
    assert check_tensorrt_compat(activation_qdq(zero=np.int8(0)), version).compatible


def test_qdq_zero_point_is_traced_through_identity_and_not_guessed_when_computed():
    graph = activation_qdq(zero=np.int8(3))
    graph.graph.node.insert(0, helper.make_node("Identity", ["zero_stored"], ["zero"], name="id"))
    graph.graph.initializer[1].name = "zero_stored"
    assert rules(check_tensorrt_compat(graph, "10.15")) == {"qdq-zero-point-nonzero"}
    # a zero point computed at run time is taken as a tensor by the importer: nothing to check
    assert check_tensorrt_compat(activation_qdq(zero=np.int8(3), computed_zero=True), "10.15").compatible


def test_qdq_fp8_zero_point_is_ignored_by_the_importer():
    def fp8_pair(zero):
        graph = activation_qdq(zero=None)
        graph.graph.initializer.append(helper.make_tensor("zero", TensorProto.FLOAT8E4M3FN, [], [zero]))
        for node in graph.graph.node:
            node.input.append("zero")
        return graph

    report = check_tensorrt_compat(fp8_pair(1.0), "11.0")
    assert rules(report) == {"qdq-fp8-zero-point"} and "ignores FP8 zero points" in report.errors[0].message
    assert check_tensorrt_compat(fp8_pair(0.0), "11.0").compatible


def test_qdq_zero_point_and_scale_have_the_same_volume():
    report = check_tensorrt_compat(weight_dq(INT8_WEIGHT, FOUR_SCALES, np.zeros(1, np.int8), axis=1), "10.15")
    assert rules(report) == {"qdq-zero-point-shape"}


def test_qdq_uint8_zero_point_is_parsed_as_int8():
    zero = check_tensorrt_compat(activation_qdq(zero=np.uint8(0)), "10.15")
    assert zero.compatible and rules(zero, "warning") == {"qdq-uint8-zero-point"}
    assert not rules(zero)  # the UINT8-typed Q output is INT8 in TensorRT: no uint8-intermediate error
    # our CPU layout (asymmetric UINT8 activations) is rejected, with the re-export named
    shifted = check_tensorrt_compat(activation_qdq(zero=np.uint8(128), opset=18), "10.8")
    assert rules(shifted) == {"qdq-zero-point-nonzero"} and not rules(shifted, "warning")
    assert "--target tensorrt=10.8" in shifted.errors[0].fix


@pytest.mark.parametrize("version", QDQ_VERSIONS)
def test_qdq_data_types(version):
    uint8_weight = check_tensorrt_compat(weight_dq(INT8_WEIGHT.astype(np.uint8), FOUR_SCALES, axis=1), version)
    assert rules(uint8_weight) == {"qdq-input-type"} and "UINT8" in uint8_weight.errors[0].message
    int32_weight = check_tensorrt_compat(weight_dq(INT8_WEIGHT.astype(np.int32), FOUR_SCALES, axis=1), version)
    assert rules(int32_weight) == {"qdq-input-type"}
    integer_data = check_tensorrt_compat(
        activation_qdq(x=("x", [2, 4], TensorProto.INT32), scale=np.float32(1)), version
    )
    assert rules(integer_data) == {"qdq-input-type"} and integer_data.errors[0].node == "q"
    assert check_tensorrt_compat(activation_qdq(x=("x", [2, 4], F16), scale=np.float16(0.5)), version).compatible


def test_qdq_output_dtype_of_quantize_must_match_the_zero_point():
    matching = activation_qdq(q_attrs={"output_dtype": I8}, opset=21)
    assert check_tensorrt_compat(matching, "10.15").compatible
    mismatched = activation_qdq(q_attrs={"output_dtype": TensorProto.FLOAT8E4M3FN}, opset=21)
    assert rules(check_tensorrt_compat(mismatched, "11.0")) == {"qdq-output-dtype"}
    e5m2 = activation_qdq(zero=None, q_attrs={"output_dtype": TensorProto.FLOAT8E5M2}, opset=21)
    assert rules(check_tensorrt_compat(e5m2, "11.0")) == {"qdq-output-dtype"}
    assert check_tensorrt_compat(activation_qdq(zero=None, q_attrs={"output_dtype": I8}, opset=21), "10.8").compatible


def test_qdq_output_dtype_of_dequantize_per_release():
    with_zero = activation_qdq(dq_attrs={"output_dtype": TensorProto.FLOAT}, opset=23)
    assert rules(check_tensorrt_compat(with_zero, "10.15")) == {"qdq-output-dtype"}
    assert check_tensorrt_compat(with_zero, "11.0").compatible
    without_zero = activation_qdq(zero=None, dq_attrs={"output_dtype": TensorProto.FLOAT}, opset=23)
    assert check_tensorrt_compat(without_zero, "10.14").compatible
    assert "output_dtype" in check_tensorrt_compat(without_zero, "10.8").errors[0].message
    assert rules(check_tensorrt_compat(activation_qdq(zero=None, dq_attrs={"output_dtype": I8}), "10.15")) == {
        "qdq-output-dtype"
    }


@pytest.mark.parametrize("version", QDQ_VERSIONS)
def test_qdq_axis_range(version):
    assert rules(check_tensorrt_compat(weight_dq(INT8_WEIGHT, FOUR_SCALES, axis=3), version)) == {"qdq-axis"}
    assert check_tensorrt_compat(weight_dq(INT8_WEIGHT, FOUR_SCALES, axis=-1), version).compatible  # negative axes


def test_qdq_implicit_axis_is_0_before_10_14():
    square = weight_dq(np.ones((4, 4), np.int8), FOUR_SCALES)  # ONNX: axis 1; TensorRT 10.0 .. 10.13: axis 0
    report = check_tensorrt_compat(square, "10.8")
    assert rules(report) == {"qdq-axis-implicit"} and "set axis explicitly" in report.errors[0].fix
    assert check_tensorrt_compat(square, "10.14").compatible
    assert check_tensorrt_compat(weight_dq(np.ones((4, 4), np.int8), FOUR_SCALES, axis=1), "10.8").compatible


@pytest.mark.parametrize("version", QDQ_VERSIONS)
def test_qdq_one_scale_per_channel_of_the_axis(version):
    report = check_tensorrt_compat(weight_dq(INT8_WEIGHT, FOUR_SCALES, axis=0), version)  # 4 scales, 3 rows
    assert rules(report) == {"qdq-scale-shape"} and "4 scales for 3 channels along axis 0" in report.errors[0].message
    assert check_tensorrt_compat(weight_dq(INT8_WEIGHT, FOUR_SCALES[:3], axis=0), version).compatible


def test_qdq_scale_rank_and_blocks():
    weight = np.ones((4, 4), np.int8)
    blocked_once = weight_dq(weight, np.full((2, 4), 0.01, np.float32), axis=0, block_size=2, opset=21)
    assert check_tensorrt_compat(blocked_once, "10.15").compatible
    blocked_twice = weight_dq(weight, np.full((2, 2), 0.01, np.float32), axis=0, block_size=2, opset=21)
    assert rules(check_tensorrt_compat(blocked_twice, "10.15")) == {"qdq-scale-shape"}
    three_d = weight_dq(weight, np.full((1, 2, 2), 0.01, np.float32), axis=1)
    assert "Invalid rank" in check_tensorrt_compat(three_d, "10.15").errors[0].message


def test_qdq_per_channel_along_a_dynamic_dimension():
    nodes = [helper.make_node("DequantizeLinear", ["x", "s"], ["y"], name="dq", axis=0)]
    dynamic = model(nodes, [value("x", ["batch", 4], I8)], [value("y", None)], [init("s", np.ones(2, np.float32))])
    report = check_tensorrt_compat(dynamic, "10.15")
    assert rules(report) == {"qdq-scale-shape"} and "dynamic dimension" in report.errors[0].message
    static = model(nodes, [value("x", [2, 4], I8)], [value("y", None)], [init("s", np.ones(2, np.float32))])
    assert check_tensorrt_compat(static, "10.15").compatible


# ---- graph level --------------------------------------------------------------------------------------
def test_opset_outside_the_documented_range_is_a_warning():
    report = check_tensorrt_compat(unary("Relu", opset=23), "10.8")
    assert report.compatible and rules(report, "warning") == {"opset-above-documented"}
    assert not check_tensorrt_compat(unary("Relu", opset=20), "10.8").issues
    assert not check_tensorrt_compat(unary("Relu", opset=23), "10.15").issues
    assert rules(check_tensorrt_compat(unary("Relu", opset=6), "10.8"), "warning") == {"opset-below-7"}


def _scan_with(op_type: str, **attrs) -> onnx.ModelProto:
    body = helper.make_graph(
        [
            helper.make_node(
                op_type,
                ["xi", "w"] if op_type == "RMSNormalization" else ["xi"],
                ["yi"],
                name=f"body_{op_type}",
                **attrs,
            )
        ],
        "body",
        [value("xi", [4])],
        [value("yi", [4])],
    )
    scan = helper.make_node("Scan", ["x"], ["y"], name="scan", num_scan_inputs=1, body=body)
    return model([scan], [value("x", [3, 4])], [value("y", [3, 4])], [init("w", np.ones(4, np.float32))])


def test_subgraph_nodes_are_checked():
    report = check_tensorrt_compat(_scan_with("RMSNormalization"), "10.14")
    assert rules(report) == {"no-importer"} and report.errors[0].node == "body_RMSNormalization"
    # the outer-scope initializer is a constant inside the body
    assert check_tensorrt_compat(_scan_with("RMSNormalization"), "10.15").compatible
    assert rules(check_tensorrt_compat(_scan_with("Cast", to=TensorProto.UINT16), "10.15")) == {"unsupported-type"}


def test_if_branches_are_checked():
    def branch(op):
        return helper.make_graph(
            [helper.make_node(op, ["x"], ["out"], name=f"branch_{op}")], op, [], [value("out", [2])]
        )

    node = helper.make_node("If", ["cond"], ["y"], name="if", then_branch=branch("Relu"), else_branch=branch("DFT"))
    graph = model([node], [value("cond", [], TensorProto.BOOL), value("x", [2])], [value("y", [2])])
    report = check_tensorrt_compat(graph, "11.0")
    assert [issue.node for issue in report.errors] == ["branch_DFT"]


def test_local_functions_import_without_a_builtin_importer():
    def function(op):
        return helper.make_function(
            "local",
            "MyBlock",
            ["a"],
            ["b"],
            [helper.make_node(op, ["a"], ["b"], name="f")],
            [helper.make_opsetid("", 23)],
        )

    call = helper.make_node("MyBlock", ["x"], ["y"], name="call", domain="local")
    ok = model([call], [value("x", [2])], [value("y", [2])], functions=[function("Relu")])
    assert check_tensorrt_compat(ok, "10.8").compatible
    inside = model([call], [value("x", [2])], [value("y", [2])], functions=[function("RMSNormalization")])
    assert rules(check_tensorrt_compat(inside, "10.8")) == {"no-importer"}
    bad_call = helper.make_node("MyBlock", ["x", "x"], ["y"], name="call", domain="local")
    mismatch = model([bad_call], [value("x", [2])], [value("y", [2])], functions=[function("Relu")])
    assert rules(check_tensorrt_compat(mismatch, "10.8")) == {"local-function-inputs"}


def test_report_lines_and_dict():
    report = check_tensorrt_compat(attention(softmax_precision=1), "10.15")
    lines = report.lines()
    assert lines[0] == "TensorRT 10.15 (parser rules of 10.15): does not parse (1 error)"
    assert lines[1].startswith("error: attn [Attention]: ") and "attention-softmax-precision" in lines[1]
    data = json.loads(json.dumps(report.to_dict()))
    assert data["compatible"] is False and data["issues"][0]["rule"] == "attention-softmax-precision"


def test_a_path_is_checked_like_a_proto(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(attention(softmax_precision=1), str(path))
    assert rules(check_tensorrt_compat(path, "10.15")) == {"attention-softmax-precision"}


# ---- CLI ----------------------------------------------------------------------------------------------
def _vit5(capsys, *args) -> tuple[int, str, str]:
    from vit5_infer.cli.main import main

    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return info.value.code or 0, out, err


def test_cli_exit_codes(tmp_path, capsys):
    bad, good = tmp_path / "bad.onnx", tmp_path / "good.onnx"
    onnx.save(attention(softmax_precision=1), str(bad))
    onnx.save(attention(), str(good))

    code, out, _ = _vit5(capsys, "inspect", bad, "--tensorrt", "10.15")
    lines = out.strip().splitlines()
    assert code == 1 and len(lines) == 2
    assert "does not parse" in lines[0] and lines[1].startswith("error: attn [Attention]")

    code, out, _ = _vit5(capsys, "inspect", good, "--tensorrt", "10.15")
    assert code == 0 and out.strip() == "TensorRT 10.15 (parser rules of 10.15): parses"

    code, out, _ = _vit5(capsys, "inspect", bad, "--tensorrt", "10.15", "--json")
    info = json.loads(out)
    assert code == 1 and info["kind"] == "onnx" and info["tensorrt"]["compatible"] is False

    code, out, _ = _vit5(capsys, "inspect", good, "--tensorrt", "10.8")
    assert code == 1 and "needs TensorRT >= 10.14" in out


def test_many_errors_end_in_one_summary_line(tmp_path, capsys):
    """A graph made for another runtime fails many nodes: the last line counts them by rule and names the
    re-export."""
    graph = attention()
    graph.graph.node.append(onnx.helper.make_node("Relu", ["y"], ["z"]))
    graph.graph.node.append(onnx.helper.make_node("Attention", ["z", "z", "z"], ["w"], name="attn2"))
    del graph.graph.output[:]
    graph.graph.output.append(onnx.helper.make_tensor_value_info("w", onnx.TensorProto.FLOAT, None))
    path = tmp_path / "many.onnx"
    onnx.save(graph, str(path))
    report = check_tensorrt_compat(path, "10.8")
    assert report.summary() == "2 errors (no-importer x2): re-export with --target tensorrt=10.8"
    code, out, _ = _vit5(capsys, "inspect", path, "--tensorrt", "10.8")
    assert code == 1 and out.strip().splitlines()[-1] == report.summary()


def test_cli_errors_are_one_line(tmp_path, capsys):
    good = tmp_path / "good.onnx"
    onnx.save(attention(), str(good))
    code, _, err = _vit5(capsys, "inspect", good, "--tensorrt", "9.2")
    assert code == 1 and err.strip().splitlines() == [
        "error: TensorRT 9.2 is not covered: the check knows the 10.x and 11.x parsers"
    ]
    code, _, err = _vit5(capsys, "inspect", tmp_path / "model.engine", "--tensorrt", "10.8")
    assert code == 1 and err.startswith("error: --tensorrt checks ONNX files")
