"""Static check of the TensorRT and Polygraphy calls (TensorRT cannot be installed here): only TensorRT APIs
that exist in both 10.x and 11.x, none of those the 10.x -> 11.x migration guide lists as removed, and
only Polygraphy names that the installed Polygraphy (the pinned minimum's API) has."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENGINES = REPO / "engines"
TRT_MODULES = [
    "tensorrt_builder.py",
    "tensorrt_runner.py",
    "tensorrt_support.py",
    "parse_errors.py",
    "cuda_runtime.py",
    "tensorrt_timing.py",
    "../vit5_infer/workflows/debug/marked_runners.py",
    "../vit5_infer/workflows/build_engine.py",
]

# Removed in 11.x (weak typing, implicit quantization, old memory queries) or in 10.x (binding API).
REMOVED = [
    r"BuilderFlag\.(FP16|BF16|INT8|FP8|INT4|FP4|OBEY_PRECISION_CONSTRAINTS|PREFER_PRECISION_CONSTRAINTS|DIRECT_IO)",
    r"EXPLICIT_BATCH",
    r"platform_has_fast_fp16",
    r"platform_has_fast_int8",
    r"int8_calibrator",
    r"\bdevice_memory_size\b",
    r"execute_async_v2",
    r"execute_v2",
    r"get_binding_",
    r"binding_is_input",
    r"max_workspace_size\s*=",
    r"build_engine\(network",
    r"set_precision",
    r"set_output_type",
    # absent from the 11.0/11.4 Python bindings (present in 10.x): implicit quantization, weak-typing
    # precision hints, the algorithm selector, IStreamReader (now IStreamReaderV2), supports_model (now _v2)
    r"QuantizationFlag",
    r"IInt8",
    r"calibration_profile",
    r"precision_is_set",
    r"reset_precision",
    r"IAlgorithmSelector",
    r"algorithm_selector",
    r"platform_has_tf32",
    r"IStreamReader\b",
    r"supports_model\b",
    r"get_device_memory_size_for_profile\b",
]

# Module-level names used from `trt.`, all documented in the TensorRT 10.x and 11.x Python API.
DOCUMENTED_TRT_NAMES = {
    "__version__",
    "OnnxParser",
    "MemoryPoolType",
    "ProfilingVerbosity",
    "LayerInformationFormat",
    "TensorIOMode",
    "LayerType",
    "HardwareCompatibilityLevel",
}


def _source(name: str) -> str:
    return (ENGINES / name).read_text()


def _code_without_docs(name: str) -> str:
    """The module's code with comments and docstrings dropped (they may name removed APIs on purpose)."""
    tree = ast.parse(_source(name))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(getattr(body[0], "value", None), ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            body[0] = ast.Pass()
    return ast.unparse(tree)


@pytest.mark.parametrize("name", TRT_MODULES)
def test_no_removed_tensorrt_api(name):
    code = _code_without_docs(name)
    for pattern in REMOVED:
        assert not re.search(pattern, code), f"{name} uses {pattern}, removed in TensorRT 10/11"


@pytest.mark.parametrize("name", TRT_MODULES)
def test_only_documented_module_names(name):
    tree = ast.parse(_source(name))
    used = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "trt"
    }
    assert used <= DOCUMENTED_TRT_NAMES, used - DOCUMENTED_TRT_NAMES


@pytest.mark.parametrize("name", TRT_MODULES)
def test_tensorrt_is_imported_lazily(name):
    tree = ast.parse(_source(name))
    top_level = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    for node in top_level:
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        assert not any(n.split(".")[0] == "tensorrt" for n in names), f"{name} imports tensorrt at module level"


def _polygraphy_imports(name: str):
    tree = ast.parse(_source(name))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("polygraphy"):
            for alias in node.names:
                yield node.module, alias.name


@pytest.mark.parametrize("name", TRT_MODULES)
def test_polygraphy_names_exist(name):
    import importlib

    for module, attribute in _polygraphy_imports(name):
        assert hasattr(importlib.import_module(module), attribute), f"{name}: {module}.{attribute} not in Polygraphy"


@pytest.mark.parametrize("name", TRT_MODULES)
def test_export_targets_get_major_minor(name):
    """tensorrt.__version__ of a post release (10.14.1.48.post1) is no export target: pass tensorrt_release()."""
    assert not re.search(r"tensorrt=\{(?!tensorrt_release\()[^}]*__version__", _source(name)), (
        f"{name} builds a target from __version__"
    )


def test_the_tensorrt_path_goes_through_polygraphy():
    used = {attribute for name in TRT_MODULES for _, attribute in _polygraphy_imports(name)}
    assert {
        "CreateConfig",
        "Profile",
        "engine_bytes_from_network",
        "set_decomposable_attentions",
        "TrtRunner",
        "engine_from_bytes",
        "create_network",
        "lazy_import_trt",
        "PolygraphyException",
    } <= used
