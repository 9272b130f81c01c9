"""Accuracy of a candidate's outputs (logits, backbone features) against a reference, and the
tolerance each precision must meet."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from .vocabulary import LOGITS


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
    # Quantized graphs against PyTorch FP32 on held-out calibration images (README, Quantization: the
    # digits networks measure cosine >= 0.9999 at INT8 and FP8 with full top-1 agreement; vit5-small
    # on seeded inputs 0.9998): the bounds catch a broken calibration, not the rounding of a good one.
    "int8": Tolerance(cosine=0.99, max_abs=None, top1=0.95, tie_margin=5e-2),
    "fp8": Tolerance(cosine=0.99, max_abs=None, top1=0.95, tie_margin=5e-2),
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
    with np.errstate(invalid="ignore", over="ignore"):  # a non-finite output is reported as NaN below
        denom = np.linalg.norm(ref) * np.linalg.norm(out)
        cosine = float(np.dot(ref.ravel(), out.ravel()) / denom) if denom > 0 else float(np.array_equal(ref, out))
    ref_order = _topk(ref, 2)
    matches = tuple(bool(m) for m in ref_order[:, 0] == _topk(out, 1)[:, 0])
    rows = np.arange(ref.shape[0])
    margins = (
        (ref[rows, ref_order[:, 0]] - ref[rows, ref_order[:, 1]]) if ref.shape[-1] > 1 else np.full(len(ref), np.inf)
    )
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


# ---- every output by name (logits and backbone features) -----------------------------------------
@dataclass(frozen=True)
class OutputComparison:
    """How one output of a candidate (graph, engine) compares with the reference (PyTorch FP32)."""

    name: str
    shape: tuple
    #: cosine similarity over the flattened batch
    cosine: float
    #: the smallest cosine of any single vector along the last axis (one embedding, one token)
    min_vector_cosine: float
    #: ||out - ref|| / ||ref|| over the flattened batch
    relative_error: float
    max_abs_err: float
    mean_abs_err: float
    reference_max_abs: float
    finite: bool = True
    #: the logits' own comparison (top-1/top-5 with near-ties); None for the other outputs
    logits: Optional[LogitComparison] = None

    @property
    def top1_agreement(self) -> Optional[float]:
        return None if self.logits is None else self.logits.top1_agreement

    @property
    def top5_agreement(self) -> Optional[float]:
        return None if self.logits is None else self.logits.top5_agreement

    def to_dict(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k != "logits"}
        out["shape"] = list(self.shape)
        if self.logits is not None:
            out.update(top1_agreement=self.top1_agreement, top5_agreement=self.top5_agreement)
        return out

    def within_tolerance(self, precision: str) -> tuple[bool, str]:
        """(passed, reason naming the output) at ``precision``: cosine for every output; at FP32 also
        the max abs error relative to the output's scale; the logits' top-1 rule for logits."""
        tol = TOLERANCES.get(precision, TOLERANCES["fp32"])
        if self.logits is not None:
            passed, reason = within_tolerance(self.logits, precision)
        elif not self.finite:
            passed, reason = False, "the output has NaN or Inf values"
        elif not self.cosine >= tol.cosine:
            passed, reason = False, f"cosine {self.cosine:.6f} < {tol.cosine}"
        elif tol.max_abs is not None and not self.max_abs_err <= tol.max_abs * max(1.0, self.reference_max_abs):
            passed, reason = (
                False,
                f"max abs error {self.max_abs_err:.3g} > {tol.max_abs * max(1.0, self.reference_max_abs):.3g}",
            )
        else:
            passed, reason = True, "ok"
        return passed, reason if passed else f"{self.name}: {reason}"


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    return float(np.dot(a.ravel(), b.ravel()) / denom) if denom > 0 else float(np.array_equal(a, b))


def _min_vector_cosine(ref: np.ndarray, out: np.ndarray) -> float:
    ref2, out2 = ref.reshape(-1, ref.shape[-1]), out.reshape(-1, out.shape[-1])
    dots = np.einsum("ij,ij->i", ref2, out2)
    norms = np.linalg.norm(ref2, axis=1) * np.linalg.norm(out2, axis=1)
    same = np.all(ref2 == out2, axis=1)
    cosines = np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), same.astype(np.float64))
    return float(cosines.min()) if cosines.size else 1.0


def compare_output(name: str, reference: np.ndarray, candidate: np.ndarray) -> OutputComparison:
    """``candidate`` against ``reference`` for the output ``name`` (logits get top-1/top-5 too)."""
    ref = np.asarray(reference, dtype=np.float64)
    out = np.asarray(candidate, dtype=np.float64)
    if ref.shape != out.shape:
        raise ValueError(f"{name} shapes differ: reference {ref.shape}, candidate {out.shape}")
    finite = bool(np.isfinite(out).all())
    nan = float("nan")
    diff = np.abs(out - ref)
    ref_norm = np.linalg.norm(ref)
    return OutputComparison(
        name=name,
        shape=tuple(ref.shape),
        cosine=_cosine(ref, out) if finite else nan,
        min_vector_cosine=_min_vector_cosine(ref, out) if finite else nan,
        relative_error=(float(np.linalg.norm(out - ref) / ref_norm) if ref_norm > 0 else float(diff.max(initial=0.0)))
        if finite
        else nan,
        max_abs_err=float(diff.max(initial=0.0)) if finite else nan,
        mean_abs_err=(float(diff.mean()) if diff.size else 0.0) if finite else nan,
        reference_max_abs=float(np.abs(ref).max(initial=0.0)),
        finite=finite,
        logits=compare_logits(ref, out) if name == LOGITS else None,
    )


def compare_outputs(
    reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray]
) -> dict[str, OutputComparison]:
    """Every output of ``reference`` compared with the same-named output of ``candidate``, in
    ``reference``'s order; ValueError when the candidate lacks one."""
    missing = [name for name in reference if name not in candidate]
    if missing:
        raise ValueError(f"candidate lacks output(s) {', '.join(missing)} (has {', '.join(candidate) or 'none'})")
    return {name: compare_output(name, reference[name], candidate[name]) for name in reference}


def outputs_within_tolerance(comparisons: Mapping[str, OutputComparison], precision: str) -> tuple[bool, str]:
    """(passed, reason of the first output that misses) over every compared output."""
    for comparison in comparisons.values():
        passed, reason = comparison.within_tolerance(precision)
        if not passed:
            return False, reason
    return True, "ok"
