"""Backend names -> runners, and which backends this machine can run.

Each backend is one ``Backend`` entry in ``BACKENDS``: its name, the kind of source it runs (a loaded
network, an .onnx file or a TensorRT engine), the function that makes its runner and the cheap check of
whether it can run here.  Everything that lists backends (the benchmark, the server, the CLI's choices)
reads this table, so a new backend is one runner module plus one ``register_backend`` call.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from vit5_infer.vocabulary import PRECISION_NAMES

from .base import Runner
from .errors import BackendError

PRECISIONS = PRECISION_NAMES
#: what a backend runs: a loaded ViT5ClassificationNet, an .onnx file or a TensorRT engine
SOURCE_KINDS = ("model", "onnx", "engine")


@dataclass(frozen=True)
class Backend:
    name: str
    #: one of SOURCE_KINDS
    runs: str
    #: ``make(source, precision=, batch_hint=, threads=, **options) -> Runner``; the source is already checked
    #: to be of the kind ``runs`` names
    make: Callable[..., Runner]
    #: whether it can run here, cheaply decided (no session, engine or model is created)
    available: Callable[[], bool]
    #: graphs made for an onnx backend are exported for this target: "ort", or "tensorrt" (the TensorRT
    #: release installed here)
    graph_target: str = "ort"


#: name -> Backend, in the order reports list them
BACKENDS: dict[str, Backend] = {}


def register_backend(backend: Backend) -> Backend:
    if backend.runs not in SOURCE_KINDS:
        raise ValueError(f"backend {backend.name!r} runs {backend.runs!r}; use one of {', '.join(SOURCE_KINDS)}")
    if backend.name in BACKENDS:
        raise ValueError(f"backend {backend.name!r} is registered already")
    BACKENDS[backend.name] = backend
    return backend


def backends_running(kind: str) -> tuple[str, ...]:
    """The backends whose source is of ``kind`` (SOURCE_KINDS)."""
    return tuple(name for name, backend in BACKENDS.items() if backend.runs == kind)


def runs(backend: str) -> str:
    """The kind of source ``backend`` runs; BackendError for an unknown name."""
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    return BACKENDS[backend].runs


def _module_present(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def available_backends() -> list[str]:
    """The backends that can run here, cheaply decided (no session, engine or model is created)."""
    return [name for name, backend in BACKENDS.items() if backend.available()]


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
    kind = runs(backend)
    if precision not in PRECISIONS:
        raise BackendError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")

    if kind == "model":
        import torch

        if not isinstance(source, torch.nn.Module):
            raise BackendError(f"backend {backend} runs a loaded ViT5ClassificationNet, not {_describe(source)}")
        return BACKENDS[backend].make(source, precision=precision, batch_hint=batch_hint, threads=threads, **options)

    if not isinstance(source, (str, Path)):
        raise BackendError(f"backend {backend} runs a file path, not {_describe(source)}")
    path = Path(source)
    if kind == "onnx" and path.suffix.lower() != ".onnx":
        raise BackendError(f"backend {backend} runs an .onnx file, not {path}")
    if kind == "engine":
        from vit5_infer.vocabulary import ENGINE_SUFFIXES

        if path.suffix.lower() not in ENGINE_SUFFIXES:
            hint = " (build one with 'vit5 build-engine')" if path.suffix.lower() == ".onnx" else ""
            raise BackendError(
                f"backend {backend} runs a TensorRT engine ({', '.join(ENGINE_SUFFIXES)}), not {path}{hint}"
            )
    return BACKENDS[backend].make(path, precision=precision, batch_hint=batch_hint, threads=threads, **options)


def _torch_runner(compile: bool) -> Callable[..., Runner]:
    def make(model, *, precision: str, batch_hint: Optional[int], threads: Optional[int], **options: Any) -> Runner:
        from .torch_runner import TorchRunner

        device = options.pop("device", "cuda" if precision != "fp32" else "cpu")
        return TorchRunner(model, precision=precision, device=device, compile=compile, threads=threads, **options)

    return make


def _ort_runner(provider: str) -> Callable[..., Runner]:
    def make(
        path: Path, *, precision: str, batch_hint: Optional[int], threads: Optional[int], **options: Any
    ) -> Runner:
        from .ort_runner import OrtRunner

        if provider == "tensorrt" and path.is_file():
            options.setdefault("provider_options", _ort_trt_options(path, batch_hint))
        return OrtRunner(path, provider=provider, threads=threads, **options)

    return make


def _tensorrt_runner(
    path: Path, *, precision: str, batch_hint: Optional[int], threads: Optional[int], **options: Any
) -> Runner:
    from .tensorrt_runner import TensorRTRunner

    # An engine's precision was fixed when it was built (its manifest records it); ``precision`` is not used.
    return TensorRTRunner(path, device=int(options.pop("device", 0)))


def _torch_present() -> bool:
    return _module_present("torch")


def _torch_compile_present() -> bool:
    if not _module_present("torch"):
        return False
    import torch

    return hasattr(torch, "compile")


def _ort_provider_here(provider: Optional[str]) -> Callable[[], bool]:
    def available() -> bool:
        if not _module_present("onnxruntime"):
            return False
        if provider is None:
            return True
        from .cuda_device import has_cuda_driver

        if not has_cuda_driver():
            return False
        import onnxruntime as ort

        if provider not in ort.get_available_providers():
            return False
        if provider == "TensorrtExecutionProvider":
            from .ort_tensorrt import tensorrt_usable

            # ORT's TensorRT provider loads only with the TensorRT major it was built for (10.x up to 1.31).
            return bool(tensorrt_usable(ort))
        return True

    return available


def _tensorrt_here() -> bool:
    from .cuda_device import has_cuda_driver
    from .tensorrt_support import tensorrt_installed

    # Polygraphy's TrtRunner brings its own CUDA buffers: no CUDA torch needed
    return bool(has_cuda_driver() and tensorrt_installed())


register_backend(Backend("torch", "model", _torch_runner(compile=False), _torch_present))
register_backend(Backend("torch-compile", "model", _torch_runner(compile=True), _torch_compile_present))
register_backend(Backend("ort", "onnx", _ort_runner("cpu"), _ort_provider_here(None)))
register_backend(Backend("ort-cuda", "onnx", _ort_runner("cuda"), _ort_provider_here("CUDAExecutionProvider")))
register_backend(
    Backend(
        "ort-trt",
        "onnx",
        _ort_runner("tensorrt"),
        _ort_provider_here("TensorrtExecutionProvider"),
        graph_target="tensorrt",
    )
)
register_backend(Backend("trt", "engine", _tensorrt_runner, _tensorrt_here))


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
