"""A new backend is one runner module plus one registry entry: a made-up runner registered here is offered
by bench and serve, benchmarked and served, with no other change anywhere."""

from __future__ import annotations

import pytest

from vit5_infer.engines import registry
from vit5_infer.engines.registry import Backend, register_backend
from vit5_infer.workflows.backends import backend_names

NAME = "ort-made-up"


class MadeUpRunner:
    """The "runner module" of the made-up backend: ONNX Runtime on the CPU under another name."""

    def __new__(cls, path, *, precision, batch_hint, threads, **options):
        from vit5_infer.engines.ort_runner import OrtRunner

        runner = OrtRunner(path, provider="cpu", threads=threads, **options)
        runner.made_up = True
        return runner


@pytest.fixture
def made_up_backend():
    register_backend(Backend(NAME, "onnx", MadeUpRunner, available=lambda: True))
    yield NAME
    registry.BACKENDS.pop(NAME)


def test_a_registered_backend_is_offered_by_bench_and_serve(made_up_backend):
    from vit5_infer.cli.bench_cmd import BACKENDS_HELP
    from vit5_infer.cli.parsing import parse_name_list
    from vit5_infer.cli.serve_cmd import serve_backend_choices
    from vit5_infer.workflows.benchmark import BenchSettings

    assert made_up_backend in backend_names() and made_up_backend in registry.available_backends()
    assert parse_name_list(made_up_backend, "--backends", backend_names()) == [made_up_backend]
    BenchSettings(backends=[made_up_backend]).check()
    assert made_up_backend in [member.value for member in serve_backend_choices()]
    # the help text was built when the CLI imported, before this registration: it lists the built-in ones
    assert "ort-trt" in BACKENDS_HELP


def test_an_unregistered_name_is_refused_where_the_registered_one_is_taken():
    from vit5_infer.workflows.benchmark import BenchSettings
    from vit5_infer.workflows.serving import ServeError, resolve_served_model

    assert NAME not in backend_names()
    with pytest.raises(Exception, match=f"unknown backend.*{NAME}"):
        BenchSettings(backends=[NAME]).check()
    with pytest.raises(ServeError, match=f"unknown backend '{NAME}'"):
        resolve_served_model("model.onnx", ".", backend=NAME)


def test_a_registered_backend_is_benchmarked_and_served(made_up_backend, predict_graph, tmp_path):
    from vit5_infer.workflows.benchmark import BenchSettings, TimingPlan, run_benchmark
    from vit5_infer.workflows.serving import resolve_served_model

    settings = BenchSettings(backends=[made_up_backend], timing=TimingPlan(warmup=0, iters=1))
    report = run_benchmark(predict_graph, settings)
    assert [(r.backend, r.passed) for r in report.results] == [(made_up_backend, True)]

    served = resolve_served_model(predict_graph, tmp_path, backend=made_up_backend)
    assert served.backend == made_up_backend
    assert getattr(served.new_runner(), "made_up", False)
