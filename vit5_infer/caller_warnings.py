"""Warnings attributed to the code that called the toolkit.

A fixed ``stacklevel`` is right for one call path only: the same warning reached through a workflow, the
CLI or a direct library call sits at a different depth.  So the warning goes to the first frame outside
the ``vit5_infer`` namespace, whichever path led to it.
"""

from __future__ import annotations

import sys
import warnings

_NAMESPACE = __name__.split(".")[0]


def _ours(module: str) -> bool:
    return module == _NAMESPACE or module.startswith(_NAMESPACE + ".")


def warn_at_caller(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message, category)`` attributed to the nearest caller outside ``vit5_infer``."""
    frame = sys._getframe(1)
    level = 2  # warnings.warn's stacklevel of this function's caller
    while frame.f_back is not None and _ours(str(frame.f_globals.get("__name__", ""))):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
