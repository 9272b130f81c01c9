"""Importing TensorRT lazily, and the few facts that differ between TensorRT 10.x and 11.x.

TensorRT 10.x: networks are weakly typed unless created with NetworkDefinitionCreationFlag.STRONGLY_TYPED
(added in 9.x); the FP16/BF16 builder flags exist.
TensorRT 11.x: every network is strongly typed (the flag is kept but ignored, per the 11.0 release
notes) and BuilderFlag.FP16/BF16 are removed.  Building from a graph that already carries its FP16
types with a strongly typed network therefore gives the same numerics on both.
"""

from __future__ import annotations

import importlib.util
from types import ModuleType

from .cuda_device import CudaDevice, cuda_device, torch_has_cuda
from .errors import NoGPUError, TensorRTUnavailableError

SUPPORTED_MAJORS = (10, 11)


def tensorrt_installed() -> bool:
    """Cheap check (no import): is a ``tensorrt`` package on the path?"""
    try:
        return importlib.util.find_spec("tensorrt") is not None
    except (ImportError, ValueError):
        return False


def import_tensorrt() -> ModuleType:
    """``import tensorrt``, or a one-line TensorRTUnavailableError saying how to install it."""
    try:
        import tensorrt as trt  # noqa: PLC0415 - lazy on purpose: optional, heavy, GPU-only
    except ImportError as exc:
        # A present package whose native libraries fail to load is reported with the loader's reason.
        raise TensorRTUnavailableError("" if not tensorrt_installed() else str(exc).splitlines()[0]) from None
    major = tensorrt_major(trt.__version__)
    if major not in SUPPORTED_MAJORS:
        raise TensorRTUnavailableError(
            f"found TensorRT {trt.__version__}; vit5-infer supports TensorRT {' and '.join(f'{m}.x' for m in SUPPORTED_MAJORS)}"
        )
    return trt


def tensorrt_major(version: str) -> int:
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        return 0


def require_gpu(what: str, device: int = 0) -> CudaDevice:
    """The GPU TensorRT will use; NoGPUError when there is none or torch cannot reach it."""
    found = cuda_device(device)
    if found is None:
        raise NoGPUError(what, "no CUDA device found" if device == 0 else f"no CUDA device {device}")
    if not torch_has_cuda():
        # The runner keeps its I/O buffers in torch CUDA tensors.
        raise NoGPUError(what, "the installed torch is a CPU-only build; install a CUDA build of torch")
    return found


def strongly_typed_flags(trt: ModuleType) -> int:
    """Network creation flags for a strongly typed network on TensorRT 10.x and 11.x."""
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if flag is None:
        # TensorRT 11.x may drop the deprecated flag; strong typing is then the only mode.
        return 0
    return 1 << int(flag)
