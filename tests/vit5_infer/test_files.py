"""vit5_infer.files: strict JSON and atomic writes."""

from __future__ import annotations

import json
import math

import pytest

from vit5_infer.errors import InputError
from vit5_infer.files import check_output_dir, json_text, write_json_atomic


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


def test_check_output_dir_refuses_files_and_overlap_with_inputs(tmp_path):
    images = tmp_path / "images"
    (images / "a").mkdir(parents=True)
    (tmp_path / "file").write_text("x")
    assert check_output_dir(tmp_path / "new" / "out", "-o", (images,)) == tmp_path / "new" / "out"
    for output, fragment in [(tmp_path / "file", "is a file"), (tmp_path / "file" / "out", "is a file, not a folder"),
                             (images / "a" / "out", "overlaps the input"), (images, "overlaps the input"),
                             (tmp_path, "overlaps the input"), ("", "not a folder name")]:
        with pytest.raises(InputError, match=fragment):
            check_output_dir(output, "-o", (images,))


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    """Reports (bench --json/--csv/--plot, debug --json) were -rw------- (mkstemp's mode) whatever the umask."""
    import os
    import stat

    from vit5_infer.files import write_bytes_atomic, write_text_atomic

    old = os.umask(umask)
    try:
        write_json_atomic(tmp_path / "r.json", {"a": 1})
        write_text_atomic(tmp_path / "r.csv", "a\n")
        write_bytes_atomic(tmp_path / "r.png", b"png")
    finally:
        os.umask(old)
    for name in ("r.json", "r.csv", "r.png"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


def test_the_bench_json_report_follows_the_umask(tmp_path):
    """vit5 bench --json writes through benchmark.report.write_json, which uses the shared writer."""
    import os
    import stat

    from vit5_infer.benchmark.report import write_json

    old = os.umask(0o022)
    try:
        write_json({"results": []}, tmp_path / "bench.json")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "bench.json").stat().st_mode) == 0o644


def test_external_data_locations_are_kept_inside_the_graph_folder(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from vit5_infer.errors import InputError
    from vit5_infer.files import external_data_paths

    def graph(location: str):
        tensor = helper.make_tensor("w", TensorProto.FLOAT, [1], [0.0])
        tensor.ClearField("float_data")
        tensor.data_location = TensorProto.EXTERNAL
        tensor.external_data.add(key="location", value=location)
        node = helper.make_node("Add", ["x", "w"], ["y"])
        g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])], [tensor])
        path = tmp_path / "m" / "g.onnx"
        path.parent.mkdir(exist_ok=True)
        onnx.save(helper.make_model(g), str(path))
        return path

    assert external_data_paths(graph("w.bin")) == [tmp_path / "m" / "w.bin"]
    assert external_data_paths(graph("sub/../w.bin")) == [tmp_path / "m" / "sub" / ".." / "w.bin"]
    for bad in ("../w.bin", "/etc/passwd", str(tmp_path / "m" / "w.bin"), "sub/../../w.bin", ""):
        with pytest.raises(InputError, match="outside the graph's folder"):
            external_data_paths(graph(bad))
