"""A test HTTP server on 127.0.0.1 for model chunk folders (``mirror_dir``): it records
every request and can inject faults. Shared by the download and fault tests."""

from __future__ import annotations

import socket
import struct
import threading
import time
import urllib.parse
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def flip(data: bytes, at: int | None = None) -> bytes:
    i = len(data) // 2 if at is None else at
    return data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :]


class Mirror:
    """An HTTP server for ``root`` that records requests and injects faults.

    ``fault(name, *kinds)`` queues one fault per coming request of ``name`` (then it is
    served normally); ``always[name]`` applies to every request; ``bodies[name]`` replaces
    (or adds) a file. Fault kinds: ``"500"``, ``"404"``, ``"flip"`` (one byte inverted),
    ``"half"`` (full Content-Length, half the body, clean close), ``"reset"`` (half the body,
    then a TCP reset), ``"garbage"`` (no HTTP status line at all).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = threading.Lock()
        self.requests: list[str] = []
        self.served: list[str] = []  # names whose intact body was sent in full
        self.inflight = 0
        self.max_inflight = 0
        self.delay = 0.0  # seconds each chunk request waits before answering
        self.faults: dict[str, deque[str]] = {}
        self.always: dict[str, str] = {}
        self.bodies: dict[str, bytes] = {}
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                mirror._serve(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, args=(0.05,), name="mirror", daemon=True
        )

    def fault(self, name: str, *kinds: str) -> None:
        self.faults.setdefault(name, deque()).extend(kinds)

    def count(self, name: str) -> int:
        with self.lock:
            return self.requests.count(name)

    def chunk_requests(self) -> list[str]:
        with self.lock:
            return [r for r in self.requests if r != "resources.json"]

    def served_chunks(self) -> int:
        with self.lock:
            return sum(1 for r in self.served if r != "resources.json")

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        name = urllib.parse.unquote(urllib.parse.urlsplit(h.path).path).lstrip("/")
        with self.lock:
            self.requests.append(name)
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
            queue = self.faults.get(name)
            fault = queue.popleft() if queue else self.always.get(name)
        try:
            if self.delay and name != "resources.json":
                time.sleep(self.delay)
            body = self.bodies.get(name)
            if body is None:
                path = self.root / name
                if "/" in name or not name or not path.is_file():
                    h.send_error(404)
                    return
                body = path.read_bytes()
            if fault in ("500", "404"):
                h.send_error(int(fault))
                return
            if fault == "garbage":
                h.wfile.write(b"this is not HTTP\r\n\r\n")
                return
            if fault == "flip":
                body = flip(body)
            h.send_response(200)
            h.send_header("Content-Type", "application/octet-stream")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            if fault in ("half", "reset"):
                h.wfile.write(body[: len(body) // 2])
                if fault == "reset":  # SO_LINGER 0: close() sends RST instead of FIN
                    h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    h.connection.close()
                return
            h.wfile.write(body)
            if fault is None:
                with self.lock:
                    self.served.append(name)
        except OSError:  # the client went away (a cancelled download)
            pass
        finally:
            with self.lock:
                self.inflight -= 1

    def __enter__(self) -> Mirror:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)
