"""Per-output comparison (vit5_infer.metrics.compare_outputs) and its tolerances."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vit5_infer.metrics import OutputComparison, compare_logits, compare_outputs, outputs_within_tolerance


def _features(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "logits": rng.normal(size=(4, 10)).astype(np.float32),
        "patch_tokens": rng.normal(size=(4, 3, 3, 8)).astype(np.float32) * 20,
    }


def test_identical_outputs():
    ref = _features()
    result = compare_outputs(ref, dict(ref))
    assert list(result) == ["logits", "patch_tokens"]
    tokens = result["patch_tokens"]
    assert tokens.cosine == pytest.approx(1.0) and tokens.min_vector_cosine == pytest.approx(1.0)
    assert tokens.relative_error == 0.0 and tokens.max_abs_err == 0.0
    assert tokens.shape == (4, 3, 3, 8)
    assert tokens.top1_agreement is None and "top1_agreement" not in tokens.to_dict()
    assert result["logits"].top1_agreement == 1.0 and result["logits"].top5_agreement == 1.0
    assert outputs_within_tolerance(result, "fp32") == (True, "ok")


def test_metrics_agree_with_their_definitions():
    ref = _features()
    out = {
        k: v + np.float32(0.01) * np.random.default_rng(1).normal(size=v.shape).astype(np.float32)
        for k, v in ref.items()
    }
    got = compare_outputs(ref, out)
    for name in ref:
        r, o = ref[name].astype(np.float64), out[name].astype(np.float64)
        c = got[name]
        assert c.cosine == pytest.approx(float(r.ravel() @ o.ravel() / np.linalg.norm(r) / np.linalg.norm(o)))
        assert c.relative_error == pytest.approx(float(np.linalg.norm(o - r) / np.linalg.norm(r)))
        assert c.max_abs_err == pytest.approx(float(np.abs(o - r).max()))
        rows_r, rows_o = r.reshape(-1, r.shape[-1]), o.reshape(-1, o.shape[-1])
        per_row = (rows_r * rows_o).sum(1) / np.linalg.norm(rows_r, axis=1) / np.linalg.norm(rows_o, axis=1)
        assert c.min_vector_cosine == pytest.approx(float(per_row.min()))
    legacy = compare_logits(ref["logits"], out["logits"])
    assert got["logits"].cosine == pytest.approx(legacy.cosine)
    assert got["logits"].top1_agreement == legacy.top1_agreement
    assert got["logits"].logits == legacy


def test_one_bad_token_fails_fp32_and_is_named():
    ref = _features()
    out = {k: v.copy() for k, v in ref.items()}
    out["patch_tokens"][2, 1, 1, 3] += 0.5  # scale max(1, ~80): bound ~8e-3 at fp32
    result = compare_outputs(ref, out)
    passed, reason = outputs_within_tolerance(result, "fp32")
    assert not passed and reason.startswith("patch_tokens: max abs error")
    assert outputs_within_tolerance(result, "fp16") == (True, "ok")  # cosine only at reduced precision


def test_low_cosine_fails_reduced_precision():
    ref = _features()
    out = {
        "logits": ref["logits"],
        "patch_tokens": ref["patch_tokens"] + 5 * np.random.default_rng(2).normal(size=ref["patch_tokens"].shape),
    }
    passed, reason = outputs_within_tolerance(compare_outputs(ref, out), "fp16")
    assert not passed and reason.startswith("patch_tokens: cosine")


def test_missing_and_misshapen_outputs():
    ref = _features()
    with pytest.raises(ValueError, match="candidate lacks output.*patch_tokens"):
        compare_outputs(ref, {"logits": ref["logits"]})
    with pytest.raises(ValueError, match="patch_tokens shapes differ"):
        compare_outputs(ref, {"logits": ref["logits"], "patch_tokens": ref["patch_tokens"][:2]})


def test_comparison_is_frozen():
    result = compare_outputs(_features(), _features())["logits"]
    assert isinstance(result, OutputComparison)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.cosine = 0.0  # type: ignore[misc]


def test_non_finite_output_fails_at_every_precision():
    ref = _features()
    out = {k: v.copy() for k, v in ref.items()}
    out["patch_tokens"][0, 0, 0, 0] = np.nan
    comparison = compare_outputs(ref, out)["patch_tokens"]
    assert comparison.finite is False
    for precision in ("fp32", "fp16", "bf16"):
        assert comparison.within_tolerance(precision) == (False, "patch_tokens: the output has NaN or Inf values")


def test_logits_keep_the_near_tie_rule():
    """Logits are judged by metrics.within_tolerance (near-ties do not count for top-1)."""
    ref = {"logits": np.array([[1.0, 1.0 - 1e-6, 0.0], [3.0, 0.0, 0.0]], np.float32)}
    out = {"logits": np.array([[1.0 - 1e-6, 1.0, 0.0], [3.0, 0.0, 0.0]], np.float32)}
    comparison = compare_outputs(ref, out)["logits"]
    assert comparison.top1_agreement == 0.5
    assert comparison.within_tolerance("fp32") == (True, "ok")
