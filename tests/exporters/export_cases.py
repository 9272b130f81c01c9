"""Shared helpers of the exporter tests: the per-session cache of golden exports, graph walks.

Every distinct export (model, opset, precision, layout, ...) is written once per test session into
one temporary folder and shared by all test modules that need it (the ``golden_exports`` fixture).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx

from vit5_infer import resolve_model
from vit5_infer.exporters import iter_nodes

from golden import GOLDEN, GOLDEN_CASES, load_golden_io  # noqa: F401 - re-exported for the test modules

# Which golden cases have which block types (from their JSON; checked in test_graph_structure).
FILM_CASES = ["hybrid_pool_film", "hybrid_compress_concat"]
PLAIN_HYENA_CASES = ["hyena_gap"]
ATTENTION_ONLY_CASES = ["attn_cls_r4", "attn_gap_r0_bias"]

_DEFAULTS = dict(opset=23, precision="fp32", batch=None, layout="nchw", lowering="auto", io_dtype="fp32")


class GoldenExports:
    """Golden models, their exports and ONNX Runtime sessions, each made once per test session
    (the ``golden_exports`` fixture of tests/exporters/conftest.py); tests must not modify them."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._models: dict[str, tuple] = {}
        self._exports: dict[tuple, object] = {}
        self._sessions: dict[str, object] = {}

    def model(self, name: str):
        """(model, ModelSource) of a golden case."""
        if name not in self._models:
            self._models[name] = resolve_model(GOLDEN / f"{name}.safetensors", config=GOLDEN / f"{name}.json")
        return self._models[name]

    def export(self, name: str, **options):
        """ExportResult of ``export_onnx(golden model, ..., **options)``."""
        from vit5_infer.exporters import export_onnx

        options = {k: v for k, v in options.items() if _DEFAULTS.get(k, object()) != v}
        key = (name, tuple(sorted(options.items())))
        if key not in self._exports:
            model, source = self.model(name)
            tag = "_".join(f"{k}-{v}" for k, v in sorted(options.items())) or "default"
            path = self.folder / f"{name}__{tag}.onnx"
            self._exports[key] = export_onnx(model, path, source=source, **options)
        return self._exports[key]

    def session(self, path):
        from vit5_infer.ort_sessions import create_session

        path = str(path)
        if path not in self._sessions:
            self._sessions[path] = create_session(path, quiet=True)
        return self._sessions[path]

    def run(self, path, pixels: np.ndarray) -> np.ndarray:
        return self.session(path).run(["logits"], {"pixel_values": pixels})[0]

    def forget(self, path) -> None:
        """Drop the session of a file about to be deleted."""
        self._sessions.pop(str(path), None)


def op_counts(model: onnx.ModelProto, recursive: bool = True) -> Counter:
    nodes = iter_nodes(model.graph) if recursive else model.graph.node
    return Counter(node.op_type for node in nodes)


def elem_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor of the main graph, after strict shape inference."""
    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in list(g.value_info) + list(g.input) + list(g.output)}
    types.update({init.name: init.data_type for init in g.initializer})
    return types


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def cleanup(path: Path) -> None:
    for p in (Path(path), Path(str(path) + ".data")):
        if p.exists():
            p.unlink()
