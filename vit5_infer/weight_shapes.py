"""Reading a state_dict's structure: a tensor's shape, the keys it must have, settings every block shares.

Torch-free (a tensor is only asked for ``.shape``), so architecture inference and every block kind's weights
detector use it below the config.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Optional

from .errors import CheckpointError


def shape_of(sd: Mapping[str, Any], key: str, rank: Optional[int] = None) -> tuple:
    """The shape of ``sd[key]``; CheckpointError when it is missing or not of ``rank`` dimensions."""
    if key not in sd:
        raise CheckpointError(f"not a ViT-5 state_dict: missing {key}")
    shape = tuple(sd[key].shape)
    if rank is not None and len(shape) != rank:
        raise CheckpointError(f"{key} has shape {list(shape)}; a ViT-5 checkpoint has a {rank}-D tensor there")
    return shape


def require_keys(sd: Mapping[str, Any], keys: Iterable[str]) -> None:
    missing = [k for k in keys if k not in sd]
    if missing:
        raise CheckpointError(f"not a ViT-5 state_dict: missing {', '.join(missing)}")


def same_for_all(values: Mapping[Any, Any], what: str) -> Any:
    """The one value every block has (``values``: block index -> value); CheckpointError when they differ."""
    distinct = {repr(v) for v in values.values()}
    if len(distinct) > 1:
        raise CheckpointError(f"blocks disagree on {what} ({', '.join(sorted(distinct))}); not supported")
    return next(iter(values.values()))
