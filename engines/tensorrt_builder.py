"""``build_engine``: ONNX (or a preset/checkpoint, exported first) -> TensorRT engine + manifest.

The network is always strongly typed: on TensorRT 11.x that is the only mode, and on 10.x the
STRONGLY_TYPED creation flag gives the same behaviour.  Reduced precision therefore comes from the
graph (the exporter's FP16/BF16 graph), never from builder precision flags, which 11.x removed.
Nothing is written unless the build succeeds: engine, manifest and exported ONNX are staged in
temporary files and moved into place at the end.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

from vit5_infer.files import staged_file, write_bytes_atomic
from .attention_report import fused_attention_layers, onnx_has_attention
from .errors import BackendError, EngineBuildError
from .manifest import INPUT_NAME, create_manifest, manifest_path_for, profile_shapes, write_manifest
from .onnx_source import export_source, graph_for_precision, is_onnx_path, read_onnx_metadata, require_onnx_file
from .tensorrt_support import import_tensorrt, require_gpu, strongly_typed_flags, tensorrt_major

PathLike = Union[str, Path]
Progress = Optional[Callable[[str], None]]
log = logging.getLogger("vit5_infer.engines")


class AttentionNotFusedWarning(UserWarning):
    """TensorRT built the attention blocks from separate gemm/softmax kernels."""


@dataclass
class BuildResult:
    engine_path: Path
    manifest_path: Path
    manifest: dict
    attention_fused: bool
    fused_layers: list = field(default_factory=list)
    build_seconds: float = 0.0
    # False for networks without attention (pure Hyena): nothing to fuse, no warning
    attention_present: bool = True
    onnx_path: Optional[Path] = None
    warnings: list = field(default_factory=list)


def check_build_options(
    precision: str, min_batch: int, opt_batch: int, max_batch: int, workspace_gib: Optional[float], optimization_level: int
) -> None:
    if precision not in ("fp32", "fp16", "bf16"):
        raise EngineBuildError(f"unknown precision {precision!r}; use fp32, fp16 or bf16")
    if not (1 <= min_batch <= opt_batch <= max_batch):
        raise EngineBuildError(
            f"batch profile must satisfy 1 <= min <= opt <= max (got min {min_batch}, opt {opt_batch}, max {max_batch})"
        )
    if workspace_gib is not None and workspace_gib <= 0:
        raise EngineBuildError(f"--workspace must be a positive number of GiB (got {workspace_gib})")
    if not 0 <= optimization_level <= 5:
        raise EngineBuildError(f"builder optimization level must be 0..5 (got {optimization_level})")


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
) -> BuildResult:
    """Build a TensorRT engine for ``pixel_values`` batches in [min_batch, max_batch].

    ``onnx_path``: an exported ``.onnx`` file, or a preset name / checkpoint file that is exported
    first (the ONNX is kept beside the engine so the manifest's rebuild command works).
    Raises TensorRTUnavailableError / NoGPUError before anything is written when the machine
    cannot build, EngineBuildError when TensorRT rejects the graph.
    """
    say = progress or (lambda message: None)
    check_build_options(precision, min_batch, opt_batch, max_batch, workspace_gib, optimization_level)
    engine_path = Path(engine_path)
    if is_onnx_path(engine_path):
        raise BackendError(f"{engine_path}: the engine output must not be an .onnx path")
    exported_onnx = None if is_onnx_path(onnx_path) else engine_path.with_suffix(".onnx")
    if exported_onnx is None:
        onnx_path = require_onnx_file(onnx_path)

    trt = import_tensorrt()
    gpu = require_gpu("building a TensorRT engine")
    started = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="vit5-build-") as work:
        workdir = Path(work)
        if exported_onnx is not None:
            (workdir / "export").mkdir()
            staged_onnx = export_source(onnx_path, workdir / "export" / exported_onnx.name, progress)
            source_onnx = staged_onnx
        else:
            staged_onnx = None
            source_onnx = Path(onnx_path)
        graph_path, graph_precision, graph = graph_for_precision(source_onnx, precision, workdir)
        if graph_path != source_onnx:
            say(f"converted {source_onnx.name} to an {precision} graph (sensitive ops kept in FP32)")
        attention_present = onnx_has_attention(graph)
        del graph

        engine_bytes, cache_bytes, shape = _build(
            trt, graph_path, source_onnx, precision, (min_batch, opt_batch, max_batch),
            timing_cache, workspace_gib, optimization_level, verbose, say,
        )
        say("reading the engine's layer information")
        fused = fused_attention_layers(_engine_information(trt, engine_bytes))
        attention_fused = bool(fused)

        manifest = create_manifest(
            onnx_path=exported_onnx if exported_onnx is not None else onnx_path,
            engine_path=engine_path,
            tensorrt_version=trt.__version__,
            gpu_name=gpu.name,
            compute_capability=gpu.compute_capability,
            precision=graph_precision,
            profiles=profile_shapes(shape, min_batch, opt_batch, max_batch),
            build_flags={
                "strongly_typed": True,
                "tensorrt_major": tensorrt_major(trt.__version__),
                "optimization_level": optimization_level,
                "workspace_gib": workspace_gib,
                "timing_cache": str(timing_cache) if timing_cache else None,
                "profiling_verbosity": "detailed",
                "graph": "converted" if graph_path != source_onnx else "as-exported",
            },
            source=_model_source(source_onnx),
            attention_fused=attention_fused if attention_present else None,
            fused_attention_layers=fused,
            onnx_sha256=None if staged_onnx is None else _sha256(staged_onnx),
        )

        engine_path.parent.mkdir(parents=True, exist_ok=True)
        with staged_file(engine_path) as tmp_engine:
            tmp_engine.write_bytes(engine_bytes)
            manifest_path = write_manifest(manifest, engine_path)
        if staged_onnx is not None and exported_onnx is not None:
            _move_export(staged_onnx, exported_onnx)
        if timing_cache and cache_bytes:
            write_bytes_atomic(timing_cache, cache_bytes)

    problems = []
    if attention_present and not attention_fused:
        problems.append(
            f"WARNING: TensorRT did not fuse attention in {engine_path.name}: attention runs as separate "
            "gemm/softmax kernels (slower, more memory). Export with the opset-23 Attention op "
            "(TensorRT >= 10.14) or the MatMul-Softmax-MatMul pattern, in fp16/bf16."
        )
        warnings.warn(problems[-1], AttentionNotFusedWarning, stacklevel=2)
        log.warning(problems[-1])
        say(problems[-1])
    seconds = time.perf_counter() - started
    say(f"wrote {engine_path} and {manifest_path.name} in {seconds:.1f} s")
    return BuildResult(
        engine_path=engine_path,
        manifest_path=manifest_path_for(engine_path),
        manifest=manifest.to_dict(),
        attention_fused=attention_fused,
        fused_layers=fused,
        build_seconds=seconds,
        attention_present=attention_present,
        onnx_path=exported_onnx if exported_onnx is not None else Path(onnx_path),
        warnings=problems,
    )


def _build(
    trt: Any,
    graph_path: Path,
    source_onnx: Path,
    precision: str,
    batches: tuple[int, int, int],
    timing_cache: Optional[PathLike],
    workspace_gib: Optional[float],
    optimization_level: int,
    verbose: bool,
    say: Callable[[str], None],
) -> tuple[bytes, bytes, tuple]:
    """(serialized engine, serialized timing cache, [C, H, W] of pixel_values)."""
    logger = trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(strongly_typed_flags(trt))
    parser = trt.OnnxParser(network, logger)
    say(f"parsing {graph_path.name}")
    # parse_from_file resolves external weight files relative to the ONNX file.
    if not parser.parse_from_file(str(graph_path)):
        errors = [str(parser.get_error(i).desc()) for i in range(parser.num_errors)]
        first = errors[0].splitlines()[0] if errors else "unknown error"
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        raise EngineBuildError(f"TensorRT could not parse {source_onnx}: {first}{more}{_parse_hint(trt, errors)}")

    inputs = {network.get_input(i).name: network.get_input(i) for i in range(network.num_inputs)}
    if INPUT_NAME not in inputs:
        raise EngineBuildError(f"{source_onnx} has no input {INPUT_NAME!r} (inputs: {', '.join(inputs) or 'none'})")
    dims = tuple(int(d) for d in inputs[INPUT_NAME].shape)
    shape = dims[1:]
    if len(dims) != 4 or any(d < 0 for d in shape):
        raise EngineBuildError(f"{source_onnx}: {INPUT_NAME} must be [batch, C, H, W] with fixed C, H, W (got {list(dims)})")
    min_batch, opt_batch, max_batch = batches
    if dims[0] >= 0 and batches != (dims[0],) * 3:
        raise EngineBuildError(
            f"{source_onnx} has a fixed batch of {dims[0]}; export it with a dynamic batch, or pass "
            f"--min-batch {dims[0]} --opt-batch {dims[0]} --max-batch {dims[0]}"
        )

    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, (min_batch, *shape), (opt_batch, *shape), (max_batch, *shape))
    config.add_optimization_profile(profile)
    if workspace_gib:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    config.builder_optimization_level = optimization_level
    # DETAILED keeps layer types and tactic names in the engine so the inspector can show fused attention.
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    _attach_timing_cache(config, timing_cache, say)

    say(f"building the {precision} engine (batch {min_batch}..{max_batch}, opt {opt_batch}); this takes minutes")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(
            f"TensorRT failed to build an engine from {source_onnx}; rerun with --verbose to see the builder log"
        )
    cache = config.get_timing_cache()
    cache_bytes = bytes(memoryview(cache.serialize())) if cache is not None else b""
    return bytes(memoryview(serialized)), cache_bytes, shape


def _parse_hint(trt: Any, errors: list) -> str:
    """Advice for the one parse failure users meet in practice: an opset-23 graph on an older TensorRT."""
    version = tuple(int(p) for p in str(trt.__version__).split(".")[:2] if p.isdigit())
    mentions = " ".join(errors)
    if version < (10, 14) and ("Attention" in mentions or "RMSNormalization" in mentions):
        # The ONNX parser gained the opset-23 Attention op in TensorRT 10.14.
        return (
            f"; TensorRT {trt.__version__} cannot parse opset-23 Attention/RMSNormalization (10.14+ can): "
            "upgrade TensorRT or export with 'vit5 export SRC -o X.onnx --opset 18'"
        )
    return ""


def _attach_timing_cache(config: Any, timing_cache: Optional[PathLike], say: Callable[[str], None]) -> None:
    blob = b""
    if timing_cache and Path(timing_cache).is_file():
        blob = Path(timing_cache).read_bytes()
        say(f"loaded timing cache {timing_cache} ({len(blob)} bytes)")
    cache = config.create_timing_cache(blob)
    # A cache from another GPU or TensorRT version is refused rather than trusted; start a fresh one.
    if not config.set_timing_cache(cache, False):
        say(f"timing cache {timing_cache} does not match this GPU/TensorRT; starting a new one")
        config.set_timing_cache(config.create_timing_cache(b""), False)


def _engine_information(trt: Any, engine_bytes: bytes) -> str:
    runtime = trt.Runtime(trt.Logger(trt.Logger.ERROR))
    engine = runtime.deserialize_cuda_engine(engine_bytes)
    if engine is None:
        return "{}"
    inspector = engine.create_engine_inspector()
    return str(inspector.get_engine_information(trt.LayerInformationFormat.JSON))


def _model_source(onnx_path: Path) -> Optional[dict]:
    metadata = read_onnx_metadata(onnx_path)
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
