"""TensorRTRunner through Polygraphy's real TrtRunner/BaseRunner/EngineFromBytes and its CUDA wrapper, with
stand-ins (tests/engines/trt_standins.py) only for what TensorRT's C++ library and libcudart would create.

These tests prove that every call reaching TensorRT or the CUDA runtime is well formed (names, arguments and
return types as the TensorRT 10.x/11.x bindings and cuda_runtime_api.h declare them) and that data goes in
and comes out through Polygraphy's copies; they prove nothing about what a GPU computes (the stand-in
"engine" writes a made-up function of its input).  tests/engines/test_tensorrt_gpu.py covers that on a GPU."""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest
import trt_standins
from trt_standins import (
    CUDART_SIGNATURES,
    TENSORRT_CALLBACKS,
    TENSORRT_SIGNATURES,
    DataType,
    FakeCudart,
    FakeEngine,
    engine_file,
    install,
    standin_members,
)

from vit5_infer.engines.errors import BackendError
from vit5_infer.engines.tensorrt_runner import TensorRTRunner
from vit5_infer.errors import InputError

VERSIONS = ["10.8.0", "11.1.0"]


# ---- the stand-ins themselves match the bindings' signatures ----------------------------------------------
@pytest.mark.parametrize("key, member", list(standin_members()), ids=[k for k, _ in standin_members()])
def test_standin_matches_the_binding_signature(key, member):
    expected_args, expected_return, _where = TENSORRT_SIGNATURES[key]
    if expected_args == "property":
        assert isinstance(member, property), f"{key} is a property in the bindings"
        assert inspect.signature(member.fget).return_annotation == expected_return
        return
    signature = inspect.signature(member)
    names = tuple(p for p in signature.parameters if p != "self")
    assert names == expected_args, f"{key}{names}: the bindings take {expected_args}"
    assert _same_type(signature.return_annotation, expected_return), key


def _same_type(annotation: str, bindings: str) -> bool:
    """``list[Dims]`` and the bindings' pybind11 spelling ``List[Dims]`` name the same type."""
    return re.sub(r"\bList\[", "list[", annotation) == re.sub(r"\bList\[", "list[", bindings)


def test_the_tensorrt_module_offers_only_listed_names():
    module = trt_standins.tensorrt_module("10.8.0")
    classes = {key.partition(".")[0] for key in [*TENSORRT_SIGNATURES, *TENSORRT_CALLBACKS]}
    public = {name for name in vars(module) if not name.startswith("_")}
    enums_and_aliases = {
        "DataType",
        "TensorIOMode",
        "TensorFormat",
        "ExecutionContextAllocationStrategy",
        "Dims",
        "IDebugListener",
        "ILogger",
        "Logger",
        "float32",
        "float16",
        "bfloat16",
        "int8",
        "int32",
    }
    assert public <= classes | enums_and_aliases


def test_output_allocator_callbacks_are_made_as_the_trampoline_makes_them():
    """Polygraphy's OutputAllocator must accept the positional arguments PyOutputAllocator passes."""
    from polygraphy.backend.trt.runner import _make_output_allocator

    install_patch = pytest.MonkeyPatch()
    try:
        install(install_patch)
        allocator = _make_output_allocator()
        for key, args in TENSORRT_CALLBACKS.items():
            params = [p for p in inspect.signature(getattr(allocator, key.partition(".")[2])).parameters]
            assert len(params) == len(args), key
    finally:
        install_patch.undo()


def test_fake_cudart_refuses_a_malformed_call():
    import ctypes

    cudart = FakeCudart()
    with pytest.raises(TypeError, match="cudaMemcpyAsync: 4 arguments"):
        cudart.cudaMemcpyAsync(ctypes.c_void_p(1), ctypes.c_void_p(2), ctypes.c_size_t(1), ctypes.c_int(1))
    with pytest.raises(TypeError, match="argument 1 is int"):
        cudart.cudaEventElapsedTime(ctypes.byref(ctypes.c_float()), 1, 2)
    with pytest.raises(AttributeError, match="no cudaGraphInstantiate "):
        _ = cudart.cudaGraphInstantiate
    assert set(CUDART_SIGNATURES) >= {"cudaMalloc", "cudaMemcpyAsync", "cudaStreamCreate"}


# ---- the runner through Polygraphy -------------------------------------------------------------------------
def _pixels(batch: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 3, 4, 4)).astype(np.float32)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("dtype, atol", [(DataType.FLOAT, 1e-6), (DataType.HALF, 2e-3), (DataType.BF16, 2e-2)])
def test_runner_feeds_the_engine_its_input_type_and_returns_float32(monkeypatch, tmp_path, version, dtype, atol):
    """The input goes in as the engine's type (FP32, FP16, BF16) and every output comes back as float32 by name.
    Fails where the runner takes NumPy dtypes from get_input_metadata() (torch cannot convert to them; BF16
    has none)."""
    cudart = install(monkeypatch, version)
    engine = FakeEngine(cudart, input_dtype=dtype, output_dtype=dtype)
    pixels = _pixels(2)
    with TensorRTRunner(engine_file(tmp_path, "m", engine)) as runner:
        outputs = runner.run(pixels)
        logits = runner.infer(pixels[:1])
    assert list(outputs) == ["logits"] and outputs["logits"].dtype == np.float32
    np.testing.assert_allclose(outputs["logits"][:, 0], pixels.reshape(2, -1).mean(axis=1), atol=atol)
    np.testing.assert_allclose(logits[:, 0], pixels[:1].reshape(1, -1).mean(axis=1), atol=atol)
    assert not cudart.streams, "the runner's stream outlived release()"


def test_runner_keeps_the_one_profile_of_a_single_profile_engine(monkeypatch, tmp_path):
    cudart = install(monkeypatch)
    engine = FakeEngine(cudart, profiles=[(1, 4, 8)])
    with TensorRTRunner(engine_file(tmp_path, "one", engine)) as runner:
        assert runner.profile_ranges == [(1, 8)] and runner.batch_range == (1, 8)
        for batch in (1, 8, 3):
            assert runner.run(_pixels(batch))["logits"].shape == (batch, 2)
        with pytest.raises(InputError, match="one.engine accepts batch 1..8, got 9"):
            runner.run(_pixels(9))
    assert engine.contexts[0].profile_calls == []  # never switched


@pytest.mark.parametrize("version", VERSIONS)
def test_runner_picks_the_profile_that_holds_the_batch(monkeypatch, tmp_path, version):
    """Profiles read from the engine (num_optimization_profiles, get_tensor_profile_shape per profile), the
    one that holds the batch set with set_optimization_profile_async on the runner's stream, only when it
    changes."""
    cudart = install(monkeypatch, version)
    engine = FakeEngine(cudart, profiles=[(1, 1, 1), (2, 4, 8), (16, 32, 64)])
    with TensorRTRunner(engine_file(tmp_path, "multi", engine)) as runner:
        assert runner.profile_ranges == [(1, 1), (2, 8), (16, 64)] and runner.batch_range == (1, 64)
        seen = {batch: runner.run(_pixels(batch))["logits"][0, 1] for batch in (1, 4, 8, 16, 64, 2)}
        context = engine.contexts[0]
        assert seen == {1: 0.0, 4: 1.0, 8: 1.0, 16: 2.0, 64: 2.0, 2: 1.0}
        assert [index for index, _ in context.profile_calls] == [1, 2, 1]  # batch 1 stays on profile 0
        assert all(stream in cudart.streams for _, stream in context.profile_calls)
        with pytest.raises(BackendError) as info:
            runner.run(_pixels(12))
        assert str(info.value) == (
            "multi.engine has optimization profiles for batch 1, 2..8, 16..64; got 12: "
            "rebuild it with a profile that holds it (--batch-profiles)"
        )


def test_overlapping_profiles_pick_the_narrowest(monkeypatch, tmp_path):
    cudart = install(monkeypatch)
    engine = FakeEngine(cudart, profiles=[(1, 32, 64), (1, 1, 1), (1, 4, 8)])
    with TensorRTRunner(engine_file(tmp_path, "wide", engine)) as runner:
        assert runner.run(_pixels(1))["logits"][0, 1] == 1.0
        assert runner.run(_pixels(4))["logits"][0, 1] == 2.0
        assert runner.run(_pixels(32))["logits"][0, 1] == 0.0


def test_a_fixed_batch_engine_takes_that_batch_only(monkeypatch, tmp_path):
    cudart = install(monkeypatch)
    engine = FakeEngine(cudart, profiles=[(2, 2, 2)], fixed_batch=2)
    with TensorRTRunner(engine_file(tmp_path, "fixed", engine)) as runner:
        assert runner.profile_ranges == [(2, 2)]
        assert runner.run(_pixels(2))["logits"].shape == (2, 2)
        with pytest.raises(InputError, match="accepts batch 2..2, got 1"):
            runner.run(_pixels(1))


def test_bytes_tensorrt_cannot_deserialize_name_the_rebuild(monkeypatch, tmp_path):
    install(monkeypatch)
    path = tmp_path / "other.engine"
    path.write_bytes(b"from another TensorRT")
    with pytest.raises(Exception) as info:
        TensorRTRunner(path).load()
    assert "could not load" in str(info.value) and "rebuild it with" in str(info.value)


# ---- trtexec-style timing: events, pinned copies, CUDA graphs -----------------------------------------------
def engine_output(cudart, context) -> bytes:
    """The bytes the stand-in engine last wrote to the timing context's device output buffer."""
    import ctypes

    return ctypes.string_at(context.addresses["logits"], 4 * 2 * 4)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("cuda_graph", [False, True])
def test_timer_times_compute_without_copies_and_latency_with_them(monkeypatch, tmp_path, version, cuda_graph):
    """GPU compute time spans the enqueue only; host latency adds the H2D and D2H copies from pinned memory.
    On the stand-in GPU a copy takes 1 ms and the engine 5 ms (a made-up cost that shows what each figure
    spans, not a GPU measurement)."""
    cudart = install(monkeypatch, version, copy_ms=1.0)
    engine = FakeEngine(cudart, profiles=[(1, 1, 1), (2, 4, 8)], compute_ms=5.0)
    pixels = _pixels(4)
    with TensorRTRunner(engine_file(tmp_path, "timed", engine)) as runner:
        with runner.timer(pixels, cuda_graph=cuda_graph) as timer:
            context = engine.contexts[1]  # a context of its own; the runner's keeps its output allocator
            assert context.allocators == {} and set(context.addresses) == {"pixel_values", "logits"}
            assert [index for index, _ in context.profile_calls] == [1]
            enqueues = context.enqueues
            cudart.ran.clear()
            assert timer.gpu_compute_ms() == 5.0
            # a lead query, the one reported, and the next one in flight
            per_query = ["engine", "graph"] if cuda_graph else ["engine"]
            assert [k for k in cudart.ran if k != "event"] == per_query * 3
            gpu_only = np.frombuffer(engine_output(cudart, context), np.float32).reshape(4, 2)
            np.testing.assert_allclose(gpu_only[:, 0], pixels.reshape(4, -1).mean(axis=1), atol=1e-6)
            assert timer.host_latency_ms() == 7.0
            assert timer.last_query == (1.0, 5.0, 1.0)  # H2D, GPU compute, D2H: one copy each way
            assert [t.name for t in timer.output_types] == ["float32"]
            logits = np.frombuffer(timer.output_bytes(), timer.output_types[0].numpy()).reshape(4, 2)
            np.testing.assert_allclose(logits[:, 0], pixels.reshape(4, -1).mean(axis=1), atol=1e-6)
            assert logits[0, 1] == 1.0  # ran on profile 1
            # captured once (after one direct enqueue), replayed since: no further execute_async_v3
            assert context.enqueues == enqueues + (0 if cuda_graph else 6)
        captured = "cudaGraphInstantiateWithFlags" in cudart.calls
        assert captured == cuda_graph and ("cudaStreamBeginCapture" in cudart.calls) == cuda_graph
        assert not cudart.pinned and not cudart.events and not cudart.graphs and not cudart.execs
        assert runner.run(pixels)["logits"].shape == (4, 2)  # the runner's own context still serves run()


def test_timer_refuses_a_batch_no_profile_holds(monkeypatch, tmp_path):
    cudart = install(monkeypatch)
    engine = FakeEngine(cudart, profiles=[(1, 1, 1), (16, 32, 64)])
    with TensorRTRunner(engine_file(tmp_path, "gap", engine)) as runner:
        with pytest.raises(BackendError, match="optimization profiles for batch 1, 16..64; got 4"):
            with runner.timer(_pixels(4)):
                pass


def test_a_failed_capture_is_one_line_and_frees_what_it_took(monkeypatch, tmp_path):
    cudart = install(monkeypatch)
    cudart.capture_error = 901  # cudaErrorStreamCaptureInvalidated
    engine = FakeEngine(cudart, profiles=[(1, 4, 8)])
    with TensorRTRunner(engine_file(tmp_path, "nograph", engine)) as runner:
        with pytest.raises(BackendError) as info:
            with runner.timer(_pixels(2), cuda_graph=True):
                pass
        message = str(info.value)
        assert message == (
            "nograph.engine has operations that are not allowed under CUDA-graph capture (ending the "
            "capture failed: CUDA Error: 901); time it without --cuda-graph"
        )
        assert not cudart.pinned and not cudart.events and len(cudart.streams) == 1  # the runner's own stream
        with runner.timer(_pixels(2)) as timer:  # without a graph it still times
            assert timer.gpu_compute_ms() == 5.0


@pytest.mark.parametrize("under_capture", ["invalidates", "refuses"])
def test_an_enqueue_refused_under_capture_says_so_and_leaves_no_graph(monkeypatch, tmp_path, under_capture):
    """execute_async_v3 returning False while capturing (an engine with operations CUDA-graph capture does not
    allow) is the error reported, not the error cudaStreamEndCapture then returns; the capture is ended, a
    graph it returns is destroyed, and the runtime's last error is cleared, as trtexec's endCaptureOnError
    does (samples/common/sampleDevice.h).  The stand-in models both ways enqueueV3 can fail under capture."""
    cudart = install(monkeypatch)
    engine = FakeEngine(cudart, profiles=[(1, 4, 8)], under_capture=under_capture)
    with TensorRTRunner(engine_file(tmp_path, "capture", engine)) as runner:
        with pytest.raises(BackendError) as info:
            with runner.timer(_pixels(2), cuda_graph=True):
                pass
        assert str(info.value) == (
            "capture.engine has operations that are not allowed under CUDA-graph capture (execute_async_v3 "
            "returned False while the stream was capturing); time it without --cuda-graph"
        )
        assert cudart.calls.count("cudaStreamEndCapture") == 1 and not cudart.capturing
        assert not cudart.graphs and not cudart.execs and cudart.last_error == 0
        assert not cudart.pinned and not cudart.events and len(cudart.streams) == 1
        with runner.timer(_pixels(2)) as timer:
            assert timer.gpu_compute_ms() == 5.0


def test_a_failed_instantiation_destroys_the_captured_graph(monkeypatch, tmp_path):
    cudart = install(monkeypatch)
    cudart.instantiate_error = 2  # cudaErrorMemoryAllocation
    engine = FakeEngine(cudart, profiles=[(1, 4, 8)])
    with TensorRTRunner(engine_file(tmp_path, "noexec", engine)) as runner:
        with pytest.raises(
            BackendError,
            match=r"^TensorRT could not time noexec.engine at batch 2 in a CUDA graph "
            r"\(CUDA Error: 2",
        ):
            with runner.timer(_pixels(2), cuda_graph=True):
                pass
        assert "cudaGraphDestroy" in cudart.calls and not cudart.graphs and not cudart.execs
        assert not cudart.pinned and not cudart.events and len(cudart.streams) == 1
