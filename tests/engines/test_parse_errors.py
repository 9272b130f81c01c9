"""TensorRT ONNX parser failures in one line: node, op, and the release that parses the op."""

from __future__ import annotations

import pytest

from vit5_infer.engines.parse_errors import (
    ParseError,
    describe_parse_error,
    error_code_name,
    op_importer_since,
    parse_failure_message,
)

PLUGIN_NOT_FOUND = (
    'creator && "Plugin not found, are the plugin name, version, and namespace correct?"\n'
    "[checkFallbackPluginImporter] line 2"
)


def _attention(code="UNSUPPORTED_NODE", desc=PLUGIN_NOT_FOUND):
    return ParseError(
        code=code, description=desc, node=41, node_name="/blocks.0/attn/Attention", node_operator="Attention"
    )


def test_op_importer_releases():
    assert op_importer_since("Attention") == (10, 14)
    assert op_importer_since("RMSNormalization") == (10, 15)
    assert op_importer_since("RotaryEmbedding") == (10, 15)
    assert op_importer_since("MatMul") is None


def test_an_op_this_release_cannot_import_names_the_release_that_can():
    message = parse_failure_message("m.onnx", [_attention()], "10.8.0.43")
    assert message.startswith(
        "TensorRT 10.8.0.43 could not parse m.onnx: node 41 '/blocks.0/attn/Attention' (Attention): "
    )
    assert "has no importer for Attention (TensorRT 10.14+ has)" in message
    assert "--target tensorrt=10.8" in message
    assert "\n" not in message


def test_rms_normalization_on_10_14():
    error = ParseError("UNSUPPORTED_NODE", PLUGIN_NOT_FOUND, 7, "/blocks.0/norm1/RMSNormalization", "RMSNormalization")
    message = describe_parse_error(error, "10.14.1")
    assert "TensorRT 10.15+ has" in message and "--target tensorrt=10.14" in message


def test_a_supported_op_gets_the_parser_description():
    # 10.14+ imports Attention but its checker refuses the softmax_precision attribute.
    error = _attention("UNSUPPORTED_NODE_ATTR", "Setting softmax precision is not supported in TensorRT Attention.")
    message = parse_failure_message("m.onnx", [error], "10.15.1")
    assert message == (
        "TensorRT 10.15.1 could not parse m.onnx: node 41 '/blocks.0/attn/Attention' (Attention): "
        "Setting softmax precision is not supported in TensorRT Attention. (UNSUPPORTED_NODE_ATTR)"
    )


def test_the_most_telling_error_is_shown_first():
    shape_error = ParseError("INVALID_NODE", "shape mismatch\nmore", 3, "/reshape", "Reshape")
    message = parse_failure_message("m.onnx", [shape_error, _attention()], "10.13.0")
    assert "(Attention)" in message and message.endswith(" (+1 more)")
    assert "shape mismatch (INVALID_NODE)" in parse_failure_message("m.onnx", [shape_error], "10.13.0")


def test_errors_without_a_node():
    error = ParseError("MODEL_DESERIALIZE_FAILED", "Failed to parse the ONNX model.")
    assert describe_parse_error(error, "10.0.1") == "Failed to parse the ONNX model. (MODEL_DESERIALIZE_FAILED)"
    assert "the parser gave no error" in parse_failure_message("m.onnx", [], "10.0.1")


@pytest.mark.parametrize("code", ["ErrorCode.UNSUPPORTED_NODE", "UNSUPPORTED_NODE"])
def test_error_code_spellings(code):
    # pybind11 enums print as "ErrorCode.X"; .name gives "X"
    assert error_code_name(code) == "UNSUPPORTED_NODE"
