"""The one ONNX Runtime session factory (vit5_infer.ort_sessions)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from vit5_infer.ort_sessions import GRAPH_OPTIMIZATIONS, SessionOptionError, create_session

ROOT = Path(__file__).resolve().parents[2]


def _relu_model() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize("form", ["proto", "bytes", "path", "str"])
def test_a_session_from_each_form_of_model(form, tmp_path):
    model = _relu_model()
    path = tmp_path / "relu.onnx"
    onnx.save(model, str(path))
    source = {"proto": model, "bytes": model.SerializeToString(), "path": path, "str": str(path)}[form]
    session = create_session(source, threads=1, graph_optimization="basic", quiet=True)
    assert session.get_providers() == ["CPUExecutionProvider"]
    out = session.run(["y"], {"x": np.array([-1.0, 2.0], np.float32)})[0]
    np.testing.assert_array_equal(out, [0.0, 2.0])


def test_every_graph_optimization_name_is_known_to_onnxruntime():
    for name in GRAPH_OPTIMIZATIONS:
        create_session(_relu_model(), graph_optimization=name)


def test_an_unknown_graph_optimization_is_one_line():
    with pytest.raises(SessionOptionError, match="unknown graph optimization 'fast'; use one of disable, basic"):
        create_session(_relu_model(), graph_optimization="fast")


def test_the_optimized_model_is_written_where_asked(tmp_path):
    create_session(_relu_model(), optimized_model_path=tmp_path / "optimized.onnx")
    assert (tmp_path / "optimized.onnx").is_file()


def test_no_other_module_creates_onnxruntime_sessions():
    """The factory is the only place the library and the benchmarks call onnxruntime.InferenceSession."""
    folders = ["vit5_infer", "exporters", "engines", "cli", "benchmarks"]
    found = [
        str(path.relative_to(ROOT))
        for folder in folders
        for path in (ROOT / folder).rglob("*.py")
        if re.search(r"\bInferenceSession\(", path.read_text()) and path.name != "ort_sessions.py"
    ]
    assert found == []
