"""Writing files so that a crash or an error never leaves a half-written one behind, and checking
output paths before any work starts.  Every writer of the toolkit goes through here."""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

from .errors import InputError, disk_error
from .vocabulary import PathLike


@contextlib.contextmanager
def staged_file(path: PathLike) -> Iterator[Path]:
    """A temporary path in the target's folder; it replaces ``path`` only when the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        # mkstemp makes the file private (0600); the published file gets what open() would give it.
        os.fchmod(fd, 0o666 & ~current_umask())
    finally:
        os.close(fd)
    tmp = Path(tmp_name)
    try:
        with disk_errors(target):
            yield tmp
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def current_umask() -> int:
    """The process umask, read without changing it where /proc tells it (os.umask can only set it)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_public_dir(path: PathLike) -> None:
    """Give a folder made by ``tempfile.mkdtemp`` (0700) the mode ``mkdir`` would have given it, so a
    published folder is readable by whoever the umask lets read it (a server running as another user)."""
    os.chmod(path, 0o777 & ~current_umask())


def graph_tensors(graph):
    """Every tensor an ONNX graph (or a model's local function) holds: its initializers, the tensors of node
    attributes (Constant nodes), and those of every subgraph (If, Loop, Scan bodies), at any depth."""
    yield from getattr(graph, "initializer", ())  # a FunctionProto has nodes only
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from graph_tensors(sub)


def external_data_paths(onnx_path: PathLike, model=None) -> list[Path]:
    """The external-data files an ONNX graph names, each checked to lie inside the graph's folder.

    A ``location`` is a path relative to the graph's folder; an absolute one, or one that leaves the
    folder (``..``, a symlink pointing out), would make a reader read (and a copier write) outside
    the model: InputError.  Every reader of a graph with external data checks it here first;
    ``model``: the graph already loaded (without its external data), to save a second parse.
    """
    path = Path(onnx_path)
    if model is None:
        import onnx

        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # noqa: BLE001 - any parse failure of a user file is a user error
            raise InputError(f"{path}: not a readable ONNX graph ({type(exc).__name__})") from None
    folder = path.parent.resolve()
    locations = set()
    for graph in (model.graph, *model.functions):
        for tensor in graph_tensors(graph):
            for entry in tensor.external_data:
                if entry.key == "location":
                    locations.add(entry.value)
    found = []
    for location in sorted(locations):
        pure = Path(location)
        target = (folder / pure).resolve()
        if pure.is_absolute() or not location.strip() or not target.is_relative_to(folder):
            raise InputError(
                f"{path}: external data location {location!r} lies outside the graph's folder; refusing to read it"
            )
        found.append(path.parent / pure)
    return found


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
    text = os.fspath(path)
    if not text.strip() or text.strip() in (".", ".."):
        raise InputError(f"{what}: {text!r} is not a file name")
    target = Path(text)
    # The length first: asking the filesystem about a name past its limit raises ENAMETOOLONG.
    limit = _name_max(_existing_ancestor(target.parent))
    if len(target.name.encode()) > limit:
        raise InputError(
            f"{what}: the file name {target.name[:40]}... is longer than this filesystem allows ({limit} bytes)"
        )
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
        if source is None or not Path(source).exists():
            continue
        source_path = Path(source).resolve()
        if source_path == resolved:
            raise InputError(f"{what}: {text} is also an input of this command; refusing to overwrite it")
        if source_path.is_dir() and source_path in resolved.parents:
            # A folder of inputs (images, calibration) is read whole: anything written inside it is read back.
            raise InputError(
                f"{what}: {text} lies inside {source}, an input folder of this command; write it elsewhere"
            )
    return target


def check_output_dir(path: PathLike, what: str = "output", inputs: tuple = (), error: Optional[type] = None) -> Path:
    """``path`` as a folder this run may create or add to, checked before any work starts (``error``, default
    InputError, otherwise).

    Refuses an empty name, an existing file, a place under a regular file, a name too long for the filesystem,
    a folder (or first existing ancestor) that cannot be written, a read-only filesystem included, and a folder
    that is, holds or lies inside one of ``inputs`` (symlinks and relative paths resolved): the run must never
    write among what it reads.
    """
    error = error or InputError
    text = os.fspath(path)
    if not text.strip():
        raise error(f"{what}: {text!r} is not a folder name")
    target = Path(text)
    if _exists(target) and not target.is_dir():
        raise error(f"{what}: {text} is a file, not a folder")
    absolute = Path(os.path.abspath(text))
    ancestor = _existing_ancestor(absolute)
    limit = _name_max(ancestor if ancestor.is_dir() else ancestor.parent)
    for part in absolute.relative_to(ancestor).parts:
        if len(part.encode()) > limit:
            raise error(f"{what}: the folder name {part[:40]}... is longer than this filesystem allows ({limit} bytes)")
    if not ancestor.is_dir():
        raise error(f"{what}: cannot use {text}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise error(
            f"{what}: cannot write into {text}: {ancestor} is not writable (permissions or a read-only filesystem)"
        )
    resolved = target.resolve()
    for source in inputs:
        if source is None or not Path(source).exists():
            continue
        source = Path(source).resolve()
        if resolved == source or source in resolved.parents or resolved in source.parents:
            raise error(f"{what}: {text} overlaps the input {source}; write the output outside what the run reads")
    return target


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a component past the filesystem's name limit: it cannot exist
        return False


def _name_max(existing: Path) -> int:
    """The longest file name, in bytes, the filesystem holding ``existing`` takes."""
    return os.pathconf(existing, "PC_NAME_MAX") if hasattr(os, "pathconf") else 255


def _existing_ancestor(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while path != path.parent and not _exists(path):
        path = path.parent
    return path


def require_file(path: PathLike, suffixes: tuple, what: str, error: Optional[type[Exception]] = None) -> Path:
    """``path`` as an existing file with one of ``suffixes``; ``error`` (default InputError) otherwise."""
    fail = error or InputError  # the calling layer's own error class
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise fail(f"{path}: expected an {what} ({', '.join(suffixes)})")
    if not path.is_file():
        raise fail(f"{path}: {what} not found" if not path.exists() else f"{path}: {what} is not a file")
    return path


# ---- writes that fail for want of room ---------------------------------------------------------
#: Errors of the disk, not of the program: a full disk or quota, a file past the filesystem's size
#: limit, a filesystem that turned read-only.  Every writer reports them as one line.
@contextlib.contextmanager
def disk_errors(path: Optional[PathLike] = None) -> Iterator[None]:
    """Turns a full disk (or quota, size limit, read-only filesystem) while writing ``path`` into one line."""
    try:
        yield
    except OSError as exc:
        error = disk_error(exc, path)
        if error is None:
            raise
        raise error from None


# ---- strict, bounded JSON ----------------------------------------------------------------------
#: Deeper nesting than any document of the toolkit has: refused before the parser recurses.
JSON_MAX_DEPTH = 32
JSON_MAX_BYTES = 64 * 2**20


def _json_depth(text: str) -> int:
    """The deepest nesting of ``[`` and ``{`` in ``text`` (strings skipped), without recursion."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is out of the range of a number")
    return value


def _unique_keys(pairs: list) -> dict:
    seen: dict = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {key!r}")
        seen[key] = value
    return seen


def parse_json(
    text, what: str, expect: Optional[type] = None, error: Optional[type] = None, max_depth: int = JSON_MAX_DEPTH
):
    """``text`` (str or bytes) as strict JSON, or one-line ``error`` (default InputError) naming ``what``.

    Refuses what Python's json module would take silently or fail on with a traceback: NaN and
    Infinity, a key given twice in one object, nesting deeper than ``max_depth``, numbers past the
    digit limit; a leading UTF-8 byte-order mark is skipped.  ``expect`` (dict or list): the type the
    document must be.
    """
    error = error or InputError
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise error(f"{what}: not UTF-8 text") from None
    text = text.removeprefix("\ufeff")
    if len(text) > JSON_MAX_BYTES:
        raise error(f"{what}: {len(text)} characters of JSON, more than the {JSON_MAX_BYTES} this reader takes")
    if _json_depth(text) > max_depth:
        raise error(f"{what}: JSON nested deeper than {max_depth} levels")
    try:
        document = json.loads(
            text, parse_constant=_reject_constant, parse_float=_finite_float, object_pairs_hook=_unique_keys
        )
    except json.JSONDecodeError as exc:
        raise error(f"{what}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except (ValueError, RecursionError) as exc:  # NaN/Infinity, duplicate keys, an integer past the digit limit
        raise error(f"{what}: not valid JSON ({str(exc).splitlines()[0]})") from None
    if expect is not None and not isinstance(document, expect):
        names: dict[type, str] = {dict: "object", list: "list"}
        wanted = names.get(expect, expect.__name__)
        raise error(f"{what}: expected a JSON {wanted}, got {_json_kind(document)}")
    return document


def _json_kind(document) -> str:
    for kind, name in (
        (dict, "an object"),
        (list, "a list"),
        (str, "a string"),
        (bool, "a boolean"),
        ((int, float), "a number"),
    ):
        if isinstance(document, kind):
            return name
    return "null"


def read_json(path: PathLike, what: Optional[str] = None, expect: Optional[type] = None, error: Optional[type] = None):
    """The strict JSON document in the file ``path`` (see ``parse_json``); one-line ``error`` for a file that
    is missing, unreadable, too large, or not such a document."""
    error = error or InputError
    label = what or str(path)
    try:
        size = os.stat(path).st_size
        if size > JSON_MAX_BYTES:
            raise error(f"{label}: {size} bytes, more than the {JSON_MAX_BYTES} a JSON file may have here")
        data = Path(path).read_bytes()
    except OSError as exc:
        raise error(f"{label}: cannot read it ({exc.strerror or type(exc).__name__})") from None
    return parse_json(data, label, expect, error)
