"""The config.pbtxt of a TensorRT plan asks Triton's TensorRT backend for CUDA graphs
(ModelOptimizationPolicy.Cuda.graphs in Triton's model_config.proto); an ONNX model's does not."""

from __future__ import annotations

import importlib.util

from vit5_infer.workflows.serving import parse_model_config, write_model_repository


def _engine(digits_onnx, tmp_path):
    from vit5_infer.engine_manifest import create_manifest, profile_shapes, write_manifest

    engine = tmp_path / "digits.plan"
    engine.write_bytes(b"serialized engine bytes are copied, never read")
    write_manifest(
        create_manifest(
            onnx_path=digits_onnx,
            engine_path=engine,
            tensorrt_version="10.13.0",
            gpu_name="NVIDIA H100",
            compute_capability="9.0",
            precision="fp16",
            profiles=profile_shapes((3, 32, 32), 1, 4, 16),
            build_flags={},
        ),
        engine,
    )
    return engine


def test_tensorrt_plan_config_enables_cuda_graphs(digits_onnx, tmp_path):
    text = write_model_repository(_engine(digits_onnx, tmp_path), tmp_path / "repo").config_path.read_text()
    assert "optimization {\n  cuda {\n    graphs: true\n  }\n}" in text
    if importlib.util.find_spec("tritonclient") is not None:
        assert parse_model_config(text).optimization.cuda.graphs


def test_onnx_model_config_has_no_cuda_graphs(digits_onnx, tmp_path):
    text = write_model_repository(digits_onnx, tmp_path / "repo").config_path.read_text()
    assert "graphs" not in text
