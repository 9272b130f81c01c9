"""ONNX Runtime's TensorRT provider, read from the installed onnxruntime-gpu without loading it: the TensorRT
major it links, the options it parses, the options our graphs get, and the one-line refusals."""

from __future__ import annotations

import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from vit5_infer.engines import ort_tensorrt
from vit5_infer.engines.errors import BackendUnavailableError
from vit5_infer.engines.ort_runner import provider_failure
from vit5_infer.engines.ort_tensorrt import (
    knows_option,
    linked_tensorrt_major,
    precision_options,
    prepare_tensorrt,
    provider_library,
    tensorrt_mismatch,
)
from vit5_infer.engines.registry import make_runner

from golden_exports import golden_model

LIBRARY = provider_library(ort)
needs_library = pytest.mark.skipif(
    LIBRARY is None, reason=f"onnxruntime {ort.__version__} has no TensorRT provider library"
)


@needs_library
def test_the_provider_links_tensorrt_10():
    """onnxruntime-gpu 1.18 .. 1.31 are built against TensorRT 10 (ORT's requirements table; libnvinfer.so.10
    in 1.31.1's provider library), so TensorRT 11 cannot serve backend ort-trt."""
    major = linked_tensorrt_major(LIBRARY)
    version = tuple(int(p) for p in ort.__version__.split(".")[:2])
    if (1, 18) <= version <= (1, 31):
        assert major == 10
    else:
        assert major is None or major >= 10


@needs_library
def test_the_provider_parses_the_options_we_pass():
    for name in (
        "trt_fp16_enable",
        "trt_int8_enable",
        "trt_layer_norm_fp32_fallback",
        "trt_profile_min_shapes",
        "trt_profile_opt_shapes",
        "trt_profile_max_shapes",
    ):
        assert knows_option(LIBRARY, name), name
    assert not knows_option(LIBRARY, "trt_strongly_typed_enable_nonexistent")


def test_tensorrt_mismatch_messages():
    assert tensorrt_mismatch("1.31.1", 10, "10.16.1.11") is None
    assert tensorrt_mismatch("1.31.1", 10, "10.14.1.48.post1") is None
    message = tensorrt_mismatch("1.31.1", 10, "11.4.0.106", "13.0")
    assert message == (
        "onnxruntime 1.31.1's TensorrtExecutionProvider is built for TensorRT 10.x, but TensorRT 11.4.0.106 is "
        "installed: pip install 'tensorrt-cu13>=10,<11' for backend ort-trt, or use backend trt"
    )
    assert "TensorRT is not installed: pip install 'tensorrt>=10,<11'" in tensorrt_mismatch("1.22.0", 10, None)


@needs_library
def test_prepare_refuses_another_tensorrt_major(monkeypatch):
    monkeypatch.setattr(ort_tensorrt, "installed_tensorrt_version", lambda: "11.4.0.106")
    with pytest.raises(BackendUnavailableError, match=r"built for TensorRT 10\.x, but TensorRT 11\.4\.0\.106") as info:
        prepare_tensorrt(ort)
    assert "\n" not in str(info.value)
    assert not ort_tensorrt.tensorrt_usable(ort)


@needs_library
@pytest.mark.skipif(ort_tensorrt.installed_tensorrt_version() is not None, reason="TensorRT is installed here")
def test_prepare_without_tensorrt():
    with pytest.raises(BackendUnavailableError, match="but TensorRT is not installed"):
        prepare_tensorrt(ort)


def test_provider_failure_names_what_the_provider_needs():
    cuda = ort_tensorrt.ort_cuda_version()
    message = provider_failure("1.31.1", "TensorrtExecutionProvider")
    assert message.startswith(
        "onnxruntime 1.31.1 could not start TensorrtExecutionProvider: it needs TensorRT's libraries"
    )
    assert message.endswith("TensorRT-ExecutionProvider.html#requirements") and "\n" not in message
    assert (f"CUDA {cuda} and cuDNN 9" in message) == bool(cuda)
    assert "CUDA-ExecutionProvider.html" in provider_failure("1.31.1", "CUDAExecutionProvider")


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    from vit5_infer.exporters import export_onnx
    from vit5_infer.exporters.precision import convert_precision

    folder = tmp_path_factory.mktemp("ort_trt")
    fp32 = export_onnx(golden_model("attn_cls_r4"), folder / "m.onnx", validate=False).path
    paths = {"fp32": fp32}
    for precision in ("fp16", "bf16"):
        paths[precision] = folder / f"m.{precision}.onnx"
        onnx.save(convert_precision(onnx.load(str(fp32)), precision), str(paths[precision]))
    return paths


def _qdq_graph() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])
    scale = helper.make_tensor("scale", TensorProto.FLOAT, [], [0.1])
    zero = helper.make_tensor("zero", TensorProto.INT8, [], [0])
    nodes = [
        helper.make_node("QuantizeLinear", ["pixel_values", "scale", "zero"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["logits"]),
    ]
    return helper.make_model(helper.make_graph(nodes, "qdq", [x], [y], [scale, zero]))


def test_precision_options_follow_the_graph(graphs):
    load = lambda name: onnx.load(str(graphs[name]), load_external_data=False)  # noqa: E731
    assert precision_options(load("fp32"), LIBRARY) == {}
    fp16 = precision_options(load("fp16"), LIBRARY)
    assert fp16["trt_fp16_enable"] == "True" and "trt_int8_enable" not in fp16
    assert precision_options(_qdq_graph(), LIBRARY) == {"trt_int8_enable": "True"}
    if LIBRARY is not None:
        assert fp16["trt_layer_norm_fp32_fallback"] == "True"
        # bf16 only where this provider build parses the option (ONNX Runtime refuses unknown ones)
        assert ("trt_bf16_enable" in precision_options(load("bf16"), LIBRARY)) == knows_option(
            LIBRARY, "trt_bf16_enable"
        )


def test_ort_trt_runner_gets_the_profile_and_the_precision(graphs):
    runner = make_runner("ort-trt", graphs["fp16"], precision="fp16", batch_hint=8)
    options = runner.provider_options
    assert options["trt_fp16_enable"] == "True"
    assert options["trt_profile_min_shapes"].startswith("pixel_values:1x")
    assert options["trt_profile_max_shapes"].startswith("pixel_values:8x")
    assert make_runner("ort-trt", graphs["fp32"]).provider_options == {}
    # what the caller passes is kept as it is
    assert make_runner("ort-trt", graphs["fp16"], provider_options={"trt_fp16_enable": "False"}).provider_options == {
        "trt_fp16_enable": "False"
    }
