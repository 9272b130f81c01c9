"""vit5_infer.files: strict JSON (written and read), atomic writes, a full disk, output paths."""

from __future__ import annotations

import json
import math

import pytest

from vit5_infer.files import (
    json_text,
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
