"""Did TensorRT fuse attention?  Read from the engine inspector's JSON layer information.

What a fused attention looks like in ``IEngineInspector.get_engine_information(JSON)`` of an engine
built with ProfilingVerbosity.DETAILED:
  * TensorRT >= 10.14 parses the ONNX opset-23 ``Attention`` op into an IAttention layer; the engine
    lists it with an attention LayerType.
  * The MatMul-Softmax-MatMul pattern fused by Myelin shows up as a ``kgen`` layer whose name and
    tactic start with ``_gemm_mha_v2`` (older releases: ``fmha`` / ``mha`` kernels, flash attention).
An unfused attention shows separate gemm and softmax layers.  Only the layer name, type and tactic
are matched: the ``Metadata`` field repeats the ONNX node names, which often contain "attn".
"""

from __future__ import annotations

import json
import re
from typing import Any

import onnx

from vit5_infer.exporters.graph import iter_nodes

_FUSED_KERNEL = re.compile(r"(_gemm_mha|mha_v\d|fmha|fused_?mha|flash_?att|(^|[^a-z])mha([^a-z]|$))", re.IGNORECASE)
_ATTENTION_TYPE = re.compile(r"^k?attention", re.IGNORECASE)
_ATTENTION_OPS = {"Attention", "MultiHeadAttention", "GroupQueryAttention"}


def layers_of(engine_information: str) -> list[Any]:
    """The "Layers" list of the inspector JSON (dicts when DETAILED, plain names otherwise)."""
    try:
        data = json.loads(engine_information)
    except json.JSONDecodeError:
        return []
    layers = data.get("Layers", []) if isinstance(data, dict) else []
    return layers if isinstance(layers, list) else []


def is_fused_attention_layer(layer: Any) -> bool:
    if isinstance(layer, str):
        return bool(_FUSED_KERNEL.search(layer))
    if not isinstance(layer, dict):
        return False
    if _ATTENTION_TYPE.match(str(layer.get("LayerType", ""))):
        return True
    return any(_FUSED_KERNEL.search(str(layer.get(key, ""))) for key in ("Name", "TacticName"))


def fused_attention_layers(engine_information: str) -> list[str]:
    """Names of the engine layers that are fused attention kernels."""
    names = []
    for layer in layers_of(engine_information):
        if is_fused_attention_layer(layer):
            names.append(layer if isinstance(layer, str) else str(layer.get("Name", "?")))
    return names


def onnx_has_attention(model: onnx.ModelProto) -> bool:
    """Whether the graph computes attention at all (a pure Hyena network has nothing to fuse)."""
    return any(node.op_type in _ATTENTION_OPS or node.op_type == "Softmax" for node in iter_nodes(model.graph))
