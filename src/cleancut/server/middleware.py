"""One ASGI middleware for what every response needs: isolation headers and a JSON 500.

* ``Cross-Origin-Opener-Policy: same-origin`` and ``Cross-Origin-Embedder-Policy:
  require-corp`` make the page cross-origin isolated, the condition for
  ``SharedArrayBuffer`` and so for WebAssembly threads (without them onnxruntime-web runs on
  one thread, several times slower). ``Cross-Origin-Resource-Policy: same-origin`` lets our
  own resources load under ``require-corp`` and keeps other sites from embedding them.
* An exception that escapes a route is a bug (bad input has its own 4xx): it is logged with
  its traceback and answered as ``{"error": "internal_error", ...}`` with the same headers,
  which Starlette's outermost error handler would not add. A client that hangs up during
  its upload (``ClientDisconnect``) is logged at info level and answered with nothing.

The interactive API docs (``/docs``, ``/redoc``) load FastAPI's Swagger UI / ReDoc from a
CDN that sends no ``Cross-Origin-Resource-Policy``; under ``require-corp`` they would not
render, so those two HTML pages alone get ``Cross-Origin-Embedder-Policy: credentialless``
(no-cors loads allowed, without cookies). The page and every other response keep
``require-corp``.

A pure ASGI middleware rather than ``BaseHTTPMiddleware``: it adds nothing per request but a
header list, and never buffers a body.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from typing import Final

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ISOLATION_HEADERS", "ServerMiddleware"]

log = logging.getLogger(__name__)

ISOLATION_HEADERS: Final[tuple[tuple[bytes, bytes], ...]] = (
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-embedder-policy", b"require-corp"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)


_CREDENTIALLESS: Final = (b"cross-origin-embedder-policy", b"credentialless")


class ServerMiddleware:
    def __init__(self, app: ASGIApp, credentialless_paths: Collection[str] = ()) -> None:
        self.app = app
        self.credentialless_paths = frozenset(credentialless_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        relaxed = scope.get("path") in self.credentialless_paths

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [
                    _CREDENTIALLESS if relaxed and k == _CREDENTIALLESS[0] else (k, v)
                    for k, v in ISOLATION_HEADERS
                    if k not in names
                ]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except ClientDisconnect:
            # The client hung up while its body was being read: nobody is left to answer and
            # it is no bug of ours. The route's slot was given back as the exception passed.
            log.info("client left during the upload: %s %s", scope.get("method"), scope.get("path"))
        except Exception:
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if started:  # the answer is half sent: nothing sensible left but to drop it
                raise
            body = json.dumps(
                {"error": "internal_error", "detail": "the server hit an unexpected error; it is logged"}
            ).encode()
            await send_with_headers(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
