"""Without TensorRT (or a GPU): one-line errors naming what is missing, and nothing written."""

from __future__ import annotations

import pytest

from vit5_infer.engine_manifest import manifest_path_for
from vit5_infer.engines.cuda_device import has_cuda_driver
from vit5_infer.engines.errors import BackendError, EngineBuildError, NoGPUError, TensorRTUnavailableError
from vit5_infer.engines.tensorrt_runner import TensorRTRunner
from vit5_infer.engines.tensorrt_support import (
    import_tensorrt,
    require_gpu,
    tensorrt_installed,
    tensorrt_major,
)
from vit5_infer.errors import Vit5Error
from vit5_infer.workflows.build_engine import build_engine

no_tensorrt = pytest.mark.skipif(tensorrt_installed(), reason="TensorRT is installed here")
EXPECTED = "TensorRT is not installed: pip install 'vit5-infer[tensorrt]' (needs an NVIDIA GPU and driver)"


@no_tensorrt
def test_import_tensorrt_message():
    with pytest.raises(TensorRTUnavailableError) as info:
        import_tensorrt()
    assert str(info.value) == EXPECTED
    assert isinstance(info.value, Vit5Error)


@no_tensorrt
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_build_engine_without_tensorrt_writes_nothing(onnx_file, tmp_path, precision):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(TensorRTUnavailableError, match="pip install 'vit5-infer\\[tensorrt\\]'"):
        build_engine(onnx_file, out / "model.engine", precision=precision, timing_cache=out / "t.cache")
    assert list(out.iterdir()) == []
    assert sorted(p.name for p in onnx_file.parent.iterdir()) == ["model.onnx"]


@no_tensorrt
def test_build_from_preset_without_tensorrt_exports_nothing(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(TensorRTUnavailableError):
        build_engine("vit5-small", out / "model.engine", precision="fp16")
    assert not out.exists()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"precision": "int4"}, "unknown precision"),
        ({"min_batch": 4, "opt_batch": 2}, "1 <= min <= opt <= max"),
        ({"min_batch": 0}, "1 <= min <= opt <= max"),
        ({"workspace_gib": 0}, "--workspace must be a positive"),
        ({"optimization_level": 7}, "optimization level must be 0..5"),
    ],
)
def test_bad_build_options_fail_first(onnx_file, tmp_path, kwargs, match):
    with pytest.raises(EngineBuildError, match=match):
        build_engine(onnx_file, tmp_path / "model.engine", **kwargs)
    assert not (tmp_path / "model.engine").exists()


@pytest.mark.parametrize("kind", ["directory", "under a file", "the source"])
def test_a_timing_cache_that_cannot_be_written_back_fails_first(onnx_file, tmp_path, kind):
    """The timing cache is written after the build: a path that cannot take it is refused before TensorRT
    is even looked for, not after minutes of building."""
    cache = {"directory": tmp_path, "under a file": onnx_file / "t.cache", "the source": onnx_file}[kind]
    with pytest.raises(Vit5Error, match="--timing-cache") as info:
        build_engine(onnx_file, tmp_path / "out" / "model.engine", timing_cache=cache)
    assert "\n" not in str(info.value) and not (tmp_path / "out").exists()


def test_read_timing_cache(tmp_path):
    from vit5_infer.engines.tensorrt_builder import read_timing_cache

    assert read_timing_cache(None) is None
    assert read_timing_cache(tmp_path / "new.cache") is None
    (tmp_path / "old.cache").write_bytes(b"cache bytes")
    assert read_timing_cache(tmp_path / "old.cache") == b"cache bytes"


def test_bad_build_paths(tmp_path, onnx_file):
    with pytest.raises(BackendError, match="ONNX file not found"):
        build_engine(tmp_path / "absent.onnx", tmp_path / "model.engine")
    with pytest.raises(BackendError, match="must not be an .onnx path"):
        build_engine(onnx_file, tmp_path / "model.onnx")


@no_tensorrt
def test_runner_without_tensorrt(tmp_path):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"serialized engine")
    runner = TensorRTRunner(engine)
    with pytest.raises(TensorRTUnavailableError):
        runner.load()


def test_runner_rejects_missing_and_wrong_files(tmp_path):
    with pytest.raises(BackendError, match="engine not found"):
        TensorRTRunner(tmp_path / "absent.engine")
    (tmp_path / "model.onnx").write_bytes(b"x")
    with pytest.raises(BackendError, match="expected a TensorRT engine"):
        TensorRTRunner(tmp_path / "model.onnx")


def test_runner_reports_a_broken_manifest(tmp_path):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"serialized engine")
    manifest_path_for(engine).write_text("{broken")
    with pytest.raises(Vit5Error, match="not a readable JSON manifest"):
        TensorRTRunner(engine)


@pytest.mark.skipif(has_cuda_driver(), reason="this machine has a GPU")
def test_no_gpu_is_one_line():
    with pytest.raises(NoGPUError) as info:
        require_gpu("building a TensorRT engine")
    message = str(info.value)
    assert message.startswith("building a TensorRT engine needs an NVIDIA GPU") and "\n" not in message


def test_tensorrt_major_parses_versions():
    assert tensorrt_major("10.14.1.48") == 10
    assert tensorrt_major("11.0.0") == 11
    assert tensorrt_major("garbage") == 0


def test_tensorrt_rtx_is_refused(monkeypatch):
    from polygraphy import config as polygraphy_config

    from vit5_infer.engines.errors import BackendUnavailableError

    monkeypatch.setattr(polygraphy_config, "USE_TENSORRT_RTX", True)
    with pytest.raises(BackendUnavailableError, match="POLYGRAPHY_USE_TENSORRT_RTX is set"):
        import_tensorrt()
