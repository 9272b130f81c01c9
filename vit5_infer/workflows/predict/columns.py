"""Model outputs -> the columns of a Parquet row: top-k classes and scores, feature vectors, and the
arrays that go to .npy shards.  Shared by the local pipeline and the Ray actors, so both write the
same rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import numpy as np

from vit5_infer.vocabulary import LOGITS

from .options import ARRAY_OUTPUTS, VECTOR_OUTPUTS


def top_k(logits: np.ndarray, k: int, scores: str) -> tuple[np.ndarray, np.ndarray]:
    """Classes ``int32 [B, k]`` best first (ties: lower class first) and their scores ``float32 [B, k]``
    (softmax probabilities or raw logits)."""
    logits = np.asarray(logits, dtype=np.float64)
    order = np.argsort(-logits, axis=-1, kind="stable")[:, :k]
    if scores == "softmax":
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        values = shifted / shifted.sum(axis=-1, keepdims=True)
    else:
        values = logits
    return order.astype(np.int32), np.take_along_axis(values, order, axis=-1).astype(np.float32)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x.astype(np.float64), axis=-1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)


def output_columns(
    outputs: dict, names: Sequence[str], topk: int, scores: str, normalize: bool, rows: Optional[int] = None
) -> dict:
    """Column name -> float/int array with one row per image (the first ``rows`` of a padded batch):
    ``classes``, ``scores``, then every asked vector and array output."""
    rows = len(outputs[LOGITS]) if rows is None else rows
    classes, values = top_k(outputs[LOGITS][:rows], topk, scores)
    columns = {"classes": classes, "scores": values}
    for name in names:
        if name in VECTOR_OUTPUTS:
            x = np.asarray(outputs[name][:rows], dtype=np.float32)
            columns[name] = l2_normalize(x) if normalize else x
        elif name in ARRAY_OUTPUTS:
            columns[name] = np.asarray(outputs[name][:rows], dtype=np.float32)
    return columns
