"""What the TensorRT path decides without TensorRT: versions, precision vs. compute capability, the input
profile, timing-cache notes, runner input/output handling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vit5_infer.engines.cuda_device import CudaDevice
from vit5_infer.engines.errors import BackendError, EngineBuildError, first_line
from vit5_infer.engines.tensorrt_builder import (
    check_input_shape,
    not_fused_message,
    precision_to_build,
    timing_cache_note,
)
from vit5_infer.engines.tensorrt_runner import batch_range, check_batch, input_tensor, outputs_as_float32
from vit5_infer.engines.tensorrt_support import (
    check_gpu_supported,
    check_precision_supported,
    cuda_initialized,
    has_attention_layers,
    needs_strongly_typed_flag,
    reported_error,
    tensorrt_log,
    tensorrt_release,
    tensorrt_version,
)
from vit5_infer.errors import InputError, Vit5Error
from vit5_infer.vocabulary import Precision

T4 = CudaDevice(0, "Tesla T4", "7.5")
V100 = CudaDevice(0, "Tesla V100-SXM2-16GB", "7.0")
A100 = CudaDevice(0, "NVIDIA A100-SXM4-40GB", "8.0")
L4 = CudaDevice(0, "NVIDIA L4", "8.9")
H100 = CudaDevice(0, "NVIDIA H100 80GB HBM3", "9.0")


@pytest.mark.parametrize(
    "text, version",
    [("10.14.1.48", (10, 14)), ("11.0.0", (11, 0)), ("10.8", (10, 8)), ("10", (10, 0)), ("garbage", (0, 0))],
)
def test_tensorrt_version(text, version):
    assert tensorrt_version(text) == version


# tensorrt.__version__ as NVIDIA's wheels set it: post releases carry a PEP 440 suffix.
POST_RELEASES = ["10.2.0.post1", "10.6.0.post2", "10.7.0.post1", "10.13.3.9.post1", "10.14.1.48.post1"]


@pytest.mark.parametrize(
    "text, release",
    [("10.14.1.48.post1", "10.14"), ("10.13.3.9", "10.13"), ("11.4.0.106", "11.4"), ("10.0.1", "10.0"), ("11", "11.0")],
)
def test_tensorrt_release(text, release):
    assert tensorrt_release(text) == release


@pytest.mark.parametrize("version", POST_RELEASES + ["10.16.1.11", "11.0.0.114"])
def test_installed_versions_make_export_targets_and_parser_checks(version):
    from vit5_infer.exporters.targets import ExportTarget
    from vit5_infer.exporters.tensorrt_compat import rule_release

    target = ExportTarget.parse(f"tensorrt={tensorrt_release(version)}")
    assert str(target) == f"tensorrt={tensorrt_release(version)}"
    assert rule_release(tensorrt_release(version))


def test_a_post_release_checks_the_graph_it_builds(tmp_path):
    """build_engine's parser check on TensorRT 10.14.1.48.post1 (its tensorrt.__version__) checks the graph
    against the 10.14 rules instead of refusing the version string."""
    from vit5_infer.exporters import export_onnx
    from vit5_infer.workflows.build_engine import check_parses

    from golden_exports import golden_model

    onnx_path = export_onnx(
        golden_model("attn_cls_r4"), tmp_path / "m.onnx", validate=False, target="tensorrt=10.14"
    ).path
    check_parses(onnx_path, "10.14.1.48.post1")
    with pytest.raises(EngineBuildError, match=r"does not parse on TensorRT 10\.8\.0\.43: .*--target tensorrt=10\.8'"):
        check_parses(onnx_path, "10.8.0.43")


def test_the_bench_exports_for_the_installed_release(monkeypatch):
    from importlib import metadata

    from vit5_infer.workflows.artifacts import installed_tensorrt_target

    def version(dist):
        if dist == "tensorrt-cu12":
            return "10.14.1.48.post1"
        raise metadata.PackageNotFoundError(dist)

    monkeypatch.setattr(metadata, "version", version)
    assert installed_tensorrt_target() == "tensorrt=10.14"


def test_version_dependent_features():
    assert needs_strongly_typed_flag("10.0.1") and needs_strongly_typed_flag("10.16.0")
    assert not needs_strongly_typed_flag("11.0.0")
    assert not has_attention_layers("10.13.3") and has_attention_layers("10.14.1") and has_attention_layers("11.1.0")


@pytest.mark.parametrize(
    "precision, device, refused",
    [
        ("fp32", V100, False),
        ("fp16", V100, False),
        ("bf16", T4, True),
        ("bf16", A100, False),
        ("fp8", A100, True),
        ("fp8", L4, False),
        ("fp8", H100, False),
        ("int8", V100, True),
        ("int8", T4, False),
    ],
)
def test_precision_needs_compute_capability(precision, device, refused):
    if not refused:
        check_precision_supported(precision, device)
        return
    with pytest.raises(EngineBuildError) as info:
        check_precision_supported(precision, device)
    message = str(info.value)
    assert "\n" not in message and isinstance(info.value, Vit5Error)
    assert message.startswith(f"{precision} engines need a GPU of compute capability")
    assert f"{device.name} is {device.compute_capability}" in message


@pytest.mark.parametrize(
    "version, device, runs",
    [
        ("10.4.0", V100, True),
        ("10.5.0", V100, False),
        ("10.14.1.48.post1", V100, False),
        ("11.4.0.106", V100, False),
        ("10.5.0", T4, True),
        ("11.0.0.114", T4, True),
        ("11.4.0.106", H100, True),
        ("10.0.1", CudaDevice(0, "Tesla P100-PCIE-16GB", "6.0"), False),
    ],
)
def test_tensorrt_runs_on_turing_and_newer_from_10_5(version, device, runs):
    from vit5_infer.engines.errors import BackendUnavailableError

    if runs:
        check_gpu_supported(version, device)
        return
    with pytest.raises(BackendUnavailableError) as info:
        check_gpu_supported(version, device)
    message = str(info.value)
    assert message.startswith(f"TensorRT {version} does not run on {device.name} (compute capability")
    assert "\n" not in message and ("7.5 or newer" in message) == (version != "10.0.1")


def test_a_tensorrt_that_cannot_initialize_cuda_is_one_line():
    """The TypeError TensorRT's Builder/Runtime constructors raise when CUDA fails to initialize (the message
    pybind11 gives a constructor returning nullptr) is one BackendUnavailableError line; other TypeErrors
    are bugs and stay tracebacks."""
    from vit5_infer.engines.errors import BackendUnavailableError

    with pytest.raises(BackendUnavailableError) as info:
        with cuda_initialized("11.4.0.106", "building an engine"):
            raise TypeError("pybind11::init(): factory function returned nullptr")
    message = str(info.value)
    assert message.startswith("TensorRT 11.4.0.106 could not initialize CUDA for building an engine: ")
    assert "driver" in message and "\n" not in message
    with pytest.raises(TypeError, match="unsupported operand"):
        with cuda_initialized("11.4.0.106", "building an engine"):
            raise TypeError("unsupported operand type(s)")


def test_tensorrt_log_hides_the_log_and_keeps_what_tensorrt_reported(capsys):
    """What a failed build says: TensorRT's last error (through Polygraphy's TensorRT logger, which logs
    ERROR messages with G_LOGGER.error), not Polygraphy's generic closing line; nothing printed meanwhile."""
    from polygraphy.exception import PolygraphyException
    from polygraphy.logger import G_LOGGER

    before = (G_LOGGER.use_python_logging_system, G_LOGGER.colors, G_LOGGER.module_severity.get())
    with pytest.raises(PolygraphyException):
        with tensorrt_log() as errors:
            G_LOGGER.warning("a warning nobody needs")
            G_LOGGER.error("ITimingCache::combine: Error Code 2: timing cache from another device")
            G_LOGGER.error("IBuilder::buildSerializedNetwork: Error Code 4: Internal Error (not enough\nworkspace)")
            G_LOGGER.critical("Invalid Engine. Please ensure the engine was built correctly")
    assert capsys.readouterr() == ("", "")
    assert reported_error(errors, "fallback") == (
        "IBuilder::buildSerializedNetwork: Error Code 4: Internal Error (not enough workspace)"
    )
    assert reported_error([], "fallback") == "fallback"
    assert (G_LOGGER.use_python_logging_system, G_LOGGER.colors, G_LOGGER.module_severity.get()) == before
    with tensorrt_log(verbose=True):
        G_LOGGER.info("shown with --verbose")
    assert "shown with --verbose" in capsys.readouterr().out


def test_bf16_on_turing_suggests_fp16():
    with pytest.raises(EngineBuildError, match=r"8\.0 or newer \(Ampere\); Tesla T4 is 7\.5: build an fp16 engine"):
        check_precision_supported(Precision.BF16, T4)


@pytest.mark.parametrize(
    "recorded, requested, built",
    [
        (None, "fp16", "fp16"),
        ("fp32", "bf16", "bf16"),
        ("fp16", "fp32", "fp16"),
        ("bf16", "bf16", "bf16"),
        ("int8", "fp32", "int8"),
        ("fp8", "fp16", "fp8"),
        ("nonsense", "fp16", "fp16"),
    ],
)
def test_precision_to_build_prefers_the_exporters_record(recorded, requested, built):
    assert precision_to_build(recorded, requested) == Precision(built)


def test_input_shape():
    assert check_input_shape({"pixel_values": (-1, 3, 32, 32)}, "m.onnx", [(1, 4, 8)]) == (3, 32, 32)
    assert check_input_shape({"pixel_values": (-1, 3, 32, 32)}, "m.onnx", [(1, 1, 1), (2, 8, 8)]) == (3, 32, 32)
    assert check_input_shape({"pixel_values": (2, 3, 32, 32)}, "m.onnx", [(2, 2, 2)]) == (3, 32, 32)


@pytest.mark.parametrize(
    "inputs, match",
    [
        ({"image": (-1, 3, 32, 32)}, "has no input 'pixel_values' \\(inputs: image\\)"),
        ({"pixel_values": (-1, 3, -1, 32)}, "fixed C, H, W"),
        ({"pixel_values": (-1, 32, 32)}, "fixed C, H, W"),
        ({"pixel_values": (1, 3, 32, 32)}, "fixed batch of 1; .* --max-batch 1"),
    ],
)
def test_bad_inputs(inputs, match):
    with pytest.raises(EngineBuildError, match=match):
        check_input_shape(inputs, "m.onnx", [(1, 1, 8)])


def test_timing_cache_notes():
    assert timing_cache_note("t.cache", 1234, True) == "loaded timing cache t.cache (1234 bytes)"
    assert "starting a new one" in timing_cache_note("t.cache", 9, False)


def test_not_fused_message_points_at_the_layers_json():
    from vit5_infer.engines.attention_report import fusion_report

    report = fusion_report('{"Layers": [{"Name": "g", "TacticName": "sm80_xmma_gemm"}]}', 2)
    message = not_fused_message("m.engine", report)
    assert "0 fused attention kernel(s) for 2" in message and ".layers.json" in message and "\n" not in message


# ---- runner ---------------------------------------------------------------------------------------------
def test_check_batch():
    check_batch(np.zeros((4, 3, 8, 8), np.float32), (1, 8), "m.engine")
    with pytest.raises(InputError, match="m.engine accepts batch 1..8, got 9"):
        check_batch(np.zeros((9, 3, 8, 8), np.float32), (1, 8), "m.engine")
    with pytest.raises(InputError, match=r"must be \[B, C, H, W\]"):
        check_batch(np.zeros((3, 8, 8), np.float32), (1, 8), "m.engine")


def test_batch_range_from_the_profile_or_a_fixed_batch():
    dynamic = (-1, 3, 32, 32)
    assert batch_range(dynamic, [(1, 3, 32, 32), (8, 3, 32, 32), (32, 3, 32, 32)], "m.engine") == (1, 32)
    # an engine built elsewhere for one shape: its batch, whatever profile 0 reports
    assert batch_range((4, 3, 32, 32), [(), (), ()], "m.engine") == (4, 4)
    with pytest.raises(BackendError, match="m.engine: its dynamic batch has no optimization profile 0"):
        batch_range(dynamic, [(), (), ()], "m.engine")
    with pytest.raises(BackendError, match=r"m.engine: expected a \[B, C, H, W\] input"):
        batch_range((-1, 768), [(1, 768), (1, 768), (8, 768)], "m.engine")


@pytest.mark.parametrize(
    "dtype, torch_dtype", [("FLOAT32", torch.float32), ("FLOAT16", torch.float16), ("BFLOAT16", torch.bfloat16)]
)
def test_input_tensor_has_the_engine_input_type(dtype, torch_dtype):
    from polygraphy.datatype import DataType

    pixels = np.asfortranarray(np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32))
    tensor = input_tensor(pixels, getattr(DataType, dtype))
    assert tensor.dtype == torch_dtype and tensor.is_contiguous() and tensor.device.type == "cpu"
    np.testing.assert_allclose(tensor.float().numpy(), pixels, rtol=1e-2, atol=1e-2)


def test_outputs_as_float32_returns_every_output_by_name_and_owns_its_memory():
    logits = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    features = torch.ones(2, 5, dtype=torch.bfloat16)
    patches = np.ones((2, 2, 2, 4), np.float16)
    out = outputs_as_float32(
        {"logits": logits, "pre_logits": features, "patch_tokens": patches}, ["logits", "pre_logits", "patch_tokens"]
    )
    assert list(out) == ["logits", "pre_logits", "patch_tokens"]
    assert all(v.dtype == np.float32 for v in out.values())
    logits += 100  # the runner reuses its host buffers between batches
    assert out["logits"][0, 0] == 0.0


def test_a_missing_output_is_an_error():
    with pytest.raises(BackendError, match="no output 'logits'"):
        outputs_as_float32({"pre_logits": np.zeros(2)}, ["logits"])


def test_first_line_of_an_error_message():
    """The one-line reason the TensorRT path gives for a Polygraphy, bindings or loader error."""
    assert first_line(RuntimeError("  CUDA Error: 2\nsee the docs\n")) == "CUDA Error: 2"
    assert first_line(OSError()) == "OSError"
    assert first_line(RuntimeError(" \n"), "no reason given") == "no reason given"


def test_an_unreadable_graph_with_an_empty_error_is_one_line(tmp_path, monkeypatch):
    """onnx can raise with no message at all (a DecodeError of an empty protobuf, ...): still one line."""
    import onnx

    from vit5_infer.engines.errors import EngineBuildError
    from vit5_infer.engines.tensorrt_builder import _load_graph

    def refuse(path, *args, **kwargs):
        raise ValueError("")

    monkeypatch.setattr(onnx, "load", refuse)
    with pytest.raises(EngineBuildError, match=r"m.onnx: not a readable ONNX model \(ValueError\)$"):
        _load_graph(tmp_path / "m.onnx")
