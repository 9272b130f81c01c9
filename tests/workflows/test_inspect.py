"""`vit5 inspect ENGINE` lists layers from the inspector JSON saved at build time (no TensorRT needed)."""

from __future__ import annotations

import json

from vit5_infer.workflows.inspect import engine_layers


def test_layers_come_from_the_saved_inspector_json(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"engine")
    (tmp_path / "m.engine.layers.json").write_text(
        json.dumps({"Layers": [{"Name": "_gemm_mha_v2_myl0_1", "TacticName": "_gemm_mha_v2_0x1"}, "Reformat"]})
    )
    assert engine_layers(engine) == ["_gemm_mha_v2_myl0_1", "Reformat"]


def test_missing_or_broken_layer_json_is_a_note(tmp_path):
    engine = tmp_path / "m.engine"
    assert engine_layers(engine).startswith("not listed: m.engine.layers.json not found")
    (tmp_path / "m.engine.layers.json").write_text("{broken")
    assert engine_layers(engine) == "not listed: m.engine.layers.json is not the engine inspector's JSON"


def test_file_kind_reads_the_name_as_every_source_is_read():
    from pathlib import Path

    from vit5_infer.workflows.inspect import file_kind
    from vit5_infer.workflows.sources import source_kind

    names = ["m.onnx", "M.ONNX", "m.engine", "m.plan", "m.TRT", "vit5-small", "m.safetensors", "m.json"]
    assert [file_kind(Path(n)) for n in names] == [source_kind(n) for n in names]
    assert file_kind(Path("m.engine.json")) == "engine"  # an engine's manifest
