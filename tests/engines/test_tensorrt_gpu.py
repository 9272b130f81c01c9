"""The native TensorRT path end to end: needs the tensorrt package and an NVIDIA GPU (skipped otherwise)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vit5_infer.engine_manifest import manifest_path_for
from vit5_infer.engines.attention_report import VERDICTS
from vit5_infer.engines.cuda_device import has_cuda_driver
from vit5_infer.engines.errors import EngineMismatchError
from vit5_infer.engines.registry import available_backends, make_runner
from vit5_infer.metrics import compare_logits

from golden_exports import export_golden

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.tensorrt,
    pytest.mark.skipif(not has_cuda_driver(), reason="needs an NVIDIA GPU and driver"),
]
trt = pytest.importorskip("tensorrt", reason="needs TensorRT: pip install 'vit5-infer[tensorrt]'")

CASE = "attn_cls_r4"


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory):
    return export_golden(CASE, tmp_path_factory.mktemp("trt_onnx"))


@pytest.mark.parametrize("precision, cosine", [("fp32", 0.99999), ("fp16", 0.999)])
def test_build_and_run(onnx_path, tmp_path, golden_io, precision, cosine):
    from vit5_infer.workflows.build_engine import build_engine

    cache = tmp_path / "timing.cache"
    result = build_engine(onnx_path, tmp_path / f"{CASE}.engine", precision=precision, max_batch=4, timing_cache=cache)
    assert result.engine_path.is_file() and result.manifest_path.is_file() and cache.is_file()
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["tensorrt_version"] == trt.__version__
    assert manifest["precision"] == precision
    assert manifest["profiles"]["pixel_values"]["max"][0] == 4
    # The fusion rules are checked against this file on the first GPU build (see docs/engines.md).
    assert result.layers_path.is_file() and manifest["layers_file"] == result.layers_path.name
    assert result.fusion.attention_blocks == 2 and result.fusion.verdict in VERDICTS
    assert manifest["attention_verdict"] == result.fusion.verdict
    assert "trt" in available_backends()

    pixel_values, upstream = golden_io(CASE)
    with make_runner("trt", result.engine_path) as runner:
        outputs = runner.run(pixel_values)
        logits = runner.infer(pixel_values)
        assert runner.batch_range == (1, 4)
    assert list(outputs) == ["logits"] and outputs["logits"].dtype == np.float32
    assert compare_logits(upstream, logits).cosine >= cosine


def test_second_build_reuses_the_timing_cache_and_a_damaged_one_is_replaced(onnx_path, tmp_path):
    from vit5_infer.workflows.build_engine import build_engine

    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"not a timing cache")
    notes = []
    build_engine(onnx_path, tmp_path / "a.engine", max_batch=2, timing_cache=cache, progress=notes.append)
    assert any("starting a new one" in note for note in notes)
    notes.clear()
    build_engine(onnx_path, tmp_path / "b.engine", max_batch=2, timing_cache=cache, progress=notes.append)
    assert any(note.startswith(f"loaded timing cache {cache}") for note in notes)


def test_mismatched_manifest_says_how_to_rebuild(onnx_path, tmp_path):
    from vit5_infer.workflows.build_engine import build_engine

    result = build_engine(onnx_path, tmp_path / "m.engine", max_batch=2)
    data = json.loads(manifest_path_for(result.engine_path).read_text())
    data["tensorrt_version"] = "9.0.0"
    manifest_path_for(result.engine_path).write_text(json.dumps(data))
    with pytest.raises(EngineMismatchError, match="rebuild it here with: vit5 build-engine"):
        make_runner("trt", result.engine_path).load()


@pytest.mark.parametrize("precision, cosine", [("fp32", 0.99999), ("fp16", 0.999)])
def test_engine_with_backbone_outputs(tmp_path, golden_features, golden_io, precision, cosine):
    """A graph with token outputs builds (the last block computes every token), the manifest records
    its outputs and the runner returns each of them, close to upstream's features."""
    from vit5_infer.exporters import export_onnx
    from vit5_infer.metrics import compare_outputs
    from vit5_infer.workflows.build_engine import build_engine

    from golden_exports import golden_model

    name = "hybrid_pool_film"  # CLS, registers and a padded Hyena grid
    onnx_file = export_onnx(
        golden_model(name),
        tmp_path / f"{name}.onnx",
        target="tensorrt",
        outputs="patch_tokens,cls_token,register_tokens,pre_logits",
    ).path
    result = build_engine(onnx_file, tmp_path / f"{name}.engine", precision=precision, max_batch=4)
    manifest = json.loads(result.manifest_path.read_text())
    assert [o["name"] for o in manifest["outputs"]] == ["patch_tokens", "cls_token", "register_tokens", "pre_logits"]
    pixel_values, _ = golden_io(name)
    with make_runner("trt", result.engine_path) as runner:
        outputs = runner.run(pixel_values)
    upstream = golden_features(name)
    assert set(outputs) == {o["name"] for o in manifest["outputs"]}
    assert all(value.dtype == np.float32 for value in outputs.values())
    for key, comparison in compare_outputs(upstream, outputs).items():
        assert comparison.cosine >= cosine, (key, comparison)


@pytest.mark.parametrize("cuda_graph", [False, True])
def test_timer_on_a_real_engine(onnx_path, tmp_path, golden_io, cuda_graph):
    """GPU check of the trtexec-style timer: the timing context's output (through pinned memory) equals the
    runner's, host latency (copies included) is not below GPU compute time, and a CUDA graph replays."""
    from vit5_infer.workflows.build_engine import build_engine

    result = build_engine(onnx_path, tmp_path / "t.engine", precision="fp16", max_batch=4)
    pixel_values, _ = golden_io(CASE)
    with make_runner("trt", result.engine_path) as runner:
        logits = runner.run(pixel_values)["logits"]
        with runner.timer(pixel_values, cuda_graph=cuda_graph) as timer:
            compute = [timer.gpu_compute_ms() for _ in range(20)]
            latency = [timer.host_latency_ms() for _ in range(20)]
            timed = np.frombuffer(timer.output_bytes(), timer.output_types[0].numpy())
    assert all(c > 0 for c in compute) and np.median(latency) >= np.median(compute)
    np.testing.assert_allclose(timed.astype(np.float32).reshape(logits.shape), logits, rtol=1e-3, atol=1e-3)
