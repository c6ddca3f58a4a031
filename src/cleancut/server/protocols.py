"""uvicorn's HTTP protocols, answering the requests they refuse themselves in our JSON shape.

A request uvicorn cannot parse never reaches the application: a malformed request line or
header, or one past the parser's limits (httptools refuses a URL over 64 KiB, h11 an
incomplete request head over 16 KiB by default) is answered by the protocol with a
plain-text ``400 Invalid HTTP request received.``. These subclasses answer it as every
other error is answered: ``{"error": "bad_http_request", "detail": ...}`` with the headers
of :mod:`.middleware`. ``cleancut serve`` runs :func:`http_protocol` (httptools when it is
installed, as uvicorn's ``auto`` picks, else h11).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from typing import Final

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from .middleware import FRAME_HEADERS, ISOLATION_HEADERS

__all__ = ["BAD_REQUEST_BODY", "JsonH11Protocol", "http_protocol"]

BAD_REQUEST_BODY: Final = json.dumps(
    {
        "error": "bad_http_request",
        "detail": "the request is not valid HTTP/1.1, or its request line or headers are too long "
        "(keep the URL, query string included, well under 64 KiB: send long values as form "
        "fields, the photo as the body)",
    }
).encode()

_HEADERS: Final = (
    (b"content-type", b"application/json"),
    (b"content-length", str(len(BAD_REQUEST_BODY)).encode()),
    (b"connection", b"close"),
    *ISOLATION_HEADERS,
    *FRAME_HEADERS,
)


class JsonH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a JSON 400."""

    def send_400_response(self, msg: str) -> None:
        event = h11.Response(status_code=400, headers=list(_HEADERS), reason=b"Bad Request")
        self.transport.write(self.conn.send(event) or b"")
        self.transport.write(self.conn.send(h11.Data(data=BAD_REQUEST_BODY)) or b"")
        self.transport.write(self.conn.send(h11.EndOfMessage()) or b"")
        self.transport.close()


def http_protocol() -> type[asyncio.Protocol]:
    """The protocol class for ``uvicorn.run(http=...)``: httptools' when it is installed."""
    if importlib.util.find_spec("httptools") is None:
        return JsonH11Protocol
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class JsonHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol with a JSON 400."""

        def send_400_response(self, msg: str) -> None:
            head = [b"HTTP/1.1 400 Bad Request\r\n"]
            for name, value in (*self.server_state.default_headers, *_HEADERS):
                head += [name, b": ", value, b"\r\n"]
            self.transport.write(b"".join([*head, b"\r\n", BAD_REQUEST_BODY]))
            self.transport.close()

    return JsonHttpToolsProtocol
