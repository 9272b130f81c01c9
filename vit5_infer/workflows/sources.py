"""What a SOURCE is and what a given graph fixes: its kind (preset or checkpoint, ONNX file, engine), the
outputs compared for it, its input layout and its static batch.  Shared by the benchmark and predict."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from vit5_infer.errors import BenchError
from vit5_infer.vocabulary import QUANTIZED_PRECISIONS, PathLike, is_engine_path, is_onnx_path

from .artifacts import recorded_precision


def source_kind(source: PathLike) -> str:
    """``onnx``, ``engine`` or ``model`` (a preset or checkpoint)."""
    if is_onnx_path(source):
        return "onnx"
    if is_engine_path(source):
        return "engine"
    return "model"


def compared_outputs(model, asked: Optional[Sequence[str]], graph: Optional[Path] = None) -> tuple[str, ...]:
    """The outputs the benchmark compares: ``asked`` (default ``logits``) for a preset or checkpoint;
    for an ONNX file (or the one an engine was built from), every graph output, or the asked ones
    when the graph has them all."""
    from vit5_infer.outputs import select_outputs

    if graph is None:
        return select_outputs(model.config, asked)
    import onnx

    from vit5_infer.graph_metadata import graph_outputs

    have = tuple(graph_outputs(onnx.load(str(graph), load_external_data=False)))
    names = have if asked is None else select_outputs(model.config, asked)
    missing = [name for name in names if name not in have]
    if missing:
        precision = recorded_precision(graph)
        way_out = (
            f"{precision} graphs output logits only: bench the float graph or the checkpoint with --outputs "
            f"{','.join(names)}"
            if precision in QUANTIZED_PRECISIONS
            else f"export it with --outputs {','.join(names)}"
        )
        raise BenchError(f"{graph.name} has no output {', '.join(missing)} (its outputs: {', '.join(have)}); {way_out}")
    return select_outputs(model.config, names)


def graph_layout(metadata: dict) -> str:
    """The input layout an exported graph recorded (``nchw`` when it recorded none)."""
    pre = metadata.get("preprocessing") if isinstance(metadata, dict) else None
    layout = pre.get("layout", "nchw") if isinstance(pre, dict) else "nchw"
    if layout not in ("nchw", "nhwc"):
        raise BenchError(f"the graph's preprocessing metadata records layout {layout!r}; expected nchw or nhwc")
    return layout


def check_graph_batches(source: str, metadata: dict, batches: Sequence[int]) -> None:
    """A graph exported with a static batch runs only at that batch: say so before any work."""
    static = metadata.get("batch")
    if isinstance(static, int) and not isinstance(static, bool) and list(batches) != [static]:
        raise BenchError(
            f"{source} was exported with a static batch of {static}; run it with --batch {static} "
            f"(asked: {','.join(map(str, batches))})"
        )
