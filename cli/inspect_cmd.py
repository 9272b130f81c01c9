"""``vit5 inspect``: what a checkpoint, ONNX file or TensorRT engine holds."""

import json
from typing import Annotated, Optional

import typer
from rich.table import Table

from vit5_infer.workflows.inspect import metadata_architecture

from . import console
from .export_cmd import print_summary
from .model_options import ModelOptions, model_options


def print_tensorrt_report(report, as_json: bool, info: dict) -> None:
    """The TensorRT parser check's verdict and one line per issue."""
    if as_json:
        console.out.print_json(json.dumps({**info, "tensorrt": report.to_dict()}, default=str))
        return
    for line in report.lines():
        console.out.print(line, markup=False)
    if not report.compatible and len(report.errors) > 1:
        console.out.print(report.summary(), markup=False)


def _kv_table(title: str, items) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in items:
        table.add_row(str(key), value if isinstance(value, str) else json.dumps(value))
    return table


def print_info(info: dict) -> None:
    kind = info["kind"]
    if kind in ("preset", "checkpoint"):
        console.out.print(
            f"{kind} {info['source']}" + (f" (sha256 {info['sha256'][:16]}...)" if info.get("sha256") else "")
        )
        console.out.print(_kv_table("architecture", info["architecture"].items()))
        console.out.print(
            f"parameters: {info['parameters']:,}   FLOPs per image: {info['gflops_per_image']:.3f} G   input: "
            f"{info['input_shape']}"
        )
    elif kind == "onnx":
        console.out.print(f"ONNX {info['path']}   opset {info['opset']}")
        for role in ("inputs", "outputs"):
            for v in info[role]:
                console.out.print(f"{role[:-1]}: {v['name']} {v['dtype']} {v['shape']}")
        md = info["metadata"]
        if md:
            shown = [(k, v) for k, v in md.items() if k != "config"]
            if "config" in md:
                shown.insert(0, ("architecture", metadata_architecture(md)))
            console.out.print(_kv_table("vit5 metadata", shown))
        else:
            console.out.print("no vit5 metadata (not exported by vit5-infer)")
        print_summary(info["summary"])
    else:
        console.out.print(f"TensorRT engine {info['path']}")
        console.out.print(_kv_table("manifest", info["manifest"].items()))
        layers = info["layers"]
        if isinstance(layers, str):
            console.out.print(f"layers: {layers}")
        else:
            console.out.print(f"layers ({len(layers)}):")
            for name in layers:
                console.out.print(f"  {name}")


@model_options
def inspect_file(
    file: Annotated[
        str,
        typer.Argument(
            help="Checkpoint (.safetensors, .pt, .ckpt), preset name, ONNX file or TensorRT engine.", show_default=False
        ),
    ],
    model_opts: ModelOptions,
    as_json: Annotated[bool, typer.Option("--json", help="Print everything as JSON.")] = False,
    tensorrt: Annotated[
        Optional[str],
        typer.Option(
            "--tensorrt",
            metavar="VERSION",
            help="ONNX files: check the graph against the ONNX parser of this TensorRT release (e.g. 10.8, 11.0); "
            "prints one line per issue and exits 1 if the parser would reject it.",
        ),
    ] = None,
) -> None:
    """Show what a file holds: checkpoint architecture and size; ONNX ops, fused ops and metadata; engine
    manifest and layers."""
    from vit5_infer.workflows.inspect import InspectOptions, inspect

    with console.status(f"reading {file}") as status:
        inspection = inspect(file, InspectOptions(tensorrt=tensorrt, load=model_opts), progress=status.update)
    if inspection.tensorrt is not None:
        print_tensorrt_report(inspection.tensorrt, as_json, inspection.info)
        if not inspection.tensorrt.compatible:
            raise typer.Exit(1)
        return
    if as_json:
        console.out.print_json(json.dumps(inspection.info, default=str))
    else:
        print_info(inspection.info)
