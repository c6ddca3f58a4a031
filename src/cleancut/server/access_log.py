"""One structured log line per request, for log shippers: logfmt ``key=value`` pairs on the
``cleancut.access`` logger.

``method=POST path=/api/remove status=200 bytes=48213 duration_ms=612.4 client=10.0.0.7
queue_ms=0.1 decode_ms=9.8 preprocess_ms=6.0 inference_ms=571.2 postprocess_ms=4.4
encode_ms=18.7``: the stage timings are the response's ``Server-Timing`` entries (what the
route measured), ``duration_ms`` the whole exchange as this middleware saw it, ``bytes`` the
body sent. Values with spaces, quotes, ``=`` or control characters are double-quoted with
JSON escapes, so one request is always one line. Probes (``GET /healthz``, ``/readyz``) are
logged at debug level, everything else at info. A pure ASGI middleware: it reads the response
start and counts body bytes, never buffers one.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["AccessLogMiddleware", "logfmt", "parse_server_timing"]

log = logging.getLogger("cleancut.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Routes that orchestrators poll every few seconds: at debug level, not to drown the log.
PROBES = frozenset({"/healthz", "/readyz"})
_BARE = re.compile(r"[A-Za-z0-9_./:@%+,;*?&\[\]-]+")
_TIMING = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*(?:;.*?\bdur=([0-9.]+))?")


def _value(v: object) -> str:
    text = f"{v:.1f}" if isinstance(v, float) else str(v)
    return text if text and _BARE.fullmatch(text) else json.dumps(text)


def logfmt(fields: dict[str, object]) -> str:
    """``key=value`` pairs, quoted where a value needs it (JSON string escapes)."""
    return " ".join(f"{k}={_value(v)}" for k, v in fields.items() if v is not None)


def parse_server_timing(header: str) -> dict[str, float]:
    """``decode;dur=9.8, inference;dur=571.2`` → ``{"decode": 9.8, "inference": 571.2}``
    (milliseconds; entries without a duration are left out)."""
    out: dict[str, float] = {}
    for part in header.split(","):
        m = _TIMING.match(part)
        if m and m.group(2):
            try:
                out[m.group(1)] = float(m.group(2))
            except ValueError:
                continue
    return out


class AccessLogMiddleware:
    """Logs every HTTP request once it has been answered (or has failed)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | None = None
        sent = 0
        timing = ""

        async def send_logged(message: Message) -> None:
            nonlocal status, sent, timing
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for name, value in message.get("headers", ()):
                    if name.lower() == b"server-timing":
                        timing = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        finally:
            self._log(scope, status, sent, timing, time.perf_counter() - started)

    @staticmethod
    def _log(scope: Scope, status: int | None, sent: int, timing: str, seconds: float) -> None:
        path = scope.get("path", "")
        level = logging.DEBUG if path in PROBES else logging.INFO
        if not log.isEnabledFor(level):
            return
        client = scope.get("client")
        fields: dict[str, object] = {
            "method": scope.get("method", ""),
            "path": path,
            # no response started: the client left, or the server failed before answering
            "status": status if status is not None else "none",
            "bytes": sent,
            "duration_ms": seconds * 1000,
            "client": client[0] if client else None,
        }
        fields.update({f"{k}_ms": v for k, v in parse_server_timing(timing).items()})
        log.log(level, "%s", logfmt(fields))
