"""Where the numbers were measured: host, accelerators, library versions (recorded in every report)."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Optional

import numpy as np


def _version(dist: str) -> Optional[str]:
    try:
        return importlib_metadata.version(dist)
    except importlib_metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _nvidia_smi() -> dict:
    """GPU names and driver version from nvidia-smi, when there is one."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    gpus = [
        dict(zip(("name", "driver", "memory"), (p.strip() for p in line.split(","))))
        for line in out.splitlines()
        if line.strip()
    ]
    if not gpus:
        return {}
    return {"gpus": [g["name"] for g in gpus], "driver": gpus[0].get("driver"), "gpu_memory": gpus[0].get("memory")}


def capture_environment() -> dict:
    """Where the numbers were measured: host, accelerators, library versions."""
    import torch

    from vit5_infer.engines.tensorrt_support import installed_tensorrt_version

    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "vit5_infer": _version("vit5-infer") or __import__("vit5_infer").__version__,
        "numpy": np.__version__,
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "torch_cuda": torch.version.cuda,
        "onnx": _version("onnx"),
        "onnxruntime": _version("onnxruntime-gpu") or _version("onnxruntime"),
        "tensorrt": installed_tensorrt_version(),
    }
    try:
        import onnxruntime

        env["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except ImportError:
        env["onnxruntime_providers"] = []
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
        env["gpu_capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
    smi = _nvidia_smi()
    if smi:
        env.setdefault("gpu", smi["gpus"][0])
        env["gpus"] = smi["gpus"]
        env["driver"] = smi["driver"]
        env["gpu_memory"] = smi["gpu_memory"]
    else:
        env["driver"] = None
    return env
