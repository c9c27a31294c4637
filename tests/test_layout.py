"""Package hygiene: no import cycle, no private name imported from another module, foundation modules at
the bottom, and `import phenoseg; phenoseg.Segmenter` loads no training or evaluation code."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import phenoseg

ROOT = Path(phenoseg.__file__).resolve().parent
# foundation modules: they may import only these phenoseg modules
FOUNDATION = {
    "phenoseg.errors": set(),
    "phenoseg.devices": {"phenoseg.errors"},
    "phenoseg.normalise": set(),
    "phenoseg.preprocess": {"phenoseg.normalise"},
    "phenoseg.io.atomic": set(),
    "phenoseg.io.datasets": {"phenoseg.errors"},
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(imported phenoseg module, names imported from it) for every import statement, at any depth."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("phenoseg"):
            out.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.startswith("phenoseg")]
    return out


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for target, names in _imports(path):
            if target in modules:
                deps.add(target)
            for n in names:  # "from phenoseg.x import y" where y is a submodule
                if f"{target}.{n}" in modules:
                    deps.add(f"{target}.{n}")
        graph[name] = deps - {name}
    return graph


def test_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for dep in graph.get(node, ()):
            # a package's __init__ re-exporting its own submodules is not a cycle of the code
            if node.startswith(dep + ".") or dep.startswith(node + "."):
                continue
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert not cycles, cycles[:5]


def test_no_private_names_imported_across_modules():
    bad = []
    for path in ROOT.rglob("*.py"):
        for target, names in _imports(path):
            bad += [f"{_module_name(path)}: from {target} import {n}" for n in names if n.startswith("_")]
    assert not bad, bad


def test_foundation_modules_import_nothing_above_them():
    graph = _graph()
    for name, allowed in FOUNDATION.items():
        assert graph[name] <= allowed, (name, graph[name] - allowed)


def test_segmenter_import_loads_no_training_or_evaluation_code():
    code = ("import sys, phenoseg; phenoseg.Segmenter; "
            "bad = [m for m in sys.modules if m.startswith(('phenoseg.training', 'phenoseg.evaluation'))]; "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_modules_stay_small():
    big = [(p.relative_to(ROOT), n) for p in ROOT.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400]
    assert not big, big
