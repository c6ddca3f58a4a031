"""Layers point one way: the import graph of ``src/cleancut`` (module-level and deferred
imports alike, read from the source) has no cycle, the layers below the fronts import none
of the pipeline, and no module imports the package root (which loads the whole library).
Rooms stay small: no module is over :data:`MAX_LINES` lines."""

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

#: The framing package's modules, each importing only those before it.
FRAMING = ("options", "geometry", "backgrounds", "compose")

#: The most lines a module may have: a file past this has grown a second job (split it).
MAX_LINES = 600


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


def _inits_run(importer: str, target: str) -> list[str]:
    """The packages whose ``__init__`` runs when ``importer`` imports ``target``: those
    above ``target`` that do not hold ``importer`` (a package importing its own modules is
    not a cycle)."""
    parts = target.split(".")
    above = (".".join(parts[:i]) for i in range(2, len(parts)))
    return [
        p
        for p in above
        if p in MODULES and MODULES[p].name == "__init__.py" and not importer.startswith(p + ".")
    ]


def test_no_import_cycle_anywhere() -> None:
    """Not in the pipeline either: the stages are plain functions, the remover calls them
    (and the cut-out they return lives in :mod:`cleancut.cutout`, below both). Importing
    ``a.b.c`` runs ``a.b``'s ``__init__`` first, so that counts as importing ``a.b`` too:
    ``cli/__init__`` imports ``server.command``, which therefore cannot import a module of
    ``cli``."""
    graph: dict[str, list[str]] = {}
    for name in MODULES:
        if name == ROOT:
            continue
        targets = {t for t in GRAPH[name] if t != ROOT}
        targets |= {p for t in targets for p in _inits_run(name, t)}
        graph[name] = sorted(targets - {name})
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_framing_stays_below_the_pipeline() -> None:
    """Framing is arithmetic on arrays: it imports the lower layers and the colour helpers
    of :mod:`cleancut.pipeline`, never the remover, the stages or a front."""
    offenders = [
        f"{name} -> {t}"
        for name in GRAPH
        if name == "cleancut.framing" or name.startswith("cleancut.framing.")
        for t in GRAPH[name]
        if not (t.startswith("cleancut.framing") or _layered(t) or t == "cleancut.pipeline")
    ]
    assert not offenders, offenders


def test_framing_modules_point_one_way() -> None:
    """options ← geometry ← backgrounds ← compose: each imports only the ones before it, and
    the package's ``__init__`` only re-exports them."""
    names = [f"cleancut.framing.{m}" for m in FRAMING]
    assert sorted(n for n in MODULES if n.startswith("cleancut.framing.")) == sorted(names)
    for i, name in enumerate(names):
        inside = {t for t in GRAPH[name] if t.startswith("cleancut.framing")}
        assert inside <= set(names[:i]), f"{name} imports {sorted(inside - set(names[:i]))}"


def test_no_module_is_over_the_size_limit() -> None:
    sizes = {
        str(path.relative_to(SRC)): len(path.read_text(encoding="utf-8").splitlines())
        for path in MODULES.values()
    }
    over = {path: n for path, n in sizes.items() if n > MAX_LINES}
    assert not over, f"over {MAX_LINES} lines (split by job): {over}"


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


def test_no_module_imports_a_private_name_of_another() -> None:
    """``from .x import _name`` reaches into another module's internals: what modules share
    is public in the module that owns it (an ``as _alias`` of a public name is fine)."""
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                offenders += [
                    f"{path.relative_to(SRC)}: {a.name}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
    assert not offenders, offenders
