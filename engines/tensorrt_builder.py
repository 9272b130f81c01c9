"""``build_engine``: ONNX (or a preset/checkpoint, exported first) -> TensorRT engine + manifest.

The TensorRT work is done by Polygraphy's loaders (``create_network``, ``SetDecomposableAttentions``,
``CreateConfig``, ``engine_bytes_from_network``, ``EngineFromBytes``); this module decides what to ask
for and turns failures into one-line errors.  What it keeps of its own: option checks, the
precision/compute-capability check, the manifest and its rebuild command, the fusion report, staged
writes (nothing is written unless the build succeeds), progress messages.

The network is always strongly typed: on TensorRT 11.x that is the only mode, and on 10.x the
STRONGLY_TYPED creation flag gives the same behaviour.  Reduced precision therefore comes from the
graph (the exporter's FP16/BF16 graph), never from builder precision flags, which 11.x removed.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from vit5_infer.exporters.export import export_source
from vit5_infer.exporters.metadata import read_metadata_or_empty
from vit5_infer.exporters.precision import check_build_precision, graph_at_precision
from vit5_infer.files import require_file, staged_file, write_bytes_atomic, write_text_atomic
from vit5_infer.load_options import LoadOptions
from vit5_infer.vocabulary import INPUT_NAME, PathLike, Precision, Progress, is_onnx_path

from .attention_report import NO_ATTENTION, NOT_FUSED, PARTIAL, UNKNOWN, FusionReport, attention_blocks, fusion_report
from .errors import BackendError, EngineBuildError
from .manifest import (
    DEFAULT_MAX_BATCH,
    DEFAULT_MIN_BATCH,
    DEFAULT_OPT_BATCH,
    batch_profiles_shapes,
    create_manifest,
    layers_path_for,
    manifest_path_for,
    profile_envelope,
    write_manifest,
)
from .parse_errors import parse_failure_message, read_parser_errors
from .tensorrt_support import (
    MAX_PROFILE_BATCH,
    check_gpu_supported,
    check_hardware_compatibility,
    check_precision_supported,
    cuda_initialized,
    hardware_compatibility_member,
    has_attention_layers,
    import_tensorrt,
    needs_strongly_typed_flag,
    parse_batch_profiles,
    reported_error,
    require_gpu,
    tensorrt_log,
    tensorrt_major,
    tensorrt_release,
)

log = logging.getLogger("vit5_infer.engines")
BUILD_PRECISIONS = tuple(p.value for p in Precision)  # int8/fp8: a quantized graph, built as it is


class AttentionNotFusedWarning(UserWarning):
    """TensorRT built (some of) the attention blocks from separate gemm/softmax kernels."""


@dataclass
class BuildResult:
    engine_path: Path
    manifest_path: Path
    manifest: dict
    #: True: every attention block runs as a fused kernel; False: some or none do; None: no attention, or unknown
    attention_fused: Optional[bool]
    fused_layers: list = field(default_factory=list)
    build_seconds: float = 0.0
    # False for networks without attention (pure Hyena): nothing to fuse, no warning
    attention_present: bool = True
    onnx_path: Optional[Path] = None
    warnings: list = field(default_factory=list)
    fusion: Optional[FusionReport] = None
    #: the engine inspector's raw JSON (model.engine.layers.json)
    layers_path: Optional[Path] = None


def check_build_options(
    precision: str, min_batch: int, opt_batch: int, max_batch: int, workspace_gib: Optional[float],
    optimization_level: int, batch_profiles: Any = None, hardware_compatibility: Optional[str] = None,
) -> list:
    """The engine's optimization profiles as (min, opt, max) batches, after checking every build option
    (one-line EngineBuildError each): ``batch_profiles`` (``--batch-profiles`` text or a list of
    (min, opt, max)) replaces the one profile of min/opt/max_batch."""
    if precision not in BUILD_PRECISIONS:
        raise EngineBuildError(f"unknown precision {precision!r}; use one of {', '.join(BUILD_PRECISIONS)}")
    if batch_profiles is not None:
        if (min_batch, opt_batch, max_batch) != (DEFAULT_MIN_BATCH, DEFAULT_OPT_BATCH, DEFAULT_MAX_BATCH):
            raise EngineBuildError(
                "--batch-profiles replaces --min-batch, --opt-batch and --max-batch: give one or the other")
        text = (batch_profiles if isinstance(batch_profiles, str)
                else ",".join("-".join(map(str, p)) for p in batch_profiles))
        profiles = parse_batch_profiles(text)
    elif not (1 <= min_batch <= opt_batch <= max_batch <= MAX_PROFILE_BATCH):
        raise EngineBuildError(
            f"batch profile must satisfy 1 <= min <= opt <= max <= {MAX_PROFILE_BATCH} "
            f"(got min {min_batch}, opt {opt_batch}, max {max_batch})"
        )
    else:
        profiles = [(min_batch, opt_batch, max_batch)]
    if workspace_gib is not None and not (math.isfinite(workspace_gib) and workspace_gib > 0):
        raise EngineBuildError(f"--workspace must be a positive number of GiB (got {workspace_gib})")
    if workspace_gib is not None and int(workspace_gib * (1 << 30)) < 1:
        raise EngineBuildError(f"--workspace {workspace_gib} GiB is less than one byte")
    if not 0 <= optimization_level <= 5:
        raise EngineBuildError(f"builder optimization level must be 0..5 (got {optimization_level})")
    check_hardware_compatibility(hardware_compatibility)
    return profiles


def precision_to_build(recorded: Optional[str], requested: str) -> Precision:
    """The precision of the graph TensorRT will build: an FP32 graph is converted to the requested
    type; a graph the exporter recorded as reduced or quantized keeps its own."""
    try:
        have = Precision.parse(recorded) if recorded else Precision.FP32
    except ValueError:
        have = Precision.FP32
    return Precision.parse(requested) if have == Precision.FP32 else have


def check_input_shape(inputs: dict, source: PathLike, profiles: list) -> tuple[int, ...]:
    """[C, H, W] of ``pixel_values`` among the network inputs ({name: dims}), checked against the
    (min, opt, max) batch ``profiles``; one-line errors otherwise."""
    if INPUT_NAME not in inputs:
        raise EngineBuildError(f"{source} has no input {INPUT_NAME!r} (inputs: {', '.join(inputs) or 'none'})")
    dims = tuple(int(d) for d in inputs[INPUT_NAME])
    if len(dims) != 4 or any(d < 0 for d in dims[1:]):
        raise EngineBuildError(f"{source}: {INPUT_NAME} must be [batch, C, H, W] with fixed C, H, W (got {list(dims)})")
    if dims[0] >= 0 and [tuple(p) for p in profiles] != [(dims[0],) * 3]:
        raise EngineBuildError(
            f"{source} has a fixed batch of {dims[0]}; export it with a dynamic batch, or pass "
            f"--min-batch {dims[0]} --opt-batch {dims[0]} --max-batch {dims[0]}"
        )
    check_profile_memory(dims[1:], max(p[2] for p in profiles))
    return dims[1:]


def check_profile_memory(shape: tuple, max_batch: int) -> None:
    """EngineBuildError when one FP32 input at the largest profile batch exceeds this machine's memory: the
    runner stages that batch in host memory, so such an engine could never be fed."""
    from vit5_infer.memory import FLOAT_BYTES, physical_memory_bytes

    need = max_batch * math.prod(shape) * FLOAT_BYTES
    total = physical_memory_bytes()
    if total is not None and need > total:
        raise EngineBuildError(
            f"a profile batch of {max_batch} needs {need / 2**30:.1f} GiB for its {INPUT_NAME} alone, more than this "
            f"machine's {total / 2**30:.1f} GiB of memory; use a smaller maximum batch"
        )


def build_outputs(engine_path: PathLike, exported_onnx: Optional[PathLike] = None) -> dict:
    """What a build writes, by what it is: the engine, its manifest, the inspector JSON and, for a preset or
    checkpoint source, the ONNX file kept beside the engine."""
    engine_path = Path(engine_path)
    outputs = {"the engine": engine_path, "its manifest": manifest_path_for(engine_path),
               "its layer JSON": layers_path_for(engine_path)}
    if exported_onnx is not None:
        outputs["the exported ONNX"] = Path(exported_onnx)
    return outputs


def check_timing_cache_path(timing_cache: Optional[PathLike], outputs: dict) -> None:
    """The timing cache is read and rewritten: refuse (one line) a path that is also an output of the build,
    compared as paths, so an output that does not exist yet counts too."""
    if timing_cache is None:
        return
    cache = Path(timing_cache).resolve()
    for what, path in outputs.items():
        if Path(path).resolve() == cache:
            raise EngineBuildError(
                f"--timing-cache: {timing_cache} is also {what} this build writes; give the cache a file of its own")


def read_timing_cache(path: Optional[PathLike], source: PathLike = None) -> Optional[bytes]:
    """The --timing-cache file's bytes (None: no cache asked, or none there yet), read before TensorRT is
    loaded; it is written back after the build, so a path that cannot be read or written is refused in
    one line now, not after minutes of building."""
    if path is None:
        return None
    from vit5_infer.files import check_output_path

    path = check_output_path(path, "--timing-cache", (source,))
    if not path.exists():
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise EngineBuildError(f"--timing-cache: cannot read {path} ({exc.strerror or exc})") from None


def timing_cache_note(path: PathLike, size: int, accepted: bool) -> str:
    if accepted:
        return f"loaded timing cache {path} ({size} bytes)"
    return f"timing cache {path} is from another GPU or TensorRT version, or damaged; starting a new one in its place"


def not_fused_message(engine_name: str, report: FusionReport) -> str:
    return (
        f"WARNING: TensorRT did not fuse attention in {engine_name} ({report.detail}); unfused attention is "
        "slower and needs more memory. Export for the installed TensorRT ('vit5 export ... --target tensorrt'), "
        "in fp16/bf16, and check the kernels in the engine's .layers.json"
    )


def check_parses(onnx_path: PathLike, tensorrt_version: str) -> None:
    """Refuse, in one line, an ONNX file the installed TensorRT's parser cannot take (the static check
    of exporters/tensorrt_compat.py), naming what to re-export it with."""
    from vit5_infer.exporters.tensorrt_compat import check_tensorrt_compat

    report = check_tensorrt_compat(onnx_path, tensorrt_release(tensorrt_version))
    if not report.compatible:
        first = report.errors[0]
        more = f" (+{len(report.errors) - 1} more)" if len(report.errors) > 1 else ""
        raise EngineBuildError(
            f"{onnx_path} does not parse on TensorRT {tensorrt_version}: {first.node or 'graph'} [{first.op_type}] "
            f"{first.message}{more}; re-export it with 'vit5 export SOURCE -o {Path(onnx_path).name} "
            f"--target tensorrt={report.version}'"
        )


def build_engine(
    onnx_path: PathLike,
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
    load: Optional[Any] = None,
    batch_profiles: Any = None,
    version_compatible: bool = False,
    hardware_compatibility: Optional[str] = None,
) -> BuildResult:
    """Build a TensorRT engine for ``pixel_values`` batches in [min_batch, max_batch].

    ``onnx_path``: an exported ``.onnx`` file, or a preset name / checkpoint file that is exported
    first (the ONNX is kept beside the engine so the manifest's rebuild command works).
    Raises TensorRTUnavailableError / NoGPUError before anything is written when the machine
    cannot build, EngineBuildError when the GPU lacks the precision or TensorRT rejects the graph.
    Writes the engine, its manifest (``.json``) and the inspector's layer JSON (``.layers.json``).

    ``batch_profiles``: several optimization profiles instead of min/opt/max (see parse_batch_profiles);
    ``version_compatible``: BuilderFlag.VERSION_COMPATIBLE (the engine also runs on newer TensorRT);
    ``hardware_compatibility``: a HARDWARE_COMPATIBILITY_LEVELS name (``ampere+``: any Ampere or newer GPU).
    """
    say = progress or (lambda message: None)
    profiles = check_build_options(precision, min_batch, opt_batch, max_batch, workspace_gib, optimization_level,
                                   batch_profiles, hardware_compatibility)
    hardware_compatibility = check_hardware_compatibility(hardware_compatibility)  # its canonical name
    portability = (version_compatible, hardware_compatibility)
    engine_path = Path(engine_path)
    if is_onnx_path(engine_path):
        raise BackendError(f"{engine_path}: the engine output must not be an .onnx path")
    exported_onnx = None if is_onnx_path(onnx_path) else engine_path.with_suffix(".onnx")
    check_timing_cache_path(timing_cache, build_outputs(engine_path, exported_onnx))
    if exported_onnx is None and load is not None and load != LoadOptions():
        raise EngineBuildError(
            f"{onnx_path} is an ONNX file: the model-source options (--config, --weights, --trust-pickle, --seed and "
            "the architecture overrides) apply to a preset or checkpoint, which is exported first")
    recorded = None
    if exported_onnx is None:
        onnx_path = require_file(onnx_path, (".onnx",), "ONNX file", BackendError)
        recorded = read_metadata_or_empty(onnx_path).get("precision")
        if recorded in [p.value for p in Precision]:  # before TensorRT: a flag the graph cannot take
            check_build_precision(onnx_path, recorded, precision)
    elif Precision(precision).is_quantized:
        raise EngineBuildError(
            f"{onnx_path} would be exported here as a float graph; an {precision} engine is built from a quantized one: "
            f"'vit5 export {onnx_path} -o model.{precision}.onnx --precision {precision} --target tensorrt "
            f"--calibration DIR', then build that with --{precision}")

    cache_blob = read_timing_cache(timing_cache, onnx_path if exported_onnx is None else None)

    trt = import_tensorrt()
    gpu = require_gpu("building a TensorRT engine")
    check_gpu_supported(trt.__version__, gpu)
    check_hardware_compatibility(hardware_compatibility, trt.__version__, gpu)
    check_precision_supported(precision_to_build(recorded, precision), gpu)
    if exported_onnx is None:
        check_parses(onnx_path, trt.__version__)
    started = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="vit5-build-") as work:
        workdir = Path(work)
        if exported_onnx is not None:
            # A preset or checkpoint is exported in the graph form the installed TensorRT parses.
            (workdir / "export").mkdir()
            staged_onnx = export_source(onnx_path, workdir / "export" / exported_onnx.name,
                                        target=f"tensorrt={tensorrt_release(trt.__version__)}", load=load,
                                        progress=progress).path
            source_onnx = staged_onnx
        else:
            staged_onnx = None
            source_onnx = Path(onnx_path)
        graph_path, graph_precision, graph = graph_at_precision(source_onnx, precision, workdir)
        if Precision(precision).is_quantized and graph_precision != precision:
            raise EngineBuildError(f"{source_onnx} is an {graph_precision} graph; build it with --{graph_precision}")
        if graph_path != source_onnx:
            say(f"converted {source_onnx.name} to an {precision} graph (sensitive ops kept in FP32)")
        blocks = attention_blocks(graph)
        from vit5_infer.exporters.metadata import graph_outputs  # lazy: the exporters import torch

        outputs = graph_outputs(graph)
        del graph

        cache_out = workdir / "timing.cache"
        with tensorrt_log(verbose) as errors, cuda_initialized(trt.__version__, "building an engine"):
            engine_bytes, shape, decomposable = _build(
                trt, graph_path, source_onnx, profiles, (timing_cache, cache_blob), cache_out, workspace_gib,
                optimization_level, say, errors, portability,
            )
            say("reading the engine's layers (engine inspector)")
            layer_json = _engine_information(trt, engine_bytes)
        report = fusion_report(layer_json, blocks)
        layers_path = layers_path_for(engine_path)

        manifest = create_manifest(
            onnx_path=exported_onnx if exported_onnx is not None else onnx_path,
            engine_path=engine_path,
            tensorrt_version=trt.__version__,
            gpu_name=gpu.name,
            compute_capability=gpu.compute_capability,
            precision=graph_precision,
            profiles=profile_envelope(batch_profiles_shapes(shape, profiles)),
            optimization_profiles=batch_profiles_shapes(shape, profiles),
            build_flags={
                "strongly_typed": True,
                "tensorrt_major": tensorrt_major(trt.__version__),
                "optimization_level": optimization_level,
                "workspace_gib": workspace_gib,
                "timing_cache": str(timing_cache) if timing_cache else None,
                "profiling_verbosity": "detailed",
                "tf32": True,
                "decomposable_attention": decomposable,
                "version_compatible": bool(version_compatible),
                "hardware_compatibility": hardware_compatibility or "none",
                "graph": "converted" if graph_path != source_onnx else "as-exported",
                "builder": f"polygraphy {_polygraphy_version()}",
                # scheme, target, calibration method and image count of an INT8/FP8 graph
                "quantization": read_metadata_or_empty(source_onnx).get("quantization"),
            },
            source=_model_source(source_onnx),
            attention_fused=report.fused,
            fused_attention_layers=list(report.fused_layers),
            onnx_sha256=None if staged_onnx is None else _sha256(staged_onnx),
            attention_verdict=report.verdict,
            attention_blocks=len(blocks),
            attention_report=report.to_dict(),
            layers_file=layers_path.name,
            outputs=outputs,
        )

        engine_path.parent.mkdir(parents=True, exist_ok=True)
        with staged_file(engine_path) as tmp_engine:
            tmp_engine.write_bytes(engine_bytes)
            write_text_atomic(layers_path, layer_json)
            manifest_path = write_manifest(manifest, engine_path)
        if staged_onnx is not None and exported_onnx is not None:
            _move_export(staged_onnx, exported_onnx)
        if timing_cache and cache_out.is_file():
            write_bytes_atomic(timing_cache, cache_out.read_bytes())

    problems = []
    if report.verdict in (NOT_FUSED, PARTIAL):
        problems.append(not_fused_message(engine_path.name, report))
        warnings.warn(problems[-1], AttentionNotFusedWarning, stacklevel=2)
        log.warning(problems[-1])
        say(problems[-1])
    elif report.verdict == UNKNOWN:
        problems.append(f"could not tell whether TensorRT fused attention in {engine_path.name}: {report.detail}")
        log.warning(problems[-1])
        say(problems[-1])
    seconds = time.perf_counter() - started
    say(f"wrote {engine_path}, {manifest_path.name} and {layers_path.name} in {seconds:.1f} s")
    return BuildResult(
        engine_path=engine_path,
        manifest_path=manifest_path_for(engine_path),
        manifest=manifest.to_dict(),
        attention_fused=report.fused,
        fused_layers=list(report.fused_layers),
        build_seconds=seconds,
        attention_present=report.verdict != NO_ATTENTION,
        onnx_path=exported_onnx if exported_onnx is not None else Path(onnx_path),
        warnings=problems,
        fusion=report,
        layers_path=layers_path,
    )


def _build(
    trt: Any,
    graph_path: Path,
    source_onnx: Path,
    profiles: list,
    timing_cache: tuple[Optional[PathLike], Optional[bytes]],
    cache_out: Path,
    workspace_gib: Optional[float],
    optimization_level: int,
    say: Callable[[str], None],
    errors: list,
    portability: tuple[bool, Optional[str]] = (False, None),
) -> tuple[bytes, tuple, bool]:
    """(serialized engine, [C, H, W] of pixel_values, whether attention layers were made decomposable).

    ``profiles``: (min, opt, max) batch of each optimization profile; ``timing_cache``: (its path, the
    bytes read from it, None when there were none); ``errors``: what TensorRT and Polygraphy logged as
    errors (tensorrt_log), for the failure's one line; ``portability``: (version compatible, hardware
    compatibility level)."""
    from polygraphy.backend.trt import PostprocessConfig, engine_bytes_from_network
    from polygraphy.exception import PolygraphyException

    network = _parse(trt, graph_path, source_onnx, say)  # (builder, network, parser), as Polygraphy passes it on
    definition = network[1]
    inputs = {tensor.name: tuple(tensor.shape) for tensor in (definition.get_input(i) for i in range(definition.num_inputs))}
    shape = check_input_shape(inputs, source_onnx, profiles)
    # Without this the parser's IAttention layers must find a fused kernel or the build fails
    # (FP32, some shapes and GPUs; NVIDIA/TensorRT#4705); decomposable, TensorRT still fuses where it can.
    decomposable = has_attention_layers(trt.__version__)
    try:
        if decomposable:
            # The IAttention loader only matters from TensorRT 10.14 on; imported only here.
            from polygraphy.backend.trt import set_decomposable_attentions

            network = set_decomposable_attentions(network)
        config = PostprocessConfig(
            create_config(trt, profiles, shape, workspace_gib, optimization_level, portability),
            lambda builder, net, config: _attach_timing_cache(config, *timing_cache, say),
        )
        if optimization_level == 0 and timing_cache[0]:
            # IBuilderConfig.builder_optimization_level: level 0 "will also not respect a timing cache".
            say("builder optimization level 0 does not use the timing cache")
        ranges = ", ".join(f"{low}..{high} (opt {opt})" for low, opt, high in profiles)
        say(f"building the engine (batch {ranges}); this takes minutes")
        serialized = engine_bytes_from_network(network, config=config, save_timing_cache=str(cache_out))
    except PolygraphyException as exc:
        first = reported_error(errors, str(exc).strip().splitlines()[0] if str(exc).strip() else "no reason given")
        raise EngineBuildError(
            f"TensorRT {trt.__version__} failed to build an engine from {source_onnx} ({first}); "
            "rerun with --verbose to see the builder log"
        ) from None
    return bytes(memoryview(serialized)), shape, decomposable


def create_config(
    trt: Any,
    profiles: list,
    shape: tuple,
    workspace_gib: Optional[float],
    optimization_level: int,
    portability: tuple[bool, Optional[str]] = (False, None),
) -> Any:
    """Polygraphy's CreateConfig loader for these (min, opt, max) batch profiles of a [C, H, W] input:
    one IOptimizationProfile each, in order, and the portability asked for (version compatible,
    hardware compatibility level name)."""
    from polygraphy.backend.trt import CreateConfig, Profile

    version_compatible, hardware_compatibility = portability
    return CreateConfig(
        profiles=[Profile().add(INPUT_NAME, min=(low, *shape), opt=(opt, *shape), max=(high, *shape))
                  for low, opt, high in profiles],
        memory_pool_limits={trt.MemoryPoolType.WORKSPACE: int(workspace_gib * (1 << 30))} if workspace_gib else None,
        builder_optimization_level=optimization_level,
        # DETAILED keeps kernel (tactic) names in the engine: the fusion report reads them.
        profiling_verbosity=trt.ProfilingVerbosity.DETAILED,
        # TensorRT's own default; Polygraphy would turn TF32 off.
        tf32=True,
        # BuilderFlag.VERSION_COMPATIBLE and IBuilderConfig.hardware_compatibility_level, set by Polygraphy
        version_compatible=bool(version_compatible) or None,
        hardware_compatibility_level=hardware_compatibility_member(trt, hardware_compatibility),
    )


def _parse(trt: Any, graph_path: Path, source_onnx: Path, say: Callable[[str], None]) -> tuple:
    """(builder, network, parser) of a parsed graph; the parser's errors become one EngineBuildError.

    Parsed here rather than with Polygraphy's network_from_onnx_path, which logs the IParserErrors as
    text and drops the parser: the node, its op and the error code are read from the parser itself.
    """
    from polygraphy.backend.trt import create_network
    from polygraphy.backend.trt import util as trt_util

    builder, network = create_network(strongly_typed=needs_strongly_typed_flag(trt.__version__))
    parser = trt.OnnxParser(network, trt_util.get_trt_logger())
    say(f"parsing {graph_path.name}")
    # parse_from_file resolves external weight files relative to the ONNX file.
    parsed = parser.parse_from_file(str(graph_path))
    if not parsed or parser.num_errors:
        raise EngineBuildError(parse_failure_message(source_onnx, read_parser_errors(parser), trt.__version__))
    return builder, network, parser


def _attach_timing_cache(
    config: Any, timing_cache: Optional[PathLike], blob: Optional[bytes], say: Callable[[str], None]
) -> None:
    """Use the timing cache file if TensorRT accepts it; a foreign or damaged one is replaced, not fatal."""
    if not timing_cache or blob is None:
        return  # CreateConfig attached an empty cache; the build fills it
    try:
        cache = config.create_timing_cache(blob)
    except (RuntimeError, TypeError, ValueError):
        cache = None
    accepted = cache is not None and bool(config.set_timing_cache(cache, False))
    say(timing_cache_note(timing_cache, len(blob), accepted))
    if not accepted:
        config.set_timing_cache(config.create_timing_cache(b""), False)


def _engine_information(trt: Any, engine_bytes: bytes) -> str:
    """The engine inspector's JSON for all layers ("{}" when the engine cannot be deserialized here)."""
    from polygraphy.backend.trt import engine_from_bytes
    from polygraphy.exception import PolygraphyException

    try:
        engine = engine_from_bytes(engine_bytes)
    except PolygraphyException:
        return "{}"
    inspector = engine.create_engine_inspector()
    return str(inspector.get_engine_information(trt.LayerInformationFormat.JSON))


def _polygraphy_version() -> str:
    import polygraphy

    return str(polygraphy.__version__)


def _model_source(onnx_path: Path) -> Optional[dict]:
    metadata = read_metadata_or_empty(onnx_path)
    source = metadata.get("source")
    if isinstance(source, dict):
        return source
    keys = ("source", "model", "preset", "checkpoint", "sha256", "opset", "lowering")
    picked = {k: metadata[k] for k in keys if k in metadata}
    return picked or None


def _sha256(path: Path) -> str:
    from vit5_infer.checkpoint import file_sha256

    return file_sha256(path)


def _move_export(staged_onnx: Path, target: Path) -> None:
    """Move the exported ONNX (and any external weight files beside it) next to the engine."""
    for item in staged_onnx.parent.iterdir():
        destination = target if item == staged_onnx else target.parent / item.name
        shutil.move(str(item), str(destination))
