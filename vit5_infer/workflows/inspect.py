"""The inspect stage: what a checkpoint, preset, ONNX file or TensorRT engine holds, as data.

``inspect(file, options)`` is the entry ``vit5 inspect`` calls; the CLI prints what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from vit5_infer.errors import InputError, Vit5Error
from vit5_infer.load_options import LoadOptions
from vit5_infer.vocabulary import Progress, is_engine_path, is_onnx_path


@dataclass(frozen=True)
class InspectOptions:
    #: ONNX files only: check the graph against the ONNX parser of this TensorRT release
    tensorrt: Optional[str] = None
    load: LoadOptions = field(default_factory=LoadOptions)  # how a checkpoint or preset is loaded


@dataclass(frozen=True)
class Inspection:
    #: kind ("preset", "checkpoint", "onnx" or "engine") and what the file holds, JSON-ready
    info: dict
    #: the TensorRT parser check (exporters.tensorrt_compat's report) when options.tensorrt was given
    tensorrt: Any = None


def file_kind(path: Path) -> str:
    """ "onnx", "engine" or "model" (a checkpoint or preset name), by the name."""
    if is_onnx_path(path):
        return "onnx"
    if is_engine_path(path) or path.name.endswith(".engine.json"):
        return "engine"
    return "model"


def check_inspect_options(file: str, options: InspectOptions) -> None:
    if options.tensorrt is not None and file_kind(Path(file)) != "onnx":
        raise Vit5Error(f"--tensorrt checks ONNX files; {file} is not one (export it first with 'vit5 export')")


def inspect(file: str, options: InspectOptions, progress: Progress = None) -> Inspection:
    check_inspect_options(file, options)
    path = Path(file)
    kind = file_kind(path)
    if kind == "onnx":
        info = onnx_info(path)
        if options.tensorrt is not None:
            from vit5_infer.exporters.tensorrt_compat import check_tensorrt_compat

            return Inspection(info, check_tensorrt_compat(path, options.tensorrt))
        return Inspection(info)
    if kind == "engine":
        return Inspection(engine_info(path))
    if progress:
        progress(f"reading {file}")
    return Inspection(checkpoint_info(file, options.load))


def metadata_architecture(metadata: dict) -> dict:
    """The architecture summary of the config an exported graph's metadata records."""
    from vit5_infer.config import config_summary
    from vit5_infer.graph_metadata import config_from_metadata

    return config_summary(config_from_metadata(metadata))


def checkpoint_info(source: str, load: LoadOptions) -> dict:
    from vit5_infer.config import config_summary
    from vit5_infer.loading import load_source  # torch: imported when a model is loaded

    model, origin = load_source(source, load)
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
    from vit5_infer.engine_manifest import MANIFEST_SUFFIX, manifest_path_for, read_manifest

    if not path.name.endswith(MANIFEST_SUFFIX) and not path.is_file():
        only_manifest = manifest_path_for(path).is_file()
        raise InputError(f"engine not found: {path}" + (" (only its manifest is there)" if only_manifest else ""))
    manifest = read_manifest(path)
    return {"kind": "engine", "path": str(path), "manifest": manifest.to_dict(), "layers": engine_layers(path)}


def engine_layers(path: Path):
    """Layer names from the engine inspector JSON saved at build time, or a note on why there are none."""
    from vit5_infer.engine_manifest import layers_path_for
    from vit5_infer.engines.attention_report import inspector_layers

    saved = layers_path_for(path)
    if not saved.is_file():
        return f"not listed: {saved.name} not found (engines built by 'vit5 build-engine' save it)"
    layers = inspector_layers(saved.read_text(encoding="utf-8"))
    if layers is None:
        return f"not listed: {saved.name} is not the engine inspector's JSON"
    return [layer.get("Name", str(layer)) if isinstance(layer, dict) else str(layer) for layer in layers]
