"""The debug stage: ``debug(options, progress)`` compares a reduced-precision graph with its FP32 graph
tensor by tensor, on seeded inputs or images; ``check_debug_options`` refuses contradictory settings
before any work."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

from vit5_infer.errors import InputError
from vit5_infer.load_options import LoadOptions
from vit5_infer.vocabulary import Precision, Progress

from .layer_compare import LAYER_TOLERANCES, LayerComparison, LayerTolerance, check_tolerance


@dataclass(frozen=True)
class DebugOptions:
    """What to compare: the graphs built from ``source`` (a preset or checkpoint, loaded with ``load``), or
    the two given ONNX files ``reference`` and ``candidate``; on what inputs, and against which tolerance."""

    source: Optional[str] = None
    reference: Optional[Path] = None
    candidate: Optional[Path] = None
    precision: str = "fp16"  # of the candidate graph built from source
    target: Optional[str] = None
    opset: Optional[int] = None
    lowering: str = "auto"
    backend: str = "ort"  # runs the candidate; the reference always runs on ONNX Runtime CPU
    batch: int = 2
    images: Optional[Path] = None  # None: seeded inputs (load.seed)
    mean: Optional[tuple] = None
    std: Optional[tuple] = None
    rel_l2: Optional[float] = None  # None: the candidate precision's tolerance
    cosine: Optional[float] = None
    json_out: Optional[Path] = None  # checked before any work, written by DebugReport.write_json
    load: LoadOptions = field(default_factory=LoadOptions)

    #: the flags that shape only the graphs built from source
    SOURCE_FLAGS = {"precision": "--precision", "target": "--target", "opset": "--opset", "lowering": "--lowering"}


@dataclass(frozen=True)
class DebugReport:
    name: str  # what was compared, as the report names it
    result: LayerComparison
    #: "images from DIR" or "seeded inputs (seed N)"
    inputs: str
    inputs_json: object

    def to_dict(self) -> dict:
        return {"source": self.name, "inputs": self.inputs_json, **self.result.to_dict()}

    def write_json(self, path: Path) -> None:
        """Strict JSON: inf/nan (an overflowed tensor) as null."""
        from vit5_infer.files import write_json_atomic

        write_json_atomic(path, self.to_dict())


def check_debug_options(options: DebugOptions) -> None:
    """InputError for settings that contradict each other or that nothing would use; checked before any work."""
    if (options.reference is None) != (options.candidate is None):
        raise InputError("--reference and --candidate go together")
    if (options.source is None) == (options.reference is None):
        raise InputError("give either SOURCE (a preset or checkpoint) or --reference and --candidate, not both")
    check_tolerance(options.rel_l2, options.cosine)
    if options.source is None:
        # Two given graphs are compared as they are: these flags only shape the graphs built from SOURCE.
        default = DebugOptions()
        ignored = [
            flag for name, flag in DebugOptions.SOURCE_FLAGS.items() if getattr(options, name) != getattr(default, name)
        ]
        if ignored:
            raise InputError(
                f"{', '.join(ignored)} only appl{'ies' if len(ignored) == 1 else 'y'} to the graphs built "
                f"from SOURCE; --reference and --candidate are compared as they are: leave "
                f"{'it' if len(ignored) == 1 else 'them'} out"
            )
    set_here = [flag for flag, value in (("--mean", options.mean), ("--std", options.std)) if value is not None]
    if set_here and options.images is None:
        raise InputError(
            f"{'/'.join(set_here)} only preprocess --images, and the inputs here are seeded: "
            f"give --images DIR, or leave {'/'.join(set_here)} out"
        )
    if options.json_out is not None:
        from vit5_infer.files import check_output_path

        check_output_path(
            options.json_out,
            "--json",
            (options.source, options.reference, options.candidate, options.load.config, options.images),
            (".json",),
        )


def debug(options: DebugOptions, progress: Progress = None) -> DebugReport:
    """Compare the graphs ``options`` names; the report is the result, whether or not tensors leave tolerance."""
    from vit5_infer.graph_metadata import read_metadata
    from vit5_infer.preprocessing import Preprocessing

    from .inputs import check_batch, graph_input_spec
    from .layer_compare import compare_layers, compare_precisions, graph_precision_of, load_graph

    check_debug_options(options)
    say = progress or (lambda message: None)
    say("loading")
    if options.source is not None:
        from vit5_infer.loading import load_source  # torch: imported when a model is loaded

        model, origin = load_source(options.source, options.load)
        shape, layout = tuple(model.input_shape), "nchw"
        check_batch(shape, options.batch, model.config)
        pre = Preprocessing(image_size=model.config.network.image_size)
        name, default_precision = f"{origin.kind} {origin.name}", options.precision
    else:
        assert options.reference is not None and options.candidate is not None  # check_debug_options
        for path in (options.reference, options.candidate):
            read_metadata(path)  # one-line error for a missing or unreadable file
        reference_graph, _ = load_graph(options.reference, "reference")
        candidate_graph, _ = load_graph(options.candidate, "candidate")
        shape, layout = graph_input_spec(reference_graph)
        check_batch(shape, options.batch)
        pre = Preprocessing.from_metadata(read_metadata(reference_graph), shape[0] if layout == "nhwc" else shape[1])
        name, default_precision = f"{options.candidate} vs {options.reference}", graph_precision_of(candidate_graph)
    pre = pre.with_overrides(mean=options.mean, std=options.std)
    inputs = _inputs(shape, layout, pre, options)
    tolerance = None
    if options.rel_l2 is not None or options.cosine is not None:
        base = LAYER_TOLERANCES[Precision(default_precision)]
        tolerance = LayerTolerance(
            rel_l2=base.rel_l2 if options.rel_l2 is None else options.rel_l2,
            cosine=base.cosine if options.cosine is None else options.cosine,
        )
    if options.source is not None:
        result = compare_precisions(
            model,
            options.precision,
            inputs,
            opset=options.opset,
            target=options.target,
            lowering=options.lowering,
            tolerance=tolerance,
            backend=options.backend,
            name=name,
            progress=progress,
        )
    else:
        result = compare_layers(
            reference_graph, candidate_graph, inputs, tolerance=tolerance, backend=options.backend, progress=progress
        )
        result = replace(result, reference=str(options.reference), candidate=str(options.candidate))
    seed = options.load.seed
    if options.images is not None:
        return DebugReport(name, result, f"images from {options.images}", str(options.images))
    return DebugReport(name, result, f"seeded inputs (seed {seed})", {"seed": seed})


def _inputs(sample_shape, layout: str, pre, options: DebugOptions):
    from .inputs import image_inputs, seeded_inputs

    if options.images is not None:
        return image_inputs(options.images, options.batch, pre, layout)
    return seeded_inputs(sample_shape, options.batch, options.load.seed)
