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
