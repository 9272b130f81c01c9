"""Quantized exports of the digits networks: validated, accurate on the labelled test images,
preprocessing and quantization recorded, nothing written on failure."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest

from vit5_infer import load_model
from vit5_infer.exporters import ExportError, GraphForm, read_metadata
from vit5_infer.exporters.quantization import (
    DEFAULT_KEEP_FLOAT,
    QuantizationError,
    QuantizationSettings,
    calibration_inputs,
    export_quantized,
    resolve_scheme,
)
from vit5_infer.exporters.quantization.sensitivity import run_logits
from vit5_infer.exporters.tensorrt_compat import check_tensorrt_compat
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
CASES = [
    ("attn", "int8", "cpu"),
    pytest.param("hyena", "int8", "cpu", marks=SLOW),
    pytest.param("attn", "int8", "tensorrt", marks=SLOW),
    pytest.param("hyena", "int8", "tensorrt", marks=SLOW),
    pytest.param("attn", "fp8", "tensorrt", marks=SLOW),
    pytest.param("hyena", "fp8", "tensorrt", marks=SLOW),
]


@pytest.mark.parametrize("name,precision,target", CASES)
def test_digits_accuracy_within_one_point(
    digits_dir, calibration, test_set, fp32_accuracy, tmp_path, name, precision, target
):
    out = tmp_path / "q.onnx"
    result = export_quantized(
        load_model(digits_dir / f"digits_{name}.safetensors"),
        out,
        QuantizationSettings(precision),
        calibration,
        GraphForm(target=target),
    )
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
    # TensorRT: the Attention node of each of the five full blocks (the sixth computes only the cls query)
    assert quant["quantized_attention_products"] == (0 if target == "cpu" or name != "attn" else 5)


def test_settings_keep_the_default_layers_in_float_unless_told():
    assert QuantizationSettings("int8").kept == DEFAULT_KEEP_FLOAT
    told = QuantizationSettings("int8", keep_float=["head/"])
    assert told.keep_float == told.kept == ("head/",)  # a list is frozen into a tuple: the value stays hashable
    assert hash(told) == hash(QuantizationSettings("int8", keep_float=("head/",)))
    assert QuantizationSettings("int8", keep_float=[]).kept == ()


def test_an_unmatched_keep_float_pattern_is_warned_of_at_the_caller(digits_dir, small_calibration, tmp_path):
    with pytest.warns(UserWarning, match="'no_such_layer' matches no quantizable layer") as caught:
        export_quantized(
            load_model(digits_dir / "digits_attn.safetensors"),
            tmp_path / "q.onnx",
            QuantizationSettings("int8", keep_float=["embed/", "no_such_layer"]),
            small_calibration,
            GraphForm(validate=False),
        )
    [warning] = [w for w in caught if "keep-float" in str(w.message)]
    assert warning.filename == __file__


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_failed_validation_writes_nothing(digits_dir, small_calibration, tmp_path, monkeypatch):
    monkeypatch.setitem(TOLERANCES, "int8", Tolerance(cosine=1.0, max_abs=None, top1=1.0))
    with pytest.raises(ExportError, match="nothing written") as info:
        export_quantized(
            load_model(digits_dir / "digits_attn.safetensors"),
            tmp_path / "q.onnx",
            QuantizationSettings("int8"),
            small_calibration,
        )
    assert "\n" not in str(info.value)
    assert _leftovers(tmp_path) == []


def test_seeded_calibration_is_recorded(digits_dir, tmp_path):
    with pytest.warns(UserWarning, match="unknown"):
        seeded = calibration_inputs(None, input_shape=(3, 32, 32), preprocessing=DIGITS_PRE, count=8, seeded=True)
    seeded = dataclasses.replace(seeded, held_out=seeded.held_out[:4])
    result = export_quantized(
        load_model(digits_dir / "digits_attn.safetensors"), tmp_path / "q.onnx", QuantizationSettings("int8"), seeded
    )
    assert result.validation.passed and "seeded" in result.validation.method
    assert read_metadata(tmp_path / "q.onnx")["quantization"]["calibration"]["source"] == "seeded"


def test_fp8_tensorrt_graph_validates_on_cpu(digits_dir, small_calibration, tmp_path):
    """FP8 Q/DQ in an FP16 graph runs on ONNX Runtime's CPU provider (emulated) and validates."""
    result = export_quantized(
        load_model(digits_dir / "digits_hyena.safetensors"),
        tmp_path / "q.onnx",
        QuantizationSettings("fp8"),
        small_calibration,
    )
    assert result.validation.passed and result.validation.comparison.cosine > 0.999
    assert result.metadata["quantization"]["elsewhere"] == "fp16"
    assert any("short_conv" in name for name in result.metadata["quantization"]["float_layers"])


@SLOW
def test_keep_float_and_sensitivity(digits_dir, calibration, tmp_path):
    model = load_model(digits_dir / "digits_attn.safetensors")
    everything = export_quantized(
        model,
        tmp_path / "all.onnx",
        QuantizationSettings("int8", keep_float=[]),
        calibration,
        GraphForm(validate=False),
    )
    assert everything.metadata["quantization"]["float_layers"] == []
    assert everything.metadata["quantization"]["quantized_layers"] == 26  # 6 blocks x 4 GEMMs + embed + head
    measured = export_quantized(
        model,
        tmp_path / "m.onnx",
        QuantizationSettings("int8", keep_float=[], sensitivity=True),
        calibration,
        GraphForm(validate=False),
    )
    report = measured.metadata["quantization"]["sensitivity"]
    assert len(report) == 26 and report == sorted(report, key=lambda r: -r["error"])


def test_nothing_left_to_quantize(digits_dir, small_calibration, tmp_path):
    model = load_model(digits_dir / "digits_attn.safetensors")
    with pytest.raises(ExportError, match="no layer left"):
        export_quantized(
            model, tmp_path / "none.onnx", QuantizationSettings("int8", keep_float=["/"]), small_calibration
        )
    assert _leftovers(tmp_path) == []


# Each TensorRT graph form and the parser releases it must parse on: the form a target names, and for the
# newest form (`tensorrt`) every encoded release that has its ops.
PARSER_PINS = {
    "tensorrt=10.8": ("10.8",),
    "tensorrt=10.14": ("10.14",),
    "tensorrt=10.15": ("10.15", "11.0"),
    "tensorrt": ("10.15", "11.0"),
}
TENSORRT_FORMS = [(precision, target) for precision in ("int8", "fp8") for target in PARSER_PINS]


def _assert_parses_at_its_pins(path: Path, target: str) -> None:
    graph = onnx.load(str(path))
    assert sum(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in graph.graph.node) > 0
    for version in PARSER_PINS[target]:
        report = check_tensorrt_compat(graph, version)
        assert report.compatible and not report.warnings, report.lines()


@pytest.mark.parametrize("name", ["attn", "hyena"])
@pytest.mark.parametrize("precision,target", TENSORRT_FORMS)
def test_digits_tensorrt_graphs_parse_at_every_pin(digits_dir, small_calibration, tmp_path, name, precision, target):
    """Both digits networks have near-dead weight channels: their FP16 scales once underflowed to 0."""
    result = export_quantized(
        load_model(digits_dir / f"digits_{name}.safetensors"),
        tmp_path / "q.onnx",
        QuantizationSettings(precision),
        small_calibration,
        GraphForm(target=target, validate=False),
    )
    assert result.tensorrt_check is not None and result.tensorrt_check.compatible
    assert read_metadata(tmp_path / "q.onnx")["target"] == target
    _assert_parses_at_its_pins(tmp_path / "q.onnx", target)


@SLOW
@pytest.mark.parametrize("name", ["attn_cls_r4", "hyena_gap", "hybrid_pool_film", "hybrid_compress_concat"])
@pytest.mark.parametrize("precision,target", TENSORRT_FORMS)
def test_golden_tensorrt_graphs_parse_at_every_pin(golden_dir, tmp_path, name, precision, target):
    model = load_model(golden_dir / f"{name}.safetensors")
    pre = Preprocessing(image_size=model.input_shape[-1])
    with pytest.warns(UserWarning, match="unknown"):
        seeded = calibration_inputs(None, input_shape=model.input_shape, preprocessing=pre, count=4, seeded=True)
    export_quantized(
        model,
        tmp_path / "q.onnx",
        QuantizationSettings(precision),
        dataclasses.replace(seeded, held_out=seeded.held_out[:2]),
        GraphForm(target=target, validate=False),
    )
    _assert_parses_at_its_pins(tmp_path / "q.onnx", target)


def test_quantized_tensorrt_graphs_before_10_14_are_opset_19_with_fp16_elsewhere(
    digits_dir, small_calibration, tmp_path
):
    """TensorRT 10.0-10.13's float form is opset 18; quantized it is opset 19 (FP16 and FP8 Q/DQ), so that a
    strongly typed engine runs the remainder in FP16.  FP8 Q/DQ runs there too, emulated on ORT CPU."""
    for precision in ("int8", "fp8"):
        scheme = resolve_scheme(precision, "tensorrt=10.8")
        assert scheme.opset == 19 and scheme.float_precision == "fp16"
        result = export_quantized(
            load_model(digits_dir / "digits_attn.safetensors"),
            tmp_path / f"{precision}.onnx",
            QuantizationSettings(precision),
            small_calibration,
            GraphForm(target="tensorrt=10.8"),
        )
        assert result.opset == 19 and result.validation.passed
        graph = onnx.load(str(tmp_path / f"{precision}.onnx"))
        softmax = next(n for n in graph.graph.node if n.op_type == "Softmax")  # MatMul-Softmax-MatMul, FP16
        assert any(
            v.name == softmax.output[0] and v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
            for v in onnx.shape_inference.infer_shapes(graph).graph.value_info
        )
    assert resolve_scheme("int8", "tensorrt=10.8", opset=18).float_precision == "fp32"  # asked for: FP32 remainder


def test_fp8_is_refused_for_an_explicit_opset_18_before_calibration(digits_dir, tmp_path):
    with pytest.raises(QuantizationError, match="tensorrt=10.8 graph is opset 18"):
        resolve_scheme("fp8", "tensorrt=10.8", opset=18)
    with pytest.raises(QuantizationError, match="opset 19"):
        export_quantized(
            load_model(digits_dir / "digits_attn.safetensors"),
            tmp_path / "q.onnx",
            QuantizationSettings("fp8"),
            None,
            GraphForm(target="tensorrt=10.8", opset=18),
        )  # never reached: the scheme comes first
    assert _leftovers(tmp_path) == []


def test_cpu_layout_is_not_for_tensorrt(digits_dir, small_calibration, tmp_path):
    """Asymmetric UINT8 activations: the check names the zero points and the re-export."""
    export_quantized(
        load_model(digits_dir / "digits_attn.safetensors"),
        tmp_path / "q.onnx",
        QuantizationSettings("int8"),
        small_calibration,
        GraphForm(target="cpu", validate=False),
    )
    report = check_tensorrt_compat(tmp_path / "q.onnx", "10.15")
    assert not report.compatible and {i.rule for i in report.errors} == {"qdq-zero-point-nonzero"}
    assert "--target tensorrt=10.15" in report.errors[0].fix


KILLED_EXPORT = """
import sys, time
from pathlib import Path
from vit5_infer import load_model
from vit5_infer.exporters.quantization import QuantizationSettings, export, seeded_calibration

def stall(*args, **kwargs):
    print("staged", flush=True)
    time.sleep(600)

export.validate_quantized = stall
model = load_model(sys.argv[1])
calibration = seeded_calibration(tuple(model.input_shape), count=4, held_out=2)
export.export_quantized(model, Path(sys.argv[2]), QuantizationSettings("int8"), calibration)
"""


def test_killed_quantized_export_staging_is_removed_by_the_next_export(digits_dir, tmp_path):
    """A quantized export killed (SIGKILL: no cleanup runs) while its graph is staged leaves a staging
    folder that the next export into that folder removes, like a killed float export's."""
    import subprocess
    import sys

    from vit5_infer.exporters import export_onnx
    from vit5_infer.exporters.export import STAGING_PREFIX

    weights = digits_dir / "digits_attn.safetensors"
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_EXPORT, str(weights), str(tmp_path / "q.onnx")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "staged"
    finally:
        child.kill()
        child.wait()
    left = list(tmp_path.glob(STAGING_PREFIX + "*"))
    assert len(left) == 1 and (left[0] / "q.onnx").is_file()
    assert not (tmp_path / "q.onnx").exists()

    export_onnx(load_model(weights), tmp_path / "f.onnx", validate=False)
    assert list(tmp_path.glob(STAGING_PREFIX + "*")) == []
    assert (tmp_path / "f.onnx").is_file()


def test_a_keep_float_pattern_naming_only_attention_products_is_not_warned_of(digits_dir, small_calibration, tmp_path):
    """At a TensorRT target the attention products are quantizable layers too: a pattern that keeps one of them in
    float keeps something, and says nothing; at the cpu target, which quantizes no product, it keeps nothing."""
    import warnings

    model = load_model(digits_dir / "digits_attn.safetensors")
    settings = QuantizationSettings("int8", keep_float=["embed/", "blocks.0/sequence_mixer/Attention"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = export_quantized(
            model, tmp_path / "t.onnx", settings, small_calibration, GraphForm(target="tensorrt", validate=False)
        )
    assert not [w for w in caught if "keep-float" in str(w.message)]
    assert result.metadata["quantization"]["quantized_attention_products"] == 4
    with pytest.warns(UserWarning, match="'blocks.0/sequence_mixer/Attention' matches no quantizable layer"):
        export_quantized(model, tmp_path / "c.onnx", settings, small_calibration, GraphForm(validate=False))
