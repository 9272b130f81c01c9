"""TensorRT ONNX parser failures as one line: the node, its op, and what to do about it.

The parser reports each failure as an ``IParserError`` (TensorRT 10.0+ Python API: ``code()``,
``desc()``, ``node()``, ``node_name()``, ``node_operator()``).  ``read_parser_errors`` copies them into
plain records (the only TensorRT-facing code here); everything else is pure Python and tested in CI.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from vit5_infer.tensorrt_releases import parser_release_adding, parser_releases, tensorrt_version, version_text


def op_importer_since(op: str) -> Optional[tuple[int, int]]:
    """The first TensorRT (major, minor) that parses ``op``; None when every supported release does (or
    none does).  Read from the release table's parser rules (vit5_infer.tensorrt_releases), the one
    record of what each parser release imports."""
    release = parser_release_adding(op)
    if release is None or release == parser_releases()[0]:
        return None
    return release.version


@dataclass(frozen=True)
class ParseError:
    """One ``IParserError``, detached from TensorRT."""

    code: str  # ErrorCode name, e.g. "UNSUPPORTED_NODE"
    description: str
    node: int = -1  # index of the failing node in the graph; -1 when the error is not about a node
    node_name: str = ""
    node_operator: str = ""


def error_code_name(code: Any) -> str:
    """ "UNSUPPORTED_NODE" for ErrorCode.UNSUPPORTED_NODE (an enum member or its text)."""
    return str(getattr(code, "name", code)).rsplit(".", 1)[-1]


def read_parser_errors(parser: Any) -> list[ParseError]:
    """Every error of a TensorRT ``OnnxParser`` after a failed parse."""
    errors = []
    for index in range(parser.num_errors):
        error = parser.get_error(index)
        errors.append(
            ParseError(
                code=error_code_name(error.code()),
                description=str(error.desc()),
                node=int(error.node()),
                node_name=str(error.node_name()),
                node_operator=str(error.node_operator()),
            )
        )
    return errors


def reexport_hint(version: tuple[int, int]) -> str:
    """How to get a graph this TensorRT parses (the exporter's --target picks the graph form)."""
    return f"re-export with 'vit5 export MODEL -o MODEL.onnx --target tensorrt={version_text(version)}'"


def describe_parse_error(error: ParseError, tensorrt: str) -> str:
    """One parser error in words; names the release that parses the op where this one cannot."""
    first_line = error.description.strip().splitlines()[0] if error.description.strip() else "no description"
    if error.node < 0 and not error.node_operator:
        return f"{first_line} ({error.code})"
    name = f" {error.node_name!r}" if error.node_name else ""
    where = f"node {error.node}{name} ({error.node_operator or 'unknown op'})"
    since = op_importer_since(error.node_operator)
    have = tensorrt_version(tensorrt)
    if since is not None and have < since:
        return (
            f"{where}: TensorRT {tensorrt} has no importer for {error.node_operator} "
            f"(TensorRT {version_text(since)}+ has); {reexport_hint(have)}, or upgrade TensorRT"
        )
    return f"{where}: {first_line} ({error.code})"


def parse_failure_message(source: Union[str, Path], errors: Sequence[ParseError], tensorrt: str) -> str:
    """The one-line EngineBuildError message for a graph TensorRT's parser rejected."""
    if not errors:
        return f"TensorRT {tensorrt} could not parse {source} (the parser gave no error; is it a valid ONNX file?)"
    have = tensorrt_version(tensorrt)
    # An op this release cannot import explains the failure best; the parser may list it after others.
    too_new = [e for e in errors if (op_importer_since(e.node_operator) or (0, 0)) > have]
    first = (too_new or list(errors))[0]
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"TensorRT {tensorrt} could not parse {source}: {describe_parse_error(first, tensorrt)}{more}"
