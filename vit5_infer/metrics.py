"""Accuracy of logits against a reference, and the tolerance each precision must meet."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    cosine: float
    #: max |out - ref| allowed, relative to max(1, max |ref|)
    max_abs: Optional[float]
    top1: float
    #: A sample whose reference top-1 leads the runner-up by less than ``tie_margin * max(1, max |ref|)``
    #: is a tie at this precision: rounding alone may swap the two, so it does not count for top-1
    #: agreement (seeded random networks have such near-ties; a real disagreement has a clear margin).
    tie_margin: float = 0.0


TOLERANCES = {
    "fp32": Tolerance(cosine=0.99999, max_abs=1e-4, top1=1.0, tie_margin=1e-4),
    # 4 units of roundoff of the reduced type (fp16: 2^-11, bf16: 2^-8) on the logit scale
    "fp16": Tolerance(cosine=0.999, max_abs=None, top1=0.99, tie_margin=2e-3),
    "bf16": Tolerance(cosine=0.995, max_abs=None, top1=0.95, tie_margin=1.6e-2),
    "int8": Tolerance(cosine=0.99, max_abs=None, top1=0.9, tie_margin=5e-2),
}


@dataclass(frozen=True)
class LogitComparison:
    max_abs_err: float
    mean_abs_err: float
    #: over the flattened batch
    cosine: float
    top1_agreement: float
    top5_agreement: float
    reference_max_abs: float
    #: per sample: does the output's top-1 class equal the reference's
    top1_matches: tuple
    #: per sample: reference top-1 logit minus the runner-up (inf with one class)
    reference_margins: tuple
    finite: bool = True

    def to_dict(self) -> dict:
        out = asdict(self)
        del out["top1_matches"], out["reference_margins"]
        return out

    def top1_agreement_beyond_ties(self, tie_margin: float) -> tuple[float, int]:
        """(agreement over the samples that are not ties, how many such samples)."""
        bound = tie_margin * max(1.0, self.reference_max_abs)
        decisive = [match for match, margin in zip(self.top1_matches, self.reference_margins) if margin >= bound]
        return (float(np.mean(decisive)) if decisive else 1.0), len(decisive)


def _topk(x: np.ndarray, k: int) -> np.ndarray:
    k = min(k, x.shape[-1])
    return np.argsort(-x, axis=-1, kind="stable")[:, :k]


def compare_logits(reference: np.ndarray, output: np.ndarray) -> LogitComparison:
    """max/mean abs error, cosine similarity, top-1/top-5 agreement of ``output`` against ``reference``."""
    ref = np.asarray(reference, dtype=np.float64)
    out = np.asarray(output, dtype=np.float64)
    if ref.shape != out.shape:
        raise ValueError(f"logits shapes differ: reference {ref.shape}, output {out.shape}")
    finite = bool(np.isfinite(out).all())
    diff = np.abs(out - ref)
    denom = np.linalg.norm(ref) * np.linalg.norm(out)
    cosine = float(np.dot(ref.ravel(), out.ravel()) / denom) if denom > 0 else float(np.array_equal(ref, out))
    ref_order = _topk(ref, 2)
    matches = tuple(bool(m) for m in ref_order[:, 0] == _topk(out, 1)[:, 0])
    rows = np.arange(ref.shape[0])
    margins = (ref[rows, ref_order[:, 0]] - ref[rows, ref_order[:, 1]]) if ref.shape[-1] > 1 else np.full(len(ref), np.inf)
    ref5, out5 = _topk(ref, 5), _topk(out, 5)
    top5 = float(np.mean([len(set(a) & set(b)) / len(a) for a, b in zip(ref5, out5)]))
    return LogitComparison(
        max_abs_err=float(diff.max()) if finite else float("nan"),
        mean_abs_err=float(diff.mean()) if finite else float("nan"),
        cosine=cosine if finite else float("nan"),
        top1_agreement=float(np.mean(matches)),
        top5_agreement=top5,
        reference_max_abs=float(np.abs(ref).max()),
        top1_matches=matches,
        reference_margins=tuple(float(m) for m in margins),
        finite=finite,
    )


def within_tolerance(metrics: LogitComparison, precision: str) -> tuple[bool, str]:
    """(passed, reason) for ``metrics`` at ``precision``."""
    tol = TOLERANCES.get(precision, TOLERANCES["fp32"])
    if not metrics.finite:
        return False, "the output has NaN or Inf values"
    if not metrics.cosine >= tol.cosine:
        return False, f"cosine {metrics.cosine:.6f} < {tol.cosine}"
    if tol.max_abs is not None:
        bound = tol.max_abs * max(1.0, metrics.reference_max_abs)
        if not metrics.max_abs_err <= bound:
            return False, f"max abs error {metrics.max_abs_err:.3g} > {bound:.3g}"
    agreement, decisive = metrics.top1_agreement_beyond_ties(tol.tie_margin)
    if not agreement >= tol.top1:
        return False, f"top-1 agreement {agreement:.3f} < {tol.top1} (over {decisive} samples without a near-tie)"
    return True, "ok"
