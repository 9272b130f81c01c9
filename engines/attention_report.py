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
* Each fused kernel is attributed to the attention blocks of the ONNX graph (opset-23 ``Attention``
  nodes, or MatMul -> Softmax -> MatMul patterns) whose node names its layer's ``Name`` or ``Metadata``
  (``[ONNX Layer: NODE]``) carries; a block is fused when at least one fused kernel is its own.  Counting
  kernels against blocks would call an engine fused where one block was split into two MHA kernels and
  another got none.
* A block whose attention has one query (a ``cls`` readout's last block: ``[B,h,1,d] x [B,h,d,T]``) is a
  matrix-vector product, which TensorRT runs as gemm kernels; when it is the only block left unfused, the
  report says so instead of calling the engine partly fused.
* The kernel names of engines built from IAttention layers (opset-23 ``Attention`` on TensorRT 10.14+) are
  not confirmed by a GPU dump yet; a report on such a graph says so (IATTENTION_UNVERIFIED).

The raw inspector JSON is saved beside the engine (``model.engine.layers.json``) so these rules can
be checked against what a real build reports.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Union

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
# QuantizeLinear/DequantizeLinear: TensorRT-target INT8/FP8 graphs quantize both products of attention.
_PASS_THROUGH_OPS = {
    "Cast",
    "Mul",
    "Div",
    "Add",
    "Sub",
    "Where",
    "Identity",
    "Dropout",
    "Reshape",
    "QuantizeLinear",
    "DequantizeLinear",
}
_SEARCH_DEPTH = 4

FUSED, PARTIAL, NOT_FUSED, UNKNOWN, NO_ATTENTION = "fused", "partly fused", "not fused", "unknown", "no attention"
VERDICTS = (FUSED, PARTIAL, NOT_FUSED, UNKNOWN, NO_ATTENTION)
#: Said of every report on a graph with ``Attention`` nodes until a GPU dump confirms the kernel names.
IATTENTION_UNVERIFIED = (
    "the kernel names of IAttention engines (opset-23 Attention, TensorRT 10.14+) are not yet "
    "confirmed on a GPU: check the engine's .layers.json"
)


@dataclass(frozen=True)
class AttentionBlock:
    """One attention block of an ONNX graph: a name for reports (the scope of its Softmax or Attention
    node), the node names a TensorRT layer built from it may carry, and its query length (1: one query)."""

    name: str
    nodes: tuple = ()
    op: str = "Softmax"  # "Softmax" (MatMul -> Softmax -> MatMul) or the fused op (Attention, ...)
    single_query: bool = False


@dataclass(frozen=True)
class FusionReport:
    verdict: str  # one of VERDICTS
    attention_blocks: int  # attention blocks in the ONNX graph
    fused_layers: tuple = ()  # names of the engine layers whose kernel is a fused attention kernel
    detail: str = ""  # why "unknown", or which blocks have a fused kernel
    unfused_blocks: tuple = ()  # names of the blocks no fused kernel belongs to
    notes: tuple = field(default=())  # what the verdict rests on that a reader should know

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
        notes = "".join(f"; {note}" for note in self.notes)
        if self.verdict == UNKNOWN:
            return f"attention: fusion unknown ({self.detail}){notes}"
        return f"attention: {self.verdict} ({self.detail}){notes}"

    def to_dict(self) -> dict:
        data = asdict(self)
        data["fused_layers"] = list(self.fused_layers)
        data["unfused_blocks"] = list(self.unfused_blocks)
        data["notes"] = list(self.notes)
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
    return [str(layer.get("Name", "?")) for layer in _fused(layers)]


def _fused(layers: Iterable[Any]) -> list[dict]:
    return [
        layer for layer in layers if isinstance(layer, dict) and is_fused_attention_kernel(layer.get("TacticName", ""))
    ]


def _carries(text: str, node: str) -> bool:
    """Whether a layer's Name/Metadata names ONNX node ``node``: the whole name, not part of a longer one
    (``Softmax`` is not ``/blocks.0/attn/Softmax``, ``MatMul`` not ``MatMul_1``); Myelin's own suffixes
    (``_myl0_3``) and ``[ONNX Layer: ...]`` brackets pass."""
    pattern = r"(?<![A-Za-z0-9_./])" + re.escape(node) + r"(?![A-Za-z0-9])(?!_\d)"
    return bool(node) and re.search(pattern, text) is not None


def _owners(layer: dict, blocks: Sequence[AttentionBlock]) -> list[int]:
    text = f"{layer.get('Name', '')}\n{layer.get('Metadata', '')}"
    return [i for i, block in enumerate(blocks) if any(_carries(text, node) for node in block.nodes)]


def fusion_report(engine_information: str, attention_blocks: Union[int, Sequence[AttentionBlock]]) -> FusionReport:
    """The verdict for an engine built from an ONNX graph with these attention blocks (attention_blocks()
    of the graph; a bare count has no node names, so kernels are counted, not attributed)."""
    blocks = list(attention_blocks) if not isinstance(attention_blocks, int) else None
    count = len(blocks) if blocks is not None else int(attention_blocks)
    notes = (IATTENTION_UNVERIFIED,) if blocks and any(block.op != "Softmax" for block in blocks) else ()
    layers = inspector_layers(engine_information)
    if layers is None:
        evidence, reason = None, "the engine inspector gave no layer JSON"
    elif not any(isinstance(layer, dict) and str(layer.get("TacticName") or "").strip() for layer in layers):
        evidence, reason = (
            None,
            "the engine inspector lists no kernel (tactic) names; build with detailed profiling verbosity",
        )
    else:
        evidence, reason = _fused(layers), ""
    names = tuple(str(layer.get("Name", "?")) for layer in evidence or ())
    if count == 0:
        return FusionReport(NO_ATTENTION, 0, names, "the ONNX graph has no attention block")
    if evidence is None:
        return FusionReport(UNKNOWN, count, (), reason, notes=notes)
    kernels = f"{len(evidence)} fused attention kernel(s) for {count} attention block(s)"
    if not evidence:
        unfused = tuple(block.name for block in blocks) if blocks else ()
        return FusionReport(
            NOT_FUSED, count, (), f"{kernels}: attention runs as separate gemm/softmax kernels", unfused, notes
        )
    if blocks is None:
        verdict = FUSED if len(evidence) >= count else PARTIAL
        return FusionReport(verdict, count, names, f"{kernels}, not attributed to blocks")
    owners = [_owners(layer, blocks) for layer in evidence]
    owned = [0] * count
    for found in owners:
        for i in found:
            owned[i] += 1
    if not any(owned):
        return FusionReport(
            UNKNOWN,
            count,
            names,
            f"{kernels}, but no fused kernel's layer names a node of an "
            "attention block; read the engine's .layers.json",
            notes=notes,
        )
    unfused = [block for block, n in zip(blocks, owned) if n == 0]
    fused_count = count - len(unfused)
    detail = f"{fused_count} of {count} attention block(s) have a fused kernel ({len(evidence)} kernel(s))"
    if not unfused:
        return FusionReport(FUSED, count, names, detail, (), notes)
    missing = ", ".join(block.name for block in unfused)
    unfused_names = tuple(block.name for block in unfused)
    single_query = all(block.single_query for block in unfused)
    anonymous = sum(1 for found in owners if not found)
    if anonymous and not single_query:
        return FusionReport(
            UNKNOWN,
            count,
            names,
            f"{detail}; {anonymous} fused kernel(s) name no block, so whether "
            f"{missing} have one is unknown; read the engine's .layers.json",
            unfused_names,
            notes,
        )
    if single_query:
        # A cls readout's last block: one query row, a matrix-vector product that fused MHA kernels do not
        # take; TensorRT runs it as gemm kernels, which is the expected engine, not a missed fusion.
        explained = (
            f"{missing} computes one query (cls readout: [B,h,1,d] x [B,h,d,T]), a matrix-vector "
            "product TensorRT runs as gemm kernels, not a fused attention kernel; expected"
        )
        return FusionReport(FUSED, count, names, detail, unfused_names, notes + (explained,))
    return FusionReport(PARTIAL, count, names, f"{detail}; no fused kernel in {missing}", unfused_names, notes)


def count_attention_blocks(model: Any) -> int:
    """Attention blocks of an ONNX model: Attention nodes plus MatMul -> Softmax -> MatMul patterns."""
    return len(attention_blocks(model))


def attention_blocks(model: Any) -> list[AttentionBlock]:
    """The attention blocks of an ONNX model in graph order (subgraphs after their node), with the node
    names TensorRT layers carry and whether each computes one query (shape inference; unknown: not)."""
    shapes = _query_shapes(model)
    found: list[AttentionBlock] = []
    _find_in_graph(model.graph, shapes, found)
    return found


def _query_shapes(model: Any) -> dict:
    """Tensor name -> dims (ints, or None where symbolic) after ONNX shape inference ({} when it fails)."""
    try:
        import onnx

        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - an unreadable shape only loses the single-query explanation
        return {}
    shapes = {}
    graph = inferred.graph
    for info in list(graph.value_info) + list(graph.input) + list(graph.output):
        dims = info.type.tensor_type.shape.dim
        shapes[info.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    return shapes


def _scope(node_name: str, fallback: str) -> str:
    return node_name.rsplit("/", 1)[0] if "/" in node_name.strip("/") else (node_name or fallback)


def _find_in_graph(graph: Any, shapes: dict, found: list) -> None:
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def matmul_before(tensor: str, depth: int = _SEARCH_DEPTH) -> list:
        node = producer.get(tensor)
        if node is None:
            return []
        if node.op_type == "MatMul":
            return [node.name]
        if depth > 0 and node.op_type in _PASS_THROUGH_OPS:
            for i in node.input:
                below = matmul_before(i, depth - 1)
                if below:
                    return [node.name, *below]
        return []

    def matmul_after(tensor: str, depth: int = _SEARCH_DEPTH) -> list:
        for node in consumers.get(tensor, []):
            if node.op_type == "MatMul":
                return [node.name]
            if depth > 0 and node.op_type in _PASS_THROUGH_OPS:
                for o in node.output:
                    above = matmul_after(o, depth - 1)
                    if above:
                        return [node.name, *above]
        return []

    def one_query(tensor: str) -> bool:
        dims = shapes.get(tensor) or []
        return len(dims) >= 3 and dims[-2] == 1

    for node in graph.node:
        fallback = f"attention block {len(found)}"
        if node.op_type in _ATTENTION_OPS:
            found.append(
                AttentionBlock(
                    _scope(node.name, fallback),
                    (node.name,),
                    node.op_type,
                    bool(node.input) and one_query(node.input[0]),
                )
            )
        elif node.op_type == "Softmax":
            before, after = matmul_before(node.input[0]), matmul_after(node.output[0])
            if before and after:
                nodes = tuple(name for name in (node.name, *before, *after) if name)
                found.append(AttentionBlock(_scope(node.name, fallback), nodes, "Softmax", one_query(node.input[0])))
        for attribute in node.attribute:
            subgraphs = ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs)
            for sub in subgraphs:
                _find_in_graph(sub, shapes, found)
