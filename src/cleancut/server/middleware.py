"""One ASGI middleware for what every request and response needs: the Host check, the
isolation and content-security headers, a bound on the query string, and a JSON 500.

* **Host check** (DNS rebinding): a page on another site can point its own name at
  127.0.0.1 and then reach a local ``cleancut serve`` with the browser's full access, the
  request then naming the attacker's host. A request whose ``Host`` is not one of this
  server's is answered ``421 host_not_allowed`` before any route runs. Accepted: IP
  addresses (a name is what rebinding needs; an address typed as such cannot be rebound),
  ``localhost`` and ``*.localhost`` (browsers resolve them to loopback only), the name the
  server was bound to (``--host NAME``), the name the request arrived at, the operator's
  ``--allowed-host`` names (``CLEANCUT_ALLOWED_HOSTS``; ``*.example.com`` for subdomains,
  ``*`` for any), and, when bound to every interface (``0.0.0.0``/``::``) with no allowed
  name given, this machine's host name (and ``NAME.local``). A request without ``Host``
  (HTTP/1.0; never a browser's) passes.
* ``Content-Security-Policy`` (:data:`PAGE_CSP`) on every response that sets none itself:
  the page's own scripts, module and blob workers, WebAssembly (``'wasm-unsafe-eval'``),
  ``blob:``/``data:`` images and downloads, requests to this origin only, and
  ``frame-ancestors 'none'`` with ``X-Frame-Options: DENY`` (no framing, no clickjacking).
  ``/docs`` and ``/redoc`` send their own (:mod:`.web`).
* A query string over :data:`MAX_QUERY_BYTES` is answered ``414 query_too_long`` (the
  options are short; a long one is an attack or a mistake).

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

import ipaddress
import json
import logging
from collections.abc import Collection, Iterable
from typing import Final

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "FRAME_HEADERS",
    "ISOLATION_HEADERS",
    "MAX_QUERY_BYTES",
    "PAGE_CSP",
    "HostPolicy",
    "ServerMiddleware",
]

log = logging.getLogger(__name__)

ISOLATION_HEADERS: Final[tuple[tuple[bytes, bytes], ...]] = (
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-embedder-policy", b"require-corp"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)


_CREDENTIALLESS: Final = (b"cross-origin-embedder-policy", b"credentialless")

#: What the page does, and nothing more: its own scripts and styles, WebAssembly
#: (onnxruntime-web compiles its .wasm), module workers and the blob: workers of threaded
#: wasm, blob:/data: images, videos and downloads, fetches to this origin only, no framing.
PAGE_CSP: Final = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self' blob:; "
    "connect-src 'self' blob: data:; img-src 'self' blob: data:; media-src 'self' blob:; "
    "style-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
FRAME_HEADERS: Final = (
    (b"content-security-policy", PAGE_CSP.encode()),
    (b"x-frame-options", b"DENY"),
)
#: Longest query string answered (bytes): options are a few dozen bytes, a ``url`` a few KiB.
MAX_QUERY_BYTES: Final = 16 * 1024

_LOOPBACK_NAMES: Final = frozenset({"localhost"})
_WILDCARD_BINDS: Final = frozenset({"0.0.0.0", "::", ""})


def split_host(value: str) -> str:
    """The host of a ``Host`` header value, without its port, brackets or final dot, in
    lower case (``[::1]:8000`` -> ``::1``, ``Example.COM.:80`` -> ``example.com``)."""
    host = value.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        host = host[1:end] if end > 0 else host[1:]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class HostPolicy:
    """Which ``Host`` names this server answers for (see the module docstring)."""

    def __init__(self, bound: str, allowed: Iterable[str] = (), machine_names: Iterable[str] = ()) -> None:
        self.bound = split_host(bound)
        names = [split_host(a) for a in allowed]
        self.any = "*" in names
        self.suffixes = tuple(n[1:] for n in names if n.startswith("*."))  # ".example.com"
        self.names = frozenset(n for n in names if not n.startswith("*"))
        if self.bound and not _is_address(self.bound) and self.bound not in _WILDCARD_BINDS:
            self.names |= {self.bound}
        # Bound to every interface and told no name: this machine's own name is what
        # people type (and what the start-up warning names).
        self.machine = frozenset(
            split_host(m) for m in machine_names if m and self.bound in _WILDCARD_BINDS and not names
        )

    def allows(self, host: str, arrived_at: str | None = None) -> bool:
        if self.any or _is_address(host) or host in _LOOPBACK_NAMES or host.endswith(".localhost"):
            return True
        if host in self.names or host in self.machine:
            return True
        if arrived_at is not None and host == split_host(arrived_at):
            return True  # the name the request was sent to (in-process clients)
        return any(host.endswith(suffix) for suffix in self.suffixes)

    def refusal(self, host: str) -> str:
        shown = host[:100]
        return (
            f"this server does not answer for the host {shown!r} (a guard against DNS rebinding); "
            f"use its address or localhost, or have its operator allow the name: "
            f"cleancut serve --allowed-host {shown} (env CLEANCUT_ALLOWED_HOSTS)"
        )


class ServerMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        credentialless_paths: Collection[str] = (),
        hosts: HostPolicy | None = None,
    ) -> None:
        self.app = app
        self.credentialless_paths = frozenset(credentialless_paths)
        self.hosts = hosts

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
                    for k, v in (*ISOLATION_HEADERS, *FRAME_HEADERS)
                    if k not in names
                ]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        refused = self._refusal(scope)
        if refused is not None:
            status, code, detail = refused
            await self._answer(send_with_headers, status, code, detail)
            return
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
            await self._answer(
                send_with_headers, 500, "internal_error", "the server hit an unexpected error; it is logged"
            )

    def _refusal(self, scope: Scope) -> tuple[int, str, str] | None:
        """The answer for a request refused before any route runs, or ``None``."""
        if self.hosts is not None:
            raw = next((v for k, v in scope.get("headers", ()) if k == b"host"), None)
            if raw is not None:
                host = split_host(raw.decode("latin-1"))
                server = scope.get("server")
                arrived_at = str(server[0]) if server else None
                if not self.hosts.allows(host, arrived_at):
                    log.warning("refused a request for the host %r (not an allowed host)", host[:100])
                    return 421, "host_not_allowed", self.hosts.refusal(host)
        query = scope.get("query_string", b"")
        if len(query) > MAX_QUERY_BYTES:
            return (
                414,
                "query_too_long",
                f"the query string is {len(query):,} bytes, over the limit of {MAX_QUERY_BYTES:,}; "
                "options are short (format=webp&mode=best): send long values as form fields",
            )
        return None

    @staticmethod
    async def _answer(send: Send, status: int, code: str, detail: str) -> None:
        body = json.dumps({"error": code, "detail": detail}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status != 500:  # refused before the body was read: the connection cannot go on
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
