"""PyTorch runners on a golden network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from golden import load_golden_io
from golden_exports import golden_model

from vit5_infer.engines.errors import BackendError, NoGPUError
from vit5_infer.engines.torch_runner import TorchRunner
from vit5_infer.errors import InputError

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
