"""Layers point one way: the import graph of ``src/cleancut`` (module-level and deferred
imports alike, read from the source) has no cycle, the layers below the fronts import none
of the pipeline, and no module imports the package root (which loads the whole library)."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "cleancut"

#: The layers that must form no import cycle, deferred imports included (a deferred import
#: hides a cycle from Python, not from the design).
LAYERED = (
    "cleancut._version",
    "cleancut.errors",
    "cleancut.config",
    "cleancut.progress",
    "cleancut.parallel",
)
LAYERED_PACKAGES = ("cleancut.models", "cleancut.inference", "cleancut.io")


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted((SRC / ROOT).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _package_of(name: str) -> str:
    return name if MODULES[name].name == "__init__.py" else name.rsplit(".", 1)[0]


def _imports(name: str) -> list[tuple[str, int]]:
    """(imported module, line) for every import in ``name``; ``from P import x`` counts as
    an import of ``P.x`` when that is a module of ours, else of ``P``."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    out: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package_of(name).split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.append((sub if sub in MODULES else target, node.lineno))
    return [(t, line) for t, line in out if t == ROOT or t.startswith(ROOT + ".")]


GRAPH = {name: sorted({t for t, _ in _imports(name) if t in MODULES and t != name}) for name in MODULES}


def _layered(name: str) -> bool:
    return name in LAYERED or any(name == p or name.startswith(p + ".") for p in LAYERED_PACKAGES)


def test_no_module_imports_the_package_root() -> None:
    offenders = [
        f"{MODULES[name].relative_to(SRC)}:{line}"
        for name in MODULES
        if name != ROOT
        for target, line in _imports(name)
        if target == ROOT
    ]
    assert not offenders, f"these import the package root (import from its module instead): {offenders}"


def _cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (``[a, b, …, a]``), or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_layers_have_no_import_cycle() -> None:
    graph = {name: [t for t in GRAPH[name] if _layered(t)] for name in MODULES if _layered(name)}
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_import_cycle_anywhere() -> None:
    """Not in the pipeline either: the stages are plain functions, the remover calls them
    (and the cut-out they return lives in :mod:`cleancut.cutout`, below both)."""
    graph = {name: [t for t in GRAPH[name] if t != ROOT] for name in MODULES if name != ROOT}
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_stages_do_not_import_the_remover() -> None:
    assert "cleancut.remover" not in GRAPH["cleancut.stages"]
    assert "cleancut.remover" not in GRAPH["cleancut.cutout"]


def test_layered_modules_stay_below_the_fronts() -> None:
    """The lower layers import only each other (and the leaf helpers), never the pipeline,
    the remover or a front (CLI, API, server, Ray)."""
    allowed_outside = {"cleancut.pipeline"}  # backends' self-check preprocesses a reference image
    offenders = [
        f"{name} -> {t}"
        for name in GRAPH
        if _layered(name)
        for t in GRAPH[name]
        if not _layered(t) and t not in allowed_outside
    ]
    assert not offenders, offenders


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _layered(n)))
def test_layered_module_imports_alone(name: str) -> None:
    """Each module of the lower layers imports in a fresh interpreter on its own."""
    code = f"import importlib; importlib.import_module({name!r})"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_every_module_imports() -> None:
    for name in MODULES:
        importlib.import_module(name)
