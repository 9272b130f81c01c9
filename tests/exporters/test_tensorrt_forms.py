"""Every export meant for TensorRT passes the static parser check of the versions it claims.

The check (exporters/tensorrt_compat.py) is written from the parser's own rules; these tests sweep
what the exporter produces: targets x opsets x precisions x long-convolution lowerings, on the golden
cases (fast tier) and on the full-size presets (slow tier).
"""

from __future__ import annotations

import itertools

import pytest
from export_cases import GOLDEN_CASES

from vit5_infer import resolve_model
from vit5_infer.exporters import build_graph
from vit5_infer.exporters.targets import ExportTarget
from vit5_infer.exporters.tensorrt_compat import check_tensorrt_compat

TARGETS = ["tensorrt=10.0", "tensorrt=10.8", "tensorrt=10.14", "tensorrt=10.15", "tensorrt=11.0", "tensorrt"]
PRECISIONS = ["fp32", "fp16", "bf16"]
OPSETS = [17, 18, 19, 23]
# vit5-base and vit5-large use the same emitters as vit5-small at other widths (and
# test_export_presets.py exports them); building their ~36 graphs each would add tens of CI minutes.
PRESETS = ["vit5-small", "vit5-small-hyena", "vit5-small-hybrid"]


def _forms(pattern: str):
    lowerings = ["spectral", "direct", "scan"] if "H" in pattern else ["auto"]
    for target, opset, precision, lowering in itertools.product(TARGETS, OPSETS, PRECISIONS, lowerings):
        if not ExportTarget.parse(target).allows_opset(opset) or (precision == "bf16" and opset < 22):
            continue
        yield target, opset, precision, lowering


def _assert_parses(model, target, opset, precision, lowering):
    graph, _ = build_graph(model, opset=opset, precision=precision, lowering=lowering, target=target)
    version = ExportTarget.parse(target).check_version()
    report = check_tensorrt_compat(graph, version)
    assert report.compatible, "\n".join(report.lines())


@pytest.fixture(scope="module")
def golden_models(golden_exports):
    return {name: golden_exports.model(name)[0] for name in GOLDEN_CASES}


@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_every_tensorrt_form_of_the_golden_cases_parses(golden_models, name):
    model = golden_models[name]
    forms = list(_forms(model.config.network.layer_pattern))
    assert len(forms) >= 20
    for form in forms:
        _assert_parses(model, *form)


@pytest.mark.parametrize("name", GOLDEN_CASES)
@pytest.mark.parametrize("precision", PRECISIONS)
def test_default_export_parses_on_tensorrt_10_15_and_11(golden_models, name, precision):
    # The default export (ONNX Runtime target, opset 23, fused Attention and RMSNormalization) is the
    # form TensorRT 10.15+ parses; older releases need --target tensorrt=X.Y.
    graph, _ = build_graph(golden_models[name], precision=precision)
    for version in ("10.15", "11.0"):
        report = check_tensorrt_compat(graph, version)
        assert report.compatible, "\n".join(report.lines())
    if "A" in golden_models[name].config.network.layer_pattern:
        assert not check_tensorrt_compat(graph, "10.8").compatible  # Attention has no importer before 10.14


def test_export_for_tensorrt_runs_the_check(golden_exports, tmp_path):
    result = golden_exports.export("hybrid_pool_film", target="tensorrt=10.8")
    assert result.tensorrt_check is not None and result.tensorrt_check.compatible
    assert result.opset == 18 and result.metadata["target"] == "tensorrt=10.8"
    assert golden_exports.export("hybrid_pool_film").tensorrt_check is None  # ORT target: not checked


@pytest.mark.slow
@pytest.mark.parametrize("name", PRESETS)
def test_every_tensorrt_form_of_the_presets_parses(name):
    # Each target's own opset, every precision; every lowering only on the small Hyena presets (the
    # golden sweep above covers every opset x lowering combination of the same emitters).
    model, _ = resolve_model(name)
    lowerings = ["spectral", "direct", "scan"] if "H" in model.config.network.layer_pattern else ["auto"]
    for target, precision in itertools.product(TARGETS, PRECISIONS):
        opset = ExportTarget.parse(target).default_opset()
        if precision == "bf16" and opset < 22:
            continue
        for lowering in lowerings:
            _assert_parses(model, target, opset, precision, lowering)
