#!/usr/bin/env python3
"""The import map of vit5_infer: cycles and upward or sideways imports between its layers.

The root folders exporters/, engines/ and cli/ install inside ``vit5_infer`` through pyproject.toml's
package-dir, so a tool that walks the ``vit5_infer`` folder alone sees neither them nor the imports into
them.  This script reads the mapping from pyproject.toml, parses every module of the namespace (imports
inside functions and ``if TYPE_CHECKING`` blocks included, since both still tie the modules together) and
reports, by layer (docs/architecture.md):

- cycles: groups of modules that import each other, directly or through others;
- upward imports: a module importing a layer above its own;
- sideways imports: between the independent packages of one layer (exporters and engines, ...);
- CLI shortcuts: the CLI importing anything but the workflows, the vocabulary and the errors;
- benchmark shortcuts: a script of benchmarks/ importing anything of the namespace outside that same reach.

``"vit5_infer.x:function"`` strings count as imports: code resolved from a string is still a dependency.

    python scripts/import_map.py              # the report; exit status 1 when anything is found
    python scripts/import_map.py --stage DIR  # copy the namespace into DIR/vit5_infer as a wheel lays it out
    python scripts/import_map.py --lint-imports  # run import-linter's contracts against such a copy
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "vit5_infer"

# Layers from the bottom; packages on one line are independent of each other.  A module belongs to the
# longest entry its name starts with; anything else in the namespace is the core.  The workflows with packages
# of their own sit above the single-module workflows (export, build_engine, inspect, artifacts, sources, ...)
# that they share.
LAYERS: list[tuple[str, ...]] = [
    ("vit5_infer",),
    ("vit5_infer.exporters", "vit5_infer.engines"),
    ("vit5_infer.workflows",),
    (
        "vit5_infer.workflows.benchmark",
        "vit5_infer.workflows.serving",
        "vit5_infer.workflows.predict",
        "vit5_infer.workflows.debug",
    ),
    ("vit5_infer.cli",),
]
# what the CLI may import besides itself, and all that the benchmark scripts may import of the namespace
CLI_REACH = ("vit5_infer.workflows", "vit5_infer.vocabulary", "vit5_infer.errors")
# the benchmark scripts: measurements of what the package offers, made through the same entries as the CLI
BENCHMARKS = "benchmarks"
_HOOK = re.compile(r"^(vit5_infer(?:\.\w+)+):\w+$")


def package_dirs(root: Path = ROOT) -> dict[str, Path]:
    """Package name -> its folder, as setuptools installs it (package-dir, else the dotted path)."""
    setuptools = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = setuptools.get("package-dir", {})
    out = {}
    for name in setuptools["packages"]:
        folder = mapping.get(name)
        if folder is None:  # nearest mapped parent, then the rest of the dotted path
            parent = next((p for p in sorted(mapping, key=len, reverse=True) if name.startswith(p + ".")), None)
            tail = name[len(parent) + 1 :].split(".") if parent else name.split(".")
            folder = os.path.join(mapping[parent] if parent else "", *tail)
        out[name] = root / folder
    return out


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Module name -> source file, for every module of the namespace."""
    out = {}
    for package, folder in package_dirs(root).items():
        for path in sorted(folder.glob("*.py")):
            out[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return out


def _absolute(module: str, is_package: bool, level: int, name: str | None) -> str:
    if level == 0:
        return name or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def imports(module: str, path: Path, known: set[str]) -> dict[str, str]:
    """Modules of the namespace that ``module`` imports -> how ("import" or "string")."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    found: dict[str, str] = {}

    def add(name: str, how: str) -> None:
        # the longest known prefix: "vit5_infer.x.y" (a function y of module x) is an import of x
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != module:
            found.setdefault(name, how)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, "import")
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, is_package, node.level, node.module)
            for alias in node.names:
                target = f"{base}.{alias.name}"
                add(target if target in known else base, "import")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = _HOOK.match(node.value)
            if match:
                add(match.group(1), "string")
    return found


def within_reach(imported: str) -> bool:
    """Whether ``imported`` is one of CLI_REACH or inside one."""
    return any(imported == reach or imported.startswith(reach + ".") for reach in CLI_REACH)


def benchmark_shortcuts(root: Path = ROOT, known: set[str] | None = None) -> list[str]:
    """``benchmarks/NAME.py -> module`` for each import of the namespace a benchmark script makes outside
    CLI_REACH.  Unlike the CLI, a script may not import the bare package: ``from vit5_infer import load_model``
    reaches the core through the package's own names."""
    known = set(modules(root)) if known is None else known
    return [
        f"  {BENCHMARKS}/{path.name} -> {imported}"
        for path in sorted((root / BENCHMARKS).glob("*.py"))
        for imported in sorted(imports(f"{BENCHMARKS}.{path.stem}", path, known))
        if not within_reach(imported)
    ]


def layer_of(module: str) -> tuple[int, str]:
    """(rank from the bottom, package) of a module."""
    best = (0, PACKAGE)
    for rank, packages in enumerate(LAYERS):
        for package in packages:
            if (module == package or module.startswith(package + ".")) and len(package) > len(best[1]):
                best = (rank, package)
    return best


def cycles(graph: dict[str, dict[str, str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, {}):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(out)


def report(root: Path = ROOT) -> tuple[list[str], int]:
    """The report's lines and the number of findings."""
    found = modules(root)
    graph = {name: imports(name, path, set(found)) for name, path in found.items()}
    lines: list[str] = []
    groups = cycles(graph)
    lines.append(f"cycles: {len(groups)}")
    for group in groups:
        members = set(group)
        edges = [
            f"{a} -> {b}" + (" (string)" if how == "string" else "")
            for a in group
            for b, how in sorted(graph[a].items())
            if b in members
        ]
        lines.append(f"  {len(group)} modules: " + ", ".join(group))
        lines.extend(f"    {edge}" for edge in edges)
    upward: list[str] = []
    sideways: list[str] = []
    for importer, targets in sorted(graph.items()):
        rank, package = layer_of(importer)
        for imported, how in sorted(targets.items()):
            other_rank, other_package = layer_of(imported)
            edge = f"  {importer} -> {imported}" + (" (string)" if how == "string" else "")
            if other_rank > rank:
                upward.append(edge)
            elif other_rank == rank and other_package != package:
                sideways.append(edge)
    shortcuts = [
        f"  {importer} -> {imported}"
        for importer, targets in sorted(graph.items())
        if importer.startswith("vit5_infer.cli.") or importer == "vit5_infer.cli"
        for imported in sorted(targets)
        if imported != PACKAGE and not imported.startswith("vit5_infer.cli") and not within_reach(imported)
    ]
    scripts = benchmark_shortcuts(root, set(found))
    lines.append(f"upward imports: {len(upward)}")
    lines.extend(upward)
    lines.append(f"sideways imports: {len(sideways)}")
    lines.extend(sideways)
    lines.append(f"CLI shortcuts: {len(shortcuts)}")
    lines.extend(shortcuts)
    lines.append(f"benchmark shortcuts: {len(scripts)}")
    lines.extend(scripts)
    return lines, len(groups) + len(upward) + len(sideways) + len(shortcuts) + len(scripts)


def stage(target: Path, root: Path = ROOT) -> Path:
    """Copy the namespace's modules into ``target`` laid out as installed; returns ``target``."""
    for package, folder in package_dirs(root).items():
        dest = target.joinpath(*package.split("."))
        dest.mkdir(parents=True, exist_ok=True)
        for path in folder.glob("*.py"):
            shutil.copy2(path, dest / path.name)
    return target


def lint_imports(root: Path = ROOT) -> int:
    """import-linter's contracts (pyproject.toml) checked against an installed-layout copy."""
    with tempfile.TemporaryDirectory(prefix="vit5-import-map-") as tmp:
        stage(Path(tmp), root)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([tmp, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
        code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
        # run from the copy: a working directory of the checkout would put its vit5_infer/ first on sys.path
        command = [sys.executable, "-c", code, str(root / "pyproject.toml"), "--no-cache"]
        return subprocess.run(command, cwd=tmp, env=env).returncode


def type_check(root: Path = ROOT) -> int:
    """mypy ([tool.mypy]) against an installed-layout copy: from the checkout, mypy cannot follow the
    package-dir mapping, so the workflows' imports of vit5_infer.engines/exporters would not resolve."""
    with tempfile.TemporaryDirectory(prefix="vit5-import-map-") as tmp:
        stage(Path(tmp), root)
        command = [sys.executable, "-m", "mypy", "--config-file", str(root / "pyproject.toml")]
        return subprocess.run(command, cwd=tmp).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", type=Path, metavar="DIR", help="copy the namespace into DIR and exit")
    parser.add_argument("--lint-imports", action="store_true", help="run import-linter against a staged copy")
    parser.add_argument("--mypy", action="store_true", help="run mypy ([tool.mypy]) against a staged copy")
    args = parser.parse_args(argv)
    if args.stage:
        stage(args.stage)
        return 0
    if args.lint_imports:
        return lint_imports()
    if args.mypy:
        return type_check()
    lines, findings = report()
    print("\n".join(lines))
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
