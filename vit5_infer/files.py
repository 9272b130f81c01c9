"""Writing files so that a crash or an error never leaves a half-written one behind, and checking
output paths before any work starts.  Every writer of the toolkit goes through here."""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Iterator, Optional

from .vocabulary import PathLike


@contextlib.contextmanager
def staged_file(path: PathLike) -> Iterator[Path]:
    """A temporary path in the target's folder; it replaces ``path`` only when the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(path: PathLike, data: bytes) -> None:
    with staged_file(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: PathLike, text: str) -> None:
    with staged_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _finite(value):
    """NaN and Inf become null: a report stays strict JSON that any reader accepts."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def json_text(document) -> str:
    """Strict, indented JSON of ``document`` (non-finite numbers, e.g. an overflowed tensor's error, as null)."""
    return json.dumps(_finite(document), indent=2, allow_nan=False) + "\n"


def write_json_atomic(path: PathLike, document) -> None:
    write_text_atomic(path, json_text(document))


def check_output_path(path: PathLike, what: str = "output", inputs: tuple = (), suffixes: tuple = ()) -> Path:
    """``path`` as a file this run may write, checked before any work starts (InputError otherwise).

    Refuses an empty name, a directory (or a name ending in a separator), a place under a regular file
    or in a folder that cannot be written, a name too long for the filesystem, a suffix outside
    ``suffixes``, and any of ``inputs`` (symlinks and relative paths resolved): an output must never
    overwrite what the run reads.
    """
    from .errors import InputError

    text = os.fspath(path)
    if not text.strip() or text.strip() in (".", ".."):
        raise InputError(f"{what}: {text!r} is not a file name")
    target = Path(text)
    # The length first: asking the filesystem about a name past its limit raises ENAMETOOLONG.
    limit = os.pathconf(_existing_ancestor(target.parent), "PC_NAME_MAX") if hasattr(os, "pathconf") else 255
    if len(target.name.encode()) > limit:
        raise InputError(f"{what}: the file name {target.name[:40]}... is longer than this filesystem allows ({limit} bytes)")
    if text.endswith(("/", os.sep)) or target.is_dir():
        raise InputError(f"{what}: {text} is a directory; give a file name")
    if suffixes and target.suffix.lower() not in suffixes:
        raise InputError(f"{what}: {text} must end in {' or '.join(suffixes)}")
    ancestor = _existing_ancestor(target.parent)
    if not ancestor.is_dir():
        raise InputError(f"{what}: cannot create {text}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InputError(f"{what}: cannot write {text}: folder {ancestor} is not writable")
    resolved = target.resolve()
    for source in inputs:
        if source is not None and Path(source).exists() and Path(source).resolve() == resolved:
            raise InputError(f"{what}: {text} is also an input of this command; refusing to overwrite it")
    return target


def check_output_dir(path: PathLike, what: str = "output", inputs: tuple = ()) -> Path:
    """``path`` as a folder this run may create or add to, checked before any work starts (InputError otherwise).

    Refuses an empty name, an existing file, a place under a regular file or in a folder that cannot be
    written, and a folder that is, holds or lies inside one of ``inputs`` (symlinks and relative paths
    resolved): the run must never write among what it reads.
    """
    from .errors import InputError

    text = os.fspath(path)
    if not text.strip():
        raise InputError(f"{what}: {text!r} is not a folder name")
    target = Path(text)
    if _exists(target) and not target.is_dir():
        raise InputError(f"{what}: {text} is a file; give a folder (a dataset is a folder of part files)")
    ancestor = _existing_ancestor(target)
    if not ancestor.is_dir():
        raise InputError(f"{what}: cannot create {text}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InputError(f"{what}: cannot write {text}: folder {ancestor} is not writable")
    resolved = target.resolve()
    for source in inputs:
        if source is None or not Path(source).exists():
            continue
        source = Path(source).resolve()
        if resolved == source or source in resolved.parents or resolved in source.parents:
            raise InputError(f"{what}: {text} overlaps the input {source}; write the output outside what the run reads")
    return target


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a component past the filesystem's name limit: it cannot exist
        return False


def _existing_ancestor(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while path != path.parent and not _exists(path):
        path = path.parent
    return path


def require_file(path: PathLike, suffixes: tuple, what: str, error: Optional[type[Exception]] = None) -> Path:
    """``path`` as an existing file with one of ``suffixes``; ``error`` (default InputError) otherwise."""
    from .errors import InputError

    fail = error or InputError  # the calling layer's own error class
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise fail(f"{path}: expected an {what} ({', '.join(suffixes)})")
    if not path.is_file():
        raise fail(f"{path}: {what} not found" if not path.exists() else f"{path}: {what} is not a file")
    return path
