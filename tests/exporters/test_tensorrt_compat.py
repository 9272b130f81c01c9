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
    IMPORTERS,
    CompatReport,
    TensorRTCompatError,
    check_tensorrt_compat,
    first_release_with,
    rule_release,
)

F = TensorProto.FLOAT


def model(nodes, inputs, outputs, initializers=(), opset=23, functions=()):
    graph = helper.make_graph(list(nodes), "g", list(inputs), list(outputs), list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10,
                             functions=list(functions))


def value(name, shape, elem=F):
    return helper.make_tensor_value_info(name, elem, shape)


def init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def rules(report: CompatReport, severity: str = "error") -> set[str]:
    return {issue.rule for issue in report.issues if issue.severity == severity}


def unary(op, opset=23, **attrs):
    return model([helper.make_node(op, ["x"], ["y"], name="n", **attrs)], [value("x", [2, 4])], [value("y", [2, 4])],
                 opset=opset)


def attention(q_shape=(1, 2, 5, 4), kv_shape=None, extra_inputs=(), outputs=("y",), inputs=None, **attrs):
    kv_shape = kv_shape or q_shape
    names = ["q", "k", "v", *extra_inputs]
    values = [value("q", list(q_shape)), value("k", list(kv_shape)), value("v", list(kv_shape))]
    values += [v for v in (inputs or [])]
    node = helper.make_node("Attention", names, list(outputs), name="attn", **attrs)
    return model([node], values, [value(o, None) for o in outputs])


# ---- versions ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("version, release", [
    ("10.0", "10.0"), ("10.8", "10.0"), ("10.13.3", "10.0"), ("10.14", "10.14"), ("10.14.1.48", "10.14"),
    ("10.15", "10.15"), ("10.16", "10.15"), ("11", "11"), ("11.0", "11"), ("11.1.0", "11"),
])
def test_versions_map_to_the_nearest_encoded_release(version, release):
    assert rule_release(version) == release


@pytest.mark.parametrize("version", ["9.3", "12.0", "ten", "", "10.x"])
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
@pytest.mark.parametrize("op, first", [("Attention", "10.14"), ("RMSNormalization", "10.15"),
                                       ("RotaryEmbedding", "10.15"), ("Swish", "11"), ("Gelu", "10.0"),
                                       ("Scan", "10.0"), ("DFT", None)])
def test_first_release_with_an_importer(op, first):
    assert first_release_with(op) == first


def test_importer_sets_only_grow():
    assert IMPORTERS["10.0"] < IMPORTERS["10.14"] < IMPORTERS["10.15"] < IMPORTERS["11"]


def test_rms_normalization_needs_10_15():
    graph = model([helper.make_node("RMSNormalization", ["x", "w"], ["y"], name="norm", axis=-1, stash_type=1)],
                  [value("x", [2, 3, 4])], [value("y", [2, 3, 4])], [init("w", np.ones(4, np.float32))])
    rejected = check_tensorrt_compat(graph, "10.14")
    assert not rejected.compatible and rules(rejected) == {"no-importer"}
    issue = rejected.errors[0]
    assert (issue.node, issue.op_type) == ("norm", "RMSNormalization")
    assert "Plugin not found" in issue.message and "needs TensorRT >= 10.15" in issue.fix
    assert "--target tensorrt=10.14" in issue.fix
    assert check_tensorrt_compat(graph, "10.15").compatible
    assert check_tensorrt_compat(graph, "11.0").compatible


def test_rotary_embedding_needs_10_15():
    graph = model([helper.make_node("RotaryEmbedding", ["x", "cos", "sin", "pos"], ["y"], name="rope")],
                  [value("x", [1, 2, 3, 4]), value("pos", [1, 3], TensorProto.INT64)], [value("y", [1, 2, 3, 4])],
                  [init("cos", np.ones((8, 2), np.float32)), init("sin", np.zeros((8, 2), np.float32))])
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


@pytest.mark.parametrize("index, rule", [(4, "attention-past-key"), (5, "attention-past-value"),
                                         (6, "attention-nonpad-kv-seqlen")])
def test_attention_kv_cache_inputs_are_rejected(index, rule):
    extra = [""] * (index - 3) + ["cache"]
    graph = attention(extra_inputs=extra, inputs=[value("cache", [1, 2, 5, 4])])
    assert rules(check_tensorrt_compat(graph, "10.15")) == {rule}


def test_attention_normalization_op_must_be_softmax_or_none():
    assert rules(check_tensorrt_compat(attention(TRT_normalization_op="sigmoid"), "10.15")) == \
        {"attention-normalization-op"}
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
    graph = model([helper.make_node("Add", ["x", "b"], ["y"], name="add")], [value("x", [2], TensorProto.UINT16)],
                  [value("y", [2], TensorProto.UINT16)], [init("b", np.ones(2, np.uint16))])
    report = check_tensorrt_compat(graph, "10.15")
    assert rules(report) == {"unsupported-type"} and len(report.errors) == 3  # input, output, initializer
    graph = model([helper.make_node("Add", ["x", "b"], ["y"], name="add")], [value("x", [2], TensorProto.INT32)],
                  [value("y", [2], TensorProto.INT32)], [init("b", np.ones(2, np.int32))])
    assert check_tensorrt_compat(graph, "10.15").compatible


def test_double_is_accepted_with_a_warning():
    graph = model([helper.make_node("Add", ["x", "b"], ["y"], name="add")], [value("x", [2])], [value("y", [2])],
                  [init("b", np.ones(2, np.float64))])
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
    graph = model([strings, helper.make_node("Identity", ["x"], ["y"], name="id")], [value("x", [2])],
                  [value("y", [2])])
    assert rules(check_tensorrt_compat(graph, "10.15")) == {"constant-attribute"}
    dense = helper.make_node("Constant", [], ["c"], name="c", value=init("v", np.ones(2, np.float32)))
    graph = model([dense, helper.make_node("Add", ["x", "c"], ["y"], name="add")], [value("x", [2])],
                  [value("y", [2])])
    assert check_tensorrt_compat(graph, "10.15").compatible


# ---- other op rules -----------------------------------------------------------------------------------
def test_slice_takes_three_to_five_inputs():
    def sliced(n_inputs):
        extra = ["starts", "ends", "axes", "steps", "steps"][: n_inputs - 1]
        return model([helper.make_node("Slice", ["x", *extra], ["y"], name="slice")], [value("x", [4])],
                     [value("y", None)], [init("starts", [0]), init("ends", [2]), init("axes", [0]),
                                          init("steps", [1])])

    assert rules(check_tensorrt_compat(sliced(2), "10.15")) == {"slice-inputs"}
    assert rules(check_tensorrt_compat(sliced(6), "10.15")) == {"slice-inputs"}
    assert check_tensorrt_compat(sliced(3), "10.15").compatible
    assert check_tensorrt_compat(sliced(5), "10.15").compatible


def test_reduce_axes_must_be_an_initializer():
    computed = model([helper.make_node("ReduceMean", ["x", "axes"], ["y"], name="mean")],
                     [value("x", [2, 4]), value("axes", [1], TensorProto.INT64)], [value("y", None)], opset=18)
    assert rules(check_tensorrt_compat(computed, "10.8")) == {"reduce-axes-constant"}
    stored = model([helper.make_node("ReduceMean", ["x", "axes"], ["y"], name="mean")], [value("x", [2, 4])],
                   [value("y", None)], [init("axes", [1])], opset=18)
    assert check_tensorrt_compat(stored, "10.8").compatible


def test_unsqueeze_axes_from_a_computed_tensor_is_a_warning():
    computed = model([helper.make_node("Unsqueeze", ["x", "axes"], ["y"], name="unsq")],
                     [value("x", [2]), value("axes", [1], TensorProto.INT64)], [value("y", None)])
    report = check_tensorrt_compat(computed, "10.15")
    assert report.compatible and rules(report, "warning") == {"axes-constant"}
    stored = model([helper.make_node("Unsqueeze", ["x", "axes"], ["y"], name="unsq")], [value("x", [2])],
                   [value("y", None)], [init("axes", [0])])
    assert not check_tensorrt_compat(stored, "10.15").issues


def test_layer_normalization_keeps_only_y():
    def layer_norm(outputs):
        return model([helper.make_node("LayerNormalization", ["x", "s"], outputs, name="ln", axis=-1)],
                     [value("x", [2, 4])], [value(o, None) for o in outputs if o], [init("s", np.ones(4, np.float32))])

    assert rules(check_tensorrt_compat(layer_norm(["y", "mean", "inv_std"]), "10.15")) == {"layernorm-outputs"}
    assert check_tensorrt_compat(layer_norm(["y"]), "10.15").compatible


def test_rotary_embedding_position_ids_must_be_int64():
    def rope(pos_type):
        return model([helper.make_node("RotaryEmbedding", ["x", "cos", "sin", "pos"], ["y"], name="rope")],
                     [value("x", [1, 2, 3, 4]), value("pos", [1, 3], pos_type)], [value("y", [1, 2, 3, 4])],
                     [init("cos", np.ones((8, 2), np.float32)), init("sin", np.zeros((8, 2), np.float32))])

    assert rules(check_tensorrt_compat(rope(TensorProto.INT32), "10.15")) == {"rotary-position-ids"}
    assert check_tensorrt_compat(rope(TensorProto.INT64), "10.15").compatible


# ---- graph level --------------------------------------------------------------------------------------
def test_opset_outside_the_documented_range_is_a_warning():
    report = check_tensorrt_compat(unary("Relu", opset=23), "10.8")
    assert report.compatible and rules(report, "warning") == {"opset-above-documented"}
    assert not check_tensorrt_compat(unary("Relu", opset=20), "10.8").issues
    assert not check_tensorrt_compat(unary("Relu", opset=23), "10.15").issues
    assert rules(check_tensorrt_compat(unary("Relu", opset=6), "10.8"), "warning") == {"opset-below-7"}


def _scan_with(op_type: str, **attrs) -> onnx.ModelProto:
    body = helper.make_graph(
        [helper.make_node(op_type, ["xi", "w"] if op_type == "RMSNormalization" else ["xi"], ["yi"],
                          name=f"body_{op_type}", **attrs)],
        "body", [value("xi", [4])], [value("yi", [4])])
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
        return helper.make_graph([helper.make_node(op, ["x"], ["out"], name=f"branch_{op}")], op, [],
                                 [value("out", [2])])

    node = helper.make_node("If", ["cond"], ["y"], name="if", then_branch=branch("Relu"), else_branch=branch("DFT"))
    graph = model([node], [value("cond", [], TensorProto.BOOL), value("x", [2])], [value("y", [2])])
    report = check_tensorrt_compat(graph, "11.0")
    assert [issue.node for issue in report.errors] == ["branch_DFT"]


def test_local_functions_import_without_a_builtin_importer():
    def function(op):
        return helper.make_function("local", "MyBlock", ["a"], ["b"], [helper.make_node(op, ["a"], ["b"], name="f")],
                                    [helper.make_opsetid("", 23)])

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


def test_cli_errors_are_one_line(tmp_path, capsys):
    good = tmp_path / "good.onnx"
    onnx.save(attention(), str(good))
    code, _, err = _vit5(capsys, "inspect", good, "--tensorrt", "9.2")
    assert code == 1 and err.strip().splitlines() == ["error: TensorRT 9.2 is not covered: the check knows the "
                                                      "10.x and 11.x parsers"]
    code, _, err = _vit5(capsys, "inspect", tmp_path / "model.engine", "--tensorrt", "10.8")
    assert code == 1 and err.startswith("error: --tensorrt checks ONNX files")
