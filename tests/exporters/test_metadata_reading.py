"""Reading a graph's vit5.* metadata strictly, and publishing an export without deleting a file that
is not the previous graph's weights."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from vit5_infer.errors import Vit5Error
from vit5_infer.exporters.export import _publish, references_external_file
from vit5_infer.exporters.metadata import read_metadata


def _graph(**metadata_text) -> onnx.ModelProto:
    model = helper.make_model(
        helper.make_graph(
            [helper.make_node("Identity", ["x"], ["y"])],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])],
        )
    )
    for key, value in metadata_text.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = f"vit5.{key}", value
    return model


@pytest.mark.parametrize(
    "key, text, fragment",
    [
        ("preprocessing", '"a string"', "expected a JSON object, got a string"),
        ("preprocessing", "[1, 2]", "expected a JSON object, got a list"),
        ("preprocessing", "{not json", "not valid JSON"),
        ("config", "3", "expected a JSON object, got a number"),
        ("outputs", "null", "expected a JSON object, got null"),
        ("preprocessing", "[" * 100_000 + "]" * 100_000, "nested deeper than"),
        ("precision", "[" * 100_000 + "]" * 100_000, "nested deeper than"),
        ("preprocessing", '{"mean": [NaN, 0, 0]}', "NaN is not a JSON number"),
        ("preprocessing", '{"mean": [0, 0, 0], "mean": [1, 1, 1]}', "duplicate key 'mean'"),
    ],
)
def test_metadata_of_the_wrong_shape_is_one_line(tmp_path, key, text, fragment):
    path = tmp_path / "hand_edited.onnx"
    onnx.save(_graph(**{key: text}), str(path))
    for source in (path, onnx.load(str(path))):
        with pytest.raises(Vit5Error, match=f"vit5.{key} metadata: .*{fragment}".replace("[", r"\[")) as info:
            read_metadata(source)
        assert "\n" not in str(info.value)


def test_written_metadata_reads_back():
    model = _graph(preprocessing=json.dumps({"mean": [0.5] * 3}), precision='"fp16"', source="null")
    assert read_metadata(model) == {"preprocessing": {"mean": [0.5] * 3}, "precision": "fp16", "source": None}


# ---- publishing: only the previous graph's own weights file is removed --------------------------------
def _with_external_weights(folder, name: str, location: str) -> None:
    weights = numpy_helper.from_array(np.ones((32, 32), np.float32), "w")
    model = helper.make_model(
        helper.make_graph(
            [helper.make_node("Add", ["x", "w"], ["y"])],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [32, 32])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [32, 32])],
            [weights],
        )
    )
    onnx.save(model, str(folder / name), save_as_external_data=True, location=location, size_threshold=0)


def _staged_inline(folder):
    stage = folder / "stage"
    stage.mkdir()
    onnx.save(_graph(), str(stage / "u.onnx"))
    return stage / "u.onnx"


def test_an_unrelated_data_file_beside_a_new_output_is_kept(tmp_path):
    (tmp_path / "u.onnx.data").write_bytes(b"someone else's file")
    _publish(_staged_inline(tmp_path), tmp_path / "u.onnx", external=False)
    assert (tmp_path / "u.onnx.data").read_bytes() == b"someone else's file"


def test_a_data_file_another_graph_at_the_path_did_not_read_is_kept(tmp_path):
    _with_external_weights(tmp_path, "u.onnx", "elsewhere.bin")
    (tmp_path / "u.onnx.data").write_bytes(b"not the graph's")
    assert not references_external_file(tmp_path / "u.onnx", "u.onnx.data")
    _publish(_staged_inline(tmp_path), tmp_path / "u.onnx", external=False)
    assert (tmp_path / "u.onnx.data").read_bytes() == b"not the graph's"


def test_the_weights_of_the_replaced_graph_are_removed(tmp_path):
    _with_external_weights(tmp_path, "u.onnx", "u.onnx.data")
    assert references_external_file(tmp_path / "u.onnx", "u.onnx.data")
    _publish(_staged_inline(tmp_path), tmp_path / "u.onnx", external=False)
    assert not (tmp_path / "u.onnx.data").exists()
    onnx.checker.check_model(str(tmp_path / "u.onnx"))


@pytest.mark.parametrize(
    "content",
    [
        "graph",  # a vit5 graph
        "hand edited",  # metadata that read_metadata refuses
        b"",  # protobuf parses an empty file as an empty model
        b"not an onnx file at all",
    ],
)
def test_a_graph_file_reads_as_the_path_readers_do(tmp_path, content):
    """GraphFile.read (one read of the file) gives what onnx.load without external data, read_metadata_or_empty
    and the file's SHA-256 give, each reading the file again."""
    from vit5_infer.checkpoint import file_sha256
    from vit5_infer.graph_metadata import GraphFile, read_metadata_or_empty

    path = tmp_path / "m.onnx"
    if content == "graph":
        onnx.save(_graph(precision='"fp16"', source="null"), str(path))
    elif content == "hand edited":
        onnx.save(_graph(preprocessing="[1, 2]"), str(path))
    else:
        path.write_bytes(content)
    graph = GraphFile.read(path)
    assert graph.path == path and graph.sha256 == file_sha256(path)
    assert graph.metadata == read_metadata_or_empty(path)
    try:
        expected = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - whatever onnx raises for bytes that are no model
        expected = None
    assert (graph.model is None) == (expected is None)
    assert expected is None or graph.model.SerializeToString() == expected.SerializeToString()


def test_a_graph_file_leaves_external_weights_on_disk(tmp_path):
    from onnx.external_data_helper import uses_external_data

    from vit5_infer.graph_metadata import GraphFile

    from onnx_graphs import graph_with_external_data

    path = graph_with_external_data(tmp_path, "w.bin")
    (tmp_path / "w.bin").write_bytes(np.float32([1.5]).tobytes())
    graph = GraphFile.read(path)
    assert graph.model is not None and uses_external_data(graph.model.graph.initializer[0])
    assert not graph.model.graph.initializer[0].raw_data
    assert GraphFile.read(tmp_path / "missing.onnx").model is None
