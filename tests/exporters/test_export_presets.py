"""Presets: FP32 exports match the PyTorch reference on ONNX Runtime (CPU), batch 1 and 3 from one file.

Each (preset, opset) is exported once for this module and deleted at its end; vit5-base and
vit5-large (86M / 304M parameters) are marked slow.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from export_cases import cleanup, op_counts

import vit5_infer
from vit5_infer import example_inputs, resolve_model
from vit5_infer.exporters import config_from_metadata, export_onnx, iter_nodes, read_metadata

SMALL = ["vit5-small", "vit5-small-hyena", "vit5-small-hybrid"]
BIG = ["vit5-base", "vit5-large"]
ATOL = 1e-4


def test_preset_lists_are_complete():
    assert sorted(SMALL + BIG) == sorted(vit5_infer.preset_names())


PARAMS = [
    pytest.param((name, opset), id=f"{name}-opset{opset}", marks=[pytest.mark.slow] if name in BIG else [])
    for name in SMALL + BIG
    for opset in (23, 18)
]


class PresetModels:
    """The preset under test and its PyTorch references; at most one (large) preset in memory."""

    def __init__(self):
        self.name, self.loaded, self.references = None, None, {}

    def model(self, name):
        if name != self.name:
            self.name, self.loaded, self.references = name, resolve_model(name), {}
        return self.loaded

    def reference(self, name, batch):
        model, _ = self.model(name)
        if batch not in self.references:
            pixels = example_inputs(model, batch=batch)
            with torch.no_grad():
                self.references[batch] = (pixels.numpy(), model(pixels).numpy())
        return self.references[batch]


@pytest.fixture(scope="module")
def presets():
    return PresetModels()


@pytest.fixture(scope="module", params=PARAMS)
def preset_export(request, tmp_path_factory, presets, golden_exports):
    name, opset = request.param
    model, source = presets.model(name)
    path = tmp_path_factory.mktemp("presets") / f"{name}-{opset}.onnx"
    # Checked here against PyTorch, not by export_onnx's own validation.
    result = export_onnx(model, path, opset=opset, source=source, validate=False)
    yield name, opset, model, result
    golden_exports.forget(path)
    cleanup(path)
    assert not path.exists()


@pytest.mark.parametrize("batch", [1, 3])
def test_preset_matches_pytorch(golden_exports, presets, preset_export, batch):
    name, opset, model, result = preset_export
    pixels, ref = presets.reference(name, batch)
    out = golden_exports.session(result.path).run(["logits"], {"pixel_values": pixels})[0]
    assert out.shape == (batch, model.config.network.num_classes)
    err = float(np.abs(out - ref).max())
    assert err <= ATOL, f"{name} opset {opset} batch {batch}: max abs error {err:.3g}"
    assert np.array_equal(out.argmax(-1), ref.argmax(-1))


def test_preset_graph_structure(preset_export):
    name, opset, model, result = preset_export
    graph = onnx.load(str(result.path))
    pattern = model.config.network.layer_pattern
    ops = op_counts(graph)
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch
    if opset >= 23:
        assert ops["Attention"] == pattern.count("A")
    else:
        assert ops["Attention"] == 0 and ops["RMSNormalization"] == 0
        assert ops["Softmax"] == pattern.count("A")
    assert ops["DFT"] == 0
    film = model.config.film is not None
    if "H" in pattern and not film:
        assert ops["Sin"] == 0
    if "H" in pattern and film:
        assert ops["Sin"] >= pattern.count("H")
        assert all(n.op_type != "DFT" for n in iter_nodes(graph.graph))
    if "H" not in pattern:
        assert ops["Sin"] == 0 and ops["Scan"] == 0


def test_preset_checker_and_metadata(preset_export):
    name, opset, model, result = preset_export
    onnx.checker.check_model(str(result.path), full_check=True)
    meta = read_metadata(result.path)
    assert meta["source"]["kind"] == "preset" and meta["source"]["name"] == name and meta["source"]["seed"] == 0
    assert config_from_metadata(meta) == model.config
    assert meta["opset"] == opset and meta["precision"] == "fp32"
    assert meta["preprocessing"]["image_size"] == 224
    assert result.validation is None
