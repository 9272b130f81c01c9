"""``export_quantized``: FP32 graph -> calibrated INT8/FP8 graph, validated on held-out inputs."""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import numpy as np
import onnx
import torch

from vit5_infer.loading import ModelSource
from vit5_infer.metrics import TOLERANCES, compare_outputs, outputs_within_tolerance
from vit5_infer.network import ViT5ClassificationNet
from vit5_infer.preprocessing import Preprocessing, to_layout
from vit5_infer.vocabulary import LOGITS, Progress

from ..export import (
    ExportError,
    ExportResult,
    Validation,
    build_graph,
    check_for_target,
    resolve_opset,
    stage_and_publish,
    summarize,
)
from ..metadata import build_metadata, write_metadata
from ..targets import ExportTarget
from .calibration import DEFAULT_METHOD, CalibrationData, collect_stats, ranges_from_stats
from .qdq import (
    FP16_QDQ_MIN_OPSET,
    QuantScheme,
    activation_tensors,
    attention_inputs,
    attention_products,
    quantizable_nodes,
    quantize_graph,
)
from .sensitivity import layer_sensitivity, run_logits, sensitive_layers

#: Layers left in higher precision unless told otherwise, by measurement (benchmarks/quantization.py,
#: README): the patch embedding (it sees raw pixels), the classifier and Hyena's depthwise short
#: convolution are the most sensitive layers of both digits networks at INT8 and FP8, and together
#: hold well under 1% of the GEMM work.
DEFAULT_KEEP_FLOAT = ("embed/", "head/", "short_conv")


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(p in name for p in patterns)


def unmatched_patterns(patterns: Sequence[str], names: Sequence[str]) -> list[str]:
    """The node-name patterns (as ``_matches`` reads them) that match none of ``names``."""
    return [p for p in patterns if not any(_matches(name, (p,)) for name in names)]


def validate_quantized(
    graph_path: Path, model: ViT5ClassificationNet, held_out: np.ndarray, layout: str, precision: str, seeded: bool
) -> Validation:
    """ORT CPU (FP8 Q/DQ runs there as emulation) against PyTorch FP32 on the held-out inputs."""
    with torch.no_grad():
        reference = model(torch.from_numpy(held_out)).numpy()
    try:
        outputs = run_logits(onnx.load(str(graph_path)), to_layout(held_out, layout))
    except Exception as exc:  # ORT reports unsupported ops/types as generic failures
        raise ExportError(f"ONNX Runtime cannot run the quantized graph: {str(exc).splitlines()[0][:300]}") from None
    comparisons = compare_outputs({LOGITS: reference}, {LOGITS: outputs})
    passed, reason = outputs_within_tolerance(comparisons, precision)
    source = "seeded inputs" if seeded else "held-out calibration images"
    return Validation(
        comparisons,
        passed,
        reason,
        precision,
        (int(len(held_out)),),
        TOLERANCES[precision],
        f"ORT CPU against PyTorch FP32 on {len(held_out)} {source}",
    )


def resolve_scheme(
    precision: str, target: str | ExportTarget | None = None, opset: Optional[int] = None
) -> QuantScheme:
    """The quantization layout for ``precision`` on ``target`` (int8: ort by default; fp8: tensorrt)."""
    if target is None:
        target = "tensorrt" if precision == "fp8" else "ort"
    parsed = ExportTarget.parse(target)
    if opset is None and parsed.is_tensorrt:
        # The MatMul-Softmax-MatMul form of TensorRT before 10.14 is opset 18 in float; quantized it is
        # opset 19, the first with FP16 (and FP8) Q/DQ, so that its remainder can be FP16.
        opset = max(parsed.default_opset(), FP16_QDQ_MIN_OPSET)
    return QuantScheme(precision, parsed, resolve_opset(parsed, opset))


def export_quantized(
    model: ViT5ClassificationNet,
    path: str | Path,
    *,
    precision: str,
    calibration: CalibrationData,
    target: str | ExportTarget | None = None,
    method: str = DEFAULT_METHOD,
    opset: Optional[int] = None,
    batch: Optional[int] = None,
    layout: str = "nchw",
    lowering: str = "auto",
    keep_float: Optional[Sequence[str]] = None,
    sensitivity: bool = False,
    source: Optional[ModelSource] = None,
    preprocessing: Optional[Preprocessing] = None,
    validate: bool = True,
    external_data: Optional[bool] = None,
    progress: Progress = None,
) -> ExportResult:
    """Export ``model`` as an INT8/FP8 graph calibrated on ``calibration``.

    ``target``: ``ort``/``cpu`` (default for int8) or ``tensorrt`` (required for fp8).
    ``keep_float``: node-name patterns left unquantized (default ``DEFAULT_KEEP_FLOAT``), GEMMs and, for
    TensorRT, attention products alike.
    ``sensitivity``: also measure each layer alone and keep the outliers in higher precision.
    Nothing is written unless the graph meets the precision's tolerance on the held-out inputs.
    """
    path = Path(path)
    note = progress or (lambda message: None)
    scheme = resolve_scheme(precision, target, opset)
    opset = scheme.opset
    keep = tuple(DEFAULT_KEEP_FLOAT if keep_float is None else keep_float)
    timings: dict = {}

    start = time.perf_counter()
    note("building the FP32 graph")
    graph, used = build_graph(model, opset=opset, batch=batch, layout=layout, lowering=lowering, target=scheme.target)
    candidates = quantizable_nodes(graph)
    if keep_float is not None:
        for pattern in unmatched_patterns(keep_float, [n.name for n in candidates]):
            warnings.warn(
                f"--keep-float pattern {pattern!r} matches no quantizable layer; it keeps nothing in higher precision",
                stacklevel=2,
            )
    attention = [n for n in attention_products(graph) if not _matches(n.name, keep)]
    attention = attention if scheme.quantizes_attention else []
    calib_inputs = to_layout(calibration.calibration, layout)
    timings["build"] = time.perf_counter() - start

    start = time.perf_counter()
    note(f"calibrating on {len(calib_inputs)} inputs ({method})")
    tensors = activation_tensors(candidates) + [t for n in attention for t in attention_inputs(n)]
    stats = collect_stats(graph, list(dict.fromkeys(tensors)), calib_inputs)
    ranges = ranges_from_stats(stats, method)
    timings["calibrate"] = time.perf_counter() - start

    report = None
    float_layers = [n.name for n in candidates if _matches(n.name, keep)]
    if sensitivity:
        start = time.perf_counter()
        note("measuring per-layer sensitivity")
        report = layer_sensitivity(graph, ranges, scheme, candidates, calib_inputs)
        float_layers += [name for name in sensitive_layers(report) if name not in float_layers]
        timings["sensitivity"] = time.perf_counter() - start
    quantized = [n.name for n in candidates if n.name not in float_layers]
    if not quantized:
        raise ExportError("no layer left to quantize (every candidate is kept in higher precision)")

    start = time.perf_counter()
    note("inserting Q/DQ")
    graph = quantize_graph(graph, ranges, scheme, quantized, [n.name for n in attention])
    quantization = {
        **scheme.describe(),
        "calibration": {**calibration.describe(), "method": method},
        "quantized_layers": len(quantized),
        "quantized_attention_products": len(attention),
        "float_layers": float_layers,
    }
    if report is not None:
        quantization["sensitivity"] = [r.to_dict() for r in report]
    metadata = build_metadata(
        model.config,
        source,
        precision,
        opset,
        layout,
        used,
        "fp32",
        batch,
        preprocessing=preprocessing or calibration.preprocessing,
    )
    metadata["target"] = str(scheme.target)
    metadata["quantization"] = quantization
    write_metadata(graph, metadata)
    try:
        onnx.checker.check_model(graph)
        onnx.shape_inference.infer_shapes(graph, check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"internal: quantized graph fails the ONNX checker: {str(exc).splitlines()[0]}") from exc
    compat = check_for_target(graph, scheme.target)
    timings["quantize"] = time.perf_counter() - start

    def validate_staged(staged: Path) -> Optional[Validation]:
        if not validate:
            return None
        note("validating against PyTorch FP32 on held-out inputs (ONNX Runtime CPU)")
        metrics = validate_quantized(staged, model, calibration.held_out, layout, precision, calibration.seeded)
        if not metrics.passed:
            raise ExportError(
                f"quantized graph is not within the {precision} tolerance of PyTorch FP32: {metrics.reason} "
                f"(cosine {metrics.comparison.cosine:.5f}, top-1 agreement {metrics.comparison.top1_agreement:.3f}); "
                "nothing written"
            )
        return metrics

    size, metrics = stage_and_publish(graph, path, external_data, validate_staged, timings)
    return ExportResult(
        path,
        opset,
        precision,
        {
            **used,
            "quantization": f"{scheme.describe()['activations']} / "
            f"{scheme.describe()['weights']}, {scheme.float_precision} elsewhere",
        },
        metrics,
        summarize(graph, size),
        metadata,
        timings,
        compat,
    )
