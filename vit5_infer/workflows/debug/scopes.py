"""Where a tensor sits in the network: the block scope the exporter writes into node names.

The exporter names every node ``<scope>/.../<op>`` (``embed/patch_embed``, ``blocks.3/attn/qkv/MatMul``,
``head/MatMul``); the precision pass names its casts ``<tensor>/cast_<type>``, so they inherit the
scope of the tensor they convert.  Graphs exported elsewhere (``/blocks.3/...`` from torch.onnx)
read the same way.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx  # imported where used: the CLI imports this package before it parses its flags


#: Block label of tensors whose producer carries no scope (the output Identity, foreign graphs).
UNSCOPED = "graph"
_BLOCK = re.compile(r"^/?(blocks\.\d+)(?:/|$)")


def block_of(node_name: str) -> str:
    """``blocks.N`` for a node inside residual block N, else the node name's first scope."""
    match = _BLOCK.match(node_name)
    if match:
        return match.group(1)
    parts = node_name.lstrip("/").split("/")
    return parts[0] if len(parts) > 1 and parts[0] else UNSCOPED


def producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    """Tensor name -> the node of the main graph that computes it, in graph (topological) order."""
    return {out: node for node in model.graph.node for out in node.output if out}
