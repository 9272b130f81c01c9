"""Accuracy on a labelled image folder (ImageFolder layout: one subfolder per class), next to the
agreement with PyTorch that every bench row reports.

The class index of a folder is its place in sorted folder order, or what a labels file says:
- a text file: one class folder name per line (the first word; the rest of the line, such as a
  readable name, is ignored), the class index being the line's place among the non-blank lines;
- a JSON file: a list of folder names (index = position) or an object ``{folder: index}``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from vit5_infer.errors import BenchError
from vit5_infer.preprocessing import IMAGE_SUFFIXES, Preprocessing, image_files, load_images
from vit5_infer.vocabulary import LOGITS, PathLike

LABEL_SUFFIXES = (".txt", ".json")
#: Far above any classifier's class count, and within the int64 the labels are held in.
MAX_CLASS_INDEX = 2**31 - 1


def read_class_index(path: PathLike) -> dict[str, int]:
    """Class folder name -> class index, from a labels file (text or JSON; see the module docstring)."""
    from vit5_infer.files import read_json, require_file

    path = require_file(path, LABEL_SUFFIXES, "labels file", BenchError)
    if path.suffix.lower() == ".json":
        data = read_json(path, f"{path}", error=BenchError)
        if isinstance(data, list) and all(isinstance(name, str) for name in data):
            pairs = [(name, index) for index, name in enumerate(data)]
        elif isinstance(data, dict) and all(isinstance(i, int) and not isinstance(i, bool) for i in data.values()):
            pairs = list(data.items())
        else:
            raise BenchError(f"{path}: expected a JSON list of class folder names or an object {{folder: index}}")
    else:
        try:
            text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not part of the first name
        except (OSError, UnicodeDecodeError) as exc:
            raise BenchError(
                f"{path}: cannot read the labels file ({getattr(exc, 'strerror', None) or type(exc).__name__})"
            ) from None
        names = [line.split()[0] for line in text.splitlines() if line.strip()]
        pairs = [(name, index) for index, name in enumerate(names)]
    if not pairs:
        raise BenchError(f"{path}: the labels file names no class")
    index: dict[str, int] = {}
    for name, value in pairs:
        if name in index:
            raise BenchError(f"{path}: class {name!r} is listed twice")
        if not 0 <= value <= MAX_CLASS_INDEX:
            raise BenchError(f"{path}: class {name!r} has index {value}, outside 0..{MAX_CLASS_INDEX}")
        index[name] = value
    return index


@dataclass(frozen=True)
class LabelledImages:
    files: tuple
    labels: np.ndarray  # int64 [n]
    classes: tuple  # class folder names, sorted
    class_ids: tuple  # the class index of each folder in ``classes``

    @classmethod
    def find(cls, folder: PathLike, class_index: Optional[dict[str, int]] = None) -> Optional[LabelledImages]:
        """The folder as a labelled dataset, or None when it is not one (images outside class folders,
        or fewer than two classes).  With ``class_index`` (``read_class_index``) the folder must be one,
        every class folder must be named there, and one class folder is enough."""
        folder = Path(folder)
        classes = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
        if class_index is not None:
            unknown = [name for name in classes if name not in class_index]
            if unknown:
                more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
                raise BenchError(f"{folder}: class folder {unknown[0]!r}{more} is not in the labels file")
        ids = tuple(range(len(classes))) if class_index is None else tuple(class_index[name] for name in classes)
        files, labels = [], []
        for name, label in zip(classes, ids):
            found = image_files(folder / name, "--images")
            files += found
            labels += [label] * len(found)
        loose = (
            [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
            if folder.is_dir()
            else []
        )
        if class_index is not None and (loose or not files):
            why = "it has images outside class folders" if loose else "no class folder holds an image"
            raise BenchError(f"{folder}: --labels needs one subfolder of images per class, but {why}")
        if len(classes) < (1 if class_index is not None else 2) or not files or loose:
            return None
        return cls(tuple(files), np.asarray(labels, dtype=np.int64), tuple(classes), ids)

    def check_classes(self, num_classes: int) -> None:
        """Every label must be a class of the network."""
        for name, label in zip(self.classes, self.class_ids):
            if label >= num_classes:
                raise BenchError(
                    f"class folder {name!r} has class index {label}, but the network has {num_classes} classes"
                )


def dataset_accuracy(run: Callable[[np.ndarray], dict], data: LabelledImages, pre: Preprocessing, batch: int) -> dict:
    """``{"images", "top1", "top5"}`` of a runner over every labelled image, in batches of ``batch``."""
    correct1 = correct5 = 0
    for start in range(0, len(data.files), batch):
        chunk = data.files[start : start + batch]
        x = load_images(chunk, pre, len(chunk))
        if len(chunk) < batch:  # the last chunk is padded: engines and static graphs take fixed batches
            x = np.concatenate([x, np.repeat(x[-1:], batch - len(chunk), axis=0)])
        logits = np.asarray(run(x)[LOGITS], dtype=np.float64)[: len(chunk)]
        labels = data.labels[start : start + len(chunk)]
        order = np.argsort(-logits, axis=-1, kind="stable")
        correct1 += int((order[:, 0] == labels).sum())
        correct5 += int((order[:, :5] == labels[:, None]).any(axis=1).sum())
    n = len(data.files)
    return {"images": n, "top1": correct1 / n, "top5": correct5 / n}
