"""The build_engine workflow around the engine build: export-or-convert, the parser check, and what the
build writes.  TensorRT is not installed here: ``_build`` and ``_engine_information`` (the two functions
that call TensorRT through Polygraphy) are replaced, and ``open_builder`` returns a stand-in module and GPU.
These prove the workflow's sequencing and the manifest it writes, never that TensorRT builds the graph
(that is tests/engines/test_tensorrt_gpu.py's job, on a GPU)."""

from __future__ import annotations

import hashlib
import json
import os
import types
from pathlib import Path

import pytest

from vit5_infer.engines import tensorrt_builder
from vit5_infer.engines.cuda_device import CudaDevice
from vit5_infer.engines.errors import EngineBuildError
from vit5_infer.engines.tensorrt_builder import TensorRTBuilder
from vit5_infer.workflows import build_engine as workflow

from onnx_graphs import graph_with_external_data

LAYERS = json.dumps({"Layers": []})


@pytest.fixture
def fake_tensorrt(monkeypatch):
    """A TensorRT 10.14 "build" that records the graph it was given."""
    built = []

    def fake_build(trt, graph_path, source_onnx, profiles, timing_cache, cache_out, *args):
        built.append(graph_path)
        return b"engine-bytes", (3, 32, 32), True

    builder = TensorRTBuilder(types.SimpleNamespace(__version__="10.14.1.48"), CudaDevice(0, "stand-in GPU", "9.0"))
    monkeypatch.setattr(workflow, "open_builder", lambda precision, level: builder)
    monkeypatch.setattr(tensorrt_builder, "_build", fake_build)
    monkeypatch.setattr(tensorrt_builder, "_engine_information", lambda trt, engine: LAYERS)
    return built


@pytest.fixture(scope="module")
def exported(tmp_path_factory, golden_dir):
    from vit5_infer.exporters import export_onnx

    from golden_exports import golden_model

    path = tmp_path_factory.mktemp("export") / "m.onnx"
    return export_onnx(golden_model("attn_cls_r4"), path, validate=False, target="tensorrt=10.14").path


def test_an_fp32_graph_is_converted_then_built(exported, tmp_path, fake_tensorrt):
    messages = []
    result = workflow.build_engine(exported, tmp_path / "m.engine", precision="fp16", progress=messages.append)
    assert fake_tensorrt[0].name == "m.fp16.onnx"  # the converted graph, not the exported one
    assert any(m.startswith("converted m.onnx to an fp16 graph") for m in messages)
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["precision"] == "fp16" and manifest["build_flags"]["graph"] == "converted"
    assert manifest["tensorrt_version"] == "10.14.1.48"
    assert (tmp_path / "m.engine").read_bytes() == b"engine-bytes"
    assert result.layers_path.read_text() == LAYERS and result.onnx_path == exported


def test_a_graph_at_its_precision_is_built_as_exported(exported, tmp_path, fake_tensorrt):
    result = workflow.build_engine(exported, tmp_path / "m.engine")
    assert fake_tensorrt == [exported]
    assert json.loads(result.manifest_path.read_text())["build_flags"]["graph"] == "as-exported"


def test_the_parser_check_runs_before_the_build(exported, tmp_path, fake_tensorrt, monkeypatch):
    monkeypatch.setattr(
        workflow,
        "open_builder",
        lambda precision, level: TensorRTBuilder(
            types.SimpleNamespace(__version__="10.8.0.43"), CudaDevice(0, "stand-in GPU", "9.0")
        ),
    )
    with pytest.raises(EngineBuildError, match="does not parse on TensorRT 10.8.0.43"):
        workflow.build_engine(exported, tmp_path / "m.engine")
    assert fake_tensorrt == [] and list(tmp_path.iterdir()) == []


def test_a_preset_is_exported_for_the_installed_tensorrt_and_kept(tmp_path, fake_tensorrt, monkeypatch, golden_dir):
    from vit5_infer.load_options import LoadOptions

    targets = []
    real_export = workflow.export_for_tensorrt

    def export(source, onnx_path, version, load, progress):
        targets.append(version)
        return real_export(source, onnx_path, version, load, progress)

    monkeypatch.setattr(workflow, "export_for_tensorrt", export)
    checkpoint = golden_dir / "attn_cls_r4.safetensors"
    load = LoadOptions(config=golden_dir / "attn_cls_r4.json")
    result = workflow.build_engine(checkpoint, tmp_path / "m.engine", load=load)
    assert targets == ["10.14.1.48"]
    assert result.onnx_path == tmp_path / "m.onnx" and (tmp_path / "m.onnx").is_file()
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["onnx_sha256"] and manifest["build_flags"]["graph"] == "as-exported"


def test_a_given_graph_whose_external_data_leaves_its_folder_is_refused(tmp_path):
    """TensorRT's parser reads external data itself: a location outside the graph's folder is refused first."""
    from vit5_infer.errors import InputError
    from vit5_infer.workflows.build_engine import require_onnx_source

    (tmp_path / "outside.bin").write_bytes(b"\0" * 4)
    path = graph_with_external_data(tmp_path / "model", "../outside.bin")
    with pytest.raises(InputError, match="outside the graph's folder"):
        require_onnx_source(path, "fp16", None)


class SourceReads:
    """Every read of one ONNX file and of the external data beside it during a build: the opens of the file
    (whatever reads it: onnx's loaders, pathlib, a hash) and each time its external weights are read in (by
    onnx.load or by hand), found by replacing Python's open and onnx's loader functions."""

    def __init__(self, graph: Path, monkeypatch):
        import builtins
        import io

        import onnx
        import onnx.external_data_helper

        self.graph = graph.resolve()
        self.opened = []  # (name, mode) of each open of the graph
        self.weight_loads = []  # the folder of each read of external weights
        real_open, real_load_weights = builtins.open, onnx.external_data_helper.load_external_data_for_model

        def counted_open(file, mode="r", *args, **kwargs):
            if not isinstance(file, int) and Path(os.fsdecode(file)).resolve() == self.graph:
                self.opened.append((self.graph.name, mode))
            return real_open(file, mode, *args, **kwargs)

        def counted_load_weights(model, base_dir):
            if Path(base_dir).resolve() == self.graph.parent:
                self.weight_loads.append(base_dir)
            return real_load_weights(model, base_dir)

        monkeypatch.setattr(builtins, "open", counted_open)
        monkeypatch.setattr(io, "open", counted_open)  # pathlib's
        monkeypatch.setattr(onnx, "load_external_data_for_model", counted_load_weights)  # onnx.load's
        monkeypatch.setattr(onnx.external_data_helper, "load_external_data_for_model", counted_load_weights)


@pytest.fixture(scope="module")
def exported_with_weights_beside(tmp_path_factory):
    """A TensorRT-form export whose weights are external data (model.onnx.data beside model.onnx)."""
    from vit5_infer.exporters import export_onnx

    from golden_exports import golden_model

    path = tmp_path_factory.mktemp("external") / "model.onnx"
    export_onnx(golden_model("attn_cls_r4"), path, validate=False, target="tensorrt=10.14", external_data=True)
    assert (path.parent / "model.onnx.data").is_file()
    return path


@pytest.mark.parametrize("precision, weight_loads", [("fp32", 0), ("fp16", 1)])
def test_a_given_graph_is_read_once_before_the_builder(
    exported_with_weights_beside, tmp_path, fake_tensorrt, monkeypatch, precision, weight_loads
):
    """From the given file to TensorRT's builder (whose parser reads the file itself, from its path) the graph is
    read once, without its weights, for every check, the manifest (its hash too) and the fusion report; the
    weights are read once where the graph is converted to another precision, never to check it.  The build
    itself is the stand-in of ``fake_tensorrt``: this counts the reads of the Python side only."""
    reads = SourceReads(exported_with_weights_beside, monkeypatch)
    result = workflow.build_engine(exported_with_weights_beside, tmp_path / "m.engine", precision=precision)
    assert reads.opened == [("model.onnx", "rb")]
    assert len(reads.weight_loads) == weight_loads
    assert fake_tensorrt[0].name == ("model.onnx" if precision == "fp32" else "model.fp16.onnx")
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["onnx_sha256"] == hashlib.sha256(exported_with_weights_beside.read_bytes()).hexdigest()
    assert manifest["source"]["opset"] == 23 and manifest["attention_blocks"] == 2  # from the graph read once
