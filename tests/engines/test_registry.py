"""Backend registry: what runs here, and one-line errors for unknown backends or wrong sources."""

from __future__ import annotations

import pytest

from vit5_infer.engines.cuda_device import has_cuda_driver
from vit5_infer.engines.errors import BackendError
from vit5_infer.engines.ort_runner import OrtRunner
from vit5_infer.engines.registry import BACKENDS, available_backends, make_runner
from vit5_infer.engines.tensorrt_support import tensorrt_installed
from vit5_infer.engines.torch_runner import TorchRunner
from vit5_infer.errors import Vit5Error

from golden_exports import golden_model


def test_available_backends_here():
    found = available_backends()
    assert set(found) <= set(BACKENDS)
    assert {"torch", "torch-compile", "ort"} <= set(found)
    if not has_cuda_driver():
        assert not {"ort-cuda", "ort-trt", "trt"} & set(found)
    if not tensorrt_installed():
        assert "trt" not in found and "ort-trt" not in found


def test_make_runner_builds_the_right_runner(tmp_path):
    model = golden_model("attn_cls_r4")
    torch_runner = make_runner("torch", model)
    assert isinstance(torch_runner, TorchRunner) and torch_runner.backend == "torch" and torch_runner.device == "cpu"
    compiled = make_runner("torch-compile", model, threads=1)
    assert compiled.backend == "torch-compile"
    onnx_path = tmp_path / "m.onnx"
    onnx_path.write_bytes(b"loaded only later")
    ort_runner = make_runner("ort", onnx_path, threads=2)
    assert isinstance(ort_runner, OrtRunner) and ort_runner.threads == 2
    assert make_runner("ort-cuda", onnx_path).backend == "ort-cuda"


@pytest.mark.parametrize(
    "backend, source, match",
    [
        ("tensorflow", "m.onnx", "unknown backend 'tensorflow'"),
        ("torch", "m.onnx", "runs a loaded ViT5ClassificationNet"),
        ("ort", 42, "runs a file path"),
        ("ort", "model.engine", "runs an .onnx file"),
        ("trt", "model.onnx", "build one with 'vit5 build-engine'"),
        ("trt", "missing.engine", "TensorRT engine not found"),
        ("ort", "missing.onnx", "ONNX file not found"),
    ],
)
def test_one_line_errors(backend, source, match, tmp_path):
    if isinstance(source, str):
        source = tmp_path / source
    with pytest.raises(BackendError, match=match) as info:
        make_runner(backend, source)
    assert "\n" not in str(info.value) and isinstance(info.value, Vit5Error)


def test_unknown_precision():
    with pytest.raises(BackendError, match="unknown precision"):
        make_runner("torch", golden_model("attn_cls_r4"), precision="int4")
