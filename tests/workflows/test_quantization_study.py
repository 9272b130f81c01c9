"""The quantization studies (``vit5_infer.workflows.quantization_study``) on the digits networks, with a few
calibration images so that each export takes seconds."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from vit5_infer.errors import BenchError
from vit5_infer.exporters.quantization import QuantizationError, quantizable_nodes
from vit5_infer.workflows import export as export_workflow
from vit5_infer.workflows import quantization_study
from vit5_infer.workflows.export import ExportOptions, PreprocessingOverrides, QuantizationOptions
from vit5_infer.workflows.quantization_study import (
    export_pair,
    layer_sensitivity_study,
    quantized_accuracy,
)

DIGITS_PRE = PreprocessingOverrides(mean=(0.5,) * 3, std=(0.25,) * 3)


def _int8(digits_dir: Path, method: str = "max", count: int = 8) -> ExportOptions:
    return ExportOptions(
        precision="int8",
        target="cpu",
        preprocessing=DIGITS_PRE,
        quantization=QuantizationOptions(calibration=digits_dir / "calibration", count=count, method=method),
    )


def _op_types(path: Path) -> set:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


def test_a_pair_exports_both_graphs_from_one_calibration_load(digits_dir, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("export_model loaded the calibration again")

    # the pair hands its calibration to export_model: a second load would be this one
    monkeypatch.setattr(export_workflow, "load_calibration", refuse)
    pair = export_pair(digits_dir / "digits_hyena.safetensors", tmp_path, _int8(digits_dir), "hyena")
    assert pair.float_graph == tmp_path / "hyena-fp32.onnx"
    assert pair.quantized_graph == tmp_path / "hyena-int8.onnx"
    assert "QuantizeLinear" not in _op_types(pair.float_graph)
    assert "QuantizeLinear" in _op_types(pair.quantized_graph)
    assert pair.input_shape == (3, 32, 32)
    assert len(pair.calibration.held_out) > 0
    assert pair.result.validation.passed
    assert 0.999 < pair.held_out_cosine <= 1.0 + 1e-6


def test_outputs_under_a_file_are_refused_before_the_model_loads(digits_dir, tmp_path, monkeypatch):
    import vit5_infer.loading
    from vit5_infer.errors import InputError

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the outputs were checked")

    monkeypatch.setattr(vit5_infer.loading, "load_source", refuse)
    occupied = tmp_path / "file"
    occupied.write_text("")
    source = digits_dir / "digits_hyena.safetensors"
    with pytest.raises(InputError):
        export_pair(source, occupied, _int8(digits_dir), "hyena")
    with pytest.raises(InputError):
        quantized_accuracy(source, digits_dir / "test", [_int8(digits_dir)], occupied)


def test_a_pair_needs_a_quantized_precision(digits_dir, tmp_path):
    with pytest.raises(BenchError, match="quantized precision"):
        export_pair(digits_dir / "digits_hyena.safetensors", tmp_path, ExportOptions(), "hyena")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def labelled(digits_dir, tmp_path_factory) -> Path:
    """Three test images of each digit, in class folders."""
    folder = tmp_path_factory.mktemp("labelled")
    for digit in sorted((digits_dir / "test").iterdir()):
        (folder / digit.name).mkdir()
        for image in sorted(digit.glob("*.png"))[:3]:
            shutil.copy(image, folder / digit.name / image.name)
    return folder


def test_accuracy_of_the_float_graph_and_of_each_variant(digits_dir, labelled, tmp_path, monkeypatch):
    loads = []
    real = quantization_study.load_calibration

    def counted(*args, **kwargs):
        loads.append(args[1].quantization.method)
        return real(*args, **kwargs)

    monkeypatch.setattr(quantization_study, "load_calibration", counted)
    source = digits_dir / "digits_attn.safetensors"
    variants = [_int8(digits_dir, "max"), _int8(digits_dir, "percentile")]
    study = quantized_accuracy(source, labelled, variants, tmp_path)

    assert len(loads) == 1  # the two methods calibrate on the same images
    assert study.images == 30
    assert study.calibration["calibration_inputs"] == 8
    assert [row.options.quantization.method for row in study.rows] == ["max", "percentile"]
    # the float graph's accuracy is PyTorch's on the same images
    import torch

    from vit5_infer.loading import load_model
    from vit5_infer.preprocessing import load_images
    from vit5_infer.workflows.labelled_images import LabelledImages

    data = LabelledImages.find(labelled)
    model = load_model(source)
    x = load_images(data.files, DIGITS_PRE.resolve(32), len(data.files))
    with torch.no_grad():
        expected = float((model(torch.from_numpy(x)).numpy().argmax(-1) == data.labels).mean())
    assert study.float_accuracy == pytest.approx(expected)
    for row in study.rows:
        assert abs(row.accuracy - study.float_accuracy) <= 0.1
        assert row.result.path.is_file()


def test_accuracy_needs_a_labelled_folder_and_quantized_variants(digits_dir, labelled, tmp_path):
    source = digits_dir / "digits_attn.safetensors"
    with pytest.raises(BenchError, match="labelled folder"):
        quantized_accuracy(source, labelled / "0", [_int8(digits_dir)], tmp_path)
    with pytest.raises(BenchError, match="quantized"):
        quantized_accuracy(source, labelled, [ExportOptions()], tmp_path)
    with pytest.raises(BenchError, match="at least one"):
        quantized_accuracy(source, labelled, [], tmp_path)


def test_sensitivity_reports_every_layer_of_each_scheme(digits_dir):
    source = digits_dir / "digits_hyena.safetensors"
    schemes = (("int8", "cpu"), ("fp8", "tensorrt"))
    reports = layer_sensitivity_study(source, digits_dir / "calibration", 8, DIGITS_PRE, schemes)
    assert list(reports) == list(schemes)

    from vit5_infer.exporters import build_graph
    from vit5_infer.loading import load_model

    layers = {node.name for node in quantizable_nodes(build_graph(load_model(source))[0])}
    for report in reports.values():
        assert {r.node for r in report} == layers
        errors = [r.error for r in report]
        assert errors == sorted(errors, reverse=True)
        assert all(e >= 0 for e in errors) and errors[0] > 0
    # FP8's three mantissa bits move the logits further than INT8's per-channel scales
    assert np.median([r.error for r in reports["fp8", "tensorrt"]]) > np.median(
        [r.error for r in reports["int8", "cpu"]]
    )


def test_sensitivity_refuses_a_scheme_before_loading(digits_dir, tmp_path):
    with pytest.raises(QuantizationError):
        layer_sensitivity_study(
            tmp_path / "missing.safetensors", digits_dir / "calibration", 8, DIGITS_PRE, [("fp8", "cpu")]
        )
    with pytest.raises(BenchError, match="at least one"):
        layer_sensitivity_study(digits_dir / "digits_hyena.safetensors", digits_dir / "calibration", 8, DIGITS_PRE, [])


def test_alternating_latencies_time_every_graph_on_the_same_rounds(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from vit5_infer.errors import BenchError
    from vit5_infer.workflows.quantization_study import alternating_latencies

    graph = helper.make_graph(
        [helper.make_node("Relu", ["pixel_values"], ["logits"])],
        "g",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["b", 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", 3])],
    )
    paths = {}
    for name in ("a", "b"):
        paths[name] = tmp_path / f"{name}.onnx"
        onnx.save(
            helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), str(paths[name])
        )
    times = alternating_latencies(paths, (3,), batch=2, rounds=4, threads=1)
    assert set(times) == {"a", "b"} and all(len(v) == 4 and min(v) > 0 for v in times.values())
    with pytest.raises(BenchError, match="rounds and batch must be >= 1"):
        alternating_latencies(paths, (3,), batch=2, rounds=0)
