"""SOURCE -> the model to serve: which runner runs it and what it takes and gives.

A preset or checkpoint is exported to a temporary ONNX file (FP32 or FP16, dynamic batch) and
served on ONNX Runtime unless a torch backend is asked for; an ``.onnx`` file runs on an ``ort*``
backend, an engine on ``trt``.  Nothing is loaded here: ``new_runner()`` gives one unloaded runner
per Triton model instance.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

from vit5_infer.files import external_data_paths
from vit5_infer.load_options import LoadOptions
from vit5_infer.vocabulary import PathLike, Progress, is_engine_path, is_onnx_path

from .errors import RepositoryError, ServeError
from .signature import ModelSignature, config_signature, engine_signature, onnx_signature

_NAME = re.compile(r"[A-Za-z0-9_.-]+")
#: Room is left below the filesystem's 255-byte name limit for the staging folder's ``.NAME.staging-PID-XXXXXXXX``.
MAX_NAME_LENGTH = 200


def model_name(source: PathLike, name: Optional[str] = None) -> str:
    """The name Triton serves the model under: ``name``, else the preset name or the file's stem."""
    if name is not None:
        if len(name) > MAX_NAME_LENGTH:
            raise RepositoryError(
                f"model name {name[:40]}... is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}"
            )
        if not _NAME.fullmatch(name) or name.startswith("."):
            raise RepositoryError(f"model name {name!r} may hold only letters, digits, '_', '.' and '-'")
        return name
    text = str(source)
    stem = Path(text).stem if (is_onnx_path(text) or is_engine_path(text) or Path(text).suffix) else text
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", stem)[:MAX_NAME_LENGTH].strip(".-") or "model"


@dataclass
class ServedModel:
    name: str
    backend: str
    signature: ModelSignature
    #: the file the runners load (None for torch backends, which run the network in memory)
    path: Optional[Path]
    new_runner: Callable[[], Any]
    #: the files the server reads (source, graph, external data, manifest): never an output such as --log-file
    inputs: tuple = ()

    def describe(self) -> str:
        where = f" from {self.path.name}" if self.path is not None else ""
        return f"{self.name} ({self.backend}{where}, max batch {self.signature.max_batch})"


def export_served_graph(
    model, origin, path: Path, precision: str, progress: Progress, opset: Optional[int] = None
) -> Path:
    """The ONNX graph a preset or checkpoint is served from (``vit5 serve``) or copied into a model
    repository (``vit5 triton-repo``); ``opset`` None is the exporter's default."""
    from vit5_infer.exporters import export_onnx  # lazy: the exporter pulls in torch

    if progress:
        progress(f"exporting {origin.name} to ONNX ({precision})")
    result = export_onnx(model, path, opset=opset, precision=precision, source=origin, progress=progress)
    return Path(result.path)


def resolve_served_model(
    source: PathLike,
    workdir: PathLike,
    *,
    backend: Optional[str] = None,
    precision: str = "fp32",
    name: Optional[str] = None,
    max_batch: Optional[int] = None,
    threads: Optional[int] = None,
    load_options: Optional[LoadOptions] = None,
    progress: Progress = None,
) -> ServedModel:
    """What ``vit5 serve SOURCE`` serves.  ``workdir`` receives the exported graph of a preset or
    checkpoint and must outlive the server; ``load_options`` say how a preset or checkpoint is
    loaded (config, weights, trust_pickle, seed and architecture overrides)."""
    from vit5_infer.engines.registry import BACKENDS, backends_running, make_runner

    if backend is not None and backend not in BACKENDS:
        raise ServeError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    text = str(source)
    served_name = model_name(source, name)
    if (is_engine_path(text) or is_onnx_path(text)) and precision != "fp32":
        raise ServeError(
            f"--precision {precision} only shapes a preset or checkpoint exported here; {text} is served "
            f"as it is: leave it out, or give the preset or checkpoint"
        )

    if is_engine_path(text):
        engine_backend = backend or "trt"
        if engine_backend not in backends_running("engine"):
            engine_backends = " or ".join(backends_running("engine"))
            raise ServeError(f"{text} is a TensorRT engine; serve it with --backend {engine_backends}")
        path = Path(text)
        if not path.is_file():
            raise ServeError(f"{path}: TensorRT engine not found")
        signature = engine_signature(path, max_batch)
        return ServedModel(
            served_name,
            engine_backend,
            signature,
            path,
            lambda: make_runner(engine_backend, path),
            inputs=(path, Path(text + ".json")),
        )

    if is_onnx_path(text):
        return _onnx_model(Path(text), served_name, backend or "ort", max_batch, threads)

    from vit5_infer.loading import load_source  # lazy: loading imports torch

    backend = backend or "ort"
    model, origin = load_source(source, load_options)
    read = (Path(text),) if Path(text).exists() else ()
    if backend in backends_running("model"):
        signature = config_signature(model.config, max_batch)
        return ServedModel(
            served_name,
            backend,
            signature,
            None,
            lambda: make_runner(backend, model, precision=precision, threads=threads),
            inputs=read,
        )
    if backend not in backends_running("onnx"):
        served_on = backends_running("model") + backends_running("onnx")
        raise ServeError(
            f"a preset or checkpoint is served on {', '.join(served_on)}; "
            f"for trt build an engine first ('vit5 build-engine') and serve that"
        )
    path = export_served_graph(model, origin, Path(workdir) / f"{served_name}.onnx", precision, progress)
    served = _onnx_model(path, served_name, backend, max_batch, threads)
    return replace(served, inputs=served.inputs + read)


def _onnx_model(path: Path, name: str, backend: str, max_batch: Optional[int], threads: Optional[int]) -> ServedModel:
    from vit5_infer.engines.registry import backends_running, make_runner

    if backend not in backends_running("onnx"):
        raise ServeError(f"an ONNX file is served on {', '.join(backends_running('onnx'))}, not {backend}")
    if not path.is_file():
        raise ServeError(f"{path}: ONNX file not found")
    signature = onnx_signature(path, max_batch)
    return ServedModel(
        name,
        backend,
        signature,
        path,
        lambda: make_runner(backend, path, threads=threads, batch_hint=signature.max_batch),
        inputs=(path, *external_data_paths(path)),
    )
