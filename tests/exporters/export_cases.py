"""Shared helpers of the exporter tests: golden models, exports made once per session, graph walks.

Every distinct export (model, opset, precision, layout, ...) is written once per test session into
one temporary folder and shared by all test modules that need it (``exported``).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
from conftest import GOLDEN, GOLDEN_CASES, load_golden_io  # noqa: F401 - re-exported for the test modules

from vit5_infer import resolve_model
from vit5_infer.exporters import iter_nodes

# Which golden cases have which block types (from their JSON; checked in test_graph_structure).
FILM_CASES = ["hybrid_pool_film", "hybrid_compress_concat"]
PLAIN_HYENA_CASES = ["hyena_gap"]
ATTENTION_ONLY_CASES = ["attn_cls_r4", "attn_gap_r0_bias"]

_MODELS: dict[str, tuple] = {}
_EXPORTS: dict[tuple, object] = {}
_SESSIONS: dict[str, object] = {}
_FOLDER: list[Path] = []
_DEFAULTS = dict(opset=23, precision="fp32", batch=None, layout="nchw", lowering="auto", io_dtype="fp32")


def golden_model(name: str):
    """(model, ModelSource) of a golden case, loaded once; tests must not modify it."""
    if name not in _MODELS:
        _MODELS[name] = resolve_model(GOLDEN / f"{name}.safetensors", config=GOLDEN / f"{name}.json")
    return _MODELS[name]


def _folder(tmp_path_factory) -> Path:
    if not _FOLDER:
        _FOLDER.append(tmp_path_factory.mktemp("golden_exports"))
    return _FOLDER[0]


def exported(tmp_path_factory, name: str, **options):
    """ExportResult of ``export_onnx(golden model, ..., **options)``, exported once per session."""
    from vit5_infer.exporters import export_onnx

    options = {k: v for k, v in options.items() if _DEFAULTS.get(k, object()) != v}
    key = (name, tuple(sorted(options.items())))
    if key not in _EXPORTS:
        model, source = golden_model(name)
        tag = "_".join(f"{k}-{v}" for k, v in sorted(options.items())) or "default"
        path = _folder(tmp_path_factory) / f"{name}__{tag}.onnx"
        _EXPORTS[key] = export_onnx(model, path, source=source, **options)
    return _EXPORTS[key]


def session(path) -> "object":
    import onnxruntime as ort

    path = str(path)
    if path not in _SESSIONS:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        _SESSIONS[path] = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return _SESSIONS[path]


def run(path, pixels: np.ndarray) -> np.ndarray:
    return session(path).run(["logits"], {"pixel_values": pixels})[0]


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
