"""exporters.targets: the runtime an export is for, its spellings and the graph form it picks."""

from __future__ import annotations

import pytest

from vit5_infer.exporters.targets import ExportTarget, TargetError


@pytest.mark.parametrize(
    "text, expected",
    [
        (None, "ort"),
        ("ort", "ort"),
        ("CPU", "ort"),
        ("onnxruntime", "ort"),
        ("tensorrt", "tensorrt"),
        ("trt", "tensorrt"),
        ("tensorrt=10.8", "tensorrt=10.8"),
        ("trt-10.8", "tensorrt=10.8"),
        ("tensorrt10.8.0", "tensorrt=10.8"),
        ("tensorrt=11", "tensorrt=11.0"),
        ("tensorrt=10.14.1.48.post1", "tensorrt=10.14"),  # tensorrt.__version__ of a pip post release
    ],
)
def test_spellings(text, expected):
    assert str(ExportTarget.parse(text)) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("mars", "unknown export target"),
        ("tensorrt=10.x", "unknown export target"),
        ("tensorrt=9.3", "not supported"),
        ("tensorrt=12.0", "not supported"),
    ],
)
def test_bad_targets_are_one_line_errors(text, message):
    with pytest.raises(TargetError, match=message) as info:
        ExportTarget.parse(text)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "text, opset, attention, rms_norm",
    [
        ("ort", 23, True, True),
        ("tensorrt=10.8", 18, False, False),
        ("tensorrt=10.14", 23, True, False),
        ("tensorrt=10.15", 23, True, True),
        ("tensorrt", 23, True, True),
    ],
)
def test_each_target_picks_the_form_its_parser_takes(text, opset, attention, rms_norm):
    target = ExportTarget.parse(text)
    assert target.default_opset() == opset
    assert target.fused_attention(opset) is attention and target.fused_rms_norm(opset) is rms_norm
    assert target.allows_opset(23) is (not target.is_tensorrt or text != "tensorrt=10.8")
