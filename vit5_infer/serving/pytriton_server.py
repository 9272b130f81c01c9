"""``vit5 serve``: a model bound into NVIDIA Triton Inference Server through PyTriton.

PyTriton starts a real ``tritonserver`` (HTTP, gRPC, metrics, dynamic batcher, instance groups)
whose Python-backend stub forwards each batch of requests to a callable in this process; the
callable runs one of our runners (``BatchedModel``).  Two things the library does not do for us:

* The stub links ``libpython3.x.so`` by name.  Under an interpreter that is not the system one
  (pyenv, a venv of another build) the loader finds the system library of another patch release
  and the stub fails deep in ``multiprocessing``; the running interpreter's ``LIBDIR`` goes first
  on the server's ``LD_LIBRARY_PATH``.
* A port already taken makes ``tritonserver`` exit after a long start-up timeout; ports are
  checked before anything starts so the error is one line and immediate.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sysconfig
import tempfile
import threading
from pathlib import Path
from dataclasses import dataclass, field
from typing import Iterator, Optional

import numpy as np

from vit5_infer.vocabulary import Progress

from .batching import IMAGES_INPUT, BatchedModel
from .errors import SERVE_INSTALL_HINT, ServeError, ServeUnavailableError
from .signature import ModelSignature, probe_outputs
from .source import ServedModel

LOGGER = logging.getLogger(__name__)


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    #: model instances; each runs its own runner, so batches run concurrently
    instances: int = 1
    #: how long Triton may hold a request to grow a batch
    max_queue_delay_us: int = 0
    #: batch sizes the dynamic batcher aims for (default: as large as the queue allows)
    preferred_batch_sizes: tuple = ()
    #: seconds Triton waits for in-flight requests when stopping
    exit_timeout_s: int = 5
    log_verbose: int = 0
    #: where tritonserver writes its log (default: a temporary file, removed on stop)
    log_file: Optional[str] = None
    extra: dict = field(default_factory=dict)

    def check(self, signature: ModelSignature) -> None:
        if self.instances < 1:
            raise ServeError(f"--instances must be >= 1, got {self.instances}")
        if self.max_queue_delay_us < 0:
            raise ServeError(f"--max-queue-delay must be >= 0 microseconds, got {self.max_queue_delay_us}")
        too_big = [b for b in self.preferred_batch_sizes if not 1 <= b <= signature.max_batch]
        if too_big:
            raise ServeError(f"preferred batch sizes {too_big} lie outside 1..{signature.max_batch} (the max batch)")
        ports = {"HTTP": self.http_port, "gRPC": self.grpc_port, "metrics": self.metrics_port}
        if len(set(ports.values())) != len(ports):
            raise ServeError(f"the HTTP, gRPC and metrics ports must differ, got {ports}")
        for label, port in ports.items():
            if not 1 <= port <= 65535:
                raise ServeError(f"{label} port {port} is not a valid port")


def import_pytriton():
    """PyTriton's server-side modules, or a one-line ServeUnavailableError saying how to get them."""
    try:
        from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
        from pytriton.triton import Triton, TritonConfig
    except ImportError as exc:
        raise ServeUnavailableError(f"serving needs PyTriton ({exc.name or exc}): {SERVE_INSTALL_HINT}") from None
    except Exception as exc:  # noqa: BLE001 - e.g. a numpy ABI mismatch inside PyTriton
        raise ServeUnavailableError(
            f"PyTriton cannot be imported here ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            f"it needs numpy<2 in its environment: {SERVE_INSTALL_HINT}"
        ) from None
    return Triton, TritonConfig, ModelConfig, DynamicBatcher, Tensor


def port_in_use(host: str, port: int) -> bool:
    """True when ``port`` cannot be bound on ``host`` (another process listens there)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def check_ports_free(options: ServeOptions) -> None:
    for label, port, flag in (("HTTP", options.http_port, "--http-port"), ("gRPC", options.grpc_port, "--grpc-port"),
                              ("metrics", options.metrics_port, "--metrics-port")):
        if port_in_use(options.host, port):
            raise ServeError(f"{label} port {port} on {options.host} is already in use; choose another with {flag}")


@contextlib.contextmanager
def python_library_first() -> Iterator[None]:
    """While the server process is spawned: this interpreter's libpython first on LD_LIBRARY_PATH."""
    libdir = sysconfig.get_config_var("LIBDIR")
    previous = os.environ.get("LD_LIBRARY_PATH")
    if libdir:
        os.environ["LD_LIBRARY_PATH"] = libdir + (os.pathsep + previous if previous else "")
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("LD_LIBRARY_PATH", None)
        else:
            os.environ["LD_LIBRARY_PATH"] = previous


def _triton_dtype(spec):
    return np.bytes_ if spec.dtype == "bytes" else np.dtype(spec.dtype).type


class ModelServer:
    """A running Triton server with one model bound; a context manager (``stop`` on exit).

    ``start()`` loads one runner per instance, probes the outputs it really returns, binds them
    and waits until Triton reports the model ready.
    """

    def __init__(self, served: ServedModel, options: Optional[ServeOptions] = None, progress: Progress = None):
        self.served = served
        self.options = options or ServeOptions()
        self.signature: ModelSignature = served.signature
        self._progress = progress or (lambda message: None)
        self._runners: list = []
        self._triton = None
        self._workspace: Optional[tempfile.TemporaryDirectory] = None

    # ---- addresses ---------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.served.name

    def _client_host(self) -> str:
        return "127.0.0.1" if self.options.host in ("0.0.0.0", "") else self.options.host

    @property
    def http_url(self) -> str:
        return f"{self._client_host()}:{self.options.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self._client_host()}:{self.options.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self._client_host()}:{self.options.metrics_port}/metrics"

    # ---- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> "ModelServer":
        Triton, TritonConfig, ModelConfig, DynamicBatcher, Tensor = import_pytriton()
        self.options.check(self.signature)
        check_ports_free(self.options)
        self._workspace = tempfile.TemporaryDirectory(prefix="vit5-serve-")
        self.log_path = Path(self.options.log_file or Path(self._workspace.name) / "tritonserver.log")
        try:
            self._load_runners()
            self.signature = probe_outputs(self._runners[0], self.signature)
            self._progress(f"starting Triton with {self.options.instances} instance(s) of {self.served.describe()}")
            opts = self.options
            config = TritonConfig(
                http_address=opts.host, http_port=opts.http_port,
                grpc_address=opts.host, grpc_port=opts.grpc_port,
                metrics_address=opts.host, metrics_port=opts.metrics_port,
                allow_metrics=True, allow_gpu_metrics=False,
                exit_timeout_secs=opts.exit_timeout_s, log_verbose=opts.log_verbose,
                # tritonserver logs to this file, not to our terminal
                log_file=self.log_path,
                **opts.extra,
            )
            self._triton = Triton(config=config, workspace=os.path.join(self._workspace.name, "pytriton"))
            pixel = self.signature.pixel_input
            inputs = [
                Tensor(name=pixel.name, dtype=_triton_dtype(pixel), shape=tuple(pixel.dims), optional=True),
                Tensor(name=IMAGES_INPUT, dtype=np.bytes_, shape=(1,), optional=True),
            ]
            outputs = [Tensor(name=t.name, dtype=_triton_dtype(t), shape=tuple(t.dims)) for t in self.signature.outputs]
            batcher = DynamicBatcher(
                max_queue_delay_microseconds=opts.max_queue_delay_us,
                preferred_batch_size=list(opts.preferred_batch_sizes) or None,
            )
            callables = [_triton_callable(BatchedModel(runner, self.signature)) for runner in self._runners]
            self._triton.bind(
                model_name=self.name,
                infer_func=callables if len(callables) > 1 else callables[0],
                inputs=inputs,
                outputs=outputs,
                config=ModelConfig(max_batch_size=self.signature.max_batch, batcher=batcher),
                strict=False,
            )
            with python_library_first():
                self._triton.run()
            if not self._triton.is_alive():
                raise ServeError(f"tritonserver exited during start-up{self._log_tail()}")
        except BaseException as exc:
            tail = self._log_tail()
            self.stop()
            if isinstance(exc, (ServeError, KeyboardInterrupt)) or not isinstance(exc, Exception):
                raise
            from vit5_infer.errors import Vit5Error

            if isinstance(exc, Vit5Error):
                raise
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ServeError(f"Triton could not start {self.name}: {message}{tail}") from None
        return self

    def _load_runners(self) -> None:
        for index in range(self.options.instances):
            self._progress(f"loading runner {index + 1}/{self.options.instances} ({self.served.backend})")
            runner = self.served.new_runner()
            runner.__enter__()
            self._runners.append(runner)

    def _log_tail(self) -> str:
        try:
            log = self.log_path.read_text(encoding="utf-8", errors="replace")
        except (AttributeError, OSError):
            return ""
        lines = [line for line in log.splitlines() if line.startswith("E") or "error" in line.lower()]
        return f" (tritonserver: {lines[-1].strip()[:300]})" if lines else ""

    def is_alive(self) -> bool:
        return self._triton is not None and self._triton.is_alive()

    def stop(self) -> None:
        """Stop tritonserver (it gets SIGINT, then SIGKILL after a timeout) and free the runners."""
        triton, self._triton = self._triton, None
        if triton is not None:
            try:
                triton.stop()
            except Exception as exc:  # noqa: BLE001 - stopping must not raise over the original error
                LOGGER.warning("stopping Triton: %s", exc)
        for runner in self._runners:
            runner.release()
        self._runners = []
        if self._workspace is not None:
            self._workspace.cleanup()
            self._workspace = None

    def wait(self, stop: Optional[threading.Event] = None, poll_s: float = 0.5) -> None:
        """Block until ``stop`` is set or the server dies."""
        stop = stop or threading.Event()
        while self.is_alive() and not stop.wait(poll_s):
            pass

    def __enter__(self) -> "ModelServer":
        return self.start()

    def __exit__(self, *exc) -> bool:
        self.stop()
        return False


def _triton_callable(model: BatchedModel):
    """PyTriton hands the callable a list of ``Request`` objects (mapping-like, without ``get``)."""

    def infer(requests):
        return model([dict(request.items()) for request in requests])

    return infer


@contextlib.contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM while the block runs (the previous handlers come back after)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame):
        stop.set()

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def serve(served: ServedModel, options: Optional[ServeOptions] = None, progress: Progress = None,
          on_ready=None) -> None:
    """Start the server, call ``on_ready(server)``, serve until Ctrl-C/SIGTERM or until Triton dies,
    then stop it (tritonserver included)."""
    with stop_on_signals() as stop:
        with ModelServer(served, options, progress) as server:
            if on_ready is not None:
                on_ready(server)
            server.wait(stop)
            if not stop.is_set():
                raise ServeError(f"tritonserver stopped unexpectedly{server._log_tail()}")
