"""The config.pbtxt of a TensorRT plan asks Triton's TensorRT backend for CUDA graphs
(ModelOptimizationPolicy.Cuda.graphs in Triton's model_config.proto); an ONNX model's does not."""

from __future__ import annotations

import importlib.util

from vit5_infer.workflows.serving import parse_model_config, write_model_repository


def test_tensorrt_plan_config_enables_cuda_graphs(digits_engine, tmp_path):
    engine = tmp_path / "digits.plan"
    digits_engine(engine)
    text = write_model_repository(engine, tmp_path / "repo").config_path.read_text()
    assert "optimization {\n  cuda {\n    graphs: true\n  }\n}" in text
    if importlib.util.find_spec("tritonclient") is not None:
        assert parse_model_config(text).optimization.cuda.graphs


def test_onnx_model_config_has_no_cuda_graphs(digits_onnx, tmp_path):
    text = write_model_repository(digits_onnx, tmp_path / "repo").config_path.read_text()
    assert "graphs" not in text
