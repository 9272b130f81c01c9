"""ONNX Runtime's TensorRT execution provider: which TensorRT it needs, and the options our graphs need.

The provider is a separate library (``libonnxruntime_providers_tensorrt.so`` /
``onnxruntime_providers_tensorrt.dll``) linked against one TensorRT major: onnxruntime-gpu 1.18-1.31 link
``libnvinfer.so.10`` (ORT's requirements table; readelf of 1.31.1), so with TensorRT 11 installed the
provider cannot load, and ONNX Runtime silently falls back to the CUDA provider.  The library names its
TensorRT dependency and the option names it parses, so both are read from the file, without loading it.

ORT's provider builds weakly typed TensorRT networks (it has no strongly typed option): without
``trt_fp16_enable`` an FP16 graph runs FP32 kernels (TensorRT before strong typing picks kernels by
speed among the enabled precisions), and a Q/DQ graph needs ``trt_int8_enable`` (no calibration table:
the scales are in the graph).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any, Optional

from .errors import BackendUnavailableError, first_line
from .tensorrt_support import installed_tensorrt_version, tensorrt_major

PROVIDER = "TensorrtExecutionProvider"
_LIBRARIES = ("libonnxruntime_providers_tensorrt.so", "onnxruntime_providers_tensorrt.dll")
_NVINFER = (re.compile(rb"libnvinfer\.so\.(\d+)\x00"), re.compile(rb"nvinfer_(\d+)\.dll\x00", re.IGNORECASE))


def provider_library(ort: Any) -> Optional[Path]:
    """The TensorRT provider library of the imported onnxruntime package (None when it has none)."""
    capi = Path(ort.__file__).parent / "capi"
    return next((capi / name for name in _LIBRARIES if (capi / name).is_file()), None)


@functools.lru_cache(maxsize=8)
def _library_bytes(path: Path) -> bytes:
    return path.read_bytes()


def linked_tensorrt_major(library: Path) -> Optional[int]:
    """The TensorRT major the provider library is linked against (its libnvinfer.so.N / nvinfer_N.dll)."""
    data = _library_bytes(library)
    found = {int(major) for pattern in _NVINFER for major in pattern.findall(data)}
    return found.pop() if len(found) == 1 else None


def knows_option(library: Path, name: str) -> bool:
    """Whether this provider build parses the option ``name`` (ONNX Runtime refuses unknown ones)."""
    return name.encode() + b"\x00" in _library_bytes(library)


def ort_cuda_version() -> str:
    """The CUDA version onnxruntime-gpu was built for ("13.0" for 1.31.1), "" when it does not say."""
    try:
        from onnxruntime.capi import build_and_package_info
    except ImportError:
        return ""
    return str(getattr(build_and_package_info, "cuda_version", "") or "")


def tensorrt_mismatch(ort_version: str, needed: int, installed: Optional[str], cuda: str = "") -> Optional[str]:
    """Why the installed TensorRT cannot serve ORT's TensorRT provider (None: it can)."""
    if installed is not None and tensorrt_major(installed) == needed:
        return None
    wheel = f"tensorrt-cu{cuda.split('.')[0]}" if cuda else "tensorrt"
    have = f"TensorRT {installed} is installed" if installed else "TensorRT is not installed"
    return (
        f"onnxruntime {ort_version}'s {PROVIDER} is built for TensorRT {needed}.x, but {have}: "
        f"pip install '{wheel}>={needed},<{needed + 1}' for backend ort-trt, or use backend trt"
    )


def tensorrt_usable(ort: Any) -> bool:
    """Cheap check for listing backends: the installed TensorRT is the major the provider needs."""
    library = provider_library(ort)
    if library is None:
        return False
    needed = linked_tensorrt_major(library)
    installed = installed_tensorrt_version()
    return installed is not None and (needed is None or tensorrt_major(installed) == needed)


def prepare_tensorrt(ort: Any) -> None:
    """Before a session asks for the TensorRT provider: refuse, in one line, a TensorRT of another major,
    then import ``tensorrt``, which loads its libraries (pip's tensorrt_libs are not on the loader path), so
    the provider library's libnvinfer dependency resolves to them."""
    library = provider_library(ort)
    needed = linked_tensorrt_major(library) if library is not None else None
    if needed is not None:
        problem = tensorrt_mismatch(ort.__version__, needed, installed_tensorrt_version(), ort_cuda_version())
        if problem:
            raise BackendUnavailableError(problem)
    import importlib

    try:
        importlib.import_module("tensorrt")
    except Exception as exc:  # noqa: BLE001 - a native library that fails to load raises ImportError or OSError
        reason = first_line(exc)
        raise BackendUnavailableError(
            f"onnxruntime's {PROVIDER} needs TensorRT, which does not import here ({reason})"
        ) from None


def precision_options(model: Any, library: Optional[Path]) -> dict:
    """The provider's precision options for an ONNX graph: its reduced types and Q/DQ nodes enabled, and
    the normalizations kept in FP32 as the exporter keeps them."""
    from onnx import TensorProto

    graph = model.graph
    types = {init.data_type for init in graph.initializer}
    types |= {value.type.tensor_type.elem_type for value in list(graph.input) + list(graph.output)}
    types |= {attr.i for node in graph.node if node.op_type == "Cast" for attr in node.attribute if attr.name == "to"}
    quantized = any(node.op_type in ("QuantizeLinear", "DequantizeLinear") for node in graph.node)
    options = {}
    if TensorProto.FLOAT16 in types:
        options["trt_fp16_enable"] = "True"
    if TensorProto.BFLOAT16 in types and library is not None and knows_option(library, "trt_bf16_enable"):
        options["trt_bf16_enable"] = "True"
    if options and library is not None and knows_option(library, "trt_layer_norm_fp32_fallback"):
        options["trt_layer_norm_fp32_fallback"] = "True"
    if quantized and types & {TensorProto.INT8, TensorProto.UINT8}:
        options["trt_int8_enable"] = "True"
    return options
