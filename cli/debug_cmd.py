"""``vit5 debug``: where a reduced-precision graph departs from FP32, tensor by tensor."""

import enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from . import console
from .export_cmd import Precision
from .model_options import ModelOptions, model_options
from .parsing import parse_mean_std
from .shared_options import channel_option

GRAPHS_PANEL = "Graphs to compare"
INPUTS_PANEL = "Inputs"
OUTPUT_PANEL = "Report"


class Backend(str, enum.Enum):
    ort = "ort"
    trt = "trt"


def _fmt(value: Optional[float], spec: str = ".2e") -> str:
    return "-" if value is None else format(value, spec)


def print_blocks(result) -> None:
    first = result.first_failing
    table = Table(
        title=f"per block: worst tensor (tolerance rel L2 <= {result.tolerance.rel_l2:g}, cosine >= "
        f"{result.tolerance.cosine:g})",
        show_edge=False,
    )
    for column, justify in (
        ("block", "left"),
        ("tensors", "right"),
        ("out", "right"),
        ("worst tensor", "left"),
        ("op", "left"),
        ("rel L2", "right"),
        ("cosine", "right"),
        ("max abs", "right"),
        ("max |ref|", "right"),
        ("first out of tolerance", "left"),
    ):
        table.add_column(column, justify=justify)
    for block in result.blocks:
        worst = block.worst
        style = "bold red" if first is not None and block.first_failing is first else ("red" if block.failing else None)
        table.add_row(
            block.block,
            str(block.tensors),
            str(block.failing),
            worst.name,
            worst.op_type,
            _fmt(worst.rel_l2),
            f"{worst.cosine:.6f}",
            _fmt(worst.max_abs, ".3g"),
            _fmt(worst.reference_max_abs, ".3g"),
            block.first_failing.name if block.first_failing else "",
            style=style,
        )
    console.out.print(table)


def print_worst(result, count: int) -> None:
    if count <= 0:
        return
    table = Table(title=f"the {count} tensors with the largest relative error", show_edge=False)
    for column in ("tensor", "block", "op", "shape", "rel L2", "cosine", "max abs", "max |ref|", "verdict"):
        table.add_column(column)
    for row in result.worst(count):
        table.add_row(
            row.name,
            row.block,
            row.op_type,
            "x".join(map(str, row.shape)),
            _fmt(row.rel_l2),
            f"{row.cosine:.6f}",
            _fmt(row.max_abs, ".3g"),
            _fmt(row.reference_max_abs, ".3g"),
            row.verdict,
            style=None if row.passed else "red",
        )
    console.out.print(table)


def print_norm_inputs(result) -> None:
    from vit5_infer.workflows.debug import FP16_MAX

    if not result.norm_inputs:
        return
    table = Table(
        title=f"normalization inputs (candidate): largest |x| and sum of x^2 per row (FP16 max {FP16_MAX:g})",
        show_edge=False,
    )
    for column in ("block", "norms", "max |x|", "max sum x^2", "at tensor", "sums over FP16 max"):
        table.add_column(column)
    grouped: dict = {}
    for row in result.norm_inputs:
        grouped.setdefault(row.block, []).append(row)
    for block, rows in grouped.items():
        peak = max(rows, key=lambda r: r.max_sum_sq)
        over = sum(r.sum_sq_exceeds_fp16 for r in rows)
        table.add_row(
            block,
            str(len(rows)),
            _fmt(max(r.max_abs for r in rows), ".4g"),
            _fmt(peak.max_sum_sq, ".4g"),
            peak.tensor,
            str(over),
            style="red" if over else None,
        )
    console.out.print(table)


def print_verdict(result) -> None:
    first = result.first_failing
    if first is None:
        console.out.print(f"all {len(result.rows)} compared tensors are within tolerance")
    else:
        console.out.print(
            console.styled(
                (f"{len(result.failing)} of {len(result.rows)} tensors leave tolerance", "red"),
                f"; first: {first.name} ({first.op_type}) in {first.block}, rel L2 {first.rel_l2:.3g}, cosine "
                f"{first.cosine:.6f}",
            )
        )


@model_options
def debug(
    source: Annotated[
        Optional[str],
        typer.Argument(
            help="Preset or checkpoint: compared as FP32 graph vs --precision graph. Omit with "
            "--reference/--candidate.",
            show_default=False,
        ),
    ] = None,
    model_opts: ModelOptions = None,
    precision: Annotated[
        Precision,
        typer.Option(
            "--precision", help="Precision of the candidate graph built from SOURCE.", rich_help_panel=GRAPHS_PANEL
        ),
    ] = Precision.fp16,
    reference: Annotated[
        Optional[Path],
        typer.Option(
            "--reference",
            help="Reference ONNX file (normally FP32), instead of SOURCE.",
            rich_help_panel=GRAPHS_PANEL,
            show_default=False,
        ),
    ] = None,
    candidate: Annotated[
        Optional[Path],
        typer.Option(
            "--candidate",
            help="Candidate ONNX file (FP16/BF16/...), with --reference.",
            rich_help_panel=GRAPHS_PANEL,
            show_default=False,
        ),
    ] = None,
    target: Annotated[
        Optional[str],
        typer.Option(
            "--target",
            help="Runtime the graphs built from SOURCE are for, as in 'vit5 export --target' (default: ort with "
            "--backend ort, the installed TensorRT with --backend trt).",
            rich_help_panel=GRAPHS_PANEL,
            show_default=False,
        ),
    ] = None,
    opset: Annotated[
        Optional[int],
        typer.Option(
            "--opset",
            help="ONNX opset of the graphs built from SOURCE (default: what --target needs).",
            rich_help_panel=GRAPHS_PANEL,
            show_default=False,
        ),
    ] = None,
    lowering: Annotated[
        str,
        typer.Option(
            "--lowering",
            help="Hyena long-convolution lowering of the graphs built from SOURCE.",
            rich_help_panel=GRAPHS_PANEL,
        ),
    ] = "auto",
    backend: Annotated[
        Backend,
        typer.Option(
            "--backend",
            help="Runs the candidate: ort (ONNX Runtime CPU) or trt (TensorRT engine, needs a GPU). The reference "
            "always runs on ONNX Runtime CPU.",
            rich_help_panel=GRAPHS_PANEL,
        ),
    ] = Backend.ort,
    batch: Annotated[
        int, typer.Option("--batch", help="Number of inputs (images or seeded samples).", rich_help_panel=INPUTS_PANEL)
    ] = 2,
    images: Annotated[
        Optional[Path],
        typer.Option(
            "--images",
            help="Compare on the first --batch images of this folder (needs Pillow); default: seeded random inputs "
            "(--seed).",
            rich_help_panel=INPUTS_PANEL,
            show_default=False,
        ),
    ] = None,
    mean: Annotated[Optional[str], channel_option("--mean", INPUTS_PANEL)] = None,
    std: Annotated[Optional[str], channel_option("--std", INPUTS_PANEL)] = None,
    rel_l2: Annotated[
        Optional[float],
        typer.Option(
            "--rel-l2",
            help="Tolerance on ||c - r|| / ||r|| per tensor (default: by the candidate's precision).",
            rich_help_panel=OUTPUT_PANEL,
            show_default=False,
        ),
    ] = None,
    cosine: Annotated[
        Optional[float],
        typer.Option(
            "--cosine",
            help="Tolerance on the cosine similarity per tensor (default: by the candidate's precision).",
            rich_help_panel=OUTPUT_PANEL,
            show_default=False,
        ),
    ] = None,
    top: Annotated[
        int,
        typer.Option(
            "--top",
            help="Also list the N tensors with the largest relative error (0: none).",
            rich_help_panel=OUTPUT_PANEL,
        ),
    ] = 10,
    json_out: Annotated[
        Optional[Path],
        typer.Option(
            "--json",
            help="Write every tensor's row, the block summaries and the norm-input statistics as JSON.",
            rich_help_panel=OUTPUT_PANEL,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Compare a reduced-precision graph with its FP32 graph tensor by tensor and report, per block,
    the worst tensor and the first one that leaves tolerance (relative L2 error and cosine).

    The report is the result: the exit status is 0 whether or not tensors leave tolerance.
    """
    from vit5_infer.workflows.debug import DebugOptions
    from vit5_infer.workflows.debug import debug as compare

    if batch < 1:
        raise typer.BadParameter(f"must be >= 1, got {batch}", param_hint="--batch")
    options = DebugOptions(
        source=source,
        reference=reference,
        candidate=candidate,
        precision=precision.value,
        target=target,
        opset=opset,
        lowering=lowering,
        backend=backend.value,
        batch=batch,
        images=images,
        **parse_mean_std(mean, std),
        rel_l2=rel_l2,
        cosine=cosine,
        json_out=json_out,
        load=model_opts,
    )
    with console.status("loading") as status:
        report = compare(options, progress=status.update)
    result = report.result
    console.out.print(
        f"vit5 debug {report.name}: {result.precision} candidate on {backend.value} vs fp32 reference "
        f"on ort, batch {result.batch}, {report.inputs}"
    )
    print_blocks(result)
    print_worst(result, top)
    print_norm_inputs(result)
    print_verdict(result)
    if json_out is not None:
        report.write_json(json_out)
        console.err.print(f"wrote {json_out}")
