"""``vit5 inspect``: what a checkpoint, ONNX file or TensorRT engine holds."""

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from vit5_infer.config import config_summary
from vit5_infer.errors import Vit5Error
from vit5_infer.vocabulary import ENGINE_SUFFIXES

from . import console
from .export_cmd import print_summary
from .model_options import ModelOptions, model_options


def checkpoint_info(source: str, model_opts: ModelOptions) -> dict:
    from vit5_infer.loading import load_source

    model, origin = load_source(source, model_opts)
    return {
        "kind": origin.kind,
        "source": origin.name,
        "sha256": origin.sha256,
        "architecture": config_summary(model.config),
        "parameters": model.num_parameters(),
        "gflops_per_image": model.flop_count(inference=True) / 1e9,
        "input_shape": list(model.input_shape),
        "config": model.config.to_dict(),
    }


def _type_text(type_proto) -> str:
    """``seq(float32)``, ``map(int64, float32)``, ``optional(...)``: the non-tensor types of foreign graphs."""
    import onnx

    kind = type_proto.WhichOneof("value")
    if kind in ("tensor_type", "sparse_tensor_type"):
        elem = getattr(type_proto, kind).elem_type
        try:
            return onnx.helper.tensor_dtype_to_np_dtype(elem).name
        except (KeyError, ValueError, TypeError):
            return onnx.TensorProto.DataType.Name(elem) if elem in onnx.TensorProto.DataType.values() else "unknown"
    if kind == "sequence_type":
        return f"seq({_type_text(type_proto.sequence_type.elem_type)})"
    if kind == "optional_type":
        return f"optional({_type_text(type_proto.optional_type.elem_type)})"
    if kind == "map_type":
        key = onnx.TensorProto.DataType.Name(type_proto.map_type.key_type).lower()
        return f"map({key}, {_type_text(type_proto.map_type.value_type)})"
    return kind or "unknown"


def _value_info(v) -> dict:
    kind = v.type.WhichOneof("value")
    if kind != "tensor_type":
        # a foreign graph may take sequences, maps or optionals: say what it is instead of failing
        return {"name": v.name, "dtype": _type_text(v.type), "shape": None}
    t = v.type.tensor_type
    dims = [d.dim_param or d.dim_value for d in t.shape.dim]
    return {"name": v.name, "dtype": _type_text(v.type), "shape": dims}


def onnx_info(path: Path) -> dict:
    import onnx

    from vit5_infer.exporters import read_metadata, summarize

    metadata = read_metadata(path)  # one-line error for missing or non-ONNX files
    model = onnx.load(str(path), load_external_data=False)
    size = path.stat().st_size + sum(p.stat().st_size for p in path.parent.glob(path.name + ".data"))
    return {
        "kind": "onnx",
        "path": str(path),
        "opset": {imp.domain or "ai.onnx": imp.version for imp in model.opset_import},
        "inputs": [_value_info(v) for v in model.graph.input],
        "outputs": [_value_info(v) for v in model.graph.output],
        "summary": summarize(model, size),
        "metadata": metadata,
    }


def engine_info(path: Path) -> dict:
    from vit5_infer.engines.manifest import read_manifest
    from vit5_infer.errors import InputError

    if not path.name.endswith(".json") and not path.is_file():
        raise InputError(f"engine not found: {path}" + (" (only its manifest is there)" if path.with_name(path.name + ".json").is_file() else ""))
    manifest = read_manifest(path)
    return {"kind": "engine", "path": str(path), "manifest": manifest.to_dict(), "layers": engine_layers(path)}


def engine_layers(path: Path):
    """Layer names from the engine inspector JSON saved at build time, or a note on why there are none."""
    from vit5_infer.engines.attention_report import inspector_layers
    from vit5_infer.engines.manifest import layers_path_for

    saved = layers_path_for(path)
    if not saved.is_file():
        return f"not listed: {saved.name} not found (engines built by 'vit5 build-engine' save it)"
    layers = inspector_layers(saved.read_text(encoding="utf-8"))
    if layers is None:
        return f"not listed: {saved.name} is not the engine inspector's JSON"
    return [layer.get("Name", str(layer)) if isinstance(layer, dict) else str(layer) for layer in layers]


def tensorrt_report(path: Path, version: str, as_json: bool, info: dict):
    """Run the TensorRT parser check on ``path`` and print it (the verdict and one line per issue)."""
    from vit5_infer.exporters.tensorrt_compat import check_tensorrt_compat

    report = check_tensorrt_compat(path, version)
    if as_json:
        console.out.print_json(json.dumps({**info, "tensorrt": report.to_dict()}, default=str))
    else:
        for line in report.lines():
            console.out.print(line, markup=False)
        if not report.compatible and len(report.errors) > 1:
            console.out.print(report.summary(), markup=False)
    return report


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
        console.out.print(f"{kind} {info['source']}" + (f" (sha256 {info['sha256'][:16]}...)" if info.get("sha256") else ""))
        console.out.print(_kv_table("architecture", info["architecture"].items()))
        console.out.print(f"parameters: {info['parameters']:,}   FLOPs per image: {info['gflops_per_image']:.3f} G   input: {info['input_shape']}")
    elif kind == "onnx":
        console.out.print(f"ONNX {info['path']}   opset {info['opset']}")
        for role in ("inputs", "outputs"):
            for v in info[role]:
                console.out.print(f"{role[:-1]}: {v['name']} {v['dtype']} {v['shape']}")
        md = info["metadata"]
        if md:
            shown = [(k, v) for k, v in md.items() if k != "config"]
            if "config" in md:
                from vit5_infer.exporters.metadata import config_from_metadata

                shown.insert(0, ("architecture", config_summary(config_from_metadata(md))))
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
    file: Annotated[str, typer.Argument(help="Checkpoint (.safetensors, .pt, .ckpt), preset name, ONNX file or TensorRT engine.", show_default=False)],
    model_opts: ModelOptions,
    as_json: Annotated[bool, typer.Option("--json", help="Print everything as JSON.")] = False,
    tensorrt: Annotated[Optional[str], typer.Option(
        "--tensorrt", metavar="VERSION",
        help="ONNX files: check the graph against the ONNX parser of this TensorRT release (e.g. 10.8, 11.0); "
        "prints one line per issue and exits 1 if the parser would reject it.")] = None,
) -> None:
    """Show what a file holds: checkpoint architecture and size; ONNX ops, fused ops and metadata; engine manifest and layers."""
    path = Path(file)
    suffix = path.suffix.lower()
    if tensorrt is not None and suffix != ".onnx":
        raise Vit5Error(f"--tensorrt checks ONNX files; {file} is not one (export it first with 'vit5 export')")
    if suffix == ".onnx":
        info = onnx_info(path)
        if tensorrt is not None:
            report = tensorrt_report(path, tensorrt, as_json, info)
            if not report.compatible:
                raise typer.Exit(1)
            return
    elif suffix in ENGINE_SUFFIXES or path.name.endswith(".engine.json"):
        info = engine_info(path)
    else:
        with console.status(f"reading {file}"):
            info = checkpoint_info(file, model_opts)
    if as_json:
        console.out.print_json(json.dumps(info, default=str))
    else:
        print_info(info)
