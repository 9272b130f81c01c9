"""``vit5 bench``: parse flags, call ``vit5_infer.workflows.benchmark.benchmark``, print the report."""

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from vit5_infer.vocabulary import FLOAT_PRECISIONS, OUTPUT_NAMES, PRECISION_NAMES, QUANTIZED_PRECISIONS
from vit5_infer.workflows.backends import backend_names

from . import console
from .model_options import ModelOptions, model_options
from .parsing import parse_int_list, parse_mean_std, parse_name_list
from .shared_options import channel_option, labels_option, threads_option

OUTPUT_PANEL = "Reports"
TIMING_PANEL = "Timing"
BACKENDS_HELP = f"Comma-separated: {', '.join(backend_names())}. Default: every one available here."
PRECISION_HELP = (
    f"Precisions for presets/checkpoints, comma-separated ({', '.join(map(str, FLOAT_PRECISIONS))}; "
    f"{' and '.join(map(str, QUANTIZED_PRECISIONS))} with --calibration). A given ONNX file or engine "
    "keeps its own."
)


def print_table(results: list, title: str) -> None:
    from vit5_infer.workflows.benchmark import table_rows

    headers, rows = table_rows(results)
    table = Table(title=title)
    for h in headers:
        table.add_column(h, justify="left" if h in ("backend", "prec", "ok") else "right", no_wrap=True)
    for r, row in zip(results, rows):
        table.add_row(*row, style=None if r.passed else "red")
    console.out.print(table)


class BarProgress:
    """One progress bar per backend and batch: warm-up iterations, then timed ones."""

    def __init__(self, bars, warmup: int):
        self.bars, self.warmup, self.tasks = bars, warmup, {}

    def __call__(self, label: str, phase: str, done: int, total: Optional[int]) -> None:
        if label not in self.tasks:
            self.tasks[label] = self.bars.add_task(label, total=None)
        completed = done if phase == "warmup" else self.warmup + done
        grand = None if total is None else (self.warmup + total if phase == "timed" else None)
        text = f"{label}: {'warming up' if phase == 'warmup' else 'timing'}"
        self.bars.update(self.tasks[label], completed=completed, total=grand, description=text)


@model_options
def bench(
    source: Annotated[
        str,
        typer.Argument(help="Preset, checkpoint, ONNX file (.onnx) or TensorRT engine (.engine).", show_default=False),
    ],
    model_opts: ModelOptions,
    backends: Annotated[Optional[str], typer.Option("--backends", "-b", help=BACKENDS_HELP, show_default=False)] = None,
    batch: Annotated[str, typer.Option("--batch", help="Batch sizes, comma-separated (e.g. 1,8,32).")] = "1",
    precision: Annotated[str, typer.Option("--precision", help=PRECISION_HELP)] = "fp32",
    outputs: Annotated[
        Optional[str],
        typer.Option(
            "--outputs",
            help=f"Outputs compared with PyTorch, comma-separated: any of {', '.join(OUTPUT_NAMES)}. Default: logits "
            f"for presets/checkpoints (their exports then carry these outputs), every output of a given ONNX file or "
            f"engine.",
            show_default=False,
        ),
    ] = None,
    images: Annotated[
        Optional[Path],
        typer.Option(
            "--images",
            help="Benchmark on the images of this folder (needs Pillow), preprocessed as the model's metadata says "
            "(or --mean/--std); default: seeded random inputs. A folder with one subfolder per class (ImageFolder "
            "layout, class index = sorted folder order or --labels) also gives every row top-1/top-5 accuracy on all "
            "its images.",
            show_default=False,
        ),
    ] = None,
    labels: Annotated[Optional[Path], labels_option()] = None,
    calibration: Annotated[
        Optional[Path],
        typer.Option(
            "--calibration",
            help="Images (a folder, searched recursively) that int8/fp8 exports of a preset or checkpoint calibrate "
            "on.",
            show_default=False,
        ),
    ] = None,
    mean: Annotated[Optional[str], channel_option("--mean")] = None,
    std: Annotated[Optional[str], channel_option("--std")] = None,
    iters: Annotated[
        Optional[int],
        typer.Option(
            "--iters",
            help="Timed iterations per backend and batch (default: 20, or unlimited with --seconds).",
            rich_help_panel=TIMING_PANEL,
            show_default=False,
        ),
    ] = None,
    seconds: Annotated[
        Optional[float],
        typer.Option(
            "--seconds",
            help="Time budget per backend and batch; stops at --iters if that comes first.",
            rich_help_panel=TIMING_PANEL,
            show_default=False,
        ),
    ] = None,
    warmup: Annotated[
        int,
        typer.Option(
            "--warmup",
            help="Untimed iterations first (torch.compile compiles in the first one).",
            rich_help_panel=TIMING_PANEL,
        ),
    ] = 3,
    threads: Annotated[Optional[int], threads_option(TIMING_PANEL)] = None,
    device: Annotated[
        Optional[str],
        typer.Option(
            "--device",
            help="Device of the torch backends: cpu or cuda (default: cuda when available).",
            rich_help_panel=TIMING_PANEL,
            show_default=False,
        ),
    ] = None,
    cuda_graph: Annotated[
        bool,
        typer.Option(
            "--cuda-graph",
            help="TensorRT (-b trt): capture the engine's enqueue in a CUDA graph once per batch size and time its "
            "replays, as trtexec does by default from TensorRT 11.0 (--useCudaGraph in 10.x). trt rows report GPU "
            "compute time and host latency either way.",
            rich_help_panel=TIMING_PANEL,
        ),
    ] = False,
    json_out: Annotated[
        Optional[str],
        typer.Option("--json", help="Write the full report as JSON.", rich_help_panel=OUTPUT_PANEL, show_default=False),
    ] = None,
    csv_out: Annotated[
        Optional[str],
        typer.Option(
            "--csv", help="Write one CSV row per backend and batch.", rich_help_panel=OUTPUT_PANEL, show_default=False
        ),
    ] = None,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the table as Markdown instead.", rich_help_panel=OUTPUT_PANEL)
    ] = False,
    plot: Annotated[
        Optional[str],
        typer.Option(
            "--plot",
            help="Write a PNG chart of latency per backend and batch (needs matplotlib).",
            rich_help_panel=OUTPUT_PANEL,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Benchmark backends on the same inputs: latency, throughput and accuracy against PyTorch FP32.

    Exits with status 1 when a backend's accuracy misses its precision's tolerance
    (see docs/cli.md).
    """
    from vit5_infer.workflows.benchmark import BenchOptions, BenchSettings, TimingPlan, benchmark, format_markdown

    settings = BenchSettings(
        backends=parse_name_list(backends, "--backends", backend_names()) if backends else None,
        batches=parse_int_list(batch, "--batch"),
        precisions=parse_name_list(precision, "--precision", PRECISION_NAMES),
        calibration=calibration,
        images=images,
        labels=labels,
        timing=TimingPlan.from_flags(warmup, iters, seconds),
        threads=threads,
        device=device,
        load=model_opts,
        preprocessing=parse_mean_std(mean, std),
        outputs=parse_name_list(outputs, "--outputs", OUTPUT_NAMES) if outputs else None,
        cuda_graph=cuda_graph,
    )
    options = BenchOptions(source, settings, json=json_out, csv=csv_out, plot=plot)
    with console.make_progress() as bars:
        # Steps (loading, exporting, building) show on one transient line, like a spinner.
        step = bars.add_task(f"loading {source}", total=None)

        def show(report) -> None:
            bars.stop()  # the transient bars go before the table prints
            results = list(report.results)
            if markdown:
                console.out.print(format_markdown(results), markup=False, end="")
            else:
                print_table(results, report.title)

        benchmark(
            options,
            lambda message: bars.update(step, description=message),
            iteration_progress=BarProgress(bars, settings.timing.warmup),
            warn=console.warn,
            on_report=show,
            on_written=lambda path: console.err.print(f"wrote {path}", markup=False),
        )
