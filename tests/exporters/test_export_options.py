"""export_onnx options: dynamic/static batch, NHWC layout, external data, bad options, failed
validation, and the exported model left untouched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from export_cases import GOLDEN, GOLDEN_CASES, load_golden_io

from vit5_infer import resolve_model
from vit5_infer.errors import Vit5Error
from vit5_infer.exporters import ExportError, export_onnx, read_metadata


def _dims(info):
    return [d.dim_param or d.dim_value for d in info.type.tensor_type.shape.dim]


def _fresh(name):
    return resolve_model(GOLDEN / f"{name}.safetensors", config=GOLDEN / f"{name}.json")


# ---- batch --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_dynamic_batch_by_default(golden_exports, name):
    model = onnx.load(str(golden_exports.export(name, opset=23).path))
    net = golden_exports.model(name)[0].config.network
    in_dims, out_dims = _dims(model.graph.input[0]), _dims(model.graph.output[0])
    assert isinstance(in_dims[0], str) and in_dims[0]
    assert in_dims[1:] == [net.in_channels, net.image_size, net.image_size]
    assert out_dims == [in_dims[0], net.num_classes]


@pytest.mark.parametrize("opset", [23, 18])
@pytest.mark.parametrize("name", ["attn_cls_r4", "hyena_gap", "hybrid_pool_film"])
def test_static_batch(golden_exports, name, opset):
    result = golden_exports.export(name, opset=opset, batch=2)
    model = onnx.load(str(result.path))
    assert _dims(model.graph.input[0])[0] == 2
    assert _dims(model.graph.output[0])[0] == 2
    assert result.validation.batches == (2,) and result.validation.passed is True
    pixels, logits = load_golden_io(name)
    assert np.abs(golden_exports.run(result.path, pixels[:2]) - logits[:2]).max() <= 1e-4


# ---- layout -------------------------------------------------------------------------------------
@pytest.mark.parametrize("opset", [23, 18])
@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_nhwc_layout(golden_exports, name, opset):
    result = golden_exports.export(name, opset=opset, layout="nhwc")
    model = onnx.load(str(result.path))
    net = golden_exports.model(name)[0].config.network
    dims = _dims(model.graph.input[0])
    assert isinstance(dims[0], str)
    assert dims[1:] == [net.image_size, net.image_size, net.in_channels]
    data = np.load(GOLDEN / f"{name}.npz")
    out_nhwc = golden_exports.run(result.path, np.ascontiguousarray(data["input_nhwc"]))
    pixels, logits = load_golden_io(name)
    out_nchw = golden_exports.run(golden_exports.export(name, opset=opset).path, pixels)
    np.testing.assert_allclose(out_nhwc, out_nchw, rtol=0, atol=1e-5)
    assert np.abs(out_nhwc - logits).max() <= 1e-4
    assert (
        np.abs(golden_exports.run(result.path, np.ascontiguousarray(data["input_nhwc"][1:2])) - logits[1:2]).max()
        <= 1e-4
    )
    assert result.validation.passed is True


# ---- external data ------------------------------------------------------------------------------
@pytest.mark.parametrize("validate", [True, False])
def test_external_data(golden_exports, tmp_path, validate):
    model, source = golden_exports.model("hybrid_pool_film")
    path = tmp_path / "ext.onnx"
    result = export_onnx(model, path, source=source, external_data=True, validate=validate)
    data = tmp_path / "ext.onnx.data"
    assert path.is_file() and data.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ext.onnx", "ext.onnx.data"]
    assert data.stat().st_size > path.stat().st_size
    header = onnx.load(str(path), load_external_data=False)
    external = [i for i in header.graph.initializer if i.data_location == onnx.TensorProto.EXTERNAL]
    assert external
    assert all({e.key: e.value for e in i.external_data}["location"] == "ext.onnx.data" for i in external)
    pixels, logits = load_golden_io("hybrid_pool_film")
    assert np.abs(golden_exports.run(path, pixels) - logits).max() <= 1e-4
    onnx.checker.check_model(str(path), full_check=True)
    assert read_metadata(path)["precision"] == "fp32"
    assert (result.validation is not None) == validate


def test_no_external_data_by_default(golden_exports):
    path = golden_exports.export("hybrid_pool_film", opset=23).path
    assert not path.with_name(path.name + ".data").exists()
    header = onnx.load(str(path), load_external_data=False)
    assert all(i.data_location != onnx.TensorProto.EXTERNAL for i in header.graph.initializer)


# ---- bad options --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "options,words",
    [
        (dict(opset=16), ["opset", "16"]),
        (dict(precision="int4"), ["precision", "int4"]),
        (dict(layout="nwhc"), ["layout", "nwhc"]),
        (dict(batch=0), ["batch", "0"]),
        (dict(batch=-2), ["batch", "-2"]),
        (dict(lowering="nope"), ["lowering", "nope"]),
        (dict(io_dtype="fp16"), ["fp16"]),  # io dtype without a reduced precision
    ],
    ids=["opset16", "int4", "nwhc", "batch0", "batch-2", "lowering", "io-fp16-at-fp32"],
)
def test_bad_options_raise_and_write_nothing(golden_exports, tmp_path, options, words):
    model, source = golden_exports.model("attn_cls_r4")
    path = tmp_path / "out" / "bad.onnx"
    with pytest.raises(ExportError) as info:
        export_onnx(model, path, source=source, **options)
    message = str(info.value)
    for word in words:
        assert word in message, message
    assert not path.exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("precision,io_dtype", [("fp16", "bf16"), ("bf16", "fp16"), ("fp16", "int8")])
def test_io_dtype_must_match_precision(golden_exports, tmp_path, precision, io_dtype):
    from vit5_infer import Vit5Error

    model, source = golden_exports.model("attn_cls_r4")
    path = tmp_path / "io.onnx"
    with pytest.raises(Vit5Error) as info:
        export_onnx(model, path, source=source, precision=precision, io_dtype=io_dtype)
    assert io_dtype in str(info.value) and "io dtype" in str(info.value)
    assert list(tmp_path.iterdir()) == []


# ---- failed validation --------------------------------------------------------------------------
def _overflowing_model():
    """Patch-embedding outputs near 1e5: fine in float32, infinite in float16."""
    model, source = _fresh("attn_cls_r4")
    with torch.no_grad():
        model.patch_embed.weight.mul_(1e5)
    return model, source


@pytest.mark.parametrize("external_data", [False, True])
def test_failed_validation_leaves_no_file(tmp_path, external_data):
    model, source = _overflowing_model()
    path = tmp_path / "overflow.onnx"
    with pytest.raises(ExportError, match="does not match PyTorch"):
        export_onnx(model, path, source=source, precision="fp16", external_data=external_data)
    assert list(tmp_path.iterdir()) == []
    # The same model exports fine in float32 (the failure is the fp16 overflow, not the options).
    result = export_onnx(model, path, source=source, external_data=external_data)
    assert result.validation.passed is True and path.exists()


def test_failed_validation_keeps_a_previous_file(tmp_path):
    model, source = _overflowing_model()
    path = tmp_path / "model.onnx"
    path.write_bytes(b"previous export")
    with pytest.raises(ExportError):
        export_onnx(model, path, source=source, precision="fp16")
    assert path.read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


# ---- the model is left as it was ------------------------------------------------------------------
def _snapshot(model):
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    buffers = {k: v.detach().clone() for k, v in model.named_buffers()}
    return state, buffers, model.training, [p.requires_grad for p in model.parameters()]


@pytest.mark.parametrize(
    "name,options",
    [
        ("hybrid_pool_film", dict(opset=23, precision="fp16")),
        ("hybrid_compress_concat", dict(opset=18)),
        ("hyena_gap", dict(opset=17, layout="nhwc")),
        ("attn_cls_r4", dict(opset=23, precision="bf16")),
    ],
)
def test_export_leaves_model_unchanged(tmp_path, name, options):
    model, source = _fresh(name)
    state, buffers, training, grads = _snapshot(model)
    pixels, _ = load_golden_io(name)
    with torch.no_grad():
        before = model(torch.from_numpy(pixels))
    export_onnx(model, tmp_path / "m.onnx", source=source, **options)
    after_state, after_buffers, after_training, after_grads = _snapshot(model)
    assert after_state.keys() == state.keys()
    for key, value in state.items():
        assert after_state[key].dtype == value.dtype and torch.equal(after_state[key], value), key
    assert after_buffers.keys() == buffers.keys()
    for key, value in buffers.items():
        assert torch.equal(after_buffers[key], value), key
    assert after_training == training and after_grads == grads
    with torch.no_grad():
        assert torch.equal(model(torch.from_numpy(pixels)), before)


def test_failed_validation_keeps_a_previous_external_data_export(golden_exports, tmp_path):
    good, source = _fresh("attn_cls_r4")
    path = tmp_path / "model.onnx"
    export_onnx(good, path, source=source, external_data=True)
    pixels, logits = load_golden_io("attn_cls_r4")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert sorted(before) == ["model.onnx", "model.onnx.data"]
    bad, _ = _overflowing_model()
    with pytest.raises(ExportError, match="does not match PyTorch"):
        export_onnx(bad, path, source=source, precision="fp16", external_data=True)
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert after == before, f"files now: {sorted(after)}"
    assert np.abs(golden_exports.run(path, pixels) - logits).max() <= 1e-4


# ---- hostile paths and stray files -----------------------------------------------------
def test_stale_staging_of_dead_exports_is_removed_live_ones_kept(tmp_path):
    import os
    import subprocess
    import sys

    from vit5_infer.exporters.export import remove_stale_staging

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".vit5-export-{dead.pid}-x1"
    live = tmp_path / f".vit5-export-{os.getpid()}-x2"
    foreign = tmp_path / ".vit5-export-nopid"
    for folder in (stale, live, foreign):
        folder.mkdir()
        (folder / "model.onnx").write_bytes(b"staged")
    assert remove_stale_staging(tmp_path) == [stale]
    assert not stale.exists() and live.exists() and foreign.exists()
    model, source = _fresh("attn_cls_r4")
    export_onnx(model, tmp_path / "m.onnx", source=source, validate=False)
    assert live.exists()  # this process is alive: its (other) export might still be running


@pytest.mark.parametrize(
    "name, words",
    [
        ("", "not a file name"),
        (".", "not a file name"),
        ("sub/", "is a directory"),
        ("model.pt", "must end in .onnx"),
        ("x" * 300 + ".onnx", "longer than this filesystem allows"),
    ],
)
def test_bad_output_names_write_nothing(tmp_path, monkeypatch, name, words):
    monkeypatch.chdir(tmp_path)
    model, source = _fresh("attn_cls_r4")
    with pytest.raises(Vit5Error, match=words):
        export_onnx(model, name, source=source, validate=False)
    assert list(tmp_path.iterdir()) == []


def test_output_under_a_file_or_in_a_read_only_folder(tmp_path):
    import os

    model, source = _fresh("attn_cls_r4")
    (tmp_path / "file").write_text("x")
    with pytest.raises(Vit5Error, match="is a file, not a folder"):
        export_onnx(model, tmp_path / "file" / "m.onnx", source=source, validate=False)
    (tmp_path / "file.onnx.data").mkdir()
    with pytest.raises(Vit5Error, match="output weights"):
        export_onnx(model, tmp_path / "file.onnx", source=source, validate=False)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write read-only folders (root)")
        with pytest.raises(Vit5Error, match="not writable"):
            export_onnx(model, locked / "m.onnx", source=source, validate=False)
    finally:
        locked.chmod(0o700)


def test_output_may_not_be_the_checkpoint(tmp_path):
    from vit5_infer.exporters.export import check_export_path

    checkpoint = tmp_path / "ck.onnx"
    checkpoint.write_bytes(b"weights")
    with pytest.raises(Vit5Error, match="also an input"):
        check_export_path(tmp_path / "sub" / ".." / "ck.onnx", inputs=(str(checkpoint),))
    (tmp_path / "link.onnx").symlink_to(checkpoint)
    with pytest.raises(Vit5Error, match="also an input"):
        check_export_path(tmp_path / "link.onnx", inputs=(checkpoint,))
    data = tmp_path / "m.onnx.data"
    data.write_bytes(b"weights")
    with pytest.raises(Vit5Error, match="output weights.*also an input"):
        check_export_path(tmp_path / "m.onnx", inputs=(data,))


def test_external_data_re_export_from_the_output_folder(tmp_path, monkeypatch, golden_exports):
    monkeypatch.chdir(tmp_path)  # onnx's own converter refuses when OUTPUT.data exists relative to the cwd
    model, source = _fresh("attn_cls_r4")
    for _ in range(2):
        result = export_onnx(model, "model.onnx", source=source, external_data=True)
        assert result.validation.passed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.onnx.data"]
    export_onnx(model, "model.onnx", source=source, external_data=False, validate=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
    x = load_golden_io("attn_cls_r4")[0]
    assert golden_exports.run(tmp_path / "model.onnx", x).shape[0] == x.shape[0]


def test_failed_export_removes_the_folders_it_created(tmp_path):
    model, source = _overflowing_model()
    with pytest.raises(ExportError):
        export_onnx(model, tmp_path / "a" / "b" / "m.onnx", source=source, precision="fp16")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("poison", ["nan_weight", "norm_eps"])
def test_non_finite_reference_is_blamed_on_the_model(tmp_path, poison):
    model, source = _fresh("attn_cls_r4")
    if poison == "nan_weight":
        with torch.no_grad():
            model.out_norm.weight.fill_(float("nan"))
    else:
        for module in model.modules():
            if hasattr(module, "eps"):
                module.eps = -1.0
    with pytest.raises(ExportError, match="PyTorch model itself produces NaN/Inf"):
        export_onnx(model, tmp_path / "m.onnx", source=source)
    assert list(tmp_path.iterdir()) == []


def test_racing_external_data_exports_leave_one_valid_graph(tmp_path, monkeypatch, golden_exports):
    import threading

    monkeypatch.chdir(tmp_path)
    model, source = _fresh("attn_cls_r4")
    export_onnx(model, "model.onnx", source=source, external_data=True, validate=False)  # OUTPUT.data exists
    errors = []

    def export():
        try:
            export_onnx(model, "model.onnx", source=source, external_data=True, validate=False)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=export) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.onnx.data"]
    x = load_golden_io("attn_cls_r4")[0]
    np.testing.assert_allclose(
        golden_exports.run(tmp_path / "model.onnx", x), model(torch.from_numpy(x)).detach().numpy(), atol=1e-4
    )


def test_a_graph_past_the_protobuf_limit_is_checked_from_disk(tmp_path, monkeypatch):
    """A graph too large for the in-memory checker is checked from its staged file, weights beside it; whether it
    is too large is decided before saving, which empties the in-memory weights."""
    from vit5_infer.exporters import build_graph
    from vit5_infer.exporters import export as export_module

    model, _ = _fresh("attn_cls_r4")
    built, _ = build_graph(model)
    monkeypatch.setattr(export_module, "EXTERNAL_DATA_THRESHOLD", built.ByteSize() - 1)
    checked = []
    real_check = onnx.checker.check_model
    monkeypatch.setattr(
        onnx.checker, "check_model", lambda graph, *a, **k: (checked.append(graph), real_check(graph, *a, **k))[1]
    )
    export_onnx(model, tmp_path / "m.onnx", external_data=True, validate=False)
    assert [(type(c), Path(c).name) for c in checked] == [(str, "m.onnx")]
