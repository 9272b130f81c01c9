"""What NVIDIA GPU this process can use, asked without initializing torch or any backend.

The CUDA driver API (libcuda) answers "is there a GPU" cheaply and truthfully even when the
installed torch is a CPU build or onnxruntime-gpu sits on a machine without a GPU (it still lists
CUDAExecutionProvider there).  torch.cuda is the fallback where libcuda cannot be opened by name.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class CudaDevice:
    index: int
    name: str
    compute_capability: str  # "major.minor", e.g. "9.0"


def _open_driver() -> Optional[ctypes.CDLL]:
    names = ["nvcuda.dll"] if sys.platform == "win32" else ["libcuda.so.1", "libcuda.so"]
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


# CUdevice_attribute values from cuda.h (stable since CUDA 2.x).
_ATTR_CC_MAJOR = 75
_ATTR_CC_MINOR = 76


@functools.cache
def _driver_devices() -> Optional[tuple[CudaDevice, ...]]:
    """Devices seen by the driver API; None when the driver library itself is missing."""
    lib = _open_driver()
    if lib is None:
        return None
    if lib.cuInit(0) != 0:
        return ()
    count = ctypes.c_int(0)
    if lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return ()
    devices = []
    for index in range(count.value):
        handle = ctypes.c_int(0)
        if lib.cuDeviceGet(ctypes.byref(handle), index) != 0:
            continue
        name = ctypes.create_string_buffer(256)
        lib.cuDeviceGetName(name, 256, handle)
        major, minor = ctypes.c_int(0), ctypes.c_int(0)
        lib.cuDeviceGetAttribute(ctypes.byref(major), _ATTR_CC_MAJOR, handle)
        lib.cuDeviceGetAttribute(ctypes.byref(minor), _ATTR_CC_MINOR, handle)
        devices.append(CudaDevice(index, name.value.decode(errors="replace"), f"{major.value}.{minor.value}"))
    return tuple(devices)


def _torch_devices() -> tuple[CudaDevice, ...]:
    import torch

    if not torch.cuda.is_available():
        return ()
    devices = []
    for index in range(torch.cuda.device_count()):
        major, minor = torch.cuda.get_device_capability(index)
        devices.append(CudaDevice(index, torch.cuda.get_device_name(index), f"{major}.{minor}"))
    return tuple(devices)


def cuda_devices() -> tuple[CudaDevice, ...]:
    found = _driver_devices()
    return found if found is not None else _torch_devices()


def has_cuda_driver() -> bool:
    return bool(cuda_devices())


def cuda_device(index: int = 0) -> Optional[CudaDevice]:
    devices = cuda_devices()
    return devices[index] if 0 <= index < len(devices) else None
