"""``GraphForm``: the shape of an exported graph (runtime target, opset, batch, layout, long-convolution
lowering), how its weights are stored and whether it is validated before it is published."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Union

if TYPE_CHECKING:
    from .targets import ExportTarget


@dataclass(frozen=True)
class GraphForm:
    """``target``: ``ort``/``cpu`` or ``tensorrt[=X.Y]`` (exporters.targets); None: the exporter's default.
    ``opset``: None: the target's default.  ``batch``: None: a dynamic batch.  ``external_data``: store the
    weights beside the graph; None: only past protobuf's 2 GB limit."""

    target: Union[str, ExportTarget, None] = None
    opset: Optional[int] = None
    batch: Optional[int] = None
    layout: str = "nchw"
    lowering: str = "auto"
    external_data: Optional[bool] = None
    validate: bool = True
