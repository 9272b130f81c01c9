"""The import map (scripts/import_map.py): no import cycle, and no core module importing a layer above it."""

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


def test_the_layers_hold_everywhere():
    """No cycle, no upward or sideways import, and the CLI reaches the library only through the workflows, the
    vocabulary and the errors: the whole map, as `python scripts/import_map.py` prints it."""
    lines, findings = _import_map().report()
    assert findings == 0, "\n".join(lines)
