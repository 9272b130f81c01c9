"""Backend names -> runners, and which backends this machine can run.

Backends: torch, torch-compile (a ViT5ClassificationNet), ort, ort-cuda, ort-trt (an .onnx file),
trt (a TensorRT .engine built by build_engine).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Optional

from vit5_infer.vocabulary import Precision

from .base import Runner
from .errors import BackendError

BACKENDS = ("torch", "torch-compile", "ort", "ort-cuda", "ort-trt", "trt")
PRECISIONS = tuple(p.value for p in Precision)
_ORT_PROVIDER = {"ort": "cpu", "ort-cuda": "cuda", "ort-trt": "tensorrt"}


def _module_present(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def available_backends() -> list[str]:
    """The backends that can run here, cheaply decided (no session, engine or model is created)."""
    from .cuda_device import has_cuda_driver
    from .ort_tensorrt import tensorrt_usable
    from .tensorrt_support import tensorrt_installed

    found = []
    if _module_present("torch"):
        import torch

        found.append("torch")
        if hasattr(torch, "compile"):
            found.append("torch-compile")
    gpu = has_cuda_driver()
    if _module_present("onnxruntime"):
        import onnxruntime as ort

        found.append("ort")
        providers = set(ort.get_available_providers())
        if gpu and "CUDAExecutionProvider" in providers:
            found.append("ort-cuda")
        # ORT's TensorRT provider loads only with the TensorRT major it was built for (10.x up to 1.31).
        if gpu and "TensorrtExecutionProvider" in providers and tensorrt_usable(ort):
            found.append("ort-trt")
    if gpu and tensorrt_installed():
        found.append("trt")  # Polygraphy's TrtRunner brings its own CUDA buffers: no CUDA torch needed
    return found


def _describe(source: Any) -> str:
    return f"{source}" if isinstance(source, (str, Path)) else type(source).__name__


def make_runner(
    backend: str,
    source: Any,
    *,
    precision: str = "fp32",
    batch_hint: Optional[int] = None,
    threads: Optional[int] = None,
    **options: Any,
) -> Runner:
    """A runner (not yet loaded; use it as a context manager) for ``backend`` on ``source``.

    ``options`` go to the runner: device / compile_options (torch), graph_optimization /
    optimized_model_cache / provider_options (ort*), device (trt, a GPU index).
    ``batch_hint`` is the batch size the caller will mostly run; ort-trt builds its engine for
    batches 1..batch_hint with that as the optimal one (instead of rebuilding per new shape).
    """
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise BackendError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")

    if backend in ("torch", "torch-compile"):
        import torch

        from .torch_runner import TorchRunner

        if not isinstance(source, torch.nn.Module):
            raise BackendError(f"backend {backend} runs a loaded ViT5ClassificationNet, not {_describe(source)}")
        device = options.pop("device", "cuda" if precision != "fp32" else "cpu")
        return TorchRunner(
            source, precision=precision, device=device, compile=backend == "torch-compile", threads=threads, **options
        )

    if not isinstance(source, (str, Path)):
        raise BackendError(f"backend {backend} runs a file path, not {_describe(source)}")
    path = Path(source)

    if backend in _ORT_PROVIDER:
        from .ort_runner import OrtRunner

        if path.suffix.lower() != ".onnx":
            raise BackendError(f"backend {backend} runs an .onnx file, not {path}")
        if backend == "ort-trt" and path.is_file():
            options.setdefault("provider_options", _ort_trt_options(path, batch_hint))
        return OrtRunner(path, provider=_ORT_PROVIDER[backend], threads=threads, **options)

    from .tensorrt_runner import ENGINE_SUFFIXES, TensorRTRunner

    if path.suffix.lower() not in ENGINE_SUFFIXES:
        hint = " (build one with 'vit5 build-engine')" if path.suffix.lower() == ".onnx" else ""
        raise BackendError(f"backend trt runs a TensorRT engine ({', '.join(ENGINE_SUFFIXES)}), not {path}{hint}")
    # An engine's precision was fixed when it was built (its manifest records it); ``precision`` is not used.
    return TensorRTRunner(path, device=int(options.pop("device", 0)))


def _ort_trt_options(onnx_path: Path, batch: Optional[int]) -> dict:
    """TensorRT EP options: the precision options the graph's types need (ORT's TensorRT networks are
    weakly typed: see ort_tensorrt) and, given a batch, an explicit pixel_values profile 1..batch (opt = batch)."""
    import onnx
    import onnxruntime as ort

    from .ort_tensorrt import precision_options, provider_library

    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception:  # noqa: BLE001 - not an ONNX file: the runner's load says so in one line
        return {}
    options = precision_options(model, provider_library(ort))
    inputs = {i.name: i for i in model.graph.input}
    if not batch or "pixel_values" not in inputs:
        return options
    dims = [d.dim_value for d in inputs["pixel_values"].type.tensor_type.shape.dim][1:]
    if len(dims) != 3 or not all(dims):
        return options
    chw = "x".join(str(d) for d in dims)
    return {
        **options,
        "trt_profile_min_shapes": f"pixel_values:1x{chw}",
        "trt_profile_opt_shapes": f"pixel_values:{batch}x{chw}",
        "trt_profile_max_shapes": f"pixel_values:{batch}x{chw}",
    }
