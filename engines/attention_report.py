"""Did TensorRT fuse attention?  Engine kernels (inspector JSON) counted against the graph's attention blocks.

Evidence, from ``IEngineInspector.get_engine_information(LayerInformationFormat.JSON)`` of an engine
built with ProfilingVerbosity.DETAILED (TensorRT 10.x: ``{"Layers": [{"Name", "LayerType", "Inputs",
"Outputs", "TacticName", "StreamId", "Metadata"}, ...], "Bindings": [...]}``):

* Only ``TacticName`` is trusted: it names the kernel TensorRT chose (Myelin's fused attention
  kernels are ``_gemm_mha_v2...``; flash/fused MHA kernels carry ``fmha``/``mha`` tokens).  Layer
  ``Name`` and ``Metadata`` are derived from ONNX node names (a Myelin gemm for node
  ``/attn/mha/MatMul`` is named ``/attn/mha/MatMul_myl0_3``), so a node a user called "mha" would
  read as fused there.  ``LayerType`` is ``kgen``/``gemm`` for both fused and unfused Myelin layers.
* Engines built with less than DETAILED verbosity list layer names only (strings); a Myelin
  ``ForeignNode[...]`` hides its kernels.  Without tactic names the verdict is "unknown".
* The number of fused kernels is compared with the number of attention blocks of the ONNX graph
  (opset-23 ``Attention`` nodes, or MatMul -> Softmax -> MatMul patterns): all, some, or none fused.

The raw inspector JSON is saved beside the engine (``model.engine.layers.json``) so these rules can
be checked against what a real build reports.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Optional

#: Kernel-name tokens of fused attention, matched in TacticName only (lower-cased).
_FUSED_KERNEL = re.compile(
    r"_gemm_mha"  # Myelin's fused MHA (e.g. _gemm_mha_v2_0x957a2fe2)
    r"|mha_v\d"  # fused MHA kernel generations
    r"|fmha"  # fused multi-head attention kernels (fmha_v2_*, *_fmha_*)
    r"|flash_?att"  # flash attention
    r"|fused_?(?:multi_?head|mha)"
    r"|(?:^|[^a-z0-9])mha(?:[^a-z0-9]|$)"  # a standalone "mha" token
)
_ATTENTION_OPS = {"Attention", "MultiHeadAttention", "GroupQueryAttention"}
# Ops that may sit between the two MatMuls and the Softmax of an attention block: scaling, masking,
# and the casts around an FP32 softmax in a reduced-precision graph.
_PASS_THROUGH_OPS = {"Cast", "Mul", "Div", "Add", "Sub", "Where", "Identity", "Dropout", "Reshape"}
_SEARCH_DEPTH = 4

FUSED, PARTIAL, NOT_FUSED, UNKNOWN, NO_ATTENTION = "fused", "partly fused", "not fused", "unknown", "no attention"
VERDICTS = (FUSED, PARTIAL, NOT_FUSED, UNKNOWN, NO_ATTENTION)


@dataclass(frozen=True)
class FusionReport:
    verdict: str  # one of VERDICTS
    attention_blocks: int  # attention blocks in the ONNX graph
    fused_layers: tuple = ()  # names of the engine layers whose kernel is a fused attention kernel
    detail: str = ""  # why "unknown", or the kernel count against the block count

    @property
    def fused(self) -> Optional[bool]:
        """True: every block fused; False: some or none; None: no attention, or no evidence."""
        if self.verdict == FUSED:
            return True
        if self.verdict in (PARTIAL, NOT_FUSED):
            return False
        return None

    def summary(self) -> str:
        """One line for the build output."""
        if self.verdict == NO_ATTENTION:
            return "attention: none in this network (nothing to fuse)"
        if self.verdict == UNKNOWN:
            return f"attention: fusion unknown ({self.detail})"
        return f"attention: {self.verdict} ({self.detail})"

    def to_dict(self) -> dict:
        data = asdict(self)
        data["fused_layers"] = list(self.fused_layers)
        return data


def inspector_layers(engine_information: str) -> Optional[list]:
    """The "Layers" list of the inspector JSON; None when the text is not that JSON."""
    try:
        data = json.loads(engine_information)
    except (TypeError, ValueError):
        return None
    layers = data.get("Layers") if isinstance(data, dict) else None
    return layers if isinstance(layers, list) else None


def is_fused_attention_kernel(tactic_name: str) -> bool:
    return bool(_FUSED_KERNEL.search(str(tactic_name).lower()))


def fused_attention_layers(layers: Iterable[Any]) -> list[str]:
    """Names of the layers whose tactic (kernel) is a fused attention kernel."""
    return [
        str(layer.get("Name", "?"))
        for layer in layers
        if isinstance(layer, dict) and is_fused_attention_kernel(layer.get("TacticName", ""))
    ]


def fusion_report(engine_information: str, attention_blocks: int) -> FusionReport:
    """The verdict for an engine whose ONNX graph has ``attention_blocks`` attention blocks."""
    layers = inspector_layers(engine_information)
    if layers is None:
        evidence, reason = None, "the engine inspector gave no layer JSON"
    elif not any(isinstance(layer, dict) and str(layer.get("TacticName") or "").strip() for layer in layers):
        evidence, reason = None, "the engine inspector lists no kernel (tactic) names; build with detailed profiling verbosity"
    else:
        evidence, reason = fused_attention_layers(layers), ""
    if attention_blocks == 0:
        return FusionReport(NO_ATTENTION, 0, tuple(evidence or ()), "the ONNX graph has no attention block")
    if evidence is None:
        return FusionReport(UNKNOWN, attention_blocks, (), reason)
    count = f"{len(evidence)} fused attention kernel(s) for {attention_blocks} attention block(s)"
    if not evidence:
        return FusionReport(NOT_FUSED, attention_blocks, (), f"{count}: attention runs as separate gemm/softmax kernels")
    verdict = FUSED if len(evidence) >= attention_blocks else PARTIAL
    return FusionReport(verdict, attention_blocks, tuple(evidence), count)


def count_attention_blocks(model: Any) -> int:
    """Attention blocks of an ONNX model: Attention nodes plus MatMul -> Softmax -> MatMul patterns."""
    return _count_in_graph(model.graph)


def _count_in_graph(graph: Any) -> int:
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def matmul_before(tensor: str, depth: int = _SEARCH_DEPTH) -> bool:
        node = producer.get(tensor)
        if node is None:
            return False
        if node.op_type == "MatMul":
            return True
        return depth > 0 and node.op_type in _PASS_THROUGH_OPS and any(matmul_before(i, depth - 1) for i in node.input)

    def matmul_after(tensor: str, depth: int = _SEARCH_DEPTH) -> bool:
        for node in consumers.get(tensor, []):
            if node.op_type == "MatMul":
                return True
            if depth > 0 and node.op_type in _PASS_THROUGH_OPS and any(matmul_after(o, depth - 1) for o in node.output):
                return True
        return False

    count = 0
    for node in graph.node:
        if node.op_type in _ATTENTION_OPS:
            count += 1
        elif node.op_type == "Softmax" and matmul_before(node.input[0]) and matmul_after(node.output[0]):
            count += 1
        for attribute in node.attribute:
            subgraphs = ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs)
            count += sum(_count_in_graph(sub) for sub in subgraphs)
    return count
