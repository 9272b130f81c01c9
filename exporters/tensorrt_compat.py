"""Static check of an ONNX graph against the TensorRT ONNX parser (onnx/onnx-tensorrt) of a release.

ONNX Runtime accepting a graph says nothing about TensorRT's parser: it has its own importer list,
its own per-op checkers and its own type table. This module encodes the parser rules that can
decide whether one of our graphs parses, release by release, each rule with the onnx-tensorrt
release and file it was read from. Releases between two encoded ones use the older rule set
(10.1 .. 10.13 -> 10.0): a graph that passes is safe to parse there, one that fails may still parse
if the op arrived in a minor release we did not encode.

Severity: ``error`` means the parser rejects the node (or imports it wrongly); ``warning`` means the
parser accepts it but its documentation or a log line says the result is not guaranteed.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from vit5_infer import tensorrt_releases
from vit5_infer.errors import Vit5Error
from vit5_infer.tensorrt_releases import parse_tensorrt_version

# The exporter flag that picks a TensorRT-conformant graph form; one place to rename it.
REEXPORT = "re-export with --target tensorrt={version}"

ERROR, WARNING = "error", "warning"


class TensorRTCompatError(Vit5Error, ValueError):
    """A TensorRT version string or ONNX file the check cannot work with."""


# ---- releases ---------------------------------------------------------------------------------------
# The encoded rule sets are the parser releases of the release table (vit5_infer.tensorrt_releases), named
# as the table names them ("10.0", "10.14", "10.15", "11"); each adds importers, documented opsets and
# element types to the one before it.  ModelImporter.cpp (10.0, eb43908) only logs the opset and warns
# below 7; it never rejects a higher one than documented, hence warnings, not errors.
MIN_OPSET = 7


@dataclass(frozen=True)
class ParserTables:
    """The static check's per-release tables, cumulative, keyed by rule set name."""

    releases: tuple[str, ...]  # oldest first
    versions: dict[str, str]  # rule set -> the TensorRT "MAJOR.MINOR" it starts at
    importers: dict[str, frozenset[str]]
    max_documented_opset: dict[str, int]
    #: ONNX element types the parser maps to a TensorRT type (convertDtype in importerUtils.cpp); anything
    #: else fails as "Unsupported ONNX data type" on inputs, Cast targets and weights
    types: dict[str, frozenset[int]]
    #: element types DequantizeLinear takes as its quantized input
    quantized_types: dict[str, frozenset[int]]


@functools.lru_cache(maxsize=4)
def _tables(table: tuple[tensorrt_releases.TensorRTRelease, ...]) -> ParserTables:
    names: list[str] = []
    versions: dict[str, str] = {}
    importers: dict[str, frozenset[str]] = {}
    opsets: dict[str, int] = {}
    types: dict[str, frozenset[int]] = {}
    quantized: dict[str, frozenset[int]] = {}
    ops: frozenset[str] = frozenset()
    elems: frozenset[int] = frozenset()
    quantized_elems: frozenset[int] = frozenset()
    for release in table:
        rules = release.parser
        if rules is None:
            continue
        ops |= rules.ops_added
        elems |= {getattr(TensorProto, name) for name in rules.types_added}
        quantized_elems |= {getattr(TensorProto, name) for name in rules.quantized_types_added}
        names.append(rules.name)
        versions[rules.name] = release.text
        importers[rules.name], types[rules.name], quantized[rules.name] = ops, elems, quantized_elems
        opsets[rules.name] = rules.max_documented_opset
    return ParserTables(tuple(names), versions, importers, opsets, types, quantized)


def parser_tables() -> ParserTables:
    """The tables of the release table as it is now (read on every check, cached per table)."""
    return _tables(tensorrt_releases.releases())


REDUCE_OPS = frozenset(
    {
        "ReduceL1",
        "ReduceL2",
        "ReduceLogSum",
        "ReduceLogSumExp",
        "ReduceMax",
        "ReduceMean",
        "ReduceMin",
        "ReduceProd",
        "ReduceSum",
        "ReduceSumSquare",
    }
)

# QuantizeLinear and DequantizeLinear share one importer, QuantDequantLinearHelper in onnxOpImporters.cpp;
# their checkers in onnxOpCheckers.cpp are empty (10.0 eb43908, dd0a3a9). Read at release/10.0 eb43908,
# 10.13 346bdca, 10.16 6bde659 and 11.0 5ab48c5. The file is not stored at the 10.14 c727277, 10.15
# fa5aa9f or 11.1 7c51a63 pins: 10.13 and 10.16, which bracket 10.14 and 10.15, agree on every check
# below, and the 11.1 CHANGELOG lists no parser change to these ops since 11.0. docs/operators.md rows
# read at every pin (eb43908, c727277, fa5aa9f, 7c51a63): "`x_zero_point` must be zero", "`y_zero_point`
# must be 0", QuantizeLinear takes FP32/FP16/BF16, DequantizeLinear INT8/FP8/INT4 (+FP4 from 10.14).
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
FLOAT_TYPES = frozenset({TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16})
# Scale weights the helper can prove positive (isFp32/isFp16/isBFp16; WeightsContext.cpp reads DOUBLE
# weights as FLOAT); any other type leaves "all positive" false.
SCALE_TYPES = FLOAT_TYPES | {TensorProto.DOUBLE}


def rule_release(version: str) -> str:
    """The encoded release whose parser rules apply to TensorRT ``version`` ("10.8" -> "10.0")."""
    parsed = parse_tensorrt_version(version)
    if parsed is None:
        raise TensorRTCompatError(f"TensorRT version must look like 10.8 or 11.0, got {version!r}")
    release = tensorrt_releases.parser_release_for(parsed)
    if release is None or release.parser is None:
        majors = " and ".join(f"{major}.x" for major in tensorrt_releases.supported_majors())
        raise TensorRTCompatError(f"TensorRT {version} is not covered: the check knows the {majors} parsers")
    return release.parser.name


def first_release_with(op_type: str) -> Optional[str]:
    """The rule set of the first encoded parser release with an importer for ``op_type``; None when none has one."""
    release = tensorrt_releases.parser_release_adding(op_type)
    return None if release is None or release.parser is None else release.parser.name


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


# ---- report -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CompatIssue:
    node: str  # node name; "" for graph-level issues
    op_type: str
    rule: str  # short id, e.g. "no-importer", "attention-softmax-precision"
    message: str  # what the parser does with it
    fix: str
    severity: str = ERROR

    def line(self) -> str:
        where = f"{self.node} [{self.op_type}]" if self.node or self.op_type else "graph"
        return f"{self.severity}: {where}: {self.message} ({self.rule}); fix: {self.fix}"


@dataclass(frozen=True)
class CompatReport:
    version: str  # as asked
    rules: str  # encoded release whose rules were applied
    opset: int
    issues: tuple[CompatIssue, ...] = field(default_factory=tuple)

    @property
    def errors(self) -> tuple[CompatIssue, ...]:
        return tuple(i for i in self.issues if i.severity == ERROR)

    @property
    def warnings(self) -> tuple[CompatIssue, ...]:
        return tuple(i for i in self.issues if i.severity == WARNING)

    @property
    def compatible(self) -> bool:
        return not self.errors

    def verdict(self) -> str:
        rules = self.rules if "." in self.rules else f"{self.rules}.x"  # a major's rule set: "11" -> "11.x"
        state = "parses" if self.compatible else f"does not parse ({_count(len(self.errors), 'error')})"
        extra = f", {_count(len(self.warnings), 'warning')}" if self.warnings else ""
        return f"TensorRT {self.version} (parser rules of {rules}): {state}{extra}"

    def lines(self) -> list[str]:
        return [self.verdict()] + [issue.line() for issue in self.issues]

    def summary(self) -> str:
        """One closing line for a graph that does not parse: its errors counted by rule, and the way out."""
        counts = Counter(issue.rule for issue in self.errors)
        by_rule = ", ".join(f"{rule} x{n}" for rule, n in counts.most_common())
        return f"{_count(len(self.errors), 'error')} ({by_rule}): {REEXPORT.format(version=self.version)}"

    def to_dict(self) -> dict:
        return {
            "version": self.version,
            "rules": self.rules,
            "opset": self.opset,
            "compatible": self.compatible,
            "issues": [asdict(issue) for issue in self.issues],
        }


# ---- graph walk ---------------------------------------------------------------------------------------
@dataclass
class _Scope:
    """What the parser knows at parse time inside one graph: constant tensors and value types/ranks."""

    constants: set[str]
    types: dict[str, int]
    ranks: dict[str, int]
    graph_outputs: set[str]
    # values the parser holds as weights (initializers, Constant `value`s), and the dims it knows
    # (an int, a str for a dynamic dim_param, None when unknown)
    values: dict[str, onnx.TensorProto] = field(default_factory=dict)
    shapes: dict[str, tuple] = field(default_factory=dict)
    producers: dict[str, onnx.NodeProto] = field(default_factory=dict)


def _value_infos(graph: onnx.GraphProto):
    yield from graph.input
    yield from graph.output
    yield from graph.value_info


def _dim(dim) -> Union[int, str, None]:
    if dim.HasField("dim_value"):
        return dim.dim_value
    return dim.dim_param if dim.HasField("dim_param") else None


def _scope_of(graph: onnx.GraphProto, outer: Optional[_Scope]) -> _Scope:
    constants = set(outer.constants) if outer else set()
    types = dict(outer.types) if outer else {}
    ranks = dict(outer.ranks) if outer else {}
    values = dict(outer.values) if outer else {}
    shapes = dict(outer.shapes) if outer else {}
    producers = dict(outer.producers) if outer else {}
    for init in graph.initializer:
        constants.add(init.name)
        types[init.name] = init.data_type
        ranks[init.name] = len(init.dims)
        values[init.name] = init
        shapes[init.name] = tuple(init.dims)
    for value in _value_infos(graph):
        tensor_type = value.type.tensor_type
        if tensor_type.elem_type:
            types[value.name] = tensor_type.elem_type
        if tensor_type.HasField("shape"):
            ranks[value.name] = len(tensor_type.shape.dim)
            shapes.setdefault(value.name, tuple(_dim(d) for d in tensor_type.shape.dim))
    for node in graph.node:
        producers.update((out, node) for out in node.output if out)
        if node.op_type == "Constant":
            constants.update(node.output)
            value = _attr(node, "value")
            if isinstance(value, onnx.TensorProto) and node.output:
                values[node.output[0]] = value
                types[node.output[0]] = value.data_type
                ranks[node.output[0]] = len(value.dims)
                shapes[node.output[0]] = tuple(value.dims)
    return _Scope(constants, types, ranks, {o.name for o in graph.output}, values, shapes, producers)


def _walk(graph: onnx.GraphProto, outer: Optional[_Scope] = None) -> Iterator[tuple[onnx.NodeProto, _Scope]]:
    """Every node with the scope the parser sees it in, recursing into Scan/Loop/If bodies (the parser
    imports subgraph nodes with the same importers, ModelImporter.cpp parseGraph)."""
    scope = _scope_of(graph, outer)
    for node in graph.node:
        yield node, scope
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _walk(attr.g, scope)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from _walk(sub, scope)


def _attr(node: onnx.NodeProto, name: str):
    for attr in node.attribute:
        if attr.name == name:
            return onnx.helper.get_attribute_value(attr)
    return None


def _input(node: onnx.NodeProto, index: int) -> str:
    return node.input[index] if index < len(node.input) else ""


# ---- rules --------------------------------------------------------------------------------------------
class _Checker:
    def __init__(self, version: str, release: str, opset: int, local_functions: dict[str, onnx.FunctionProto]):
        self.version, self.release, self.opset = version, release, opset
        self.tables = parser_tables()
        self.local_functions = local_functions
        self.issues: list[CompatIssue] = []
        self.checked_scales: set[str] = set()

    def add(self, node: Optional[onnx.NodeProto], rule: str, message: str, fix: str, severity: str = ERROR) -> None:
        name = (node.name or (node.output[0] if node.output else "")) if node is not None else ""
        self.issues.append(CompatIssue(name, node.op_type if node is not None else "", rule, message, fix, severity))

    def has(self, feature: str) -> bool:
        """Whether the parser of this rule set has ``feature`` (the release table's features)."""
        version = parse_tensorrt_version(self.tables.versions[self.release])
        return version is not None and tensorrt_releases.has(version, feature)

    def reexport(self) -> str:
        return REEXPORT.format(version=self.version)

    # graph level ------------------------------------------------------------------------------------
    def check_opset(self) -> None:
        highest = self.tables.max_documented_opset[self.release]
        if self.opset > highest:
            self.add(
                None,
                "opset-above-documented",
                f"opset {self.opset} is above the range TensorRT {self.version} documents (9 .. {highest}); the "
                "parser imports it but newer op versions are not guaranteed to import correctly",
                f"export with opset <= {highest} or use a TensorRT release that documents opset {self.opset}",
                WARNING,
            )
        if self.opset < MIN_OPSET:
            self.add(
                None,
                "opset-below-7",
                f"opset {self.opset}: the parser only guarantees opset >= {MIN_OPSET}",
                f"export with opset >= {MIN_OPSET}",
                WARNING,
            )

    def check_value_types(self, graph: onnx.GraphProto) -> None:
        supported = self.tables.types[self.release]
        for role, values in (("input", graph.input), ("output", graph.output)):
            for value in values:
                self._check_type(None, f"graph {role} {value.name}", value.type.tensor_type.elem_type, supported)
        for init in graph.initializer:
            self._check_type(None, f"initializer {init.name}", init.data_type, supported)

    def _check_type(self, node, what: str, elem_type: int, supported) -> None:
        if not elem_type:
            return
        name = TensorProto.DataType.Name(elem_type)
        if elem_type not in supported:
            self.add(
                node,
                "unsupported-type",
                f"{what} has type {name}, which TensorRT {self.version} cannot represent",
                "use FLOAT, FLOAT16, BFLOAT16, INT32, INT64 or BOOL",
            )
        elif elem_type == TensorProto.DOUBLE:
            self.add(
                node,
                "double-downcast",
                f"{what} is DOUBLE: the parser casts it to FLOAT, clamping to +-FLT_MAX",
                "store it as FLOAT",
                WARNING,
            )

    # nodes --------------------------------------------------------------------------------------------
    def check_node(self, node: onnx.NodeProto, scope: _Scope) -> None:
        op = node.op_type
        if op not in self.tables.importers[self.release] and op not in self.local_functions:
            self._no_importer(node)
            return
        for check in (
            self._attention,
            self._cast,
            self._constant,
            self._slice,
            self._reduce,
            self._unsqueeze,
            self._layer_norm,
            self._rotary_embedding,
            self._uint8_outputs,
            self._local_function,
            self._quantize_dequantize,
        ):
            check(node, scope)

    def _no_importer(self, node: onnx.NodeProto) -> None:
        later = tensorrt_releases.parser_release_adding(node.op_type)
        message = (
            f"no importer for {node.op_type} in TensorRT {self.version}: the parser falls back to a plugin "
            f'of that name and fails with "Plugin not found"'
        )
        if later is not None:
            fix = f"needs TensorRT >= {later.text}"
            if node.op_type in ("Attention", "RMSNormalization", "RotaryEmbedding"):
                fix += f", or {self.reexport()}"
        else:
            fix = (
                f"replace {node.op_type} with ops TensorRT imports, or register a TensorRT plugin named {node.op_type}"
            )
        self.add(node, "no-importer", message, fix)

    def _attention(self, node: onnx.NodeProto, scope: _Scope) -> None:
        if node.op_type != "Attention":
            return
        fix = self.reexport()
        # Checker (onnxOpCheckers.cpp, 10.14 c727277 and dd0a3a9): both attributes are refused outright.
        if _attr(node, "softmax_precision") is not None:
            self.add(
                node,
                "attention-softmax-precision",
                'the Attention checker rejects any softmax_precision attribute ("Setting softmax precision is '
                'not supported in TensorRT Attention")',
                f"drop softmax_precision: {fix}",
            )
        softcap = _attr(node, "softcap")
        if softcap not in (None, 0.0):
            self.add(node, "attention-softcap", "the Attention checker rejects softcap != 0", "remove softcap")
        # Importer (onnxOpImporters.cpp dd0a3a9): one output only; past_key / past_value refused.
        if len(node.output) != 1:
            self.add(
                node,
                "attention-outputs",
                f"{len(node.output)} outputs listed: the importer accepts Attention nodes with exactly one output "
                "(present_key, present_value, qk_matmul_output are unsupported)",
                "keep only output Y",
            )
        for index, name in ((4, "past_key"), (5, "past_value")):
            if _input(node, index):
                self.add(
                    node,
                    f"attention-{name.replace('_', '-')}",
                    f"{name} is set: the importer refuses it",
                    f"remove {name} (no KV cache in this graph form)",
                )
        # docs/operators.md (c727277, fa5aa9f, 7c51a63): nonpad_kv_seqlen unsupported; the importer never
        # reads input 6, so it would be silently ignored.
        if _input(node, 6):
            self.add(
                node,
                "attention-nonpad-kv-seqlen",
                "nonpad_kv_seqlen is unsupported (documented; the importer ignores it, which changes results)",
                "remove nonpad_kv_seqlen",
            )
        for key in ("TRT_normalization_op",):
            value = _attr(node, key)
            if value is not None and value not in (b"softmax", b"none"):
                self.add(
                    node,
                    "attention-normalization-op",
                    f"{key}={value.decode(errors='replace')!r}: only 'softmax' or 'none' are accepted",
                    f"set {key} to softmax or remove it",
                )
        self._attention_ranks(node, scope, fix)

    def _attention_ranks(self, node: onnx.NodeProto, scope: _Scope, fix: str) -> None:
        ranks = [scope.ranks.get(_input(node, i)) for i in range(3)]
        known = [r for r in ranks if r is not None]
        if len(set(known)) > 1:
            self.add(
                node,
                "attention-qkv-rank",
                f"Q, K, V ranks {ranks}: the importer needs the same number of dimensions",
                fix,
            )
            return
        rank = known[0] if known else None
        if rank is not None and rank not in (3, 4):
            self.add(
                node, "attention-qkv-rank", f"Q, K, V are {rank}-D: TensorRT attention takes 4-D (or 3-D) inputs", fix
            )
        elif rank == 3 and not self.has(tensorrt_releases.ATTENTION_ANY_RANK):
            # 10.14 documents 4-D only (docs/operators.md c727277); the 3-D reshape with q_num_heads /
            # kv_num_heads is in the importer we could read (dd0a3a9, AttentionHelpers.cpp fa5aa9f), not
            # in a source we could read at the 10.14 pin.
            self.add(
                node,
                "attention-3d",
                "3-D Q/K/V: TensorRT 10.14 documents 4-D inputs only (q_num_heads/kv_num_heads as dimension 1)",
                f"use 4-D [batch, heads, tokens, head_dim] inputs: {fix}, or use TensorRT >= "
                f"{tensorrt_releases.version_text(tensorrt_releases.since(tensorrt_releases.ATTENTION_ANY_RANK))}",
            )
        elif rank == 3:
            for attr in ("q_num_heads", "kv_num_heads"):
                if not _attr(node, attr):
                    self.add(
                        node,
                        "attention-3d-heads",
                        f"3-D Q/K/V without {attr}: the importer needs q_num_heads and kv_num_heads to reshape to 4-D",
                        f"set {attr}",
                    )
        mask = _input(node, 3)
        mask_rank = scope.ranks.get(mask) if mask else None
        four_d_only = not self.has(tensorrt_releases.ATTENTION_ANY_RANK)
        if mask_rank is not None and (mask_rank > 4 or (four_d_only and mask_rank != 4)):
            self.add(
                node,
                "attention-mask-rank",
                f"attn_mask is {mask_rank}-D: "
                + (
                    f"{self.release} documents a 4-D mask" if four_d_only else "the importer accepts masks of rank <= 4"
                ),
                "give attn_mask shape [batch, heads, q_tokens, kv_tokens] (broadcastable)",
            )

    def _cast(self, node: onnx.NodeProto, scope: _Scope) -> None:
        # Checker (onnxOpCheckers.cpp 10.0 eb43908 .. dd0a3a9): `to` must map through convertDtype.
        if node.op_type == "Cast":
            self._check_type(node, "Cast target", _attr(node, "to") or 0, self.tables.types[self.release])

    def _constant(self, node: onnx.NodeProto, scope: _Scope) -> None:
        if node.op_type != "Constant":
            return
        # Checker (onnxOpCheckers.cpp, 10.0 .. dd0a3a9): sparse and string constants are unsupported.
        for name in ("sparse_value", "value_string", "value_strings"):
            if _attr(node, name) is not None:
                self.add(
                    node, "constant-attribute", f"Constant with {name} is unsupported", "use a dense numeric value"
                )
        value = _attr(node, "value")
        if isinstance(value, onnx.TensorProto):
            self._check_type(node, "Constant value", value.data_type, self.tables.types[self.release])

    def _slice(self, node: onnx.NodeProto, scope: _Scope) -> None:
        # Checker (onnxOpCheckers.cpp, 10.0 .. dd0a3a9): opset >= 10 Slice takes 3 to 5 inputs.
        if node.op_type == "Slice" and self.opset >= 10 and not 3 <= len(node.input) <= 5:
            self.add(
                node,
                "slice-inputs",
                f"Slice with {len(node.input)} inputs: opset >= 10 Slice needs 3 to 5",
                "give data, starts, ends[, axes[, steps]]",
            )

    def _reduce(self, node: onnx.NodeProto, scope: _Scope) -> None:
        # importerUtils.cpp reduceTensor (10.0 eb43908, 10.15 fa5aa9f): "Axis input must be an initializer!"
        axes = _input(node, 1)
        if node.op_type in REDUCE_OPS and axes and axes not in scope.constants:
            self.add(
                node,
                "reduce-axes-constant",
                f"{node.op_type} axes come from a computed tensor: the importer requires an initializer",
                "store axes as an initializer (or a Constant node)",
            )

    def _unsqueeze(self, node: onnx.NodeProto, scope: _Scope) -> None:
        # Unsqueeze importer (10.0 eb43908): "Axes input ... should be a constant tensor" (ShapeTensor values
        # known at parse time); docs/operators.md: Squeeze/Unsqueeze `axes` must be resolvable to a
        # constant. Shape arithmetic the parser folds is not modelled here, hence a warning.
        axes = _input(node, 1)
        if node.op_type in ("Squeeze", "Unsqueeze") and axes and axes not in scope.constants:
            self.add(
                node,
                "axes-constant",
                f"{node.op_type} axes are computed: the parser needs them resolvable to a constant at parse time",
                "store axes as an initializer",
                WARNING,
            )

    def _layer_norm(self, node: onnx.NodeProto, scope: _Scope) -> None:
        # Checker (onnxOpCheckers.cpp, 10.14 c727277 / dd0a3a9): only output Y is supported.
        if node.op_type == "LayerNormalization" and any(node.output[1:]):
            self.add(
                node,
                "layernorm-outputs",
                "LayerNormalization Mean/InvStdDev outputs are unsupported",
                "keep only output Y",
            )

    def _rotary_embedding(self, node: onnx.NodeProto, scope: _Scope) -> None:
        # docs/operators.md (fa5aa9f, 7c51a63): RotaryEmbedding `position_ids` must be INT64.
        position_ids = _input(node, 3)
        if node.op_type == "RotaryEmbedding" and position_ids:
            elem = scope.types.get(position_ids)
            if elem is not None and elem != TensorProto.INT64:
                self.add(
                    node,
                    "rotary-position-ids",
                    f"position_ids is {TensorProto.DataType.Name(elem)}: TensorRT documents INT64 only",
                    "make position_ids INT64",
                )

    def _uint8_outputs(self, node: onnx.NodeProto, scope: _Scope) -> None:
        # ModelImporter.cpp (10.0 eb43908): "TensorRT does not support UINT8 types for intermediate tensors!"
        # It tests the TensorRT type of the output: a QuantizeLinear with a UINT8 zero point yields INT8
        # there (QuantDequantLinearHelper), which the qdq-uint8-zero-point rule reports.
        if node.op_type == "QuantizeLinear":
            return
        for out in node.output:
            if out and scope.types.get(out) == TensorProto.UINT8 and out not in scope.graph_outputs:
                self.add(
                    node,
                    "uint8-intermediate",
                    f"{out} is UINT8: UINT8 is allowed only on network inputs/outputs",
                    "cast to INT32 or FLOAT before it leaves the producing node",
                )

    def _local_function(self, node: onnx.NodeProto, scope: _Scope) -> None:
        # onnxOpCheckers.cpp LocalFunctionImporter: node inputs must match the function's inputs.
        function = self.local_functions.get(node.op_type)
        if function is not None and node.op_type not in self.tables.importers[self.release]:
            if len(node.input) != len(function.input):
                self.add(
                    node,
                    "local-function-inputs",
                    f"{len(node.input)} inputs for local function {node.op_type} of {len(function.input)}",
                    "match the function signature",
                )

    # QuantizeLinear / DequantizeLinear (QuantDequantLinearHelper, sources at QDQ_OPS) -------------------
    def _quantize_dequantize(self, node: onnx.NodeProto, scope: _Scope) -> None:
        if node.op_type not in QDQ_OPS or len(node.input) < 2:
            return
        data, scale, zero_point = _input(node, 0), _input(node, 1), _input(node, 2)
        self._qdq_input_type(node, scope, data)
        self._qdq_scale_values(node, scope, scale)
        self._qdq_zero_point(node, scope, scale, zero_point)
        self._qdq_output_dtype(node, scope, zero_point)
        self._qdq_axis(node, scope, data, scale)

    def _qdq_input_type(self, node: onnx.NodeProto, scope: _Scope, data: str) -> None:
        elem = scope.types.get(data)
        if elem is None:
            return
        name = TensorProto.DataType.Name(elem)
        if node.op_type == "QuantizeLinear":
            if elem not in FLOAT_TYPES:
                self.add(
                    node,
                    "qdq-input-type",
                    f"QuantizeLinear of {name} data: TensorRT quantizes FP32, FP16 or "
                    "BF16 tensors only (docs/operators.md)",
                    "quantize a float tensor",
                )
            return
        producer = scope.producers.get(data)
        if producer is not None and (producer.op_type == "QuantizeLinear" or elem == TensorProto.UINT8):
            return  # computed quantized data has the type TensorRT chose for it (INT8 for a UINT8 zero point)
        if elem not in self.tables.quantized_types[self.release]:
            detail = (
                'UINT8 data is refused ("Found unsupported input type of UINT8"; UINT8 weights are read as '
                "INT32 before 10.10)"
                if elem == TensorProto.UINT8
                else "TensorRT dequantizes "
                + ", ".join(TensorProto.DataType.Name(t) for t in sorted(self.tables.quantized_types[self.release]))
                + " only"
            )
            self.add(
                node,
                "qdq-input-type",
                f"DequantizeLinear of {name} data: {detail}",
                "store the weights as symmetric INT8 or FLOAT8E4M3FN: " + self.reexport(),
            )

    def _qdq_scale_values(self, node: onnx.NodeProto, scope: _Scope, scale: str) -> None:
        # Scale weights are checked once, by the first node that turns them into a constant layer
        # (newConstantInput); a scale computed by other nodes is taken as it is.
        tensor = scope.values.get(scale)
        if tensor is None or scale in self.checked_scales:
            return
        self.checked_scales.add(scale)
        fix = f"{self.reexport()} (scales are stored as positive values of their storage type)"
        if tensor.data_type not in SCALE_TYPES:
            self.add(
                node,
                "qdq-scale",
                f"scale {scale} is {TensorProto.DataType.Name(tensor.data_type)}: the "
                'importer verifies FLOAT, FLOAT16 or BFLOAT16 scales only and rejects the rest ("Scale '
                'coefficients must all be positive")',
                fix,
            )
            return
        values = _array(tensor)
        if values is None:
            return
        if values.size == 0:
            self.add(node, "qdq-scale", f'scale {scale} is empty ("Cannot have scale with no coefficients")', fix)
            return
        bad = ~(values.astype(np.float64) > 0)
        if bad.any():
            self.add(
                node,
                "qdq-scale",
                f"{_count(int(bad.sum()), 'value')} of scale {scale} not positive (smallest "
                f'{values.astype(np.float64).min():.3g}): the importer rejects it ("Scale coefficients must '
                'all be positive"); a scale below the smallest FLOAT16 is stored as 0',
                fix,
            )

    def _qdq_zero_point(self, node: onnx.NodeProto, scope: _Scope, scale: str, zero_point: str) -> None:
        if not zero_point:
            return
        elem = scope.types.get(zero_point)
        fix = f"use a symmetric zero point (all 0): {self.reexport()}"
        values = _array(_traced_constant(scope, zero_point))
        nonzero = values is not None and bool(values.astype(np.float64).any())
        if elem == TensorProto.UINT8 and not nonzero:
            self.add(
                node,
                "qdq-uint8-zero-point",
                'UINT8 zero point: TensorRT quantizes to INT8 instead ("TensorRT will use INT8 instead"), '
                "so the quantized range is [-128, 127], not [0, 255]",
                fix,
                WARNING,
            )
        if elem == TensorProto.FLOAT8E4M3FN:
            # The helper's zero-point branch runs only when the quantized type is not FP8: the values are
            # never read, so a non-zero FP8 zero point is dropped, not applied.
            if nonzero:
                self.add(
                    node,
                    "qdq-fp8-zero-point",
                    f"non-zero FLOAT8E4M3FN zero point {zero_point}: the importer ignores FP8 zero points, so "
                    "TensorRT computes without it",
                    fix,
                )
            return
        if nonzero:
            self.add(
                node,
                "qdq-zero-point-nonzero",
                f"zero point {zero_point} is not all 0: TensorRT supports symmetric quantization only "
                '("Non-zero zero point is not supported"; docs/operators.md: the zero point must be 0)',
                fix,
            )
        zero_size, scale_size = _volume(scope.shapes.get(zero_point)), _volume(scope.shapes.get(scale))
        if zero_size is not None and scale_size is not None and zero_size != scale_size:
            self.add(
                node,
                "qdq-zero-point-shape",
                f"zero point has {zero_size} values and the scale {scale_size}: the importer needs the same volume",
                "give the zero point the shape of the scale",
            )

    def _qdq_output_dtype(self, node: onnx.NodeProto, scope: _Scope, zero_point: str) -> None:
        output_dtype = _attr(node, "output_dtype")
        if not output_dtype:
            return
        name = TensorProto.DataType.Name(output_dtype)
        is_dq = node.op_type == "DequantizeLinear"
        fix = "remove output_dtype (the zero point's type sets the quantized type, the scale's the dequantized one)"
        if output_dtype not in self.tables.types[self.release]:
            self.add(
                node, "qdq-output-dtype", f"output_dtype {name} is a type TensorRT {self.version} cannot represent", fix
            )
            return
        zero_type = scope.types.get(zero_point) if zero_point else None
        if zero_point and zero_type is not None:
            # 11.0 (5ab48c5) stops comparing a DequantizeLinear output_dtype with the zero point's type.
            if output_dtype != zero_type and not (is_dq and self.has(tensorrt_releases.DEQUANTIZE_OUTPUT_DTYPE_FREE)):
                self.add(
                    node,
                    "qdq-output-dtype",
                    f"output_dtype {name} differs from the zero point's type "
                    f"{TensorProto.DataType.Name(zero_type)}: the importer rejects the mismatch"
                    + (" (a DequantizeLinear output_dtype is accepted from TensorRT 11.0 on)" if is_dq else ""),
                    fix,
                )
            return
        if zero_point:
            return
        # Without a zero point, 10.0 takes output_dtype as the quantized type for both ops; 10.13 on (346bdca)
        # takes it as the dequantized float type of a DequantizeLinear.
        if is_dq and self.release != "10.0":
            allowed, role = FLOAT_TYPES, "a DequantizeLinear output_dtype must be FLOAT, FLOAT16 or BFLOAT16"
        else:
            allowed = self.tables.quantized_types[self.release]
            role = f"output_dtype must be a quantized type on TensorRT {self.version}"
        if output_dtype not in allowed:
            self.add(node, "qdq-output-dtype", f"output_dtype {name}: {role}", fix)

    def _qdq_axis(self, node: onnx.NodeProto, scope: _Scope, data: str, scale: str) -> None:
        data_shape, scale_shape = scope.shapes.get(data), scope.shapes.get(scale)
        rank = len(data_shape) if data_shape is not None else scope.ranks.get(data)
        axis = _attr(node, "axis")
        if axis is not None and rank is not None:
            # convertAxis (importerUtils.cpp, 10.0 eb43908 .. 10.15 fa5aa9f) adds the rank to a negative axis
            # and accepts 0 .. rank, for per-tensor scales too.
            if axis < 0:
                axis += rank
            if not 0 <= axis <= rank:
                self.add(
                    node,
                    "qdq-axis",
                    f"axis {_attr(node, 'axis')} is outside [-{rank}, {rank}] for {rank}-D data",
                    "give an axis of the data",
                )
                return
        scale_size = _volume(scale_shape)
        if scale_size is None or scale_size == 1:
            return  # per-tensor: the importer ignores axis
        fix = f"quantize per output channel with a 1-D scale and an explicit axis: {self.reexport()}"
        if axis is None:
            if self.release == "10.0":
                # 10.0 defaults a missing axis to the rank and maps it to 0 for per-channel scales; ONNX's
                # default is 1 (10.13 346bdca reads 1, as ONNX does from opset 13).
                self.add(
                    node,
                    "qdq-axis-implicit",
                    "per-channel scale without an axis attribute: TensorRT 10.0 .. 10.13 quantizes along axis 0 "
                    "where ONNX means axis 1",
                    "set axis explicitly: " + self.reexport(),
                )
                return
            axis = 1 if self.opset >= 13 else 0
        if data_shape is None:
            return
        if len(scale_shape) == 1:
            if axis >= len(data_shape):
                self.add(
                    node,
                    "qdq-scale-shape",
                    f"per-channel axis {axis} is past the last dimension of {len(data_shape)}-D data",
                    fix,
                )
                return
            channels = data_shape[axis]
            if isinstance(channels, str):
                self.add(
                    node,
                    "qdq-scale-shape",
                    f"per-channel scale along dynamic dimension {axis} ({channels}): the importer compares the "
                    "scale count with the dimension at parse time, where it is -1",
                    fix,
                )
            elif channels is not None and channels != scale_size:
                self.add(
                    node,
                    "qdq-scale-shape",
                    f"{scale_size} scales for {channels} channels along axis {axis}: the importer needs one scale "
                    "per channel",
                    fix,
                )
        elif len(scale_shape) == len(data_shape):
            if all(isinstance(d, int) for d in (*data_shape, *scale_shape)) and all(scale_shape):
                blocks = [d // s for d, s in zip(data_shape, scale_shape)]
                volume = _volume(data_shape)
                if sum(b == 1 for b in blocks) != len(blocks) - 1 or volume % scale_size:
                    self.add(
                        node,
                        "qdq-scale-shape",
                        f"blocked scale {list(scale_shape)} for data {list(data_shape)}: the importer allows "
                        'exactly one blocked dimension ("Only a single blocking dimension is allowed")',
                        fix,
                    )
        else:
            self.add(
                node,
                "qdq-scale-shape",
                f"{len(scale_shape)}-D scale of {scale_size} values for {len(data_shape)}-D data: the importer "
                "takes a 1-D per-channel scale or a blocked scale of the data's rank (\"Invalid rank for the "
                'scale tensor")',
                fix,
            )


def _array(tensor: Optional[onnx.TensorProto]) -> Optional[np.ndarray]:
    """The values of a stored tensor; None when they are not in the file (external data) or unreadable."""
    if tensor is None:
        return None
    try:
        return numpy_helper.to_array(tensor)
    except Exception:  # external data not loaded, or a type numpy_helper cannot read
        return None


def _traced_constant(scope: _Scope, name: str) -> Optional[onnx.TensorProto]:
    """The stored tensor behind ``name``, through Identity and Cast nodes, as the importer finds a zero point
    (getWeightsFromIdentityOrConstant); None when it is computed."""
    seen = set()
    while name not in scope.values:
        producer = scope.producers.get(name)
        if producer is None or producer.op_type not in ("Identity", "Cast") or name in seen:
            return None
        seen.add(name)
        name = producer.input[0]
    return scope.values[name]


def _volume(shape: Optional[tuple]) -> Optional[int]:
    if shape is None or not all(isinstance(d, int) for d in shape):
        return None
    return int(np.prod(shape, dtype=np.int64))


# ---- entry point --------------------------------------------------------------------------------------
def _load(model: Union[onnx.ModelProto, str, Path]) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        return model
    path = Path(model)
    if not path.is_file():
        raise TensorRTCompatError(f"ONNX file not found: {path}")
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises several unrelated types for a non-ONNX file
        raise TensorRTCompatError(f"{path} is not a readable ONNX model ({type(exc).__name__})") from None


def _with_types(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with inferred value types/shapes where ONNX can infer them (ranks drive the Attention
    rules); the original when inference fails, so the check still runs on what is declared."""
    try:
        return onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)
    except Exception:
        return model


def default_opset(model: onnx.ModelProto) -> int:
    return next((imp.version for imp in model.opset_import if imp.domain in ("", "ai.onnx")), 0)


def check_tensorrt_compat(model: Union[onnx.ModelProto, str, Path], version: str) -> CompatReport:
    """Check ``model`` (a ModelProto or a path) against the ONNX parser of TensorRT ``version``."""
    release = rule_release(version)
    proto = _with_types(_load(model))
    checker = _Checker(str(version).strip(), release, default_opset(proto), {f.name: f for f in proto.functions})
    checker.check_opset()
    checker.check_value_types(proto.graph)
    for node, scope in _walk(proto.graph):
        checker.check_node(node, scope)
    for function in proto.functions:
        for node, scope in _walk(onnx.helper.make_graph(list(function.node), function.name, [], [])):
            checker.check_node(node, scope)
    return CompatReport(str(version).strip(), release, checker.opset, tuple(checker.issues))
