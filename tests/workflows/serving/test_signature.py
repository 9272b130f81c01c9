"""ModelSignature from graphs, engine manifests and runners; served model resolution and names."""

from __future__ import annotations

import pytest

from vit5_infer.errors import Vit5Error
from vit5_infer.workflows.serving import RepositoryError, ServeError, engine_signature, model_name, onnx_signature
from vit5_infer.workflows.serving.signature import DEFAULT_MAX_BATCH, probe_outputs
from vit5_infer.workflows.serving.source import resolve_served_model


def test_onnx_signature_reads_dims_types_batch_and_preprocessing(digits_onnx):
    sig = onnx_signature(digits_onnx)
    (pixel,) = sig.inputs
    assert (pixel.name, pixel.dtype, pixel.dims) == ("pixel_values", "float32", (3, 32, 32))
    assert [(t.name, t.dtype, t.dims) for t in sig.outputs] == [("logits", "float32", (10,))]
    assert sig.static_batch is None and sig.max_batch == DEFAULT_MAX_BATCH
    assert sig.preprocessing.image_size == 32 and sig.layout == "nchw"
    assert onnx_signature(digits_onnx, max_batch=32).max_batch == 32
    with pytest.raises(RepositoryError, match="max batch must be >= 1"):
        onnx_signature(digits_onnx, max_batch=0)


def test_fp16_io_graph_declares_fp16(digits_dir, tmp_path):
    from vit5_infer import resolve_model
    from vit5_infer.exporters import export_onnx

    model, origin = resolve_model(digits_dir / "digits_attn.safetensors")
    path = export_onnx(model, tmp_path / "half.onnx", precision="fp16", io_dtype="fp16", source=origin).path
    sig = onnx_signature(path)
    assert sig.pixel_input.dtype == "float16" and sig.outputs[0].dtype == "float16"


def test_engine_signature_takes_the_batch_range_from_the_manifest(digits_engine, tmp_path):
    from vit5_infer.engine_manifest import profile_shapes, write_manifest

    engine = tmp_path / "digits.plan"
    manifest = digits_engine(engine, profiles=profile_shapes((3, 32, 32), 1, 8, 16))
    sig = engine_signature(engine)
    assert sig.max_batch == 16 and sig.static_batch is None and sig.outputs[0].name == "logits"
    assert engine_signature(engine, max_batch=4).max_batch == 4
    with pytest.raises(RepositoryError, match="at most batch 16"):
        engine_signature(engine, max_batch=32)
    digits_missing = tmp_path / "other.plan"
    digits_missing.write_bytes(b"x")
    manifest.onnx_path = str(tmp_path / "gone.onnx")
    write_manifest(manifest, digits_missing)
    with pytest.raises(RepositoryError, match="not there"):
        engine_signature(digits_missing)


def test_probe_reads_what_the_runner_returns(digits_onnx):
    from vit5_infer.engines.registry import make_runner

    with make_runner("ort", digits_onnx, threads=1) as runner:
        sig = probe_outputs(runner, onnx_signature(digits_onnx))
    assert [(t.name, t.dtype, t.dims) for t in sig.outputs] == [("logits", "float32", (10,))]


def test_model_names():
    assert model_name("vit5-small") == "vit5-small"
    assert model_name("/x/my model.onnx") == "my-model"
    assert model_name("/x/digits_attn.safetensors") == "digits_attn"
    assert model_name("a", "custom.v2") == "custom.v2"
    with pytest.raises(RepositoryError, match="may hold only"):
        model_name("a", "bad/name")


def test_resolve_served_model_per_source_kind(digits_onnx, digits_dir, tmp_path):
    served = resolve_served_model(digits_onnx, tmp_path)
    assert (served.name, served.backend, served.path) == ("digits", "ort", digits_onnx)
    exported = resolve_served_model(digits_dir / "digits_attn.safetensors", tmp_path)
    assert exported.backend == "ort" and exported.path.parent == tmp_path and exported.path.is_file()
    torch_served = resolve_served_model(digits_dir / "digits_attn.safetensors", tmp_path, backend="torch")
    assert torch_served.path is None and torch_served.signature.pixel_input.dims == (3, 32, 32)
    with torch_served.new_runner() as runner:
        assert probe_outputs(runner, torch_served.signature).outputs[0].dims == (10,)


@pytest.mark.parametrize(
    "source, backend, message",
    [
        ("no-such-model", None, "neither a preset"),
        ("missing.onnx", None, "ONNX file not found"),
        ("missing.plan", None, "TensorRT engine not found"),
        ("DIGITS", "trt", "not trt"),
        ("DIGITS", "fancy", "unknown backend"),
    ],
)
def test_unservable_sources_say_why_in_one_line(source, backend, message, digits_onnx, tmp_path):
    source = str(digits_onnx) if source == "DIGITS" else str(tmp_path / source) if "." in source else source
    with pytest.raises((ServeError, Vit5Error)) as info:
        resolve_served_model(source, tmp_path, backend=backend)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_an_engine_whose_profiles_leave_a_gap_is_not_served(digits_engine, tmp_path):
    """A dynamic batcher (Triton's, vit5 serve's) forms any batch up to the largest: a batch between two
    profiles would run on none (Triton falls back to profile 0 and fails every request in it)."""
    from vit5_infer.engine_manifest import batch_gaps, batch_profiles_shapes, gapless_profiles_text, profile_envelope
    from vit5_infer.engines.tensorrt_support import parse_batch_profiles

    def engine_with(text):
        engine = tmp_path / f"m{len(list(tmp_path.iterdir()))}.plan"
        profiles = batch_profiles_shapes((3, 32, 32), parse_batch_profiles(text))
        digits_engine(engine, profiles=profile_envelope(profiles), optimization_profiles=profiles)
        return engine

    assert engine_signature(engine_with("1,2-8,9-64")).max_batch == 64
    gapped = engine_with("1,2-8,16-64")
    from vit5_infer.engine_manifest import read_manifest

    assert batch_gaps(read_manifest(gapped)) == [(9, 15)]
    assert gapless_profiles_text(read_manifest(gapped)) == "1,2-8,9-64"
    with pytest.raises(RepositoryError, match=r"no optimization profile takes batch 9\.\.15.*1,2-8,9-64"):
        engine_signature(gapped)
    assert batch_gaps(read_manifest(engine_with("1-4,8"))) == [(5, 7)]
