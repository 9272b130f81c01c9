"""SOURCE -> the runner ``predict`` runs and its fingerprint, the way ``vit5 bench`` resolves a source.

A preset or checkpoint is exported (at ``--precision``, with the asked outputs) into a work folder;
an ONNX file or engine runs as it is.  The fingerprint is what a resumed run must share with the
dataset: the sha256 of the weights (a checkpoint's file, a preset's tensors) or of the graph/engine,
the precision, the preprocessing, the outputs and the backend.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

import numpy as np

from vit5_infer.errors import PredictError
from vit5_infer.preprocessing import Preprocessing, to_layout
from vit5_infer.vocabulary import LOGITS, QUANTIZED_PRECISIONS, PathLike, Progress

from .options import PredictOptions

_CHUNK = 1 << 20


def file_sha256(*paths: Path) -> str:
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            while block := handle.read(_CHUNK):
                h.update(block)
    return h.hexdigest()


def tensors_sha256(model) -> str:
    """sha256 over a module's parameters and buffers (name, dtype, shape, bytes), in state-dict order."""
    import torch

    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


@dataclass
class RunnerSpec:
    """How to make the runner anywhere (a Ray actor included): picklable, holds no loaded model."""

    backend: str
    precision: str
    path: Optional[str]  # the ONNX file or engine; None for torch backends
    threads: Optional[int] = None
    batch: int = 1
    layout: str = "nchw"
    module: object = None  # the network, for torch backends only
    outputs: tuple = (LOGITS,)  # what a torch backend's runner gives (a graph gives its own outputs)

    def make(self):
        from vit5_infer.engines.registry import make_runner

        if self.path is None:
            return make_runner(
                self.backend,
                copy.deepcopy(self.module),
                precision=self.precision,
                threads=self.threads,
                outputs=self.outputs,
            )
        return make_runner(
            self.backend, self.path, precision=self.precision, batch_hint=self.batch, threads=self.threads
        )

    def batch_input(self, pixels: np.ndarray) -> np.ndarray:
        """Decoded NCHW ``pixels`` (at most ``batch`` images) as the runner takes them: padded with zero images
        to a whole batch (engines and static graphs take whole batches), in the graph's layout."""
        n = len(pixels)
        if n < self.batch:
            pixels = np.concatenate([pixels, np.zeros((self.batch - n, *pixels.shape[1:]), np.float32)])
        return to_layout(pixels, self.layout)


@dataclass
class ResolvedModel:
    spec: RunnerSpec
    preprocessing: Preprocessing
    num_classes: int
    shapes: dict  # output name -> per-image shape
    fingerprint: dict = field(default_factory=dict)

    @property
    def extra_outputs(self) -> list[str]:
        """The outputs written beside the classes and scores (which come from the logits)."""
        return [name for name in self.shapes if name != LOGITS]


def resolve_model(options: PredictOptions, workdir: PathLike, progress: Progress = None) -> ResolvedModel:
    """The runner spec, preprocessing and fingerprint of ``options.source``; exports go to ``workdir``."""
    from vit5_infer.engines.registry import BACKENDS, backends_running, runs
    from vit5_infer.outputs import output_shapes

    from ..artifacts import Artifacts, unrunnable_reason
    from ..sources import check_graph_batches, compared_outputs, graph_layout, source_kind

    source = options.source
    kind = source_kind(source)
    backend = options.backend or ("trt" if kind == "engine" else "ort")
    if backend not in BACKENDS:
        raise PredictError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if kind != "model" and not Path(source).is_file():
        raise PredictError(f"SOURCE: {source} not found")
    if kind != "model" and (options.precision != "fp32" or options.calibration is not None):
        raise PredictError(
            f"--precision/--calibration shape a preset or checkpoint exported here; {source} runs at "
            f"its own precision: leave them out"
        )
    if kind == "engine" and runs(backend) != "engine":
        engine_backends = " or ".join(backends_running("engine"))
        raise PredictError(f"{source} is a TensorRT engine; run it with --backend {engine_backends}")
    if kind == "onnx" and runs(backend) != "onnx":
        *first, last = backends_running("onnx")
        raise PredictError(
            f"an ONNX file runs on {', '.join(first)} or {last}, not {backend}"
            if first
            else f"an ONNX file runs on {last}, not {backend}"
        )
    why = unrunnable_reason(backend, options.precision, kind)
    if why:
        raise PredictError(f"{backend} cannot run --precision {options.precision}: {why}")
    if kind == "model" and options.precision in QUANTIZED_PRECISIONS and options.calibration is None:
        raise PredictError(f"--precision {options.precision} needs calibration images: --calibration DIR")
    progress = progress or (lambda message: None)
    overrides = {k: v for k, v in (options.preprocessing or {}).items() if v is not None}

    if kind == "model":
        progress(f"loading {source}")
        from vit5_infer.loading import load_source

        model, origin = load_source(source, options.load)
        config, metadata = model.config, {}
        outputs = compared_outputs(model, options.model_outputs)
        pre = Preprocessing.from_metadata({}, config.network.image_size).with_overrides(**overrides)
        weights = origin.sha256 or tensors_sha256(model)
        artifacts = Artifacts(
            source,
            kind,
            model,
            origin,
            Path(workdir),
            options.batch,
            progress=progress,
            calibration=options.calibration,
            preprocessing=pre,
            outputs=outputs,
        )
        path = artifacts.runner_source(backend, options.precision)
        identity = {
            "source": f"{origin.kind} {origin.name}",
            "weights_sha256": weights,
            "architecture_sha256": hashlib.sha256(repr(sorted(config.to_dict().items())).encode()).hexdigest(),
        }
        module = model if runs(backend) == "model" else None
        precision = options.precision
    else:
        from vit5_infer.graph_metadata import config_from_metadata, read_metadata

        if kind == "engine":
            from vit5_infer.engine_manifest import read_manifest, source_onnx

            graph, precision = source_onnx(source), str(read_manifest(source).precision)
            metadata = read_metadata(graph)
            hashed = [Path(source)]
        else:
            import onnx

            from vit5_infer.files import external_data_paths

            graph = Path(source)
            model = onnx.load(str(graph), load_external_data=False)
            metadata = read_metadata(model)
            precision = str(metadata.get("precision") or "fp32")
            # the weights are part of the model: every external-data file the graph names, whatever its name
            hashed = [graph, *external_data_paths(graph, model)]
        config = config_from_metadata(metadata)
        check_graph_batches(source, metadata, [options.batch])
        # compared_outputs reads only the model's config: a given graph needs no PyTorch model
        outputs = compared_outputs(SimpleNamespace(config=config), options.model_outputs, graph)
        pre = Preprocessing.from_metadata(metadata, config.network.image_size).with_overrides(**overrides)
        identity = {"source": f"{kind} {Path(source).name}", f"{kind}_sha256": file_sha256(*hashed)}
        path, module = Path(source), None

    shapes = {name: list(shape[1:]) for name, shape in output_shapes(config, 1).items() if name in outputs}
    spec = RunnerSpec(
        backend,
        precision,
        None if path is None else str(path),
        options.threads,
        options.batch,
        graph_layout(metadata),
        module,
        tuple(outputs),
    )
    fingerprint = {
        **identity,
        "precision": precision,
        "backend": backend,
        "outputs": list(outputs),
        "preprocessing": pre.to_metadata(spec.layout),
    }
    return ResolvedModel(spec, pre, config.network.num_classes, shapes, fingerprint)
