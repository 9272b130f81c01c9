"""``build_engine``: an ONNX file, or a preset/checkpoint exported first, -> TensorRT engine + manifest.

The stage in order: check every option (before TensorRT is loaded), check the machine (TensorRT, the
GPU), make the graph (export a preset or checkpoint in the form the installed TensorRT parses, or check
that a given ONNX file parses there), bring it to the engine's precision (an FP32 graph is converted to
FP16/BF16), then build it (``vit5_infer.engines.tensorrt_builder``).  An exported ONNX is kept beside
the engine, so the manifest's rebuild command works.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from vit5_infer.engines.errors import BackendError, EngineBuildError
from vit5_infer.engines.tensorrt_builder import (
    BuildResult,
    GraphOrigin,
    GraphSummary,
    build_engine_from_onnx,
    build_outputs,
    check_build_options,
    check_timing_cache_path,
    open_builder,
    precision_to_build,
    read_timing_cache,
)
from vit5_infer.engines.tensorrt_support import check_hardware_compatibility, tensorrt_release
from vit5_infer.files import require_file
from vit5_infer.graph_metadata import GraphFile
from vit5_infer.load_options import LoadOptions
from vit5_infer.vocabulary import PRECISION_NAMES, PathLike, Precision, Progress, is_onnx_path


def build_engine(
    source: PathLike,
    engine_path: PathLike,
    *,
    precision: str = "fp32",
    min_batch: int = 1,
    opt_batch: int = 1,
    max_batch: int = 8,
    timing_cache: Optional[PathLike] = None,
    workspace_gib: Optional[float] = None,
    optimization_level: int = 3,
    verbose: bool = False,
    progress: Progress = None,
    load: Optional[LoadOptions] = None,
    batch_profiles: Any = None,
    version_compatible: bool = False,
    hardware_compatibility: Optional[str] = None,
) -> BuildResult:
    """Build a TensorRT engine for ``pixel_values`` batches in [min_batch, max_batch].

    ``source``: an exported ``.onnx`` file, or a preset name / checkpoint file (``load``: how to load it)
    that is exported first.  Raises TensorRTUnavailableError / NoGPUError before anything is written when
    the machine cannot build, EngineBuildError when the GPU lacks the precision or TensorRT rejects the
    graph.  Writes the engine, its manifest (``.json``), the inspector's layer JSON (``.layers.json``) and,
    for an exported source, the ONNX file.

    ``batch_profiles``: several optimization profiles instead of min/opt/max (see parse_batch_profiles);
    ``version_compatible``: BuilderFlag.VERSION_COMPATIBLE (the engine also runs on newer TensorRT);
    ``hardware_compatibility``: a level of tensorrt_releases.HARDWARE_COMPATIBILITY_LEVELS, by name (``ampere+``:
    any Ampere or newer GPU).
    """
    say = progress or (lambda message: None)
    profiles = check_build_options(
        precision,
        min_batch,
        opt_batch,
        max_batch,
        workspace_gib,
        optimization_level,
        batch_profiles,
        hardware_compatibility,
    )
    hardware_compatibility = check_hardware_compatibility(hardware_compatibility)  # its canonical name
    engine_path = Path(engine_path)
    # the given ONNX file, read once (without its external data) for every check, the conversion and the manifest
    given, exported_onnx = check_source(source, engine_path, precision, timing_cache, load)
    cache_blob = read_timing_cache(timing_cache, None if given is None else given.path)

    recorded = None if given is None else given.metadata.get("precision")
    builder = open_builder(precision_to_build(recorded, precision), hardware_compatibility)
    if given is not None:
        check_parses(given, builder.trt.__version__)
    started = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="vit5-build-") as work:
        workdir = Path(work)
        staged_onnx = None
        graph = given
        if exported_onnx is not None:
            staged_onnx = export_for_tensorrt(
                source, workdir / "export" / exported_onnx.name, builder.trt.__version__, load, progress
            )
            graph = GraphFile.read(staged_onnx)
        assert graph is not None
        graph_path, graph_precision, summary = graph_to_build(graph, precision, workdir, say)
        origin = GraphOrigin(
            exported_onnx or graph.path, graph.path, graph_path != graph.path, graph.sha256, graph.metadata
        )
        # the loaded graph is not kept while TensorRT builds: the origin and the summary hold what the build needs
        del given, graph
        result = build_engine_from_onnx(
            graph_path,
            engine_path,
            precision=graph_precision,
            profiles=profiles,
            origin=origin,
            summary=summary,
            builder=builder,
            timing_cache=timing_cache,
            timing_cache_bytes=cache_blob,
            workspace_gib=workspace_gib,
            optimization_level=optimization_level,
            verbose=verbose,
            version_compatible=version_compatible,
            hardware_compatibility=hardware_compatibility,
            progress=progress,
            started=started,
        )
        if staged_onnx is not None and exported_onnx is not None:
            _move_export(staged_onnx, exported_onnx)
    return result


def batches_from_flags(
    min_batch: Optional[int], opt_batch: Optional[int], max_batch: Optional[int], batch_profiles: Optional[str]
) -> dict:
    """``--min/--opt/--max-batch`` (None: not given) or ``--batch-profiles`` as build_engine's keywords, the
    engine's defaults filling what is not given; giving both ways is one line."""
    from vit5_infer.engine_manifest import DEFAULT_MAX_BATCH, DEFAULT_MIN_BATCH, DEFAULT_OPT_BATCH

    given = [
        flag
        for flag, value in (("--min-batch", min_batch), ("--opt-batch", opt_batch), ("--max-batch", max_batch))
        if value is not None
    ]
    if batch_profiles is not None and given:
        raise EngineBuildError(f"--batch-profiles replaces {', '.join(given)}: give one or the other")
    return {
        "min_batch": DEFAULT_MIN_BATCH if min_batch is None else min_batch,
        "opt_batch": DEFAULT_OPT_BATCH if opt_batch is None else opt_batch,
        "max_batch": DEFAULT_MAX_BATCH if max_batch is None else max_batch,
        "batch_profiles": batch_profiles,
    }


def check_build_outputs(
    source: PathLike, output: PathLike, timing_cache: Optional[PathLike], config: Optional[PathLike]
) -> Path:
    """Before any work (and before TensorRT is imported): everything the build writes (the engine, its
    manifest, its layer JSON and the ONNX kept beside it) is an output, and none may be the source, the timing
    cache or the architecture config."""
    from vit5_infer.engines.tensorrt_builder import build_outputs
    from vit5_infer.files import check_output_path
    from vit5_infer.vocabulary import ENGINE_SUFFIXES

    inputs = (source, timing_cache, config)
    engine = check_output_path(output, "output", inputs, tuple(ENGINE_SUFFIXES))
    exported_onnx = None if is_onnx_path(source) else engine.with_suffix(".onnx")
    for what, path in build_outputs(engine, exported_onnx).items():
        if path != engine:
            check_output_path(path, f"output ({what})", inputs)
    return engine


def check_source(
    source: PathLike, engine_path: Path, precision: str, timing_cache: Optional[PathLike], load: Optional[LoadOptions]
) -> tuple[Optional[GraphFile], Optional[Path]]:
    """The checks of the source and the outputs before TensorRT is loaded: (the ONNX source as read (None for
    a preset or checkpoint), the path an export of a preset or checkpoint is kept at (None for an ONNX source))."""
    if is_onnx_path(engine_path):
        raise BackendError(f"{engine_path}: the engine output must not be an .onnx path")
    exported_onnx = None if is_onnx_path(source) else engine_path.with_suffix(".onnx")
    check_timing_cache_path(timing_cache, build_outputs(engine_path, exported_onnx))
    if exported_onnx is not None:
        check_exportable(source, precision)
        return None, exported_onnx
    return require_onnx_source(source, precision, load), None


def require_onnx_source(onnx_path: PathLike, precision: str, load: Optional[LoadOptions]) -> GraphFile:
    """The given ONNX file, read (without its external data) and checked before TensorRT: it exists, takes no
    model-source options, its external data lies in its folder, and its recorded precision allows an engine of
    ``precision``.  A file that is no ONNX graph is left to the checks that name what is missing (TensorRT
    first)."""
    from vit5_infer.exporters.precision import check_build_precision
    from vit5_infer.files import external_data_paths

    if load is not None and load != LoadOptions():
        raise EngineBuildError(
            f"{onnx_path} is an ONNX file: the model-source options (--config, --weights, --trust-pickle, --seed and "
            "the architecture overrides) apply to a preset or checkpoint, which is exported first"
        )
    graph = GraphFile.read(require_file(onnx_path, (".onnx",), "ONNX file", BackendError))
    if graph.model is not None:
        # TensorRT's parser reads a graph's external data itself: a location outside the graph's folder is refused
        external_data_paths(graph.path, graph.model)
    recorded = graph.metadata.get("precision")
    if recorded in PRECISION_NAMES:  # before TensorRT: a flag the graph cannot take
        check_build_precision(graph.path, recorded, precision)
    return graph


def check_exportable(source: PathLike, precision: str) -> None:
    """A preset or checkpoint is exported here as a float graph: refuse a quantized engine of it in one line."""
    if Precision(precision).is_quantized:
        raise EngineBuildError(
            f"{source} would be exported here as a float graph; an {precision} engine is built from a quantized one: "
            f"'vit5 export {source} -o model.{precision}.onnx --precision {precision} --target tensorrt "
            f"--calibration DIR', then build that with --{precision}"
        )


def check_parses(onnx_graph: PathLike | GraphFile, tensorrt_version: str) -> None:
    """Refuse, in one line, an ONNX file (a path, or the GraphFile read of it) the installed TensorRT's parser
    cannot take (the static check of exporters/tensorrt_compat.py), naming what to re-export it with."""
    from vit5_infer.exporters.tensorrt_compat import check_tensorrt_compat

    onnx_path = onnx_graph.path if isinstance(onnx_graph, GraphFile) else Path(onnx_graph)
    # an unreadable file is read by the check itself, which refuses it in one line
    graph = onnx_graph.model if isinstance(onnx_graph, GraphFile) else None
    report = check_tensorrt_compat(onnx_path if graph is None else graph, tensorrt_release(tensorrt_version))
    if not report.compatible:
        first = report.errors[0]
        more = f" (+{len(report.errors) - 1} more)" if len(report.errors) > 1 else ""
        raise EngineBuildError(
            f"{onnx_path} does not parse on TensorRT {tensorrt_version}: {first.node or 'graph'} [{first.op_type}] "
            f"{first.message}{more}; re-export it with 'vit5 export SOURCE -o {Path(onnx_path).name} "
            f"--target tensorrt={report.version}'"
        )


def tensorrt_target(version: str) -> str:
    """The export target whose graph form TensorRT ``version`` parses: its MAJOR.MINOR, as a package version
    such as 10.14.1.48.post1 is not a target."""
    return f"tensorrt={tensorrt_release(version)}"


def export_for_tensorrt(
    source: PathLike, onnx_path: Path, tensorrt_version: str, load: Optional[LoadOptions], progress: Progress
) -> Path:
    """Export a preset or checkpoint to ``onnx_path`` in the graph form the installed TensorRT parses."""
    from .export import ExportOptions, export

    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    target = tensorrt_target(tensorrt_version)
    if progress:
        progress(f"exporting {source} to ONNX (target {target})")
    options = ExportOptions(target=target, load=load or LoadOptions())
    return Path(export(source, onnx_path, options, progress=progress).result.path)


def graph_to_build(source: GraphFile, precision: str, workdir: Path, say) -> tuple[Path, str, GraphSummary]:
    """(the graph file at the engine's precision, that precision, what the build reads of the graph): an FP32
    graph asked for fp16/bf16 is converted into ``workdir``; a quantized graph must be built at its own."""
    from vit5_infer.exporters.precision import graph_at_precision

    source_onnx = source.path
    graph_path, graph_precision, graph = graph_at_precision(source, precision, workdir)
    if Precision(precision).is_quantized and graph_precision != precision:
        raise EngineBuildError(f"{source_onnx} is an {graph_precision} graph; build it with --{graph_precision}")
    if graph_path != source_onnx:
        say(f"converted {source_onnx.name} to an {precision} graph (sensitive ops kept in FP32)")
    # the loaded graph is dropped here, before TensorRT builds: only its summary is kept
    return graph_path, graph_precision, GraphSummary.of(graph)


def _move_export(staged_onnx: Path, target: Path) -> None:
    """Move the exported ONNX (and any external weight files beside it) next to the engine."""
    for item in staged_onnx.parent.iterdir():
        destination = target if item == staged_onnx else target.parent / item.name
        shutil.move(str(item), str(destination))
