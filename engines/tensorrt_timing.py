"""Timing a TensorRT engine as trtexec does, on an execution context of its own.

trtexec (samples/common/sampleInference.cpp and sampleReporting.cpp in NVIDIA/TensorRT, read on release/10.0,
release/10.13 and main) times every query with CUDA event pairs: H2D copies, the enqueue, D2H copies, each
between its own start and end event.  Its "GPU Compute Time" is the enqueue's pair; its "Latency" is the sum
H2D + GPU compute + D2H of the three pairs.  It keeps two queries in flight (``--exposeDMA`` off, the
default): the next query is enqueued before the host waits for the older one's last event, so a query's
compute-start event is reached only when the query before it has finished its compute on the GPU, and the
host time ``enqueueV3`` spends before its first kernel is hidden behind that earlier query.

``vit5 bench -b trt`` reports the same two figures the same way:

* GPU compute time (``gpu_compute_ms``): input and output stay in device memory; the enqueue
  (``execute_async_v3``, or the replay of its CUDA graph) between one event pair;
* host latency (``host_latency_ms``): the input copied from pinned host memory (H2D pair), the enqueue
  (compute pair), the outputs copied back to pinned host memory (D2H pair); the figure is the sum of the
  three, and ``last_query`` keeps the three parts of the latest one.

Each series keeps two queries in flight, as trtexec does, and begins with one query of its own that is not
reported, so that even the first reported query starts behind another.  Where the host takes longer to
enqueue a query than the GPU takes to run the one before, the GPU waits for the host and its idle time
counts, in these figures as in trtexec's; a CUDA graph shortens the enqueue.  Two differences from trtexec:
copies and compute go on one stream here (trtexec gives H2D, compute and D2H a stream each, so one query's
copies can overlap the next query's compute), and the two figures come from separate series of queries
(trtexec, with data transfers on, takes both from the same queries).

The context has fixed device buffers (``set_tensor_address``) and no output allocator, so its enqueue can be
captured into a CUDA graph once per input shape and replayed (trtexec's default from 11.0, ``--useCudaGraph``
in 10.x).  As trtexec does, the input is copied to the device and the enqueue runs once before capturing, so
that TensorRT's first-run work for a shape stays out of the graph.  Unlike trtexec, which then falls back to
plain enqueues with a warning, a failed capture is an error here: a row saying "+graph" was timed with one.
"""

from __future__ import annotations

import ctypes
from collections import deque
from collections.abc import Sequence
from typing import Any, NamedTuple, Optional

import numpy as np

from .cuda_runtime import CudaCalls
from .errors import BackendError

#: queries in flight at once, as trtexec's default (1 + overlap)
PIPELINE_DEPTH = 2
#: the event pairs of one query: H2D copies, the enqueue, D2H copies
SEGMENTS = ("h2d", "compute", "d2h")


class QueryTiming(NamedTuple):
    """Milliseconds of one host-latency query, each part between its own pair of CUDA events."""

    h2d: float
    compute: float
    d2h: float

    @property
    def latency(self) -> float:
        return self.h2d + self.compute + self.d2h


def capture_refused(name: str, detail: str) -> BackendError:
    return BackendError(
        f"{name} has operations that are not allowed under CUDA-graph capture ({detail}); time it without --cuda-graph"
    )


class EngineTimer:
    """One execution context of ``engine`` set up for one input batch (``host_input``: the input's bytes in the
    engine's input type) on optimization profile ``profile``.  Each call of ``gpu_compute_ms`` or
    ``host_latency_ms`` reports one query of a series that keeps ``PIPELINE_DEPTH`` queries in flight;
    ``close`` frees everything."""

    def __init__(
        self,
        engine: Any,
        input_name: str,
        output_names: Sequence[str],
        host_input: np.ndarray,
        shape: Sequence[int],
        profile: int,
        wrapper: Any,
        cuda_graph: bool = False,
        name: str = "engine",
    ):
        from polygraphy import cuda
        from polygraphy.datatype import DataType

        self.name = name
        self.calls = CudaCalls(wrapper)
        self.wrapper = wrapper
        self._device: list = []
        self._pinned: list[int] = []
        self._events: list[int] = []
        self._graph_exec: Optional[int] = None
        #: (event pairs of the query, whether it copies) of the queries in flight, oldest first
        self._in_flight: deque = deque()
        self._next_slot = 0
        #: the three parts of the latest host-latency query reported
        self.last_query: Optional[QueryTiming] = None
        self.context: Any = None
        self.stream: Any = cuda.Stream()
        try:
            self.context = engine.create_execution_context()
            if not self.context:
                raise BackendError(
                    f"TensorRT could not create a second execution context for {name} to time it "
                    "(too little GPU memory free?)"
                )
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
                    raise BackendError(
                        f"{name}: output {output!r} has a data-dependent shape {dims}, which fixed "
                        "buffers cannot hold; it cannot be timed this way"
                    )
                self.output_types.append(DataType.from_dtype(engine.get_tensor_dtype(output), "tensorrt"))
                itemsize = self.output_types[-1].itemsize
                self._copies_out.append(self._buffers(output, int(np.prod(dims)) * int(np.ceil(itemsize))))
            #: per slot, per segment, its (start, end) events
            self._slots: list[dict[str, tuple[int, int]]] = []
            for _ in range(PIPELINE_DEPTH):
                slot = {}
                for segment in SEGMENTS:
                    slot[segment] = (self._event(), self._event())
                self._slots.append(slot)
            self._copy_in()  # the GPU compute figure runs on the real input
            self._enqueue_directly()  # TensorRT's one-time work for this shape, kept out of the graph and timings
            self.stream.synchronize()
            if cuda_graph:
                self._graph_exec = self._capture()
        except BaseException:
            self.close()
            raise

    def _event(self) -> int:
        event = self.calls.event()
        self._events.append(event)
        return event

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

    def _capture(self) -> int:
        """The executable CUDA graph of one enqueue.  A refused capture ends with the capture closed, any graph
        it returned destroyed, and the first error raised."""
        from polygraphy.exception import PolygraphyException

        stream = self.stream.ptr
        self.calls.begin_capture(stream)
        try:
            enqueued = self.context.execute_async_v3(stream)
        except BaseException:
            self.calls.abandon_capture(stream)
            raise
        if not enqueued:
            self.calls.abandon_capture(stream)
            raise capture_refused(self.name, "execute_async_v3 returned False while the stream was capturing")
        try:
            graph = self.calls.end_capture(stream)
        except PolygraphyException as exc:
            self.calls.clear_last_error()
            cause = str(exc).strip().splitlines()[0].split(". ")[0]  # "CUDA Error: 901", without Polygraphy's link
            raise capture_refused(self.name, f"ending the capture failed: {cause}") from None
        try:
            return self.calls.instantiate(graph)
        finally:
            self.calls.destroy_graph(graph)  # the executable graph does not need it

    def _enqueue_directly(self) -> None:
        if not self.context.execute_async_v3(self.stream.ptr):
            raise BackendError(f"TensorRT failed to enqueue {self.name} (execute_async_v3 returned False)")

    def _enqueue(self) -> None:
        if self._graph_exec is not None:
            self.calls.launch(self._graph_exec, self.stream.ptr)
        else:
            self._enqueue_directly()

    def _copy_in(self) -> None:
        from polygraphy import cuda

        for device, pinned, nbytes in self._copies_in:
            self.wrapper.memcpy(device, pinned, nbytes, cuda.MemcpyKind.HostToDevice, self.stream.ptr)

    def _copy_out(self) -> None:
        from polygraphy import cuda

        for device, pinned, nbytes in self._copies_out:
            self.wrapper.memcpy(pinned, device, nbytes, cuda.MemcpyKind.DeviceToHost, self.stream.ptr)

    def _timed(self, events: tuple[int, int], work) -> None:
        self.calls.record(events[0], self.stream.ptr)
        work()
        self.calls.record(events[1], self.stream.ptr)

    def _submit(self, copies: bool) -> None:
        """Enqueue one query in the next free slot, each of its parts between that slot's events."""
        slot = self._slots[self._next_slot]
        self._next_slot = (self._next_slot + 1) % PIPELINE_DEPTH
        if copies:
            self._timed(slot["h2d"], self._copy_in)
        self._timed(slot["compute"], self._enqueue)
        if copies:
            self._timed(slot["d2h"], self._copy_out)
        self._in_flight.append((slot, copies))

    def _retire(self) -> QueryTiming:
        """Wait for the oldest query in flight to finish; its parts in milliseconds (copies 0 when it had none)."""
        slot, copies = self._in_flight.popleft()
        parts = [
            self.calls.elapsed_ms(*slot[segment]) if copies or segment == "compute" else 0.0 for segment in SEGMENTS
        ]
        return QueryTiming(*parts)

    def _drain(self) -> None:
        self.stream.synchronize()
        self._in_flight.clear()

    def _query(self, copies: bool) -> QueryTiming:
        """The next query of a series: enqueue one more, then wait for the oldest."""
        if self._in_flight and self._in_flight[0][1] != copies:
            self._drain()  # the other figure's series ends here
        if not self._in_flight:
            self._submit(copies)  # leads the series: its start event is reached on an idle stream
            self._submit(copies)
            self._retire()
        self._submit(copies)
        return self._retire()

    def gpu_compute_ms(self) -> float:
        """One query with device-resident input and output: the enqueue between its events (trtexec's
        "GPU Compute Time")."""
        return self._query(copies=False).compute

    def host_latency_ms(self) -> float:
        """One query from pinned host memory and back: H2D + GPU compute + D2H, each between its own events
        (trtexec's "Latency")."""
        self.last_query = self._query(copies=True)
        return self.last_query.latency

    def output_bytes(self, index: int = 0) -> bytes:
        """The pinned host copy of output ``index``, once every query in flight has finished."""
        self._drain()
        _, pinned, nbytes = self._copies_out[index]
        return ctypes.string_at(pinned, nbytes)

    def close(self) -> None:
        if self.stream is None:
            return
        self._drain()
        if self._graph_exec is not None:
            self.calls.destroy_graph_exec(self._graph_exec)
            self._graph_exec = None
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

    def __enter__(self) -> EngineTimer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
