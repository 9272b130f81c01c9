"""TensorRT engines from ONNX graphs already at their final precision -> engine + manifest.

The TensorRT work is done by Polygraphy's loaders (``create_network``, ``SetDecomposableAttentions``,
``CreateConfig``, ``engine_bytes_from_network``, ``EngineFromBytes``); this module decides what to ask
for and turns failures into one-line errors.  What it keeps of its own: option checks, the
precision/compute-capability check, the manifest, the fusion report, staged writes (nothing is written
unless the build succeeds), progress messages.  Exporting a preset or checkpoint, converting an FP32
graph to FP16/BF16 and the static parser check come before, in ``vit5_infer.workflows.build_engine``.

The network is always strongly typed: on TensorRT 11.x that is the only mode, and on 10.x the
STRONGLY_TYPED creation flag gives the same behaviour.  Reduced precision therefore comes from the
graph (the exporter's FP16/BF16 graph), never from builder precision flags, which 11.x removed.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from vit5_infer.caller_warnings import warn_at_caller
from vit5_infer.engine_manifest import (
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
from vit5_infer.files import staged_file, write_bytes_atomic, write_text_atomic
from vit5_infer.graph_metadata import graph_outputs, read_metadata_or_empty
from vit5_infer.vocabulary import INPUT_NAME, PRECISION_NAMES, PathLike, Precision, Progress

from .attention_report import NO_ATTENTION, NOT_FUSED, PARTIAL, UNKNOWN, FusionReport, attention_blocks, fusion_report
from .cuda_device import CudaDevice
from .errors import EngineBuildError, first_line
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
)

log = logging.getLogger("vit5_infer.engines")
BUILD_PRECISIONS = PRECISION_NAMES  # int8/fp8: a quantized graph, built as it is


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
    precision: str,
    min_batch: int,
    opt_batch: int,
    max_batch: int,
    workspace_gib: Optional[float],
    optimization_level: int,
    batch_profiles: Any = None,
    hardware_compatibility: Optional[str] = None,
) -> list:
    """The engine's optimization profiles as (min, opt, max) batches, after checking every build option
    (one-line EngineBuildError each): ``batch_profiles`` (``--batch-profiles`` text or a list of
    (min, opt, max)) replaces the one profile of min/opt/max_batch."""
    if precision not in BUILD_PRECISIONS:
        raise EngineBuildError(f"unknown precision {precision!r}; use one of {', '.join(BUILD_PRECISIONS)}")
    if batch_profiles is not None:
        if (min_batch, opt_batch, max_batch) != (DEFAULT_MIN_BATCH, DEFAULT_OPT_BATCH, DEFAULT_MAX_BATCH):
            raise EngineBuildError(
                "--batch-profiles replaces --min-batch, --opt-batch and --max-batch: give one or the other"
            )
        text = (
            batch_profiles
            if isinstance(batch_profiles, str)
            else ",".join("-".join(map(str, p)) for p in batch_profiles)
        )
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
    outputs = {
        "the engine": engine_path,
        "its manifest": manifest_path_for(engine_path),
        "its layer JSON": layers_path_for(engine_path),
    }
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
                f"--timing-cache: {timing_cache} is also {what} this build writes; give the cache a file of its own"
            )


def read_timing_cache(path: Optional[PathLike], source: Optional[PathLike] = None) -> Optional[bytes]:
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


@dataclass(frozen=True)
class TensorRTBuilder:
    """The installed TensorRT module and the GPU it builds for, both checked (``open_builder``)."""

    trt: Any
    gpu: CudaDevice


def open_builder(precision: Union[str, Precision], hardware_compatibility: Optional[str] = None) -> TensorRTBuilder:
    """TensorRT and the GPU, checked for a graph of ``precision`` and the hardware compatibility level:
    TensorRTUnavailableError / NoGPUError when this machine cannot build, one-line errors when the GPU
    lacks what the engine needs."""
    trt = import_tensorrt()
    gpu = require_gpu("building a TensorRT engine")
    check_gpu_supported(trt.__version__, gpu)
    check_hardware_compatibility(hardware_compatibility, trt.__version__, gpu)
    check_precision_supported(precision, gpu)
    return TensorRTBuilder(trt, gpu)


@dataclass(frozen=True)
class GraphOrigin:
    """Where the graph an engine is built from came from, as the manifest records it."""

    #: the ONNX file the manifest's rebuild command names (the given file, or the export kept beside the engine)
    onnx_path: Path
    #: the graph as exported, before any precision conversion: its metadata names the model and the quantization
    source_onnx: Path
    #: the built graph is ``source_onnx`` converted to another precision
    converted: bool = False
    #: SHA-256 of the ``onnx_path`` file (None: hashed when the manifest is written)
    onnx_sha256: Optional[str] = None
    #: the vit5.* metadata of ``source_onnx`` when the caller has read it (None: read here)
    metadata: Optional[dict] = field(default=None, hash=False)


@dataclass(frozen=True)
class GraphSummary:
    """What the build reads from the loaded graph: its attention blocks (for the fusion report) and outputs."""

    blocks: list
    outputs: dict

    @classmethod
    def of(cls, graph: Any) -> GraphSummary:
        return cls(attention_blocks(graph), graph_outputs(graph))


def build_engine_from_onnx(
    graph_path: PathLike,
    engine_path: PathLike,
    *,
    precision: str,
    profiles: list,
    origin: Optional[GraphOrigin] = None,
    summary: Optional[GraphSummary] = None,
    builder: Optional[TensorRTBuilder] = None,
    timing_cache: Optional[PathLike] = None,
    timing_cache_bytes: Optional[bytes] = None,
    workspace_gib: Optional[float] = None,
    optimization_level: int = 3,
    verbose: bool = False,
    version_compatible: bool = False,
    hardware_compatibility: Optional[str] = None,
    progress: Progress = None,
    started: Optional[float] = None,
) -> BuildResult:
    """Build a TensorRT engine from ``graph_path``, an ONNX graph already at its final ``precision`` (TensorRT
    builds it as it is: the network is strongly typed), for the (min, opt, max) batch ``profiles`` that
    ``check_build_options`` returned.  Writes the engine, its manifest (``.json``) and the inspector's layer
    JSON (``.layers.json``) only when the build succeeds.

    ``origin``: what the manifest records of the graph's provenance (default: the graph itself);
    ``summary``: the graph's attention blocks and outputs when the caller has it loaded already;
    ``builder``: an ``open_builder`` result (opened here when None); ``timing_cache``: the cache file, with
    the bytes ``read_timing_cache`` read from it; ``hardware_compatibility``: a checked level name;
    ``started``: the ``time.perf_counter()`` the reported build time counts from (default: now).
    """
    say = progress or (lambda message: None)
    started = time.perf_counter() if started is None else started
    graph_path, engine_path = Path(graph_path), Path(engine_path)
    origin = origin or GraphOrigin(graph_path, graph_path)
    # a caller that passes only the cache's path gets it read (and checked) here: the build writes it back
    if timing_cache is not None and timing_cache_bytes is None:
        timing_cache_bytes = read_timing_cache(timing_cache, graph_path)
    hardware_compatibility = check_hardware_compatibility(hardware_compatibility)  # its canonical name
    builder = builder or open_builder(precision, hardware_compatibility)
    summary = summary or GraphSummary.of(_load_graph(graph_path))
    trt = builder.trt
    with tempfile.TemporaryDirectory(prefix="vit5-build-") as work:
        cache_out = Path(work) / "timing.cache"
        with tensorrt_log(verbose) as errors, cuda_initialized(trt.__version__, "building an engine"):
            engine_bytes, shape, decomposable = _build(
                trt,
                graph_path,
                origin.source_onnx,
                profiles,
                (timing_cache, timing_cache_bytes),
                cache_out,
                workspace_gib,
                optimization_level,
                say,
                errors,
                (version_compatible, hardware_compatibility),
            )
            say("reading the engine's layers (engine inspector)")
            layer_json = _engine_information(trt, engine_bytes)
        report = fusion_report(layer_json, summary.blocks)
        metadata = read_metadata_or_empty(origin.source_onnx) if origin.metadata is None else origin.metadata
        build_flags = _build_flags(
            trt.__version__,
            optimization_level,
            workspace_gib,
            timing_cache,
            decomposable,
            version_compatible,
            hardware_compatibility,
            origin.converted,
            metadata,
        )
        manifest = _manifest(
            builder,
            engine_path,
            precision,
            batch_profiles_shapes(shape, profiles),
            build_flags,
            origin,
            report,
            summary,
            metadata,
        )
        _write_build(engine_path, engine_bytes, layer_json, manifest)
        if timing_cache and cache_out.is_file():
            write_bytes_atomic(timing_cache, cache_out.read_bytes())
    problems = _fusion_problems(engine_path, report, say)
    seconds = time.perf_counter() - started
    say(
        f"wrote {engine_path}, {manifest_path_for(engine_path).name} and {layers_path_for(engine_path).name} "
        f"in {seconds:.1f} s"
    )
    return BuildResult(
        engine_path=engine_path,
        manifest_path=manifest_path_for(engine_path),
        manifest=manifest.to_dict(),
        attention_fused=report.fused,
        fused_layers=list(report.fused_layers),
        build_seconds=seconds,
        attention_present=report.verdict != NO_ATTENTION,
        onnx_path=origin.onnx_path,
        warnings=problems,
        fusion=report,
        layers_path=layers_path_for(engine_path),
    )


def _manifest(
    builder: TensorRTBuilder,
    engine_path: Path,
    precision: str,
    optimization_profiles: list,
    build_flags: dict,
    origin: GraphOrigin,
    report: FusionReport,
    summary: GraphSummary,
    metadata: dict,
) -> Any:
    """``metadata``: the source graph's vit5.* metadata (the model it was exported from)."""
    return create_manifest(
        onnx_path=origin.onnx_path,
        engine_path=engine_path,
        tensorrt_version=builder.trt.__version__,
        gpu_name=builder.gpu.name,
        compute_capability=builder.gpu.compute_capability,
        precision=precision,
        profiles=profile_envelope(optimization_profiles),
        optimization_profiles=optimization_profiles,
        build_flags=build_flags,
        source=_model_source(metadata),
        attention_fused=report.fused,
        fused_attention_layers=list(report.fused_layers),
        onnx_sha256=origin.onnx_sha256,
        attention_verdict=report.verdict,
        attention_blocks=len(summary.blocks),
        attention_report=report.to_dict(),
        layers_file=layers_path_for(engine_path).name,
        outputs=summary.outputs,
    )


def _load_graph(graph_path: Path) -> Any:
    import onnx

    try:
        return onnx.load(str(graph_path))
    except Exception as exc:  # noqa: BLE001 - protobuf/IO errors become one line
        raise EngineBuildError(f"{graph_path}: not a readable ONNX model ({first_line(exc)})") from None


def _build_flags(
    version: str,
    optimization_level: int,
    workspace_gib: Optional[float],
    timing_cache: Optional[PathLike],
    decomposable: bool,
    version_compatible: bool,
    hardware_compatibility: Optional[str],
    converted: bool,
    metadata: dict,
) -> dict:
    """``converted``: the built graph is the source graph converted to another precision; ``metadata``: the
    source graph's vit5.* metadata."""
    return {
        "strongly_typed": True,
        "tensorrt_major": tensorrt_major(version),
        "optimization_level": optimization_level,
        "workspace_gib": workspace_gib,
        "timing_cache": str(timing_cache) if timing_cache else None,
        "profiling_verbosity": "detailed",
        "tf32": True,
        "decomposable_attention": decomposable,
        "version_compatible": bool(version_compatible),
        "hardware_compatibility": hardware_compatibility or "none",
        "graph": "converted" if converted else "as-exported",
        "builder": f"polygraphy {_polygraphy_version()}",
        # scheme, target, calibration method and image count of an INT8/FP8 graph
        "quantization": metadata.get("quantization"),
    }


def _write_build(engine_path: Path, engine_bytes: bytes, layer_json: str, manifest: Any) -> None:
    """The engine, its layer JSON and its manifest, each staged: nothing half-written."""
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    with staged_file(engine_path) as tmp_engine:
        tmp_engine.write_bytes(engine_bytes)
        write_text_atomic(layers_path_for(engine_path), layer_json)
        write_manifest(manifest, engine_path)


def _fusion_problems(engine_path: Path, report: FusionReport, say: Callable[[str], None]) -> list:
    """Warn (Python warning, log and progress) when attention was not, or not visibly, fused."""
    problems = []
    if report.verdict in (NOT_FUSED, PARTIAL):
        problems.append(not_fused_message(engine_path.name, report))
        warn_at_caller(problems[-1], AttentionNotFusedWarning)
        log.warning(problems[-1])
        say(problems[-1])
    elif report.verdict == UNKNOWN:
        problems.append(f"could not tell whether TensorRT fused attention in {engine_path.name}: {report.detail}")
        log.warning(problems[-1])
        say(problems[-1])
    return problems


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

    say(f"parsing {graph_path.name}")
    network = parse_network(trt, graph_path, source_onnx)  # (builder, network, parser), as Polygraphy passes it on
    definition = network[1]
    inputs = {
        tensor.name: tuple(tensor.shape) for tensor in (definition.get_input(i) for i in range(definition.num_inputs))
    }
    shape = check_input_shape(inputs, source_onnx, profiles)
    try:
        network, decomposable = with_decomposable_attentions(trt, network)
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
        first = reported_error(errors, first_line(exc, "no reason given"))
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
        profiles=[
            Profile().add(INPUT_NAME, min=(low, *shape), opt=(opt, *shape), max=(high, *shape))
            for low, opt, high in profiles
        ],
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


def parse_network(trt: Any, graph: Union[PathLike, bytes], what: PathLike) -> tuple:
    """(builder, network, parser) of an ONNX graph in the network kind every vit5 engine is (strongly typed;
    the flag where the release needs it): from a file, whose external weights TensorRT resolves beside it, or
    from serialized bytes.  The parser's errors become one EngineBuildError naming ``what``.

    Parsed here rather than with Polygraphy's network_from_onnx_path, which logs the IParserErrors as
    text and drops the parser: the node, its op and the error code are read from the parser itself.
    """
    from polygraphy.backend.trt import create_network
    from polygraphy.backend.trt import util as trt_util

    builder, network = create_network(strongly_typed=needs_strongly_typed_flag(trt.__version__))
    parser = trt.OnnxParser(network, trt_util.get_trt_logger())
    from_bytes = isinstance(graph, (bytes, bytearray, memoryview))
    parsed = parser.parse(bytes(graph)) if from_bytes else parser.parse_from_file(str(graph))
    if not parsed or parser.num_errors:
        raise EngineBuildError(parse_failure_message(what, read_parser_errors(parser), trt.__version__))
    return builder, network, parser


def with_decomposable_attentions(trt: Any, parsed: tuple) -> tuple[tuple, bool]:
    """(the parsed network, whether its IAttention layers were made decomposable).  Without this the parser's
    IAttention layers must find a fused kernel or the build fails (FP32, some shapes and GPUs;
    NVIDIA/TensorRT#4705); decomposable, TensorRT still fuses where it can."""
    decomposable = has_attention_layers(trt.__version__)
    if decomposable:
        # The IAttention loader only matters from TensorRT 10.14 on; imported only here.
        from polygraphy.backend.trt import set_decomposable_attentions

        parsed = set_decomposable_attentions(parsed)
    return parsed, decomposable


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


def _model_source(metadata: dict) -> Optional[dict]:
    """What the manifest records of the model a graph was exported from, out of the graph's vit5.* metadata."""
    source = metadata.get("source")
    if isinstance(source, dict):
        return source
    keys = ("source", "model", "preset", "checkpoint", "sha256", "opset", "lowering")
    picked = {k: metadata[k] for k in keys if k in metadata}
    return picked or None
