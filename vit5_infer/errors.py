"""Errors that describe a user mistake (bad config, bad file, bad input).

The CLI prints these as one line and exits non-zero; anything else is a bug and keeps its traceback.
"""

import errno
from typing import Optional


class Vit5Error(Exception):
    """Base class for every user-facing error of the toolkit."""


class ConfigError(Vit5Error, ValueError):
    """An architecture that upstream would build wrongly or not at all (SPEC section 9)."""


class CheckpointError(Vit5Error):
    """A file that is not a usable ViT-5 checkpoint."""


class InputError(Vit5Error, ValueError):
    """An input tensor of the wrong shape, layout or dtype."""


class BenchError(Vit5Error):
    """A benchmark that cannot run as asked (bad option, missing optional dependency, missing reference)."""


class PredictError(Vit5Error):
    """A ``vit5 predict`` run that cannot start or go on as asked (bad option, input list or output dataset)."""


class EngineMismatchError(Vit5Error, RuntimeError):
    """An engine built for another TensorRT version or GPU; the message says how to rebuild it."""


class ManifestError(Vit5Error, ValueError):
    """An engine manifest that is missing required fields or is not valid JSON."""


class DiskWriteError(Vit5Error):
    """An output the disk cannot take (full, over quota, read-only): the run's result is not written."""


#: errno values that say the disk cannot take a write: the machine's state, reported in one line, not a bug.
DISK_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for the filesystem",
    errno.EROFS: "read-only filesystem",
}


def disk_error(exc: BaseException, path=None) -> Optional["DiskWriteError"]:
    """The one-line Vit5Error for an OSError that says the disk cannot take the write; None for any other error."""
    if not isinstance(exc, OSError) or exc.errno not in DISK_ERRNOS:
        return None
    reason = DISK_ERRNOS[exc.errno]
    where = path if path is not None else exc.filename
    return DiskWriteError(f"cannot write {where}: {reason}; nothing written" if where else f"cannot write: {reason}")
