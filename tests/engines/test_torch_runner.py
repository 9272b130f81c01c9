"""PyTorch runners on a golden network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vit5_infer.engines.errors import BackendError, NoGPUError
from vit5_infer.engines.torch_runner import TorchRunner
from vit5_infer.errors import InputError

from golden import load_golden_io
from golden_exports import golden_model

CASE = "attn_cls_r4"


def test_eager_matches_upstream():
    pixel_values, upstream = load_golden_io(CASE)
    with TorchRunner(golden_model(CASE)) as runner:
        logits = runner.infer(pixel_values)
        assert runner.name == "torch[fp32]"
    assert logits.dtype == np.float32
    np.testing.assert_allclose(logits, upstream, rtol=0, atol=1e-4)


def test_compile_path_matches_upstream():
    # The "eager" compile backend goes through torch.compile/dynamo without a C++ toolchain (fast on 2 cores).
    pixel_values, upstream = load_golden_io(CASE)
    with TorchRunner(golden_model(CASE), compile=True, compile_options={"backend": "eager"}) as runner:
        assert runner.backend == "torch-compile"
        logits = runner.infer(pixel_values)
    np.testing.assert_allclose(logits, upstream, rtol=0, atol=1e-4)


def test_threads_are_restored():
    before = torch.get_num_threads()
    with TorchRunner(golden_model(CASE), threads=1) as runner:
        assert torch.get_num_threads() == 1
        runner.infer(load_golden_io(CASE)[0][:1])
    assert torch.get_num_threads() == before


def test_reduced_precision_needs_cuda():
    with pytest.raises(BackendError, match="CUDA autocast"):
        TorchRunner(golden_model(CASE), precision="fp16")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_gpu():
    with pytest.raises(NoGPUError):
        TorchRunner(golden_model(CASE), precision="bf16", device="cuda").load()


def test_bad_arguments():
    with pytest.raises(BackendError, match="not str"):
        TorchRunner("vit5-small")  # type: ignore[arg-type]
    with pytest.raises(BackendError, match="unknown torch device"):
        TorchRunner(golden_model(CASE), device="tpu")
    with TorchRunner(golden_model(CASE)) as runner, pytest.raises(InputError):
        runner.infer(np.zeros((3, 32, 32), np.float32))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA build of torch and an NVIDIA GPU")
def test_cuda_fp16_autocast_is_close():
    from vit5_infer.metrics import compare_logits

    pixel_values, upstream = load_golden_io(CASE)
    with TorchRunner(golden_model(CASE), precision="fp16", device="cuda") as runner:
        logits = runner.infer(pixel_values)
        assert runner.peak_memory_bytes()
    assert compare_logits(upstream, logits).cosine >= 0.999


# ---- backbone outputs ----------------------------------------------------------------------------
def _close(got: np.ndarray, want: np.ndarray) -> None:
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * max(1.0, float(np.abs(want).max())))


@pytest.mark.parametrize("compile", [False, True])
def test_run_returns_the_requested_outputs(golden_features, compile):
    pixel_values, upstream = load_golden_io(CASE)
    options = {"backend": "eager"} if compile else None
    outputs = ("register_tokens", "logits", "patch_tokens")
    with TorchRunner(golden_model(CASE), compile=compile, compile_options=options, outputs=outputs) as runner:
        out = runner.run(pixel_values)
        logits = runner.infer(pixel_values)
        assert runner.describe()["outputs"] == list(outputs)
    assert list(out) == list(outputs)
    assert all(v.dtype == np.float32 for v in out.values())
    _close(out["logits"], upstream)
    np.testing.assert_array_equal(logits, out["logits"])
    for name in ("register_tokens", "patch_tokens"):
        _close(out[name], golden_features(CASE)[name])


def test_default_run_is_logits():
    pixel_values, upstream = load_golden_io(CASE)
    with TorchRunner(golden_model(CASE)) as runner:
        out = runner.run(pixel_values)
    assert list(out) == ["logits"]
    _close(out["logits"], upstream)


def test_features_only_runner_and_missing_outputs():
    from vit5_infer.outputs import OutputError

    with TorchRunner(golden_model(CASE), outputs="pre_logits") as runner:
        with pytest.raises(BackendError, match="not logits; use run"):
            runner.infer(load_golden_io(CASE)[0])
    with pytest.raises(OutputError, match="no CLS token"):
        TorchRunner(golden_model("attn_gap_r0_bias"), outputs="cls_token")
