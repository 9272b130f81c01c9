"""``vit5 build-engine``: an ONNX file (or a preset/checkpoint, exported first) -> TensorRT engine + manifest."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import console
from .model_options import ModelOptions, model_options

PROFILE_PANEL = "Batch profile"
PORTABLE_PANEL = "Portable engines"


@model_options
def build_engine(
    source: Annotated[
        str,
        typer.Argument(
            help="ONNX file, or a preset/checkpoint to export first (the ONNX is kept beside the engine).",
            show_default=False,
        ),
    ],
    output: Annotated[
        str,
        typer.Option(
            "--output", "-o", help="Where to write the engine (its manifest goes to OUTPUT.json).", show_default=False
        ),
    ],
    model_opts: ModelOptions,
    fp16: Annotated[
        bool, typer.Option("--fp16", help="Build from an FP16 graph (norms, softmax, long conv stay FP32).")
    ] = False,
    bf16: Annotated[bool, typer.Option("--bf16", help="Build from a BF16 graph.")] = False,
    int8: Annotated[
        bool,
        typer.Option(
            "--int8",
            help="Build an INT8 Q/DQ graph ('vit5 export --precision int8 --target tensorrt'): its scales are in the "
            "graph, no calibrator.",
        ),
    ] = False,
    fp8: Annotated[
        bool,
        typer.Option(
            "--fp8",
            help="Build an FP8 Q/DQ graph ('vit5 export --precision fp8 --target tensorrt'; Ada/Hopper or newer).",
        ),
    ] = False,
    min_batch: Annotated[
        Optional[int],
        typer.Option(
            "--min-batch",
            help="Smallest batch the engine accepts (default 1).",
            rich_help_panel=PROFILE_PANEL,
            show_default=False,
        ),
    ] = None,
    opt_batch: Annotated[
        Optional[int],
        typer.Option(
            "--opt-batch",
            help="Batch the kernels are tuned for (default 1).",
            rich_help_panel=PROFILE_PANEL,
            show_default=False,
        ),
    ] = None,
    max_batch: Annotated[
        Optional[int],
        typer.Option(
            "--max-batch",
            help="Largest batch the engine accepts (default 8).",
            rich_help_panel=PROFILE_PANEL,
            show_default=False,
        ),
    ] = None,
    batch_profiles: Annotated[
        Optional[str],
        typer.Option(
            "--batch-profiles",
            help="Several optimization profiles instead of --min/--opt/--max-batch, e.g. 1,2-8,16-64: each N, MIN-MAX "
            "(tuned for MAX) or MIN-OPT-MAX, ascending, without overlap; the runner uses the profile that holds the "
            "batch.",
            rich_help_panel=PROFILE_PANEL,
            show_default=False,
        ),
    ] = None,
    version_compatible: Annotated[
        bool,
        typer.Option(
            "--version-compatible",
            help="Build an engine that newer TensorRT releases also run (same major, or 10 -> 11); may be slower.",
            rich_help_panel=PORTABLE_PANEL,
        ),
    ] = False,
    hardware_compatibility: Annotated[
        Optional[str],
        typer.Option(
            "--hardware-compatibility",
            help="none, ampere+ (runs on any Ampere or newer GPU; built on one) or same-compute-capability (TensorRT "
            "10.9+); may be slower.",
            rich_help_panel=PORTABLE_PANEL,
            show_default=False,
        ),
    ] = None,
    timing_cache: Annotated[
        Optional[Path],
        typer.Option(
            "--timing-cache", help="Read and update this TensorRT timing cache (faster rebuilds).", show_default=False
        ),
    ] = None,
    workspace: Annotated[
        Optional[float],
        typer.Option("--workspace", help="Builder workspace limit in GiB (default: TensorRT's).", show_default=False),
    ] = None,
    opt_level: Annotated[
        int, typer.Option("--opt-level", "--optimization-level", help="Builder optimization level 0..5.")
    ] = 3,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show TensorRT's own log.")] = False,
) -> None:
    """Build a TensorRT engine (needs an NVIDIA GPU and the tensorrt package) and report attention fusion."""
    from vit5_infer.workflows.build_engine import batches_from_flags, check_build_outputs
    from vit5_infer.workflows.build_engine import build_engine as build

    chosen = [name for name, flag in (("fp16", fp16), ("bf16", bf16), ("int8", int8), ("fp8", fp8)) if flag]
    if len(chosen) > 1:
        raise typer.BadParameter("choose one of --fp16, --bf16, --int8 and --fp8", param_hint="--" + "/--".join(chosen))
    precision = chosen[0] if chosen else "fp32"
    batches = batches_from_flags(min_batch, opt_batch, max_batch, batch_profiles)
    output = check_build_outputs(source, output, timing_cache, model_opts.config)
    with console.status(f"building {output} ({precision})") as status:
        result = build(
            source,
            output,
            precision=precision,
            **batches,
            version_compatible=version_compatible,
            hardware_compatibility=hardware_compatibility,
            timing_cache=timing_cache,
            workspace_gib=workspace,
            optimization_level=opt_level,
            verbose=verbose,
            progress=lambda message: status.update(message),
            load=model_opts,
        )
    console.out.print(f"wrote {result.engine_path} and {result.manifest_path} in {result.build_seconds:.1f} s")
    if result.onnx_path is not None and str(result.onnx_path) != str(source):
        console.out.print(f"exported ONNX kept at {result.onnx_path}")
    fusion = result.fusion
    if fusion is not None and fusion.fused is False:
        console.loud_warning(result.warnings[0] if result.warnings else fusion.summary())
    elif fusion is not None:
        before, found, after = fusion.summary().partition(": fused")
        console.out.print(console.styled(before, (found, "green"), after) if found else before)
    if result.layers_path is not None:
        console.out.print(f"engine layers (inspector JSON): {result.layers_path}")
