"""TensorRT as this toolkit uses it: the lazy import, the supported versions, and what a GPU can build.

TensorRT itself is reached through Polygraphy (``polygraphy.mod``'s lazy import, its loaders and its
runner), which tracks the TensorRT 10 -> 11 API changes.  What stays here is ours and pure Python, so
CI checks it without TensorRT: version parsing, the versions we accept, the compute capability each
precision needs, and which TensorRT features a given version has.

TensorRT 10.x: networks are weakly typed unless created with NetworkDefinitionCreationFlag.STRONGLY_TYPED.
TensorRT 11.x: every network is strongly typed (the flag is deprecated and ignored, per the 11.0
release notes / NvInfer.h).  Building from a graph that carries its own FP16/BF16 types with a strongly
typed network therefore gives the same numerics on both.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import re
from collections.abc import Iterator
from types import ModuleType
from typing import Optional, Union

from vit5_infer.engine_manifest import default_opt_batch
from vit5_infer.tensorrt_releases import (  # noqa: F401 - the version parsers re-exported for engines' users
    ALWAYS_STRONGLY_TYPED,
    ATTENTION_LAYER,
    NO_VOLTA,
    SAME_COMPUTE_CAPABILITY_LEVEL,
    VERSION_COMPATIBLE_ACROSS_MAJORS,
    hardware_compatibility_level,
    hardware_compatibility_names,
    has,
    is_supported,
    oldest,
    since,
    supported_majors,
    tensorrt_major,
    tensorrt_release,
    tensorrt_version,
    version_text,
)
from vit5_infer.vocabulary import Precision

from .cuda_device import CudaDevice, cuda_device
from .errors import BackendUnavailableError, EngineBuildError, NoGPUError, TensorRTUnavailableError, first_line

#: Oldest compute capability whose tensor cores run each reduced type (TensorRT support matrix:
#: INT8 Turing 7.5+, BF16 Ampere 8.0+, FP8 Ada 8.9 / Hopper 9.0+).
MINIMUM_COMPUTE_CAPABILITY = {
    Precision.INT8: ((7, 5), "Turing"),
    Precision.BF16: ((8, 0), "Ampere"),
    Precision.FP8: ((8, 9), "Ada or Hopper"),
}


def tensorrt_installed() -> bool:
    """Cheap check (no import): is a ``tensorrt`` package on the path?"""
    try:
        return importlib.util.find_spec("tensorrt") is not None
    except (ImportError, ValueError):
        return False


#: Distributions that install the ``tensorrt`` module (the metapackage, or a CUDA-specific build alone).
TENSORRT_DISTRIBUTIONS = ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu11")


def installed_tensorrt_version() -> Optional[str]:
    """The installed TensorRT's version from its package metadata (no import: TensorRT's libraries are
    large and need CUDA); None when none is installed."""
    from importlib import metadata

    for dist in TENSORRT_DISTRIBUTIONS:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def tensorrt_cuda_runtime(device_index: int = 0):
    """Polygraphy's CUDA wrapper on the libcudart that matches the installed TensorRT, on GPU ``device_index``
    (Polygraphy's streams and buffers live on the runtime's current device); a BackendUnavailableError in one
    line naming the package to install when no runtime loads or it cannot use that GPU."""
    from polygraphy.exception import PolygraphyException

    from .cuda_runtime import cudart_hint, polygraphy_cuda

    cuda_major = tensorrt_cuda_major()
    try:
        wrapper = polygraphy_cuda(cuda_major)
        wrapper.check(wrapper.handle.cudaSetDevice(device_index))
    except (PolygraphyException, OSError) as exc:
        reason = first_line(exc)
        raise BackendUnavailableError(
            f"the CUDA runtime (libcudart) cannot use GPU {device_index} ({reason}); {cudart_hint(cuda_major)}"
        ) from None
    return wrapper


def tensorrt_cuda_major() -> Optional[int]:
    """The CUDA major the installed TensorRT wheels were built for (``tensorrt-cu13`` -> 13), from package
    metadata; None when no CUDA-specific TensorRT distribution is installed (a tarball or container install)."""
    from importlib import metadata

    for dist in TENSORRT_DISTRIBUTIONS:
        found = re.fullmatch(r"tensorrt-cu(\d+)", dist)
        if not found:
            continue
        try:
            metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
        return int(found.group(1))
    return None


def import_tensorrt() -> ModuleType:
    """TensorRT as Polygraphy imports it, or a one-line TensorRTUnavailableError saying how to install it."""
    from polygraphy import config as polygraphy_config

    if polygraphy_config.USE_TENSORRT_RTX:
        # Polygraphy would load tensorrt_rtx, a different product with other versions and flags.
        raise BackendUnavailableError(
            "POLYGRAPHY_USE_TENSORRT_RTX is set, but vit5-infer builds with TensorRT, not TensorRT-RTX: unset it"
        )
    if not tensorrt_installed():
        raise TensorRTUnavailableError()
    from polygraphy.exception import PolygraphyException
    from polygraphy.logger import G_LOGGER
    from polygraphy.mod.trt_importer import lazy_import_trt

    trt = lazy_import_trt()
    try:
        with G_LOGGER.verbosity(G_LOGGER.CRITICAL + 1):
            version = str(trt.__version__)  # the first attribute access imports the module
    except (PolygraphyException, ImportError, OSError) as exc:
        # A present package whose native libraries fail to load is reported with the loader's reason.
        raise TensorRTUnavailableError(_import_failure(str(exc))) from None
    if not is_supported(tensorrt_version(version)):
        raise TensorRTUnavailableError(
            f"found TensorRT {version}; vit5-infer supports TensorRT {version_text(oldest())} "
            f"to {supported_majors()[-1]}.x"
        )
    return trt


def _import_failure(message: str) -> str:
    """The loader's own reason out of Polygraphy's multi-line import message."""
    found = re.search(r"Error was: (.*)", message)
    return (
        found.group(1) if found else message.strip().splitlines()[0] if message.strip() else "import failed"
    ).strip()


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _Collect(logging.Handler):
    def __init__(self, into: list):
        super().__init__(logging.ERROR)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record.getMessage())


@contextlib.contextmanager
def tensorrt_log(verbose: bool = False) -> Iterator[list]:
    """Polygraphy's log, with TensorRT's through it: shown in full when ``verbose``; otherwise hidden, its
    errors kept (the list yielded) so a failure's one-line message can say what TensorRT reported instead
    of Polygraphy's generic "Invalid Engine"."""
    from polygraphy.logger import G_LOGGER

    errors: list = []
    if verbose:
        with G_LOGGER.verbosity(G_LOGGER.EXTRA_VERBOSE):
            yield errors
        return
    python_logger = logging.getLogger("Polygraphy")
    saved = (G_LOGGER.use_python_logging_system, G_LOGGER.colors, python_logger.propagate)
    handler = _Collect(errors)
    G_LOGGER.use_python_logging_system = True
    G_LOGGER.colors = False  # else Polygraphy prints a note about the 'colored' module
    python_logger.propagate = False
    python_logger.addHandler(handler)
    try:
        with G_LOGGER.verbosity(G_LOGGER.ERROR):
            yield errors
    finally:
        python_logger.removeHandler(handler)
        G_LOGGER.use_python_logging_system, G_LOGGER.colors, python_logger.propagate = saved


def reported_error(errors: list, fallback: str) -> str:
    """The last error TensorRT logged before the failure, as one line (TensorRT ends a failed build with
    a summary such as "IBuilder::buildSerializedNetwork: Error Code 4: ..."; earlier errors may be ones
    the build recovered from, like a refused timing cache); ``fallback`` when it logged none.  Polygraphy's
    own closing message ("[!] Invalid Engine ...") says less and is skipped."""
    for message in reversed(errors):
        text = _ANSI.sub("", str(message)).strip()
        if text.startswith("[!]"):
            continue
        text = re.sub(r"^\[[A-Z]\]\s*", "", text)
        if text:
            line = " ".join(text.split())
            return line if len(line) <= 300 else line[:297] + "..."
    return fallback


@contextlib.contextmanager
def cuda_initialized(version: str, what: str) -> Iterator[None]:
    """TensorRT's Builder and Runtime constructors raise ``TypeError: pybind11::init(): factory function
    returned nullptr`` when TensorRT cannot initialize CUDA (it logs "CUDA initialization failure with
    error N"; NVIDIA/TensorRT#2913): typically a TensorRT built for a newer CUDA than the driver runs.
    That becomes one BackendUnavailableError line; every other TypeError is left alone."""
    try:
        yield
    except TypeError as exc:
        if "returned nullptr" not in str(exc):
            raise
        raise BackendUnavailableError(
            f"TensorRT {version} could not initialize CUDA for {what}: the NVIDIA driver may be older than the "
            "CUDA this TensorRT was built for (TensorRT for CUDA 13 needs driver r580 or newer; pip install the "
            "tensorrt-cu12 wheels for an older driver), or no GPU is visible to CUDA"
        ) from None


def needs_strongly_typed_flag(version: str) -> bool:
    """Whether the network must be created with STRONGLY_TYPED (10.x) or is always strongly typed (11.x)."""
    return not has(tensorrt_version(version), ALWAYS_STRONGLY_TYPED)


def has_attention_layers(version: str) -> bool:
    """Whether this TensorRT has IAttention layers (that can be made decomposable)."""
    return has(tensorrt_version(version), ATTENTION_LAYER)


def require_gpu(what: str, device: int = 0) -> CudaDevice:
    """The GPU TensorRT will use; NoGPUError when there is none."""
    found = cuda_device(device)
    if found is None:
        raise NoGPUError(what, "no CUDA device found" if device == 0 else f"no CUDA device {device}")
    return found


def minimum_compute_capability(version: str) -> tuple[int, int]:
    """The oldest GPU (compute capability) TensorRT ``version`` runs on."""
    return (7, 5) if has(tensorrt_version(version), NO_VOLTA) else (7, 0)


def check_gpu_supported(version: str, device: CudaDevice) -> None:
    """BackendUnavailableError (one line) when TensorRT ``version`` does not run on ``device`` at all;
    TensorRT itself would only fail later, inside the builder or the runtime."""
    needed = minimum_compute_capability(version)
    if tensorrt_version(device.compute_capability) >= needed:
        return
    last_volta = (since(NO_VOLTA)[0], since(NO_VOLTA)[1] - 1)
    older = ""
    if needed > (7, 0):
        older = f" (TensorRT {version_text(oldest())} to {version_text(last_volta)} still run on Volta)"
    raise BackendUnavailableError(
        f"TensorRT {version} does not run on {device.name} (compute capability {device.compute_capability}); it "
        f"needs compute capability {needed[0]}.{needed[1]} or newer{older}"
    )


def check_precision_supported(precision: Union[str, Precision], device: CudaDevice) -> None:
    """EngineBuildError (one line) when ``device`` has no tensor cores for a graph of ``precision``."""
    try:
        wanted = Precision.parse(precision)
    except ValueError as exc:
        raise EngineBuildError(str(exc)) from None
    if wanted not in MINIMUM_COMPUTE_CAPABILITY:
        return
    (major, minor), family = MINIMUM_COMPUTE_CAPABILITY[wanted]
    have = tensorrt_version(device.compute_capability)
    if have < (major, minor):
        fallback = "fp16" if have >= (7, 0) else "fp32"
        raise EngineBuildError(
            f"{wanted} engines need a GPU of compute capability {major}.{minor} or newer ({family}); "
            f"{device.name} is {device.compute_capability}: build an {fallback} engine instead"
        )


def check_hardware_compatibility(
    level: Optional[str], version: Optional[str] = None, device: Optional[CudaDevice] = None
) -> Optional[str]:
    """The ``--hardware-compatibility`` level, checked: known (one-line EngineBuildError naming the levels
    otherwise), present in TensorRT ``version`` and buildable on ``device`` when those are given.
    None and "none" are the default (an engine for the building GPU's compute capability)."""
    if level is None:
        return None
    name = str(level).strip().lower()
    found = hardware_compatibility_level(name)
    if found is None:
        raise EngineBuildError(
            f"--hardware-compatibility must be one of {', '.join(hardware_compatibility_names())} (got {level!r})"
        )
    if version is not None and tensorrt_version(version) < found.since:
        raise EngineBuildError(
            f"--hardware-compatibility {name} needs TensorRT {version_text(found.since)} or newer; "
            f"this is TensorRT {version}"
        )
    if device is not None and tensorrt_version(device.compute_capability) < found.oldest_gpu:
        raise EngineBuildError(
            f"--hardware-compatibility {name} engines are built on a GPU of compute capability "
            f"{version_text(found.oldest_gpu)} or newer; {device.name} is {device.compute_capability}"
        )
    return name


def hardware_compatibility_member(trt: ModuleType, level: Optional[str]):
    """The trt.HardwareCompatibilityLevel member for a checked level (None: leave TensorRT's default)."""
    if level is None or level == "none":
        return None
    found = hardware_compatibility_level(level)
    if found is None:
        raise EngineBuildError(
            f"unknown hardware compatibility level {level!r}; check it with check_hardware_compatibility"
        )
    member = found.member
    if not hasattr(trt.HardwareCompatibilityLevel, member):
        raise EngineBuildError(f"TensorRT {trt.__version__} has no hardware compatibility level {member}")
    return getattr(trt.HardwareCompatibilityLevel, member)


#: The largest batch an engine profile may name: TensorRT's dimensions are int32 in its shape tensors.
MAX_PROFILE_BATCH = 2**31 - 1


def parse_batch_profiles(text: str) -> list:
    """``--batch-profiles 1,2-8,16-64`` -> [(1, 1, 1), (2, 8, 8), (16, 64, 64)]: (min, opt, max) per
    optimization profile.  Each item is N, MIN-MAX or MIN-OPT-MAX; the ranges must ascend without
    overlapping.  One-line EngineBuildError otherwise."""
    profiles: list = []
    for item in str(text).split(","):
        parts = item.strip().split("-")
        try:
            numbers = [int(p) for p in parts]
        except ValueError:
            numbers = []
        canonical = all(str(n) == p.strip() for n, p in zip(numbers, parts))
        if not item.strip() or len(numbers) not in (1, 2, 3) or not canonical:
            raise EngineBuildError(
                f"--batch-profiles takes comma-separated N, MIN-MAX or MIN-OPT-MAX batch sizes (e.g. 1,2-8,16-64), "
                f"got {item.strip()!r} in {text!r}"
            )
        low, high = numbers[0], numbers[-1]
        opt = numbers[1] if len(numbers) == 3 else default_opt_batch(low, high)
        if not 1 <= low <= opt <= high <= MAX_PROFILE_BATCH:
            raise EngineBuildError(
                f"--batch-profiles: {item.strip()!r} must satisfy 1 <= MIN <= OPT <= MAX <= {MAX_PROFILE_BATCH}"
            )
        if profiles and low <= profiles[-1][2]:
            raise EngineBuildError(
                f"--batch-profiles: {item.strip()!r} overlaps or precedes {profiles[-1][0]}-{profiles[-1][2]}; give "
                "the ranges in ascending order without overlap"
            )
        profiles.append((low, opt, high))
    return profiles
