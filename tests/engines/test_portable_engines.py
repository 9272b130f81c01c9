"""Where a TensorRT engine loads: the manifest's check refuses only what TensorRT itself refuses (another
compute capability, another TensorRT build), honouring version-compatible and hardware-compatible engines,
and warns where the GPU model differs; the --hardware-compatibility levels per TensorRT release.

Pure Python: the rules come from TensorRT's documentation (engine compatibility, the support matrix's
portability notes) and the bindings' enum (python/src/infer/pyCore.cpp per release tag); no GPU proves them."""

from __future__ import annotations

import types
import warnings

import pytest

from vit5_infer.engine_manifest import (
    EngineTunedElsewhereWarning,
    check_compatible,
    create_manifest,
    mismatches,
    profile_shapes,
    rebuild_command,
)
from vit5_infer.engines.cuda_device import CudaDevice
from vit5_infer.engines.errors import EngineBuildError, EngineMismatchError
from vit5_infer.engines.tensorrt_support import check_hardware_compatibility, hardware_compatibility_member

H100 = ("NVIDIA H100 80GB HBM3", "9.0")


def _manifest(tmp_path, version="10.14.1.48", gpu=H100, **flags):
    onnx_path = tmp_path / "model.onnx"
    onnx_path.write_bytes(b"hashed only")
    return create_manifest(
        onnx_path=onnx_path,
        engine_path=tmp_path / "model.engine",
        tensorrt_version=version,
        gpu_name=gpu[0],
        compute_capability=gpu[1],
        precision="fp16",
        profiles=profile_shapes((3, 32, 32), 1, 1, 8),
        build_flags=dict(flags),
    )


@pytest.mark.parametrize(
    "here, loads",
    [
        ("10.14.1.48", True),
        ("10.14.1.48.post1", True),
        ("10.14.1.49", False),
        ("10.16.1.11", False),
        ("10.13.3.9", False),
        ("11.1.0.12", False),
    ],
)
def test_a_plain_engine_loads_on_its_own_tensorrt_build_only(tmp_path, here, loads):
    assert (mismatches(_manifest(tmp_path), here, *H100) == []) is loads


@pytest.mark.parametrize(
    "here, loads",
    [
        ("10.14.1.48", True),
        ("10.14.1.49", True),
        ("10.16.1.11", True),
        ("11.1.0.12", True),  # same or newer; 10 -> 11
        ("10.13.3.9", False),
        ("10.14.0.1", False),  # older
    ],
)
def test_a_version_compatible_engine_loads_on_newer_tensorrt(tmp_path, here, loads):
    manifest = _manifest(tmp_path, version_compatible=True)
    found = mismatches(manifest, here, *H100)
    assert (found == []) is loads
    if not loads:
        assert "a version-compatible engine runs on the same or a newer TensorRT" in found[0]


def test_version_compatibility_does_not_cross_from_11_to_a_later_major(tmp_path):
    manifest = _manifest(tmp_path, version="11.1.0.12", version_compatible=True)
    assert mismatches(manifest, "11.4.1.5", *H100) == []
    assert mismatches(manifest, "12.0.0.1", *H100) != []


@pytest.mark.parametrize(
    "level, gpu, loads",
    [
        ("none", ("NVIDIA A100-SXM4-80GB", "8.0"), False),
        ("ampere+", ("NVIDIA A100-SXM4-80GB", "8.0"), True),
        ("ampere+", ("NVIDIA L4", "8.9"), True),
        ("ampere+", ("NVIDIA B200", "10.0"), True),
        ("ampere+", ("Tesla T4", "7.5"), False),
        ("same-compute-capability", ("NVIDIA H100 PCIe", "9.0"), True),
        ("same-compute-capability", ("NVIDIA L4", "8.9"), False),
    ],
)
def test_hardware_compatibility_levels_decide_the_gpus(tmp_path, level, gpu, loads):
    manifest = _manifest(tmp_path, hardware_compatibility=level)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EngineTunedElsewhereWarning)
        if loads:
            check_compatible(manifest, "10.14.1.48", *gpu)
            return
        with pytest.raises(EngineMismatchError) as info:
            check_compatible(manifest, "10.14.1.48", *gpu)
    message = str(info.value)
    assert "\n" not in message and f"vs {gpu[0]} ({gpu[1]}) here" in message
    assert ("needs compute capability 8.0 or newer" in message) == (level == "ampere+")


def test_an_old_manifest_without_portability_flags_is_strict(tmp_path):
    manifest = _manifest(tmp_path)
    assert "version_compatible" not in manifest.build_flags
    assert len(mismatches(manifest, "10.16.1.11", "NVIDIA A100-SXM4-80GB", "8.0")) == 2


def test_the_rebuild_command_keeps_portability(tmp_path):
    manifest = _manifest(tmp_path, version_compatible=True, hardware_compatibility="ampere+")
    assert rebuild_command(manifest, "m.engine").endswith(" --version-compatible --hardware-compatibility ampere+")
    plain = _manifest(tmp_path, version_compatible=False, hardware_compatibility="none")
    assert "compatib" not in rebuild_command(plain, "m.engine")


# ---- --hardware-compatibility ---------------------------------------------------------------------------
T4, V100 = CudaDevice(0, "Tesla T4", "7.5"), CudaDevice(0, "Tesla V100", "7.0")
A100 = CudaDevice(0, "NVIDIA A100", "8.0")


def test_levels_are_known_names():
    assert check_hardware_compatibility(None) is None
    assert check_hardware_compatibility("Ampere+") == "ampere+"
    with pytest.raises(
        EngineBuildError,
        match="--hardware-compatibility must be one of none, ampere\\+, same-compute-capability \\(got 'turing\\+'\\)",
    ):
        check_hardware_compatibility("turing+")


@pytest.mark.parametrize(
    "level, version, device, problem",
    [
        ("ampere+", "10.0.1.6", A100, None),
        ("ampere+", "11.1.0.12", T4, "built on a GPU of compute capability 8.0 or newer; Tesla T4 is 7.5"),
        ("same-compute-capability", "10.9.0.34", T4, None),
        ("same-compute-capability", "10.8.0.43", A100, "needs TensorRT 10.9 or newer; this is TensorRT 10.8.0.43"),
        ("same-compute-capability", "10.4.0.26", V100, "needs TensorRT 10.9 or newer"),
        ("none", "10.0.1.6", V100, None),
    ],
)
def test_levels_per_release_and_building_gpu(level, version, device, problem):
    if problem is None:
        assert check_hardware_compatibility(level, version, device) == level
        return
    with pytest.raises(EngineBuildError, match=problem) as info:
        check_hardware_compatibility(level, version, device)
    assert "\n" not in str(info.value)


def _bindings(version, *members):
    """Stand-in for the tensorrt module's HardwareCompatibilityLevel enum as the bindings of ``version``
    define it (pybind11 enum members as attributes); it proves the lookup, not what TensorRT does with it."""
    levels = types.SimpleNamespace(**{name: f"HardwareCompatibilityLevel.{name}" for name in members})
    return types.SimpleNamespace(__version__=version, HardwareCompatibilityLevel=levels)


def test_the_level_is_the_bindings_enum_member():
    trt = _bindings("10.16.1.11", "NONE", "AMPERE_PLUS", "SAME_COMPUTE_CAPABILITY")
    assert hardware_compatibility_member(trt, "ampere+") == "HardwareCompatibilityLevel.AMPERE_PLUS"
    assert hardware_compatibility_member(trt, "same-compute-capability").endswith("SAME_COMPUTE_CAPABILITY")
    assert hardware_compatibility_member(trt, "none") is None and hardware_compatibility_member(trt, None) is None
    with pytest.raises(EngineBuildError, match="TensorRT 10.8.0.43 has no hardware compatibility level SAME_COMPUTE"):
        hardware_compatibility_member(_bindings("10.8.0.43", "NONE", "AMPERE_PLUS"), "same-compute-capability")
