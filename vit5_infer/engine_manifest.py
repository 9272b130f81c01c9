"""The manifest written beside every TensorRT engine (``model.engine`` -> ``model.engine.json``).

A serialized TensorRT engine only runs on the TensorRT build and GPU compute capability it was built
with (unless built version- or hardware-compatible), and TensorRT reports a mismatch as an opaque
version-tag failure.  The manifest records what
the engine was built from and with, so that loading can fail early with a message that names the
difference and the exact command that rebuilds the engine.  Pure Python: no TensorRT needed.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import vit5_infer

from .caller_warnings import warn_at_caller
from .checkpoint import file_sha256
from .errors import EngineMismatchError, ManifestError
from .files import read_json, write_text_atomic
from .tensorrt_releases import VERSION_COMPATIBLE_ACROSS_MAJORS, hardware_compatibility_level, tensorrt_version
from .vocabulary import ENGINE_MANIFEST_SUFFIX as MANIFEST_SUFFIX
from .vocabulary import INPUT_NAME, PRECISION_NAMES, PathLike, Precision


def default_opt_batch(low: int, high: int) -> int:
    """The batch a ``MIN-MAX`` profile is tuned for: its upper end.  A range is asked for to serve the
    larger batches a dynamic batcher forms, where the time goes; batch sizes that need kernels tuned
    for themselves get a profile of their own (``1,2-8``) or an explicit ``MIN-OPT-MAX``."""
    return high


MANIFEST_FORMAT = 1
#: The engine inspector's raw layer JSON, saved beside the engine: ``model.engine`` -> ``model.engine.layers.json``.
LAYERS_SUFFIX = ".layers.json"

# Builder defaults; the rebuild command only spells out the flags that differ from them.
DEFAULT_MIN_BATCH, DEFAULT_OPT_BATCH, DEFAULT_MAX_BATCH = 1, 1, 8
DEFAULT_OPTIMIZATION_LEVEL = 3


class EngineTunedElsewhereWarning(UserWarning):
    """The engine loads on this GPU, but TensorRT timed its kernels (tactics) on another GPU model."""


@dataclass
class EngineManifest:
    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "major.minor"
    onnx_path: str
    onnx_sha256: str
    precision: str  # fp32, fp16 or bf16: the types of the graph the engine was built from
    # input name -> {"min": shape, "opt": shape, "max": shape}: the batch range the engine accepts (with
    # several optimization profiles, from the first profile's min to the last one's max)
    profiles: dict = field(default_factory=dict)
    # how the builder was configured: strongly_typed, optimization_level, workspace_gib, timing_cache, ...
    build_flags: dict = field(default_factory=dict)
    engine_file: str = ""
    toolkit_version: str = vit5_infer.__version__
    created_at: str = ""
    # where the model came from (the exporter's metadata), when the ONNX file recorded it
    source: Optional[dict] = None
    attention_fused: Optional[bool] = None
    fused_attention_layers: list = field(default_factory=list)
    # the fusion report: verdict (fused / partly fused / not fused / unknown / no attention), the
    # number of attention blocks of the ONNX graph, and the inspector JSON file it was read from
    attention_verdict: Optional[str] = None
    attention_blocks: Optional[int] = None
    # the whole fusion report (FusionReport.to_dict): per-block findings, the blocks without a fused kernel
    attention_report: Optional[dict] = None
    layers_file: str = ""
    # the outputs of the graph the engine was built from, in order: {"name", "shape"} ("batch" for
    # the dynamic batch); a list because the manifest is written with sorted keys
    outputs: list = field(default_factory=list)
    # every optimization profile in TensorRT's index order, each {input name: {"min", "opt", "max"}}; empty
    # in manifests of one-profile engines written before this field existed (``profiles`` is then profile 0)
    optimization_profiles: list = field(default_factory=list)
    format: int = MANIFEST_FORMAT

    def profile_list(self) -> list:
        """The engine's optimization profiles in index order (one for older manifests)."""
        return list(self.optimization_profiles) or ([self.profiles] if self.profiles else [])

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, origin: str = "manifest") -> EngineManifest:
        if not isinstance(data, dict):
            raise ManifestError(f"{origin}: not a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        required = [
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        missing = [name for name in required if name not in data]
        if missing:
            raise ManifestError(f"{origin}: missing field(s) {', '.join(missing)}")
        for name, value in data.items():
            expected = _FIELD_TYPES.get(name)
            if expected is not None and not (
                isinstance(value, expected) and not (isinstance(value, bool) and bool not in expected)
            ):
                names = " or ".join("null" if t is type(None) else t.__name__ for t in expected)
                raise ManifestError(
                    f"{origin}: field {name!r} must be {names}, got {type(value).__name__} {value!r:.60}"
                )
        # Fields added by newer toolkits are ignored rather than rejected.
        return cls(**{k: v for k, v in data.items() if k in known})


# What each field must hold; a hand-edited manifest with other types is refused in one line, not met later.
_FIELD_TYPES = {
    "tensorrt_version": (str,),
    "gpu_name": (str,),
    "compute_capability": (str,),
    "onnx_path": (str,),
    "onnx_sha256": (str,),
    "precision": (str,),
    "profiles": (dict,),
    "build_flags": (dict,),
    "engine_file": (str,),
    "toolkit_version": (str,),
    "created_at": (str,),
    "source": (dict, type(None)),
    "attention_fused": (bool, type(None)),
    "fused_attention_layers": (list,),
    "format": (int,),
    "optimization_profiles": (list,),
    "attention_report": (dict, type(None)),
}


def manifest_path_for(engine_path: PathLike) -> Path:
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + MANIFEST_SUFFIX)


def layers_path_for(engine_path: PathLike) -> Path:
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + LAYERS_SUFFIX)


def profile_shapes(input_shape: tuple, min_batch: int, opt_batch: int, max_batch: int) -> dict:
    """The optimization profile of ``pixel_values`` for a [C, H, W] input."""
    dims = [int(d) for d in input_shape]
    return {INPUT_NAME: {"min": [min_batch, *dims], "opt": [opt_batch, *dims], "max": [max_batch, *dims]}}


def batch_profiles_shapes(input_shape: tuple, batch_profiles: list) -> list:
    """One profile_shapes entry per (min, opt, max) batch profile, in TensorRT's profile index order."""
    return [profile_shapes(input_shape, *batches) for batches in batch_profiles]


def profile_envelope(profiles: list) -> dict:
    """The batch range several profiles accept together: the first one's min and opt, the last one's max."""
    first, last = profiles[0][INPUT_NAME], profiles[-1][INPUT_NAME]
    return {INPUT_NAME: {"min": first["min"], "opt": first["opt"], "max": last["max"]}}


def create_manifest(
    *,
    onnx_path: PathLike,
    engine_path: PathLike,
    tensorrt_version: str,
    gpu_name: str,
    compute_capability: str,
    precision: str,
    profiles: dict,
    build_flags: dict,
    source: Optional[dict] = None,
    attention_fused: Optional[bool] = None,
    fused_attention_layers: Optional[list] = None,
    onnx_sha256: Optional[str] = None,
    attention_verdict: Optional[str] = None,
    attention_blocks: Optional[int] = None,
    attention_report: Optional[dict] = None,
    layers_file: str = "",
    outputs: Optional[dict] = None,
    optimization_profiles: Optional[list] = None,
) -> EngineManifest:
    """``outputs``: output name -> shape of the graph, in graph order (exporters.graph_outputs)."""
    return EngineManifest(
        tensorrt_version=str(tensorrt_version),
        gpu_name=str(gpu_name),
        compute_capability=str(compute_capability),
        onnx_path=str(onnx_path),
        onnx_sha256=onnx_sha256 or file_sha256(onnx_path),
        precision=precision,
        profiles=profiles,
        build_flags=build_flags,
        engine_file=Path(engine_path).name,
        toolkit_version=vit5_infer.__version__,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        source=source,
        attention_fused=attention_fused,
        fused_attention_layers=list(fused_attention_layers or []),
        attention_verdict=attention_verdict,
        attention_blocks=attention_blocks,
        attention_report=attention_report,
        layers_file=layers_file,
        outputs=[{"name": name, "shape": list(shape)} for name, shape in (outputs or {}).items()],
        optimization_profiles=list(optimization_profiles or []),
    )


def write_manifest(manifest: EngineManifest, engine_path: PathLike) -> Path:
    path = manifest_path_for(engine_path)
    write_text_atomic(path, json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + "\n")
    return path


def read_manifest(engine_path: PathLike) -> EngineManifest:
    """The manifest beside ``engine_path`` (or at ``engine_path`` itself when it is the JSON file)."""
    engine_path = Path(engine_path)
    path = engine_path if engine_path.name.endswith(".engine" + MANIFEST_SUFFIX) else manifest_path_for(engine_path)
    if not path.is_file():
        raise ManifestError(f"{path}: engine manifest not found (engines built by 'vit5 build-engine' have one)")
    data = read_json(path, f"{path}: not a readable JSON manifest", dict, ManifestError)
    return EngineManifest.from_dict(data, origin=str(path))


def find_manifest(engine_path: PathLike) -> Optional[EngineManifest]:
    """Like read_manifest, but None when the engine has no manifest (built by another tool)."""
    if not manifest_path_for(engine_path).is_file():
        return None
    return read_manifest(engine_path)


def rebuild_command(manifest: EngineManifest, engine_path: Optional[PathLike] = None) -> str:
    """The ``vit5 build-engine`` command line that rebuilds this engine on the current machine."""
    engine = str(engine_path) if engine_path is not None else (manifest.engine_file or "model.engine")
    words = ["vit5", "build-engine", manifest.onnx_path, "-o", engine]
    if manifest.precision in PRECISION_NAMES and manifest.precision != Precision.FP32:  # fp32: the default, no flag
        words.append(f"--{manifest.precision}")
    profiles = manifest.profile_list()
    if len(profiles) > 1:
        words += ["--batch-profiles", batch_profiles_text(profiles)]
    else:
        shapes = (profiles[0] if profiles else {}).get(INPUT_NAME) or {}
        batches = {key: (shapes.get(key) or [None])[0] for key in ("min", "opt", "max")}
        defaults = {"min": DEFAULT_MIN_BATCH, "opt": DEFAULT_OPT_BATCH, "max": DEFAULT_MAX_BATCH}
        for key in ("min", "opt", "max"):
            if batches[key] is not None and batches[key] != defaults[key]:
                words += [f"--{key}-batch", str(batches[key])]
    flags = manifest.build_flags or {}
    if flags.get("version_compatible"):
        words.append("--version-compatible")
    if flags.get("hardware_compatibility") not in (None, "none"):
        words += ["--hardware-compatibility", str(flags["hardware_compatibility"])]
    if flags.get("timing_cache"):
        words += ["--timing-cache", str(flags["timing_cache"])]
    if flags.get("workspace_gib"):
        words += ["--workspace", _number(flags["workspace_gib"])]
    level = flags.get("optimization_level")
    if level is not None and level != DEFAULT_OPTIMIZATION_LEVEL:
        words += ["--optimization-level", str(level)]
    return " ".join(shlex.quote(w) for w in words)


def batch_gaps(manifest: EngineManifest) -> list[tuple[int, int]]:
    """The batch ranges (first, last) that lie between the engine's optimization profiles: no profile takes
    them, so a batcher that may form any size up to the largest (Triton's, vit5 serve's) must not serve it."""
    ranges = sorted(_profile_batches(profile, ("min", "max")) for profile in manifest.profile_list())
    gaps, covered = [], None
    for low, high in ranges:
        if covered is not None and low > covered + 1:
            gaps.append((covered + 1, low - 1))
        covered = high if covered is None else max(covered, high)
    return gaps


def gapless_profiles_text(manifest: EngineManifest) -> str:
    """``--batch-profiles`` text that keeps each profile's largest batch and starts it right after the one
    before, so that every batch from the first up is taken."""
    highs = sorted(_profile_batches(profile, ("max",))[0] for profile in manifest.profile_list())
    items, low = [], 1
    for high in highs:
        items.append(str(high) if low == high else f"{low}-{high}")
        low = high + 1
    return ",".join(items)


def batch_profiles_text(profiles: list) -> str:
    """``--batch-profiles`` text of recorded profiles: N, MIN-MAX, or MIN-OPT-MAX where opt is not the default."""
    items = []
    for profile in profiles:
        low, opt, high = _profile_batches(profile, ("min", "opt", "max"))
        if low == high:
            items.append(str(low))
        elif opt == default_opt_batch(low, high):
            items.append(f"{low}-{high}")
        else:
            items.append(f"{low}-{opt}-{high}")
    return ",".join(items)


def _profile_batches(profile: dict, keys: tuple[str, ...]) -> tuple[int, ...]:
    """The batch sizes (``keys``: of "min", "opt", "max") of one recorded profile; 0 for a shape it lacks."""
    shapes = profile.get(INPUT_NAME) or {}
    return tuple(int((shapes.get(key) or [0])[0]) for key in keys)


def _number(value: Any) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _same_gpu_name(a: str, b: str) -> bool:
    return " ".join(a.lower().split()) == " ".join(b.lower().split())


def _tensorrt_build(version: str) -> str:
    """MAJOR.MINOR.PATCH.BUILD of a TensorRT version: what a plan file must match (TensorRT's support
    policies); a pip post release (10.14.1.48.post1) repackages the same build."""
    found = re.match(r"\s*\d+(?:\.\d+)*", str(version))
    return found.group(0).strip() if found else str(version)


def _build_numbers(version: str) -> tuple:
    return tuple(int(part) for part in _tensorrt_build(version).split(".") if part.isdigit())


def _tensorrt_loads(built: str, here: str, version_compatible: bool) -> bool:
    """Whether TensorRT ``here`` deserializes a plan of TensorRT ``built``: the same build only, unless the
    engine is version-compatible (then the same or a newer release of that major, or 10 -> 11)."""
    if _tensorrt_build(built) == _tensorrt_build(here):
        return True
    if not version_compatible:
        return False
    old, new = _build_numbers(built), _build_numbers(here)
    if not old or not new or new < old:
        return False
    return old[0] == new[0] or (old[0], new[0]) in VERSION_COMPATIBLE_ACROSS_MAJORS


def _hardware_level(manifest: EngineManifest) -> str:
    level = (manifest.build_flags or {}).get("hardware_compatibility") or "none"
    return level if hardware_compatibility_level(level) is not None else "none"


def _gpu_runs(manifest: EngineManifest, compute_capability: str) -> bool:
    """Whether the plan's kernels run on a GPU of ``compute_capability``: one of Ampere or newer for an
    ampere+ engine, the building GPU's compute capability otherwise (TensorRT's hardware compatibility)."""
    level = hardware_compatibility_level(_hardware_level(manifest))
    if level is not None and level.name == "ampere+":
        return tensorrt_version(compute_capability) >= level.oldest_gpu
    return str(manifest.compute_capability) == str(compute_capability)


def mismatches(manifest: EngineManifest, trt_version: str, gpu_name: str, compute_capability: str) -> list[str]:
    """Why TensorRT would refuse the engine on this machine (empty: it loads here)."""
    found = []
    flags = manifest.build_flags or {}
    if not _tensorrt_loads(manifest.tensorrt_version, trt_version, bool(flags.get("version_compatible"))):
        why = (
            " (a version-compatible engine runs on the same or a newer TensorRT)"
            if flags.get("version_compatible")
            else ""
        )
        found.append(f"TensorRT {manifest.tensorrt_version} vs {trt_version} here{why}")
    if not _gpu_runs(manifest, compute_capability):
        level = _hardware_level(manifest)
        why = " (an ampere+ engine needs compute capability 8.0 or newer)" if level == "ampere+" else ""
        found.append(
            f"GPU {manifest.gpu_name} (compute capability {manifest.compute_capability}) vs "
            f"{gpu_name} ({compute_capability}) here{why}"
        )
    return found


def tuned_elsewhere(manifest: EngineManifest, gpu_name: str) -> Optional[str]:
    """A note when the engine runs here but its tactics were timed on another GPU model (A100-40GB vs
    A100-80GB, H100 PCIe vs SXM): TensorRT loads it, and its speed may not be this GPU's best."""
    if _same_gpu_name(manifest.gpu_name, gpu_name):
        return None
    return (
        f"{manifest.engine_file or 'the engine'} was built on {manifest.gpu_name}; TensorRT timed its kernels "
        f"there, not on this {gpu_name}: rebuild it here for this GPU's fastest tactics"
    )


def check_compatible(
    manifest: EngineManifest,
    trt_version: str,
    gpu_name: str,
    compute_capability: str,
    *,
    engine_path: Optional[PathLike] = None,
) -> list[str]:
    """EngineMismatchError (one line: what differs, and the rebuild command) where TensorRT would refuse the
    engine; otherwise the notes about it (an EngineTunedElsewhereWarning each), empty on the building machine."""
    found = mismatches(manifest, trt_version, gpu_name, compute_capability)
    if found:
        name = str(engine_path) if engine_path is not None else (manifest.engine_file or "engine")
        raise EngineMismatchError(
            f"{name} was built for another machine ({'; '.join(found)}); "
            f"rebuild it here with: {rebuild_command(manifest, engine_path)}"
        )
    note = tuned_elsewhere(manifest, gpu_name)
    if note is None:
        return []
    warn_at_caller(note, EngineTunedElsewhereWarning)
    return [note]


def source_onnx(engine_path: PathLike) -> Path:
    """The ONNX file an engine was built from (its manifest records it): beside the engine or where
    the manifest says."""
    manifest = read_manifest(engine_path)
    recorded = Path(manifest.onnx_path)
    for candidate in (recorded, Path(engine_path).parent / recorded.name):
        if candidate.is_file():
            return candidate
    raise ManifestError(
        f"{engine_path} was built from {manifest.onnx_path}, which is not found here; "
        "the PyTorch reference is rebuilt from that ONNX file's metadata"
    )
