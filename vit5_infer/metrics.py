"""Accuracy of logits against a reference, and the tolerance each precision must meet."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    cosine: float
    #: max |out - ref| allowed, relative to max(1, max |ref|)
    max_abs: float | None
    top1: float


TOLERANCES = {
    "fp32": Tolerance(cosine=0.99999, max_abs=1e-4, top1=1.0),
    "fp16": Tolerance(cosine=0.999, max_abs=None, top1=0.99),
    "bf16": Tolerance(cosine=0.995, max_abs=None, top1=0.95),
    "int8": Tolerance(cosine=0.99, max_abs=None, top1=0.9),
}


def _topk(x: np.ndarray, k: int) -> np.ndarray:
    k = min(k, x.shape[-1])
    return np.argsort(-x, axis=-1, kind="stable")[:, :k]


def compare_logits(reference: np.ndarray, output: np.ndarray) -> dict:
    """max/mean abs error, cosine similarity (over the flattened batch), top-1/top-5 agreement."""
    ref = np.asarray(reference, dtype=np.float64)
    out = np.asarray(output, dtype=np.float64)
    if ref.shape != out.shape:
        raise ValueError(f"logits shapes differ: reference {ref.shape}, output {out.shape}")
    diff = np.abs(out - ref)
    denom = np.linalg.norm(ref) * np.linalg.norm(out)
    cosine = float(np.dot(ref.ravel(), out.ravel()) / denom) if denom > 0 else float(np.array_equal(ref, out))
    top1 = float(np.mean(_topk(ref, 1)[:, 0] == _topk(out, 1)[:, 0]))
    ref5, out5 = _topk(ref, 5), _topk(out, 5)
    top5 = float(np.mean([len(set(a) & set(b)) / len(a) for a, b in zip(ref5, out5)]))
    return {
        "max_abs_err": float(diff.max()),
        "mean_abs_err": float(diff.mean()),
        "cosine": cosine,
        "top1_agreement": top1,
        "top5_agreement": top5,
        "reference_max_abs": float(np.abs(ref).max()),
    }


def within_tolerance(metrics: dict, precision: str) -> tuple[bool, str]:
    """(passed, reason) for ``metrics`` from compare_logits at ``precision``."""
    tol = TOLERANCES.get(precision, TOLERANCES["fp32"])
    if not metrics["cosine"] >= tol.cosine:
        return False, f"cosine {metrics['cosine']:.6f} < {tol.cosine}"
    if tol.max_abs is not None:
        bound = tol.max_abs * max(1.0, metrics["reference_max_abs"])
        if not metrics["max_abs_err"] <= bound:
            return False, f"max abs error {metrics['max_abs_err']:.3g} > {bound:.3g}"
    if not metrics["top1_agreement"] >= tol.top1:
        return False, f"top-1 agreement {metrics['top1_agreement']:.3f} < {tol.top1}"
    return True, "ok"
