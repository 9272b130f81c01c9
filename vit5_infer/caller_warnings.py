"""Warnings attributed to the code that called the toolkit.

A fixed ``stacklevel`` is right for one call path only: the same warning reached through a workflow, the
CLI or a direct library call sits at a different depth.  So the warning goes to the first frame outside
the ``vit5_infer`` namespace, whichever path led to it.
"""

from __future__ import annotations

import sys
import warnings

_NAMESPACE = __name__.split(".")[0]


def _passed_over(frame) -> bool:
    """A frame of the toolkit, or of the import machinery (which ``warnings.warn`` passes over too)."""
    module = str(frame.f_globals.get("__name__", ""))
    filename = frame.f_code.co_filename
    return (
        module == _NAMESPACE
        or module.startswith(_NAMESPACE + ".")
        or ("importlib" in filename and "_bootstrap" in filename)
    )


def warn_at_caller(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message, category)`` attributed to the nearest caller outside ``vit5_infer``.

    The frame is found here and handed to ``warn_explicit`` the way ``warnings.warn`` hands its own, rather
    than as a ``stacklevel``, which ``warnings.warn`` counts without importlib's frames.  Like
    ``warnings.warn``, it passes no module globals: with them ``warn_explicit`` asks the caller's loader for
    its source, which fails for ``__main__`` (``python -c``, ``python -m``).
    """
    frame = sys._getframe(1)
    while frame.f_back is not None and _passed_over(frame):
        frame = frame.f_back
    module_globals = frame.f_globals
    warnings.warn_explicit(
        message,
        category,
        frame.f_code.co_filename,
        frame.f_lineno,
        module=str(module_globals.get("__name__", "<string>")),
        registry=module_globals.setdefault("__warningregistry__", {}),
    )
