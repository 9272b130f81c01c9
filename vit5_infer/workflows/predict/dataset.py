"""The output dataset: a folder of Parquet part files, ``.npy`` shards for token arrays, and one
metadata file.

- ``_vit5_predict.json``: the model fingerprint, the column options, the toolkit version and the input
  list's hash.  A run resumes only into a dataset with the same metadata.
- ``part-START-END-TOKEN.parquet``: the rows of input positions ``[START, END)``, with the same metadata
  under the schema metadata key ``vit5_predict``.  The range in the
  name is how resume finds finished rows: it lists file names (one interval per part, never one id per
  row).  ``TOKEN`` is random, so shards and resumed runs never collide.  Each part is staged under a
  dot-name and renamed when complete: a killed run leaves no partial part.
- ``_arrays/part-...-TOKEN.NAME.npy``: ``patch_tokens``/``register_tokens`` of that part, row for row;
  the Parquet column holds ``{file, row}``.  Names starting with ``.`` or ``_`` are ignored by
  Parquet dataset readers (pyarrow, Ray, Spark), so ``pq.read_table(OUT)`` reads the rows only.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Optional

import numpy as np

from vit5_infer.errors import PredictError
from vit5_infer.files import staged_file, write_json_atomic

from .options import ARRAY_OUTPUTS, VECTOR_OUTPUTS

METADATA_NAME = "_vit5_predict.json"
ARRAYS_DIR = "_arrays"
#: a Ray run's exported graph lives in such a folder inside the dataset while it runs
WORK_PREFIX = "_vit5-work-"
#: the key of the dataset's metadata (JSON) in every part file's Arrow schema metadata
SCHEMA_KEY = "vit5_predict"
FORMAT = "vit5-predict/1"
_PART = re.compile(r"^part-(\d{10})-(\d{10})-([0-9a-f]{12})\.parquet$")
#: what a resumed run must share with the dataset it adds to
_COMPARED = ("fingerprint", "columns", "inputs")


def part_name(start: int, end: int, token: Optional[str] = None) -> str:
    return f"part-{start:010d}-{end:010d}-{token or uuid.uuid4().hex[:12]}.parquet"


def finished_ranges(folder: Path) -> list[tuple[int, int]]:
    """The input ranges ``[start, end)`` already written, merged, from the part file names (O(parts))."""
    ranges = []
    if folder.is_dir():
        with os.scandir(folder) as entries:
            for entry in entries:
                match = _PART.match(entry.name)
                if match:
                    ranges.append((int(match.group(1)), int(match.group(2))))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def pending_parts(
    bounds: tuple[int, int], done: Sequence[tuple[int, int]], rows_per_file: int
) -> Iterator[tuple[int, int]]:
    """The parts still to write inside ``bounds``: the gaps between ``done``, cut at multiples of
    ``rows_per_file`` (so a resumed run cuts where a fresh one would)."""
    cursor, end = bounds
    for start, stop in list(done) + [(end, end)]:
        gap_end = min(start, end)
        while cursor < gap_end:
            cut = min(gap_end, (cursor // rows_per_file + 1) * rows_per_file)
            yield cursor, cut
            cursor = cut
        cursor = max(cursor, stop)
        if cursor >= end:
            return


_STAGED = re.compile(r"^\.part-(\d{10})-(\d{10})-[0-9a-f]{12}\..*\.tmp$")


def remove_stale_staging(folder: Path) -> int:
    """Remove the staged files a killed run left (``.part-START-END-...tmp``, in the folder and in
    ``_arrays``) whose range is finished: no live run writes a finished range, so a concurrent
    shard's staging is never touched.  Returns how many were removed."""
    done = finished_ranges(folder)
    removed = 0
    for place in (folder, folder / ARRAYS_DIR):
        if not place.is_dir():
            continue
        for entry in list(place.iterdir()):
            match = _STAGED.match(entry.name)
            if match and _covered((int(match.group(1)), int(match.group(2))), done):
                entry.unlink(missing_ok=True)
                removed += 1
    return removed


def _covered(span: tuple[int, int], done: Sequence[tuple[int, int]]) -> bool:
    return any(start <= span[0] and span[1] <= end for start, end in done)


def dataset_metadata(fingerprint: dict, columns: dict, inputs: dict) -> dict:
    from vit5_infer import __version__

    return {
        "format": FORMAT,
        "toolkit": f"vit5-infer {__version__}",
        "fingerprint": fingerprint,
        "columns": columns,
        "inputs": inputs,
    }


def _differences(have: dict, want: dict) -> list[str]:
    said = []
    for section in _COMPARED:
        a, b = have.get(section) or {}, want.get(section) or {}
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                said.append(f"{section}.{key} {a.get(key)!r} (now {b.get(key)!r})")
    return said


def open_dataset(folder: Path, metadata: dict, overwrite: bool = False) -> None:
    """Make ``folder`` a dataset with ``metadata``, or check that it already is one.  ``overwrite``
    first removes what an earlier run wrote (its parts, arrays and metadata; nothing else)."""
    meta_path = folder / METADATA_NAME
    if overwrite and folder.is_dir():
        remove_dataset_files(folder)
    check_dataset_folder(folder)
    if not meta_path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(meta_path, metadata)  # shards starting together write the same document
    have = read_metadata(folder)
    differences = _differences(have, metadata)
    if differences:
        raise PredictError(
            f"-o {folder} was written by another model or input list ({'; '.join(differences[:3])}); "
            f"resume with the same options, write a new folder, or add --overwrite to replace it"
        )


def check_dataset_folder(folder: Path) -> None:
    """A new or empty folder, or a dataset written here: never a folder of someone else's files."""
    if not folder.is_dir() or (folder / METADATA_NAME).is_file():
        return
    # a shard starting at the same moment may be staging the metadata (files.staged_file's ".NAME.*.tmp")
    ours = (WORK_PREFIX, f".{METADATA_NAME}.")
    foreign = next((p.name for p in folder.iterdir() if not p.name.startswith(ours)), None)
    if foreign is not None:
        raise PredictError(
            f"-o {folder}: the folder holds files ({foreign}, ...) but no {METADATA_NAME}, so it is "
            f"not a dataset written by vit5 predict; give a new or empty folder"
        )


def read_metadata(folder: Path) -> dict:
    path = Path(folder) / METADATA_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PredictError(f"{path}: cannot read the dataset's metadata ({type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise PredictError(f"{path}: not a {FORMAT} metadata file")
    return data


def remove_dataset_files(folder: Path) -> None:
    for entry in list(folder.iterdir()):
        if _PART.match(entry.name) or entry.name == METADATA_NAME:
            entry.unlink()
    shutil.rmtree(folder / ARRAYS_DIR, ignore_errors=True)


def schema(columns: dict):
    """The Arrow schema of every part file, from the ``columns`` section of the metadata."""
    import pyarrow as pa

    fields = [pa.field("path", pa.string(), nullable=False), pa.field("index", pa.int64(), nullable=False)]
    if columns.get("label"):
        fields.append(pa.field("label", pa.int64()))
    k = columns["topk"]
    fields += [pa.field("classes", pa.list_(pa.int32(), k)), pa.field("scores", pa.list_(pa.float32(), k))]
    for name, size in columns.get("vectors", {}).items():
        fields.append(pa.field(name, pa.list_(pa.float32(), size)))
    for name in columns.get("arrays", {}):
        fields.append(pa.field(name, pa.struct([("file", pa.string()), ("row", pa.int64())])))
    fields.append(pa.field("error", pa.string()))
    return pa.schema(fields)


def column_spec(topk: int, scores: str, normalize: bool, labels: bool, shapes: dict) -> dict:
    """The ``columns`` section: what each column holds (``shapes``: output name -> per-image shape)."""
    return {
        "topk": topk,
        "scores": scores,
        "normalize": normalize,
        "label": labels,
        "vectors": {n: int(np.prod(s)) for n, s in shapes.items() if n in VECTOR_OUTPUTS},
        "arrays": {n: list(s) for n, s in shapes.items() if n in ARRAY_OUTPUTS},
    }


class PartWriter:
    """The rows of one part ``[start, end)``, added chunk by chunk, committed by ``close()``."""

    def __init__(
        self,
        folder: Path,
        start: int,
        end: int,
        columns: dict,
        paths: Sequence[str],
        labels: Optional[np.ndarray],
        metadata: Optional[dict] = None,
    ):
        self.folder, self.start, self.end, self.columns = folder, start, end, columns
        self.metadata = metadata
        self.name = part_name(start, end)
        self.paths, self.labels = paths, labels
        self.rows = end - start
        self.filled = 0  # rows added so far
        self._data: dict = {"classes": [], "scores": [], **{n: [] for n in columns.get("vectors", {})}}
        self._errors: list = []
        self._stack = contextlib.ExitStack()
        self._arrays: dict = {}
        for name, shape in columns.get("arrays", {}).items():
            final = folder / ARRAYS_DIR / f"{self.name[: -len('.parquet')]}.{name}.npy"
            tmp = self._stack.enter_context(staged_file(final))
            self._arrays[name] = (
                final.name,
                np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(self.rows, *shape)),
            )

    def add(self, values: dict, errors: Sequence[Optional[str]]) -> None:
        """The next ``len(errors)`` rows: ``values`` from ``output_columns`` (rows with an error hold anything)."""
        n = len(errors)
        for name in self._data:
            self._data[name].append(values[name][:n])
        for name, (_, array) in self._arrays.items():
            array[self.filled : self.filled + n] = values[name][:n]
        self._errors += list(errors)
        self.filled += n

    def close(self) -> None:
        """Write the part (arrays first, then the Parquet file that references them)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.filled != self.rows:
            raise AssertionError(f"part {self.name}: {self.filled} rows of {self.rows}")
        failed = np.array([e is not None for e in self._errors], dtype=bool)
        arrays = {
            "path": pa.array(self.paths[self.start : self.end], pa.string()),
            "index": pa.array(np.arange(self.start, self.end, dtype=np.int64)),
        }
        if self.columns.get("label") and self.labels is not None:
            arrays["label"] = pa.array(self.labels[self.start : self.end], pa.int64())
        for name, chunks in self._data.items():
            values = np.concatenate(chunks).reshape(self.rows, -1)
            arrays[name] = pa.FixedSizeListArray.from_arrays(
                pa.array(values.ravel()), values.shape[1], mask=pa.array(failed)
            )
        for name, (file_name, array) in self._arrays.items():
            array.flush()
            refs = pa.StructArray.from_arrays(
                [pa.array([file_name] * self.rows, pa.string()), pa.array(np.arange(self.rows, dtype=np.int64))],
                names=["file", "row"],
                mask=pa.array(failed),
            )
            arrays[name] = refs
        arrays["error"] = pa.array(self._errors, pa.string())
        table = pa.table(arrays, schema=schema(self.columns))
        if self.metadata is not None:  # each part describes itself to a reader that sees only it
            table = table.replace_schema_metadata({SCHEMA_KEY: json.dumps(self.metadata, sort_keys=True)})
        self._arrays.clear()  # the memmaps are closed before their staged files are renamed
        self._stack.close()
        with staged_file(self.folder / self.name) as tmp:
            pq.write_table(table, tmp)

    def abort(self) -> None:
        """Drop the staged files of an unfinished part."""
        self._arrays.clear()
        self._stack.__exit__(PredictError, PredictError("aborted"), None)


class DatasetWriter:
    """Rows in input order, split into the pending parts: each part is committed once its last row arrives."""

    def __init__(
        self,
        folder: Path,
        parts: Sequence[tuple[int, int]],
        columns: dict,
        paths: Sequence[str],
        labels: Optional[np.ndarray] = None,
        metadata: Optional[dict] = None,
    ):
        self.folder, self.columns, self.paths, self.labels, self.metadata = folder, columns, paths, labels, metadata
        self._parts = iter(parts)
        self._current: Optional[PartWriter] = None
        self.parts_written = 0

    def add(self, indices: np.ndarray, values: dict, errors: Sequence[Optional[str]]) -> None:
        """Rows ``indices`` (consecutive positions of the pending parts, in order)."""
        offset = 0
        while offset < len(indices):
            if self._current is None:
                start, end = next(self._parts)
                self._current = PartWriter(
                    self.folder, start, end, self.columns, self.paths, self.labels, self.metadata
                )
            part = self._current
            expected = part.start + part.filled
            if int(indices[offset]) != expected:
                raise AssertionError(f"row {int(indices[offset])} arrived where row {expected} was expected")
            take = min(len(indices) - offset, part.end - expected)
            part.add({name: v[offset : offset + take] for name, v in values.items()}, errors[offset : offset + take])
            offset += take
            if part.filled == part.rows:
                part.close()
                self._current = None
                self.parts_written += 1

    def abort(self) -> None:
        if self._current is not None:
            self._current.abort()
            self._current = None
