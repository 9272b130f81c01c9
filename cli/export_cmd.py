"""``vit5 export``: a preset or checkpoint -> a validated ONNX file."""

import enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from vit5_infer.vocabulary import (
    CALIBRATION_METHODS,
    DEFAULT_CALIBRATION_COUNT,
    FLOAT_PRECISIONS,
    INTERPOLATIONS,
    LOGITS,
    OUTPUT_NAMES,
)
from vit5_infer.vocabulary import Precision as GraphPrecision

from . import console
from .model_options import ModelOptions, model_options
from .parsing import parse_mean_std, parse_name_list
from .shared_options import channel_option, choices

# the float precisions (--io-dtype, and `vit5 debug`'s candidate graph)
Precision = choices("Precision", FLOAT_PRECISIONS)


QUANT_PANEL = "Quantization (--precision int8 / fp8)"
PRE_PANEL = "Image preprocessing (stored in the graph metadata; applied to calibration images)"
Interpolation = choices("Interpolation", INTERPOLATIONS)
CalibrationMethod = choices("CalibrationMethod", CALIBRATION_METHODS)


class Layout(str, enum.Enum):
    nchw = "nchw"
    nhwc = "nhwc"


def _comparison_text(c) -> str:
    """One output's figures (an OutputComparison)."""
    parts = [
        f"max_abs_err {c.max_abs_err:.3g}",
        f"mean_abs_err {c.mean_abs_err:.3g}",
        f"cosine {c.cosine:.7f}",
        f"rel_err {c.relative_error:.3g}",
    ]
    if c.top1_agreement is not None:
        parts.append(f"top1 {c.top1_agreement:.3f}")
    return ", ".join(parts)


def print_validation(validation) -> None:
    if validation is None:
        console.out.print("validation: skipped (--no-validate)")
        return
    verdict = ("passed", "green") if validation.passed else ("FAILED", "red")
    outputs = validation.outputs
    if len(outputs) == 1:
        console.out.print(
            console.styled(
                "validation against PyTorch FP32 (", verdict, "): " + _comparison_text(next(iter(outputs.values())))
            )
        )
        return
    console.out.print(console.styled("validation against PyTorch FP32 (", verdict, "), per output:"))
    for name, comparison in outputs.items():
        console.out.print(f"  {name}: " + _comparison_text(comparison))


def print_summary(summary: dict, lowering: Optional[dict] = None) -> None:
    """Op counts, fused ops, size: shared with ``vit5 inspect`` for ONNX files."""
    size = summary.get("size_bytes")
    console.out.print(
        f"graph: {summary.get('num_nodes', '?')} nodes" + (f", {size / 2**20:.1f} MiB" if size is not None else "")
    )
    fused = summary.get("fused_ops") or {}
    if fused:
        console.out.print("fused ops: " + ", ".join(f"{op} x{n}" for op, n in _items(fused)))
    else:
        console.out.print("fused ops: none")
    if lowering:
        console.out.print("lowering: " + ", ".join(f"{k}: {v}" for k, v in lowering.items()))
    counts = summary.get("op_counts") or {}
    if counts:
        table = Table(title="op counts", show_edge=False)
        table.add_column("op")
        table.add_column("count", justify="right")
        for op, n in sorted(_items(counts), key=lambda kv: (-kv[1], kv[0])):
            table.add_row(op, str(n))
        console.out.print(table)


def _items(mapping_or_list):
    """Op tables may come as {op: count} or as a list of op names."""
    if isinstance(mapping_or_list, dict):
        return list(mapping_or_list.items())
    counts: dict = {}
    for op in mapping_or_list:
        counts[op] = counts.get(op, 0) + 1
    return list(counts.items())


@model_options
def export(
    source: Annotated[
        str, typer.Argument(help="Preset name or checkpoint (.safetensors, .pt, .ckpt).", show_default=False)
    ],
    output: Annotated[str, typer.Option("--output", "-o", help="Where to write the ONNX file.", show_default=False)],
    model_opts: ModelOptions,
    target: Annotated[
        Optional[str],
        typer.Option(
            "--target",
            show_default=False,
            help="Runtime the graph is for: ort (ONNX Runtime, any provider; 'cpu' too), tensorrt (the newest "
            "TensorRT form) or tensorrt=X.Y (the form TensorRT X.Y parses: fused Attention from 10.14, "
            "RMSNormalization from 10.15). Default ort; fp8 needs tensorrt. Quantized: cpu/ort u8/s8 Q/DQ with FP32 "
            "elsewhere, tensorrt symmetric s8/fp8 Q/DQ with FP16 elsewhere.",
        ),
    ] = None,
    opset: Annotated[
        Optional[int],
        typer.Option(
            "--opset",
            help="ONNX opset: 23 (fused Attention/RMSNormalization) or 17/18/19 (portable). Default: 23, or what "
            "--target needs; 19 for a quantized graph below TensorRT 10.14.",
            show_default=False,
        ),
    ] = None,
    precision: Annotated[
        GraphPrecision,
        typer.Option(
            "--precision",
            help="Weights and activations of the graph (norms, softmax, long conv stay FP32); int8/fp8 are calibrated "
            "(see Quantization).",
        ),
    ] = GraphPrecision.FP32,
    batch: Annotated[
        Optional[int], typer.Option("--batch", help="Static batch size; default: dynamic batch.", show_default=False)
    ] = None,
    layout: Annotated[
        Layout, typer.Option("--layout", help="Input layout: nchw, or nhwc as upstream's forward takes it.")
    ] = Layout.nchw,
    lowering: Annotated[
        str,
        typer.Option(
            "--lowering", help="Hyena long-convolution lowering: auto (measured best), direct, spectral or scan."
        ),
    ] = "auto",
    validate: Annotated[
        bool, typer.Option("--validate/--no-validate", help="Compare ONNX Runtime with PyTorch after export.")
    ] = True,
    io_dtype: Annotated[
        Optional[Precision],
        typer.Option(
            "--io-dtype",
            help="Input/output dtype; default fp32 (fp16/bf16 need the same --precision).",
            show_default=False,
        ),
    ] = None,
    external_data: Annotated[
        Optional[bool],
        typer.Option(
            "--external-data/--inline-data",
            help="Weights in OUTPUT.data beside the graph; default: only past protobuf's 2 GB limit.",
            show_default=False,
        ),
    ] = None,
    outputs: Annotated[
        str,
        typer.Option(
            "--outputs",
            help=f"Graph outputs, comma-separated, in order: any of {', '.join(OUTPUT_NAMES)} (pre_logits: the "
            f"classifier's input; patch_tokens: [B, Hp, Wp, C] feature map).",
        ),
    ] = LOGITS,
    calibration: Annotated[
        Optional[Path],
        typer.Option(
            "--calibration",
            help="Folder of calibration images (searched recursively); some are held out to validate the graph.",
            rich_help_panel=QUANT_PANEL,
            show_default=False,
        ),
    ] = None,
    calibration_count: Annotated[
        int,
        typer.Option(
            "--calibration-count",
            help="Images to calibrate on (besides the held-out ones).",
            rich_help_panel=QUANT_PANEL,
        ),
    ] = DEFAULT_CALIBRATION_COUNT,
    calibration_method: Annotated[
        CalibrationMethod,
        typer.Option(
            "--calibration-method",
            help="Activation range: max, percentile (99.99%) or entropy (KL).",
            rich_help_panel=QUANT_PANEL,
        ),
    ] = CalibrationMethod.max,
    seeded: Annotated[
        bool,
        typer.Option(
            "--calibrate-on-seeded-inputs",
            help="Calibrate on seeded random inputs instead of images (accuracy unknown).",
            rich_help_panel=QUANT_PANEL,
        ),
    ] = False,
    keep_float: Annotated[
        Optional[str],
        typer.Option(
            "--keep-float",
            help="Comma-separated node-name patterns left unquantized; 'none' quantizes every GEMM. Default: the "
            "patch embedding, the classifier and Hyena's short conv (measured most sensitive).",
            rich_help_panel=QUANT_PANEL,
            show_default=False,
        ),
    ] = None,
    sensitivity: Annotated[
        bool,
        typer.Option(
            "--sensitivity",
            help="Measure each layer quantized alone and keep the outliers in higher precision (slower).",
            rich_help_panel=QUANT_PANEL,
        ),
    ] = False,
    mean: Annotated[Optional[str], channel_option("--mean", PRE_PANEL, default="ImageNet's")] = None,
    std: Annotated[Optional[str], channel_option("--std", PRE_PANEL, default="ImageNet's")] = None,
    crop_ratio: Annotated[
        Optional[float],
        typer.Option(
            "--crop-ratio",
            help="Resize the shorter side to image_size / crop_ratio, then centre crop (default 1.0: resize to "
            "image_size).",
            rich_help_panel=PRE_PANEL,
            show_default=False,
        ),
    ] = None,
    interpolation: Annotated[
        Optional[Interpolation],
        typer.Option(
            "--interpolation",
            help="Resize interpolation (default bicubic).",
            rich_help_panel=PRE_PANEL,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Export a preset or checkpoint to ONNX, validate it with ONNX Runtime and summarize the graph."""
    from vit5_infer.workflows.export import ExportOptions, PreprocessingOverrides, QuantizationOptions, parse_keep_float
    from vit5_infer.workflows.export import export as export_graph

    options = ExportOptions(
        precision=precision.value,
        target=target,
        opset=opset,
        batch=batch,
        layout=layout.value,
        lowering=lowering,
        io_dtype=io_dtype.value if io_dtype else "fp32",
        outputs=tuple(parse_name_list(outputs, "--outputs", OUTPUT_NAMES)),
        validate=validate,
        external_data=external_data,
        preprocessing=PreprocessingOverrides(
            **parse_mean_std(mean, std),
            crop_ratio=crop_ratio,
            interpolation=interpolation.value if interpolation else None,
        ),
        quantization=QuantizationOptions(
            calibration,
            calibration_count,
            calibration_method.value,
            seeded,
            parse_keep_float(keep_float),
            sensitivity,
            seed=model_opts.seed,
        ),
        load=model_opts,
    )
    with console.status(f"loading {source}") as status:
        exported = export_graph(source, output, options, progress=status.update, warn=console.warn)
    result, origin = exported.result, exported.origin
    console.out.print(
        f"wrote {result.path} (target {result.metadata.get('target', 'ort')}, opset {result.opset}, "
        f"{result.precision}, "
        f"{'batch ' + str(batch) if batch else 'dynamic batch'}, {layout.value}) from {origin.kind} {origin.name}"
    )
    console.out.print("outputs: " + ", ".join(f"{name} {shape}" for name, shape in result.metadata["outputs"].items()))
    print_validation(result.validation if validate else None)
    quant = result.metadata.get("quantization")
    if quant:
        cal = quant["calibration"]
        console.out.print(
            f"quantization: {quant['activations']} activations, {quant['weights']} weights, {quant['elsewhere']} "
            f"elsewhere; "
            f"{quant['quantized_layers']} layers quantized, kept in higher precision: "
            f"{', '.join(quant['float_layers']) or 'none'}; "
            f"calibrated on {cal['calibration_inputs']} inputs from {cal['source']} ({cal['method']}), validated on "
            f"{cal['held_out_inputs']} held out"
        )
        for row in quant.get("sensitivity", [])[:8]:
            console.out.print(
                f"  sensitivity {row['node']}: 1-cosine {row['error']:.2e}, top-1 {row['top1_agreement']:.3f}"
            )
    print_summary(result.summary, result.lowering)
