"""``vit5 export``: a preset or checkpoint -> a validated ONNX file."""

import enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from vit5_infer.vocabulary import LOGITS, OUTPUT_NAMES

from . import console
from .model_options import ModelOptions, model_options
from .parsing import parse_name_list


class Precision(str, enum.Enum):
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"


class Layout(str, enum.Enum):
    nchw = "nchw"
    nhwc = "nhwc"


def _comparison_text(c) -> str:
    """One output's figures (an OutputComparison)."""
    parts = [f"max_abs_err {c.max_abs_err:.3g}", f"mean_abs_err {c.mean_abs_err:.3g}", f"cosine {c.cosine:.7f}",
             f"rel_err {c.relative_error:.3g}"]
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
        console.out.print(console.styled("validation against PyTorch FP32 (", verdict, "): "
                                         + _comparison_text(next(iter(outputs.values())))))
        return
    console.out.print(console.styled("validation against PyTorch FP32 (", verdict, "), per output:"))
    for name, comparison in outputs.items():
        console.out.print(f"  {name}: " + _comparison_text(comparison))


def print_summary(summary: dict, lowering: Optional[dict] = None) -> None:
    """Op counts, fused ops, size: shared with ``vit5 inspect`` for ONNX files."""
    size = summary.get("size_bytes")
    console.out.print(
        f"graph: {summary.get('num_nodes', '?')} nodes"
        + (f", {size / 2**20:.1f} MiB" if size is not None else "")
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


def export_model(
    source: str,
    output: Path,
    model_opts: ModelOptions,
    *,
    opset: Optional[int] = None,
    precision: str = "fp32",
    batch: Optional[int] = None,
    layout: str = "nchw",
    lowering: str = "auto",
    validate: bool = True,
    io_dtype: str = "fp32",
    external_data: Optional[bool] = None,
    target: str = "ort",
    outputs: tuple = (LOGITS,),
):
    """Load ``source`` and export it; also used by ``build-engine`` and ``bench`` for non-ONNX sources."""
    from vit5_infer.exporters import export_onnx

    with console.status(f"loading {source}"):
        model, origin = model_opts.resolve(source)
    with console.status(f"exporting {source}") as status:
        result = export_onnx(
            model,
            output,
            opset=opset,
            precision=precision,
            batch=batch,
            layout=layout,
            lowering=lowering,
            source=origin,
            validate=validate,
            io_dtype=io_dtype,
            external_data=external_data,
            target=target,
            outputs=outputs,
            progress=lambda step: status.update(f"exporting {source}: {step}"),
        )
    return model, origin, result


@model_options
def export(
    source: Annotated[str, typer.Argument(help="Preset name or checkpoint (.safetensors, .pt, .ckpt).", show_default=False)],
    output: Annotated[str, typer.Option("--output", "-o", help="Where to write the ONNX file.", show_default=False)],
    model_opts: ModelOptions,
    target: Annotated[str, typer.Option("--target", help="Runtime the graph is for: ort (ONNX Runtime, any provider; 'cpu' too), tensorrt (the newest TensorRT form) or tensorrt=X.Y (the form TensorRT X.Y parses: fused Attention from 10.14, RMSNormalization from 10.15).")] = "ort",
    opset: Annotated[Optional[int], typer.Option("--opset", help="ONNX opset: 23 (fused Attention/RMSNormalization) or 17/18 (portable) [default: 23, or what --target needs].", show_default=False)] = None,
    precision: Annotated[Precision, typer.Option("--precision", help="Weights and activations of the graph (norms, softmax, long conv stay FP32).")] = Precision.fp32,
    batch: Annotated[Optional[int], typer.Option("--batch", help="Static batch size; default: dynamic batch.", show_default=False)] = None,
    layout: Annotated[Layout, typer.Option("--layout", help="Input layout: nchw, or nhwc as upstream's forward takes it.")] = Layout.nchw,
    lowering: Annotated[str, typer.Option("--lowering", help="Hyena long-convolution lowering: auto (measured best), direct, spectral or scan.")] = "auto",
    validate: Annotated[bool, typer.Option("--validate/--no-validate", help="Compare ONNX Runtime with PyTorch after export.")] = True,
    io_dtype: Annotated[Optional[Precision], typer.Option("--io-dtype", help="Input/output dtype; default fp32 (fp16/bf16 need the same --precision).", show_default=False)] = None,
    external_data: Annotated[Optional[bool], typer.Option("--external-data/--inline-data", help="Weights in OUTPUT.data beside the graph; default: only past protobuf's 2 GB limit.", show_default=False)] = None,
    outputs: Annotated[str, typer.Option("--outputs", help=f"Graph outputs, comma-separated, in order: any of {', '.join(OUTPUT_NAMES)} (pre_logits: the classifier's input; patch_tokens: [B, Hp, Wp, C] feature map).")] = LOGITS,
) -> None:
    """Export a preset or checkpoint to ONNX, validate it with ONNX Runtime and summarize the graph."""
    names = tuple(parse_name_list(outputs, "--outputs", OUTPUT_NAMES))
    from vit5_infer.exporters.export import check_export_path

    # Before any work: a bad output path must not cost a load and an export, and never name an input.
    output = check_export_path(output, inputs=(source, model_opts.config))
    _, origin, result = export_model(
        source, output, model_opts, opset=opset, precision=precision.value, batch=batch,
        layout=layout.value, lowering=lowering, validate=validate,
        io_dtype=io_dtype.value if io_dtype else "fp32", external_data=external_data, target=target, outputs=names,
    )
    console.out.print(
        f"wrote {result.path} (target {result.metadata.get('target', 'ort')}, opset {result.opset}, {result.precision}, "
        f"{'batch ' + str(batch) if batch else 'dynamic batch'}, {layout.value}) from {origin.kind} {origin.name}"
    )
    console.out.print("outputs: " + ", ".join(f"{name} {shape}" for name, shape in result.metadata["outputs"].items()))
    print_validation(result.validation if validate else None)
    print_summary(result.summary, result.lowering)
