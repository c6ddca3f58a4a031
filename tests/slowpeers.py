"""Slow peers over real sockets on 127.0.0.1, for the server and URL-fetch time-limit tests.

* :class:`TrickleSource`: an HTTP *source* that sends its status line and headers at once,
  then its body one byte at a time (what a hostile ``url=`` target does).
* :class:`TrickleUpload`: an HTTP *client* that sends its request headers, then its body one
  byte at a time (a slow or hostile uploader), and records the answer when one comes.
* :func:`live_server`: the real application under uvicorn (what ``cleancut serve`` runs) in
  a thread, on a free port.

Every loop here is bounded (a byte limit, a deadline), so a server or fetcher that never
gives up makes a test fail, not hang.
"""

from __future__ import annotations

import http.client
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = ["Live", "TrickleSource", "TrickleUpload", "free_port", "live_server", "post"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TrickleSource:
    """A raw-socket HTTP server that answers every request with ``head`` (status line and
    headers), then one body byte every ``interval`` seconds, at most ``limit`` bytes."""

    def __init__(self, head: bytes, interval: float = 0.2, limit: int = 40) -> None:
        self.head = head
        self.interval = interval
        self.limit = limit
        self.stop = threading.Event()
        self.connections = 0
        self.open = 0  # connections whose trickle has not ended yet
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port = int(self.listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}/slow.jpg"
        self.thread = threading.Thread(target=self._accept, name="trickle-source", daemon=True)

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
                self.open += 1
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        try:
            with conn:
                conn.settimeout(5)
                request = b""
                while b"\r\n\r\n" not in request and len(request) < 65536:
                    part = conn.recv(4096)
                    if not part:
                        return
                    request += part
                conn.sendall(self.head)
                for _ in range(self.limit):
                    if self.stop.wait(self.interval):
                        return
                    conn.sendall(b"\xff")
        except OSError:  # the fetcher hung up: its deadline did its job
            pass
        finally:
            with self.lock:
                self.open -= 1

    def __enter__(self) -> TrickleSource:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)
        self.listener.close()


class TrickleUpload:
    """``POST path`` with ``Content-Length: size``, then the body ``chunk`` bytes every
    ``interval`` s (at most ``limit`` times), until the server answers. ``status`` is the
    answer's status (``None`` while none came), ``answered_after`` its time since the start."""

    def __init__(
        self,
        port: int,
        path: str = "/api/remove",
        size: int = 100_000,
        interval: float = 0.2,
        limit: int = 100,
        content_type: str = "image/jpeg",
        chunk: int = 1,
    ) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.started = time.monotonic()
        self.sent = 0
        self.status: int | None = None
        self.answer = b""
        self.answered_after: float | None = None
        self.closed_by_server = False
        self.stop = threading.Event()
        self.sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {size}\r\n\r\n".encode()
        )
        self.interval = interval
        self.limit = limit
        self.chunk = chunk
        self.thread = threading.Thread(target=self._run, name="trickle-upload", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for _ in range(self.limit):
                readable, _, _ = select.select([self.sock], [], [], self.interval)
                if readable:
                    self._read_answer()
                    return
                if self.stop.is_set():
                    return
                self.sock.sendall(b"\xff" * self.chunk)
                self.sent += self.chunk
        except OSError:  # reset by the server after its answer
            self.closed_by_server = True

    def _read_answer(self) -> None:
        self.answered_after = time.monotonic() - self.started
        self.sock.settimeout(5)
        data = b""
        while True:
            try:
                part = self.sock.recv(65536)
            except OSError:
                break
            if not part:
                self.closed_by_server = True
                break
            data += part
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep and b"content-length:" in head.lower():
                length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
                if len(body) >= length:
                    # Complete: does the server close the connection (it should, the body
                    # was never finished)?
                    self.sock.settimeout(2)
                    try:
                        self.closed_by_server = self.sock.recv(1) == b""
                    except OSError:
                        self.closed_by_server = True
                    break
        self.answer = data
        self.status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else None

    def wait(self, timeout: float) -> int | None:
        self.thread.join(timeout)
        return self.status

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@dataclass
class Live:
    port: int
    app: Any
    server: Any

    @property
    def state(self) -> Any:
        return self.app.state.cleancut

    def get_json(self, path: str) -> Any:
        import json

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()


def post(
    port: int, body: bytes, content_type: str = "image/png", path: str = "/api/remove", timeout: float = 60
) -> tuple[int, dict[str, str], bytes]:
    """One ordinary ``POST`` over a fresh connection: status, headers (lower-case), body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": content_type})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@contextmanager
def live_server(app: Any) -> Iterator[Live]:
    """Serve ``app`` with uvicorn on 127.0.0.1 in a thread until the block ends."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="cleancut-live-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield Live(port, app, server)
    finally:
        server.should_exit = True
        thread.join(30)
