"""The machine's FP32 matrix-product rate: the bar the project's CPU speeds are stated against (a model's
achieved GFLOP/s as a share of what a plain GEMM reaches on the same cores, in the same run)."""

from __future__ import annotations

import time
from collections.abc import Callable

from vit5_infer.errors import BenchError


def best_seconds(
    run: Callable[[], object], repeats: int, warmup: int = 3, clock: Callable[[], float] = time.perf_counter
) -> float:
    """The fastest of ``repeats`` timed calls of ``run``, after ``warmup`` untimed ones, in seconds."""
    for _ in range(warmup):
        run()
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        run()
        best = min(best, clock() - start)
    return best


def matmul_rate_gflops(threads: int, size: int = 2048, repeats: int = 10) -> float:
    """This machine's FP32 GEMM rate on ``threads`` threads, GFLOP/s: the best of PyTorch (oneDNN/MKL) and
    ONNX Runtime (MLAS) on one ``size`` x ``size`` product, each the fastest of ``repeats`` calls.

    The better of the two libraries is the bar, so that a model is never credited against a slow GEMM."""
    for name, value in (("threads", threads), ("size", size), ("repeats", repeats)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise BenchError(f"{name} must be a positive integer, got {value!r}")
    import numpy as np
    import torch
    from onnx import TensorProto, helper, numpy_helper

    from vit5_infer.ort_sessions import create_session

    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch_s = best_seconds(lambda: a @ b, repeats)

    weight = numpy_helper.from_array(np.random.randn(size, size).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "w"], ["y"])],
        "gemm",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)], ir_version=10)
    session = create_session(model, threads=threads)
    feed = {"a": np.random.randn(size, size).astype(np.float32)}
    ort_s = best_seconds(lambda: session.run(None, feed), repeats)
    return 2 * size**3 / min(torch_s, ort_s) / 1e9
