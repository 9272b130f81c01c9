"""Fixtures of the engine tests."""

import pytest


@pytest.fixture
def onnx_file(tmp_path):
    """A file named like an ONNX graph (``in/model.onnx``) whose bytes are not one: for the checks made
    before the graph is read."""
    path = tmp_path / "in" / "model.onnx"
    path.parent.mkdir()
    path.write_bytes(b"an onnx file")
    return path
