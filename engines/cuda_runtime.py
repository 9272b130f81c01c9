"""The CUDA runtime (libcudart) that Polygraphy's CUDA wrapper drives: finding the one that matches the
installed TensorRT, naming the pip package that provides it when none is found, and the few runtime calls
(events, pinned memory, CUDA graphs) that trtexec-style timing needs beyond Polygraphy's wrapper.

Polygraphy 0.53.6 looks for ``libcudart.so*`` on LD_LIBRARY_PATH, in /usr/local/cuda/lib64, /usr/lib, /lib
and in ``<site-packages>/nvidia/cuda_runtime/lib`` (where the CUDA 11 and 12 runtime wheels put it).  The
CUDA 13 runtime wheel (``nvidia-cuda-runtime`` 13.x; ``nvidia-cuda-runtime-cu13`` is only a deprecated
placeholder) installs ``<site-packages>/nvidia/cu13/lib/libcudart.so.13``, which that search never reaches,
so a pip-only CUDA 13 install of TensorRT would have no CUDA runtime for Polygraphy.  ``polygraphy_cuda`` points
Polygraphy's own search at the wheel's directory matching TensorRT's CUDA major while its wrapper is
created; with the major unknown, only when Polygraphy's own search finds no runtime at all.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Optional

#: CUDA major -> (the pip package that ships its libcudart, that library's folder under site-packages).
#: Read from the wheels' file lists: nvidia-cuda-runtime 13.x has nvidia/cu13/lib/libcudart.so.13;
#: nvidia-cuda-runtime-cu12 12.x and -cu11 11.x have nvidia/cuda_runtime/lib/libcudart.so.{12,11.0}.
RUNTIME_WHEELS = {
    13: ("nvidia-cuda-runtime", ("nvidia", "cu13", "lib")),
    12: ("nvidia-cuda-runtime-cu12", ("nvidia", "cuda_runtime", "lib")),
    11: ("nvidia-cuda-runtime-cu11", ("nvidia", "cuda_runtime", "lib")),
}


def runtime_package(cuda_major: Optional[int]) -> str:
    """The pip requirement that provides libcudart for ``cuda_major`` (e.g. ``nvidia-cuda-runtime>=13,<14``)."""
    if cuda_major in RUNTIME_WHEELS:
        name = RUNTIME_WHEELS[cuda_major][0]
        return f"'{name}>={cuda_major},<{cuda_major + 1}'" if name == "nvidia-cuda-runtime" else name
    return " or ".join(RUNTIME_WHEELS[major][0] for major in sorted(RUNTIME_WHEELS, reverse=True)[:2])


def cudart_hint(cuda_major: Optional[int]) -> str:
    """What to install when no CUDA runtime is found, for a TensorRT built for ``cuda_major`` (None: unknown)."""
    which = f"the CUDA {cuda_major} runtime" if cuda_major else "the CUDA runtime"
    return f"pip install {runtime_package(cuda_major)} ({which}), or put the CUDA toolkit's lib64 on LD_LIBRARY_PATH"


def find_cudart(cuda_major: Optional[int], search_paths: Optional[Iterable[str]] = None) -> Optional[Path]:
    """libcudart of CUDA ``cuda_major`` installed by its pip wheel under one of ``search_paths`` (sys.path by
    default); with the major unknown, the newest wheel runtime found.  None when there is none (Linux only:
    the wheels' Windows layout is left to Polygraphy's own search)."""
    if sys.platform.startswith("win"):
        return None
    paths = [p for p in (sys.path if search_paths is None else search_paths) if p and os.path.isdir(p)]
    majors = [cuda_major] if cuda_major in RUNTIME_WHEELS else sorted(RUNTIME_WHEELS, reverse=True)
    for major in majors:
        folder = RUNTIME_WHEELS[major][1]
        for root in paths:
            found = sorted(Path(root, *folder).glob(f"libcudart.so.{major}*"))
            if found:
                return found[0]
    return None


def _polygraphy_wrapper_exists() -> bool:
    from polygraphy.cuda import cuda as polygraphy_cuda

    return getattr(polygraphy_cuda, "G_CUDA", None) is not None


@contextlib.contextmanager
def _first_on_library_path(folder: Optional[Path]) -> Iterator[None]:
    if folder is None:
        yield
        return
    saved = os.environ.get("LD_LIBRARY_PATH")
    os.environ["LD_LIBRARY_PATH"] = os.pathsep.join([str(folder)] + ([saved] if saved else []))
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("LD_LIBRARY_PATH", None)
        else:
            os.environ["LD_LIBRARY_PATH"] = saved


def _polygraphy_finds_cudart() -> bool:
    """Whether Polygraphy's own search (``_find_cuda_lib_dirs`` of polygraphy/cuda/cuda.py, globbed as its
    wrapper globs it) finds a libcudart; True when this Polygraphy has no such search to ask."""
    from polygraphy import util
    from polygraphy.cuda import cuda as polygraphy_cuda_module

    search = getattr(polygraphy_cuda_module, "_find_cuda_lib_dirs", None)
    if search is None:
        return True
    return bool(util.find_in_dirs("libcudart.so*", search()))


def polygraphy_cuda(cuda_major: Optional[int], search_paths: Optional[Sequence[str]] = None):
    """Polygraphy's global CUDA wrapper (``polygraphy.cuda.wrapper()``).  When it does not exist yet, it is
    created with the wheel runtime matching ``cuda_major`` first in its search (Polygraphy reads
    LD_LIBRARY_PATH there, and loads the library by its full path); the process environment is left as it
    was.  With the major unknown (a TensorRT not installed from a CUDA-specific wheel), Polygraphy's own
    search order (LD_LIBRARY_PATH, the toolkit, system folders, then the CUDA 11/12 wheels) decides, and a
    wheel runtime is added only where that search finds none.  Raises what Polygraphy raises
    (PolygraphyException, OSError) when no runtime loads."""
    from polygraphy import cuda

    if _polygraphy_wrapper_exists():
        return cuda.wrapper()
    library = None
    if cuda_major is not None or not _polygraphy_finds_cudart():
        library = find_cudart(cuda_major, search_paths)
    with _first_on_library_path(library.parent if library is not None else None):
        return cuda.wrapper()


#: cudaStreamCaptureMode (driver_types.h): cudaStreamCaptureModeGlobal 0, ThreadLocal 1, Relaxed 2.  trtexec
#: captures its enqueue with ThreadLocal (samples/common/sampleDevice.h), as done here.
CAPTURE_MODE_THREAD_LOCAL = 1


class CudaCalls:
    """The CUDA runtime calls Polygraphy's wrapper lacks (events, pinned host memory, stream capture and
    graphs), made on the same libcudart handle and checked by the wrapper's own ``check`` (a non-zero
    cudaError_t becomes a PolygraphyException).  Each call's C prototype is in cuda_runtime_api.h (CUDA 11.4
    to 13.x); tests/engines/trt_standins.py lists them (CUDART_SIGNATURES)."""

    def __init__(self, wrapper):
        self.wrapper = wrapper
        self.lib = wrapper.handle

    def _out(self, function, *args, out_type=ctypes.c_void_p) -> Any:
        value = out_type()
        self.wrapper.check(function(ctypes.byref(value), *args))
        return value.value

    # events: cudaEventCreate(cudaEvent_t*), cudaEventRecord(cudaEvent_t, cudaStream_t),
    # cudaEventSynchronize(cudaEvent_t), cudaEventElapsedTime(float*, cudaEvent_t, cudaEvent_t), cudaEventDestroy
    def event(self) -> int:
        return self._out(self.lib.cudaEventCreate)

    def record(self, event: int, stream: int) -> None:
        self.wrapper.check(self.lib.cudaEventRecord(ctypes.c_void_p(event), ctypes.c_void_p(stream)))

    def elapsed_ms(self, start: int, end: int) -> float:
        """Milliseconds of GPU time between two recorded events, once ``end`` has happened."""
        self.wrapper.check(self.lib.cudaEventSynchronize(ctypes.c_void_p(end)))
        return float(
            self._out(
                self.lib.cudaEventElapsedTime, ctypes.c_void_p(start), ctypes.c_void_p(end), out_type=ctypes.c_float
            )
        )

    def destroy_event(self, event: int) -> None:
        self.wrapper.check(self.lib.cudaEventDestroy(ctypes.c_void_p(event)))

    # pinned host memory: cudaMallocHost(void**, size_t), cudaFreeHost(void*)
    def host_alloc(self, nbytes: int) -> int:
        return self._out(self.lib.cudaMallocHost, ctypes.c_size_t(max(1, nbytes)))

    def host_free(self, pointer: int) -> None:
        self.wrapper.check(self.lib.cudaFreeHost(ctypes.c_void_p(pointer)))

    # graphs: cudaStreamBeginCapture(cudaStream_t, cudaStreamCaptureMode), cudaStreamEndCapture(cudaStream_t,
    # cudaGraph_t*), cudaGraphInstantiateWithFlags(cudaGraphExec_t*, cudaGraph_t, unsigned long long) - the
    # same three arguments in CUDA 11.4 to 13.x, where cudaGraphInstantiate itself changed in 12.0 -,
    # cudaGraphLaunch(cudaGraphExec_t, cudaStream_t), cudaGraphExecDestroy, cudaGraphDestroy; cudaGetLastError(void)
    def begin_capture(self, stream: int) -> None:
        self.wrapper.check(
            self.lib.cudaStreamBeginCapture(ctypes.c_void_p(stream), ctypes.c_int(CAPTURE_MODE_THREAD_LOCAL))
        )

    def end_capture(self, stream: int) -> int:
        """The graph captured on ``stream``; a failure raises, after destroying any graph it returned."""
        graph = ctypes.c_void_p()
        status = self.lib.cudaStreamEndCapture(ctypes.c_void_p(stream), ctypes.byref(graph))
        if status and graph.value:
            self.lib.cudaGraphDestroy(graph)
        self.wrapper.check(status)
        return int(graph.value or 0)

    def abandon_capture(self, stream: int) -> None:
        """End a capture that has already failed: the graph it returns, if any, is destroyed, and neither the
        end's error nor the runtime's last error is raised (the failure that led here is the one to report).
        An invalidated capture returns no graph; one TensorRT gave up on returns a graph not to be used."""
        graph = ctypes.c_void_p()
        self.lib.cudaStreamEndCapture(ctypes.c_void_p(stream), ctypes.byref(graph))
        if graph.value:
            self.lib.cudaGraphDestroy(graph)
        self.clear_last_error()

    def clear_last_error(self) -> None:
        """Reset the runtime's last error, so that a failed capture is not reported again by later calls."""
        self.lib.cudaGetLastError()

    def instantiate(self, graph: int) -> int:
        return self._out(self.lib.cudaGraphInstantiateWithFlags, ctypes.c_void_p(graph), ctypes.c_ulonglong(0))

    def launch(self, graph_exec: int, stream: int) -> None:
        self.wrapper.check(self.lib.cudaGraphLaunch(ctypes.c_void_p(graph_exec), ctypes.c_void_p(stream)))

    def destroy_graph(self, graph: int) -> None:
        self.wrapper.check(self.lib.cudaGraphDestroy(ctypes.c_void_p(graph)))

    def destroy_graph_exec(self, graph_exec: int) -> None:
        self.wrapper.check(self.lib.cudaGraphExecDestroy(ctypes.c_void_p(graph_exec)))
