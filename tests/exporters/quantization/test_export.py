"""Quantized exports of the digits networks: validated, accurate on the labelled test images,
preprocessing and quantization recorded, nothing written on failure."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest

from vit5_infer import load_model
from vit5_infer.exporters import ExportError, read_metadata
from vit5_infer.exporters.quantization import CalibrationError, calibration_inputs, export_quantized
from vit5_infer.exporters.quantization.sensitivity import run_logits
from vit5_infer.metrics import TOLERANCES, Tolerance
from vit5_infer.preprocessing import Preprocessing, load_image

DIGITS_PRE = Preprocessing(image_size=32, mean=(0.5,) * 3, std=(0.25,) * 3)


@pytest.fixture(scope="module")
def calibration(digits_dir):
    return calibration_inputs(digits_dir / "calibration", input_shape=(3, 32, 32), preprocessing=DIGITS_PRE, count=32)


@pytest.fixture(scope="module")
def small_calibration(calibration):
    """For tests of behaviour rather than accuracy: PyTorch validation of the digits nets is slow."""
    return dataclasses.replace(calibration, calibration=calibration.calibration[:8], held_out=calibration.held_out[:4])


@pytest.fixture(scope="module")
def test_set(digits_dir):
    files = sorted((digits_dir / "test").rglob("*.png"))
    return np.stack([load_image(f, DIGITS_PRE) for f in files]), np.array([int(f.parent.name) for f in files])


def _accuracy(model: onnx.ModelProto, test_set) -> float:
    images, labels = test_set
    return float((run_logits(model, images).argmax(-1) == labels).mean())


@pytest.fixture(scope="module")
def fp32_accuracy(digits_dir, test_set):
    """name -> test accuracy of the FP32 graph, computed on first use."""
    from vit5_infer.exporters import build_graph

    cache: dict = {}

    def accuracy(name: str) -> float:
        if name not in cache:
            cache[name] = _accuracy(build_graph(load_model(digits_dir / f"digits_{name}.safetensors"))[0], test_set)
        return cache[name]

    return accuracy


SLOW = pytest.mark.slow
CASES = [("attn", "int8", "cpu"), pytest.param("hyena", "int8", "cpu", marks=SLOW),
         pytest.param("attn", "int8", "tensorrt", marks=SLOW), pytest.param("hyena", "int8", "tensorrt", marks=SLOW),
         pytest.param("attn", "fp8", "tensorrt", marks=SLOW), pytest.param("hyena", "fp8", "tensorrt", marks=SLOW)]


@pytest.mark.parametrize("name,precision,target", CASES)
def test_digits_accuracy_within_one_point(digits_dir, calibration, test_set, fp32_accuracy, tmp_path,
                                          name, precision, target):
    out = tmp_path / "q.onnx"
    result = export_quantized(load_model(digits_dir / f"digits_{name}.safetensors"), out, precision=precision,
                              target=target, calibration=calibration)
    assert result.validation.passed and f"on {len(calibration.held_out)} held-out" in result.validation.method
    accuracy = _accuracy(onnx.load(str(out)), test_set)
    assert accuracy >= fp32_accuracy(name) - 0.01, (accuracy, fp32_accuracy(name))
    meta = read_metadata(out)
    assert meta["precision"] == precision
    assert meta["preprocessing"]["mean"] == [0.5] * 3 and meta["preprocessing"]["std"] == [0.25] * 3
    quant = meta["quantization"]
    assert quant["target"] == ("ort" if target == "cpu" else "tensorrt")
    assert quant["calibration"]["calibration_inputs"] == 32 and quant["calibration"]["method"] == "max"
    assert "embed/patch_embed" in quant["float_layers"] and quant["quantized_layers"] > 0


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_failed_validation_writes_nothing(digits_dir, small_calibration, tmp_path, monkeypatch):
    monkeypatch.setitem(TOLERANCES, "int8", Tolerance(cosine=1.0, max_abs=None, top1=1.0))
    with pytest.raises(ExportError, match="nothing written") as info:
        export_quantized(load_model(digits_dir / "digits_attn.safetensors"), tmp_path / "q.onnx", precision="int8",
                         calibration=small_calibration)
    assert "\n" not in str(info.value)
    assert _leftovers(tmp_path) == []


def test_seeded_calibration_is_recorded(digits_dir, tmp_path):
    with pytest.warns(UserWarning, match="unknown"):
        seeded = calibration_inputs(None, input_shape=(3, 32, 32), preprocessing=DIGITS_PRE, count=8, seeded=True)
    seeded = dataclasses.replace(seeded, held_out=seeded.held_out[:4])
    result = export_quantized(load_model(digits_dir / "digits_attn.safetensors"), tmp_path / "q.onnx",
                              precision="int8", calibration=seeded)
    assert result.validation.passed and "seeded" in result.validation.method
    assert read_metadata(tmp_path / "q.onnx")["quantization"]["calibration"]["source"] == "seeded"


def test_fp8_tensorrt_graph_validates_on_cpu(digits_dir, small_calibration, tmp_path):
    """FP8 Q/DQ in an FP16 graph runs on ONNX Runtime's CPU provider (emulated) and validates."""
    result = export_quantized(load_model(digits_dir / "digits_hyena.safetensors"), tmp_path / "q.onnx",
                              precision="fp8", calibration=small_calibration)
    assert result.validation.passed and result.validation.comparison.cosine > 0.999
    assert result.metadata["quantization"]["elsewhere"] == "fp16"
    assert any("short_conv" in name for name in result.metadata["quantization"]["float_layers"])


@SLOW
def test_keep_float_and_sensitivity(digits_dir, calibration, tmp_path):
    model = load_model(digits_dir / "digits_attn.safetensors")
    everything = export_quantized(model, tmp_path / "all.onnx", precision="int8", calibration=calibration,
                                  keep_float=[], validate=False)
    assert everything.metadata["quantization"]["float_layers"] == []
    assert everything.metadata["quantization"]["quantized_layers"] == 26  # 6 blocks x 4 GEMMs + embed + head
    measured = export_quantized(model, tmp_path / "m.onnx", precision="int8", calibration=calibration,
                                keep_float=[], sensitivity=True, validate=False)
    report = measured.metadata["quantization"]["sensitivity"]
    assert len(report) == 26 and report == sorted(report, key=lambda r: -r["error"])



def test_nothing_left_to_quantize(digits_dir, small_calibration, tmp_path):
    model = load_model(digits_dir / "digits_attn.safetensors")
    with pytest.raises(ExportError, match="no layer left"):
        export_quantized(model, tmp_path / "none.onnx", precision="int8", calibration=small_calibration,
                         keep_float=["/"])
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("target", ["tensorrt=10.8", "tensorrt=10.14", "tensorrt"])
def test_tensorrt_graphs_pass_the_parser_check(digits_dir, small_calibration, tmp_path, target):
    result = export_quantized(load_model(digits_dir / "digits_attn.safetensors"), tmp_path / "q.onnx",
                              precision="int8", target=target, calibration=small_calibration, validate=False)
    assert result.tensorrt_check is not None and result.tensorrt_check.compatible
    assert read_metadata(tmp_path / "q.onnx")["target"] == target
