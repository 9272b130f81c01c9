"""The entries of ``vit5 serve`` and ``vit5 triton-repo`` (``serve(ServingOptions, progress)``,
``write_repository(RepositoryWriteOptions, progress)``): their option checks run before any export, without
a subprocess and without PyTriton (its import is replaced where a test needs the checks after it)."""

from __future__ import annotations

import pytest

from vit5_infer.workflows.serving import (
    RepositoryOptions,
    RepositoryWriteOptions,
    ServeError,
    ServeOptions,
    ServeUnavailableError,
    ServingOptions,
    serve,
    write_repository,
)
from vit5_infer.workflows.serving import workflow as serving_workflow


@pytest.fixture
def no_export(monkeypatch):
    """Any export or runner resolution fails the test: the checks must come first."""
    monkeypatch.setattr(
        serving_workflow,
        "resolve_served_model",
        lambda *args, **kwargs: pytest.fail("the source was resolved before the checks"),
    )


def test_a_missing_serve_extra_is_said_first(monkeypatch, no_export):
    def missing():
        raise ServeUnavailableError("PyTriton is not installed")

    monkeypatch.setattr(serving_workflow, "import_pytriton", missing)
    clashing = ServeOptions(http_port=8000, grpc_port=8000, metrics_port=8002)
    with pytest.raises(ServeUnavailableError, match="PyTriton is not installed"):
        serve(ServingOptions("vit5-small", clashing, precision="bf16"))


@pytest.mark.parametrize(
    "options, message",
    [
        (ServingOptions("vit5-small", ServeOptions(http_port=8000, grpc_port=8000, metrics_port=8002)), "must differ"),
        (ServingOptions("vit5-small", ServeOptions(instances=0)), "--instances must be >= 1"),
        (ServingOptions("vit5-small", precision="bf16"), "exported for serving at fp32 or fp16, not 'bf16'"),
    ],
)
def test_serve_options_are_refused_before_any_export(monkeypatch, no_export, options, message):
    monkeypatch.setattr(serving_workflow, "import_pytriton", lambda: None)
    with pytest.raises(ServeError, match=message):
        serve(options, progress=lambda text: pytest.fail(f"work started: {text}"))


def test_the_log_file_is_never_the_served_source(monkeypatch, no_export, digits_onnx):
    monkeypatch.setattr(serving_workflow, "import_pytriton", lambda: None)
    with pytest.raises(Exception, match="also an input"):
        serve(ServingOptions(str(digits_onnx), ServeOptions(log_file=str(digits_onnx))))


def test_write_repository_refuses_an_export_precision_before_writing(digits_onnx, tmp_path):
    with pytest.raises(ServeError, match="fp32 or fp16"):
        write_repository(RepositoryWriteOptions("vit5-small", tmp_path / "repo", precision="int8"))
    assert not (tmp_path / "repo").exists()


def test_write_repository_writes_the_model(digits_onnx, tmp_path):
    steps = []
    options = RepositoryWriteOptions(str(digits_onnx), tmp_path / "repo", RepositoryOptions(max_batch=4), name="m")
    result = write_repository(options, steps.append)
    assert result.model_dir == tmp_path / "repo" / "m"
    assert (tmp_path / "repo" / "m" / "config.pbtxt").is_file()
