"""metadata_props of exported graphs: what a runtime or `vit5 bench` needs to rebuild the reference."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Union

import onnx

from vit5_infer import __version__
from vit5_infer.config import ViT5Config
from vit5_infer.errors import Vit5Error
from vit5_infer.files import parse_json
from vit5_infer.loading import ModelSource
from vit5_infer.outputs import output_shapes
from vit5_infer.preprocessing import Preprocessing
from vit5_infer.vocabulary import LOGITS

PREFIX = "vit5."
#: Entries that are JSON objects in every graph the exporter writes: one of another type was edited
#: by hand, and is refused where it is read rather than failing later where it is used.
OBJECT_KEYS = {"config": dict, "preprocessing": dict, "lowering": dict, "outputs": dict, "quantization": dict}


def build_metadata(config: ViT5Config, source: ModelSource | None, precision: str, opset: int, layout: str,
                   lowering: dict, io_dtype: str, batch, outputs=(LOGITS,),
                   preprocessing: Preprocessing | None = None) -> dict:
    """``preprocessing``: what the graph's users must apply to images (default: SPEC 8.4 at the
    model's input size)."""
    pre = preprocessing or Preprocessing(image_size=config.network.image_size)
    return {
        "config": config.to_dict(),
        "preprocessing": pre.to_metadata(layout),
        "toolkit_version": __version__,
        "source": None if source is None else source.__dict__,
        "precision": precision,
        "io_dtype": io_dtype,
        "opset": opset,
        "lowering": lowering,
        "batch": batch if batch is not None else "dynamic",
        # graph output name -> shape ("batch" for a dynamic batch)
        "outputs": _output_shapes(config, outputs, batch),
    }


def _output_shapes(config: ViT5Config, outputs, batch) -> dict:
    shapes = output_shapes(config, batch if batch is not None else "batch")
    return {name: shapes[name] for name in outputs}


def write_metadata(model: onnx.ModelProto, metadata: dict) -> None:
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key = PREFIX + key
        entry.value = json.dumps(value)


def read_metadata(model_or_path: Union[str, Path, onnx.ModelProto]) -> dict:
    """The vit5.* metadata of an exported graph, JSON-decoded ({} for foreign graphs)."""
    if isinstance(model_or_path, onnx.ModelProto):
        model = model_or_path
    else:
        path = Path(model_or_path)
        if not path.is_file():
            raise Vit5Error(f"ONNX file not found: {path}")
        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # onnx raises DecodeError, ValueError, ... for non-ONNX bytes
            raise Vit5Error(f"{path}: not a readable ONNX model ({type(exc).__name__})") from None
        if not model.HasField("graph") or model.ir_version == 0:
            # protobuf parses an empty (or any all-default) file as an empty model
            raise Vit5Error(f"{path}: not an ONNX model ({'an empty file' if path.stat().st_size == 0 else 'no graph'})")
    out = {}
    for entry in model.metadata_props:
        if entry.key.startswith(PREFIX):
            key = entry.key[len(PREFIX):]
            out[key] = parse_json(entry.value, f"the graph's {entry.key} metadata", OBJECT_KEYS.get(key), Vit5Error)
    return out


def read_metadata_or_empty(path: Union[str, Path]) -> dict:
    """Like read_metadata, but {} for a file that is missing, unreadable or written by another tool."""
    try:
        return read_metadata(path)
    except Vit5Error:
        return {}


def graph_outputs(model: onnx.ModelProto) -> dict[str, list]:
    """Output name -> shape (ints, and names for symbolic dimensions) of a graph, in graph order."""
    return {
        out.name: [dim.dim_param or dim.dim_value for dim in out.type.tensor_type.shape.dim]
        for out in model.graph.output
    }


def config_from_metadata(metadata: dict) -> ViT5Config:
    if "config" not in metadata:
        raise Vit5Error("the ONNX file carries no vit5 architecture metadata (not exported by vit5-infer)")
    try:
        return ViT5Config.from_dict(metadata["config"]).check_types()
    except Vit5Error as exc:
        raise Vit5Error(f"the ONNX file's vit5.config metadata is invalid (edited by hand?): {exc}") from None
