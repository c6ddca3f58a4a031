"""Nothing lost under faults: a killed batch, a damaged model cache, a full disk, and HTTP
clients that hang up.

* **SIGKILL**: the real CLI, in a subprocess, over real photos, killed with ``kill -9`` once
  its first output appears; a temp file of a dead writer, one of a live writer and a
  look-alike that is not ours are planted beside the outputs. The rerun must leave exactly
  one valid cut-out per input, keep what the first run finished, remove only the dead
  writer's temp file, and never touch an input.
* **Corrupt model**: the cached model with one byte flipped in place (with and without its
  mtime put back) and truncated, and the cached pruned graph damaged the same way: the next
  load notices and fetches (or rebuilds) it from a local mirror, and inference works.
* **Disk full**: a batch into a small tmpfs (or a loop-mounted ext2 image) that fills up:
  one plain ``no space left`` error line per file that did not fit, no partial or temporary
  files; after space is freed, the rerun completes the batch.
* **Client disconnects**: the real server (uvicorn, a subprocess on 127.0.0.1) gets clients
  that hang up mid-upload and mid-response; afterwards no slot is held, a normal request
  works, nothing was logged as a server error, and memory and threads stay flat.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from PIL import Image

from cleancut import Remover, Settings
from cleancut.io.atomic import TEMP_SUFFIX
from cleancut.models import MODELS
from cleancut.models.installed import installed_path, verify_file
from cleancut.models.store import fetch_model
from conftest import EXAMPLES, TEST_CACHE
from mirror import Mirror

SPEC = MODELS["isnet_fp16"]
CLI = [sys.executable, "-c", "from cleancut.cli import main; main()"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEANCUT_")}
    env.update({"CLEANCUT_CACHE_DIR": str(TEST_CACHE), "CLEANCUT_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_photos(folder: Path) -> list[Path]:
    """Eight real photos: the examples, plus resized and re-encoded variants of them."""
    folder.mkdir(parents=True, exist_ok=True)
    photos: list[Path] = []
    for src in sorted(EXAMPLES.glob("*.jpg")):
        dst = folder / src.name
        shutil.copyfile(src, dst)
        photos.append(dst)
        with Image.open(src) as img:
            img.load()
            w, h = img.size
            small = img.resize((w * 3 // 4, h * 3 // 4))
            small.save(folder / f"{src.stem}-small.png")
            photos.append(folder / f"{src.stem}-small.png")
    with Image.open(EXAMPLES / "astronaut.jpg") as img:
        sub = folder / "sub"
        sub.mkdir()
        img.rotate(90, expand=True).save(sub / "astronaut-rotated.webp", quality=90)
        img.crop((0, 0, 300, 200)).save(sub / "astronaut-crop.jpg", quality=85)
        photos += [sub / "astronaut-rotated.webp", sub / "astronaut-crop.jpg"]
    return sorted(photos)


def expected_output(inputs: Path, out: Path, photo: Path) -> Path:
    return out / photo.relative_to(inputs).with_suffix(".png")


def assert_valid_cutout(path: Path, source: Path) -> None:
    with Image.open(source) as src:
        size = src.size
    with Image.open(path) as img:
        img.load()
        assert img.format == "PNG" and img.mode == "RGBA", (path, img.mode)
        assert img.size == size, (path, img.size, size)
        alpha = np.asarray(img)[:, :, 3]
    # a real photo has a subject and a background: both kinds of alpha must be there
    assert (alpha > 200).mean() > 0.02 and (alpha < 50).mean() > 0.02, path


def all_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# --------------------------------------------------------------------------- SIGKILL


def test_sigkill_mid_batch_then_rerun_loses_nothing(model_settings: Settings, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    out = tmp_path / "out"
    photos = make_photos(inputs)
    assert len(photos) >= 8
    before = {p: _sha(p) for p in photos}

    proc = subprocess.Popen(
        [*CLI, str(inputs), "-o", str(out)], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 300
    first: list[Path] = []
    while time.monotonic() < deadline and proc.poll() is None:
        first = [p for p in all_files(out) if not p.name.startswith(".")] if out.exists() else []
        if first:
            break
        time.sleep(0.02)
    assert proc.poll() is None, f"the batch ended before it could be killed: {proc.communicate()}"
    assert first, "no output appeared in time"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done_at_kill = {
        p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in all_files(out) if not p.name.startswith(".")
    }
    assert 1 <= len(done_at_kill) < len(photos)

    # What a killed writer leaves, what a live one is writing, and files that are not ours.
    target = expected_output(inputs, out, photos[-1])
    target.parent.mkdir(parents=True, exist_ok=True)
    stale = target.with_name(f".{target.name}.{dead_pid()}.0123456789ab{TEMP_SUFFIX}")
    live = target.with_name(f".{target.name}.{os.getpid()}.ba9876543210{TEMP_SUFFIX}")
    foreign = [target.with_name(f".{target.name}.{dead_pid()}.0123456789ab.tmp"), out / "notes.cleancut-tmp"]
    for p in (stale, live, *foreign):
        p.write_bytes(b"partial")

    rerun = subprocess.run(
        [*CLI, str(inputs), "-o", str(out)], env=_env(), capture_output=True, text=True, timeout=600
    )
    assert rerun.returncode == 0, rerun.stderr
    assert "Traceback" not in rerun.stderr
    assert not stale.exists(), "the dead writer's temp file was left behind"
    assert live.exists() and all(p.exists() for p in foreign), "a file that was not stale was removed"
    for p in (live, *foreign):
        p.unlink()

    outputs = all_files(out)
    assert outputs == sorted(expected_output(inputs, out, p) for p in photos)  # exactly one each
    for photo in photos:
        assert_valid_cutout(expected_output(inputs, out, photo), photo)
    for path, stamp in done_at_kill.items():  # finished before the kill: skipped, not redone
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == stamp
    assert f"{len(done_at_kill)} skipped" in rerun.stderr
    assert {p: _sha(p) for p in photos} == before  # inputs untouched
    assert sorted(p for p in all_files(inputs)) == photos  # and nothing written among them


# --------------------------------------------------------------------------- corrupt model


@pytest.fixture
def mirror(mirror_dir: Path) -> Iterator[Mirror]:
    """The real model chunks (``mirror_dir``) over HTTP on 127.0.0.1, counting requests."""
    with Mirror(mirror_dir) as m:
        yield m


def _flip_in_place(path: Path, at: int, *, keep_mtime: bool) -> None:
    st = path.stat()
    with open(path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0x10]))
    if keep_mtime:  # as bit rot or a careful tamperer would: the size and mtime look unchanged
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size


def _settled(path: Path) -> None:
    """Age a file so that verification leaves its stamp: a file changed within the last two
    seconds gets none (its ctime, which utime cannot set back, must be that old too)."""
    old = time.time() - 3600
    os.utime(path, (old, old))
    time.sleep(2.1)


DAMAGES = ["flip", "flip-keep-mtime", "truncate"]


def _damage(path: Path, damage: str) -> None:
    if damage == "truncate":
        with open(path, "r+b") as f:
            f.truncate(path.stat().st_size - 4096)
    else:
        time.sleep(0.05)  # a later timestamp tick than the stamp's
        _flip_in_place(path, path.stat().st_size // 2, keep_mtime=damage == "flip-keep-mtime")


def _tmp_cache(model_settings: Settings, tmp_path: Path, mirror_url: str, *names: str) -> Settings:
    settings = dataclasses.replace(
        model_settings, cache_dir=tmp_path / "cache", model_base_url=mirror_url, npm=None, offline=False
    )
    settings.models_dir.mkdir(parents=True)
    for name in names:
        shutil.copyfile(model_settings.models_dir / name, settings.models_dir / name)
    return settings


@pytest.mark.parametrize("damage", DAMAGES)
def test_corrupt_published_model_is_detected_and_fetched_again(
    model_settings: Settings, mirror: Mirror, tmp_path: Path, damage: str
) -> None:
    settings = _tmp_cache(model_settings, tmp_path, mirror.url, SPEC.filename)
    model = installed_path(SPEC, settings)
    _settled(model)
    assert fetch_model(SPEC, settings) == model
    assert model.with_name(f".{model.name}.verified").is_file(), "a verified, settled model is stamped"
    assert mirror.requests == []  # the cache was good: nothing fetched

    _damage(model, damage)
    assert fetch_model(SPEC, settings) == model
    assert len(mirror.chunk_requests()) == 22, "the damaged model was not fetched again"
    assert model.stat().st_size == SPEC.size and _sha(model) == SPEC.sha256


@pytest.mark.parametrize("damage", ["flip-keep-mtime", "truncate"])  # each rebuilds 176 MB
def test_corrupt_model_is_noticed_by_the_next_run(
    model_settings: Settings, remover: Remover, mirror: Mirror, tmp_path: Path, damage: str
) -> None:
    """On a CPU, ``isnet_fp16`` runs from its prepared fp32 widening in ``<cache>/graphs``:
    damage to that file (what actually runs) is noticed by the next process that loads it,
    which rebuilds it from the verified fp16 model and cuts out correctly."""
    from cleancut.models.prepare import prepare

    settings = _tmp_cache(model_settings, tmp_path, mirror.url, SPEC.filename)
    path = prepare(SPEC, installed_path(SPEC, settings), SPEC.sha256 or "", settings, gpu=False).path
    record = json.loads(path.with_name(path.name + ".json").read_text())
    _settled(path)
    assert verify_file(path, record["size"], record["sha256"])
    assert path.with_name(f".{path.name}.verified").is_file()

    _damage(path, damage)
    out = tmp_path / "cut.png"
    env = _env(CLEANCUT_CACHE_DIR=str(settings.cache_dir), CLEANCUT_MODEL_URL=mirror.url, CLEANCUT_NPM="0")
    del env["CLEANCUT_OFFLINE"]
    run = subprocess.run(
        [*CLI, str(EXAMPLES / "astronaut.jpg"), "-o", str(out), "--backend", "onnxruntime"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    assert _sha(path) == record["sha256"], "the damaged model was not rebuilt"
    assert mirror.requests == []  # the fp16 model it is built from was intact
    assert_valid_cutout(out, EXAMPLES / "astronaut.jpg")
    with Image.open(out) as img:
        alpha = np.asarray(img)[:, :, 3] > 127
    ref = remover.remove(EXAMPLES / "astronaut.jpg").mask > 127
    assert (alpha & ref).sum() / (alpha | ref).sum() > 0.99


@pytest.mark.parametrize("damage", ["flip", "flip-keep-mtime", "truncate"])
def test_corrupt_cached_graph_is_rebuilt(model_settings: Settings, tmp_path: Path, damage: str) -> None:
    """The pruned graph in ``<cache>/graphs`` is what runs; damage to it is noticed too."""
    from cleancut.models.prepare import prepare

    def prepared_graph(spec: object, model: Path, settings: Settings) -> Path:
        return prepare(SPEC, model, SPEC.sha256 or "", settings, gpu=False).path

    settings = dataclasses.replace(model_settings, cache_dir=tmp_path / "cache", offline=True)
    model = installed_path(SPEC, settings)
    model.parent.mkdir(parents=True)
    shutil.copyfile(installed_path(SPEC, model_settings), model)
    graph = prepared_graph(SPEC, model, settings)
    good = _sha(graph)
    _settled(graph)
    assert prepared_graph(SPEC, model, settings) == graph  # verified, stamped
    assert graph.with_name(f".{graph.name}.verified").is_file()
    if damage == "truncate":
        with open(graph, "r+b") as f:
            f.truncate(graph.stat().st_size // 2)
    else:
        time.sleep(0.05)
        _flip_in_place(graph, graph.stat().st_size - 1000, keep_mtime=damage == "flip-keep-mtime")
    assert _sha(graph) != good
    assert prepared_graph(SPEC, model, settings) == graph
    assert _sha(graph) == good


# --------------------------------------------------------------------------- disk full


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


@contextlib.contextmanager
def small_filesystem(where: Path, size_mb: int) -> Iterator[str]:
    """Mount a small file system at ``where``: tmpfs, else a loop-mounted ext2 image; skip
    (saying why) where this sandbox allows neither."""
    where.mkdir()
    reasons: list[str] = []
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    r = _run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "cleancut-test", str(where)])
    kind = "tmpfs"
    image = where.with_name("fs.img")
    if r.returncode != 0:
        reasons.append(f"tmpfs: {r.stderr.strip()}")
        kind = "ext2 on a loop device"
        with open(image, "wb") as f:
            f.truncate(size_mb * 2**20)
        mk = _run(["mkfs.ext2", "-q", "-F", "-m", "0", str(image)])
        r = mk if mk.returncode != 0 else _run(["mount", "-o", "loop", str(image), str(where)])
        if r.returncode != 0:
            reasons.append(f"loop ext2: {r.stderr.strip()}")
            pytest.skip("cannot mount a small file system here: " + "; ".join(reasons))
    try:
        yield kind
    finally:
        _run(["umount", "-l", str(where)])
        image.unlink(missing_ok=True)


def test_disk_full_is_a_clear_error_then_the_batch_resumes(model_settings: Settings, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    photos = make_photos(inputs)
    before = {p: _sha(p) for p in photos}
    mount = tmp_path / "small"
    with small_filesystem(mount, 4):
        out = mount / "out"
        out.mkdir()
        # Fill it to leave room for about two cut-outs (each 0.2-0.6 MB as PNG).
        filler = mount / "filler"
        free = shutil.disk_usage(mount).free
        with open(filler, "wb") as f:
            try:
                f.write(b"\0" * max(free - 1_000_000, 0))
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
        first = subprocess.run(
            [*CLI, str(inputs), "-o", str(out)], env=_env(), capture_output=True, text=True, timeout=600
        )
        assert first.returncode == 1, first.stderr
        assert "Traceback" not in first.stderr
        written = [p for p in all_files(out)]
        missing = [p for p in photos if expected_output(inputs, out, p) not in written]
        assert missing, "the file system never filled up"
        errors = [ln for ln in first.stderr.splitlines() if ln.startswith("error:")]
        assert len(errors) == len(missing), first.stderr  # one line per file that did not fit
        for line, photo in zip(errors, missing, strict=True):
            assert "no space left" in line and str(photo) in line, line
        assert all(not p.name.startswith(".") for p in written), "a temporary file was left behind"
        for p in written:  # whatever was written is complete
            photo = next(x for x in photos if expected_output(inputs, out, x) == p)
            assert_valid_cutout(p, photo)
        kept = {p: p.stat().st_ino for p in written}

        filler.unlink()  # free the space, then resume
        second = subprocess.run(
            [*CLI, str(inputs), "-o", str(out)], env=_env(), capture_output=True, text=True, timeout=600
        )
        assert second.returncode == 0, second.stderr
        assert f"{len(missing)} written, {len(written)} skipped, 0 failed" in second.stderr
        assert all_files(out) == sorted(expected_output(inputs, out, p) for p in photos)
        for photo in photos:
            assert_valid_cutout(expected_output(inputs, out, photo), photo)
        assert {p: p.stat().st_ino for p in written} == kept
    assert {p: _sha(p) for p in photos} == before


# --------------------------------------------------------------------------- server disconnects


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get_json(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def _raw_request(
    port: int, body: bytes, *, path: str = "/api/remove", declared: int | None = None
) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: image/jpeg\r\n"
        f"Content-Length: {declared if declared is not None else len(body)}\r\n\r\n"
    ).encode()
    s.sendall(head + body)
    return s


def _reset(s: socket.socket) -> None:
    """Hang up abruptly (RST), as a crashed client or a dropped network does."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()


@pytest.fixture
def live_server(
    model_settings: Settings, tmp_path: Path
) -> Iterator[tuple[int, subprocess.Popen[bytes], Path]]:
    port = _free_port()
    log = tmp_path / "server.log"
    with open(log, "wb") as logf:
        proc = subprocess.Popen(
            [
                *CLI,
                "serve",
                "--port",
                str(port),
                "--no-browser",
                "--queue-size",
                "2",
                "--timeout",
                "60",
                "--log-level",
                "info",
            ],
            env=_env(),
            stdout=logf,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            with contextlib.suppress(OSError):
                if _get_json(f"http://127.0.0.1:{port}/readyz")[0] == 200:
                    break
            time.sleep(0.2)
        else:
            pytest.fail("the server did not become ready: " + log.read_text()[-2000:])
        yield port, proc, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _photo() -> bytes:
    with Image.open(EXAMPLES / "astronaut.jpg") as img:
        buf = io.BytesIO()
        img.resize((256, 256)).save(buf, "JPEG", quality=90)
        return buf.getvalue()


def _normal_request(port: int, photo: bytes) -> None:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/remove", data=photo, headers={"Content-Type": "image/jpeg"}
    )
    with urllib.request.urlopen(req, timeout=120) as r:
        assert r.status == 200
        img = Image.open(io.BytesIO(r.read()))
        assert img.mode == "RGBA" and img.size == (256, 256)


def _idle(port: int, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    queue: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status, body = _get_json(f"http://127.0.0.1:{port}/readyz")
        queue = body.get("queue", {})
        if status == 200 and queue.get("admitted") == 0 and queue.get("running") == 0:
            return queue
        time.sleep(0.2)
    raise AssertionError(f"slots still held after the clients left: {queue}")


def _storm(port: int, photo: bytes, large: bytes, n: int) -> None:
    """``n`` clients that hang up: two in three mid-upload, one in three mid-response (each of
    those costs the server a real inference, so they come one after another)."""
    for i in range(n):
        if i % 3 != 2:  # mid-upload: a third of the declared body, then gone
            s = _raw_request(port, photo[: len(photo) // 3], declared=len(photo))
            time.sleep(0.05)
            _reset(s) if i % 2 == 0 else s.close()
        else:  # mid-response: a 1 MB raw answer, of which a few bytes are read
            s = _raw_request(port, large, path="/api/remove?format=rgba8")
            with contextlib.suppress(OSError):
                s.recv(100)
            _reset(s) if i % 2 == 0 else s.close()


def test_clients_that_hang_up_leak_no_slot_memory_or_thread(
    live_server: tuple[int, subprocess.Popen[bytes], Path],
) -> None:
    port, proc, log = live_server
    server = psutil.Process(proc.pid)
    photo = _photo()
    large = (EXAMPLES / "astronaut.jpg").read_bytes()  # 512×512: 1 MB as rgba8
    for _ in range(2):  # warm up: allocator pools, thread pools, first-request caches
        _normal_request(port, photo)
    _storm(port, photo, large, 6)
    _idle(port)
    base_rss, base_threads = server.memory_info().rss, server.num_threads()

    _storm(port, photo, large, 30)
    queue = _idle(port)
    _normal_request(port, photo)
    after_rss, after_threads = server.memory_info().rss, server.num_threads()

    assert queue["admitted"] == 0 and queue["running"] == 0
    # 30 leaked requests would hold 30 uploads, decoded images and 12 MB network inputs
    assert after_rss - base_rss < 80 * 2**20, (base_rss / 2**20, after_rss / 2**20)
    assert after_threads <= base_threads + 2, (base_threads, after_threads)
    text = log.read_text()
    assert "Traceback" not in text and "unhandled error" not in text, text[-3000:]
    assert proc.poll() is None
