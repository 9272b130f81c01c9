"""``export_quantized``: FP32 graph -> calibrated INT8/FP8 graph, validated on held-out inputs."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import onnx
import torch

from vit5_infer.caller_warnings import warn_at_caller
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
    check_onnx,
    resolve_opset,
    stage_and_publish,
    summarize,
)
from ..form import GraphForm
from ..metadata import build_metadata, write_metadata
from ..targets import ExportTarget
from .calibration import CalibrationData, collect_stats, ranges_from_stats
from .qdq import (
    FP16_QDQ_MIN_OPSET,
    QuantScheme,
    activation_tensors,
    attention_inputs,
    attention_products,
    quantizable_nodes,
    quantize_graph,
)
from .sensitivity import LayerSensitivity, layer_sensitivity, run_logits, sensitive_layers
from .settings import QuantizationSettings


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
    settings: QuantizationSettings,
    calibration: CalibrationData,
    form: Optional[GraphForm] = None,
    *,
    source: Optional[ModelSource] = None,
    preprocessing: Optional[Preprocessing] = None,
    progress: Progress = None,
) -> ExportResult:
    """Export ``model`` as an INT8/FP8 graph (``settings``) calibrated on ``calibration``.

    ``form``: the graph's form (default ``GraphForm()``); its ``target`` is ``ort``/``cpu`` (default for int8)
    or ``tensorrt`` (required for fp8).  ``source`` and ``preprocessing`` are recorded in the graph's metadata
    (``preprocessing`` defaults to the calibration's).  Nothing is written unless the graph meets the
    precision's tolerance on the held-out inputs.
    """
    path = Path(path)
    note = progress or (lambda message: None)
    form = form or GraphForm()
    scheme = resolve_scheme(settings.precision, form.target, form.opset)
    timings: dict = {}
    with _timed(timings, "build"):
        note("building the FP32 graph")
        graph, used = _float_graph(model, form, scheme)
        layers = _candidate_layers(graph, settings, scheme)
        inputs = to_layout(calibration.calibration, form.layout)
    with _timed(timings, "calibrate"):
        note(f"calibrating on {len(inputs)} inputs ({settings.method})")
        ranges = _ranges(graph, layers, inputs, settings.method)
    if settings.sensitivity:
        with _timed(timings, "sensitivity"):
            note("measuring per-layer sensitivity")
            layers.report = layer_sensitivity(graph, ranges, scheme, layers.candidates, inputs)
    layers.choose_float(settings.kept)
    with _timed(timings, "quantize"):
        note("inserting Q/DQ")
        graph = quantize_graph(graph, ranges, scheme, layers.quantized, [n.name for n in layers.attention])
        metadata = _metadata(model, form, scheme, used, source, preprocessing or calibration.preprocessing)
        metadata["quantization"] = _describe(scheme, calibration, settings.method, layers)
        compat = _write_and_check(graph, metadata, scheme.target)
    validate = _validator(model, calibration, form, settings.precision, note)
    size, metrics = stage_and_publish(graph, path, form.external_data, validate, timings)
    return ExportResult(
        path,
        scheme.opset,
        settings.precision,
        {**used, "quantization": _quantization_text(scheme)},
        metrics,
        summarize(graph, size),
        metadata,
        timings,
        compat,
    )


@contextmanager
def _timed(timings: dict, step: str) -> Iterator[None]:
    """``timings[step]``: the seconds the block took (left out when it raises)."""
    start = time.perf_counter()
    yield
    timings[step] = time.perf_counter() - start


@dataclass
class _Layers:
    """The layers of one quantized export: ``candidates`` (quantizable GEMM nodes), the ``attention`` products
    the scheme quantizes, the sensitivity ``report`` when measured, and the names left in higher precision."""

    candidates: list[onnx.NodeProto]
    attention: list[onnx.NodeProto]
    report: Optional[list[LayerSensitivity]] = None
    float_layers: list[str] = field(default_factory=list)

    @property
    def quantized(self) -> list[str]:
        return [n.name for n in self.candidates if n.name not in self.float_layers]

    def choose_float(self, keep: Sequence[str]) -> None:
        """Keep the candidates ``keep`` names, then the sensitivity report's outliers, in higher precision;
        ExportError when no layer is left to quantize."""
        self.float_layers = [n.name for n in self.candidates if _matches(n.name, keep)]
        if self.report is not None:
            self.float_layers += [name for name in sensitive_layers(self.report) if name not in self.float_layers]
        if not self.quantized:
            raise ExportError("no layer left to quantize (every candidate is kept in higher precision)")


def _float_graph(model: ViT5ClassificationNet, form: GraphForm, scheme: QuantScheme) -> tuple[onnx.ModelProto, dict]:
    """The FP32 graph of ``model`` in ``form`` for ``scheme``'s target and opset, and the lowerings used."""
    return build_graph(
        model, opset=scheme.opset, batch=form.batch, layout=form.layout, lowering=form.lowering, target=scheme.target
    )


def _candidate_layers(graph: onnx.ModelProto, settings: QuantizationSettings, scheme: QuantScheme) -> _Layers:
    """The quantizable layers of ``graph`` (GEMMs, and attention products where the scheme quantizes them); warns
    (at ``export_quantized``'s caller) of each ``keep_float`` pattern that names none of them."""
    candidates = quantizable_nodes(graph)
    products = attention_products(graph) if scheme.quantizes_attention else []
    if settings.keep_float is not None:
        names = [n.name for n in candidates + products]
        for pattern in unmatched_patterns(settings.keep_float, names):
            warn_at_caller(
                f"--keep-float pattern {pattern!r} matches no quantizable layer; it keeps nothing in higher precision"
            )
    return _Layers(candidates, [n for n in products if not _matches(n.name, settings.kept)])


def _ranges(graph: onnx.ModelProto, layers: _Layers, inputs: np.ndarray, method: str) -> dict:
    """The clipping range of each activation the Q/DQ will quantize, calibrated on ``inputs``."""
    tensors = activation_tensors(layers.candidates) + [t for n in layers.attention for t in attention_inputs(n)]
    stats = collect_stats(graph, list(dict.fromkeys(tensors)), inputs)
    return ranges_from_stats(stats, method)


def _describe(scheme: QuantScheme, calibration: CalibrationData, method: str, layers: _Layers) -> dict:
    """The graph metadata's ``quantization`` entry."""
    quantization = {
        **scheme.describe(),
        "calibration": {**calibration.describe(), "method": method},
        "quantized_layers": len(layers.quantized),
        "quantized_attention_products": len(layers.attention),
        "float_layers": layers.float_layers,
    }
    if layers.report is not None:
        quantization["sensitivity"] = [r.to_dict() for r in layers.report]
    return quantization


def _metadata(
    model: ViT5ClassificationNet,
    form: GraphForm,
    scheme: QuantScheme,
    used: dict,
    source: Optional[ModelSource],
    preprocessing: Optional[Preprocessing],
) -> dict:
    """The graph's metadata but its ``quantization`` entry."""
    metadata = build_metadata(
        model.config,
        source,
        scheme.precision,
        scheme.opset,
        form.layout,
        used,
        "fp32",
        form.batch,
        preprocessing=preprocessing,
    )
    metadata["target"] = str(scheme.target)
    return metadata


def _quantization_text(scheme: QuantScheme) -> str:
    """The result's ``lowering["quantization"]``, e.g. ``int8 symmetric per tensor / int8 symmetric per output
    channel, fp16 elsewhere``."""
    description = scheme.describe()
    return f"{description['activations']} / {description['weights']}, {scheme.float_precision} elsewhere"


def _write_and_check(graph: onnx.ModelProto, metadata: dict, target: ExportTarget):
    """Write ``metadata`` into ``graph``, hold it to the ONNX checker and return its check for ``target``."""
    write_metadata(graph, metadata)
    check_onnx(graph, "quantized graph")
    return check_for_target(graph, target)


def _validator(
    model: ViT5ClassificationNet,
    calibration: CalibrationData,
    form: GraphForm,
    precision: str,
    note: Callable[[str], None],
) -> Callable[[Path], Optional[Validation]]:
    """What ``stage_and_publish`` runs on the staged graph: ``validate_quantized`` on the held-out inputs,
    refusing a graph outside the precision's tolerance (nothing when ``form.validate`` is off)."""

    def validate_staged(staged: Path) -> Optional[Validation]:
        if not form.validate:
            return None
        note("validating against PyTorch FP32 on held-out inputs (ONNX Runtime CPU)")
        metrics = validate_quantized(staged, model, calibration.held_out, form.layout, precision, calibration.seeded)
        if not metrics.passed:
            raise ExportError(
                f"quantized graph is not within the {precision} tolerance of PyTorch FP32: {metrics.reason} "
                f"(cosine {metrics.comparison.cosine:.5f}, top-1 agreement {metrics.comparison.top1_agreement:.3f}); "
                "nothing written"
            )
        return metrics

    return validate_staged
