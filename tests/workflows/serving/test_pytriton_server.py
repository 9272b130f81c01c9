"""A real Triton server (PyTriton) on free loopback ports: answers, faults, shutdown.

Every test talks only to 127.0.0.1 and every wait is bounded.  Starting tritonserver takes
seconds, so the tests that need one are in the slow tier; .ci/run runs them in the serve
environment (PyTriton needs numpy<2).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from vit5_infer.metrics import compare_logits, within_tolerance
from vit5_infer.preprocessing import load_image
from vit5_infer.workflows.serving import (
    ModelServer,
    ServeError,
    ServeOptions,
    ServeUnavailableError,
    resolve_served_model,
)

REPO = Path(__file__).resolve().parents[3]


def loopback_options(free_ports, **kw) -> ServeOptions:
    http, grpc, metrics = free_ports(3)
    return ServeOptions(host="127.0.0.1", http_port=http, grpc_port=grpc, metrics_port=metrics, **kw)


@pytest.fixture(scope="module")
def server(serve_extra, digits_onnx, free_ports, tmp_path_factory):
    served = resolve_served_model(digits_onnx, tmp_path_factory.mktemp("served"), threads=1)
    # A queue delay makes concurrent single-image requests meet in one batch deterministically enough.
    with ModelServer(served, loopback_options(free_ports, max_queue_delay_us=20_000)) as running:
        yield running


def client(server, protocol="http"):
    from vit5_infer.workflows.serving.client import TritonModelClient

    return TritonModelClient(
        server.http_url if protocol == "http" else server.grpc_url, server.name, protocol, timeout_s=60
    )


def pixels(batch: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 3, 32, 32)).astype(np.float32)


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_logits_equal_the_in_process_runner(server, reference, protocol):
    x = pixels(5, seed=1)
    with client(server, protocol) as c:
        assert c.is_ready()
        out = c.infer(x)
    assert list(out) == ["logits"]
    metrics = compare_logits(reference.infer(x), out["logits"])
    assert within_tolerance(metrics, "fp32")[0], metrics


@pytest.mark.slow
def test_encoded_images_are_classified_as_in_process(server, reference, digits_onnx, digits_images):
    from vit5_infer.workflows.serving import onnx_signature

    pre = onnx_signature(digits_onnx).preprocessing
    chosen = digits_images[::4][:8]  # one request holds at most max batch (8) images
    files, labels = [p for p, _ in chosen], np.array([label for _, label in chosen])
    with client(server, "grpc") as c:
        out = c.infer(images=[p.read_bytes() for p in files])["logits"]
    expected = reference.infer(np.stack([load_image(p, pre) for p in files]))
    assert within_tolerance(compare_logits(expected, out), "fp32")[0]
    assert (out.argmax(1) == labels).mean() >= 7 / 8


def _raw_infer(server, tensor: dict) -> tuple[int, str]:
    """One HTTP/JSON inference request by hand: (status, body)."""
    body = json.dumps({"inputs": [tensor]}).encode()
    request = urllib.request.Request(
        f"http://{server.http_url}/v2/models/{server.name}/infer",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.slow
@pytest.mark.parametrize(
    "tensor, message",
    [
        (
            {"name": "pixel_values", "shape": [1, 3, 16, 32], "datatype": "FP32", "data": [0.0] * 1536},
            "unexpected shape for input 'pixel_values'",
        ),
        (
            {"name": "pixel_values", "shape": [1, 3, 32, 32], "datatype": "INT32", "data": [0] * 3072},
            "data-type is 'INT32', but model 'digits' expects 'FP32'",
        ),
        (
            {"name": "images", "shape": [1, 1], "datatype": "BYTES", "data": ["not a png"]},
            "images[0]: cannot decode 9 bytes as an image",
        ),
        ({"name": "nonsense", "shape": [1], "datatype": "FP32", "data": [0.0]}, "unexpected inference input"),
    ],
)
def test_malformed_requests_get_an_error_and_the_server_keeps_serving(server, reference, tensor, message):
    status, body = _raw_infer(server, tensor)
    assert status >= 400 and message in body, body
    x = pixels(1, seed=7)
    with client(server) as c:
        np.testing.assert_allclose(c.infer(x)["logits"], reference.infer(x), rtol=1e-5, atol=1e-5)


def _half_request(server, body_bytes: int) -> None:
    """A client that announces a request body, sends part of it (or all of it) and hangs up."""
    body = json.dumps(
        {"inputs": [{"name": "pixel_values", "shape": [1, 3, 32, 32], "datatype": "FP32", "data": [0.0] * 3072}]}
    ).encode()
    head = (
        f"POST /v2/models/{server.name}/infer HTTP/1.1\r\nHost: {server.http_url}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    host, port = server.http_url.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + body[:body_bytes])
    # closed here, before any response is read


@pytest.mark.slow
def test_clients_that_hang_up_do_not_stall_the_others(server, reference):
    x = pixels(1, seed=3)
    expected = reference.infer(x)

    def well_behaved(_):
        with client(server) as c:
            return c.infer(x)["logits"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        hang_ups = [pool.submit(_half_request, server, n) for n in (0, 100, 10_000, 10**9)]
        answers = [pool.submit(well_behaved, i) for i in range(8)]
        start = time.monotonic()
        results = [a.result(timeout=60) for a in answers]
        for h in hang_ups:
            h.result(timeout=60)
    assert time.monotonic() - start < 60
    for result in results:
        np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-5)
    with client(server) as c:
        assert c.is_ready()


def _metric(server, name: str) -> float:
    with urllib.request.urlopen(server.metrics_url, timeout=10) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and f'model="{server.name}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.slow
def test_dynamic_batching_joins_concurrent_requests(server):
    requests_before = _metric(server, "nv_inference_count")
    executions_before = _metric(server, "nv_inference_exec_count")
    x = pixels(1, seed=4)

    def one(_):
        with client(server) as c:
            return c.infer(x)["logits"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, range(32), timeout=120))
    requests = _metric(server, "nv_inference_count") - requests_before
    executions = _metric(server, "nv_inference_exec_count") - executions_before
    assert requests == 32
    assert executions < requests, (executions, requests)


@pytest.mark.slow
def test_a_taken_port_is_named_before_anything_starts(serve_extra, digits_onnx, free_ports, tmp_path):
    served = resolve_served_model(digits_onnx, tmp_path)
    options = loopback_options(free_ports)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", options.grpc_port))
        squatter.listen()
        start = time.monotonic()
        with pytest.raises(ServeError, match=f"gRPC port {options.grpc_port} on 127.0.0.1 is already in use"):
            ModelServer(served, options).start()
    assert time.monotonic() - start < 10


def test_missing_pytriton_is_one_line_with_the_install_command(monkeypatch):
    from vit5_infer.workflows.serving.pytriton_server import import_pytriton

    monkeypatch.setitem(sys.modules, "pytriton.triton", None)  # import fails as if not installed
    with pytest.raises(ServeUnavailableError, match=r"serving needs PyTriton .*pip install 'vit5-infer\[serve\]'"):
        import_pytriton()


def test_precision_with_a_given_graph_is_refused(digits_onnx, tmp_path):
    """--precision shapes the export of a preset or checkpoint; a given ONNX file was served as it is, silently."""
    with pytest.raises(ServeError, match=r"--precision fp16 only shapes a preset or checkpoint.*leave it out"):
        resolve_served_model(digits_onnx, tmp_path, precision="fp16")


# ---- the command, as a user runs it ---------------------------------------------------------------
def _vit5(*args) -> list[str]:
    return [sys.executable, "-m", "vit5_infer.cli.main", *map(str, args)]


def _children(pid: int) -> dict[int, str]:
    """{pid: command name} of the live child processes of ``pid`` (from /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found[int(entry.name)] = name
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] != "Z"


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_vit5_serve_answers_and_stops_cleanly(serve_extra, digits_onnx, free_ports, tmp_path, stop_signal, reference):
    http, grpc, metrics = free_ports(3)
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        proc = subprocess.Popen(
            _vit5(
                "serve",
                digits_onnx,
                "--name",
                "digits-cli",
                "--http-port",
                http,
                "--grpc-port",
                grpc,
                "--metrics-port",
                metrics,
                "--threads",
                "1",
            ),
            stdout=stdout,
            stderr=stderr,
            cwd=tmp_path,
        )
    try:
        deadline = time.monotonic() + 120
        while "metrics" not in out.read_text() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "metrics" in out.read_text(), err.read_text()
        servers = [pid for pid, name in _children(proc.pid).items() if name == "tritonserver"]
        assert len(servers) == 1
        from vit5_infer.workflows.serving.client import TritonModelClient

        x = pixels(2, seed=5)
        with TritonModelClient(f"127.0.0.1:{grpc}", "digits-cli", "grpc") as c:
            np.testing.assert_allclose(c.infer(x)["logits"], reference.infer(x), rtol=1e-5, atol=1e-5)
        proc.send_signal(stop_signal)
        assert proc.wait(timeout=60) == 0, err.read_text()
        assert not _alive(servers[0]), "tritonserver outlived vit5 serve"
        assert "stopped" in err.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


@pytest.mark.slow
def test_vit5_serve_port_taken_is_one_line(serve_extra, digits_onnx, free_ports, tmp_path):
    http, grpc, metrics = free_ports(3)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", http))
        squatter.listen()
        proc = subprocess.run(
            _vit5("serve", digits_onnx, "--http-port", http, "--grpc-port", grpc, "--metrics-port", metrics),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: HTTP port {http} on 127.0.0.1 is already in use; choose another with --http-port"
    )
    assert "Traceback" not in proc.stderr


def test_vit5_serve_no_such_model_is_one_line(tmp_path):
    proc = subprocess.run(_vit5("serve", "no-such-model"), capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()[-1:]
    # Where the serve extra is missing that is said first; otherwise the model is what is missing.
    assert line.startswith("error: ") and ("neither a preset" in line or "pip install 'vit5-infer[serve]'" in line)
