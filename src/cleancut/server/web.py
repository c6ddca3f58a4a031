"""The web page and what it loads: static files, onnxruntime-web, and the model chunks.

Everything the page needs comes from this server, never from a CDN. Content types are set
explicitly for the two that matter to browsers (``.mjs`` must be JavaScript for a module to
load, ``.wasm`` must be ``application/wasm`` for streaming compilation); the platform's MIME
table is not trusted for them.
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import os
import re
from pathlib import Path
from typing import Final

import anyio
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from .api import get_state
from .errors import ApiError

__all__ = ["STATIC_DIR", "NoCacheStaticFiles", "build_docs_router", "build_web_router", "docs_csp"]

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
_SHA256: Final = re.compile(r"[0-9a-f]{64}")
_CONTENT_TYPES: Final = {
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".wasm": "application/wasm",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}
#: Content-addressed or versioned URLs never change.
_IMMUTABLE: Final = "public, max-age=31536000, immutable"
#: The page's own files: always revalidated (cheap 304s), so an upgrade shows at once.
_REVALIDATE: Final = "no-cache"

#: The hosts FastAPI's Swagger UI and ReDoc pages load from: their bundles and styles
#: (jsDelivr), ReDoc's fonts (Google Fonts) and the favicon (fastapi.tiangolo.com).
_DOCS_SOURCES: Final = {
    "script-src": "https://cdn.jsdelivr.net",
    "style-src": "https://cdn.jsdelivr.net https://fonts.googleapis.com 'unsafe-inline'",
    "font-src": "https://fonts.gstatic.com data:",
    "img-src": "'self' data: https://fastapi.tiangolo.com https://cdn.jsdelivr.net",
    "connect-src": "'self'",
    "worker-src": "blob:",
}
_INLINE_SCRIPT: Final = re.compile(r"<script>(.*?)</script>", re.S)

for _ext, _type in _CONTENT_TYPES.items():
    mimetypes.add_type(_type, _ext)


def _content_type(path: Path) -> str:
    return _CONTENT_TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


class NoCacheStaticFiles(StaticFiles):
    """Static files with explicit content types and ``Cache-Control: no-cache``."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = _REVALIDATE
        if status_code == 200 and response.status_code == 200:
            response.headers["Content-Type"] = _content_type(Path(full_path))
        return response


def build_web_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.api_route("/", methods=["GET", "HEAD"])
    async def index() -> FileResponse:
        return FileResponse(
            STATIC_DIR / "index.html", media_type="text/html", headers={"Cache-Control": _REVALIDATE}
        )

    @router.api_route("/sw.js", methods=["GET", "HEAD"])
    async def service_worker() -> FileResponse:
        # At the root so that its scope covers the page, /ort/ and /models/.
        return FileResponse(
            STATIC_DIR / "sw.js", media_type="text/javascript", headers={"Cache-Control": _REVALIDATE}
        )

    @router.api_route("/ort/{version}/{name}", methods=["GET", "HEAD"])
    async def ort_file(request: Request, version: str, name: str) -> FileResponse:
        ort = get_state(request).ort
        path = ort.path(name) if ort is not None and version == ort.version else None
        if path is None:
            raise ApiError(404, "not_found", f"no onnxruntime-web file {version}/{name} on this server")
        return FileResponse(path, media_type=_content_type(path), headers={"Cache-Control": _IMMUTABLE})

    @router.api_route("/models/resources.json", methods=["GET", "HEAD"])
    async def resources(request: Request) -> JSONResponse:
        state = get_state(request)
        if state.chunks is None:
            browser_state, detail = state.browser_status()
            if browser_state == "pending":
                raise ApiError(503, "not_ready", detail, retry_after=5)
            raise ApiError(404, "not_found", f"no model is served to browsers: {detail}")
        return JSONResponse(state.chunks.resources(), headers={"Cache-Control": _REVALIDATE})

    @router.api_route("/models/chunks/{sha256}", methods=["GET", "HEAD"])
    async def chunk(request: Request, sha256: str) -> Response:
        chunks = get_state(request).chunks
        data = None
        if chunks is not None and _SHA256.fullmatch(sha256):
            data = await anyio.to_thread.run_sync(chunks.read_chunk, sha256)
        if data is None:
            raise ApiError(404, "not_found", f"no model chunk {sha256[:80]!r} on this server")
        return Response(data, media_type="application/octet-stream", headers={"Cache-Control": _IMMUTABLE})

    return router


def docs_csp(html: str) -> str:
    """The Content-Security-Policy of an API docs page: scripts from the CDN and the page's
    own inline scripts by their hashes (no 'unsafe-inline' script), inline styles (the UIs
    inject them), requests to this origin only (the spec, "Try it out"), no framing."""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(m.encode()).digest()).decode() + "'"
        for m in _INLINE_SCRIPT.findall(html)
    ]
    sources = dict(_DOCS_SOURCES)
    sources["script-src"] = " ".join([sources["script-src"], *hashes])
    parts = ["default-src 'none'", *(f"{k} {v}" for k, v in sources.items())]
    parts += ["object-src 'none'", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'"]
    return "; ".join(parts)


def build_docs_router(title: str, openapi_url: str) -> APIRouter:
    """``/docs`` (Swagger UI) and ``/redoc`` as FastAPI renders them, each with its CSP."""
    router = APIRouter(include_in_schema=False)

    def page(html: str) -> HTMLResponse:
        return HTMLResponse(
            html, headers={"Content-Security-Policy": docs_csp(html), "Cache-Control": _REVALIDATE}
        )

    swagger = bytes(get_swagger_ui_html(openapi_url=openapi_url, title=f"{title} - Swagger UI").body).decode()
    redoc = bytes(get_redoc_html(openapi_url=openapi_url, title=f"{title} - ReDoc").body).decode()

    @router.get("/docs")
    async def docs() -> HTMLResponse:
        return page(swagger)

    @router.get("/redoc")
    async def redoc_page() -> HTMLResponse:
        return page(redoc)

    return router
