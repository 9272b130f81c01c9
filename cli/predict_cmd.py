"""``vit5 predict``: parse flags, call ``vit5_infer.workflows.predict.predict``, show progress and the summary."""

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from vit5_infer.vocabulary import FLOAT_PRECISIONS, OUTPUT_NAMES, QUANTIZED_PRECISIONS
from vit5_infer.workflows.backends import backend_names

from . import console
from .model_options import ModelOptions, model_options
from .parsing import parse_mean_std, parse_name_list
from .shared_options import channel_option, labels_option, threads_option

DATA_PANEL = "Inputs and preprocessing"
OUTPUT_PANEL = "Output dataset"
SPEED_PANEL = "Speed"
RAY_PANEL = "Ray Data"
EXTRA_OUTPUTS = tuple(name for name in OUTPUT_NAMES if name != "logits")
BACKENDS = backend_names()


class RowProgress:
    """Steps on one transient line, then a bar over the rows with images/s and the ETA."""

    def __init__(self, progress):
        self.progress = progress
        self.task = progress.add_task("starting", total=None, rate="")
        self.started: Optional[float] = None

    def __call__(self, message: str, done: int, total: Optional[int]) -> None:
        if total is None:
            self.progress.update(self.task, description=message)
            return
        now = time.perf_counter()
        if self.started is None or done == 0:
            self.started = now
        elapsed = now - self.started
        rate = f"{done / elapsed:.1f} images/s" if done and elapsed > 0 else ""
        self.progress.update(self.task, description=message, completed=done, total=total, rate=rate)


@model_options
def predict(
    source: Annotated[
        str,
        typer.Argument(help="Preset, checkpoint, ONNX file (.onnx) or TensorRT engine (.engine).", show_default=False),
    ],
    images: Annotated[
        Path,
        typer.Argument(
            help="A folder of images (recursive, sorted), an ImageFolder with --labels, or a manifest: .txt (one path "
            "per line), .csv or .parquet with a 'path' column.",
            show_default=False,
        ),
    ],
    model_opts: ModelOptions,
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="The Parquet dataset (a folder); rerunning the same command resumes it.",
            rich_help_panel=OUTPUT_PANEL,
            show_default=False,
        ),
    ],
    backend: Annotated[
        Optional[str],
        typer.Option(
            "--backend",
            "-b",
            help=f"{', '.join(BACKENDS[:-1])} or {BACKENDS[-1]} (default: ort; trt for an engine).",
            show_default=False,
        ),
    ] = None,
    precision: Annotated[
        str,
        typer.Option(
            "--precision",
            help=f"Precision of a preset/checkpoint's export ({', '.join(map(str, FLOAT_PRECISIONS))}; "
            f"{' and '.join(map(str, QUANTIZED_PRECISIONS))} with --calibration). A given ONNX file or engine keeps "
            "its own.",
        ),
    ] = "fp32",
    calibration: Annotated[
        Optional[Path],
        typer.Option("--calibration", help="Images an int8/fp8 export calibrates on.", show_default=False),
    ] = None,
    labels: Annotated[Optional[Path], labels_option(DATA_PANEL)] = None,
    mean: Annotated[Optional[str], channel_option("--mean", DATA_PANEL)] = None,
    std: Annotated[Optional[str], channel_option("--std", DATA_PANEL)] = None,
    crop_ratio: Annotated[
        Optional[float],
        typer.Option(
            "--crop-ratio",
            help="Centre-crop ratio in (0, 1] (resize to size/ratio, then crop).",
            rich_help_panel=DATA_PANEL,
            show_default=False,
        ),
    ] = None,
    outputs: Annotated[
        Optional[str],
        typer.Option(
            "--outputs",
            help=f"Extra columns, comma-separated: {', '.join(EXTRA_OUTPUTS)}. Vectors are float32 list columns; "
            f"patch_tokens and register_tokens go to .npy shards referenced by file and row.",
            rich_help_panel=OUTPUT_PANEL,
            show_default=False,
        ),
    ] = None,
    topk: Annotated[
        int, typer.Option("--topk", help="Classes and scores per row, best first.", rich_help_panel=OUTPUT_PANEL)
    ] = 5,
    scores: Annotated[
        str, typer.Option("--scores", help="softmax (probabilities) or logits.", rich_help_panel=OUTPUT_PANEL)
    ] = "softmax",
    normalize: Annotated[
        bool,
        typer.Option(
            "--normalize", help="L2-normalize the vector outputs (pre_logits, cls_token).", rich_help_panel=OUTPUT_PANEL
        ),
    ] = False,
    rows_per_file: Annotated[
        int,
        typer.Option(
            "--rows-per-file",
            help="Rows per Parquet part file (a killed run loses at most the part in flight).",
            rich_help_panel=OUTPUT_PANEL,
        ),
    ] = 10_000,
    shard: Annotated[
        Optional[str],
        typer.Option(
            "--shard",
            help="i/N: this run's slice of the input list (0 <= i < N); N runs, anywhere, fill one dataset.",
            rich_help_panel=OUTPUT_PANEL,
            show_default=False,
        ),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Replace a dataset written by another model, options or input list (never use it on concurrent "
            "shards).",
            rich_help_panel=OUTPUT_PANEL,
        ),
    ] = False,
    summary: Annotated[
        Optional[Path],
        typer.Option(
            "--summary", help="Also write the summary as JSON.", rich_help_panel=OUTPUT_PANEL, show_default=False
        ),
    ] = None,
    batch: Annotated[int, typer.Option("--batch", help="Images per model call.", rich_help_panel=SPEED_PANEL)] = 32,
    workers: Annotated[
        int,
        typer.Option(
            "--workers", help="Decoding processes (0: decode in the main process).", rich_help_panel=SPEED_PANEL
        ),
    ] = 2,
    threads: Annotated[Optional[int], threads_option(SPEED_PANEL)] = None,
    ray: Annotated[
        bool,
        typer.Option(
            "--ray",
            help="Run on Ray Data (needs the ray extra): decoding as CPU tasks, the model in an actor pool.",
            rich_help_panel=RAY_PANEL,
        ),
    ] = False,
    ray_address: Annotated[
        Optional[str],
        typer.Option(
            "--ray-address",
            help="The Ray cluster to join (e.g. auto; default: a local Ray instance).",
            rich_help_panel=RAY_PANEL,
            show_default=False,
        ),
    ] = None,
    ray_actors: Annotated[
        int, typer.Option("--ray-actors", help="Model actors (each loads the runner once).", rich_help_panel=RAY_PANEL)
    ] = 1,
    ray_gpus: Annotated[
        float, typer.Option("--ray-gpus", help="GPUs per model actor.", rich_help_panel=RAY_PANEL)
    ] = 0.0,
) -> None:
    """Run a model over an image collection into a Parquet dataset: top-k classes and scores, features,
    one row per image (a bad image is a row with its error).  Resumable, shardable, and on Ray Data with --ray.
    """
    from vit5_infer.workflows.predict import PredictOptions, Shard
    from vit5_infer.workflows.predict import predict as run_predict

    options = PredictOptions(
        source=source,
        images=images,
        output=output,
        backend=backend,
        precision=precision,
        calibration=calibration,
        load=model_opts,
        labels=labels,
        preprocessing={**parse_mean_std(mean, std), "crop_ratio": crop_ratio},
        outputs=tuple(parse_name_list(outputs, "--outputs", EXTRA_OUTPUTS)) if outputs else (),
        topk=topk,
        scores=scores,
        normalize=normalize,
        batch=batch,
        workers=workers,
        threads=threads,
        rows_per_file=rows_per_file,
        shard=Shard.parse(shard),
        overwrite=overwrite,
        summary=summary,
        ray=ray,
        ray_address=ray_address,
        ray_actors=ray_actors,
        ray_gpus=ray_gpus,
    )
    try:
        with console.make_progress(unit="images") as progress:
            result = run_predict(options, progress=RowProgress(progress))
    except KeyboardInterrupt:
        # Typer turns Ctrl-C into a silent exit 130: say what is left, once.
        console.err.print(
            f"error: interrupted; the parts written so far stay in {output}: rerun the same command to resume",
            markup=False,
        )
        raise typer.Exit(130) from None
    console.out.print(format_summary(result), markup=False)
    if summary is not None:
        console.err.print(f"wrote {summary}", markup=False)


def format_summary(result) -> str:
    lines = [
        f"{result.output} (shard {result.shard}): {result.rows} rows written in {result.parts} part file(s), "
        f"{result.errors} with errors, {result.skipped} already done"
    ]
    if result.rows:
        lines.append(
            f"{result.images_per_s:.1f} images/s end to end over {result.wall_s:.2f} s "
            f"(decode {result.decode_s:.2f} s in workers, wait {result.wait_s:.2f} s, "
            f"compute {result.compute_s:.2f} s, write {result.write_s:.2f} s; setup {result.setup_s:.2f} s)"
        )
    if result.top1 is not None:
        lines.append(f"top-1 {result.top1:.2%}, top-5 {result.top5:.2%} on {result.labelled} labelled images")
    return "\n".join(lines)
