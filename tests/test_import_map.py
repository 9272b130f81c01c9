"""The import map (scripts/import_map.py): no import cycle, no core module importing a layer above it, and the
CLI and the benchmark scripts reaching the library only through the workflows, the vocabulary and the errors."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _import_map():
    spec = importlib.util.spec_from_file_location("import_map", ROOT / "scripts" / "import_map.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("import_map", module)
    spec.loader.exec_module(module)
    return module


def _graph(import_map):
    found = import_map.modules()
    return {name: import_map.imports(name, path, set(found)) for name, path in found.items()}


def test_the_map_resolves_the_package_dir_mapping():
    found = _import_map().modules()
    assert found["vit5_infer.exporters.lowering"] == ROOT / "exporters" / "lowering.py"
    assert found["vit5_infer.cli.main"] == ROOT / "cli" / "main.py"
    assert found["vit5_infer.blocks.registry"] == ROOT / "vit5_infer" / "blocks" / "registry.py"


def test_the_core_imports_nothing_above_it():
    import_map = _import_map()
    upward = [
        (importer, imported)
        for importer, targets in _graph(import_map).items()
        if import_map.layer_of(importer)[0] == 0
        for imported in targets
        if import_map.layer_of(imported)[0] > 0
    ]
    assert upward == []


def test_no_cycle_runs_through_the_block_registry_or_the_exporters():
    import_map = _import_map()
    groups = import_map.cycles(_graph(import_map))
    touched = [
        g for g in groups if any(m.startswith("vit5_infer.blocks") or m.startswith("vit5_infer.exporters") for m in g)
    ]
    assert touched == []


def test_no_module_of_the_namespace_is_in_an_import_cycle():
    import_map = _import_map()
    assert import_map.cycles(_graph(import_map)) == []


def test_string_references_count_as_imports(tmp_path):
    import_map = _import_map()
    source = tmp_path / "hooks.py"
    source.write_text('HOOK = "vit5_infer.exporters.lowering:emit_attention"\nfrom . import errors\n')
    found = import_map.imports(
        "vit5_infer.hooks", source, {"vit5_infer", "vit5_infer.errors", "vit5_infer.exporters.lowering"}
    )
    assert found == {"vit5_infer.exporters.lowering": "string", "vit5_infer.errors": "import"}


def test_benchmark_scripts_may_import_only_the_workflows_vocabulary_and_errors(tmp_path):
    import_map = _import_map()
    folder = tmp_path / "benchmarks"
    folder.mkdir()
    (folder / "allowed.py").write_text(
        "import numpy\nfrom vit5_infer.errors import BenchError\nfrom vit5_infer.vocabulary import LOGITS\n"
        "from vit5_infer.workflows.export import export\nimport vit5_infer.workflows.predict\n"
    )
    (folder / "shortcuts.py").write_text(
        "from vit5_infer import load_model\n"
        "HOOK = 'vit5_infer.ort_sessions:create_session'\n"
        "def run():\n    from vit5_infer.engines.registry import make_runner\n"
    )
    known = {
        "vit5_infer",
        "vit5_infer.errors",
        "vit5_infer.vocabulary",
        "vit5_infer.ort_sessions",
        "vit5_infer.engines",
        "vit5_infer.engines.registry",
        "vit5_infer.workflows",
        "vit5_infer.workflows.export",
        "vit5_infer.workflows.predict",
    }
    assert import_map.benchmark_shortcuts(tmp_path, known) == [
        "  benchmarks/shortcuts.py -> vit5_infer",
        "  benchmarks/shortcuts.py -> vit5_infer.engines.registry",
        "  benchmarks/shortcuts.py -> vit5_infer.ort_sessions",
    ]


def test_the_benchmark_scripts_reach_the_library_through_the_workflows():
    """Every script of benchmarks/ imports only the workflows, the vocabulary and the errors."""
    scripts = {path.name for path in (ROOT / "benchmarks").glob("*.py")}
    assert {"cpu_speed.py", "predict_speed.py", "serve_load.py", "quantization.py", "fp16_attention.py"} <= scripts
    assert _import_map().benchmark_shortcuts() == []


def test_the_layers_hold_everywhere():
    """No cycle, no upward or sideways import, and the CLI and the benchmark scripts reach the library only through
    the workflows, the vocabulary and the errors: the whole map, as `python scripts/import_map.py` prints it."""
    lines, findings = _import_map().report()
    assert findings == 0, "\n".join(lines)
