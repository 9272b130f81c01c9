"""``vit5 bench``: every chosen backend on the same inputs, timed and compared with PyTorch FP32.

This module only decides what to run (which files each backend needs, exporting or building them
into a temporary folder when the source is a preset or checkpoint) and how to show it; timing,
metrics and reports are ``vit5_infer.engines.bench``.
"""

import copy
import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from vit5_infer.engines import bench as lib

from . import console
from .model_options import ModelOptions, model_options
from .parsing import parse_int_list, parse_name_list

ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
TORCH_BACKENDS = ("torch", "torch-compile")
ORT_BACKENDS = ("ort", "ort-cuda", "ort-trt")
OUTPUT_PANEL = "Reports"
TIMING_PANEL = "Timing"


def source_kind(source: str) -> str:
    suffix = Path(source).suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix in ENGINE_SUFFIXES:
        return "engine"
    return "model"


class Artifacts:
    """The files each backend runs, made on first use inside a temporary folder."""

    def __init__(self, source: str, kind: str, model, origin, model_opts: ModelOptions, workdir: Path, max_batch: int):
        self.source, self.kind, self.model, self.origin = source, kind, model, origin
        self.model_opts, self.workdir, self.max_batch = model_opts, workdir, max_batch
        self.onnx: dict[str, Path] = {}
        self.engines: dict[str, Path] = {}
        if kind == "onnx":
            self.onnx[lib_precision_of_onnx(Path(source))] = Path(source)
        elif kind == "engine":
            manifest = _manifest(source)
            self.engines[manifest.precision] = Path(source)
            onnx_path = lib.onnx_of_engine(source)
            self.onnx[lib_precision_of_onnx(onnx_path)] = onnx_path

    def precisions_for(self, backend: str, requested: list[str]) -> list[str]:
        """A given ONNX file or engine fixes its precision; a preset or checkpoint is exported at each one asked."""
        if backend in TORCH_BACKENDS or self.kind == "model":
            return requested
        fixed = self.engines if backend == "trt" and self.kind == "engine" else self.onnx
        return list(fixed)

    def onnx_for(self, precision: str) -> Path:
        if precision not in self.onnx:
            path = self.workdir / f"model.{precision}.onnx"
            with console.status(f"exporting {self.source} to ONNX ({precision}) for the ONNX Runtime backends"):
                from vit5_infer.exporters import export_onnx

                export_onnx(self.model, path, precision=precision, source=self.origin, validate=False)
            self.onnx[precision] = path
        return self.onnx[precision]

    def engine_for(self, precision: str) -> Path:
        if precision not in self.engines:
            from vit5_infer.engines.tensorrt_builder import build_engine

            path = self.workdir / f"model.{precision}.engine"
            # build_engine converts an FP32 graph to the asked precision itself
            onnx_path = self.onnx.get(precision) or self.onnx_for("fp32")
            with console.status(f"building a TensorRT engine ({precision}, batch 1..{self.max_batch})"):
                build_engine(onnx_path, path, precision=precision, min_batch=1, opt_batch=self.max_batch,
                             max_batch=self.max_batch)
            self.engines[precision] = path
        return self.engines[precision]


def lib_precision_of_onnx(path: Path) -> str:
    from vit5_infer.exporters import read_metadata

    return str(read_metadata(path).get("precision") or "fp32")


def _manifest(engine_path: str):
    from vit5_infer.engines.manifest import read_manifest

    return read_manifest(engine_path)


def backend_plans(backends: list[str], precisions: list[str], artifacts: Artifacts, threads: Optional[int],
                  device: str) -> list[lib.BackendPlan]:
    from vit5_infer.engines.registry import make_runner

    plans = []
    for backend in backends:
        for precision in artifacts.precisions_for(backend, precisions):
            if backend in TORCH_BACKENDS:
                # A copy: runners move and compile their module, the reference must stay as it is.
                def make(backend=backend, precision=precision):
                    return make_runner(backend, copy.deepcopy(artifacts.model), precision=precision,
                                       threads=threads, device=device)
            elif backend in ORT_BACKENDS:
                def make(backend=backend, precision=precision):
                    return make_runner(backend, artifacts.onnx_for(precision), precision=precision,
                                       batch_hint=artifacts.max_batch, threads=threads)
            else:
                def make(backend=backend, precision=precision):
                    return make_runner(backend, artifacts.engine_for(precision), precision=precision)
            plans.append(lib.BackendPlan(backend, precision, make))
    return plans


def print_table(results: list, title: str) -> None:
    headers, rows = lib.table_rows(results)
    table = Table(title=title)
    for h in headers:
        table.add_column(h, justify="left" if h in ("backend", "prec", "ok") else "right", no_wrap=True)
    for r, row in zip(results, rows):
        table.add_row(*row, style=None if r.passed else "red")
    console.out.print(table)


class BarProgress:
    """One progress bar per backend and batch: warm-up iterations, then timed ones."""

    def __init__(self, progress, warmup: int):
        self.progress, self.warmup, self.tasks = progress, warmup, {}

    def __call__(self, label: str, phase: str, done: int, total: Optional[int]) -> None:
        if label not in self.tasks:
            self.tasks[label] = self.progress.add_task(label, total=None)
        completed = done if phase == "warmup" else self.warmup + done
        grand = None if total is None else (self.warmup + total if phase == "timed" else None)
        text = f"{label}: {'warming up' if phase == 'warmup' else 'timing'}"
        self.progress.update(self.tasks[label], completed=completed, total=grand, description=text)


@model_options
def bench(
    source: Annotated[str, typer.Argument(help="Preset, checkpoint, ONNX file (.onnx) or TensorRT engine (.engine).", show_default=False)],
    model_opts: ModelOptions,
    backends: Annotated[Optional[str], typer.Option("--backends", "-b", help="Comma-separated: torch, torch-compile, ort, ort-cuda, ort-trt, trt. Default: every one available here.", show_default=False)] = None,
    batch: Annotated[str, typer.Option("--batch", help="Batch sizes, comma-separated (e.g. 1,8,32).")] = "1",
    precision: Annotated[str, typer.Option("--precision", help="Precisions for presets/checkpoints, comma-separated (fp32, fp16, bf16). A given ONNX file or engine keeps its own.")] = "fp32",
    images: Annotated[Optional[Path], typer.Option("--images", help="Benchmark on the images of this folder (needs Pillow), preprocessed as the model's metadata says; default: seeded random inputs.", show_default=False)] = None,
    iters: Annotated[Optional[int], typer.Option("--iters", help="Timed iterations per backend and batch [default: 20, or unlimited with --seconds].", rich_help_panel=TIMING_PANEL, show_default=False)] = None,
    seconds: Annotated[Optional[float], typer.Option("--seconds", help="Time budget per backend and batch; stops at --iters if that comes first.", rich_help_panel=TIMING_PANEL, show_default=False)] = None,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed iterations first (torch.compile compiles in the first one).", rich_help_panel=TIMING_PANEL)] = 3,
    threads: Annotated[Optional[int], typer.Option("--threads", help="CPU threads for torch and ONNX Runtime.", rich_help_panel=TIMING_PANEL, show_default=False)] = None,
    device: Annotated[Optional[str], typer.Option("--device", help="Device of the torch backends: cpu or cuda [default: cuda when available].", rich_help_panel=TIMING_PANEL, show_default=False)] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the full report as JSON.", rich_help_panel=OUTPUT_PANEL, show_default=False)] = None,
    csv_out: Annotated[Optional[Path], typer.Option("--csv", help="Write one CSV row per backend and batch.", rich_help_panel=OUTPUT_PANEL, show_default=False)] = None,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print the table as Markdown instead.", rich_help_panel=OUTPUT_PANEL)] = False,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write a PNG chart of latency per backend and batch (needs matplotlib).", rich_help_panel=OUTPUT_PANEL, show_default=False)] = None,
) -> None:
    """Benchmark backends on the same inputs: latency, throughput and accuracy against PyTorch FP32.

    Exits with status 1 when a backend's accuracy misses its precision's tolerance
    (see docs/cli.md).
    """
    import torch

    from vit5_infer.engines.registry import BACKENDS, available_backends

    batches = parse_int_list(batch, "--batch")
    precisions = parse_name_list(precision, "--precision", ("fp32", "fp16", "bf16"))
    timing = lib.TimingPlan(warmup=warmup, iters=iters if iters is not None or seconds is not None else 20,
                            seconds=seconds)
    here = available_backends()
    chosen = parse_name_list(backends, "--backends", BACKENDS) if backends else here
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    kind = source_kind(source)

    with console.status(f"loading {source}"):
        if kind == "model":
            model, origin = model_opts.load(source)
            metadata, name = {}, f"{origin.kind} {origin.name}"
        else:
            onnx_path = Path(source) if kind == "onnx" else lib.onnx_of_engine(source)
            model, metadata = lib.reference_from_onnx(onnx_path, trust_pickle=model_opts.trust_pickle)
            origin, name = None, str(source)
    if images is not None:
        pre = lib.Preprocessing.from_metadata(metadata, model.config.network.image_size)
        inputs = lib.image_inputs(images, pre, batches)
    else:
        inputs = lib.seeded_inputs(model, batches, model_opts.seed)
    with console.status("PyTorch FP32 reference"):
        references = lib.reference_logits(model, inputs)

    flops = model.flop_count(inference=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="vit5-bench-") as work:
        artifacts = Artifacts(source, kind, model, origin, model_opts, Path(work), max(batches))
        plans = backend_plans(chosen, precisions, artifacts, threads, device)
        for plan in plans:
            if plan.backend not in here:
                console.warn(f"{plan.backend} does not look available here ({', '.join(here)} are); trying anyway")
            with console.make_progress() as progress:
                show = BarProgress(progress, timing.warmup)
                results += lib.run_backend(plan, inputs, references, timing, flops, progress=show)

    title = f"vit5 bench {name}: {'images from ' + str(images) if images else 'seeded inputs'}, {model.flop_count(inference=True) / 1e9:.2f} GFLOPs/image"
    if markdown:
        console.out.print(lib.format_markdown(results), markup=False, end="")
    else:
        print_table(results, title)
    settings = {"batches": batches, "backends": chosen, "warmup": timing.warmup, "iters": timing.iters,
                "seconds": timing.seconds, "threads": threads, "inputs": str(images) if images else f"seeded ({model_opts.seed})"}
    info = lib.model_info(model, name, kind if kind != "model" else origin.kind,
                          sha256=getattr(origin, "sha256", None), seed=getattr(origin, "seed", None))
    if json_out or csv_out or plot:
        report = lib.report_dict(info, lib.capture_environment(), results, settings)
        if json_out:
            lib.write_json(report, json_out)
            console.err.print(f"wrote {json_out}")
        if csv_out:
            lib.write_csv(results, csv_out)
            console.err.print(f"wrote {csv_out}")
        if plot:
            lib.plot_latency(results, plot, title=f"vit5 bench {name}")
            console.err.print(f"wrote {plot}")
    failed = [r for r in results if not r.passed]
    if failed:
        worst = "; ".join(f"{r.backend}[{r.precision}] batch {r.batch}: {r.failure}" for r in failed)
        raise lib.BenchError(f"accuracy outside tolerance: {worst}")
