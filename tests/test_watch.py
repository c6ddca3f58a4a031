"""``cleancut watch``: a real ``cleancut watch`` subprocess on a temporary folder, with the
real model from the shared test cache (offline, no npm, as in test_cli.py).

Photos are copied in while it runs: one written slowly in pieces through one open handle
(it must be read once, complete), one replaced in place, one moved in; the outputs are
checked against the library's own cut of the same files. SIGINT must stop it within
seconds without temporary files, and a restart must cut what arrived while it was down and
nothing else. The output folder lies inside the watched one: what is written there must
never be taken as an input.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cleancut import Remover, Settings
from cleancut.cli import cli
from conftest import EXAMPLES

ASTRONAUT = EXAMPLES / "astronaut.jpg"
CHELSEA = EXAMPLES / "chelsea.jpg"
COFFEE = EXAMPLES / "coffee.jpg"
#: Bounds on waiting, so that a broken watcher fails the test instead of hanging it. The
#: machine may be shared: a cut takes a few seconds here, loading the model several.
CUT_WAIT = 120.0
#: How soon SIGINT must stop it: idle, at once; mid-cut, after the inference in progress
#: (0.4-5.7 s measured on the shared 2-core machine, where one photo took 8-11 s in all).
IDLE_STOP = 5.0
BUSY_STOP = 30.0


class Watcher:
    """A ``cleancut watch`` subprocess and the lines of its stderr, read as they come."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        code = "import sys; from cleancut.cli import main; sys.argv[0] = 'cleancut'; main()"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, "watch", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for(self, pattern: str, count: int = 1, timeout: float = CUT_WAIT) -> list[str]:
        """Wait until ``count`` lines match ``pattern``; those lines."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [line for line in self.lines if re.search(pattern, line)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                assert left > 0 and self.proc.poll() is None, (
                    f"no {count} line(s) like {pattern!r}; exit {self.proc.poll()}; stderr: {self.lines}"
                )
                self._changed.wait(min(left, 0.5))

    def matching(self, pattern: str) -> list[str]:
        with self._changed:
            return [line for line in self.lines if re.search(pattern, line)]

    def interrupt(self) -> tuple[int, float]:
        """SIGINT; its exit code and how long it took to stop."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self._reader.join(10)
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def env(model_settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEANCUT_")}
    env.update(
        CLEANCUT_CACHE_DIR=str(model_settings.cache_dir),
        CLEANCUT_OFFLINE="1",
        CLEANCUT_NPM="0",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture(scope="module")
def reference(model_settings: Settings) -> Remover:
    """The library on the same backend as the watcher (``--backend onnxruntime``)."""
    return Remover("isnet_fp16", backend="onnxruntime", settings=model_settings).load()


@pytest.fixture
def watcher_factory(env: dict[str, str]) -> Iterator[list[Watcher]]:
    started: list[Watcher] = []
    yield started
    for w in started:
        w.kill()


def alpha_of(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.mode == "RGBA", im.mode
        return np.asarray(im.getchannel("A"), dtype=np.int16)


def assert_cut_of(output: Path, photo: Path, reference: Remover) -> None:
    """``output`` is the cut-out of ``photo`` (its alpha is the library's mask)."""
    expected = reference.remove(photo).mask.astype(np.int16)
    alpha = alpha_of(output)
    assert alpha.shape == expected.shape, (alpha.shape, expected.shape)
    assert np.abs(alpha - expected).mean() < 0.5, np.abs(alpha - expected).mean()


def temp_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.name.endswith(".cleancut-tmp") or p.name.endswith(".tmp"))


def write_slowly(target: Path, data: bytes, pieces: int = 5, pause: float = 0.4) -> None:
    """Write ``data`` through one open handle in ``pieces``, ``pause`` seconds apart (each
    piece flushed to the file: a reader in between sees a truncated photo)."""
    step = -(-len(data) // pieces)
    with open(target, "wb") as f:
        for i in range(0, len(data), step):
            f.write(data[i : i + step])
            f.flush()
            os.fsync(f.fileno())
            time.sleep(pause)


def test_watch_cuts_arrivals_once_complete_stops_on_sigint_and_resumes(
    tmp_path: Path, env: dict[str, str], reference: Remover, watcher_factory: list[Watcher]
) -> None:
    inbox = tmp_path / "inbox"
    out = inbox / "cutouts"  # inside the watched folder: never an input
    inbox.mkdir()
    shutil.copy(ASTRONAUT, inbox / "a.jpg")  # there before the start: cut first
    args = [str(inbox), "-o", str(out), "--backend", "onnxruntime", "--settle", "1.0"]

    w = Watcher(args, env)
    watcher_factory.append(w)
    w.wait_for(r"^watching .*: 0 up to date, 1 to cut")
    w.wait_for(r"^wrote .*cutouts/a\.png")
    assert_cut_of(out / "a.png", inbox / "a.jpg", reference)

    # A photo written slowly in pieces (2 s in all, pieces 0.4 s apart: less than --settle).
    write_slowly(inbox / "b.jpg", CHELSEA.read_bytes())
    w.wait_for(r"^wrote .*cutouts/b\.png")
    assert_cut_of(out / "b.png", inbox / "b.jpg", reference)

    # a.jpg replaced in place by another photo: cut again, its output replaced.
    before = alpha_of(out / "a.png")
    (inbox / "a.jpg").write_bytes(COFFEE.read_bytes())
    w.wait_for(r"^wrote .*cutouts/a\.png", count=2)
    assert_cut_of(out / "a.png", inbox / "a.jpg", reference)
    assert alpha_of(out / "a.png").shape != before.shape  # really the new photo's cut

    # Moved in from outside (complete at once), into a subfolder made for it.
    (inbox / "sub").mkdir()
    staged = tmp_path / "staged.jpg"
    shutil.copy(CHELSEA, staged)
    staged.replace(inbox / "sub" / "m.jpg")
    w.wait_for(r"^wrote .*cutouts/sub/m\.png")
    assert_cut_of(out / "sub" / "m.png", inbox / "sub" / "m.jpg", reference)

    # Every photo once (a twice: it was replaced), never a half-written one, nothing failed,
    # and nothing written into the output folder was taken as an input.
    time.sleep(2.5)  # more than --settle: a late second read of any file would show now
    assert len(w.matching(r"^wrote .*/b\.png")) == 1, w.lines
    assert len(w.matching(r"^wrote ")) == 4, w.lines
    assert not w.matching(r"failed|error|Traceback"), w.lines
    assert not (out / "cutouts").exists()

    code, took = w.interrupt()  # idle: it stops at once
    assert code == 130, w.lines
    assert took < IDLE_STOP, took
    assert w.lines[-1].startswith("stopped watching"), w.lines
    assert temp_files(tmp_path) == []

    # While it is down: one photo arrives. A restart cuts it and nothing else.
    shutil.copy(COFFEE, inbox / "c.jpg")
    w2 = Watcher(args, env)
    watcher_factory.append(w2)
    w2.wait_for(r"^watching .*: 3 up to date, 1 to cut")
    w2.wait_for(r"^wrote .*cutouts/c\.png")
    time.sleep(0.5)
    assert_cut_of(out / "c.png", inbox / "c.jpg", reference)
    assert len(w2.matching(r"^wrote ")) == 1, w2.lines
    code, took = w2.interrupt()
    assert code == 130 and took < IDLE_STOP, (code, took, w2.lines)
    assert temp_files(tmp_path) == []
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == [
        "a.png",
        "b.png",
        "c.png",
        "sub/m.png",
    ]


def test_sigint_during_a_cut_leaves_no_temp_files(
    tmp_path: Path, env: dict[str, str], watcher_factory: list[Watcher]
) -> None:
    inbox, out = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    for i in range(3):
        shutil.copy(ASTRONAUT, inbox / f"p{i}.jpg")
    w = Watcher([str(inbox), "-o", str(out)], env)
    watcher_factory.append(w)
    w.wait_for(r"^watching .*3 to cut")
    w.wait_for(r"^wrote ")  # in the middle of the backlog
    code, took = w.interrupt()  # after the inference in progress
    assert code == 130 and took < BUSY_STOP, (code, took, w.lines)
    assert temp_files(tmp_path) == []
    written = sorted(out.glob("*.png"))
    assert 1 <= len(written) <= 3
    for path in written:  # what was written is whole
        with Image.open(path) as im:
            im.load()
            assert im.size == (512, 512)


def run(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["watch", *map(str, args)])
    return result.exit_code, result.output


def test_usage_errors_before_any_model_loads(tmp_path: Path) -> None:
    photo = tmp_path / "photo.jpg"
    shutil.copy(ASTRONAUT, photo)
    code, text = run(tmp_path / "missing")
    assert code == 2 and "no such folder to watch" in text
    code, text = run(photo)
    assert code == 2 and "watch takes a folder" in text and "cleancut FILE" in text
    code, text = run(tmp_path, "-o", photo)
    assert code == 2 and "is a file" in text
    code, text = run(tmp_path, "-o", "-")
    assert code == 2 and "watch writes files" in text
    code, text = run(tmp_path, "--settle", "0")
    assert code == 2 and "--settle" in text
    code, text = run(tmp_path, "--type", "nope")
    assert code == 2
    assert not list(tmp_path.glob("*.png"))


def test_help_describes_the_command() -> None:
    result = CliRunner().invoke(cli, ["watch", "--help"])
    assert result.exit_code == 0
    for text in ("cleancut watch uploads/ -o cutouts/", "--settle", "Ctrl-C", "--overwrite", "--bg-color"):
        assert text in result.output, text
    assert "cleancut watch" in CliRunner().invoke(cli, ["--help"]).output
