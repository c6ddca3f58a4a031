"""Single-file model downloads (cleancut.models.fetch) against real HTTP(S) servers on 127.0.0.1.

:class:`FileServer` serves real bytes with ``Range``/``If-Range`` support, records every
request (its range, status and how many body bytes went out) and injects faults: a cut
connection, a stall, HTTP errors, a 200 or 416 answer to a range, a redirect. The HTTPS
cases use a self-signed certificate made here with ``openssl`` and trusted through
``SSL_CERT_FILE`` (OpenSSL's own variable): the code keeps full verification.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import os
import shutil
import signal
import ssl
import subprocess
import sys
import textwrap
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock

import cleancut
from cleancut import (
    CancelledError,
    ChecksumMismatchError,
    DownloadError,
    InvalidOptionError,
    ModelNotFoundError,
    Settings,
)
from cleancut.cli.progress import FetchProgress
from cleancut.io.atomic import atomic_writer, replace_into
from cleancut.models.fetch import fetch_file, fetch_url_model, url_model_path
from conftest import model_settings_for
from test_download import closed_port_url, recorder

#: Real bytes, not a pattern a bug could reproduce by accident: 3 MiB of seeded noise.
BODY = hashlib.sha256(b"seed").digest() * (3 * 2**20 // 32)
SHA = hashlib.sha256(BODY).hexdigest()
MD5 = hashlib.md5(BODY).hexdigest()
OTHER = bytes(b ^ 0x5A for b in BODY)
OTHER_SHA = hashlib.sha256(OTHER).hexdigest()
KEY = "fetch:/models/test/model.onnx"


@dataclasses.dataclass
class Req:
    name: str
    range_start: int | None
    if_range: str | None
    status: int = 0
    sent: int = 0


class FileServer:
    """A ``ThreadingHTTPServer`` (optionally TLS) for ``files``, with ``Range`` support.

    ``fault(name, kind, ...)`` queues one fault per coming request of ``name``: ``("cut", at)``
    sends the body up to absolute byte ``at`` then closes; ``("stall", at)`` sends up to ``at``
    then waits until :meth:`close`; ``("500",)``, ``("404",)``; ``("ignore-range",)`` answers
    200 with the whole file; ``("416",)``. ``always[name]`` applies to every request;
    ``redirects[name]`` answers 302 to that location; ``rate`` (bytes/s) slows bodies down.
    """

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.files: dict[str, bytes] = {}
        self.redirects: dict[str, str] = {}
        self.faults: dict[str, deque[tuple[Any, ...]]] = {}
        self.always: dict[str, tuple[Any, ...]] = {}
        self.requests: list[Req] = []
        self.rate = 0.0
        self.lock = threading.Lock()
        self.released = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server._serve(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.base = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def url(self, name: str) -> str:
        return self.base + name

    def fault(self, name: str, *kind: Any) -> None:
        self.faults.setdefault(name, deque()).append(tuple(kind))

    def gets(self, name: str) -> list[Req]:
        with self.lock:
            return [r for r in self.requests if r.name == name]

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        name = urllib.parse.unquote(urllib.parse.urlsplit(h.path).path).lstrip("/")
        rng, if_range = h.headers.get("Range"), h.headers.get("If-Range")
        start = int(rng.removeprefix("bytes=").rstrip("-")) if rng else None
        req = Req(name, start, if_range)
        with self.lock:
            self.requests.append(req)
            queue = self.faults.get(name)
            fault = queue.popleft() if queue else self.always.get(name, ())
        kind = fault[0] if fault else None
        try:
            if name in self.redirects:
                req.status = 302
                h.send_response(302)
                h.send_header("Location", self.redirects[name])
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
            body = self.files.get(name)
            if body is None or kind in ("404", "500"):
                req.status = 404 if body is None else int(str(kind))
                h.send_error(req.status)
                return
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            if start is not None and (if_range is not None and if_range != etag):
                start = None  # the file changed since the partial: all of it
            if kind == "416" or (start is not None and start >= len(body)):
                req.status = 416
                h.send_response(416)
                h.send_header("Content-Range", f"bytes */{len(body)}")
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
            if start is not None and kind != "ignore-range":
                req.status = 206
                h.send_response(206)
                h.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                start = 0
                req.status = 200
                h.send_response(200)
            h.send_header("Content-Type", "application/octet-stream")
            h.send_header("Content-Length", str(len(body) - start))
            h.send_header("ETag", etag)
            h.end_headers()
            stop = len(body)
            if kind in ("cut", "stall"):
                stop = max(start, min(stop, int(fault[1])))
            pos = start
            while pos < stop:
                piece = body[pos : min(stop, pos + 65536)]
                h.wfile.write(piece)
                pos += len(piece)
                req.sent += len(piece)
                if self.rate:
                    time.sleep(len(piece) / self.rate)
            h.wfile.flush()
            if kind == "stall":
                self.released.wait(30)
            if kind in ("cut", "stall"):
                h.close_connection = True
        except OSError:  # the client went away (cancelled, killed)
            pass

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def server() -> Iterator[FileServer]:
    with FileServer() as s:
        s.files["model.onnx"] = BODY
        yield s


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (and its key), made with ``openssl req``."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the HTTPS cases make their certificate with the openssl command")
    folder = tmp_path_factory.mktemp("tls")
    crt, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(crt)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return crt, key


@pytest.fixture
def tls_server(cert: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[FileServer]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*cert)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert[0]))  # trusted the standard way, verification kept
    with FileServer(tls=ctx) as s:
        s.files["model.onnx"] = BODY
        yield s


def settings_for(cache: Path, **overrides: Any) -> Settings:
    overrides.setdefault("download_timeout", 5.0)
    return model_settings_for(cache, **overrides)


def target_in(settings: Settings) -> Path:
    return settings.models_dir / "test" / "model.onnx"


def fetch(server: FileServer, settings: Settings, **kw: Any) -> Path:
    kw.setdefault("sha256", SHA)
    kw.setdefault("size", len(BODY))
    return fetch_file(
        server.url("model.onnx"), target_in(settings), settings=settings, progress_key=KEY, **kw
    )


def leftovers(folder: Path) -> list[str]:
    """Files next to the model other than the model itself and its lock file."""
    return sorted(p.name for p in folder.iterdir() if p.name not in ("model.onnx", ".model.onnx.lock"))


def assert_monotonic(events: list[tuple[str, int, int]], total: int) -> None:
    assert events and {k for k, _, _ in events} == {KEY}
    assert {t for _, _, t in events} == {total}
    currents = [c for _, c, _ in events]
    assert currents[0] == 0 and currents[-1] == total
    assert all(b >= a for a, b in itertools.pairwise(currents)), "progress went backwards"


# --------------------------------------------------------------------------- the plain case


def test_fetches_and_verifies_then_answers_from_the_cache(server: FileServer, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    events, progress = recorder()
    path = fetch(server, settings, md5=MD5, progress=progress)
    assert path == target_in(settings) and path.read_bytes() == BODY
    [req] = server.gets("model.onnx")
    assert req.range_start is None and req.status == 200 and req.sent == len(BODY)
    assert leftovers(path.parent) == [], "partial or temp files left next to the model"
    assert_monotonic(events, len(BODY))
    assert fetch(server, settings) == path
    assert len(server.gets("model.onnx")) == 1, "a verified file was fetched again"


def test_progress_reaches_the_cli_byte_bar(
    server: FileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The events drive cli.progress.FetchProgress as the chunked download's do (plain
    stderr: one line naming the file and its size)."""
    fetch(server, settings_for(tmp_path), progress=FetchProgress(quiet=False))
    assert "fetching model.onnx (3.0 MiB)" in capsys.readouterr().err


def test_size_unknown_reports_the_servers_length(server: FileServer, tmp_path: Path) -> None:
    events, progress = recorder()
    fetch(server, settings_for(tmp_path), size=None, progress=progress)
    assert_monotonic(events, len(BODY))


# --------------------------------------------------------------------------- wrong bytes


def test_wrong_checksum_installs_nothing(server: FileServer, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    url = server.url("model.onnx")
    with pytest.raises(ChecksumMismatchError) as info:
        fetch(server, settings, sha256=OTHER_SHA)
    msg = str(info.value)
    assert OTHER_SHA in msg and SHA in msg and url in msg
    target = target_in(settings)
    assert not target.exists()
    assert leftovers(target.parent) == [], "the partial of a wrong file was kept"


def test_wrong_md5_installs_nothing(server: FileServer, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    with pytest.raises(ChecksumMismatchError, match=f"MD5 {MD5}, expected 0{{32}}"):
        fetch(server, settings, md5="0" * 32)
    assert not target_in(settings).exists() and leftovers(target_in(settings).parent) == []


def test_a_server_holding_another_size_is_refused_before_the_body(server: FileServer, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    with pytest.raises(ChecksumMismatchError, match=f"is {len(BODY)} bytes, expected {len(BODY) + 1}"):
        fetch(server, settings, size=len(BODY) + 1)
    assert not target_in(settings).exists() and leftovers(target_in(settings).parent) == []


def test_bad_checksum_arguments(server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(InvalidOptionError, match="64 hexadecimal"):
        fetch(server, settings_for(tmp_path), sha256="abc")
    with pytest.raises(DownloadError, match="http://, https:// or file://"):
        fetch_file("ftp://x/y", tmp_path / "y", sha256=SHA, settings=settings_for(tmp_path), progress_key=KEY)
    assert server.requests == []


# --------------------------------------------------------------------------- resume


def test_cut_connection_resumes_with_range(server: FileServer, tmp_path: Path) -> None:
    half = len(BODY) // 2
    server.fault("model.onnx", "cut", half)
    settings = settings_for(tmp_path)
    events, progress = recorder()
    path = fetch(server, settings, progress=progress)
    first, second = server.gets("model.onnx")
    assert (first.range_start, first.status, first.sent) == (None, 200, half)
    assert second.range_start == half and second.status == 206
    assert second.if_range is not None  # the ETag of the first answer
    assert first.sent + second.sent == len(BODY)
    assert path.read_bytes() == BODY
    assert leftovers(path.parent) == []
    assert_monotonic(events, len(BODY))


def test_a_later_call_resumes_the_kept_partial(server: FileServer, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    target = target_in(settings)
    part = target.with_name(".model.onnx.part")
    with pytest.raises(CancelledError, match="kept"):
        fetch(server, settings, cancel=lambda: part.exists() and part.stat().st_size >= 2**20)
    kept = part.stat().st_size
    assert 2**20 <= kept < len(BODY) and not target.exists()
    path = fetch(server, settings)
    last = server.gets("model.onnx")[-1]
    assert last.range_start == kept and last.status == 206 and last.sent == len(BODY) - kept
    assert path.read_bytes() == BODY and leftovers(target.parent) == []


def plant_partial(settings: Settings, data: bytes) -> Path:
    part = target_in(settings).with_name(".model.onnx.part")
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(data)
    return part


def test_a_200_answer_to_a_range_restarts_from_zero(server: FileServer, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    plant_partial(settings, BODY[:1000])
    server.fault("model.onnx", "ignore-range")
    path = fetch(server, settings)
    [req] = server.gets("model.onnx")
    assert req.range_start == 1000 and req.status == 200
    assert path.read_bytes() == BODY


def test_a_416_answer_restarts_from_zero(server: FileServer, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    plant_partial(settings, BODY[:1000])
    server.fault("model.onnx", "416")
    path = fetch(server, settings)
    first, second = server.gets("model.onnx")
    assert (first.range_start, first.status) == (1000, 416)
    assert (second.range_start, second.status) == (None, 200)
    assert path.read_bytes() == BODY


def test_a_416_restart_is_not_counted_as_a_failed_attempt(server: FileServer, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, download_retries=1)
    plant_partial(settings, BODY[:1000])
    server.fault("model.onnx", "416")
    assert fetch(server, settings).read_bytes() == BODY


def test_a_partial_longer_than_the_file_restarts(server: FileServer, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    plant_partial(settings, BODY + b"extra")
    path = fetch(server, settings)
    [req] = server.gets("model.onnx")
    assert req.range_start is None and path.read_bytes() == BODY


def test_a_whole_kept_partial_is_installed_without_a_request(server: FileServer, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    plant_partial(settings, BODY)
    assert fetch(server, settings).read_bytes() == BODY
    assert server.requests == []


def test_a_resumed_partial_of_another_version_is_fetched_again_from_zero(
    server: FileServer, tmp_path: Path
) -> None:
    """Kept bytes of an older file (no If-Range validator to catch it) fail the SHA-256 once
    joined; the call drops them and fetches the whole file once more."""
    settings = settings_for(tmp_path)
    plant_partial(settings, OTHER[:1000])
    path = fetch(server, settings)
    first, second = server.gets("model.onnx")
    assert first.range_start == 1000 and second.range_start is None
    assert path.read_bytes() == BODY


def test_if_range_restarts_a_file_changed_on_the_server(server: FileServer, tmp_path: Path) -> None:
    """The partial's ETag goes back as If-Range: the server sends the new file whole."""
    settings = settings_for(tmp_path)
    server.files["model.onnx"] = OTHER
    part = target_in(settings).with_name(".model.onnx.part")
    with pytest.raises(CancelledError):
        fetch(server, settings, sha256=OTHER_SHA, cancel=lambda: part.exists() and part.stat().st_size > 0)
    assert 0 < part.stat().st_size < len(OTHER)
    server.files["model.onnx"] = BODY
    path = fetch(server, settings)
    last = server.gets("model.onnx")[-1]
    assert last.range_start is not None and last.if_range is not None and last.status == 200
    assert path.read_bytes() == BODY


# --------------------------------------------------------------------------- errors


def test_http_404_is_a_download_error_without_retries(server: FileServer, tmp_path: Path) -> None:
    url = server.url("missing.onnx")
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        fetch_file(url, tmp_path / "m.onnx", sha256=SHA, settings=settings_for(tmp_path), progress_key=KEY)
    assert url in str(info.value)
    assert len(server.gets("missing.onnx")) == 1


def test_http_500_is_retried_then_a_download_error(server: FileServer, tmp_path: Path) -> None:
    server.always["model.onnx"] = ("500",)
    settings = settings_for(tmp_path, download_retries=3)
    with pytest.raises(DownloadError, match=r"after 3 attempt.*HTTP 500") as info:
        fetch(server, settings)
    assert server.url("model.onnx") in str(info.value)
    assert len(server.gets("model.onnx")) == 3
    assert not target_in(settings).exists()


def test_unreachable_host_is_a_download_error(tmp_path: Path) -> None:
    url = closed_port_url() + "model.onnx"
    settings = settings_for(tmp_path, download_retries=2)
    with pytest.raises(DownloadError, match="refused") as info:
        fetch_file(url, tmp_path / "m.onnx", sha256=SHA, settings=settings, progress_key=KEY)
    assert url in str(info.value)


def test_a_stalled_server_times_out(server: FileServer, tmp_path: Path) -> None:
    server.always["model.onnx"] = ("stall", 1000)
    settings = settings_for(tmp_path, download_timeout=0.5, download_retries=2)
    t0 = time.perf_counter()
    with pytest.raises(DownloadError, match=r"sent nothing for 0.5 s") as info:
        fetch(server, settings)
    assert time.perf_counter() - t0 < 5
    assert "1000 bytes are kept" in str(info.value)
    # the first stall made progress (1000 bytes), so it is not counted: two more without any
    assert [r.range_start for r in server.gets("model.onnx")] == [None, 1000, 1000]


# --------------------------------------------------------------------------- offline


def test_cached_then_offline(server: FileServer, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    path = fetch(server, settings)
    server.close()
    assert fetch(server, dataclasses.replace(settings, offline=True)) == path


def test_offline_and_missing_says_where_to_put_it(server: FileServer, tmp_path: Path) -> None:
    settings = dataclasses.replace(settings_for(tmp_path), offline=True)
    with pytest.raises(ModelNotFoundError) as info:
        fetch(server, settings)
    msg = str(info.value)
    assert str(target_in(settings)) in msg and SHA in msg and "offline" in msg
    assert server.requests == []


def test_md5_only_file_put_in_place_by_hand_is_adopted_offline(server: FileServer, tmp_path: Path) -> None:
    """A publisher that gives only an MD5: a copied-in file is checked against it, its SHA-256
    recorded, and later checks use the record."""
    settings = dataclasses.replace(settings_for(tmp_path), offline=True)
    target = target_in(settings)
    target.parent.mkdir(parents=True)
    target.write_bytes(BODY)
    assert fetch(server, settings, sha256=None, md5=MD5) == target
    assert json.loads(target.with_name("model.onnx.json").read_text())["sha256"] == SHA
    target.write_bytes(OTHER)
    with pytest.raises(ModelNotFoundError, match="does not match"):
        fetch(server, settings, sha256=None, md5=MD5)


# --------------------------------------------------------------------------- one per machine


def test_a_process_waiting_for_the_lock_rechecks_the_target(server: FileServer, tmp_path: Path) -> None:
    """While another holder has the lock the call waits; once the holder installed the file
    it returns it without a request of its own."""
    settings = settings_for(tmp_path)
    target = target_in(settings)
    target.parent.mkdir(parents=True)
    holder = FileLock(str(target.with_name(".model.onnx.lock")))
    holder.acquire()
    result: list[Path | BaseException] = []
    thread = threading.Thread(target=lambda: result.append(fetch(server, settings)))
    thread.start()
    time.sleep(0.8)
    assert thread.is_alive() and not result, "the call did not wait for the lock"
    target.write_bytes(BODY)
    holder.release()
    thread.join(10)
    assert result == [target] and server.requests == []


def test_cancel_while_waiting_for_the_lock(server: FileServer, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    target = target_in(settings)
    target.parent.mkdir(parents=True)
    with FileLock(str(target.with_name(".model.onnx.lock"))):
        deadline = time.monotonic() + 0.6
        with pytest.raises(CancelledError, match="waiting for another process"):
            fetch(server, settings, cancel=lambda: time.monotonic() > deadline)
    assert server.requests == []


def test_two_threads_starting_together_download_once(server: FileServer, tmp_path: Path) -> None:
    """Threads of one process (server workers) are serialised by the same lock."""
    server.rate = 6 * 2**20
    settings = settings_for(tmp_path)
    barrier = threading.Barrier(3)
    results: list[Path] = []

    def run() -> None:
        barrier.wait()
        results.append(fetch(server, settings))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [target_in(settings)] * 3
    assert len(server.gets("model.onnx")) == 1


CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from cleancut import Settings
    from cleancut.models.fetch import fetch_file
    url, cache, sha, size, ready, go = sys.argv[1:7]
    Path(ready).touch()
    while go != "-" and not Path(go).exists():
        time.sleep(0.01)
    settings = Settings.from_env(environ={}, cache_dir=cache)
    path = fetch_file(url, Path(cache) / "models" / "test" / "model.onnx", sha256=sha, size=int(size),
                      settings=settings, progress_key="fetch:/models/test/model.onnx")
    print(path)
    """
)


def child(server: FileServer, cache: Path, ready: Path, go: str) -> subprocess.Popen[str]:
    # The child imports the very cleancut this process imported.
    here = str(Path(cleancut.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])}
    args = [server.url("model.onnx"), str(cache), SHA, str(len(BODY)), str(ready), go]
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_two_processes_starting_together_download_once(server: FileServer, tmp_path: Path) -> None:
    server.rate = 3 * 2**20  # a one-second body: the second process surely asks meanwhile
    go = tmp_path / "go"
    procs = [child(server, tmp_path / "cache", tmp_path / f"ready{i}", str(go)) for i in range(2)]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready{i}").exists() for i in range(2)):
        assert time.monotonic() < deadline, "the child processes did not start"
        time.sleep(0.02)
    go.touch()  # both call fetch_file within milliseconds of each other
    outs = [p.communicate(timeout=60) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert Path(out.strip()) == tmp_path / "cache" / "models" / "test" / "model.onnx"
    reqs = server.gets("model.onnx")
    assert len(reqs) == 1 and reqs[0].sent == len(BODY), f"expected one GET, got {reqs}"
    assert (tmp_path / "cache" / "models" / "test" / "model.onnx").read_bytes() == BODY


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_killed_lock_holder_does_not_block_the_next(server: FileServer, tmp_path: Path) -> None:
    """kill -9 of a process mid-download (holding the lock): the kernel drops its OS lock;
    the next call takes it at once and resumes the partial the killed one left."""
    server.fault("model.onnx", "stall", len(BODY) // 3)
    cache = tmp_path / "cache"
    proc = child(server, cache, tmp_path / "ready", "-")
    deadline = time.monotonic() + 60
    while not (server.gets("model.onnx") and server.gets("model.onnx")[0].sent >= len(BODY) // 3):
        assert time.monotonic() < deadline and proc.poll() is None, "the child never got its bytes"
        time.sleep(0.02)
    part = cache / "models" / "test" / ".model.onnx.part"
    while part.stat().st_size < len(BODY) // 3 and time.monotonic() < deadline:
        time.sleep(0.02)  # the child has written what it received
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)  # reaps it and closes its pipes
    kept = part.stat().st_size
    settings = settings_for(cache)
    give_up = time.monotonic() + 15  # a lock left held would block: cancelled, the test fails
    path = fetch(server, settings, cancel=lambda: time.monotonic() > give_up)
    assert path.read_bytes() == BODY
    last = server.gets("model.onnx")[-1]
    assert last.range_start == kept == len(BODY) // 3 and last.status == 206


# --------------------------------------------------------------------------- a user's own URL


def test_url_model_path_layout(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    url = "https://host.example/a/b/My%20Model.onnx?x=1"
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    assert url_model_path(url, settings) == settings.models_dir / "url" / digest / "My_Model.onnx"
    assert url_model_path("https://host.example/", settings).name == "model.onnx"
    assert url_model_path("https://host.example/..", settings).name == "model.onnx"


def test_http_url_without_checksum_is_refused(server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(InvalidOptionError, match="--model-sha256"):
        fetch_url_model(server.url("model.onnx"), sha256=None, settings=settings_for(tmp_path))
    with pytest.raises(InvalidOptionError, match="--model-sha256"):
        fetch(server, settings_for(tmp_path), sha256=None)
    with pytest.raises(InvalidOptionError, match="local file"):
        fetch_url_model("file:///tmp/x.onnx", sha256=None, settings=settings_for(tmp_path))
    assert server.requests == []


def test_http_url_with_checksum(server: FileServer, tmp_path: Path) -> None:
    """Pinned: verified against it; a different --model-sha256 later fetches it again."""
    settings = settings_for(tmp_path)
    url = server.url("model.onnx")
    path = fetch_url_model(url, sha256=SHA.upper(), settings=settings)
    assert path == url_model_path(url, settings) and path.read_bytes() == BODY
    assert fetch_url_model(url, sha256=SHA, settings=settings) == path
    assert len(server.gets("model.onnx")) == 1
    server.files["model.onnx"] = OTHER
    assert fetch_url_model(url, sha256=OTHER_SHA, settings=settings).read_bytes() == OTHER
    assert len(server.gets("model.onnx")) == 2


def test_https_url_without_checksum_is_recorded_and_reused(
    tls_server: FileServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(tmp_path)
    url = tls_server.url("model.onnx")
    with caplog.at_level(logging.WARNING, logger="cleancut.models.fetch"):
        path = fetch_url_model(url, sha256=None, settings=settings)
    assert path.read_bytes() == BODY
    assert any(
        f"recorded SHA-256 {SHA}" in r.message and "--model-sha256" in r.message for r in caplog.records
    )
    record = json.loads(path.with_name(path.name + ".json").read_text())
    assert (record["url"], record["sha256"], record["size"]) == (url, SHA, len(BODY)) and record["fetched"]

    # Changed on the server: the cached, verified file is used, not the new one.
    tls_server.files["model.onnx"] = OTHER
    caplog.clear()
    assert fetch_url_model(url, sha256=None, settings=settings).read_bytes() == BODY
    assert len(tls_server.gets("model.onnx")) == 1 and not caplog.records
    assert fetch_url_model(url, sha256=None, settings=dataclasses.replace(settings, offline=True)) == path

    # Cache lost: fetched again, but the changed file does not match the record.
    path.unlink()
    with pytest.raises(ChecksumMismatchError, match="not the one recorded on first use"):
        fetch_url_model(url, sha256=None, settings=settings)
    assert not path.exists()

    # force: the new file is taken and recorded.
    with caplog.at_level(logging.WARNING, logger="cleancut.models.fetch"):
        assert fetch_url_model(url, sha256=None, settings=settings, force=True).read_bytes() == OTHER
    assert json.loads(path.with_name(path.name + ".json").read_text())["sha256"] == OTHER_SHA
    assert any("changed" in r.message for r in caplog.records)


def test_url_model_offline_must_be_cached(tls_server: FileServer, tmp_path: Path) -> None:
    settings = dataclasses.replace(settings_for(tmp_path), offline=True)
    with pytest.raises(ModelNotFoundError, match="offline"):
        fetch_url_model(tls_server.url("model.onnx"), sha256=None, settings=settings)
    assert tls_server.requests == []


def test_an_untrusted_certificate_is_refused(
    tls_server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE")
    with pytest.raises(DownloadError, match=r"not trusted.*SSL_CERT_FILE"):
        fetch_url_model(tls_server.url("model.onnx"), sha256=None, settings=settings_for(tmp_path))


def test_unpinned_redirect_to_http_is_refused(
    tls_server: FileServer, server: FileServer, tmp_path: Path
) -> None:
    tls_server.redirects["model.onnx"] = server.url("model.onnx")
    settings = settings_for(tmp_path)
    with pytest.raises(DownloadError, match=r"redirected to http://.*--model-sha256"):
        fetch_url_model(tls_server.url("model.onnx"), sha256=None, settings=settings)
    assert server.requests == []
    # pinned, the same redirect is followed: the checksum guards the bytes
    assert fetch_url_model(tls_server.url("model.onnx"), sha256=SHA, settings=settings).read_bytes() == BODY
    assert len(server.gets("model.onnx")) == 1


# --------------------------------------------------------------------------- io.atomic helpers


def test_atomic_writer_moves_into_place_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.bin"
    with atomic_writer(target) as f:
        f.write(b"new")
        assert not target.exists()
    assert target.read_bytes() == b"new"
    with pytest.raises(RuntimeError), atomic_writer(target) as f:
        f.write(b"broken")
        raise RuntimeError("a failed check")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.bin"]


def test_replace_into(tmp_path: Path) -> None:
    src, dest = tmp_path / ".f.part", tmp_path / "f"
    src.write_bytes(b"done")
    dest.write_bytes(b"old")
    assert replace_into(src, dest) == dest
    assert dest.read_bytes() == b"done" and not src.exists()
