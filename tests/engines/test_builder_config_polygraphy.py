"""The builder configuration of build-engine, made by Polygraphy 0.53's real CreateConfig code.

What TensorRT's C++ library would create is replaced by stand-ins: the ``tensorrt`` module's enums and the
Builder / INetworkDefinition / IBuilderConfig / IOptimizationProfile objects.  Each stand-in has the method
names, arguments and return types of the bindings (python/src/infer/pyCore.cpp at the v10.0.0, v10.16 and
v11.1 tags: ``set_shape(input, min, opt, max)``, ``__bool__`` = isValid, ``add_optimization_profile(profile)
-> int``, ``set_flag(flag)``, ``set_memory_pool_limit(pool, pool_size)``, ``create_timing_cache(
serialized_timing_cache)``, ``set_timing_cache(cache, ignore_mismatch) -> bool``, the ``profiling_verbosity``,
``builder_optimization_level`` and ``hardware_compatibility_level`` properties, BuilderFlag.TF32 and
.VERSION_COMPATIBLE, HardwareCompatibilityLevel.NONE/.AMPERE_PLUS/.SAME_COMPUTE_CAPABILITY).
These tests prove the calls are well-formed and reach the config as asked; they prove nothing about the
engine TensorRT would build from it (that needs a GPU).
"""

from __future__ import annotations

import sys
import types

import pytest

from vit5_infer.engines.tensorrt_builder import create_config
from vit5_infer.engines.tensorrt_support import parse_batch_profiles


def _enum(name, *members):
    return types.SimpleNamespace(**{member: f"{name}.{member}" for member in members})


def _tensorrt(version):
    """The tensorrt module's names that CreateConfig reads, as the bindings of ``version`` define them."""
    module = types.ModuleType("tensorrt")
    module.__version__ = version
    flags = ["TF32", "VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME", "REFIT", "STRIP_PLAN", "SPARSE_WEIGHTS"]
    if version.startswith("10."):  # removed in 11.x
        flags += [
            "FP16",
            "BF16",
            "INT8",
            "FP8",
            "PREFER_PRECISION_CONSTRAINTS",
            "OBEY_PRECISION_CONSTRAINTS",
            "DIRECT_IO",
        ]
    module.BuilderFlag = _enum("BuilderFlag", *flags)
    module.HardwareCompatibilityLevel = _enum(
        "HardwareCompatibilityLevel", "NONE", "AMPERE_PLUS", "SAME_COMPUTE_CAPABILITY"
    )
    module.ProfilingVerbosity = _enum("ProfilingVerbosity", "LAYER_NAMES_ONLY", "DETAILED", "NONE")
    module.MemoryPoolType = _enum("MemoryPoolType", "WORKSPACE", "TACTIC_SHARED_MEMORY")
    module.LayerType = _enum("LayerType", "SHAPE", "QUANTIZE", "DEQUANTIZE")
    return module


class OptimizationProfile:
    """trt.IOptimizationProfile."""

    def __init__(self):
        self.shapes = {}

    def set_shape(self, input, min, opt, max):  # noqa: A002 - the bindings' argument names
        self.shapes[input] = (tuple(min), tuple(opt), tuple(max))

    def __bool__(self):  # isValid
        return bool(self.shapes)


class TimingCache:
    """trt.ITimingCache."""


class BuilderConfig:
    """trt.IBuilderConfig."""

    def __init__(self, none_level):
        self.flags, self.profiles, self.pools = set(), [], {}
        self.profiling_verbosity = None
        self.builder_optimization_level = 3
        self.hardware_compatibility_level = none_level
        self.timing_cache = None

    def set_flag(self, flag):
        self.flags.add(flag)

    def clear_flag(self, flag):
        self.flags.discard(flag)

    def add_optimization_profile(self, profile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def set_memory_pool_limit(self, pool, pool_size):
        self.pools[pool] = pool_size

    def create_timing_cache(self, serialized_timing_cache) -> TimingCache:
        return TimingCache()

    def set_timing_cache(self, cache, ignore_mismatch) -> bool:
        self.timing_cache = cache
        return True


class Builder:
    """trt.Builder."""

    def __init__(self, trt):
        self.trt = trt

    def create_builder_config(self) -> BuilderConfig:
        return BuilderConfig(self.trt.HardwareCompatibilityLevel.NONE)

    def create_optimization_profile(self) -> OptimizationProfile:
        return OptimizationProfile()


class Tensor:
    """trt.ITensor: a network input."""

    def __init__(self, name, shape):
        self.name, self.shape, self.dtype, self.is_shape_tensor = name, shape, "DataType.FLOAT", False


class Network:
    """trt.INetworkDefinition of a parsed graph with one dynamic-batch input (its layers are not needed)."""

    def __init__(self):
        self.inputs = [Tensor("pixel_values", (-1, 3, 32, 32))]

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    def get_input(self, index) -> Tensor:
        return self.inputs[index]

    def __iter__(self):
        return iter([])


@pytest.fixture(params=["10.16.1.11", "11.1.0.12"])
def trt(request, monkeypatch):
    """The stand-in module where ``import tensorrt`` finds it; Polygraphy's lazy modules forget it afterwards."""
    import polygraphy.backend.trt.config as config_module
    import polygraphy.backend.trt.profile as profile_module
    import polygraphy.backend.trt.util as util_module

    module = _tensorrt(request.param)
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    lazies = [m.trt for m in (config_module, profile_module, util_module) if hasattr(m, "trt")]
    for lazy in lazies:
        object.__setattr__(lazy, "module", None)
    yield module
    for lazy in lazies:
        object.__setattr__(lazy, "module", None)


def test_every_batch_profile_becomes_an_optimization_profile(trt):
    loader = create_config(trt, parse_batch_profiles("1,2-8,16-64"), (3, 32, 32), 2.0, 4)
    config = loader(Builder(trt), Network())
    assert [p.shapes for p in config.profiles] == [
        {"pixel_values": ((1, 3, 32, 32), (1, 3, 32, 32), (1, 3, 32, 32))},
        {"pixel_values": ((2, 3, 32, 32), (8, 3, 32, 32), (8, 3, 32, 32))},
        {"pixel_values": ((16, 3, 32, 32), (64, 3, 32, 32), (64, 3, 32, 32))},
    ]
    assert config.pools == {"MemoryPoolType.WORKSPACE": 2 << 30}
    assert config.builder_optimization_level == 4
    assert config.profiling_verbosity == "ProfilingVerbosity.DETAILED"
    assert "BuilderFlag.TF32" in config.flags
    assert "BuilderFlag.VERSION_COMPATIBLE" not in config.flags
    assert config.hardware_compatibility_level == "HardwareCompatibilityLevel.NONE"


@pytest.mark.parametrize(
    "level, member",
    [
        ("ampere+", "AMPERE_PLUS"),
        ("none", "NONE"),
        (None, "NONE"),
        ("same-compute-capability", "SAME_COMPUTE_CAPABILITY"),
    ],
)
def test_portable_engines_set_the_flag_and_the_level(trt, level, member):
    config = create_config(trt, [(1, 1, 8)], (3, 32, 32), None, 3, (True, level))(Builder(trt), Network())
    assert "BuilderFlag.VERSION_COMPATIBLE" in config.flags
    assert "BuilderFlag.EXCLUDE_LEAN_RUNTIME" not in config.flags  # the lean runtime travels in the plan
    assert config.hardware_compatibility_level == f"HardwareCompatibilityLevel.{member}"
    assert config.pools == {}
