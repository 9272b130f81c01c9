"""Studies of quantized graphs against their float graph, on ONNX Runtime CPU: what a quantized export costs
in agreement with the float graph, in accuracy on a labelled folder, and layer by layer (the per-layer
sensitivity that ``DEFAULT_KEEP_FLOAT`` was chosen from).

Each study loads its model once and exports through the export workflow (``export_model``), so the graphs
studied are the graphs ``vit5 export`` writes.  FP8 Q/DQ graphs run as emulation on ONNX Runtime CPU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from vit5_infer.errors import BenchError
from vit5_infer.vocabulary import INPUT_NAME, LOGITS, PathLike, Progress

from .export import (
    ExportOptions,
    PreprocessingOverrides,
    QuantizationOptions,
    check_output,
    export_model,
    load_calibration,
)
from .labelled_images import LabelledImages, dataset_accuracy

if TYPE_CHECKING:
    import numpy as np

    from vit5_infer.exporters.export import ExportResult
    from vit5_infer.exporters.quantization import CalibrationData, LayerSensitivity

#: the (precision, target) pairs a sensitivity study measures by default: INT8 for ORT CPU, FP8 for TensorRT
SENSITIVITY_SCHEMES = (("int8", "cpu"), ("fp8", "tensorrt"))


def _float_options(options: ExportOptions) -> ExportOptions:
    """The float export of the quantized ``options``, unvalidated (the study compares it with the quantized)."""
    return replace(options, precision="fp32", validate=False, quantization=QuantizationOptions())


def _calibration_key(options: ExportOptions) -> tuple:
    """What decides a quantized export's calibration inputs (the method only sets ranges from them)."""
    q = options.quantization
    return (q.calibration, q.count, q.seeded, q.seed, options.preprocessing)


def _logits(graph: Any, inputs: np.ndarray) -> np.ndarray:
    """Logits of an ONNX graph (a path or a ModelProto) on ONNX Runtime CPU, FP8 Q/DQ emulated."""
    import onnx

    from vit5_infer.exporters.quantization.sensitivity import run_logits

    model = graph if isinstance(graph, onnx.ModelProto) else onnx.load(str(graph))
    return run_logits(model, inputs)


@dataclass(frozen=True)
class QuantizedPair:
    """A quantized graph and the float graph with the same export options, exported from one loaded model."""

    float_graph: Path
    quantized_graph: Path
    result: ExportResult  # the quantized export; its validation compares it with PyTorch on ``held_out``
    calibration: CalibrationData
    input_shape: tuple  # one sample, CHW
    #: cosine of the quantized graph's logits against the float graph's, on the held-out calibration inputs
    held_out_cosine: float


def export_pair(
    source: PathLike,
    folder: PathLike,
    options: ExportOptions,
    stem: str,
    progress: Progress = None,
    warn: Optional[Callable[[str], None]] = None,
) -> QuantizedPair:
    """Load ``source`` once and export, into ``folder``, ``<stem>-fp32.onnx`` (float, same options, unvalidated)
    and ``<stem>-<precision>.onnx`` (quantized with ``options``), then compare the two graphs' logits on
    the held-out calibration inputs.  ``warn``: as for ``export_model`` (``None``: ``warnings.warn``)."""
    from vit5_infer.loading import load_source

    if not options.quantized:
        raise BenchError(f"a quantized pair needs a quantized precision (int8 or fp8), got {options.precision}")
    # before any work: a bad output must not cost a load
    float_path = check_output(source, Path(folder) / f"{stem}-fp32.onnx", options)
    quantized_path = check_output(source, Path(folder) / f"{stem}-{options.precision}.onnx", options)
    model, origin = load_source(source, options.load)
    calibration = load_calibration(model, options, str(source), progress, warn)
    export_model(model, origin, float_path, _float_options(options), progress=progress, name=str(source))
    result = export_model(
        model, origin, quantized_path, options, progress=progress, name=str(source), calibration=calibration
    )
    from vit5_infer.metrics import compare_logits

    held = calibration.held_out
    cosine = compare_logits(_logits(float_path, held), _logits(quantized_path, held)).cosine
    return QuantizedPair(float_path, quantized_path, result, calibration, tuple(model.input_shape), float(cosine))


@dataclass(frozen=True)
class QuantizedAccuracy:
    options: ExportOptions
    accuracy: float  # top-1 on the labelled folder
    result: ExportResult  # its validation compares the graph with PyTorch on the held-out calibration inputs


@dataclass(frozen=True)
class AccuracyStudy:
    images: int  # labelled images
    float_accuracy: float  # top-1 of the float graph
    calibration: dict  # CalibrationData.describe() of the first variant's calibration
    rows: tuple  # QuantizedAccuracy, one per variant, in the order asked


def quantized_accuracy(
    source: PathLike,
    images: PathLike,
    variants: Sequence[ExportOptions],
    folder: PathLike,
    progress: Progress = None,
    warn: Optional[Callable[[str], None]] = None,
) -> AccuracyStudy:
    """Top-1 accuracy on the labelled folder ``images`` (one subfolder per class, classes in sorted folder
    order) of the float graph of ``source`` and of each quantized export in ``variants``, written into
    ``folder`` as ``<source stem>-<index>-<precision>.onnx``.  The model is loaded once; variants with the
    same calibration settings share one load of the calibration inputs.  The images are preprocessed as the
    first variant says."""
    from vit5_infer.exporters import build_graph
    from vit5_infer.loading import load_source

    if not variants:
        raise BenchError("a quantized accuracy study needs at least one quantized variant")
    not_quantized = [v.precision for v in variants if not v.quantized]
    if not_quantized:
        raise BenchError(f"every variant must be quantized (int8 or fp8), got {', '.join(not_quantized)}")
    data = LabelledImages.find(images)
    if data is None:
        raise BenchError(f"{images}: expected a labelled folder (one subfolder of images per class, two or more)")
    paths = [
        check_output(source, Path(folder) / f"{Path(str(source)).stem}-{index}-{options.precision}.onnx", options)
        for index, options in enumerate(variants)
    ]
    model, origin = load_source(source, variants[0].load)
    data.check_classes(model.config.network.num_classes)
    pre = variants[0].preprocessing.resolve(model.config.network.image_size)

    def accuracy(graph: Any) -> float:
        # one batch of every image: run_logits splits it into its own run batches
        return float(dataset_accuracy(lambda x: {LOGITS: _logits(graph, x)}, data, pre, len(data.files))["top1"])

    float_accuracy = accuracy(build_graph(model)[0])
    loaded: dict = {}
    rows = []
    for path, options in zip(paths, variants):
        key = _calibration_key(options)
        if key not in loaded:
            loaded[key] = load_calibration(model, options, str(source), progress, warn)
        result = export_model(
            model, origin, path, options, progress=progress, name=str(source), calibration=loaded[key]
        )
        rows.append(QuantizedAccuracy(options, accuracy(path), result))
    first = loaded[_calibration_key(variants[0])]
    return AccuracyStudy(len(data.files), float_accuracy, first.describe(), tuple(rows))


def layer_sensitivity_study(
    source: PathLike,
    calibration: PathLike,
    count: int,
    preprocessing: Optional[PreprocessingOverrides] = None,
    schemes: Sequence[tuple] = SENSITIVITY_SCHEMES,
    method: str = "max",
    progress: Progress = None,
) -> dict[tuple, list[LayerSensitivity]]:
    """Per (precision, target) of ``schemes``: every quantizable layer of the float graph of ``source``
    quantized alone, most sensitive first (1 - cosine of the logits against the float graph's, on ``count``
    calibration images below ``calibration``).  The activation ranges (``method``) are collected once for
    all schemes; the float graph is the default ONNX Runtime form."""
    from vit5_infer.exporters import build_graph
    from vit5_infer.exporters.quantization import (
        activation_tensors,
        collect_stats,
        layer_sensitivity,
        quantizable_nodes,
        ranges_from_stats,
        resolve_scheme,
    )
    from vit5_infer.loading import load_source

    if not schemes:
        raise BenchError("a sensitivity study needs at least one (precision, target)")
    say = progress or (lambda message: None)
    resolved = {(precision, target): resolve_scheme(precision, target) for precision, target in schemes}
    model, _ = load_source(source)
    options = ExportOptions(
        precision=schemes[0][0],
        target=schemes[0][1],
        preprocessing=preprocessing or PreprocessingOverrides(),
        quantization=QuantizationOptions(calibration=Path(calibration), count=count, method=method),
    )
    inputs = load_calibration(model, options, str(source), progress).calibration
    graph = build_graph(model)[0]
    nodes = quantizable_nodes(graph)
    say(f"collecting activation ranges of {len(nodes)} layers on {len(inputs)} inputs")
    ranges = ranges_from_stats(collect_stats(graph, activation_tensors(nodes), inputs), method)
    reference = _logits(graph, inputs)
    reports = {}
    for key, scheme in resolved.items():
        say(f"quantizing each of {len(nodes)} layers alone at {key[0]} for {key[1]}")
        reports[key] = layer_sensitivity(graph, ranges, scheme, nodes, inputs, reference=reference)
    return reports


def alternating_latencies(
    graphs: dict[str, PathLike], input_shape: Sequence[int], batch: int, rounds: int, threads: Optional[int] = None
) -> dict[str, list[float]]:
    """Seconds of each of ``rounds`` runs of every graph (name -> ONNX file) on ONNX Runtime CPU, at ``batch`` on
    the same seeded inputs, after one warm-up run each.  The graphs take turns within each round, so that all of
    them see the same machine load: their ratios stay comparable on a busy host, where their absolute times do not.
    """
    import time

    from vit5_infer.ort_sessions import create_session
    from vit5_infer.preprocessing import seeded_pixels

    if rounds < 1 or batch < 1:
        raise BenchError(f"rounds and batch must be >= 1, got rounds={rounds}, batch={batch}")
    sessions = {name: create_session(str(path), threads=threads, quiet=True) for name, path in graphs.items()}
    feed = {INPUT_NAME: seeded_pixels((batch, *input_shape), seed=batch)}
    for session in sessions.values():
        session.run(None, feed)
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(rounds):
        for name, session in sessions.items():
            start = time.perf_counter()
            session.run(None, feed)
            times[name].append(time.perf_counter() - start)
    return times
