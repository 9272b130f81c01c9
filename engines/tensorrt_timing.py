"""Timing a TensorRT engine the way trtexec does, on an execution context of its own.

trtexec reports two figures per query, and so does ``vit5 bench -b trt``:

* GPU compute time: input and output stay in device memory, the enqueue (``execute_async_v3``, or the
  replay of its CUDA graph) is timed between two CUDA events on the stream, no copies;
* host latency: the input is copied from pinned host memory to the device, the engine runs, the outputs
  are copied back to pinned host memory, all timed between two CUDA events (trtexec's "Latency": H2D +
  GPU compute + D2H).

The context has fixed device buffers (``set_tensor_address``) and no output allocator, so its enqueue can be
captured into a CUDA graph once per input shape and replayed (trtexec's default from 11.0, ``--useCudaGraph``
in 10.x).  As trtexec does (samples/common/sampleInference.cpp), the input is copied to the device and the
enqueue runs once before capturing, so that TensorRT's first-run work for a shape stays out of the graph.
Unlike trtexec, which then falls back to plain enqueues with a warning, a failed capture is an error here:
a row saying "+graph" was timed with one.
"""

from __future__ import annotations

import ctypes
from typing import Any, Optional, Sequence

import numpy as np

from .cuda_runtime import CudaCalls
from .errors import BackendError


class EngineTimer:
    """One execution context of ``engine`` set up for one input batch (``host_input``: the input's bytes in the
    engine's input type) on optimization profile ``profile``.  ``gpu_compute_ms`` and ``host_latency_ms`` each
    time one query; ``close`` frees everything."""

    def __init__(self, engine: Any, input_name: str, output_names: Sequence[str], host_input: np.ndarray,
                 shape: Sequence[int], profile: int, wrapper: Any, cuda_graph: bool = False, name: str = "engine"):
        from polygraphy import cuda
        from polygraphy.datatype import DataType

        self.name = name
        self.calls = CudaCalls(wrapper)
        self.wrapper = wrapper
        self._device: list = []
        self._pinned: list[int] = []
        self._events: list[int] = []
        self._graph: Optional[tuple[int, int]] = None
        self.context: Any = None
        self.stream: Any = cuda.Stream()
        try:
            self.context = engine.create_execution_context()
            if not self.context:
                raise BackendError(f"TensorRT could not create a second execution context for {name} to time it "
                                   "(too little GPU memory free?)")
            if profile != 0 and not self.context.set_optimization_profile_async(profile, self.stream.ptr):
                raise BackendError(f"TensorRT could not set optimization profile {profile} of {name}")
            if not self.context.set_input_shape(input_name, tuple(int(d) for d in shape)):
                raise BackendError(f"TensorRT refused input shape {list(shape)} for {name}")
            raw = np.ascontiguousarray(host_input).view(np.uint8).reshape(-1)
            self._copies_in = [self._buffers(input_name, raw.nbytes)]
            ctypes.memmove(self._copies_in[0][1], raw.ctypes.data, raw.nbytes)
            self._copies_out = []
            #: each output's Polygraphy DataType, in output_names order
            self.output_types: list = []
            for output in output_names:
                dims = [int(d) for d in self.context.get_tensor_shape(output)]
                if any(d < 0 for d in dims):
                    raise BackendError(f"{name}: output {output!r} has a data-dependent shape {dims}, which fixed "
                                       "buffers cannot hold; it cannot be timed this way")
                self.output_types.append(DataType.from_dtype(engine.get_tensor_dtype(output), "tensorrt"))
                itemsize = self.output_types[-1].itemsize
                self._copies_out.append(self._buffers(output, int(np.prod(dims)) * int(np.ceil(itemsize))))
            self.start, self.end = self.calls.event(), self.calls.event()
            self._events = [self.start, self.end]
            for device, pinned, nbytes in self._copies_in:  # the GPU compute figure runs on the real input
                wrapper.memcpy(device, pinned, nbytes, cuda.MemcpyKind.HostToDevice, self.stream.ptr)
            self._enqueue_directly()  # TensorRT's one-time work for this shape, kept out of the graph and timings
            self.stream.synchronize()
            if cuda_graph:
                self.calls.begin_capture(self.stream.ptr)
                try:
                    self._enqueue_directly()
                finally:
                    graph = self.calls.end_capture(self.stream.ptr)
                self._graph = (graph, self.calls.instantiate(graph))
        except BaseException:
            self.close()
            raise

    def _buffers(self, tensor: str, nbytes: int) -> tuple[int, int, int]:
        """(device address, pinned host address, bytes) of ``tensor``, its device address set on the context."""
        from polygraphy import cuda

        device = cuda.DeviceArray.raw((nbytes,))
        self._device.append(device)
        pinned = self.calls.host_alloc(nbytes)
        self._pinned.append(pinned)
        if not self.context.set_tensor_address(tensor, device.ptr):
            raise BackendError(f"TensorRT refused the address of {tensor!r} of {self.name}")
        return device.ptr, pinned, nbytes

    def _enqueue_directly(self) -> None:
        if not self.context.execute_async_v3(self.stream.ptr):
            raise BackendError(f"TensorRT failed to enqueue {self.name} (execute_async_v3 returned False)")

    def _enqueue(self) -> None:
        if self._graph is not None:
            self.calls.launch(self._graph[1], self.stream.ptr)
        else:
            self._enqueue_directly()

    def gpu_compute_ms(self) -> float:
        """One query with device-resident input and output: the enqueue between two events."""
        self.calls.record(self.start, self.stream.ptr)
        self._enqueue()
        self.calls.record(self.end, self.stream.ptr)
        return self.calls.elapsed_ms(self.start, self.end)

    def host_latency_ms(self) -> float:
        """One query from pinned host memory and back: H2D copy, enqueue, D2H copies between two events."""
        from polygraphy import cuda

        self.calls.record(self.start, self.stream.ptr)
        for device, pinned, nbytes in self._copies_in:
            self.wrapper.memcpy(device, pinned, nbytes, cuda.MemcpyKind.HostToDevice, self.stream.ptr)
        self._enqueue()
        for device, pinned, nbytes in self._copies_out:
            self.wrapper.memcpy(pinned, device, nbytes, cuda.MemcpyKind.DeviceToHost, self.stream.ptr)
        self.calls.record(self.end, self.stream.ptr)
        return self.calls.elapsed_ms(self.start, self.end)

    def output_bytes(self, index: int = 0) -> bytes:
        """The pinned host copy of output ``index`` as of the last host-latency query."""
        _, pinned, nbytes = self._copies_out[index]
        return ctypes.string_at(pinned, nbytes)

    def close(self) -> None:
        if self.stream is None:
            return
        self.stream.synchronize()
        if self._graph is not None:
            self.calls.destroy_graph(*self._graph)
            self._graph = None
        for event in self._events:
            self.calls.destroy_event(event)
        for pinned in self._pinned:
            self.calls.host_free(pinned)
        for device in self._device:
            device.free()
        self._events, self._pinned, self._device = [], [], []
        self.context = None
        self.stream.free()
        self.stream = None

    def __enter__(self) -> "EngineTimer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
