"""``vit5 export``: a preset or checkpoint -> a validated ONNX file."""

import enum
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from vit5_infer.vocabulary import LOGITS, OUTPUT_NAMES
from vit5_infer.vocabulary import Precision as GraphPrecision

from . import console
from .model_options import ModelOptions, model_options
from .parsing import parse_channels, parse_name_list



class Precision(str, enum.Enum):
    """The float precisions (--io-dtype, and `vit5 debug`'s candidate graph)."""

    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"


QUANT_PANEL = "Quantization (--precision int8 / fp8)"
PRE_PANEL = "Image preprocessing (stored in the graph metadata; applied to calibration images)"
Interpolation = enum.Enum("Interpolation", {name: name for name in ("bicubic", "bilinear", "nearest")}, type=str)
CalibrationMethod = enum.Enum("CalibrationMethod", {name: name for name in ("max", "percentile", "entropy")}, type=str)


@dataclass
class Quantization:
    """How a quantized export calibrates (a float export refuses these flags)."""

    calibration: Optional[Path] = None
    count: int = 128
    method: str = "max"
    seeded: bool = False
    keep_float: Optional[list] = None
    sensitivity: bool = False

    #: the flag that sets each field
    FLAGS = {"calibration": "--calibration", "count": "--calibration-count", "method": "--calibration-method",
             "seeded": "--calibrate-on-seeded-inputs", "keep_float": "--keep-float", "sensitivity": "--sensitivity"}

    def given(self) -> list[str]:
        """The flags set away from their defaults (a float export would ignore them)."""
        default = Quantization()
        return [flag for name, flag in self.FLAGS.items() if getattr(self, name) != getattr(default, name)]


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
    target: Optional[str] = None,
    outputs: tuple = (LOGITS,),
    preprocessing: Optional[dict] = None,
    quantization: Optional[Quantization] = None,
):
    """Load ``source`` and export it; also used by ``build-engine`` and ``bench`` for non-ONNX sources.

    ``preprocessing``: Preprocessing fields the user set (mean, std, crop_ratio, interpolation).
    """
    from vit5_infer.exporters import export_onnx
    from vit5_infer.exporters.export import ExportError
    from vit5_infer.preprocessing import Preprocessing

    # Before any work: a flag the chosen precision would ignore is a mistake, not a no-op.
    quantized = GraphPrecision.parse(precision).is_quantized
    if not quantized and quantization is not None and quantization.given():
        flags = quantization.given()
        raise ExportError(f"{', '.join(flags)} only apply to quantized exports: add --precision int8 (or fp8), "
                          f"or leave {'them' if len(flags) > 1 else 'it'} out")
    if quantized and tuple(outputs) != (LOGITS,):
        raise ExportError(f"quantized graphs output logits only (asked: {', '.join(outputs)}): export the float graph "
                          "for backbone outputs, or leave --outputs out")
    if quantized and io_dtype != "fp32":
        raise ExportError(f"--io-dtype {io_dtype} does not apply to {precision} graphs (their inputs and outputs "
                          f"are FP32): leave --io-dtype out")
    with console.status(f"loading {source}"):
        from vit5_infer.loading import load_source

        model, origin = load_source(source, model_opts)
    pre = Preprocessing(image_size=model.config.network.image_size,
                        **{k: v for k, v in (preprocessing or {}).items() if v is not None})
    if quantized:
        return model, origin, _export_quantized(model, origin, source, output, pre, quantization or Quantization(),
                                                model_opts.seed, opset=opset, precision=precision, batch=batch,
                                                layout=layout, lowering=lowering, validate=validate,
                                                external_data=external_data, target=target)
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
            target=target or "ort",
            outputs=outputs,
            preprocessing=pre,
            progress=lambda step: status.update(f"exporting {source}: {step}"),
        )
    return model, origin, result


def _export_quantized(model, origin, source: str, output: Path, pre, quant: Quantization, seed: int, *,
                      target: Optional[str], **options):
    from vit5_infer.exporters.quantization import calibration_inputs, export_quantized, resolve_scheme
    from vit5_infer.memory import check_inputs_fit

    resolve_scheme(options["precision"], target, options["opset"])  # a bad target fails before calibration
    check_inputs_fit(model.input_shape, quant.count, "--calibration-count")
    with console.status(f"loading calibration inputs for {source}"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        calibration = calibration_inputs(quant.calibration, input_shape=model.input_shape, preprocessing=pre,
                                         count=quant.count, seeded=quant.seeded, seed=seed,
                                         precision=options["precision"])
    for warning in caught:
        console.warn(str(warning.message))
    with console.status(f"exporting {source}") as status:
        return export_quantized(model, output, calibration=calibration, target=target, method=quant.method,
                                keep_float=quant.keep_float, sensitivity=quant.sensitivity, source=origin,
                                preprocessing=calibration.preprocessing or pre,
                                progress=lambda step: status.update(f"exporting {source}: {step}"), **options)


@model_options
def export(
    source: Annotated[str, typer.Argument(help="Preset name or checkpoint (.safetensors, .pt, .ckpt).", show_default=False)],
    output: Annotated[str, typer.Option("--output", "-o", help="Where to write the ONNX file.", show_default=False)],
    model_opts: ModelOptions,
    target: Annotated[Optional[str], typer.Option("--target", show_default=False, help="Runtime the graph is for: ort (ONNX Runtime, any provider; 'cpu' too), tensorrt (the newest TensorRT form) or tensorrt=X.Y (the form TensorRT X.Y parses: fused Attention from 10.14, RMSNormalization from 10.15). Default ort; fp8 needs tensorrt. Quantized: cpu/ort u8/s8 Q/DQ with FP32 elsewhere, tensorrt symmetric s8/fp8 Q/DQ with FP16 elsewhere.")] = None,
    opset: Annotated[Optional[int], typer.Option("--opset", help="ONNX opset: 23 (fused Attention/RMSNormalization) or 17/18/19 (portable) [default: 23, or what --target needs; 19 for a quantized graph below TensorRT 10.14].", show_default=False)] = None,
    precision: Annotated[GraphPrecision, typer.Option("--precision", help="Weights and activations of the graph (norms, softmax, long conv stay FP32); int8/fp8 are calibrated (see Quantization).")] = GraphPrecision.FP32,
    batch: Annotated[Optional[int], typer.Option("--batch", help="Static batch size; default: dynamic batch.", show_default=False)] = None,
    layout: Annotated[Layout, typer.Option("--layout", help="Input layout: nchw, or nhwc as upstream's forward takes it.")] = Layout.nchw,
    lowering: Annotated[str, typer.Option("--lowering", help="Hyena long-convolution lowering: auto (measured best), direct, spectral or scan.")] = "auto",
    validate: Annotated[bool, typer.Option("--validate/--no-validate", help="Compare ONNX Runtime with PyTorch after export.")] = True,
    io_dtype: Annotated[Optional[Precision], typer.Option("--io-dtype", help="Input/output dtype; default fp32 (fp16/bf16 need the same --precision).", show_default=False)] = None,
    external_data: Annotated[Optional[bool], typer.Option("--external-data/--inline-data", help="Weights in OUTPUT.data beside the graph; default: only past protobuf's 2 GB limit.", show_default=False)] = None,
    outputs: Annotated[str, typer.Option("--outputs", help=f"Graph outputs, comma-separated, in order: any of {', '.join(OUTPUT_NAMES)} (pre_logits: the classifier's input; patch_tokens: [B, Hp, Wp, C] feature map).")] = LOGITS,
    calibration: Annotated[Optional[Path], typer.Option("--calibration", help="Folder of calibration images (searched recursively); some are held out to validate the graph.", rich_help_panel=QUANT_PANEL, show_default=False)] = None,
    calibration_count: Annotated[int, typer.Option("--calibration-count", help="Images to calibrate on (besides the held-out ones).", rich_help_panel=QUANT_PANEL)] = 128,
    calibration_method: Annotated[CalibrationMethod, typer.Option("--calibration-method", help="Activation range: max, percentile (99.99%) or entropy (KL).", rich_help_panel=QUANT_PANEL)] = CalibrationMethod.max,
    seeded: Annotated[bool, typer.Option("--calibrate-on-seeded-inputs", help="Calibrate on seeded random inputs instead of images (accuracy unknown).", rich_help_panel=QUANT_PANEL)] = False,
    keep_float: Annotated[Optional[str], typer.Option("--keep-float", help="Comma-separated node-name patterns left unquantized; 'none' quantizes every GEMM. Default: the patch embedding, the classifier and Hyena's short conv (measured most sensitive).", rich_help_panel=QUANT_PANEL, show_default=False)] = None,
    sensitivity: Annotated[bool, typer.Option("--sensitivity", help="Measure each layer quantized alone and keep the outliers in higher precision (slower).", rich_help_panel=QUANT_PANEL)] = False,
    mean: Annotated[Optional[str], typer.Option("--mean", help="Per-channel mean of the preprocessing, one value or R,G,B (default ImageNet); stored in the graph metadata.", rich_help_panel=PRE_PANEL, show_default=False)] = None,
    std: Annotated[Optional[str], typer.Option("--std", help="Per-channel std of the preprocessing, one value or R,G,B (default ImageNet).", rich_help_panel=PRE_PANEL, show_default=False)] = None,
    crop_ratio: Annotated[Optional[float], typer.Option("--crop-ratio", help="Resize the shorter side to image_size / crop_ratio, then centre crop (default 1.0: resize to image_size).", rich_help_panel=PRE_PANEL, show_default=False)] = None,
    interpolation: Annotated[Optional[Interpolation], typer.Option("--interpolation", help="Resize interpolation (default bicubic).", rich_help_panel=PRE_PANEL, show_default=False)] = None,
) -> None:
    """Export a preset or checkpoint to ONNX, validate it with ONNX Runtime and summarize the graph."""
    names = tuple(parse_name_list(outputs, "--outputs", OUTPUT_NAMES))
    from vit5_infer.exporters.export import check_export_path
    from vit5_infer.preprocessing import check_crop_ratio

    # Before any work: a bad output path must not cost a load and an export, and never name an input.
    output = check_export_path(output, inputs=(source, model_opts.config, calibration))
    if crop_ratio is not None:
        check_crop_ratio(crop_ratio, what="--crop-ratio")  # the resize bound needs the model: checked after loading
    patterns = None
    if keep_float is not None:
        patterns = [] if keep_float.strip().lower() == "none" else [p.strip() for p in keep_float.split(",") if p.strip()]
    _, origin, result = export_model(
        source, output, model_opts, opset=opset, precision=precision.value, batch=batch,
        layout=layout.value, lowering=lowering, validate=validate,
        io_dtype=io_dtype.value if io_dtype else "fp32", external_data=external_data, target=target, outputs=names,
        preprocessing={"mean": parse_channels(mean, "--mean"), "std": parse_channels(std, "--std"),
                       "crop_ratio": crop_ratio, "interpolation": interpolation.value if interpolation else None},
        quantization=Quantization(calibration, calibration_count, calibration_method.value, seeded,
                                  patterns, sensitivity),
    )
    console.out.print(
        f"wrote {result.path} (target {result.metadata.get('target', 'ort')}, opset {result.opset}, {result.precision}, "
        f"{'batch ' + str(batch) if batch else 'dynamic batch'}, {layout.value}) from {origin.kind} {origin.name}"
    )
    console.out.print("outputs: " + ", ".join(f"{name} {shape}" for name, shape in result.metadata["outputs"].items()))
    print_validation(result.validation if validate else None)
    quant = result.metadata.get("quantization")
    if quant:
        cal = quant["calibration"]
        console.out.print(
            f"quantization: {quant['activations']} activations, {quant['weights']} weights, {quant['elsewhere']} elsewhere; "
            f"{quant['quantized_layers']} layers quantized, kept in higher precision: {', '.join(quant['float_layers']) or 'none'}; "
            f"calibrated on {cal['calibration_inputs']} inputs from {cal['source']} ({cal['method']}), validated on {cal['held_out_inputs']} held out"
        )
        for row in quant.get("sensitivity", [])[:8]:
            console.out.print(f"  sensitivity {row['node']}: 1-cosine {row['error']:.2e}, top-1 {row['top1_agreement']:.3f}")
    print_summary(result.summary, result.lowering)
