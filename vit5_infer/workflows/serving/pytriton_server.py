"""``vit5 serve``: a model bound into NVIDIA Triton Inference Server through PyTriton.

PyTriton starts a real ``tritonserver`` (HTTP, gRPC, metrics, dynamic batcher, instance groups)
whose Python-backend stub forwards each batch of requests to a callable in this process; the
callable runs one of our runners (``BatchedModel``).  Two things the library does not do for us:

* The stub links ``libpython3.x.so`` by name.  Under an interpreter that is not the system one
  (pyenv, a venv of another build) the loader finds the system library of another patch release
  and the stub fails deep in ``multiprocessing``; the running interpreter's ``LIBDIR`` goes first
  on the server's ``LD_LIBRARY_PATH``.
* A port already taken makes ``tritonserver`` exit after a long start-up timeout; ports (and the
  listen address) are checked before anything starts so the error is one line and immediate.
* tritonserver's HTTP front end parses a JSON request's data into a buffer sized from the shape the
  request declares, before comparing it with the data it carries: a tiny request declaring
  ``[1099511627776, 3, 32, 32]`` ends in ``std::bad_alloc`` and SIGABRT (the gRPC front end refuses
  it).  No tritonserver option bounds that buffer (``--http-max-input-size`` bounds the body, and
  the tritonserver 2.51.0 that PyTriton 0.7 bundles has none), so ``serve`` supervises the server:
  when it dies it logs one line with the reason read from tritonserver's own output and starts it
  again.
* PyTriton 0.7 has no way for the model callable to refuse one request: its Python-backend model
  (``pytriton/proxy/model.py``) turns any exception of the callable into one ``TritonModelException``
  for the whole batch, whose text is the formatted traceback, and Triton answers every request of
  the batch with INTERNAL (HTTP 500).  ``serve`` ships that model under another name beside a small
  model of its own (``REQUEST_ERRORS_MODEL``) which answers a response carrying ``ERROR_OUTPUT``
  with that request's own ``TritonError`` and code: a bad request gets INVALID_ARGUMENT (HTTP 400)
  with one line, the good requests of its batch get their outputs, and the log gets one line.
  Where a PyTriton release does not ship the model that way, a bad request is raised as a
  ``BadRequest`` that formats as one line (and fails its whole batch with INTERNAL).
* A tritonserver that does not exit cleanly (aborted, or killed after the exit timeout) leaves its
  copy of the model in ``/tmp/folderXXXXXX``; the copy names this server's workspace, which is how
  ``stop`` finds and removes it.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import itertools
import logging
import os
import re
import shutil
import signal
import socket
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from vit5_infer.engines.errors import first_line
from vit5_infer.errors import Vit5Error
from vit5_infer.files import check_output_path
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

    def check(self, signature: Optional[ModelSignature] = None, inputs: tuple = ()) -> None:
        """Every option, before anything loads or starts (those that depend on the model only with
        its ``signature``); ``inputs``: the files the server reads, which --log-file must not be."""
        if self.instances < 1:
            raise ServeError(f"--instances must be >= 1, got {self.instances}")
        if self.max_queue_delay_us < 0:
            raise ServeError(f"--max-queue-delay must be >= 0 microseconds, got {self.max_queue_delay_us}")
        if signature is not None:
            too_big = [b for b in self.preferred_batch_sizes if not 1 <= b <= signature.max_batch]
            if too_big:
                raise ServeError(
                    f"preferred batch sizes {too_big} lie outside 1..{signature.max_batch} (the max batch)"
                )
        ports = {"HTTP": self.http_port, "gRPC": self.grpc_port, "metrics": self.metrics_port}
        if len(set(ports.values())) != len(ports):
            raise ServeError(f"the HTTP, gRPC and metrics ports must differ, got {ports}")
        for label, port in ports.items():
            if not 1 <= port <= 65535:
                raise ServeError(f"{label} port {port} is not a valid port")
        listen_address(self.host)
        if self.log_file is not None:
            check_output_path(self.log_file, "--log-file", inputs=tuple(inputs))


def listen_address(host: str) -> str:
    """The IP address ``--host`` names (a literal, ``[v6]`` or a host name), checked to be one this
    machine can listen on; ServeError in one line otherwise."""
    text = host.strip()
    if not text:
        raise ServeError("--host is empty; give an address such as 127.0.0.1 or 0.0.0.0")
    literal = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        address = str(ipaddress.ip_address(literal))
    except ValueError:
        if re.fullmatch(r"[0-9.]+", literal) or ":" in literal:
            raise ServeError(f"--host {host!r} is not a valid IP address") from None
        try:
            found = socket.getaddrinfo(literal, None, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise ServeError(
                f"--host {host!r} is neither an IP address nor a host name that resolves here "
                f"({exc.strerror if isinstance(exc, socket.gaierror) else exc})"
            ) from None
        ipv4 = [entry for entry in found if entry[0] == socket.AF_INET]
        # sockaddr[0] of an AF_INET or AF_INET6 entry is the address text
        address = str((ipv4 or found)[0][4][0])
    if ":" in address:
        # PyTriton reaches its own server through a URL built from this address: "http://::1:PORT" is
        # invalid, and "[::1]:PORT" fails in its client with "Port could not be cast to integer value
        # as ':1:PORT'" (PyTriton 0.7.0).
        raise ServeError(
            f"--host {host}: IPv6 addresses cannot be served through PyTriton (its client cannot "
            "reach them); use an IPv4 address such as 127.0.0.1 or 0.0.0.0"
        )
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((address, 0))
        except OSError as exc:
            raise ServeError(
                f"--host {host}: cannot listen on {address} here ({exc.strerror}); "
                "give an address of this machine, e.g. 127.0.0.1 or 0.0.0.0"
            ) from None
    return address


def _url_host(address: str) -> str:
    """An address as the host part of a URL (IPv6 in brackets)."""
    return f"[{address}]" if ":" in address else address


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


def port_in_use(address: str, port: int) -> bool:
    """True when another socket listens on ``port`` at ``address`` (an IP address).  SO_REUSEADDR, as
    tritonserver sets it, so that connections of a server that just stopped do not count."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise ServeError(f"cannot listen on {address} port {port}: {exc.strerror}") from None
    return False


def check_ports_free(options: ServeOptions, wait_s: float = 0.0) -> None:
    """ServeError naming the first port in use; ``wait_s``: how long a port may take to be freed
    (a server that just died)."""
    address = listen_address(options.host)
    deadline = time.monotonic() + wait_s
    for label, port, flag in (
        ("HTTP", options.http_port, "--http-port"),
        ("gRPC", options.grpc_port, "--grpc-port"),
        ("metrics", options.metrics_port, "--metrics-port"),
    ):
        while port_in_use(address, port):
            if time.monotonic() >= deadline:
                raise ServeError(f"{label} port {port} on {options.host} is already in use; choose another with {flag}")
            time.sleep(0.25)


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


class _OneLineError(Exception):
    """An error raised to PyTriton that reaches the client as one line.

    PyTriton sends the client ``traceback.format_exception(exc, exc.__traceback__)``; this error has
    no traceback to format, so the client reads ``<ClassName>: <reason>`` and no path of this machine."""

    __module__ = "builtins"  # formatted by its bare class name, without the package path

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.__module__ = "builtins"

    @property
    def __traceback__(self):
        return None

    @__traceback__.setter
    def __traceback__(self, value) -> None:
        pass


class BadRequest(_OneLineError):
    """A request the model refuses (undecodable image, both inputs, ...)."""


class InferenceFailed(_OneLineError):
    """The runner failed on a batch that was read correctly."""


#: The key of a response of the model callable that answers its request with an error instead of
#: outputs: ``[code, message]`` as bytes, the code one of ERROR_CODES.
ERROR_OUTPUT = "vit5-request-error"
INVALID_ARG, INTERNAL = b"INVALID_ARG", b"INTERNAL"
ERROR_CODES = (INVALID_ARG, INTERNAL)

#: Where PyTriton's proxy model goes in the model's version folder when ours takes model.py.
PYTRITON_MODEL_MODULE = "pytriton_model"

#: model.py of the served model in Triton's Python backend: PyTriton's proxy model, whose responses
#: carrying ERROR_OUTPUT become that request's own error with its Triton error code.
REQUEST_ERRORS_MODEL = f"""\
import triton_python_backend_utils as pb_utils

from . import {PYTRITON_MODEL_MODULE} as proxy
from .{PYTRITON_MODEL_MODULE} import TritonPythonModel  # noqa: F401 - the class Triton instantiates

outputs_response = proxy._wrap_response


def response_or_error(response, requested_output_names, model_outputs):
    error = None if response.data is None else response.data.get({ERROR_OUTPUT!r})
    if error is None:
        return outputs_response(response, requested_output_names, model_outputs)
    code, message = (item if isinstance(item, bytes) else str(item).encode() for item in error.tolist())
    # pb_utils.TritonError exists once the stub runs the model, not while it imports this file.
    codes = pb_utils.TritonError
    code = getattr(codes, code.decode()) if code in {ERROR_CODES!r} else codes.INTERNAL
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message.decode("utf-8", "replace"), code))


proxy._wrap_response = response_or_error
"""


def error_response(code: bytes, message: str) -> dict[str, np.ndarray]:
    """The model callable's answer to one request that fails with ``code`` and one line ``message``."""
    return {ERROR_OUTPUT: np.array([code, message.encode("utf-8")], dtype=np.bytes_)}


def install_request_errors(triton, model_name: str) -> bool:
    """Make the bound model ``model_name`` of PyTriton's ``triton`` answer ERROR_OUTPUT responses with
    per-request errors (REQUEST_ERRORS_MODEL); False, changing nothing, where this PyTriton does not
    load its proxy model as the files this relies on."""
    manager = getattr(triton, "_model_manager", None)
    models = [m for m in getattr(manager, "models", ()) if getattr(m, "model_name", None) == model_name]
    if len(models) != 1 or not callable(getattr(models[0], "get_proxy_model_files", None)):
        return False
    model = models[0]
    proxy_files = model.get_proxy_model_files
    model_key = f"file:{model.model_version}/model.py"
    proxy_key = f"file:{model.model_version}/{PYTRITON_MODEL_MODULE}.py"
    try:
        files = proxy_files()
    except Exception:  # noqa: BLE001 - an unknown PyTriton: serve as it does
        return False
    source = files.get(model_key, b"") if isinstance(files, dict) else b""
    if b"def _wrap_response(" not in source or b"class TritonPythonModel" not in source or proxy_key in files:
        return False

    def files_with_request_errors() -> dict:
        files = proxy_files()
        files[proxy_key] = files.pop(model_key)
        files[model_key] = REQUEST_ERRORS_MODEL.encode()
        return files

    model.get_proxy_model_files = files_with_request_errors
    return True


class _PyTritonNoise(logging.Filter):
    """Drops PyTriton's multi-line records that ``serve`` says in one line itself: the traceback of
    every refused request, and its "exited with failure" (the supervisor names the real reason)."""

    DROPPED = ("Exception while performing inference", "Triton Inference Server exited with failure")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.DROPPED)


_NOISY_LOGGERS = ("pytriton.proxy.inference", "pytriton.server.triton_server")


class ModelServer:
    """A running Triton server with one model bound; a context manager (``stop`` on exit).

    ``start()`` loads one runner per instance, probes the outputs it really returns, binds them
    and waits until Triton reports the model ready.  ``restart()`` starts tritonserver again over
    the same runners after it died.
    """

    def __init__(self, served: ServedModel, options: Optional[ServeOptions] = None, progress: Progress = None):
        self.served = served
        self.options = options or ServeOptions()
        self.signature: ModelSignature = served.signature
        self._progress = progress or (lambda message: None)
        self._runners: list = []
        self._triton: Optional[Any] = None  # PyTriton's Triton while tritonserver runs
        self._triton_workspace: Optional[Path] = None
        self._starts = 0
        self._workspace: Optional[tempfile.TemporaryDirectory] = None
        self._filter = _PyTritonNoise()
        self._address = self.options.host

    # ---- addresses ---------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.served.name

    def _client_host(self) -> str:
        address = self._address
        if address in ("0.0.0.0", ""):
            return "127.0.0.1"
        if address == "::":
            return "[::1]"
        return _url_host(address)

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
    def start(self) -> ModelServer:
        import_pytriton()
        self.options.check(self.signature, inputs=self.served.inputs)
        self._address = listen_address(self.options.host)
        check_ports_free(self.options)
        for name in _NOISY_LOGGERS:
            logging.getLogger(name).addFilter(self._filter)
        self._workspace = tempfile.TemporaryDirectory(prefix="vit5-serve-")
        if self.options.log_file:
            self.log_path = Path(self.options.log_file)
        else:
            self.log_path = Path(self._workspace.name) / "tritonserver.log"
        try:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._load_runners()
            self.signature = probe_outputs(self._runners[0], self.signature)
            self._progress(f"starting Triton with {self.options.instances} instance(s) of {self.served.describe()}")
            self._start_triton()
        except BaseException as exc:
            tail = self._log_tail()
            self.stop()
            if isinstance(exc, (ServeError, KeyboardInterrupt)) or not isinstance(exc, Exception):
                raise
            if isinstance(exc, Vit5Error):
                raise
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ServeError(f"Triton could not start {self.name}: {message}{tail}") from None
        return self

    def _start_triton(self) -> None:
        """tritonserver with the model bound to the loaded runners, in a fresh PyTriton workspace."""
        Triton, TritonConfig, ModelConfig, DynamicBatcher, Tensor = import_pytriton()
        opts = self.options
        address = _url_host(self._address)  # tritonserver joins address and port with ':'
        config = TritonConfig(
            http_address=address,
            http_port=opts.http_port,
            grpc_address=address,
            grpc_port=opts.grpc_port,
            metrics_address=address,
            metrics_port=opts.metrics_port,
            allow_metrics=True,
            allow_gpu_metrics=False,
            exit_timeout_secs=opts.exit_timeout_s,
            log_verbose=opts.log_verbose,
            # tritonserver logs to this file, not to our terminal
            log_file=self.log_path,
            **opts.extra,
        )
        assert self._workspace is not None  # start() made it before any start of tritonserver
        self._starts += 1
        self._triton_workspace = Path(self._workspace.name) / f"pytriton-{self._starts}"
        self._triton = triton = Triton(config=config, workspace=str(self._triton_workspace))
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
        models = [BatchedModel(runner, self.signature) for runner in self._runners]
        per_request = [False]  # set once the model is bound, before tritonserver sends any request
        callables = [_triton_callable(model, per_request) for model in models]
        triton.bind(
            model_name=self.name,
            infer_func=callables if len(callables) > 1 else callables[0],
            inputs=inputs,
            outputs=outputs,
            config=ModelConfig(max_batch_size=self.signature.max_batch, batcher=batcher),
            strict=False,
        )
        output_names = {t.name for t in self.signature.outputs}
        per_request[0] = ERROR_OUTPUT not in output_names and install_request_errors(triton, self.name)
        if not per_request[0]:
            LOGGER.warning("this PyTriton cannot refuse one request alone: a bad request fails its whole batch")
        with python_library_first():
            triton.run()
        if not triton.is_alive():
            raise ServeError(f"tritonserver exited during start-up{self._log_tail()}")

    def restart(self) -> None:
        """Start tritonserver again (same ports, same runners) after it died."""
        self._stop_triton()
        check_ports_free(self.options, wait_s=30)
        try:
            self._start_triton()
        except BaseException as exc:
            tail = self._log_tail()
            self._stop_triton()
            if isinstance(exc, Vit5Error) or not isinstance(exc, Exception):
                raise
            raise ServeError(f"Triton could not restart {self.name}: {first_line(exc)}{tail}") from None

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

    def exit_reason(self) -> str:
        """Why tritonserver died, from what it printed (an uncaught C++ exception, a signal), else
        the last error line of its log."""
        output = ""
        server = getattr(self._triton, "_triton_server", None)
        with contextlib.suppress(Exception):
            output = server.logs() if server is not None else ""
        return describe_exit(output) or self._log_tail().strip(" ()") or "no reason in its output"

    def is_alive(self) -> bool:
        return self._triton is not None and self._triton.is_alive()

    def _stop_triton(self) -> None:
        triton, self._triton = self._triton, None
        if triton is not None:
            try:
                triton.stop()
            except Exception as exc:  # noqa: BLE001 - stopping must not raise over the original error
                LOGGER.warning("stopping Triton: %s", exc)
        if self._triton_workspace is not None:
            remove_model_copies(self._triton_workspace)

    def stop(self) -> None:
        """Stop tritonserver (it gets SIGINT, then SIGKILL after a timeout), remove what it left, and
        free the runners."""
        self._stop_triton()
        for runner in self._runners:
            runner.release()
        self._runners = []
        if self._workspace is not None:
            self._workspace.cleanup()
            self._workspace = None
        for name in _NOISY_LOGGERS:
            logging.getLogger(name).removeFilter(self._filter)

    def wait(self, stop: Optional[threading.Event] = None, poll_s: float = 0.5) -> None:
        """Block until ``stop`` is set or the server dies."""
        stop = stop or threading.Event()
        while self.is_alive() and not stop.wait(poll_s):
            pass

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def describe_exit(output: str) -> str:
    """The reason in tritonserver's own output: ``std::bad_alloc (signal 6)``, ``signal 11``, or ""."""
    thrown = re.findall(r"terminate called after throwing an instance of '([^']+)'", output)
    signals = re.findall(r"Signal \((\d+)\) received", output)
    parts = []
    if thrown:
        parts.append(f"uncaught {thrown[-1]}")
    if signals:
        parts.append(f"signal {signals[-1]}")
    return ", ".join(parts)


def remove_model_copies(workspace: Path, folders: Optional[list] = None) -> list[Path]:
    """Remove the model copies (``/tmp/folderXXXXXX``) that tritonserver made for the PyTriton
    workspace ``workspace`` and left behind: only folders of this user whose config.pbtxt names
    exactly that workspace, so another server's copy is never touched."""
    marker = f'string_value: "{Path(workspace)}"'
    if folders is None:
        roots = {Path("/tmp"), Path(tempfile.gettempdir())}
        folders = [p for root in roots if root.is_dir() for p in root.glob("folder??????")]
    removed = []
    for folder in folders:
        try:
            if folder.is_symlink() or folder.stat().st_uid != os.getuid():
                continue
            config = (folder / "config.pbtxt").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if marker in config:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _triton_callable(model: BatchedModel, per_request: Optional[list] = None):
    """PyTriton hands the callable a list of ``Request`` objects (mapping-like, without ``get``).

    Where ``per_request[0]`` is true (REQUEST_ERRORS_MODEL serves the model), each refused request is
    answered alone with INVALID_ARG and one line, and the others run; a failure of the runner answers
    the requests it ran with INTERNAL and one line.  Otherwise a refused request fails the whole
    batch as a one-line ``BadRequest``.  Either way each refusal is one log line, and the traceback
    of a runner failure stays in the server's own log."""
    per_request = [False] if per_request is None else per_request

    def infer(requests):
        inputs = [dict(request.items()) for request in requests]
        if per_request[0]:
            return _answer_each(model, inputs)
        try:
            return model(inputs)
        except Vit5Error as exc:
            LOGGER.warning("refused a request: %s", first_line(exc))
            raise BadRequest(first_line(exc)) from None
        except Exception as exc:  # noqa: BLE001 - the client gets one line; the traceback stays in our log
            LOGGER.error("inference failed: %s", first_line(exc), exc_info=True)
            raise InferenceFailed(f"{type(exc).__name__}: {first_line(exc)}") from None

    return infer


def _answer_each(model: BatchedModel, inputs: list) -> list[dict[str, np.ndarray]]:
    """One response per request: outputs, or an ERROR_OUTPUT with its code and one line."""
    read: list = [None] * len(inputs)
    try:
        read = model.read_each(inputs)
        outputs = iter(model.outputs_per_request([x for x in read if not isinstance(x, Vit5Error)]))
    except Exception as exc:  # noqa: BLE001 - the clients get one line; the traceback stays in our log
        LOGGER.error("inference failed: %s", first_line(exc), exc_info=True)
        failed = f"inference failed: {type(exc).__name__}: {first_line(exc)}"
        outputs = itertools.repeat(error_response(INTERNAL, failed))
    responses = []
    for item in read:
        if isinstance(item, Vit5Error):
            LOGGER.warning("refused a request: %s", first_line(item))
            responses.append(error_response(INVALID_ARG, first_line(item)))
        else:
            responses.append(next(outputs))
    return responses


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


#: At most this many restarts of a dying tritonserver within RESTART_WINDOW_S seconds; past that
#: something other than a stray request kills it and ``serve`` stops with the reason.
MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0


def serve(
    served: ServedModel,
    options: Optional[ServeOptions] = None,
    progress: Progress = None,
    on_ready=None,
    warn: Optional[Callable[[str], None]] = None,
) -> None:
    """Start the server, call ``on_ready(server)``, serve until Ctrl-C/SIGTERM, then stop it
    (tritonserver included).  A tritonserver that dies is started again, with one ``warn`` line
    naming the reason; one that keeps dying ends ``serve`` with a ServeError giving it."""
    warn = warn or LOGGER.warning
    with stop_on_signals() as stop:
        with ModelServer(served, options, progress) as server:
            if on_ready is not None:
                on_ready(server)
            restarts: list[float] = []
            while True:
                server.wait(stop)
                if stop.is_set():
                    return
                reason = server.exit_reason()
                now = time.monotonic()
                restarts = [t for t in restarts if now - t < RESTART_WINDOW_S] + [now]
                if len(restarts) > MAX_RESTARTS:
                    raise ServeError(
                        f"tritonserver died {len(restarts)} times within {RESTART_WINDOW_S:.0f} s; last: {reason}"
                    )
                warn(f"tritonserver died ({reason}); restarting it")
                server.restart()
