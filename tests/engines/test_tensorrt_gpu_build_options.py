"""Several optimization profiles, portable engines and the per-block fusion report on a real build: needs the
tensorrt package and an NVIDIA GPU (skipped otherwise).  Not yet run: no GPU was available where it was written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vit5_infer.engines.cuda_device import cuda_device, has_cuda_driver
from vit5_infer.engines.tensorrt_support import tensorrt_version

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
    return export_golden(CASE, tmp_path_factory.mktemp("trt_profiles"))


def test_several_profiles_are_built_and_recorded(onnx_path, tmp_path):
    from polygraphy.backend.trt import engine_from_bytes

    from vit5_infer.workflows.build_engine import build_engine

    result = build_engine(onnx_path, tmp_path / "m.engine", precision="fp16", batch_profiles="1,2-4,5-8")
    engine = engine_from_bytes(result.engine_path.read_bytes())
    assert engine.num_optimization_profiles == 3
    assert [tuple(engine.get_tensor_profile_shape("pixel_values", i)[2])[0] for i in range(3)] == [1, 4, 8]
    manifest = json.loads(result.manifest_path.read_text())
    assert [p["pixel_values"]["max"][0] for p in manifest["optimization_profiles"]] == [1, 4, 8]


def test_the_fusion_report_names_blocks(onnx_path, tmp_path):
    """Checks the attribution rules against what TensorRT writes: every block is fused, named unfused, or
    explained (the cls readout's last block computes one query)."""
    from vit5_infer.workflows.build_engine import build_engine

    result = build_engine(onnx_path, tmp_path / "m.engine", precision="fp16", max_batch=4)
    report = result.fusion
    assert report.attention_blocks == 2
    assert set(report.unfused_blocks) <= {"blocks.0/sequence_mixer", "blocks.1/sequence_mixer"}
    assert json.loads(result.manifest_path.read_text())["attention_report"]["verdict"] == report.verdict


@pytest.mark.parametrize("version_compatible, level", [(True, None), (False, "ampere+"), (True, "ampere+")])
def test_portable_engines_build_and_load(onnx_path, tmp_path, version_compatible, level):
    from vit5_infer.engines.registry import make_runner
    from vit5_infer.workflows.build_engine import build_engine

    device = cuda_device(0)
    if level == "ampere+" and tensorrt_version(device.compute_capability) < (8, 0):
        pytest.skip(f"ampere+ engines are built on Ampere or newer; {device.name} is {device.compute_capability}")
    result = build_engine(
        onnx_path,
        tmp_path / "m.engine",
        max_batch=2,
        version_compatible=version_compatible,
        hardware_compatibility=level,
    )
    flags = json.loads(result.manifest_path.read_text())["build_flags"]
    assert flags["version_compatible"] is version_compatible and flags["hardware_compatibility"] == (level or "none")
    with make_runner("trt", result.engine_path) as runner:
        assert runner.run(np.zeros((2, 3, 32, 32), np.float32))["logits"].shape == (2, 10)
