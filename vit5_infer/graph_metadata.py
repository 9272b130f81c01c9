"""The vit5.* metadata_props of exported graphs: the contract between the exporters that write them and
every runtime, benchmark and diagnostic that rebuilds the reference network from a graph.

onnx is imported by the functions that need it, so the core stays importable without it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union

from .config import ViT5Config
from .errors import Vit5Error
from .files import parse_json

if TYPE_CHECKING:
    import onnx

PREFIX = "vit5."
#: Entries that are JSON objects in every graph the exporter writes: one of another type was edited
#: by hand, and is refused where it is read rather than failing later where it is used.
OBJECT_KEYS = {"config": dict, "preprocessing": dict, "lowering": dict, "outputs": dict, "quantization": dict}


def write_metadata(model: onnx.ModelProto, metadata: dict) -> None:
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key = PREFIX + key
        entry.value = json.dumps(value)


def read_metadata(model_or_path: Union[str, Path, onnx.ModelProto]) -> dict:
    """The vit5.* metadata of an exported graph, JSON-decoded ({} for foreign graphs)."""
    import onnx

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
        if not has_graph(model):
            what = "an empty file" if path.stat().st_size == 0 else "no graph"
            raise Vit5Error(f"{path}: not an ONNX model ({what})")
    out = {}
    for entry in model.metadata_props:
        if entry.key.startswith(PREFIX):
            key = entry.key[len(PREFIX) :]
            out[key] = parse_json(entry.value, f"the graph's {entry.key} metadata", OBJECT_KEYS.get(key), Vit5Error)
    return out


def has_graph(model: onnx.ModelProto) -> bool:
    """False for what protobuf parses out of an empty (or any all-default) file: an empty model."""
    return model.HasField("graph") and model.ir_version != 0


def read_metadata_or_empty(path: Union[str, Path]) -> dict:
    """Like read_metadata, but {} for a file that is missing, unreadable or written by another tool."""
    try:
        return read_metadata(path)
    except Vit5Error:
        return {}


@dataclass(frozen=True)
class GraphFile:
    """An ONNX file read once for every step that needs only its structure: the graph without its external
    data (weights stored beside it stay on disk), its vit5.* metadata (read_metadata_or_empty) and the SHA-256
    of the file's bytes.

    ``model`` is None when the file is no readable ONNX graph; a step that must refuse it then reads the path
    itself, so each reports that in its own words.  An empty file parses as an empty model, as onnx.load has it.
    """

    path: Path
    model: Optional[onnx.ModelProto] = field(repr=False, compare=False)
    metadata: dict = field(compare=False)
    sha256: Optional[str] = None

    @classmethod
    def read(cls, path: Union[str, Path]) -> GraphFile:
        import hashlib
        import io

        import onnx

        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError:
            return cls(path, None, {})
        sha256 = hashlib.sha256(data).hexdigest()
        try:
            # from the bytes just hashed: what onnx.load(path, load_external_data=False) parses for a .onnx file
            model = onnx.load_model(io.BytesIO(data), load_external_data=False)
        except Exception:  # noqa: BLE001 - reported by the step that needs the graph
            return cls(path, None, {}, sha256)
        try:
            metadata = read_metadata(model) if has_graph(model) else {}
        except Vit5Error:
            metadata = {}
        return cls(path, model, metadata, sha256)


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
