"""ONNX Runtime runners on the golden exports: FP32 matches upstream logits, the FP16 build graph stays close."""

from __future__ import annotations

import numpy as np
import pytest

from vit5_infer.engines.cuda_device import has_cuda_driver
from vit5_infer.engines.errors import BackendError, BackendUnavailableError
from vit5_infer.engines.ort_runner import OrtRunner
from vit5_infer.errors import InputError, Vit5Error
from vit5_infer.exporters.precision import graph_at_precision
from vit5_infer.metrics import compare_logits

from golden import GOLDEN_CASES, load_golden_io
from golden_exports import export_golden, golden_model
from onnx_graphs import graph_with_external_data

pytest.importorskip("vit5_infer.exporters", reason="the ONNX exporter is not in this checkout")


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("golden_onnx")
    return {name: export_golden(name, folder) for name in GOLDEN_CASES}


@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_ort_cpu_matches_upstream_fp32(exports, name, capfd):
    pixel_values, upstream = load_golden_io(name)
    with OrtRunner(exports[name], provider="cpu", threads=1) as runner:
        logits = runner.infer(pixel_values)
    assert logits.dtype == np.float32
    assert logits.shape == upstream.shape
    np.testing.assert_allclose(logits, upstream, rtol=0, atol=1e-4)
    # onnxruntime-gpu without a GPU: a CPU session must stay silent (no CUDA provider warnings).
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_fp16_build_graph_on_ort_cpu(exports, name, tmp_path):
    """The graph `vit5 build-engine --fp16` gives TensorRT, run on ORT CPU: cosine >= 0.999 vs FP32."""
    pixel_values, upstream = load_golden_io(name)
    fp16_path, precision, _ = graph_at_precision(exports[name], "fp16", tmp_path)
    assert precision == "fp16" and fp16_path != exports[name]
    with OrtRunner(exports[name], threads=1) as runner:
        fp32_logits = runner.infer(pixel_values)
    with OrtRunner(fp16_path, threads=1) as runner:
        fp16_logits = runner.infer(pixel_values)
    assert np.isfinite(fp16_logits).all()
    assert compare_logits(fp32_logits, fp16_logits).cosine >= 0.999
    assert compare_logits(upstream, fp16_logits).cosine >= 0.999


def test_graph_options_and_describe(exports, tmp_path):
    name = GOLDEN_CASES[0]
    pixel_values, upstream = load_golden_io(name)
    cache = tmp_path / "optimized.onnx"
    with OrtRunner(exports[name], graph_optimization="basic", optimized_model_cache=cache) as runner:
        np.testing.assert_allclose(runner.infer(pixel_values[:1]), upstream[:1], rtol=0, atol=1e-4)
        info = runner.describe()
    assert info["backend"] == "ort" and info["providers"] == ["CPUExecutionProvider"]
    assert cache.is_file()


def test_bad_input_is_an_input_error(exports):
    with OrtRunner(exports[GOLDEN_CASES[0]]) as runner:
        with pytest.raises(InputError):
            runner.infer(np.zeros((3, 8, 8), np.float32))


def test_missing_and_wrong_files(tmp_path):
    with pytest.raises(BackendError, match="ONNX file not found"):
        OrtRunner(tmp_path / "absent.onnx")
    (tmp_path / "model.engine").write_bytes(b"x")
    with pytest.raises(BackendError, match="expected an ONNX file"):
        OrtRunner(tmp_path / "model.engine")
    (tmp_path / "broken.onnx").write_bytes(b"definitely not protobuf")
    with pytest.raises(BackendError, match="onnxruntime cannot load") as info:
        OrtRunner(tmp_path / "broken.onnx").load()
    assert "\n" not in str(info.value)


def test_unknown_options(exports):
    with pytest.raises(BackendError, match="unknown onnxruntime provider"):
        OrtRunner(exports[GOLDEN_CASES[0]], provider="rocm")
    with pytest.raises(BackendError, match="unknown graph optimization"):
        OrtRunner(exports[GOLDEN_CASES[0]], graph_optimization="max")


@pytest.mark.skipif(has_cuda_driver(), reason="this machine has a GPU: the missing-CUDA path cannot be shown")
@pytest.mark.parametrize("provider", ["cuda", "tensorrt"])
def test_gpu_provider_without_gpu_is_one_line(exports, provider, capfd):
    with pytest.raises(BackendUnavailableError) as info:
        OrtRunner(exports[GOLDEN_CASES[0]], provider=provider).load()
    message = str(info.value)
    assert "\n" not in message and isinstance(info.value, Vit5Error)
    assert "GPU" in message or "onnxruntime-gpu" in message
    assert capfd.readouterr().err == ""  # refused before onnxruntime tried (and logged) loading CUDA


@pytest.mark.gpu
@pytest.mark.skipif(not has_cuda_driver(), reason="needs an NVIDIA GPU and driver")
def test_ort_cuda_matches_upstream(exports):
    name = GOLDEN_CASES[0]
    pixel_values, upstream = load_golden_io(name)
    with OrtRunner(exports[name], provider="cuda") as runner:
        logits = runner.infer(pixel_values)
    assert compare_logits(upstream, logits).max_abs_err <= 1e-3


# ---- backbone outputs ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def feature_export(tmp_path_factory):
    """hybrid_pool_film (CLS, registers, padded Hyena grid) with every output, and features only."""
    from vit5_infer.exporters import export_onnx

    folder = tmp_path_factory.mktemp("feature_onnx")
    model = golden_model("hybrid_pool_film")
    every = export_onnx(
        model, folder / "all.onnx", outputs="logits,pre_logits,patch_tokens,cls_token,register_tokens", validate=False
    ).path
    features = export_onnx(model, folder / "features.onnx", outputs="patch_tokens,pre_logits", validate=False).path
    return every, features


def test_run_returns_every_output_by_name(feature_export, golden_features):
    every, _ = feature_export
    pixel_values, upstream = load_golden_io("hybrid_pool_film")
    with OrtRunner(every, threads=1) as runner:
        out = runner.run(pixel_values)
        logits = runner.infer(pixel_values)
        assert runner.output_names == list(out) and runner.describe()["outputs"] == list(out)
    assert list(out) == ["logits", "pre_logits", "patch_tokens", "cls_token", "register_tokens"]
    assert np.array_equal(out["logits"], logits)
    for name, want in {"logits": upstream, **golden_features("hybrid_pool_film")}.items():
        assert out[name].dtype == np.float32
        np.testing.assert_allclose(out[name], want, rtol=0, atol=1e-4 * max(1.0, float(np.abs(want).max())))


def test_features_only_graph_has_no_logits(feature_export):
    _, features = feature_export
    pixel_values, _ = load_golden_io("hybrid_pool_film")
    with OrtRunner(features, threads=1) as runner:
        assert list(runner.run(pixel_values[:1])) == ["patch_tokens", "pre_logits"]
        with pytest.raises(BackendError, match="no logits output.*use run") as info:
            runner.infer(pixel_values[:1])
    assert "\n" not in str(info.value)


def test_logits_only_graph_runs_as_before(exports):
    pixel_values, upstream = load_golden_io(GOLDEN_CASES[0])
    with OrtRunner(exports[GOLDEN_CASES[0]], threads=1) as runner:
        out = runner.run(pixel_values)
    assert list(out) == ["logits"]
    np.testing.assert_allclose(out["logits"], upstream, rtol=0, atol=1e-4)


def test_fp8_graph_of_the_opset_19_form_runs_as_emulation(digits_dir, tmp_path):
    """FP8 Q/DQ around MatMul-Softmax-MatMul (quantized tensorrt=10.8): the runner drops to ORT's basic
    optimizations, where the emulation runs, and says so in describe()."""
    from vit5_infer import load_model
    from vit5_infer.exporters import GraphForm
    from vit5_infer.exporters.quantization import QuantizationSettings, calibration_inputs, export_quantized
    from vit5_infer.preprocessing import Preprocessing

    model = load_model(digits_dir / "digits_attn.safetensors")
    pre = Preprocessing(image_size=32, mean=(0.5,) * 3, std=(0.25,) * 3)
    calibration = calibration_inputs(digits_dir / "calibration", input_shape=(3, 32, 32), preprocessing=pre, count=16)
    path = tmp_path / "fp8.onnx"
    export_quantized(
        model, path, QuantizationSettings("fp8"), calibration, GraphForm(target="tensorrt=10.8", validate=False)
    )
    runner = OrtRunner(path)
    logits = runner.infer(calibration.held_out)
    assert runner.precision == "fp8" and runner.describe()["graph_optimization"] == "basic"
    import torch

    with torch.no_grad():
        reference = model(torch.from_numpy(calibration.held_out)).numpy()
    assert compare_logits(reference, logits).cosine > 0.999


@pytest.mark.parametrize("location", ["../outside.bin", "/etc/hostname"])
def test_external_data_outside_the_graph_folder_is_refused_before_onnxruntime_reads_it(tmp_path, location):
    (tmp_path / "outside.bin").write_bytes(b"\0" * 4)
    path = graph_with_external_data(tmp_path / "model", location)
    with pytest.raises(InputError, match="outside the graph's folder"):
        OrtRunner(path).load()
