"""Stand-ins for what TensorRT's C++ library and the CUDA runtime would create, so that the TensorRT runner is
tested through Polygraphy's real code (TrtRunner, BaseRunner, EngineFromBytes, its CUDA wrapper, DeviceArray,
Stream) on a machine with neither TensorRT nor a GPU.

A stand-in proves that a call is well formed (its name, its arguments, what it returns, in the order the
bindings would see it), never that a GPU computes the right thing: the "engine" here writes a made-up
function of its input (the per-image mean, and the active profile) so that the tests can see that data went
in and came out through Polygraphy's copies, nothing more.

Every method, argument name and return type the stand-ins offer is listed in the tables below with where
it was read; tests/engines/test_tensorrt_standins.py checks the stand-ins against these tables, so a call
Polygraphy or vit5-infer makes that the bindings lack fails with AttributeError or TypeError.

Sources read (NVIDIA/TensorRT, python/src/infer; line numbers below from release/10.0 and tag v11.1, and every
.def(...) this table relies on found word for word on each branch release/10.0 to release/10.16 and at
tags v11.0 and v11.1):
  pyCore.cpp: IExecutionContext, ICudaEngine, IRuntime (Runtime), IOutputAllocator, IDebugListener,
  ILogger/Logger, TensorIOMode, ExecutionContextAllocationStrategy; pyFoundationalTypes.cpp: DataType and
  the module aliases float32/float16/bfloat16; pyGraph.cpp: TensorFormat; pyPlugin.cpp:
  init_libnvinfer_plugins.  CUDA runtime: cuda_runtime_api.h as documented in the CUDA Runtime API
  reference (docs.nvidia.com/cuda/cuda-runtime-api, modules Device, Stream, Event, Memory, Graph), the same
  in CUDA 12.x and 13.x for every function listed.
"""

from __future__ import annotations

import ctypes
import enum
import importlib.machinery
import inspect
import types
from collections.abc import Callable
from typing import Optional

import numpy as np

# ---- TensorRT Python bindings: (parameters after self, return type), from the .def(...) lines --------------
#: member -> (argument names, return type, where read).  "property" members are def_property(_readonly).
TENSORRT_SIGNATURES = {
    # pyCore.cpp ICudaEngine (release/10.0 L1147-1264, v11.1 L1414-1530)
    "ICudaEngine.num_io_tensors": ("property", "int", "def_property_readonly getNbIOTensors"),
    "ICudaEngine.num_optimization_profiles": ("property", "int", "def_property_readonly getNbOptimizationProfiles"),
    "ICudaEngine.get_tensor_name": (("index",), "str", "def getIOTensorName, index_a"),
    "ICudaEngine.get_tensor_mode": (("name",), "TensorIOMode", "def getTensorIOMode, name_a"),
    "ICudaEngine.get_tensor_shape": (("name",), "Dims", "def getTensorShape, name_a"),
    "ICudaEngine.get_tensor_dtype": (("name",), "DataType", "def getTensorDataType, name_a"),
    "ICudaEngine.get_tensor_format": (
        ("name", "profile_index"),
        "TensorFormat",
        "lambda (name, profileIndex) -> TensorFormat (overload with name only too)",
    ),
    "ICudaEngine.is_shape_inference_io": (("name",), "bool", "def isShapeInferenceIO, name_a"),
    "ICudaEngine.get_tensor_profile_shape": (
        ("name", "profile_index"),
        "List[Dims]",
        "lambdas::get_tensor_profile_shape -> std::vector<Dims>{min, opt, max}",
    ),
    "ICudaEngine.create_execution_context": (
        ("strategy",),
        "IExecutionContext",
        "overload_cast<ExecutionContextAllocationStrategy>, strategy=kSTATIC",
    ),
    # pyCore.cpp IExecutionContext (release/10.0 L1026-1091, v11.1 L1290-1355)
    "IExecutionContext.engine": ("property", "ICudaEngine", "def_property_readonly getEngine"),
    "IExecutionContext.active_optimization_profile": (
        "property",
        "int",
        "def_property_readonly getOptimizationProfile",
    ),
    "IExecutionContext.set_input_shape": (("name", "shape"), "bool", "lambdas::setInputShape<py::tuple|py::list>"),
    "IExecutionContext.get_tensor_shape": (("name",), "Dims", "def getTensorShape, name_a"),
    "IExecutionContext.set_tensor_address": (("name", "memory"), "bool", "lambdas::set_tensor_address(size_t memory)"),
    "IExecutionContext.get_tensor_address": (("name",), "int", "lambdas::get_tensor_address -> size_t"),
    "IExecutionContext.set_output_allocator": (("name", "output_allocator"), "bool", "def setOutputAllocator"),
    "IExecutionContext.execute_async_v3": (("stream_handle",), "bool", "lambdas::execute_async_v3 -> enqueueV3"),
    "IExecutionContext.set_optimization_profile_async": (
        ("profile_index", "stream_handle"),
        "bool",
        "lambdas::context_set_optimization_profile_async: RuntimeError on failure, else True",
    ),
    "IExecutionContext.set_debug_listener": (("listener",), "bool", "def setDebugListener, listener_a"),
    "IExecutionContext.set_all_tensors_debug_state": (("flag",), "bool", "def setAllTensorsDebugState, flag_a"),
    # pyCore.cpp IRuntime, bound as "Runtime" (release/10.0 L1489-1509, v11.1 L1833-1856)
    "Runtime.__init__": (("logger",), "None", "py::init(createInferRuntime), logger_a"),
    "Runtime.deserialize_cuda_engine": (
        ("serialized_engine",),
        "ICudaEngine",
        "lambdas::runtime_deserialize_cuda_engine(py::buffer)",
    ),
    "Runtime.engine_host_code_allowed": ("property", "bool", "def_property get/setEngineHostCodeAllowed"),
    # pyPlugin.cpp (release/10.0 L2628, v11.1 L3933)
    "init_libnvinfer_plugins": (("logger", "namespace"), "bool", "m.def initLibNvInferPlugins"),
}

#: Callbacks TensorRT makes into Python objects (the trampolines in pyCore.cpp): name -> positional arguments.
TENSORRT_CALLBACKS = {
    # PyOutputAllocator::reallocateOutputAsync calls pyFunc(tensorName, currentMemory, size, alignment, stream)
    "IOutputAllocator.reallocate_output_async": ("tensor_name", "memory", "size", "alignment", "stream"),
    # PYBIND11_OVERLOAD_PURE_NAME(void, IOutputAllocator, "notify_shape", notifyShape, tensorName, dims)
    "IOutputAllocator.notify_shape": ("tensor_name", "shape"),
}

# ---- CUDA runtime (libcudart) C signatures: name -> the ctypes kind each argument must arrive as ------------
# "out": a pointer written by the call (ctypes.byref(...)); "ptr": a handle or address (c_void_p);
# "size": size_t (c_size_t); "int": an int or enum (c_int/c_uint or a Python int); "ull": unsigned long long.
CUDART_SIGNATURES = {
    "cudaSetDevice": (("int",), "cudaError_t cudaSetDevice(int device)"),
    "cudaMalloc": (("out", "size"), "cudaError_t cudaMalloc(void** devPtr, size_t size)"),
    "cudaFree": (("ptr",), "cudaError_t cudaFree(void* devPtr)"),
    "cudaMallocHost": (("out", "size"), "cudaError_t cudaMallocHost(void** ptr, size_t size)"),
    "cudaFreeHost": (("ptr",), "cudaError_t cudaFreeHost(void* ptr)"),
    "cudaMemcpy": (
        ("ptr", "ptr", "size", "int"),
        "cudaError_t cudaMemcpy(void* dst, const void* src, size_t count, cudaMemcpyKind kind)",
    ),
    "cudaMemcpyAsync": (
        ("ptr", "ptr", "size", "int", "ptr"),
        "cudaError_t cudaMemcpyAsync(void* dst, const void* "
        "src, size_t count, cudaMemcpyKind kind, cudaStream_t stream = 0)",
    ),
    "cudaStreamCreate": (("out",), "cudaError_t cudaStreamCreate(cudaStream_t* pStream)"),
    "cudaStreamDestroy": (("ptr",), "cudaError_t cudaStreamDestroy(cudaStream_t stream)"),
    "cudaStreamSynchronize": (("ptr",), "cudaError_t cudaStreamSynchronize(cudaStream_t stream)"),
    "cudaEventCreate": (("out",), "cudaError_t cudaEventCreate(cudaEvent_t* event)"),
    "cudaEventDestroy": (("ptr",), "cudaError_t cudaEventDestroy(cudaEvent_t event)"),
    "cudaEventRecord": (("ptr", "ptr"), "cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = 0)"),
    "cudaEventSynchronize": (("ptr",), "cudaError_t cudaEventSynchronize(cudaEvent_t event)"),
    "cudaEventElapsedTime": (
        ("out", "ptr", "ptr"),
        "cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end)",
    ),
    "cudaStreamBeginCapture": (
        ("ptr", "int"),
        "cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode)",
    ),
    "cudaStreamEndCapture": (
        ("ptr", "out"),
        "cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* pGraph)",
    ),
    "cudaGraphInstantiateWithFlags": (
        ("out", "ptr", "ull"),
        "cudaError_t cudaGraphInstantiateWithFlags("
        "cudaGraphExec_t* pGraphExec, cudaGraph_t graph, unsigned long long flags)",
    ),
    "cudaGraphLaunch": (("ptr", "ptr"), "cudaError_t cudaGraphLaunch(cudaGraphExec_t graphExec, cudaStream_t stream)"),
    "cudaGraphExecDestroy": (("ptr",), "cudaError_t cudaGraphExecDestroy(cudaGraphExec_t graphExec)"),
    "cudaGraphDestroy": (("ptr",), "cudaError_t cudaGraphDestroy(cudaGraph_t graph)"),
    "cudaGetLastError": ((), "cudaError_t cudaGetLastError(void)"),
}


def _value(arg):
    return arg.value if hasattr(arg, "value") else arg


def _check_cuda_args(name: str, args: tuple) -> None:
    kinds, prototype = CUDART_SIGNATURES[name]
    if len(args) != len(kinds):
        raise TypeError(f"{name}: {len(args)} arguments, the C function takes {len(kinds)} ({prototype})")
    for i, (arg, kind) in enumerate(zip(args, kinds)):
        ok = {
            "out": type(arg).__name__ == "CArgObject",
            "ptr": isinstance(arg, ctypes.c_void_p),
            "size": isinstance(arg, ctypes.c_size_t),
            "int": isinstance(arg, (int, ctypes.c_int, ctypes.c_uint)) and not isinstance(arg, bool),
            "ull": isinstance(arg, ctypes.c_ulonglong),
        }[kind]
        if not ok:
            raise TypeError(f"{name}: argument {i} is {type(arg).__name__}, expected {kind} ({prototype})")


class FakeCudart:
    """libcudart as ctypes would expose it: each function checks its arguments against CUDART_SIGNATURES.
    "Device" memory is host memory (so Polygraphy's copies really move bytes).  Time is virtual (ms): the host
    clock ``host_now`` moves only where the host would wait (an engine's enqueue costs its ``enqueue_host_ms``
    before its kernels are submitted; cudaEventSynchronize and cudaStreamSynchronize wait for the GPU), and
    the GPU runs what was submitted in order, each piece starting when both the GPU is free and the host has
    submitted it (``gpu_free``: when the GPU finishes what it has; a copy takes ``copy_ms``, an engine run its
    ``compute_ms``).  An event is stamped when the GPU reaches it.  Work submitted on a capturing stream is
    recorded into the graph and runs when the graph is launched."""

    def __init__(self, copy_ms: float = 1.0):
        self.memory: dict[int, ctypes.Array] = {}
        self.pinned: set[int] = set()
        self.streams: set[int] = set()
        self.events: dict[int, Optional[float]] = {}
        self.capturing: dict[int, list] = {}  # stream -> work recorded while capturing
        self.graphs: dict[int, list] = {}
        self.execs: dict[int, list] = {}
        self.calls: list[str] = []
        self.copy_ms = copy_ms
        self.capture_error = 0  # what cudaStreamEndCapture returns, e.g. 901 (cudaErrorStreamCaptureInvalidated)
        self.instantiate_error = 0  # what cudaGraphInstantiateWithFlags returns
        self.invalidated: set[int] = set()  # capturing streams whose capture an illegal operation invalidated
        self.last_error = 0  # what cudaGetLastError returns (and resets)
        self.host_now = 0.0
        self.gpu_free = 0.0
        self.ran: list[str] = []  # what the "GPU" executed, in order: "copy", "engine", "event"
        self._handles = 0x1000

    def _handle(self) -> int:
        self._handles += 0x10
        return self._handles

    def __getattr__(self, name):
        if name not in CUDART_SIGNATURES:
            raise AttributeError(f"libcudart stand-in has no {name} (not in CUDART_SIGNATURES)")
        impl = getattr(self, "_" + name)

        def call(*args):
            _check_cuda_args(name, args)
            self.calls.append(name)
            return impl(*args)

        return call

    def enqueue(self, stream: int, work: Callable[[], None], cost_ms: float = 0.0, kind: str = "engine") -> None:
        """Run ``work`` as if on ``stream`` (taking ``cost_ms`` of GPU time): now, or into the graph being
        captured there."""

        def run():
            self.gpu_free = max(self.gpu_free, self.host_now)
            work()
            self.gpu_free += cost_ms
            self.ran.append(kind)

        if stream in self.capturing:
            self.capturing[stream].append(run)
        else:
            run()

    def _alloc(self, out, size) -> int:
        buffer = ctypes.create_string_buffer(max(1, size.value))
        address = ctypes.addressof(buffer)
        self.memory[address] = buffer
        out._obj.value = address
        return 0

    def _cudaSetDevice(self, device):
        return 0 if _value(device) == 0 else 101  # cudaErrorInvalidDevice

    def _cudaMalloc(self, out, size):
        return self._alloc(out, size)

    def _cudaFree(self, ptr):
        if ptr.value and self.memory.pop(ptr.value, None) is None:
            return 1  # cudaErrorInvalidValue
        return 0

    def _cudaMallocHost(self, out, size):
        self._alloc(out, size)
        self.pinned.add(out._obj.value)
        return 0

    def _cudaFreeHost(self, ptr):
        if ptr.value not in self.pinned:
            return 1
        self.pinned.discard(ptr.value)
        self.memory.pop(ptr.value)
        return 0

    def _cudaMemcpy(self, dst, src, count, kind):
        ctypes.memmove(dst.value, src.value, count.value)
        return 0

    def _cudaMemcpyAsync(self, dst, src, count, kind, stream):
        self.enqueue(stream.value, lambda: ctypes.memmove(dst.value, src.value, count.value), self.copy_ms, "copy")
        return 0

    def _cudaStreamCreate(self, out):
        out._obj.value = self._handle()
        self.streams.add(out._obj.value)
        return 0

    def _cudaStreamDestroy(self, stream):
        self.streams.discard(stream.value)
        return 0

    def _cudaStreamSynchronize(self, stream):
        self.host_now = max(self.host_now, self.gpu_free)
        return 0

    def _cudaEventCreate(self, out):
        out._obj.value = self._handle()
        self.events[out._obj.value] = None
        return 0

    def _cudaEventDestroy(self, event):
        return 0 if self.events.pop(event.value, "absent") != "absent" else 400  # cudaErrorInvalidResourceHandle

    def _cudaEventRecord(self, event, stream):
        if event.value not in self.events:
            return 400

        def stamp():
            self.events[event.value] = self.gpu_free

        self.enqueue(stream.value, stamp, kind="event")
        return 0

    def _cudaEventSynchronize(self, event):
        if event.value not in self.events:
            return 400
        self.host_now = max(self.host_now, self.events[event.value] or 0.0)
        return 0

    def _cudaEventElapsedTime(self, out, start, end):
        begun, ended = self.events.get(start.value), self.events.get(end.value)
        if begun is None or ended is None:
            return 400
        out._obj.value = ended - begun
        return 0

    def _cudaStreamBeginCapture(self, stream, mode):
        self.capturing[stream.value] = []
        return 0

    def _cudaStreamEndCapture(self, stream, out):
        if stream.value not in self.capturing:
            return 400
        if stream.value in self.invalidated:  # no graph, as cudaErrorStreamCaptureInvalidated leaves it
            self.invalidated.discard(stream.value)
            self.capturing.pop(stream.value)
            return 901
        if self.capture_error:
            self.capturing.pop(stream.value, None)
            return self.capture_error
        graph = self._handle()
        self.graphs[graph] = self.capturing.pop(stream.value)
        out._obj.value = graph
        return 0

    def _cudaGraphInstantiateWithFlags(self, out, graph, flags):
        if self.instantiate_error:
            return self.instantiate_error
        exec_ = self._handle()
        self.execs[exec_] = list(self.graphs[graph.value])
        out._obj.value = exec_
        return 0

    def _cudaGraphLaunch(self, exec_, stream):
        for work in self.execs[exec_.value]:
            self.enqueue(stream.value, work, kind="graph")
        return 0

    def _cudaGraphExecDestroy(self, exec_):
        self.execs.pop(exec_.value)
        return 0

    def _cudaGraphDestroy(self, graph):
        self.graphs.pop(graph.value)
        return 0

    def _cudaGetLastError(self):
        error, self.last_error = self.last_error, 0
        return error

    def invalidate_capture(self, stream: int) -> None:
        """What an operation not allowed under capture does to a capturing stream."""
        self.invalidated.add(stream)
        self.last_error = 901


# ---- the tensorrt module ----------------------------------------------------------------------------------
class DataType(enum.Enum):
    """tensorrt.DataType (pyFoundationalTypes.cpp), the members the runner's engines use."""

    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BF16 = 7


class TensorIOMode(enum.Enum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class TensorFormat(enum.Enum):
    LINEAR = 0
    CHW2 = 1
    HWC8 = 2
    CHW4 = 3
    CHW16 = 4
    CHW32 = 5
    HWC = 9


class ExecutionContextAllocationStrategy(enum.Enum):
    STATIC = 0
    ON_PROFILE_CHANGE = 1
    USER_MANAGED = 2


class Dims(tuple):
    """tensorrt.Dims: a sequence of ints that compares equal to a tuple of the same values."""


_NUMPY = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT32: np.int32, DataType.INT8: np.int8}


def _read(address: int, dtype: DataType, count: int) -> np.ndarray:
    if dtype == DataType.BF16:
        raw = np.ctypeslib.as_array((ctypes.c_uint16 * count).from_address(address)).astype(np.uint32)
        return (raw << 16).view(np.float32).copy()
    return (
        np.ctypeslib.as_array((ctypes.c_byte * (count * np.dtype(_NUMPY[dtype]).itemsize)).from_address(address))
        .view(_NUMPY[dtype])
        .astype(np.float32)
    )


def _write(address: int, values: np.ndarray, dtype: DataType) -> None:
    if dtype == DataType.BF16:
        data = (values.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16).tobytes()
    else:
        data = values.astype(_NUMPY[dtype]).tobytes()
    ctypes.memmove(address, data, len(data))


class ICudaEngine:
    pass


class IExecutionContext:
    pass


class IOutputAllocator:
    def __init__(self):
        pass


class IDebugListener:
    def __init__(self):
        pass


class ILogger:
    def __init__(self):
        pass


class Logger(ILogger):
    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4


class FakeEngine(ICudaEngine):
    """An engine with one [B, C, H, W] input ``pixel_values`` and a [B, 2] output ``logits``: logits[:, 0] is
    the mean of each image, logits[:, 1] the optimization profile the context ran with.  ``enqueue_host_ms``:
    host time execute_async_v3 takes before its kernels reach the stream.  ``under_capture``: what its
    enqueue does on a capturing stream: "ok" (captured), "invalidates" (an operation not allowed under capture
    invalidates the capture, and enqueueV3 returns False) or "refuses" (returns False with the capture intact,
    which then yields a graph not to be used)."""

    def __init__(
        self,
        cudart: FakeCudart,
        profiles=((1, 1, 8),),
        input_dtype=DataType.FLOAT,
        output_dtype=DataType.FLOAT,
        image=(3, 4, 4),
        fixed_batch: Optional[int] = None,
        compute_ms: float = 5.0,
        enqueue_host_ms: float = 0.0,
        under_capture: str = "ok",
    ):
        self.cudart = cudart
        self.profiles = [tuple(p) for p in profiles]  # (min, opt, max) batch of each
        self.input_dtype, self.output_dtype = input_dtype, output_dtype
        self.image = tuple(image)
        self.fixed_batch = fixed_batch
        self.compute_ms = compute_ms
        self.enqueue_host_ms = enqueue_host_ms
        self.under_capture = under_capture
        self.contexts: list[FakeContext] = []

    @property
    def num_io_tensors(self) -> int:
        return 2

    @property
    def num_optimization_profiles(self) -> int:
        return len(self.profiles)

    def get_tensor_name(self, index) -> str:
        return ["pixel_values", "logits"][index]

    def get_tensor_mode(self, name) -> TensorIOMode:
        return {"pixel_values": TensorIOMode.INPUT, "logits": TensorIOMode.OUTPUT}[name]

    def get_tensor_shape(self, name) -> Dims:
        batch = -1 if self.fixed_batch is None else self.fixed_batch
        return Dims((batch, *self.image) if name == "pixel_values" else (batch, 2))

    def get_tensor_dtype(self, name) -> DataType:
        return self.input_dtype if name == "pixel_values" else self.output_dtype

    def get_tensor_format(self, name, profile_index) -> TensorFormat:
        return TensorFormat.LINEAR

    def is_shape_inference_io(self, name) -> bool:
        return False

    def get_tensor_profile_shape(self, name, profile_index) -> list[Dims]:
        if name != "pixel_values" or not 0 <= profile_index < len(self.profiles):
            raise RuntimeError("invalid profile")
        return [Dims((batch, *self.image)) for batch in self.profiles[profile_index]]

    def create_execution_context(self, strategy=ExecutionContextAllocationStrategy.STATIC) -> IExecutionContext:
        context = FakeContext(self)
        self.contexts.append(context)
        return context


class FakeContext(IExecutionContext):
    def __init__(self, engine: FakeEngine):
        self._engine = engine
        self._profile = 0
        self.shapes: dict[str, Dims] = {}
        self.addresses: dict[str, int] = {}
        self.allocators: dict[str, object] = {}
        self.profile_calls: list[tuple[int, int]] = []
        self.enqueues = 0
        self.debug_listener = None

    @property
    def engine(self) -> ICudaEngine:
        return self._engine

    @property
    def active_optimization_profile(self) -> int:
        return self._profile

    def set_optimization_profile_async(self, profile_index, stream_handle) -> bool:
        if not 0 <= profile_index < self._engine.num_optimization_profiles:
            raise RuntimeError("Error in set optimization profile async.")
        self.profile_calls.append((profile_index, stream_handle))
        self._profile = profile_index
        self.shapes.pop("pixel_values", None)  # input shapes are set again for the new profile
        return True

    def set_input_shape(self, name, shape) -> bool:
        low, _, high = self._engine.profiles[self._profile]
        if len(shape) != 4 or not low <= shape[0] <= high:
            return False
        self.shapes[name] = Dims(shape)
        return True

    def get_tensor_shape(self, name) -> Dims:
        if name == "pixel_values":
            return self.shapes.get(name, Dims((-1, *self._engine.image)))
        batch = self.shapes.get("pixel_values", Dims((-1,)))[0]
        return Dims((batch, 2))

    def set_tensor_address(self, name, memory) -> bool:
        self.addresses[name] = int(memory)
        return True

    def get_tensor_address(self, name) -> int:
        return self.addresses.get(name, 0)

    def set_output_allocator(self, name, output_allocator) -> bool:
        self.allocators[name] = output_allocator
        return True

    def set_debug_listener(self, listener) -> bool:
        self.debug_listener = listener
        return True

    def set_all_tensors_debug_state(self, flag) -> bool:
        return True

    def execute_async_v3(self, stream_handle) -> bool:
        cudart = self._engine.cudart
        if int(stream_handle) in cudart.capturing and self._engine.under_capture != "ok":
            if self._engine.under_capture == "invalidates":
                cudart.invalidate_capture(int(stream_handle))
            return False
        cudart.host_now += self._engine.enqueue_host_ms
        shape = self.shapes.get("pixel_values")
        if shape is None or "pixel_values" not in self.addresses:
            return False
        batch, count = shape[0], int(np.prod(shape))
        out_bytes = batch * 2 * (2 if self._engine.output_dtype in (DataType.HALF, DataType.BF16) else 4)
        allocator = self.allocators.get("logits")
        if allocator is not None:  # TensorRT calls the allocator during enqueueV3
            address = allocator.reallocate_output_async(
                "logits", self.addresses.get("logits", 0), out_bytes, 256, stream_handle
            )
            allocator.notify_shape("logits", Dims((batch, 2)))
            self.addresses["logits"] = int(address)
        elif "logits" not in self.addresses:
            return False
        source, target, profile = self.addresses["pixel_values"], self.addresses["logits"], self._profile
        engine = self._engine

        def compute():
            images = _read(source, engine.input_dtype, count).reshape(batch, -1)
            _write(
                target,
                np.stack([images.mean(axis=1), np.full(batch, profile, np.float32)], axis=1),
                engine.output_dtype,
            )

        self.enqueues += 1
        self._engine.cudart.enqueue(int(stream_handle), compute, self._engine.compute_ms)
        return True


class Runtime:
    def __init__(self, logger) -> None:
        self.logger = logger
        self._host_code = False

    @property
    def engine_host_code_allowed(self) -> bool:
        return self._host_code

    @engine_host_code_allowed.setter
    def engine_host_code_allowed(self, value):
        self._host_code = bool(value)

    def deserialize_cuda_engine(self, serialized_engine) -> ICudaEngine:
        return ENGINES.get(bytes(serialized_engine))


#: serialized bytes -> the engine Runtime.deserialize_cuda_engine returns (None, as TensorRT, for others)
ENGINES: dict[bytes, FakeEngine] = {}


def engine_file(folder, name: str, engine: FakeEngine):
    """``folder/NAME.engine``, whose bytes (``NAME``) deserialize to ``engine``."""
    path = folder / f"{name}.engine"
    path.write_bytes(name.encode())
    ENGINES[name.encode()] = engine
    return path


def init_libnvinfer_plugins(logger, namespace) -> bool:
    return True


def tensorrt_module(version: str) -> types.ModuleType:
    """A ``tensorrt`` module offering exactly the names the tables above list, at ``version``."""
    module = types.ModuleType("tensorrt")
    module.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    module.__version__ = version
    for name, value in {
        "ICudaEngine": ICudaEngine,
        "IExecutionContext": IExecutionContext,
        "IOutputAllocator": IOutputAllocator,
        "IDebugListener": IDebugListener,
        "ILogger": ILogger,
        "Logger": Logger,
        "Runtime": Runtime,
        "DataType": DataType,
        "TensorIOMode": TensorIOMode,
        "TensorFormat": TensorFormat,
        "ExecutionContextAllocationStrategy": ExecutionContextAllocationStrategy,
        "Dims": Dims,
        "init_libnvinfer_plugins": init_libnvinfer_plugins,
        "float32": DataType.FLOAT,
        "float16": DataType.HALF,
        "bfloat16": DataType.BF16,
        "int8": DataType.INT8,
        "int32": DataType.INT32,
    }.items():
        setattr(module, name, value)
    return module


def standin_members():
    """(table key, the stand-in's callable or property) for every TENSORRT_SIGNATURES entry."""
    owners = {"ICudaEngine": FakeEngine, "IExecutionContext": FakeContext, "Runtime": Runtime}
    for key in TENSORRT_SIGNATURES:
        owner, _, member = key.partition(".")
        if not member:
            yield key, globals()[owner]
        else:
            yield key, inspect.getattr_static(owners[owner], member)


def install(monkeypatch, version: str = "10.8.0", copy_ms: float = 1.0) -> FakeCudart:
    """Put the stand-ins where Polygraphy looks: ``tensorrt`` in sys.modules, and a Polygraphy ``Cuda``
    wrapper (its real methods) whose libcudart handle is a FakeCudart; vit5-infer's GPU query answers one
    GPU.  Returns the libcudart stand-in."""
    import sys

    from polygraphy.backend.trt import util as trt_util
    from polygraphy.cuda import cuda as polygraphy_cuda

    from vit5_infer.engines import tensorrt_runner
    from vit5_infer.engines.cuda_device import CudaDevice

    cudart = FakeCudart(copy_ms)
    wrapper = polygraphy_cuda.Cuda.__new__(polygraphy_cuda.Cuda)
    wrapper.handle = cudart
    monkeypatch.setitem(sys.modules, "tensorrt", tensorrt_module(version))
    monkeypatch.setattr(polygraphy_cuda, "G_CUDA", wrapper)
    monkeypatch.setattr(trt_util, "TRT_LOGGER", None)
    monkeypatch.setattr(tensorrt_runner, "require_gpu", lambda what, device=0: CudaDevice(device, "NVIDIA H100", "9.0"))
    ENGINES.clear()
    return cudart
