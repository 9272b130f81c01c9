"""Per-layer comparison of a reduced-precision graph against its FP32 graph.

Every intermediate tensor of both graphs is marked as an output (``marked_runners``), both run on
the same inputs, and tensors are matched by name: the precision pass keeps the FP32 graph's
node-output names and only adds its own ``<tensor>/cast_<type>`` nodes, which have no reference
and are listed as unmatched.  Values are compared in float64 with scale-free metrics, relative L2
error ``||c - r|| / ||r||`` and cosine similarity, because magnitudes differ by orders between
tensors (the spectral long convolution's DFT sums reach thousands where a norm's output is ~1):
an absolute bound flags the large ones falsely and misses errors in the small ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union

import numpy as np

from vit5_infer.errors import InputError
from vit5_infer.vocabulary import PathLike, Precision, Progress

from .inputs import image_input
from .marked_runners import LayerCompareError, ort_runner, run_runners, tensorrt_runner
from .norm_stats import NormInputStats, norm_input_stats
from .scopes import block_of, producers

if TYPE_CHECKING:
    import onnx  # imported where used: the CLI imports this package before it parses its flags

BACKENDS = ("ort", "trt")
OK, OUT_OF_TOLERANCE, NON_FINITE, SHAPE_MISMATCH = "ok", "out of tolerance", "non-finite", "shape mismatch"


@dataclass(frozen=True)
class LayerTolerance:
    """A tensor is within tolerance when ``rel_l2 <= rel_l2`` and ``cosine >= cosine``."""

    rel_l2: float
    cosine: float

    def __post_init__(self):
        check_tolerance(self.rel_l2, self.cosine)


def check_tolerance(rel_l2: Optional[float] = None, cosine: Optional[float] = None) -> None:
    """InputError for a relative L2 bound that is not a finite number >= 0, or a cosine bound outside
    [-1, 1] (NaN included: every comparison with it fails, so every tensor would be reported)."""
    if rel_l2 is not None and not (isinstance(rel_l2, (int, float)) and 0.0 <= rel_l2 < float("inf")):
        raise InputError(f"--rel-l2 must be a finite number >= 0, got {rel_l2!r}")
    if cosine is not None and not (isinstance(cosine, (int, float)) and -1.0 <= cosine <= 1.0):
        raise InputError(f"--cosine must lie in [-1, 1], got {cosine!r}")


#: Per candidate precision.  FP16 rounds each value to a relative 2**-11 (BF16: 2**-8); errors then
#: grow through the blocks, so a tensor 10-20x past one rounding step has left the expected regime.
LAYER_TOLERANCES = {
    Precision.FP32: LayerTolerance(rel_l2=1e-4, cosine=0.99999),
    Precision.FP16: LayerTolerance(rel_l2=1e-2, cosine=0.9999),
    Precision.BF16: LayerTolerance(rel_l2=5e-2, cosine=0.999),
    Precision.INT8: LayerTolerance(rel_l2=0.15, cosine=0.99),
    Precision.FP8: LayerTolerance(rel_l2=0.15, cosine=0.99),
}


@dataclass(frozen=True)
class TensorComparison:
    name: str
    block: str
    op_type: str
    shape: tuple[int, ...]
    rel_l2: float
    cosine: float
    max_abs: float
    reference_max_abs: float
    verdict: str

    @property
    def passed(self) -> bool:
        return self.verdict == OK

    def to_dict(self) -> dict:
        return {**asdict(self), "shape": list(self.shape)}


@dataclass(frozen=True)
class BlockSummary:
    block: str
    tensors: int
    failing: int
    worst: TensorComparison
    first_failing: Optional[TensorComparison]

    def to_dict(self) -> dict:
        return {
            "block": self.block,
            "tensors": self.tensors,
            "failing": self.failing,
            "worst": self.worst.name,
            "first_failing": self.first_failing.name if self.first_failing else None,
        }


@dataclass(frozen=True)
class LayerComparison:
    reference: str
    candidate: str
    backend: str
    precision: str
    tolerance: LayerTolerance
    batch: int
    #: matched tensors in the reference graph's (topological) order
    rows: tuple[TensorComparison, ...]
    #: candidate tensors with no reference of the same name (the precision pass's casts)
    unmatched: tuple[str, ...] = ()
    norm_inputs: tuple[NormInputStats, ...] = ()
    blocks: tuple[BlockSummary, ...] = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "blocks", summarize_blocks(self.rows))

    @property
    def failing(self) -> tuple[TensorComparison, ...]:
        return tuple(row for row in self.rows if not row.passed)

    @property
    def first_failing(self) -> Optional[TensorComparison]:
        return next(iter(self.failing), None)

    @property
    def passed(self) -> bool:
        return not self.failing

    def worst(self, count: int) -> tuple[TensorComparison, ...]:
        """The ``count`` tensors with the largest relative error (non-finite ones first)."""
        return tuple(sorted(self.rows, key=_badness, reverse=True)[:count])

    def to_dict(self) -> dict:
        first = self.first_failing
        return {
            "reference": self.reference,
            "candidate": self.candidate,
            "backend": self.backend,
            "precision": self.precision,
            "tolerance": asdict(self.tolerance),
            "batch": self.batch,
            "passed": self.passed,
            "first_failing": None if first is None else first.name,
            "blocks": [b.to_dict() for b in self.blocks],
            "tensors": [row.to_dict() for row in self.rows],
            "unmatched": list(self.unmatched),
            "norm_inputs": [row.to_dict() for row in self.norm_inputs],
        }


def _badness(row: TensorComparison) -> tuple[int, float]:
    return (row.verdict in (NON_FINITE, SHAPE_MISMATCH), row.rel_l2 if np.isfinite(row.rel_l2) else np.inf)


def summarize_blocks(rows: tuple[TensorComparison, ...]) -> tuple[BlockSummary, ...]:
    """One summary per block, in order of the blocks' first tensor."""
    grouped: dict[str, list[TensorComparison]] = {}
    for row in rows:
        grouped.setdefault(row.block, []).append(row)
    return tuple(
        BlockSummary(
            block,
            len(members),
            sum(not r.passed for r in members),
            max(members, key=_badness),
            next((r for r in members if not r.passed), None),
        )
        for block, members in grouped.items()
    )


def tensor_metrics(reference: np.ndarray, candidate: np.ndarray) -> tuple[float, float, float, float]:
    """(relative L2 error, cosine, max abs error, max |reference|), in float64; a candidate with
    inf/nan values gives (inf, nan, inf, ...)."""
    r = np.asarray(reference, dtype=np.float64).ravel()
    c = np.asarray(candidate, dtype=np.float64).ravel()
    if r.size == 0:
        return 0.0, 1.0, 0.0, 0.0
    if not np.isfinite(c).all():
        return float("inf"), float("nan"), float("inf"), float(np.abs(r).max())
    diff = c - r
    norm_r, norm_c, norm_d = (float(np.linalg.norm(v)) for v in (r, c, diff))
    rel = norm_d / norm_r if norm_r > 0 else (0.0 if norm_d == 0 else float("inf"))
    if norm_r > 0 and norm_c > 0:
        cosine = float(np.clip(r @ c / (norm_r * norm_c), -1.0, 1.0))
    else:
        cosine = 1.0 if norm_r == norm_c else 0.0  # both zero: equal; one zero: no common direction
    return rel, cosine, float(np.abs(diff).max()), float(np.abs(r).max())


def compare_outputs(
    reference_graph: onnx.ModelProto,
    reference: Mapping[str, np.ndarray],
    candidate: Mapping[str, np.ndarray],
    tolerance: LayerTolerance,
) -> tuple[tuple[TensorComparison, ...], tuple[str, ...]]:
    """Rows for every tensor both runs produced (reference graph order), and the candidate-only names."""
    rows = []
    for name, node in producers(reference_graph).items():
        if name not in reference or name not in candidate:
            continue
        r, c = np.asarray(reference[name]), np.asarray(candidate[name])
        if not (np.issubdtype(r.dtype, np.floating) and np.issubdtype(c.dtype, np.floating)):
            continue
        block = block_of(node.name)
        if r.shape != c.shape:
            rows.append(
                TensorComparison(
                    name,
                    block,
                    node.op_type,
                    tuple(r.shape),
                    float("inf"),
                    0.0,
                    float("inf"),
                    float(np.abs(r).max(initial=0.0)),
                    SHAPE_MISMATCH,
                )
            )
            continue
        rel, cosine, max_abs, ref_max = tensor_metrics(r, c)
        if not np.isfinite(c).all():
            verdict = NON_FINITE
        elif rel <= tolerance.rel_l2 and cosine >= tolerance.cosine:
            verdict = OK
        else:
            verdict = OUT_OF_TOLERANCE
        rows.append(TensorComparison(name, block, node.op_type, tuple(r.shape), rel, cosine, max_abs, ref_max, verdict))
    unmatched = tuple(name for name in candidate if name not in reference)
    return tuple(rows), unmatched


# ---- running ----------------------------------------------------------------------------------------
def load_graph(graph: Union[PathLike, onnx.ModelProto], what: str) -> tuple[onnx.ModelProto, str]:
    """(the graph with its external data, its label); LayerCompareError naming the file for one that is
    missing, not ONNX, or whose external data cannot be read."""
    import onnx

    if isinstance(graph, onnx.ModelProto):
        return graph, f"<{what} graph>"
    path = Path(graph)
    if not path.is_file():
        raise LayerCompareError(f"{what} ONNX file not found: {path}")
    try:
        return onnx.load(str(path)), str(path)
    except Exception as exc:  # onnx raises DecodeError, ValueError, OSError, ValidationError (external data) ...
        detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise LayerCompareError(
            f"{path}: not a readable ONNX model ({type(exc).__name__}{': ' + detail if detail else ''})"
        ) from None


def graph_precision_of(model: onnx.ModelProto) -> Precision:
    """The precision a graph computes in: quantized if it has Q/DQ nodes, else its weights' type."""
    from vit5_infer.exporters.precision import graph_precision
    from vit5_infer.exporters.quantization.qdq import has_float8

    if any(node.op_type in ("QuantizeLinear", "DequantizeLinear") for node in model.graph.node):
        return Precision.FP8 if has_float8(model) else Precision.INT8
    return Precision(graph_precision(model))


def _input_shape(model: onnx.ModelProto) -> tuple:
    dims = image_input(model).type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)


def check_inputs(model: onnx.ModelProto, inputs: np.ndarray) -> np.ndarray:
    """``inputs`` as float32, or an InputError naming the shape the graph takes."""
    inputs = np.asarray(inputs)
    expected = _input_shape(model)
    if not np.issubdtype(inputs.dtype, np.floating):
        raise InputError(f"inputs must be floating point, got {inputs.dtype}")
    if inputs.ndim != len(expected) or any(e is not None and e != s for e, s in zip(expected, inputs.shape)):
        shown = "x".join("N" if e is None else str(e) for e in expected)
        raise InputError(f"inputs of shape {'x'.join(map(str, inputs.shape))} do not fit the graph's input {shown}")
    return np.ascontiguousarray(inputs, dtype=np.float32)


def compare_layers(
    reference_onnx: Union[PathLike, onnx.ModelProto],
    candidate_onnx: Union[PathLike, onnx.ModelProto],
    inputs: np.ndarray,
    tolerance: Optional[LayerTolerance] = None,
    backend: str = "ort",
    progress: Progress = None,
) -> LayerComparison:
    """Run both graphs with every tensor marked and compare them tensor by tensor.

    ``reference_onnx`` (normally the FP32 graph) always runs on ONNX Runtime CPU; the candidate on
    ``backend``: ``ort`` (BF16 graphs through ``emulate_in_fp32``, as ORT's CPU provider has no BF16
    kernels) or ``trt`` (a TensorRT engine built from the candidate graph; needs a GPU).
    ``tolerance`` defaults to ``LAYER_TOLERANCES`` of the candidate's precision.
    """
    note = progress or (lambda message: None)
    if backend not in BACKENDS:
        raise LayerCompareError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    reference, reference_label = load_graph(reference_onnx, "reference")
    candidate, candidate_label = load_graph(candidate_onnx, "candidate")
    inputs = check_inputs(reference, inputs)
    check_inputs(candidate, inputs)
    precision = graph_precision_of(candidate)
    tolerance = tolerance or LAYER_TOLERANCES[precision]

    note("marking every tensor as an output")
    reference_runner = ort_runner(reference, "reference")
    if backend == "trt":
        candidate_runner = tensorrt_runner(candidate, inputs.shape, "candidate")
    else:
        runnable = candidate
        if precision == Precision.BF16:
            from vit5_infer.exporters.precision import emulate_in_fp32

            runnable = emulate_in_fp32(candidate)
        candidate_runner = ort_runner(runnable, "candidate")
    note(f"running both graphs ({'ONNX Runtime' if backend == 'ort' else 'TensorRT'} candidate)")
    feed = {image_input(reference).name: inputs}
    ref_out, cand_out = run_runners([reference_runner, candidate_runner], feed)

    note("comparing tensors")
    rows, unmatched = compare_outputs(reference, ref_out, cand_out, tolerance)
    if not rows:
        raise LayerCompareError("the two graphs share no tensor names: was the candidate converted from the reference?")
    norms = norm_input_stats(candidate, cand_out, ref_out)
    return LayerComparison(
        reference_label,
        candidate_label,
        backend,
        precision.value,
        tolerance,
        int(inputs.shape[0]),
        rows,
        unmatched,
        norms,
    )


def default_target(backend: str) -> str:
    """The export target for ``backend``: ONNX Runtime takes every form; for TensorRT, the form the
    installed release parses."""
    if backend != "trt":
        return "ort"
    from vit5_infer.engines.tensorrt_support import import_tensorrt

    from ..build_engine import tensorrt_target

    return tensorrt_target(import_tensorrt().__version__)


def compare_precisions(
    model,
    precision: Union[str, Precision],
    inputs: np.ndarray,
    *,
    opset: Optional[int] = None,
    target: Optional[str] = None,
    lowering: str = "auto",
    tolerance: Optional[LayerTolerance] = None,
    backend: str = "ort",
    name: str = "model",
    progress: Progress = None,
) -> LayerComparison:
    """``compare_layers`` on the FP32 graph of a ViT5ClassificationNet and its ``precision`` graph,
    built in memory as ``vit5 export --target`` builds them (``target`` defaults to ``default_target``)."""
    from vit5_infer.exporters.export import build_graph

    try:
        precision = Precision.parse(precision, allowed=(Precision.FP32, Precision.FP16, Precision.BF16))
    except ValueError as exc:
        raise LayerCompareError(str(exc)) from None
    if backend not in BACKENDS:
        raise LayerCompareError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    target = target or default_target(backend)
    note = progress or (lambda message: None)
    note(f"building the fp32 and {precision} graphs (target {target})")
    reference, _ = build_graph(model, opset=opset, lowering=lowering, target=target)
    candidate = (
        reference
        if precision == Precision.FP32
        else build_graph(model, opset=opset, precision=precision.value, lowering=lowering, target=target)[0]
    )
    result = compare_layers(reference, candidate, inputs, tolerance, backend, progress)
    form = f"target {target}, opset {reference.opset_import[0].version}"
    return replace(result, reference=f"{name} fp32 ({form})", candidate=f"{name} {precision} ({form})")
