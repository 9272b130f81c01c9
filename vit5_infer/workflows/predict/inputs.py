"""The input list of ``predict``: a folder (recursive, sorted), an ImageFolder with labels, or a
manifest (``.txt`` one path per line, ``.csv``/``.parquet`` with a ``path`` column), and its hash.

A manifest's relative paths are relative to the manifest's folder.  The list is held as paths only
(a few hundred bytes per image); nothing is decoded here.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from vit5_infer.errors import InputError, PredictError
from vit5_infer.vocabulary import PathLike

MANIFEST_SUFFIXES = (".txt", ".csv", ".parquet")


@dataclass(frozen=True)
class InputList:
    paths: tuple  # str, in input order: the row's ``index`` is its place here
    labels: Optional[np.ndarray] = None  # int64 per path, for an ImageFolder
    #: what the output must stay out of: the images folder, or the manifest file
    root: Optional[Path] = None

    def __len__(self) -> int:
        return len(self.paths)

    def digest(self) -> str:
        """sha256 of the list (paths and labels, in order): a resumed run must read the same list."""
        h = hashlib.sha256()
        for i, path in enumerate(self.paths):
            h.update(path.encode("utf-8", "surrogateescape"))
            h.update(b"\0" if self.labels is None else f"\0{int(self.labels[i])}\0".encode())
        return h.hexdigest()


def read_inputs(images: PathLike, labels: Optional[PathLike] = None) -> InputList:
    """``images`` as an input list; one-line PredictError for a missing path, an empty folder or a
    manifest without paths."""
    from vit5_infer.preprocessing import list_images
    from vit5_infer.workflows.labelled_images import LabelledImages, read_class_index

    path = Path(images)
    if not path.exists():
        raise PredictError(f"IMAGES: {path} does not exist")
    if path.is_file():
        if labels is not None:
            raise PredictError("--labels names the class folders of an ImageFolder; a manifest carries no classes")
        return InputList(tuple(read_manifest(path)), None, path)
    if labels is not None:
        labelled = LabelledImages.find(path, read_class_index(labels))
        if labelled is None:
            raise PredictError(f"IMAGES: {path} is not an ImageFolder (one subfolder of images per class)")
        return InputList(tuple(map(str, labelled.files)), labelled.labels, path)
    try:
        files = list_images(path, "IMAGES")
    except InputError as exc:
        raise PredictError(str(exc)) from None
    return InputList(tuple(map(str, files)), None, path)


def read_manifest(path: Path) -> list[str]:
    """The paths a manifest lists, relative ones resolved against its folder."""
    suffix = path.suffix.lower()
    if suffix not in MANIFEST_SUFFIXES:
        raise PredictError(f"IMAGES: {path} is a file but not a manifest ({', '.join(MANIFEST_SUFFIXES)})")
    try:
        if suffix == ".txt":
            entries = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
            entries = [e for e in entries if e and not e.startswith("#")]
        elif suffix == ".csv":
            with path.open(newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                if "path" not in (reader.fieldnames or []):
                    raise PredictError(
                        f"IMAGES: {path} has no 'path' column (its columns: "
                        f"{', '.join(reader.fieldnames or []) or 'none'})"
                    )
                entries = [row["path"].strip() for row in reader if (row["path"] or "").strip()]
        else:
            import pyarrow.parquet as pq

            names = pq.read_schema(path).names
            if "path" not in names:
                raise PredictError(f"IMAGES: {path} has no 'path' column (its columns: {', '.join(names)})")
            entries = [str(p) for p in pq.read_table(path, columns=["path"]).column("path").to_pylist() if p]
    except (OSError, ValueError, csv.Error) as exc:  # pyarrow.ArrowInvalid is a ValueError
        raise PredictError(f"IMAGES: cannot read the manifest {path} ({type(exc).__name__})") from None
    except ImportError:
        raise PredictError("a .parquet manifest needs pyarrow: pip install 'vit5-infer[parquet]'") from None
    if not entries:
        raise PredictError(f"IMAGES: the manifest {path} lists no image")
    base = path.parent
    return [e if Path(e).is_absolute() else str(base / e) for e in entries]
