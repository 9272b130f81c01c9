"""The export entry (``vit5_infer.workflows.export``): its option checks, refused before any work, and the
errors of a quantized export, in process (``tests/cli/test_cli.py`` keeps one run per error class through
the ``vit5`` command)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vit5_infer.errors import InputError
from vit5_infer.exporters.export import ExportError
from vit5_infer.exporters.quantization import CalibrationError, QuantizationError
from vit5_infer.exporters.targets import TargetError
from vit5_infer.load_options import LoadOptions
from vit5_infer.outputs import OutputError
from vit5_infer.workflows.export import (
    ExportOptions,
    PreprocessingOverrides,
    QuantizationOptions,
    check_export_options,
    export,
    parse_keep_float,
)


@pytest.mark.parametrize(
    "quantization, flag",
    [
        (QuantizationOptions(calibration=Path("CAL")), "--calibration"),
        (QuantizationOptions(seeded=True), "--calibrate-on-seeded-inputs"),
        (QuantizationOptions(count=8), "--calibration-count"),
        (QuantizationOptions(method="entropy"), "--calibration-method"),
        (QuantizationOptions(keep_float=parse_keep_float("none")), "--keep-float"),
        (QuantizationOptions(sensitivity=True), "--sensitivity"),
    ],
)
def test_quantization_settings_need_a_quantized_precision(quantization, flag):
    """A float export given a calibration setting would ignore it: an error naming the flag and --precision."""
    with pytest.raises(ExportError, match="only apply to quantized exports") as info:
        check_export_options(ExportOptions(quantization=quantization))
    assert flag in str(info.value) and "--precision int8" in str(info.value)
    check_export_options(ExportOptions(precision="int8", quantization=quantization))


def test_several_quantization_settings_are_named_together():
    with pytest.raises(ExportError, match="--calibration-count, --sensitivity only apply .* leave them out"):
        check_export_options(ExportOptions(quantization=QuantizationOptions(count=8, sensitivity=True)))


def test_io_dtype_is_refused_for_quantized_graphs():
    """Quantized graphs keep FP32 inputs and outputs: --io-dtype fp16 was silently dropped."""
    with pytest.raises(ExportError, match="--io-dtype fp16 does not apply to int8 graphs"):
        check_export_options(ExportOptions(precision="int8", io_dtype="fp16"))


@pytest.mark.parametrize("precision", ["int8", "fp8"])
def test_quantized_graphs_output_logits_only(precision):
    with pytest.raises(ExportError, match="quantized graphs output logits only"):
        check_export_options(ExportOptions(precision=precision, outputs=("pre_logits",)))
    check_export_options(ExportOptions(precision="fp32", outputs=("pre_logits",)))


def test_crop_ratio_is_checked_before_loading():
    with pytest.raises(InputError, match="--crop-ratio"):
        check_export_options(ExportOptions(preprocessing=PreprocessingOverrides(crop_ratio=1.5)))


def test_keep_float_text():
    assert parse_keep_float(None) is None
    assert parse_keep_float(" None ") == ()
    assert parse_keep_float("embed/, ,head/") == ("embed/", "head/")


def _digits(digits_dir) -> str:
    return str(digits_dir / "digits_attn.safetensors")


@pytest.mark.parametrize(
    "settings, error, fragments",
    [
        ({}, CalibrationError, ["needs calibration images", "--calibration DIR"]),
        ({"calibration": "EMPTY"}, CalibrationError, ["no image files"]),
        ({"precision": "fp8", "target": "cpu", "seeded": True}, QuantizationError, ["TensorRT only"]),
        (
            {"precision": "fp8", "target": "tensorrt=10.8", "opset": 18, "seeded": True},
            QuantizationError,
            ["fp8 needs opset 19", "leave --opset out"],
        ),
        ({"target": "mars", "seeded": True}, TargetError, ["unknown export target"]),
        ({"seeded": True, "count": 99_999_999_999}, InputError, ["--calibration-count 99999999999 needs about"]),
    ],
)
def test_quantized_export_errors_write_nothing(digits_dir, tmp_path, settings, error, fragments):
    (tmp_path / "empty").mkdir()
    settings = dict(settings)
    calibration = settings.pop("calibration", None)
    quantization = QuantizationOptions(
        calibration=tmp_path / "empty" if calibration == "EMPTY" else None,
        seeded=settings.pop("seeded", False),
        count=settings.pop("count", 128),
    )
    options = ExportOptions(**{"precision": "int8", **settings}, quantization=quantization)
    with pytest.raises(Exception) as info:
        export(_digits(digits_dir), tmp_path / "q.onnx", options)
    assert isinstance(info.value, error), repr(info.value)
    for fragment in fragments:
        assert fragment in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_io_dtype_needs_a_matching_float_precision(golden_dir, tmp_path):
    out = tmp_path / "bad.onnx"
    with pytest.raises(ExportError, match="io dtype"):
        export(str(golden_dir / "attn_cls_r4.safetensors"), out, ExportOptions(io_dtype="fp16"))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "outputs, fragment", [(("logits", "cls_token"), "no CLS token"), (("register_tokens",), "no registers")]
)
def test_outputs_the_network_lacks(golden_dir, tmp_path, outputs, fragment):
    with pytest.raises(OutputError, match=fragment):
        export(str(golden_dir / "hyena_gap.safetensors"), tmp_path / "x.onnx", ExportOptions(outputs=outputs))
    assert list(tmp_path.iterdir()) == []


def test_output_path_is_checked_before_loading(tmp_path):
    """A bad output fails before the source is read: the source here does not even exist."""
    with pytest.raises(InputError, match=".onnx"):
        export("missing.safetensors", tmp_path / "m.txt", ExportOptions())


def test_export_reports_progress_and_calibration_warnings(golden_dir, tmp_path):
    """The seeded-calibration warning reaches ``warn``; progress names the stages; the graph is int8."""
    heard, warned = [], []
    options = ExportOptions(
        precision="int8",
        validate=False,
        quantization=QuantizationOptions(seeded=True, count=4),
        load=LoadOptions(seed=3),
    )
    exported = export(
        str(golden_dir / "attn_cls_r4.safetensors"),
        tmp_path / "q.onnx",
        options,
        progress=heard.append,
        warn=warned.append,
    )
    assert exported.result.precision == "int8" and exported.result.path.is_file()
    assert exported.origin.kind == "checkpoint"
    assert heard[0].startswith("loading ") and any(h.startswith("loading calibration inputs") for h in heard)
    assert any(": inserting Q/DQ" in h for h in heard)
    assert warned and "seeded random inputs" in warned[0]


def test_export_model_hands_every_option_to_the_quantized_exporter(golden_dir, tmp_path, monkeypatch):
    """The options become one QuantizationSettings and one GraphForm: no field is dropped on the way."""
    from vit5_infer import load_model
    from vit5_infer.exporters import GraphForm, quantization
    from vit5_infer.exporters.quantization import QuantizationSettings
    from vit5_infer.workflows.export import export_model

    calls = []
    monkeypatch.setattr(quantization, "export_quantized", lambda *args, **kwargs: calls.append((args, kwargs)))
    options = ExportOptions(
        precision="fp8",
        target="tensorrt=10.15",
        opset=19,
        batch=2,
        layout="nhwc",
        lowering="scan",
        validate=False,
        external_data=True,
        quantization=QuantizationOptions(
            seeded=True, count=4, method="entropy", keep_float=("head/",), sensitivity=True
        ),
    )
    export_model(load_model(golden_dir / "attn_cls_r4.safetensors"), None, tmp_path / "q.onnx", options, warn=print)
    [(args, kwargs)] = calls
    assert args[2] == QuantizationSettings("fp8", method="entropy", keep_float=("head/",), sensitivity=True)
    assert args[3].seeded and len(args[3].calibration) == 4
    assert args[4] == GraphForm(
        target="tensorrt=10.15", opset=19, batch=2, layout="nhwc", lowering="scan", external_data=True, validate=False
    )
    assert not (tmp_path / "q.onnx").exists()
