"""The ONNX graph an engine is built from: an ONNX file as given, or a preset/checkpoint exported first.

Also decides which precision a graph already carries, and produces the reduced-precision graph for
--fp16/--bf16 through the exporter's convert_precision (norms, softmax, long convolutions and SIREN
stay FP32), so TensorRT 10.x and 11.x build from the same typed graph.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Union

import onnx

from .errors import BackendError, EngineBuildError

PathLike = Union[str, Path]
PRECISIONS = ("fp32", "fp16", "bf16")


def is_onnx_path(source: PathLike) -> bool:
    return str(source).lower().endswith(".onnx")


def require_onnx_file(path: PathLike) -> Path:
    path = Path(path)
    if not is_onnx_path(path):
        raise BackendError(f"{path}: expected an .onnx file")
    if not path.is_file():
        raise BackendError(f"{path}: ONNX file not found")
    return path


def export_source(source: PathLike, onnx_path: PathLike, progress: Optional[Callable[[str], None]] = None) -> Path:
    """Export a preset name or checkpoint file to ``onnx_path`` (FP32, dynamic batch)."""
    from vit5_infer import resolve_model
    from vit5_infer.exporters import export_onnx  # lazy: the exporter pulls in torch.onnx

    model, model_source = resolve_model(source)
    if progress:
        progress(f"exporting {source} to ONNX")
    result = export_onnx(model, onnx_path, source=model_source, progress=progress)
    return Path(getattr(result, "path", onnx_path))


def read_onnx_metadata(path: PathLike) -> dict:
    """The exporter's metadata; {} for an ONNX file written by another tool or not readable."""
    from vit5_infer.errors import Vit5Error
    from vit5_infer.exporters import read_metadata

    try:
        return read_metadata(path)
    except Vit5Error:
        return {}


def graph_precision(model: onnx.ModelProto, metadata: Optional[dict] = None) -> str:
    """fp32, fp16 or bf16: what the exporter recorded, else the reduced type the weights are stored in."""
    from vit5_infer.exporters import graph_precision as stored_precision

    recorded = (metadata or {}).get("precision")
    if recorded in PRECISIONS:
        return str(recorded)
    return stored_precision(model)


def graph_for_precision(onnx_path: PathLike, precision: str, workdir: PathLike) -> tuple[Path, str, onnx.ModelProto]:
    """(file to give TensorRT, its precision, the loaded model) for the requested precision.

    An FP32 graph asked for fp16/bf16 is converted into ``workdir``; a graph that already has the
    requested types is used as is.  Any other combination is a user error.
    """
    if precision not in PRECISIONS:
        raise EngineBuildError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    onnx_path = Path(onnx_path)
    try:
        model = onnx.load(str(onnx_path))
    except Exception as exc:  # noqa: BLE001 - protobuf/IO errors become one line
        raise BackendError(f"{onnx_path}: not a readable ONNX model ({str(exc).splitlines()[0]})") from None
    have = graph_precision(model, read_onnx_metadata(onnx_path))
    if have == precision:
        return onnx_path, have, model
    if have != "fp32":
        raise EngineBuildError(
            f"{onnx_path} is already an {have} graph; build it with --{have}, or export an FP32 graph for --{precision}"
            if precision != "fp32"
            else f"{onnx_path} is an {have} graph; build it with --{have}"
        )
    from vit5_infer.exporters import convert_precision  # lazy: only reduced-precision builds need it
    from vit5_infer.exporters.export import EXTERNAL_DATA_THRESHOLD

    converted = convert_precision(model, precision)
    out = Path(workdir) / f"{onnx_path.stem}.{precision}.onnx"
    large = converted.ByteSize() > EXTERNAL_DATA_THRESHOLD
    onnx.save_model(converted, str(out), save_as_external_data=large, location=out.name + ".data" if large else None)
    return out, precision, converted
