"""vit5_infer.files: strict JSON (written and read), atomic writes, a full disk, output paths."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import stat
from pathlib import Path

import pytest

from vit5_infer.errors import DiskWriteError, InputError
from vit5_infer.files import (
    JSON_MAX_DEPTH,
    check_output_dir,
    check_output_path,
    disk_errors,
    json_text,
    parse_json,
    read_json,
    write_json_atomic,
)


def test_json_text_is_strict_json_with_null_for_non_finite_numbers():
    document = {"error": math.inf, "rows": [(1.0, math.nan), {"low": -math.inf}], "ok": 0.5}
    text = json_text(document)
    assert json.loads(text) == {"error": None, "rows": [[1.0, None], {"low": None}], "ok": 0.5}
    assert "NaN" not in text and "Infinity" not in text and text.endswith("\n")


def test_write_json_atomic_leaves_nothing_when_the_document_cannot_be_written(tmp_path):
    target = tmp_path / "report.json"
    write_json_atomic(target, {"a": 1})
    with pytest.raises(TypeError):
        write_json_atomic(target, {"a": object()})  # not JSON: the old file stays whole
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


# ---- the strict, bounded JSON reader -------------------------------------------------------------


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("[NaN]", "NaN is not a JSON number"),
        ('{"a": Infinity}', "Infinity is not a JSON number"),
        ("[-Infinity]", "-Infinity is not a JSON number"),
        ("[1e999]", "out of the range"),
        ('{"a": 1, "a": 2}', "duplicate key 'a'"),
        ('{"outer": {"b": 1, "b": 1}}', "duplicate key 'b'"),
        ("[" * 100_000 + "]" * 100_000, "nested deeper than"),
        ('{"a":' * 50_000 + "1" + "}" * 50_000, "nested deeper than"),
        ("1" + "0" * 5000, "not valid JSON"),
        ("[1, 2", "not valid JSON (line 1"),
        ("", "not valid JSON"),
        (b"\xff\xfe[]", "not UTF-8"),
    ],
)
def test_parse_json_refuses_what_is_not_strict_json_in_one_line(text, fragment):
    with pytest.raises(InputError, match=fragment.replace("[", r"\[").replace("(", r"\(")) as info:
        parse_json(text, "doc")
    assert str(info.value).startswith("doc: ") and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "text, expect, kind",
    [
        ('"a string"', dict, "a string"),
        ("[1]", dict, "a list"),
        ("3", dict, "a number"),
        ("null", dict, "null"),
        ('{"a": 1}', list, "an object"),
        ("true", list, "a boolean"),
    ],
)
def test_parse_json_refuses_a_document_of_the_wrong_type(text, expect, kind):
    with pytest.raises(InputError, match=f"expected a JSON .*, got {kind}"):
        parse_json(text, "doc", expect)


def test_parse_json_takes_a_byte_order_mark_brackets_in_strings_and_the_depth_limit():
    assert parse_json('\ufeff{"a": [1, 2.5]}', "doc", dict) == {"a": [1, 2.5]}
    assert parse_json(b'\xef\xbb\xbf["x"]', "doc", list) == ["x"]
    assert parse_json('["[[[[\\"{{{{"]', "doc") == ['[[[["{{{{']  # brackets inside strings are not nesting
    deepest = "[" * JSON_MAX_DEPTH + "]" * JSON_MAX_DEPTH
    assert parse_json(deepest, "doc") is not None


def test_parse_json_raises_the_callers_error_class():
    class LayerError(Exception):
        pass

    with pytest.raises(LayerError, match="doc: not valid JSON"):
        parse_json("{", "doc", error=LayerError)


def test_read_json_names_the_file_for_a_missing_or_unreadable_one(tmp_path):
    with pytest.raises(InputError, match="missing.json: cannot read it"):
        read_json(tmp_path / "missing.json")
    with pytest.raises(InputError, match="cannot read it"):
        read_json(tmp_path)  # a folder
    (tmp_path / "ok.json").write_text('{"a": 1}')
    assert read_json(tmp_path / "ok.json", expect=dict) == {"a": 1}


# ---- a full disk is one line --------------------------------------------------------------------
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS])
def test_a_full_or_read_only_disk_while_writing_is_an_output_error(tmp_path, monkeypatch, code):
    target = tmp_path / "report.json"
    write_json_atomic(target, {"old": 1})

    def full(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(DiskWriteError, match=f"cannot write {target}") as info:
        write_json_atomic(target, {"new": 1})
    assert "\n" not in str(info.value)
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"old": 1}  # the old file stays whole, nothing is left beside it
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_disk_errors_lets_other_os_errors_through(tmp_path):
    with pytest.raises(FileNotFoundError):
        with disk_errors(tmp_path / "x"):
            raise FileNotFoundError(errno.ENOENT, "gone")


# ---- outputs are never inside an input folder ----------------------------------------------------
@pytest.mark.parametrize("where", ["images/cat.png", "images/sub/chart.png", "images/new/chart.png"])
def test_an_output_inside_an_input_folder_is_refused(tmp_path, where, monkeypatch):
    (tmp_path / "images" / "sub").mkdir(parents=True)
    (tmp_path / "images" / "cat.png").write_bytes(b"an image")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="inside images, an input folder"):
        check_output_path(where, "--plot", (None, "images"), (".png",))
    with pytest.raises(InputError, match="an input folder"):  # through a symlink to the folder, too
        os.symlink(tmp_path / "images", tmp_path / "link")
        check_output_path(where.replace("images", "link"), "--plot", (tmp_path / "images",), (".png",))
    assert (tmp_path / "images" / "cat.png").read_bytes() == b"an image"


def test_an_output_beside_an_input_folder_is_fine(tmp_path):
    (tmp_path / "images").mkdir()
    assert check_output_path(tmp_path / "images-chart.png", "--plot", (tmp_path / "images",), (".png",))


def test_check_output_dir_refuses_files_and_overlap_with_inputs(tmp_path):
    images = tmp_path / "images"
    (images / "a").mkdir(parents=True)
    (tmp_path / "file").write_text("x")
    assert check_output_dir(tmp_path / "new" / "out", "-o", (images,)) == tmp_path / "new" / "out"
    for output, fragment in [
        (tmp_path / "file", "is a file"),
        (tmp_path / "file" / "out", "is a file, not a folder"),
        (images / "a" / "out", "overlaps the input"),
        (images, "overlaps the input"),
        (tmp_path, "overlaps the input"),
        ("", "not a folder name"),
    ]:
        with pytest.raises(InputError, match=fragment):
            check_output_dir(output, "-o", (images,))


@contextlib.contextmanager
def _umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    """Reports (bench --json/--csv/--plot, debug --json) get the mode open() gives under the umask, not
    mkstemp's private 0600."""
    from vit5_infer.files import write_bytes_atomic, write_text_atomic

    with _umask(umask):
        write_json_atomic(tmp_path / "r.json", {"a": 1})
        write_text_atomic(tmp_path / "r.csv", "a\n")
        write_bytes_atomic(tmp_path / "r.png", b"png")
    for name in ("r.json", "r.csv", "r.png"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


def test_the_bench_json_report_follows_the_umask(tmp_path):
    """vit5 bench --json writes through benchmark.report.write_json, which uses the shared writer."""
    from vit5_infer.workflows.benchmark.report import write_json

    with _umask(0o022):
        write_json({"results": []}, tmp_path / "bench.json")
    assert stat.S_IMODE((tmp_path / "bench.json").stat().st_mode) == 0o644


def test_external_data_locations_are_kept_inside_the_graph_folder(tmp_path):
    from vit5_infer.errors import InputError
    from vit5_infer.files import external_data_paths

    from onnx_graphs import graph_with_external_data

    def graph(location: str):
        return graph_with_external_data(tmp_path / "m", location)

    assert external_data_paths(graph("w.bin")) == [tmp_path / "m" / "w.bin"]
    assert external_data_paths(graph("sub/../w.bin")) == [tmp_path / "m" / "sub" / ".." / "w.bin"]
    for bad in ("../w.bin", "/etc/passwd", str(tmp_path / "m" / "w.bin"), "sub/../../w.bin", ""):
        with pytest.raises(InputError, match="outside the graph's folder"):
            external_data_paths(graph(bad))


def test_external_data_inside_a_subgraph_is_checked_too(tmp_path):
    """An If branch's initializer with a location outside the graph's folder is refused like a top-level one."""
    import onnx
    from onnx import TensorProto, helper

    from vit5_infer.files import external_data_paths

    from onnx_graphs import external_tensor

    tensor = external_tensor("w", "../escape.bin")
    branch = helper.make_graph(
        [helper.make_node("Identity", ["w"], ["y"])],
        "branch",
        [],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        [tensor],
    )
    node = helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=branch)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    (tmp_path / "m").mkdir()
    path = tmp_path / "m" / "g.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(InputError, match="outside the graph's folder"):
        external_data_paths(path)


def test_external_data_paths_include_those_of_local_functions(tmp_path):
    """A model-local function's Constant stored in another file is a file the graph needs (Triton's repository
    copies it, the fingerprint hashes it) and is checked like the graph's own."""
    import onnx
    from onnx import helper

    from vit5_infer.files import external_data_paths

    from onnx_graphs import external_tensor

    def model_with_function_constant(location):
        value = external_tensor("c", location, 4)
        function = helper.make_function(
            "local",
            "AddC",
            ["x"],
            ["y"],
            [helper.make_node("Constant", [], ["c"], value=value), helper.make_node("Add", ["x", "c"], ["y"])],
            [helper.make_opsetid("", 18)],
        )
        graph = helper.make_graph([helper.make_node("AddC", ["x"], ["y"], domain="local")], "g", [], [])
        return helper.make_model(graph, functions=[function])

    path = tmp_path / "f.onnx"
    onnx.save(model_with_function_constant("f.data"), str(path))
    assert external_data_paths(path) == [tmp_path / "f.data"]
    onnx.save(model_with_function_constant("../outside.data"), str(path))
    with pytest.raises(InputError, match="lies outside the graph's folder"):
        external_data_paths(path)
