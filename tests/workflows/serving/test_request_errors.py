"""A bad request is refused alone: INVALID_ARGUMENT (HTTP 400) with its one-line reason, one log
line, and the good requests Triton batched with it still get their outputs.  Live servers listen
on 127.0.0.1 only and every wait is bounded."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import logging
import sys
import threading
import types
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from vit5_infer.preprocessing import load_image
from vit5_infer.workflows.serving import ModelServer, ServeOptions, onnx_signature, resolve_served_model
from vit5_infer.workflows.serving.batching import BatchedModel
from vit5_infer.workflows.serving.pytriton_server import (
    ERROR_OUTPUT,
    INTERNAL,
    INVALID_ARG,
    REQUEST_ERRORS_MODEL,
    _triton_callable,
    error_response,
    install_request_errors,
)

UNDECODABLE = "images[0]: cannot decode 9 bytes as an image (UnidentifiedImageError)"
BATCH = 4  # the items of the requests sent together below; the batcher waits for exactly these


class _Runner:
    name = "fake"

    def __init__(self, fail: bool = False):
        self.fail = fail
        self.batches: list[int] = []

    def run(self, x):
        if self.fail:
            raise RuntimeError("device lost\nsecond line")
        self.batches.append(len(x))
        return {"logits": np.full((len(x), 10), float(len(self.batches)), np.float32)}


# ---- the model callable, without a server ------------------------------------------------------------
def test_a_bad_request_is_answered_alone_and_the_good_ones_run_as_one_batch(digits_onnx, caplog):
    runner = _Runner()
    infer = _triton_callable(BatchedModel(runner, onnx_signature(digits_onnx)), [True])
    good = {"pixel_values": np.zeros((2, 3, 32, 32), np.float32)}
    with caplog.at_level(logging.WARNING):
        responses = infer([good, {"images": np.array([[b"not a png"]], dtype=object)}, good])
    assert runner.batches == [4]
    assert [sorted(r) for r in responses] == [["logits"], [ERROR_OUTPUT], ["logits"]]
    assert [r["logits"].shape for r in (responses[0], responses[2])] == [(2, 10), (2, 10)]
    assert responses[1][ERROR_OUTPUT].tolist() == [INVALID_ARG, UNDECODABLE.encode()]
    assert [r.getMessage() for r in caplog.records] == [f"refused a request: {UNDECODABLE}"]


def test_a_runner_failure_answers_each_request_with_internal_in_one_line(digits_onnx, caplog):
    infer = _triton_callable(BatchedModel(_Runner(fail=True), onnx_signature(digits_onnx)), [True])
    with caplog.at_level(logging.WARNING):
        responses = infer([{"pixel_values": np.zeros((1, 3, 32, 32), np.float32)}, {}])
    assert responses[0][ERROR_OUTPUT].tolist() == [INTERNAL, b"inference failed: RuntimeError: device lost"]
    assert responses[1][ERROR_OUTPUT].tolist() == [INVALID_ARG, b"send exactly one of pixel_values and images"]
    assert caplog.records[0].exc_info is not None  # the traceback stays in the server's own log


class _FakeBackendUtils(types.ModuleType):
    """triton_python_backend_utils as the stub gives it: TritonError appears only after import."""

    class InferenceResponse:
        def __init__(self, output_tensors=None, error=None):
            self.output_tensors, self.error = output_tensors, error

    def grow_error(self):
        class TritonError:
            INVALID_ARG, INTERNAL, UNKNOWN = "code-invalid-arg", "code-internal", "code-unknown"

            def __init__(self, message, code=INTERNAL):
                self.message, self.code = message, code

        self.TritonError = TritonError


def test_the_request_errors_model_answers_a_refused_request_with_its_own_code(tmp_path, monkeypatch):
    """REQUEST_ERRORS_MODEL in a package beside a stand-in for PyTriton's proxy model (the same two
    names it uses: TritonPythonModel, _wrap_response), under a stand-in for the backend's utils."""
    package = tmp_path / "served_version"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "pytriton_model.py").write_text(
        "class TritonPythonModel:\n    pass\n\n\n"
        "def _wrap_response(response, requested_output_names, model_outputs):\n"
        "    return ('outputs', sorted(response.data))\n"
    )
    (package / "model.py").write_text(REQUEST_ERRORS_MODEL)
    utils = _FakeBackendUtils("triton_python_backend_utils")
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", utils)
    monkeypatch.syspath_prepend(str(tmp_path))
    model = importlib.import_module("served_version.model")
    proxy = importlib.import_module("served_version.pytriton_model")
    assert model.TritonPythonModel is proxy.TritonPythonModel
    utils.grow_error()
    wrap = proxy._wrap_response  # what PyTriton's BatchResponsesHandler calls, by its module-level name

    class Response:
        def __init__(self, data):
            self.data = data

    assert wrap(Response({"logits": np.zeros((1, 10))}), ["logits"], {}) == ("outputs", ["logits"])
    refused = wrap(Response(error_response(INVALID_ARG, "images[0]: cannot decode")), ["logits"], {})
    assert (refused.error.code, refused.error.message) == ("code-invalid-arg", "images[0]: cannot decode")
    failed = wrap(Response(error_response(INTERNAL, "inference failed: RuntimeError: x")), ["logits"], {})
    assert (failed.error.code, failed.error.message) == ("code-internal", "inference failed: RuntimeError: x")
    unknown = wrap(Response(error_response(b"UNKNOWN", "x")), ["logits"], {})
    assert unknown.error.code == "code-internal"


def test_pytritons_proxy_model_is_shipped_under_another_name_beside_ours(serve_extra, tmp_path):
    """Through PyTriton's own Triton.bind (nothing started): the files loaded into tritonserver."""
    from pytriton.model_config import ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig

    pytriton_model = (Path(importlib.util.find_spec("pytriton").origin).parent / "proxy" / "model.py").read_bytes()
    triton = Triton(config=TritonConfig(http_port=1, grpc_port=2, metrics_port=3), workspace=str(tmp_path / "ws"))
    try:
        triton.bind(
            model_name="digits",
            infer_func=lambda requests: [],
            inputs=[Tensor(name="x", dtype=np.float32, shape=(1,))],
            outputs=[Tensor(name="y", dtype=np.float32, shape=(1,))],
            config=ModelConfig(max_batch_size=4),
        )
        assert install_request_errors(triton, "digits") is True
        assert install_request_errors(triton, "digits") is False  # once only
        assert install_request_errors(triton, "another") is False
        (model,) = triton._model_manager.models
        files = model.get_proxy_model_files()
    finally:
        triton.stop()
    assert files["file:1/model.py"] == REQUEST_ERRORS_MODEL.encode()
    assert files["file:1/pytriton_model.py"] == pytriton_model
    assert {"file:1/communication.py", "file:1/data.py", "file:1/types.py"} <= set(files)


def test_an_unknown_pytriton_keeps_its_own_model():
    """Where PyTriton's internals differ, serve falls back to refusing the whole batch in one line."""

    class Triton:
        pass

    assert install_request_errors(Triton(), "digits") is False


# ---- a live server -----------------------------------------------------------------------------------
MARK = 777.0  # pixels the served runner fails on


class _FailsOnMark:
    """The real runner, except that a batch holding MARK fails as a broken device would."""

    def __init__(self, runner):
        self.runner = runner

    def __getattr__(self, name):
        return getattr(self.runner, name)

    def __enter__(self):
        self.runner.__enter__()
        return self

    def run(self, x):
        if np.any(x == MARK):
            raise RuntimeError("device lost\nsecond line")
        return self.runner.run(x)


@pytest.fixture(scope="module")
def server(serve_extra, digits_onnx, free_ports, tmp_path_factory):
    served = resolve_served_model(digits_onnx, tmp_path_factory.mktemp("served"), threads=1)
    new_runner = served.new_runner
    served = dataclasses.replace(served, new_runner=lambda: _FailsOnMark(new_runner()))
    http, grpc, metrics = free_ports(3)
    # The batcher runs a batch once BATCH items are queued, and holds fewer for up to 20 s: the
    # requests sent together below meet in one batch.  Two instances: each loads the model.py.
    options = ServeOptions(
        host="127.0.0.1",
        http_port=http,
        grpc_port=grpc,
        metrics_port=metrics,
        instances=2,
        max_queue_delay_us=20_000_000,
        preferred_batch_sizes=(BATCH,),
    )
    with ModelServer(served, options) as running:
        yield running


def _http(server, inputs: list) -> tuple:
    body = json.dumps({"inputs": inputs}).encode()
    request = urllib.request.Request(
        f"http://{server.http_url}/v2/models/{server.name}/infer",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read().decode())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _grpc(server, tensors: dict) -> tuple:
    """(status code name, logits or the error message) of one gRPC request."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    inputs = []
    for name, x in tensors.items():
        tensor = grpcclient.InferInput(name, list(x.shape), "BYTES" if x.dtype == object else "FP32")
        tensor.set_data_from_numpy(x)
        inputs.append(tensor)
    client = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        result = client.infer(server.name, inputs, client_timeout=60)
        return "OK", result.as_numpy("logits")
    except InferenceServerException as exc:
        return exc.status(), exc.message()
    finally:
        client.close()


def _metric(server, name: str) -> float:
    with urllib.request.urlopen(server.metrics_url, timeout=10) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") and f'model="{server.name}"' in line
    )


@pytest.mark.slow
def test_bad_requests_get_400_and_invalid_argument_and_their_batch_still_answers(
    server, reference, digits_onnx, digits_images, caplog
):
    """Undecodable images came back as HTTP 500 / INTERNAL with a traceback, and every request
    batched with them failed too.  Four ``images`` requests (two bad, over HTTP and gRPC; two good)
    run as one batch here: Triton batches only requests with the same inputs."""
    pngs = [path for path, _ in digits_images[:2]]
    truncated = pngs[0].read_bytes()[:40]

    def images(data: bytes) -> dict:
        return {"images": np.array([[data]], dtype=object)}

    executions_before = _metric(server, "nv_inference_exec_count")
    start = threading.Barrier(4, timeout=30)

    def together(call, *args):
        start.wait()
        return call(*args)

    with caplog.at_level(logging.WARNING), ThreadPoolExecutor(max_workers=4) as pool:
        futures = [
            # HTTP/JSON carries BYTES as text: the bad image that goes that way is text.
            pool.submit(
                together,
                _http,
                server,
                [{"name": "images", "shape": [1, 1], "datatype": "BYTES", "data": ["not a png"]}],
            ),
            pool.submit(together, _grpc, server, images(truncated)),
            pool.submit(together, _grpc, server, images(pngs[0].read_bytes())),
            pool.submit(together, _grpc, server, images(pngs[1].read_bytes())),
        ]
        (status, body), (code, message), *good = [f.result(timeout=90) for f in futures]
    assert _metric(server, "nv_inference_exec_count") - executions_before == 1  # one batch held all four

    assert status == 400 and json.loads(body) == {"error": UNDECODABLE}, body
    assert code == "StatusCode.INVALID_ARGUMENT", (code, message)
    assert message.startswith("images[0]: cannot decode 40 bytes as an image") and "\n" not in message, message

    preprocessing = onnx_signature(digits_onnx).preprocessing
    for (answer, logits), path in zip(good, pngs):
        assert answer == "OK", logits
        expected = reference.infer(load_image(path, preprocessing)[None])
        np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)

    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert sorted(refused) == sorted([f"refused a request: {UNDECODABLE}", f"refused a request: {message}"]), refused
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


@pytest.mark.slow
def test_a_request_with_both_inputs_is_invalid_argument(server):
    x = np.zeros((BATCH, 3, 32, 32), np.float32)
    png = b"\x89PNG\r\n\x1a\n"
    code, message = _grpc(server, {"pixel_values": x, "images": np.array([[png]] * BATCH, dtype=object)})
    assert (code, message) == ("StatusCode.INVALID_ARGUMENT", "send exactly one of pixel_values and images")


@pytest.mark.slow
def test_a_bad_request_alone_is_400_and_the_server_keeps_serving(server, reference):
    """A full batch of undecodable images: one 400 with one line, then a good batch answers."""
    status, body = _http(
        server, [{"name": "images", "shape": [BATCH, 1], "datatype": "BYTES", "data": ["not a png"] * BATCH}]
    )
    assert status == 400 and json.loads(body) == {"error": UNDECODABLE}, body
    x = np.random.default_rng(6).standard_normal((BATCH, 3, 32, 32)).astype(np.float32)
    code, logits = _grpc(server, {"pixel_values": x})
    assert code == "OK", logits
    np.testing.assert_allclose(logits, reference.infer(x), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_a_runner_failure_is_500_with_one_line_and_the_server_keeps_serving(server, reference, caplog):
    x = np.full((BATCH, 3, 32, 32), MARK, np.float32)
    with caplog.at_level(logging.WARNING):
        status, body = _http(
            server,
            [{"name": "pixel_values", "shape": list(x.shape), "datatype": "FP32", "data": x.reshape(-1).tolist()}],
        )
    assert status == 500 and json.loads(body) == {"error": "inference failed: RuntimeError: device lost"}, body
    assert [r.exc_info is not None for r in caplog.records if "inference failed" in r.getMessage()] == [True]
    x = np.random.default_rng(8).standard_normal((BATCH, 3, 32, 32)).astype(np.float32)
    code, logits = _grpc(server, {"pixel_values": x})
    assert code == "OK", logits
    np.testing.assert_allclose(logits, reference.infer(x), rtol=1e-5, atol=1e-5)
