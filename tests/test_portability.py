"""The package says "OS Independent": no POSIX-only call where a library covers every OS.

Process liveness goes through ``psutil.pid_exists`` (``os.kill(pid, 0)`` sends a Ctrl-C on
Windows, where signal 0 is CTRL_C_EVENT), and locks through ``filelock`` (not ``fcntl``).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cleancut.io import atomic
from cleancut.io.atomic import TEMP_SUFFIX, pid_alive, sweep_stale_temps
from cleancut.video import encode
from cleancut.video.encode import sweep_stale_frame_folders

SRC = Path(__file__).resolve().parents[1] / "src" / "cleancut"

#: Calls and modules that exist, or mean what they say, only on POSIX systems.
POSIX_ONLY_CALLS = {("os", "kill"), ("os", "killpg"), ("os", "fork"), ("os", "getuid"), ("os", "geteuid")}
POSIX_ONLY_MODULES = {"fcntl", "pwd", "grp", "resource", "termios"}
POSIX_ONLY_ATTRS = {("signal", "SIGKILL"), ("signal", "SIGUSR1"), ("signal", "SIGHUP")}


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


class _OsWithoutKill:
    """The ``os`` module as the package's modules see it, with ``os.kill`` as dangerous as on
    Windows: any call is a failure. (Only their ``os``: psutil itself uses ``os.kill`` on
    POSIX, which is right there.)"""

    def __getattr__(self, name: str) -> object:
        if name == "kill":
            raise AssertionError("os.kill(pid, 0) is not a liveness test on Windows")
        return getattr(os, name)


@pytest.fixture
def no_os_kill(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in (atomic, encode):
        monkeypatch.setattr(module, "os", _OsWithoutKill())


def test_pid_alive_without_os_kill(no_os_kill: None) -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(dead_pid())
    assert not pid_alive(0) and not pid_alive(-1)


def test_stale_temp_sweeps_tell_dead_writers_from_live_ones_without_os_kill(
    no_os_kill: None, tmp_path: Path
) -> None:
    gone = dead_pid()
    stale = tmp_path / f".a.png.{gone}.0123456789ab{TEMP_SUFFIX}"
    live = tmp_path / f".b.png.{os.getpid()}.0123456789ab{TEMP_SUFFIX}"
    for p in (stale, live):
        p.write_bytes(b"partial")
    assert sweep_stale_temps(tmp_path) == [stale]
    assert live.exists()
    stale_dir = tmp_path / f".frames.{gone}.0123456789ab{TEMP_SUFFIX}"
    live_dir = tmp_path / f".other.{os.getpid()}.ba9876543210{TEMP_SUFFIX}"
    for d in (stale_dir, live_dir):
        d.mkdir()
        (d / "000000.png").write_bytes(b"partial")
    assert sweep_stale_frame_folders(tmp_path) == [stale_dir]
    assert live_dir.is_dir()


def _guarded_imports(tree: ast.AST) -> set[int]:
    """Imports inside ``try: … except ImportError:`` (the except branch is the other OSes' way)."""
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
            for h in node.handlers
        ):
            guarded |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return guarded


def _posix_only_uses(tree: ast.AST) -> list[str]:
    found: list[str] = []
    guarded = _guarded_imports(tree)
    for node in ast.walk(tree):
        if id(node) in guarded and isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in POSIX_ONLY_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] in POSIX_ONLY_MODULES:
                found.append(node.module)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            pair = (node.value.id, node.attr)
            if pair in POSIX_ONLY_CALLS or pair in POSIX_ONLY_ATTRS:
                found.append(".".join(pair))
    return found


def test_the_scan_finds_what_it_looks_for() -> None:
    code = "import fcntl\nimport os, signal\nos.kill(1, 0)\nsignal.SIGKILL\nfrom resource import getrlimit\n"
    assert sorted(_posix_only_uses(ast.parse(code))) == ["fcntl", "os.kill", "resource", "signal.SIGKILL"]
    fallback = "try:\n    import resource\nexcept ImportError:\n    resource = None\n"
    assert _posix_only_uses(ast.parse(fallback)) == []


def test_peak_memory_is_measured_in_bytes() -> None:
    """The backend self-check's peak memory, through the portable helper: this process holds
    at least the interpreter and numpy, tens of MiB, and less than the machine has."""
    import psutil

    from cleancut.inference.backends import _peak_rss

    peak = _peak_rss()
    assert 20 * 2**20 < peak < psutil.virtual_memory().total
    assert peak >= psutil.Process().memory_info().rss * 0.9


def test_no_posix_only_calls_in_the_package() -> None:
    uses = {
        str(path.relative_to(SRC)): found
        for path in sorted(SRC.rglob("*.py"))
        if (found := _posix_only_uses(ast.parse(path.read_text(encoding="utf-8"))))
    }
    assert uses == {}, "use psutil (processes) or filelock (locks) instead"
