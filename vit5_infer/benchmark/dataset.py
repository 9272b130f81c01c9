"""Accuracy on a labelled image folder (ImageFolder layout: one subfolder per class, class index =
sorted folder order), next to the agreement with PyTorch that every bench row reports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from vit5_infer.preprocessing import IMAGE_SUFFIXES, Preprocessing, load_images
from vit5_infer.vocabulary import LOGITS, PathLike


@dataclass(frozen=True)
class LabelledImages:
    files: tuple
    labels: np.ndarray  # int64 [n]
    classes: tuple  # folder names, in class-index order

    @classmethod
    def find(cls, folder: PathLike) -> Optional["LabelledImages"]:
        """The folder as a labelled dataset, or None when it is not one (images outside class folders,
        or fewer than two classes)."""
        folder = Path(folder)
        classes = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
        files, labels = [], []
        for index, name in enumerate(classes):
            found = sorted(p for p in (folder / name).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            files += found
            labels += [index] * len(found)
        loose = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES] if folder.is_dir() else []
        if len(classes) < 2 or not files or loose:
            return None
        return cls(tuple(files), np.asarray(labels, dtype=np.int64), tuple(classes))


def dataset_accuracy(run: Callable[[np.ndarray], dict], data: LabelledImages, pre: Preprocessing,
                     batch: int) -> dict:
    """``{"images", "top1", "top5"}`` of a runner over every labelled image, in batches of ``batch``."""
    correct1 = correct5 = 0
    for start in range(0, len(data.files), batch):
        chunk = data.files[start:start + batch]
        x = load_images(chunk, pre, len(chunk))
        if len(chunk) < batch:  # the last chunk is padded: engines and static graphs take fixed batches
            x = np.concatenate([x, np.repeat(x[-1:], batch - len(chunk), axis=0)])
        logits = np.asarray(run(x)[LOGITS], dtype=np.float64)[: len(chunk)]
        labels = data.labels[start:start + len(chunk)]
        order = np.argsort(-logits, axis=-1, kind="stable")
        correct1 += int((order[:, 0] == labels).sum())
        correct5 += int((order[:, :5] == labels[:, None]).any(axis=1).sum())
    n = len(data.files)
    return {"images": n, "top1": correct1 / n, "top5": correct5 / n}
