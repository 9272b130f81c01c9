"""``vit5 serve`` against hostile options and requests: one ``error:`` line for a bad option, one
line (to the client and in the log) for a bad request, a server that survives what kills
tritonserver, and nothing left behind when it stops.  Live servers listen on 127.0.0.1 only and
every wait is bounded."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from vit5_infer.errors import InputError
from vit5_infer.workflows.serving import RepositoryError, ServeError, ServeOptions, onnx_signature
from vit5_infer.workflows.serving.batching import BatchedModel
from vit5_infer.workflows.serving.pytriton_server import (
    BadRequest,
    InferenceFailed,
    _PyTritonNoise,
    _triton_callable,
    describe_exit,
    listen_address,
    remove_model_copies,
)
from vit5_infer.workflows.serving.source import model_name


def _vit5(*args) -> list[str]:
    return [sys.executable, "-m", "vit5_infer.cli.main", *map(str, args)]


# ---- --host -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "host, message",
    [
        ("", "--host is empty"),
        ("  ", "--host is empty"),
        ("999.1.1.1", "is not a valid IP address"),
        ("1.2.3", "is not a valid IP address"),
        ("abc.invalid", "neither an IP address nor a host name that resolves here"),
        ("8.8.8.8", "cannot listen on 8.8.8.8 here"),
        ("::1", "IPv6 addresses cannot be served through PyTriton"),
        ("[::1]", "IPv6 addresses cannot be served through PyTriton"),
    ],
)
def test_a_bad_host_is_named_not_taken_for_a_busy_port(host, message):
    """abc, 999.1.1.1 and 8.8.8.8 were reported as "port already in use"; "" failed after 120 s;
    ::1 gave "Invalid url http://::1:PORT" from PyTriton."""
    with pytest.raises(ServeError, match=message.replace(".", r"\.").replace("[", r"\[")):
        listen_address(host)


@pytest.mark.parametrize(
    "host, address", [("127.0.0.1", "127.0.0.1"), ("0.0.0.0", "0.0.0.0"), ("localhost", "127.0.0.1")]
)
def test_a_good_host_gives_its_address(host, address):
    assert listen_address(host) == address


# ---- --log-file ------------------------------------------------------------------------------------
def test_the_log_file_is_checked_as_an_output(digits_onnx, tmp_path):
    """--log-file equal to the served graph appended Triton's log to the model; a directory or a
    path under a file was accepted and no log was kept."""
    (tmp_path / "file").write_text("x")
    inputs = (digits_onnx,)
    for log_file, message in (
        (digits_onnx, "is also an input"),
        (tmp_path, "is a directory"),
        (tmp_path / "file" / "x.log", "is a file, not a folder"),
        (tmp_path / ("l" * 300), "longer than this filesystem allows"),
    ):
        with pytest.raises(InputError, match=message):
            ServeOptions(log_file=str(log_file)).check(onnx_signature(digits_onnx), inputs=inputs)
    ServeOptions(log_file=str(tmp_path / "new" / "triton.log")).check(inputs=inputs)  # created at start


def test_the_served_model_names_what_it_reads(digits_onnx, tmp_path):
    from vit5_infer.workflows.serving import resolve_served_model

    served = resolve_served_model(digits_onnx, tmp_path)
    assert digits_onnx in served.inputs


# ---- model names -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, message",
    [
        ("digits\n", "may hold only"),
        ("a" * 300, "300 characters long"),
        ("a b", "may hold only"),
        ("../x", "may hold only"),
    ],
)
def test_bad_model_names(name, message):
    """A trailing newline passed ('$' matches before it); 300 characters reached Triton."""
    with pytest.raises(RepositoryError, match=message):
        model_name("digits.onnx", name)


def test_a_long_file_stem_becomes_a_valid_name():
    assert len(model_name("x" * 250 + ".onnx")) == 200


# ---- one line per bad request ---------------------------------------------------------------------
class _Runner:
    name = "fake"

    def __init__(self, fail: bool = False):
        self.fail = fail

    def run(self, x):
        if self.fail:
            raise RuntimeError("device lost\nsecond line")
        return {"logits": np.zeros((len(x), 10), np.float32)}


def _formatted(exc: BaseException) -> str:
    """What PyTriton sends the client for an exception of the model callable."""
    return "".join(traceback.format_exception(None, exc, exc.__traceback__))


@pytest.mark.parametrize(
    "request_, reason",
    [
        (
            {"images": np.array([[b"not a png"]], dtype=object)},
            "request 0: images[0]: cannot decode 9 bytes as an image",
        ),
        (
            {"images": np.array([[b"x"]], dtype=object), "pixel_values": np.zeros((1, 3, 32, 32), np.float32)},
            "request 0: send exactly one of pixel_values and images",
        ),
    ],
)
def test_a_bad_request_is_one_line_for_the_client_and_the_log(digits_onnx, caplog, request_, reason):
    """Client errors came back with the full server traceback (package, venv and model store paths),
    and each wrote about 25 traceback lines to the server's stderr.  Here the callable as it runs
    where PyTriton cannot refuse one request alone (test_request_errors.py has the per-request path)."""
    infer = _triton_callable(BatchedModel(_Runner(), onnx_signature(digits_onnx)))
    with caplog.at_level(logging.WARNING), pytest.raises(BadRequest) as info:
        infer([request_])
    text = _formatted(info.value)
    assert text.startswith(f"BadRequest: {reason}") and text.count("\n") == 1, text
    assert "Traceback" not in text and "vit5_infer" not in text and "site-packages" not in text
    assert [r.getMessage() for r in caplog.records] == [f"refused a request: {info.value}"]


def test_a_runner_failure_is_one_line_for_the_client(digits_onnx, caplog):
    infer = _triton_callable(BatchedModel(_Runner(fail=True), onnx_signature(digits_onnx)))
    with caplog.at_level(logging.WARNING), pytest.raises(InferenceFailed) as info:
        infer([{"pixel_values": np.zeros((1, 3, 32, 32), np.float32)}])
    assert _formatted(info.value) == "InferenceFailed: RuntimeError: device lost\n"
    assert caplog.records[-1].exc_info is not None  # the traceback stays in the server's own log


def test_pytritons_multi_line_records_are_dropped():
    keep = logging.LogRecord("pytriton.proxy.inference", logging.WARNING, "", 0, "something else %s", ("x",), None)
    drop = logging.LogRecord(
        "pytriton.proxy.inference",
        logging.WARNING,
        "",
        0,
        "Exception while performing inference on requests=%s: %s",
        ("1", "Traceback..."),
        None,
    )
    gone = logging.LogRecord(
        "pytriton.server.triton_server",
        logging.WARNING,
        "",
        0,
        "Triton Inference Server exited with failure. Please wait.",
        (),
        None,
    )
    noise = _PyTritonNoise()
    assert noise.filter(keep) and not noise.filter(drop) and not noise.filter(gone)


# ---- why tritonserver died, and what it left ---------------------------------------------------------
def test_the_exit_reason_is_read_from_tritonservers_output():
    output = (
        "I1206 model_lifecycle.cc:839] successfully loaded 'digits'\n"
        "terminate called after throwing an instance of 'std::bad_alloc'\n  what():  std::bad_alloc\n"
        "Signal (6) received.\n 0# 0x000055 in tritonserver\n"
    )
    assert describe_exit(output) == "uncaught std::bad_alloc, signal 6"
    assert describe_exit("Signal (11) received.\n") == "signal 11"
    assert describe_exit("all fine\n") == ""


def test_only_this_servers_model_copy_is_removed(tmp_path):
    """An aborted tritonserver left /tmp/folderXXXXXX; another server's copy must survive the cleanup."""
    ours, theirs = tmp_path / "folderAAAAAA", tmp_path / "folderBBBBBB"
    for folder, workspace in ((ours, "/tmp/vit5-serve-1/pytriton-1"), (theirs, "/tmp/vit5-serve-2/pytriton-1")):
        (folder / "1").mkdir(parents=True)
        (folder / "config.pbtxt").write_text(
            f'parameters {{\n  key: "workspace-path"\n  value {{\n    string_value: "{workspace}"\n  }}\n}}\n'
        )
    removed = remove_model_copies(Path("/tmp/vit5-serve-1/pytriton-1"), folders=[ours, theirs])
    assert removed == [ours] and not ours.exists() and theirs.is_dir()
    assert remove_model_copies(Path("/tmp/vit5-serve-1/pytriton-10"), folders=[theirs]) == []


# ---- the command -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, message",
    [
        (("--host", "abc.invalid"), "neither an IP address nor a host name"),
        (("--host", "8.8.8.8"), "cannot listen on 8.8.8.8"),
        (("--host", ""), "--host is empty"),
        (("--host", "::1"), "IPv6 addresses"),
        (("--log-file", "{graph}"), "is also an input of this command"),
        (("--log-file", "{tmp}"), "is a directory"),
        (("--name", "digits\n"), "may hold only"),
    ],
)
def test_vit5_serve_refuses_in_one_line(serve_extra, digits_onnx, free_ports, tmp_path, args, message):
    http, grpc, metrics = free_ports(3)
    args = [a.format(graph=digits_onnx, tmp=tmp_path) for a in args]
    start = time.monotonic()
    proc = subprocess.run(
        _vit5("serve", digits_onnx, "--http-port", http, "--grpc-port", grpc, "--metrics-port", metrics, *args),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert "already in use" not in proc.stderr
    assert time.monotonic() - start < 60


def _model_copies(name: str) -> list[Path]:
    """tritonserver's model copies in /tmp that belong to model ``name``."""
    found = []
    for folder in Path("/tmp").glob("folder??????"):
        try:
            if f'name: "{name}"' in (folder / "config.pbtxt").read_text():
                found.append(folder)
        except OSError:
            pass
    return found


def _post(http: int, name: str, tensor: dict, timeout: float = 60) -> tuple:
    body = json.dumps({"inputs": [tensor]}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{http}/v2/models/{name}/infer", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, ConnectionError, OSError) as exc:
        return None, repr(exc)


def _ready(http: int, name: str, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http}/v2/models/{name}/ready", timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.5)
    return False


@pytest.mark.slow
def test_vit5_serve_survives_hostile_requests_and_leaves_nothing(serve_extra, digits_onnx, free_ports, tmp_path):
    """One live `vit5 serve` on 127.0.0.1: the ready line without markup; an undecodable image gets
    one line; a request declaring [1099511627776, 3, 32, 32] with one value (std::bad_alloc in
    tritonserver's HTTP JSON parser) kills tritonserver, which comes back with one log line naming
    the reason; SIGTERM with a request queued exits 0 and leaves no /tmp/folderXXXXXX."""
    http, grpc, metrics = free_ports(3)
    name = f"hostile-{os.getpid()}"
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        # A long queue delay keeps a single-item request queued; a full batch (8) runs at once.
        proc = subprocess.Popen(
            _vit5(
                "serve",
                digits_onnx,
                "--name",
                name,
                "--http-port",
                http,
                "--grpc-port",
                grpc,
                "--metrics-port",
                metrics,
                "--threads",
                "1",
                "--max-queue-delay",
                30_000_000,
                "--log-file",
                tmp_path / "logs" / "triton.log",
            ),
            stdout=stdout,
            stderr=stderr,
            cwd=tmp_path,
        )
    try:
        assert _ready(http, name, 120), err.read_text()
        deadline = time.monotonic() + 30
        while "metrics" not in out.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert f"serving {name} (ort, max batch 8, 1 instance(s)); Ctrl-C to stop" in err.read_text()
        assert "successfully loaded" in (tmp_path / "logs" / "triton.log").read_text()  # its folder was made
        assert "[bold]" not in err.read_text() and "[/]" not in err.read_text()

        status, body = _post(
            http, name, {"name": "images", "shape": [8, 1], "datatype": "BYTES", "data": ["not a png"] * 8}
        )
        assert status == 400, (status, body)
        assert json.loads(body) == {"error": "images[0]: cannot decode 9 bytes as an image (UnidentifiedImageError)"}
        assert "vit5_infer" not in body and "site-packages" not in body and ".venv" not in body, body
        refused = [line for line in err.read_text().splitlines() if "refused a request" in line]
        assert len(refused) == 1, err.read_text()

        status, body = _post(
            http,
            name,
            {"name": "pixel_values", "shape": [1099511627776, 3, 32, 32], "datatype": "FP32", "data": [0.0]},
            timeout=30,
        )
        assert status is None or status >= 400, (status, body)
        assert _ready(http, name, 120), err.read_text()
        died = [line for line in err.read_text().splitlines() if "tritonserver died" in line]
        assert died == ["warning: tritonserver died (uncaught std::bad_alloc, signal 6); restarting it"], (
            err.read_text()
        )

        x = np.zeros((8, 3, 32, 32), np.float32)
        status, body = _post(
            http,
            name,
            {"name": "pixel_values", "shape": list(x.shape), "datatype": "FP32", "data": x.reshape(-1).tolist()},
        )
        assert status == 200 and json.loads(body)["outputs"][0]["shape"] == [8, 10], body

        queued = threading.Thread(
            target=_post,
            args=(
                http,
                name,
                {"name": "pixel_values", "shape": [1, 3, 32, 32], "datatype": "FP32", "data": [0.0] * 3072},
                60,
            ),
        )
        queued.start()
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == 0, err.read_text()
        queued.join(timeout=60)
        text = err.read_text()
        assert "exited with failure" not in text and "Traceback" not in text, text
        assert text.strip().splitlines()[-1] == "stopped"
        assert _model_copies(name) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def _binary_request(port: int, name: str, header: dict, payload: bytes) -> tuple:
    """One request in Triton's binary tensor extension: a JSON header, then raw bytes."""
    import http.client

    head = json.dumps(header).encode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(
            "POST",
            f"/v2/models/{name}/infer",
            body=head + payload,
            headers={"Inference-Header-Content-Length": str(len(head))},
        )
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    except (ConnectionError, OSError) as exc:
        return None, repr(exc)
    finally:
        connection.close()


HUGE = 1099511627776
_PNG_LENGTH = 4  # the binary BYTES element: a 4-byte little-endian length, then the bytes


@pytest.mark.slow
def test_requests_that_claim_more_than_they_carry_never_get_an_answer_or_stop_the_server(
    serve_extra, digits_onnx, digits_images, free_ports, tmp_path
):
    """Every way found for a request to declare more data than it carries: JSON data shorter than the
    shape, a shape past int64 when multiplied out, negative dims, a binary size larger than the body, a
    huge declared batch of encoded images (Triton let [1099511627776, 1] with one element through to the
    model, which answered 200 for one image).  None gets a 200; after each the server is ready again."""
    png = digits_images[0][0].read_bytes()
    element = len(png).to_bytes(_PNG_LENGTH, "little") + png
    http, grpc, metrics = free_ports(3)
    name = f"claims-{os.getpid()}"
    err = tmp_path / "err.txt"
    with open(err, "w") as stderr:
        proc = subprocess.Popen(
            _vit5(
                "serve",
                digits_onnx,
                "--name",
                name,
                "--http-port",
                http,
                "--grpc-port",
                grpc,
                "--metrics-port",
                metrics,
                "--threads",
                "1",
            ),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            cwd=tmp_path,
        )
    json_cases = [
        {"name": "pixel_values", "shape": [HUGE, 3, 32, 32], "datatype": "FP32", "data": [0.0]},
        {"name": "pixel_values", "shape": [2**62, 3, 32, 32], "datatype": "FP32", "data": [0.0]},
        {"name": "pixel_values", "shape": [-1, 3, 32, 32], "datatype": "FP32", "data": [0.0]},
        {"name": "pixel_values", "shape": [2, 3, 32, 32], "datatype": "FP32", "data": [0.0] * 3072},
        {"name": "images", "shape": [HUGE, 1], "datatype": "BYTES", "data": ["x"]},
    ]
    binary_cases = [
        (
            {
                "inputs": [
                    {
                        "name": "pixel_values",
                        "shape": [HUGE, 3, 32, 32],
                        "datatype": "FP32",
                        "parameters": {"binary_data_size": HUGE * 3 * 32 * 32 * 4},
                    }
                ]
            },
            b"\0" * 16,
        ),
        (
            {
                "inputs": [
                    {
                        "name": "pixel_values",
                        "shape": [1, 3, 32, 32],
                        "datatype": "FP32",
                        "parameters": {"binary_data_size": 12288},
                    }
                ]
            },
            b"\0" * 16,
        ),
        (
            {
                "inputs": [
                    {
                        "name": "images",
                        "shape": [HUGE, 1],
                        "datatype": "BYTES",
                        "parameters": {"binary_data_size": len(element)},
                    }
                ]
            },
            element,
        ),
        (
            {
                "inputs": [
                    {
                        "name": "images",
                        "shape": [2, 1],
                        "datatype": "BYTES",
                        "parameters": {"binary_data_size": len(element)},
                    }
                ]
            },
            element,
        ),
    ]
    try:
        assert _ready(http, name, 120), err.read_text()
        answers = [_post(http, name, case, timeout=60) for case in json_cases[:1]]
        assert _ready(http, name, 120), err.read_text()
        for case in json_cases[1:]:
            answers.append(_post(http, name, case, timeout=60))
            assert _ready(http, name, 120), (case, err.read_text())
        for header, payload in binary_cases:
            answers.append(_binary_request(http, name, header, payload))
            assert _ready(http, name, 120), (header, err.read_text())
        for status, body in answers:
            assert status != 200, body
        assert any(status == 400 and "images must be [batch, 1], got [1]" in body for status, body in answers), answers
        x = np.zeros((1, 3, 32, 32), np.float32)
        status, body = _post(
            http,
            name,
            {"name": "pixel_values", "shape": [1, 3, 32, 32], "datatype": "FP32", "data": x.reshape(-1).tolist()},
        )
        assert status == 200, body
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=90) == 0, err.read_text()
        assert "Traceback" not in err.read_text()
        assert _model_copies(name) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def test_a_server_that_keeps_dying_ends_serve_with_the_reason(monkeypatch):
    """The supervisor restarts a dead tritonserver with one line each time, and gives up (an error
    naming the reason) past MAX_RESTARTS within the window.  A stand-in replaces the server: what is
    tested is the supervision loop, not Triton."""
    from vit5_infer.workflows.serving import pytriton_server

    class DeadServer:
        restarts = 0

        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def wait(self, stop):
            pass  # returns at once: tritonserver is dead

        def exit_reason(self):
            return "uncaught std::bad_alloc, signal 6"

        def restart(self):
            DeadServer.restarts += 1

    monkeypatch.setattr(pytriton_server, "ModelServer", DeadServer)
    warnings = []
    with pytest.raises(ServeError, match=r"tritonserver died 6 times within 60 s; last: uncaught std::bad_alloc"):
        pytriton_server.serve(None, warn=warnings.append)
    assert DeadServer.restarts == pytriton_server.MAX_RESTARTS
    assert warnings == ["tritonserver died (uncaught std::bad_alloc, signal 6); restarting it"] * 5


def test_a_max_batch_past_memory_is_refused_before_serving(digits_onnx, tmp_path):
    """The bound triton-repo's --max-batch has holds for vit5 serve too (one signature check)."""
    from vit5_infer.workflows.serving import resolve_served_model

    with pytest.raises(RepositoryError, match="max batch 100000000 needs about .* use a smaller max batch"):
        resolve_served_model(digits_onnx, tmp_path, max_batch=100_000_000)
    assert resolve_served_model(digits_onnx, tmp_path, max_batch=64).signature.max_batch == 64
