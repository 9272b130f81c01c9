"""``vit5 triton-repo``: a model repository for the stock Triton server.

Layout (Triton's model repository convention)::

    REPO/<name>/config.pbtxt
    REPO/<name>/1/model.onnx      (platform onnxruntime_onnx; its external weights beside it)
    REPO/<name>/1/model.plan      (platform tensorrt_plan; the engine's manifest beside it)

``config.pbtxt`` takes ``max_batch_size`` from the graph or engine profile, dims and data types
from the graph, and adds dynamic batching, instance groups and a warm-up.  It is written as
protobuf text by a small writer (no Triton package needed to write it) and, where tritonclient is
installed, parsed back with Triton's own ``ModelConfig`` message before the model is published,
so a field Triton does not know fails here and not in the server's log.  The model directory is
staged beside its final place and moved there whole.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from vit5_infer.caller_warnings import warn_at_caller
from vit5_infer.errors import Vit5Error
from vit5_infer.files import check_output_dir, external_data_paths, make_public_dir
from vit5_infer.load_options import LoadOptions
from vit5_infer.vocabulary import PathLike, Progress, is_engine_path, is_onnx_path

from .choices import ACCELERATOR_PRECISIONS, INSTANCE_KINDS
from .errors import SERVE_INSTALL_HINT, RepositoryError, ServeUnavailableError
from .signature import ModelSignature, TensorSpec, engine_signature, onnx_signature
from .source import export_served_graph, model_name

VERSION = "1"
ONNX_PLATFORM = "onnxruntime_onnx"
TENSORRT_PLATFORM = "tensorrt_plan"
TRITON_DTYPES = {
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "bfloat16": "TYPE_BF16",
    "float64": "TYPE_FP64",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "bool": "TYPE_BOOL",
    "bytes": "TYPE_STRING",
}


@dataclass
class RepositoryOptions:
    #: instances per device (KIND_GPU: per listed GPU)
    instances: int = 1
    #: "cpu" or "gpu"; default: gpu for an engine, cpu for an ONNX graph
    kind: Optional[str] = None
    gpus: tuple = ()
    max_batch: Optional[int] = None
    preferred_batch_sizes: tuple = ()
    max_queue_delay_us: int = 100
    #: ONNX on GPU only: run through ONNX Runtime's TensorRT execution provider at this precision
    tensorrt_accelerator: Optional[str] = None
    warmup: bool = True


@dataclass
class RepositoryResult:
    model_dir: Path
    config_path: Path
    model_file: Path
    platform: str
    signature: ModelSignature
    #: True when config.pbtxt was parsed with Triton's ModelConfig message (tritonclient installed)
    validated: bool
    files: list = field(default_factory=list)


# ---- protobuf text format ------------------------------------------------------------------------
class Enum(str):
    """An enum value: written bare (``KIND_GPU``), where a plain str is written quoted."""


def _scalar(value: Any) -> str:
    if isinstance(value, Enum):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def to_pbtxt(message: dict, indent: int = 0) -> str:
    """A dict (message) of scalars, dicts (messages) and lists (repeated fields) as protobuf text."""
    pad = "  " * indent
    lines = []
    for key, value in message.items():
        if value is None:
            continue
        if isinstance(value, dict):
            lines.append(f"{pad}{key} {{\n{to_pbtxt(value, indent + 1)}{pad}}}")
        elif isinstance(value, (list, tuple)):
            if not value:
                continue
            if all(isinstance(v, dict) for v in value):
                blocks = ",\n".join(f"{pad}  {{\n{to_pbtxt(v, indent + 2)}{pad}  }}" for v in value)
                lines.append(f"{pad}{key} [\n{blocks}\n{pad}]")
            else:
                lines.append(f"{pad}{key}: [ {', '.join(_scalar(v) for v in value)} ]")
        else:
            lines.append(f"{pad}{key}: {_scalar(value)}")
    return "".join(line + "\n" for line in lines)


def _tensor(spec: TensorSpec, batch_dim: Optional[int]) -> dict:
    if spec.dtype not in TRITON_DTYPES:
        raise RepositoryError(f"tensor {spec.name} has type {spec.dtype}, which Triton cannot serve")
    dims = ([batch_dim] if batch_dim is not None else []) + [int(d) for d in spec.dims]
    return {"name": spec.name, "data_type": Enum(TRITON_DTYPES[spec.dtype]), "dims": dims}


def model_config(
    name: str, platform: str, signature: ModelSignature, options: RepositoryOptions, engine_profiles: int = 1
) -> dict:
    """The config.pbtxt message of one model; ``engine_profiles``: optimization profiles of a TensorRT plan."""
    kind = options.kind
    # A graph with a static batch is a non-batching model to Triton: dims carry the batch and no
    # dynamic batcher may form other batch sizes.
    batching = signature.static_batch is None
    batch_dim = None if batching else signature.static_batch
    config: dict = {
        "name": name,
        "platform": platform,
        "max_batch_size": signature.max_batch if batching else 0,
        "input": [_tensor(t, batch_dim) for t in signature.inputs],
        "output": [_tensor(t, batch_dim) for t in signature.outputs],
    }
    if batching:
        config["dynamic_batching"] = {
            "preferred_batch_size": list(options.preferred_batch_sizes),
            "max_queue_delay_microseconds": int(options.max_queue_delay_us),
        }
    group: dict = {"count": int(options.instances), "kind": Enum("KIND_GPU" if kind == "gpu" else "KIND_CPU")}
    if kind == "gpu" and options.gpus:
        group["gpus"] = [int(g) for g in options.gpus]
    if platform == TENSORRT_PLATFORM and engine_profiles > 1:
        # Triton uses only profile 0 unless the instance group lists the others; it then picks by input shape.
        group["profile"] = [str(index) for index in range(engine_profiles)]
    config["instance_group"] = [group]
    if options.tensorrt_accelerator:
        config["optimization"] = {
            "execution_accelerators": {
                "gpu_execution_accelerator": [
                    {
                        "name": "tensorrt",
                        "parameters": [{"key": "precision_mode", "value": options.tensorrt_accelerator.upper()}],
                    }
                ]
            }
        }
    if platform == TENSORRT_PLATFORM:
        # Triton's TensorRT backend then replays CUDA graphs of the enqueue, as trtexec (11.0+) times it by
        # default and `vit5 bench -b trt --cuda-graph` measures it.
        config.setdefault("optimization", {})["cuda"] = {"graphs": True}
    if options.warmup:
        config["model_warmup"] = _warmups(signature, batching)
    return config


def _warmups(signature: ModelSignature, batching: bool) -> list:
    """Zero-filled requests Triton runs before it reports the model ready: one at batch 1 and one at
    the largest batch, so the first real requests of either size do not pay for allocation."""
    sizes = sorted({1, signature.max_batch}) if batching else [1]
    warmups = []
    for size in sizes:
        inputs = []
        for spec in signature.inputs:
            dims = [int(d) for d in spec.dims] if batching else [signature.static_batch, *map(int, spec.dims)]
            inputs.append(
                {
                    "key": spec.name,
                    "value": {"data_type": Enum(TRITON_DTYPES[spec.dtype]), "dims": dims, "zero_data": True},
                }
            )
        warmups.append({"name": f"zeros_batch_{size}", "batch_size": size, "inputs": inputs})
    return warmups


def parse_model_config(text: str):
    """``text`` parsed into Triton's ``inference.ModelConfig`` message (from tritonclient);
    RepositoryError naming the first field Triton does not accept."""
    try:
        from google.protobuf import text_format
        from tritonclient.grpc import model_config_pb2
    except ImportError as exc:
        raise ServeUnavailableError(
            f"checking config.pbtxt needs tritonclient ({exc.name}): {SERVE_INSTALL_HINT}"
        ) from None
    message = model_config_pb2.ModelConfig()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        raise RepositoryError(f"config.pbtxt is not a valid Triton ModelConfig: {exc}") from None
    return message


def _check_options(options: RepositoryOptions, platform: str, signature: ModelSignature) -> RepositoryOptions:
    kind = options.kind or ("gpu" if platform == TENSORRT_PLATFORM else "cpu")
    if kind not in INSTANCE_KINDS:
        raise RepositoryError(f"instance kind must be {' or '.join(INSTANCE_KINDS)}, got {kind!r}")
    if platform == TENSORRT_PLATFORM and kind != "gpu":
        raise RepositoryError("a TensorRT engine runs only on GPU instances (KIND_GPU)")
    if options.instances < 1:
        raise RepositoryError(f"instances must be >= 1, got {options.instances}")
    if options.max_queue_delay_us < 0:
        raise RepositoryError(f"max queue delay must be >= 0 microseconds, got {options.max_queue_delay_us}")
    if options.tensorrt_accelerator is not None:
        if platform != ONNX_PLATFORM or kind != "gpu":
            raise RepositoryError(
                "the TensorRT execution accelerator applies to an ONNX model on GPU instances (--kind gpu)"
            )
        if options.tensorrt_accelerator not in ACCELERATOR_PRECISIONS:
            raise RepositoryError(
                f"TensorRT accelerator precision must be {' or '.join(map(str, ACCELERATOR_PRECISIONS))}, "
                f"got {options.tensorrt_accelerator!r}"
            )
    bad = [b for b in options.preferred_batch_sizes if not 1 <= b <= signature.max_batch]
    if bad and signature.static_batch is None:
        raise RepositoryError(f"preferred batch sizes {bad} lie outside 1..{signature.max_batch} (the max batch)")
    from dataclasses import replace

    return replace(options, kind=kind)


def _stage_model_files(source: Path, version_dir: Path) -> tuple[Path, list[Path]]:
    version_dir.mkdir(parents=True)
    if is_engine_path(source):
        target = version_dir / "model.plan"
        shutil.copyfile(source, target)
        copied = [target]
        from vit5_infer.engine_manifest import manifest_path_for

        manifest = manifest_path_for(source)
        if manifest.is_file():  # provenance; Triton ignores it
            shutil.copyfile(manifest, manifest_path_for(target))
            copied.append(manifest_path_for(target))
        return target, copied
    target = version_dir / "model.onnx"
    shutil.copyfile(source, target)
    copied = [target]
    # External weights keep the file name the graph records, relative to model.onnx (checked to
    # stay inside the graph's folder, so the copy stays inside the version folder).
    for data in external_data_paths(source):
        name = data.relative_to(source.parent)
        if not data.is_file():
            raise RepositoryError(f"{source}: its weights file {name} is missing")
        (version_dir / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data, version_dir / name)
        copied.append(version_dir / name)
    return target, copied


def write_model_repository(
    source: PathLike,
    repository: PathLike,
    *,
    name: Optional[str] = None,
    options: Optional[RepositoryOptions] = None,
    precision: str = "fp32",
    opset: int = 23,
    load_options: Optional[LoadOptions] = None,
    force: bool = False,
    progress: Progress = None,
) -> RepositoryResult:
    """Add ``source`` (an ``.onnx`` graph, a TensorRT engine, or a preset/checkpoint exported here
    at ``precision`` and ``opset``) to the model repository ``repository`` as ``<name>/``.  An existing model
    directory is replaced only with ``force``."""
    options = options or RepositoryOptions()
    repository = Path(repository)
    name = model_name(source, name)
    final = repository / name
    check_output_dir(repository, "--output", error=RepositoryError)
    if final.exists() and not force:
        raise RepositoryError(f"{final} already exists; pass --force to replace it")
    _check_not_inside(final, _inputs(source, load_options))
    given = is_engine_path(str(source)) or is_onnx_path(str(source))
    asked = [
        f"--{flag} {value}"
        for flag, value, default in (("precision", precision, "fp32"), ("opset", opset, 23))
        if value != default
    ]
    if given and asked:
        raise RepositoryError(
            f"{', '.join(asked)} only shape{'s' if len(asked) == 1 else ''} a preset or checkpoint "
            f"exported here; {source} is used as it is: leave {'it' if len(asked) == 1 else 'them'} "
            f"out, or give the preset or checkpoint"
        )
    # Folders made here are removed again when the model cannot be written (nothing is left half-way).
    created = [folder for folder in (repository, *repository.parents) if not folder.exists()]
    try:
        repository.mkdir(parents=True, exist_ok=True)
        _remove_stale_scratch(repository)
        return _write_model(source, repository, name, final, options, precision, opset, load_options, progress, force)
    except BaseException as exc:
        for folder in created:  # innermost first; rmdir keeps anything another process put there
            with contextlib.suppress(OSError):
                folder.rmdir()
        if isinstance(exc, OSError) and not isinstance(exc, Vit5Error):
            # disk full, read-only or vanished folder: the environment, not a bug; nothing was published
            reason = exc.strerror or str(exc)
            where = Path(os.fspath(exc.filename)) if exc.filename else None
            if where is None or where.resolve().is_relative_to(repository.resolve()):
                raise RepositoryError(f"cannot write {final}: {reason}") from None
            raise RepositoryError(f"{where}: {reason}") from None
        raise


def _inputs(source, load_options: Optional[LoadOptions]) -> list[Path]:
    """The files this run reads: the source (and an engine's manifest, a graph's external data) and
    a config file given with --config."""
    paths = []
    text = str(source)
    if Path(text).exists():
        paths.append(Path(text))
        if is_engine_path(text):
            from vit5_infer.engine_manifest import manifest_path_for

            paths.append(manifest_path_for(text))
        elif is_onnx_path(text) and Path(text).is_file():
            paths.extend(external_data_paths(text))
    config = getattr(load_options, "config", None)
    if isinstance(config, (str, os.PathLike)) and Path(config).exists():
        paths.append(Path(config))
    return paths


def _check_not_inside(final: Path, inputs: list[Path]) -> None:
    """An input inside the model folder that --force replaces would be deleted by this very run."""
    target = final.resolve()
    for path in inputs:
        resolved = path.resolve()
        if resolved == target or resolved.is_relative_to(target):
            raise RepositoryError(
                f"{path} lies inside {final}, which this run replaces; "
                "copy it elsewhere or choose another --name or --output"
            )


#: Scratch and staging folders carry the pid of the run that made them, so a later run can tell
#: the leftovers of a killed run (SIGKILL cannot be caught) from those of a run still going on.
SCRATCH_PREFIX = ".vit5-export-"
_SCRATCH = re.compile(r"^(?:\.vit5-export-|\..+\.staging-|\..+\.old-)(\d+)(?:-.*)?$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def _remove_stale_scratch(repository: Path) -> None:
    """Remove the scratch folders of runs that died without cleaning up (their pid is gone); stock
    tritonserver would otherwise try to load each as a model."""
    for entry in repository.iterdir():
        match = _SCRATCH.match(entry.name)
        if match and entry.is_dir() and not entry.is_symlink() and not _pid_alive(int(match.group(1))):
            shutil.rmtree(entry, ignore_errors=True)


def _write_model(
    source,
    repository: Path,
    name: str,
    final: Path,
    options: RepositoryOptions,
    precision: str,
    opset: int,
    load_options: Optional[LoadOptions],
    progress: Progress,
    force: bool,
) -> RepositoryResult:
    with tempfile.TemporaryDirectory(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-", dir=repository) as scratch:
        text = str(source)
        if is_engine_path(text):
            path, platform = Path(text), TENSORRT_PLATFORM
            if not path.is_file():
                raise RepositoryError(f"{path}: TensorRT engine not found")
            signature = engine_signature(path, options.max_batch)
        elif is_onnx_path(text):
            path, platform = Path(text), ONNX_PLATFORM
            if not path.is_file():
                raise RepositoryError(f"{path}: ONNX file not found")
            signature = onnx_signature(path, options.max_batch)
        else:
            path, platform = _export(source, Path(scratch), precision, opset, load_options, progress), ONNX_PLATFORM
            signature = onnx_signature(path, options.max_batch)
        options = _check_options(options, platform, signature)
        profiles = 1
        if platform == TENSORRT_PLATFORM:
            from vit5_infer.engine_manifest import read_manifest

            manifest = read_manifest(path)
            profiles = len(manifest.profile_list())
            if (manifest.build_flags or {}).get("version_compatible"):
                # Triton's TensorRT backend allows an engine's embedded host code only in that mode.
                warn_at_caller(
                    f"{path.name} is version-compatible: start tritonserver with "
                    "--backend-config=tensorrt,version-compatible=true or it will not load"
                )
        config_text = to_pbtxt(model_config(name, platform, signature, options, profiles))
        validated = True
        try:
            parsed = parse_model_config(config_text)
        except ServeUnavailableError:
            validated = False  # written all the same; the caller says it was not checked
        else:
            if parsed.name != name or parsed.max_batch_size != (
                signature.max_batch if signature.static_batch is None else 0
            ):
                raise RepositoryError("internal: config.pbtxt does not read back as written")

        stage = Path(tempfile.mkdtemp(prefix=f".{name}.staging-{os.getpid()}-", dir=repository))
        try:
            make_public_dir(stage)
            if progress:
                progress(f"writing {final}")
            model_file, copied = _stage_model_files(path, stage / VERSION)
            (stage / "config.pbtxt").write_text(config_text, encoding="utf-8")
            _publish(stage, final, force)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
    files = [final / "config.pbtxt"] + [final / p.relative_to(stage) for p in copied]
    return RepositoryResult(
        final, final / "config.pbtxt", final / model_file.relative_to(stage), platform, signature, validated, files
    )


def _export(
    source, workdir: Path, precision: str, opset: int, load_options: Optional[LoadOptions], progress: Progress
) -> Path:
    from vit5_infer.loading import load_source  # lazy: loading imports torch

    model, origin = load_source(source, load_options)
    return export_served_graph(model, origin, workdir / "model.onnx", precision, progress, opset=opset)


def _publish(stage: Path, final: Path, force: bool) -> None:
    """Move the staged model directory to ``final``; with ``force`` a replaced one is moved aside
    first and removed only once the new one is in place.  Without ``force`` the move itself is the
    existence check: rename(2) never replaces a folder that has files, so of two runs publishing the
    same model at once the second is refused instead of silently replacing the first."""
    old = None
    if final.exists() and force:
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    try:
        if final.exists() and not force:
            raise RepositoryError(f"{final} already exists; pass --force to replace it")
        os.rename(stage, final)
    except OSError as exc:
        if old is not None:
            os.replace(old, final)
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise RepositoryError(f"{final} already exists; pass --force to replace it") from None
        raise
    except BaseException:
        if old is not None:
            os.replace(old, final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
