"""``run_benchmark``: every chosen backend on the same inputs, timed and compared with PyTorch FP32,
output by output (logits and, where asked or exported, the backbone features).

It owns the whole pipeline: load the model (or rebuild the one an ONNX file or engine came from),
make the inputs and the reference, export and build what each backend runs, time every backend at
every batch size, and return one ``BenchReport``.  The CLI only parses flags and prints.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from vit5_infer.engines.host_memory import peak_rss_bytes, reset_peak_rss
from vit5_infer.errors import BenchError
from vit5_infer.load_options import LoadOptions
from vit5_infer.loading import load_source, model_from_onnx
from vit5_infer.preprocessing import Preprocessing, to_layout
from vit5_infer.vocabulary import LOGITS, PRECISION_NAMES, QUANTIZED_PRECISIONS, PathLike, Precision, Progress

from ..artifacts import Artifacts, recorded_precision, unrunnable_reason
from ..labelled_images import LabelledImages, dataset_accuracy, read_class_index
from ..sources import check_graph_batches, compared_outputs, graph_layout, source_kind
from .environment import capture_environment
from .inputs import image_inputs, reference_outputs, seeded_inputs
from .report import report_dict
from .results import BenchResult, make_result
from .timing import END_TO_END, GPU_COMPUTE, HOST_LATENCY, TimingPlan, time_measured, time_runner

if TYPE_CHECKING:
    from vit5_infer.engines.base import Runner

#: (label, phase "warmup"/"timed", done, total) for per-iteration progress bars
BenchProgress = Callable[[str, str, int, Optional[int]], None]


@dataclass(frozen=True)
class BackendPlan:
    """One backend to benchmark: how to make its runner (called once, reused for every batch size)."""

    backend: str
    precision: str
    make: Callable[[], Runner]  # not yet loaded
    layout: str = "nchw"  # of the runner's input: a given ONNX file or engine may take NHWC


@dataclass(frozen=True)
class BenchReport:
    model: dict
    environment: dict
    settings: dict
    results: tuple
    title: str = ""

    @property
    def failures(self) -> list[BenchResult]:
        return [r for r in self.results if not r.passed]

    def to_dict(self) -> dict:
        return report_dict(self.model, self.environment, self.results, self.settings)


def time_figures(
    runner,
    x: np.ndarray,
    timing: TimingPlan,
    cuda_graph: bool = False,
    iteration_progress: Optional[Callable[[str], Optional[Callable]]] = None,
) -> tuple[dict, Any]:
    """The timing figures of one runner at one batch, and its outputs (by name) for the accuracy check.

    A runner with a ``timer`` (TensorRT) is timed as trtexec times an engine: ``gpu_compute`` and
    ``host_latency`` (timing.TIMING_FIGURES), replaying a CUDA graph of the enqueue when ``cuda_graph``; its
    outputs come from one ``run``.  Any other runner is timed ``end_to_end`` around ``run``.
    ``iteration_progress(figure)`` gives the per-iteration callback for that figure."""
    step = iteration_progress or (lambda figure: None)
    timer = getattr(runner, "timer", None)
    if timer is None:
        samples, out = time_runner(runner.run, x, timing, device=runner.device, progress=step(END_TO_END))
        return {END_TO_END: samples}, out
    out = runner.run(x)
    with timer(x, cuda_graph=cuda_graph) as engine:
        figures = {
            GPU_COMPUTE: time_measured(engine.gpu_compute_ms, timing, step(GPU_COMPUTE)),
            HOST_LATENCY: time_measured(engine.host_latency_ms, timing, step(HOST_LATENCY)),
        }
    return figures, out


def run_backend(
    plan: BackendPlan,
    inputs: dict,
    references: dict,
    timing: TimingPlan,
    flops_per_image: Optional[int] = None,
    iteration_progress: Optional[BenchProgress] = None,
    progress: Progress = None,
    dataset=None,
    cuda_graph: bool = False,
) -> list[BenchResult]:
    """Load the backend once, then time it at every batch size of ``inputs``; ``references``:
    batch size -> {output name: array}, every one of them compared.  ``cuda_graph``: TensorRT runners
    replay a CUDA graph of their enqueue."""
    runner = plan.make()
    results = []
    if progress:
        progress(f"loading {plan.backend} [{plan.precision}]")
    with runner:
        for batch, x in inputs.items():
            label = f"{plan.backend} [{plan.precision}] batch {batch}"
            # CPU runners have no device allocator to ask: use the process's peak RSS, reset per run.
            host_peak = runner.device == "cpu" and reset_peak_rss()
            if progress:
                # torch.compile and TensorRT do their heavy work on the first call of a new shape
                progress(f"warming up {label}")
            if plan.layout == "nhwc":
                x = to_layout(x, plan.layout)

            def step(figure, _label=label):
                if not iteration_progress:
                    return None
                shown = _label if figure == END_TO_END else f"{_label} {figure.replace('_', ' ')}"
                return lambda phase, done, total: iteration_progress(shown, phase, done, total)

            figures, out = time_figures(runner, x, timing, cuda_graph, step)
            missing = [name for name in references[batch] if name not in out]
            if missing:
                raise BenchError(f"{plan.backend} [{plan.precision}] gives {', '.join(out)}, not {', '.join(missing)}")
            peak = runner.peak_memory_bytes() or (peak_rss_bytes() if host_peak else None)
            for figure, samples in figures.items():
                results.append(
                    make_result(
                        plan.backend,
                        plan.precision,
                        batch,
                        runner.device,
                        samples,
                        references[batch],
                        {name: out[name] for name in references[batch]},
                        flops_per_image=flops_per_image,
                        peak_memory_bytes=peak,
                        timing=figure,
                        cuda_graph=cuda_graph and figure != END_TO_END,
                    )
                )
        if dataset is not None:
            # Once per backend, after the timing: the accuracy does not depend on the batch size.
            data, pre = dataset
            if progress:
                progress(f"{plan.backend} [{plan.precision}] on {len(data.files)} labelled images")
            run = runner.run if plan.layout == "nchw" else (lambda x: runner.run(to_layout(x, plan.layout)))
            measured = dataset_accuracy(run, data, pre, max(inputs))
            results = [replace(r, dataset=measured) for r in results]
    return results


def backend_plans(
    backends: Sequence[str],
    precisions: Sequence[str],
    artifacts: Artifacts,
    threads: Optional[int],
    device: str,
    outputs: Sequence[str] = (LOGITS,),
    layout: str = "nchw",
) -> list[BackendPlan]:
    from vit5_infer.engines.registry import make_runner, runs

    plans = []
    for backend in backends:
        for precision in artifacts.precisions_for(backend, list(precisions)):
            if runs(backend) == "model":
                # A copy: runners move and compile their module, the reference must stay as it is.
                def make(backend=backend, precision=precision):
                    return make_runner(
                        backend,
                        copy.deepcopy(artifacts.model),
                        precision=precision,
                        threads=threads,
                        device=device,
                        outputs=tuple(outputs),
                    )
            else:

                def make(backend=backend, precision=precision):
                    return make_runner(
                        backend,
                        artifacts.runner_source(backend, precision),
                        precision=precision,
                        batch_hint=artifacts.max_batch,
                        threads=threads,
                    )

            plans.append(BackendPlan(backend, precision, make, layout="nchw" if runs(backend) == "model" else layout))
    return plans


def check_combinations(backends: Sequence[str], precisions: Sequence[str], kind: str, warn: Progress = None) -> None:
    """Say which backend/precision pairs asked for cannot run, before any work; refuse when none can."""
    if kind != "model":  # a given ONNX file or engine runs at its own precision on every backend
        return
    dropped = [(b, p, why) for b in backends for p in precisions if (why := unrunnable_reason(b, p, kind))]
    if len(dropped) == len(backends) * len(precisions):
        pairs = ", ".join(f"{b} [{p}]" for b, p, _ in dropped)
        raise BenchError(
            f"nothing to benchmark: {pairs} cannot run; {'; '.join(dict.fromkeys(w for *_, w in dropped))}"
        )
    for backend, precision, why in dropped:
        if warn:
            warn(f"{backend} [{precision}] skipped: {why}")


def check_given_precisions(source: PathLike, kind: str, settings: BenchSettings) -> None:
    """A given ONNX file or engine runs at its own precision: bench quantizes only what it exports itself, so
    an int8/fp8 it would not run, or calibration images it would not read, are refused before any work."""
    quantized = [p for p in settings.precisions if Precision.parse(p).is_quantized]
    own: set = set()
    if quantized and kind == "engine":
        from vit5_infer.engine_manifest import read_manifest, source_onnx

        own = {str(read_manifest(source).precision), recorded_precision(source_onnx(source))}
    elif quantized:
        own = {recorded_precision(Path(source))}
    missing = [p for p in quantized if p not in own]
    if missing:
        raise BenchError(
            f"{Path(source).name} is an {'/'.join(sorted(own))} graph and runs at its own precision; "
            f"--precision {missing[0]} quantizes a preset or checkpoint: bench that with --precision {missing[0]} "
            f"--calibration DIR, or bench a graph from 'vit5 export SOURCE -o q.onnx --precision {missing[0]} "
            f"--calibration DIR'"
        )
    if settings.calibration is not None:
        raise BenchError(
            f"--calibration calibrates the int8/fp8 exports of a preset or checkpoint; {source} runs "
            f"as it is: leave --calibration out"
        )


def engine_backends(
    source: PathLike, asked: Optional[Sequence[str]], here: Sequence[str], warn: Progress = None
) -> list[str]:
    """The backends that run a given engine: ``trt`` itself unless others are asked for by name, and then
    the note that they run the engine's source ONNX, not the engine."""
    if not Path(source).is_file():
        raise BenchError(f"engine not found: {source}")
    if not asked:
        return ["trt"]
    from vit5_infer.engines.registry import runs

    others = [b for b in asked if runs(b) == "onnx"]
    if others and warn:
        warn(f"{', '.join(others)} run(s) the ONNX file {source} was built from, not the engine itself")
    return list(asked)


def model_info(model, name: str, kind: str, **extra) -> dict:
    """The ``model`` section of the report."""
    from vit5_infer.config import config_summary

    info = {
        "name": name,
        "kind": kind,
        "input_shape": list(model.input_shape),
        "parameters": model.num_parameters(),
        "flops_per_image": model.flop_count(inference=True),
        "architecture": config_summary(model.config),
        "config": model.config.to_dict(),
    }
    info.update({k: v for k, v in extra.items() if v is not None})
    return info


@dataclass
class BenchSettings:
    backends: Optional[Sequence[str]] = None  # None: every backend available here
    batches: Sequence[int] = (1,)
    precisions: Sequence[str] = ("fp32",)
    images: Optional[PathLike] = None  # None: seeded random inputs
    #: class index of each class folder of ``images`` (dataset.read_class_index); None: sorted folder order
    labels: Optional[PathLike] = None
    timing: TimingPlan = field(default_factory=lambda: TimingPlan(iters=20, warmup=3))
    threads: Optional[int] = None
    device: Optional[str] = None  # of the torch backends; None: cuda when available
    load: LoadOptions = field(default_factory=LoadOptions)
    #: outputs compared with PyTorch (vit5_infer.vocabulary.OUTPUT_NAMES); None: logits for a preset or
    #: checkpoint (whose exports then carry these outputs), every output of a given ONNX file or engine
    outputs: Optional[Sequence[str]] = None
    #: preprocessing fields set by the user (mean, std, crop_ratio, interpolation): they win over a
    #: graph's recorded preprocessing and SPEC 8.4's default
    preprocessing: Optional[dict] = None
    #: images int8/fp8 exports of a preset or checkpoint calibrate on
    calibration: Optional[PathLike] = None
    #: TensorRT engines replay a CUDA graph of their enqueue (captured once per batch size), as trtexec does
    cuda_graph: bool = False

    def check(self, kind: str = "model") -> None:
        """One-line errors for values and combinations that cannot run, or that a source of ``kind``
        (``source_kind``) would ignore."""
        from vit5_infer.engines.registry import BACKENDS

        if not self.batches or any(not isinstance(b, int) or b < 1 for b in self.batches):
            raise BenchError(f"batch sizes must be positive integers, got {list(self.batches)}")
        names = PRECISION_NAMES
        unknown = [p for p in self.precisions if p not in names]
        if unknown:
            raise BenchError(f"unknown precision(s) {', '.join(unknown)}; use {', '.join(names[:-1])} or {names[-1]}")
        quantized = [p for p in self.precisions if p in QUANTIZED_PRECISIONS]
        if self.labels is not None and self.images is None:
            raise BenchError("--labels names the classes of --images: give --images DIR too")
        if self.calibration is not None and not quantized:
            raise BenchError(
                "--calibration calibrates int8/fp8 exports: add --precision int8 (or fp8), or leave --calibration out"
            )
        set_here = [f"--{name}" for name in ("mean", "std") if (self.preprocessing or {}).get(name) is not None]
        if set_here and self.images is None and self.calibration is None:
            flags = "/".join(set_here)
            raise BenchError(
                f"{flags} only preprocess{'es' if len(set_here) == 1 else ''} images (--images DIR, or "
                f"--calibration DIR with int8/fp8) and the inputs here are seeded: give --images DIR, "
                f"or leave {flags} out"
            )
        if quantized and self.calibration is None and kind == "model":
            raise BenchError(f"--precision {quantized[0]} needs calibration images: --calibration DIR")
        bad = [b for b in (self.backends or []) if b not in BACKENDS]
        if bad:
            raise BenchError(f"unknown backend(s) {', '.join(bad)}; choose from {', '.join(BACKENDS)}")
        if self.threads is not None and self.threads < 1:
            raise BenchError(f"threads must be >= 1, got {self.threads}")
        if self.backends is not None:
            check_cuda_graph(self.cuda_graph, self.backends)


def check_cuda_graph(cuda_graph: bool, backends: Sequence[str]) -> None:
    """--cuda-graph replays TensorRT engines: a one-line error when no backend asked for is ``trt``."""
    if cuda_graph and "trt" not in backends:
        raise BenchError(
            f"--cuda-graph replays a CUDA graph of a TensorRT engine's enqueue; the backends here "
            f"({', '.join(backends) or 'none'}) run no engine: add -b trt, or leave --cuda-graph out"
        )


def run_benchmark(
    source: PathLike,
    settings: Optional[BenchSettings] = None,
    *,
    workdir: Optional[PathLike] = None,
    progress: Progress = None,
    iteration_progress: Optional[BenchProgress] = None,
    warn: Progress = None,
) -> BenchReport:
    """Benchmark ``source`` (a preset, checkpoint, ONNX file or engine) on the chosen backends (``settings``:
    BenchSettings' defaults when None; a fresh value each call, as the settings are mutable)."""
    settings = settings if settings is not None else BenchSettings()
    import torch

    from vit5_infer.engines.registry import available_backends

    kind = source_kind(source)
    settings.check(kind)
    if kind != "model":
        check_given_precisions(source, kind, settings)
    class_index = None if settings.labels is None else read_class_index(settings.labels)
    progress = progress or (lambda message: None)
    batches = list(dict.fromkeys(settings.batches))
    here = available_backends()
    chosen = list(settings.backends) if settings.backends else here
    device = settings.device or ("cuda" if torch.cuda.is_available() else "cpu")

    progress(f"loading {source}")
    if kind == "engine":
        chosen = engine_backends(source, settings.backends, here, warn)
    check_cuda_graph(settings.cuda_graph, chosen)
    if kind == "model":
        model, origin = load_source(source, settings.load)
        metadata: dict = {}
        name = f"{origin.kind} {origin.name}"
        outputs = compared_outputs(model, settings.outputs)
    else:
        from vit5_infer.engine_manifest import source_onnx

        onnx_path = Path(source) if kind == "onnx" else source_onnx(source)
        model, metadata = model_from_onnx(onnx_path, trust_pickle=settings.load.trust_pickle)
        origin, name = None, str(source)
        outputs = compared_outputs(model, settings.outputs, onnx_path)
        check_graph_batches(str(source), metadata, batches)
    from vit5_infer.memory import check_batch_fits

    for batch in batches:
        check_batch_fits(model.config, batch, "--batch", copies=2)  # inputs + reference, before either exists
    layout = graph_layout(metadata)
    dataset = None
    pre = Preprocessing.from_metadata(metadata, model.config.network.image_size).with_overrides(
        **(settings.preprocessing or {})
    )
    if settings.images is not None:
        inputs = image_inputs(Path(settings.images), pre, batches)
        labelled = LabelledImages.find(settings.images, class_index)
        if labelled is not None:
            labelled.check_classes(model.config.network.num_classes)
            progress(f"{settings.images}: {len(labelled.files)} labelled images in {len(labelled.classes)} classes")
            dataset = (labelled, pre)
    else:
        inputs = seeded_inputs(model, batches, settings.load.seed)
    check_combinations(chosen, settings.precisions, kind, warn)
    progress("computing the PyTorch FP32 reference")
    references = reference_outputs(model, inputs, outputs)

    flops = model.flop_count(inference=True)
    results: list[BenchResult] = []
    with tempfile.TemporaryDirectory(prefix="vit5-bench-", dir=workdir) as work:
        artifacts = Artifacts(
            str(source),
            kind,
            model,
            origin,
            Path(work),
            max(batches),
            progress=progress,
            outputs=outputs,
            calibration=settings.calibration,
            preprocessing=pre,
        )
        for plan in backend_plans(chosen, settings.precisions, artifacts, settings.threads, device, outputs, layout):
            if plan.backend not in here and warn:
                warn(f"{plan.backend} does not look available here ({', '.join(here)} are); trying anyway")
            results += run_backend(
                plan,
                inputs,
                references,
                settings.timing,
                flops,
                iteration_progress=iteration_progress,
                progress=progress,
                dataset=dataset,
                cuda_graph=settings.cuda_graph,
            )

    inputs_text = f"images from {settings.images}" if settings.images else f"seeded ({settings.load.seed})"
    info = model_info(
        model,
        name,
        origin.kind if kind == "model" and origin is not None else kind,
        sha256=getattr(origin, "sha256", None),
        seed=getattr(origin, "seed", None),
    )
    timing = settings.timing
    recorded = {
        "batches": batches,
        "backends": chosen,
        "precisions": list(settings.precisions),
        "warmup": timing.warmup,
        "iters": timing.iters,
        "seconds": timing.seconds,
        "threads": settings.threads,
        "device": device,
        "inputs": inputs_text,
        "outputs": list(outputs),
        "cuda_graph": settings.cuda_graph,
    }
    if settings.labels is not None:
        recorded["labels"] = str(settings.labels)
    title = f"vit5 bench {name}: {inputs_text}, {flops / 1e9:.2f} GFLOPs/image"
    return BenchReport(info, capture_environment(), recorded, tuple(results), title)
