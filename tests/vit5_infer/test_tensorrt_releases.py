"""The TensorRT release table (vit5_infer.tensorrt_releases): one version parser, every "since" fact, and a
new release as one table entry that flows into the export targets, the static parser check and the
builder's feature checks.  Pure Python: no TensorRT is needed or imported."""

from __future__ import annotations

import pytest
from onnx import TensorProto, helper

from vit5_infer import tensorrt_releases
from vit5_infer.engines import tensorrt_support
from vit5_infer.engines.parse_errors import ParseError, op_importer_since, parse_failure_message
from vit5_infer.exporters.targets import ExportTarget, TargetError
from vit5_infer.exporters.tensorrt_compat import check_tensorrt_compat, first_release_with, parser_tables, rule_release
from vit5_infer.tensorrt_releases import (
    ALWAYS_STRONGLY_TYPED,
    ATTENTION_ANY_RANK,
    ATTENTION_LAYER,
    ATTENTION_OP,
    DEQUANTIZE_OUTPUT_DTYPE_FREE,
    NO_VOLTA,
    RMS_NORMALIZATION_OP,
    SAME_COMPUTE_CAPABILITY_LEVEL,
    ParserRules,
    TensorRTRelease,
    parse_tensorrt_version,
    since,
    tensorrt_version,
)


@pytest.mark.parametrize(
    "feature, release",
    [
        (ATTENTION_OP, (10, 14)),
        (ATTENTION_LAYER, (10, 14)),
        (RMS_NORMALIZATION_OP, (10, 15)),
        (ALWAYS_STRONGLY_TYPED, (11, 0)),
        (NO_VOLTA, (10, 5)),
        (SAME_COMPUTE_CAPABILITY_LEVEL, (10, 9)),
        (ATTENTION_ANY_RANK, (10, 15)),
        (DEQUANTIZE_OUTPUT_DTYPE_FREE, (11, 0)),
    ],
)
def test_each_feature_comes_from_one_release(feature, release):
    assert since(feature) == release


def test_releases_are_ordered_and_parser_rule_names_unique():
    versions = [release.version for release in tensorrt_releases.RELEASES]
    assert versions == sorted(set(versions))
    names = [release.parser.name for release in tensorrt_releases.parser_releases()]
    assert len(names) == len(set(names)) and tensorrt_releases.RELEASES[0].parser is not None


@pytest.mark.parametrize(
    "text, strict, lenient",
    [
        ("10.14.1.48.post1", (10, 14), (10, 14)),
        ("11", (11, 0), (11, 0)),
        ("8.9", (8, 9), (8, 9)),
        ("10.14.postfix", None, (10, 14)),
        ("garbage", None, (0, 0)),
    ],
)
def test_one_parser_strict_and_lenient(text, strict, lenient):
    assert parse_tensorrt_version(text) == strict
    assert tensorrt_version(text) == lenient


def _graph_with(op: str):
    graph = helper.make_graph(
        [helper.make_node(op, ["x"], ["y"], name="n")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)], ir_version=10)


def test_a_new_release_is_one_table_entry(monkeypatch):
    """A made-up TensorRT 12.0, added as one entry, reaches every consumer of the table."""
    made_up = TensorRTRelease(
        (12, 0),
        adds=frozenset({"made-up-feature"}),
        parser=ParserRules("12", frozenset({"MadeUpOp"}), 25, types_added=frozenset({"FLOAT8E5M2"})),
    )
    with pytest.raises(TargetError, match="not supported"):
        ExportTarget.parse("tensorrt=12.0")
    assert not tensorrt_support.is_supported((12, 0))

    monkeypatch.setattr(tensorrt_releases, "RELEASES", tensorrt_releases.RELEASES + (made_up,))

    # the export targets: 12.x is accepted, and `tensorrt` alone now means the newest parser
    assert str(ExportTarget.parse("tensorrt=12.1")) == "tensorrt=12.1"
    assert ExportTarget.parse("tensorrt").check_version() == "12.0"
    assert ExportTarget.parse("tensorrt=12.1").fused_attention(23)  # features carry over to later releases
    # the static parser check: a new pin with its importers, opsets and types on top of the older ones
    assert rule_release("12.3") == "12" and rule_release("11.4") == "11"
    assert first_release_with("MadeUpOp") == "12"
    tables = parser_tables()
    assert tables.releases[-1] == "12" and tables.max_documented_opset["12"] == 25
    assert tables.importers["11"] < tables.importers["12"]
    assert TensorProto.FLOAT8E5M2 in tables.types["12"] and TensorProto.FLOAT8E5M2 not in tables.types["11"]
    rejected = check_tensorrt_compat(_graph_with("MadeUpOp"), "11.0")
    assert [issue.fix for issue in rejected.errors] == ["needs TensorRT >= 12.0"]
    assert check_tensorrt_compat(_graph_with("MadeUpOp"), "12.0").compatible
    # the engines: the installed-version range, the feature checks and the parse-error explainer
    assert tensorrt_support.is_supported((12, 0))
    assert tensorrt_support.has_attention_layers("12.0.1") and not tensorrt_support.needs_strongly_typed_flag("12.0")
    assert tensorrt_support.minimum_compute_capability("12.0") == (7, 5)
    assert tensorrt_releases.has((12, 0), "made-up-feature") and not tensorrt_releases.has((11, 9), "made-up-feature")
    assert op_importer_since("MadeUpOp") == (12, 0)
    message = parse_failure_message(
        "m.onnx", [ParseError("UNSUPPORTED_NODE", "no importer", 0, "n", "MadeUpOp")], "11.1.0"
    )
    assert "TensorRT 12.0+ has" in message


def test_hardware_compatibility_levels_read_the_table_on_every_call(monkeypatch):
    """The release that brings a level is the table's, not a value copied when the module was imported."""
    from vit5_infer.engines.errors import EngineBuildError

    assert tensorrt_releases.hardware_compatibility_level("same-compute-capability").since == (10, 9)
    moved = tuple(
        TensorRTRelease(r.version, r.adds - {SAME_COMPUTE_CAPABILITY_LEVEL}, r.parser)
        for r in tensorrt_releases.RELEASES
    ) + (TensorRTRelease((12, 0), adds=frozenset({SAME_COMPUTE_CAPABILITY_LEVEL})),)
    monkeypatch.setattr(tensorrt_releases, "RELEASES", moved)
    with pytest.raises(EngineBuildError, match="same-compute-capability needs TensorRT 12.0 or newer"):
        tensorrt_support.check_hardware_compatibility("same-compute-capability", version="11.1")
    assert tensorrt_releases.hardware_compatibility_names() == ("none", "ampere+", "same-compute-capability")
