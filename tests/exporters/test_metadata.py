"""metadata_props of exported graphs: architecture, preprocessing, provenance, export options."""

from __future__ import annotations

import hashlib

import onnx
import pytest
from export_cases import GOLDEN, GOLDEN_CASES

import vit5_infer
from vit5_infer import Vit5Error, get_preset, resolve_model
from vit5_infer.exporters import config_from_metadata, export_onnx, read_metadata


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("opset", [23, 18, 17])
@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_golden_metadata(golden_exports, name, opset):
    result = golden_exports.export(name, opset=opset)
    model, _ = golden_exports.model(name)
    meta = read_metadata(result.path)
    assert meta == read_metadata(onnx.load(str(result.path)))
    assert meta == result.metadata

    config = config_from_metadata(meta)
    assert config == model.config
    assert config.to_dict() == model.config.to_dict()

    pre = meta["preprocessing"]
    size = model.config.network.image_size
    assert pre["image_size"] == size
    assert pre["interpolation"] == "bicubic"
    assert pre["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert pre["std"] == pytest.approx([0.229, 0.224, 0.225])
    assert pre["layout"] == "nchw"

    assert meta["toolkit_version"] == vit5_infer.__version__
    source = meta["source"]
    assert source["kind"] == "checkpoint"
    assert source["sha256"] == _sha256(GOLDEN / f"{name}.safetensors")
    assert source["name"].endswith(f"{name}.safetensors")
    assert meta["precision"] == "fp32"
    assert meta["opset"] == opset
    assert meta["batch"] == "dynamic"
    lowering = meta["lowering"]
    assert lowering == result.lowering
    assert ("Attention" in lowering["attention"]) == (opset >= 23)
    assert ("long_conv" in lowering) == ("H" in model.config.network.layer_pattern)


@pytest.mark.parametrize(
    "options",
    [
        dict(precision="fp16"),
        dict(precision="bf16"),
        dict(layout="nhwc"),
        dict(batch=2),
        dict(precision="fp16", io_dtype="fp16"),
    ],
    ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()),
)
def test_metadata_follows_export_options(golden_exports, options):
    result = golden_exports.export("hybrid_pool_film", opset=23, **options)
    meta = read_metadata(result.path)
    assert meta["precision"] == options.get("precision", "fp32")
    assert meta["preprocessing"]["layout"] == options.get("layout", "nchw")
    assert meta["io_dtype"] == options.get("io_dtype", "fp32")
    assert meta["batch"] == options.get("batch", "dynamic")
    assert meta["opset"] == 23
    assert config_from_metadata(meta) == golden_exports.model("hybrid_pool_film")[0].config


def test_checkpoint_metadata_records_file_hash_and_weights(tmp_path):
    ckpt = GOLDEN / "attn_cls_r4.ckpt"
    model, source = resolve_model(ckpt, config=GOLDEN / "attn_cls_r4.json", weights="raw")
    path = export_onnx(model, tmp_path / "raw.onnx", source=source).path
    meta = read_metadata(path)
    assert meta["source"]["sha256"] == _sha256(ckpt)
    assert meta["source"]["weights"] == "raw"
    assert meta["source"]["kind"] == "checkpoint"


def test_preset_metadata_records_name_and_seed(tmp_path):
    # A small config under a preset's name keeps the export quick; the source is still the preset.
    config = get_preset("vit5-small-hybrid")
    config.network.image_size = 64
    config.network.num_blocks = 2
    config.network.layer_pattern = "HA"
    config.hyena.L_cache = 6
    model, source = resolve_model("vit5-small-hybrid", config=config, seed=5)
    result = export_onnx(model, tmp_path / "p.onnx", source=source)
    meta = read_metadata(result.path)
    assert meta["source"]["kind"] == "preset"
    assert meta["source"]["name"] == "vit5-small-hybrid"
    assert meta["source"]["seed"] == 5
    assert meta["source"]["sha256"] is None
    assert config_from_metadata(meta) == model.config
    assert meta["preprocessing"]["image_size"] == 64


def test_foreign_graph_has_no_metadata(tmp_path):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph)
    model.metadata_props.add(key="author", value="someone")
    path = tmp_path / "foreign.onnx"
    onnx.save(model, str(path))
    assert read_metadata(path) == {}
    with pytest.raises(Vit5Error, match="metadata"):
        config_from_metadata(read_metadata(path))
    with pytest.raises(Vit5Error, match="not found"):
        read_metadata(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\x00not an onnx file at all\xff" * 10)
    with pytest.raises(Vit5Error):
        read_metadata(tmp_path / "junk.onnx")


# ---- hostile ONNX files --------------------------------------------------------------
def test_empty_and_graphless_files_are_not_onnx_models(tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(Vit5Error, match="not an ONNX model \\(an empty file\\)"):
        read_metadata(empty)
    graphless = tmp_path / "graphless.onnx"
    graphless.write_bytes(onnx.ModelProto(producer_name="x").SerializeToString())
    with pytest.raises(Vit5Error, match="not an ONNX model"):
        read_metadata(graphless)


@pytest.mark.parametrize(
    "edit",
    [
        lambda c: c["network"].__setitem__("hidden_dim", "wide"),
        lambda c: c["attention"].__setitem__("num_heads", None),
        lambda c: c.__setitem__("norm_eps", -1),
    ],
)
def test_hand_edited_config_metadata_is_one_line(golden_exports, edit):
    metadata = read_metadata(golden_exports.export("attn_cls_r4").path)
    edit(metadata["config"])
    with pytest.raises(Vit5Error, match="vit5.config metadata is invalid"):
        config_from_metadata(metadata)
