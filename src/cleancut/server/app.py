"""``create_app``: the FastAPI application, its start-up and its error answers."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .._version import __version__
from ..errors import CleancutError
from .access_log import AccessLogMiddleware
from .api import build_router
from .errors import ApiError, from_cleancut_error
from .jobqueue import DeadlineExceededError, QueueFullError
from .metrics import Metrics, MetricsMiddleware, build_metrics_router
from .middleware import HostPolicy, ServerMiddleware
from .settings import ServerSettings
from .state import AppState
from .video_api import build_video_router
from .web import STATIC_DIR, NoCacheStaticFiles, build_docs_router, build_web_router

__all__ = ["create_app"]

log = logging.getLogger(__name__)

_DESCRIPTION = """
Background removal with IS-Net. `POST /api/remove` with the photo as the body
(`Content-Type: image/*`) or as the multipart field `file`; the answer is the cut-out.
`POST /api/remove-video` takes a short clip the same ways and answers 202 with a job:
`GET /api/jobs/{id}` reports the frames done, `GET /api/jobs/{id}/result` gives the cut-out
clip once (WebM VP9 with alpha, MOV ProRes 4444, or MP4 on a colour).

Errors are JSON `{"error": code, "detail": message}`. Over capacity the server answers 503
with `Retry-After` at once instead of queueing without bound. The web page at `/` runs the
same model in the browser (nothing uploaded) or calls this API.
"""


def _json_error(err: ApiError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers())


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return _json_error(exc)

    @app.exception_handler(CleancutError)
    async def cleancut_error(_request: Request, exc: CleancutError) -> JSONResponse:
        return _json_error(from_cleancut_error(exc))

    @app.exception_handler(QueueFullError)
    async def queue_full(_request: Request, exc: QueueFullError) -> JSONResponse:
        return _json_error(ApiError(503, "overloaded", str(exc), retry_after=exc.retry_after))

    @app.exception_handler(DeadlineExceededError)
    async def deadline(request: Request, exc: DeadlineExceededError) -> JSONResponse:
        if exc.stage == "queued":  # never got a worker: the server is too busy, come back
            retry = request.app.state.cleancut.queue.retry_after()
            return _json_error(ApiError(503, "queue_timeout", str(exc), retry_after=retry))
        return _json_error(ApiError(504, "timeout", str(exc)))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        try:
            code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_").replace("-", "_")
        except ValueError:
            code = "http_error"
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return JSONResponse(
            {"error": code, "detail": detail},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors()]
        return JSONResponse({"error": "invalid_request", "detail": "; ".join(parts)}, status_code=422)


def _machine_names() -> tuple[str, ...]:
    """This machine's host name and its mDNS form (no DNS lookup: start-up stays instant)."""
    name = socket.gethostname().lower().rstrip(".")
    return (name, f"{name.split('.', 1)[0]}.local") if name else ()


def create_app(settings: ServerSettings) -> FastAPI:
    """The application for ``settings``. Nothing loads until the ASGI lifespan starts it
    (``uvicorn`` does; so does ``with TestClient(app)``)."""
    state = AppState(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if settings.load_in_background:
            state.start()
        else:
            await anyio.to_thread.run_sync(state.start)
        try:
            yield
        finally:
            await state.videos.aclose()  # running clips stop and their files go
            state.close()

    app = FastAPI(
        title="cleancut",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by build_docs_router, with a Content-Security-Policy of their own
        redoc_url=None,
    )
    app.state.cleancut = state
    hosts = HostPolicy(settings.host, settings.allowed_hosts, machine_names=_machine_names())
    app.add_middleware(ServerMiddleware, credentialless_paths=("/docs", "/redoc"), hosts=hosts)
    app.add_middleware(AccessLogMiddleware)  # outside ServerMiddleware: its 421/414/500 are logged too
    _install_error_handlers(app)
    app.include_router(build_router(settings.models))
    app.include_router(build_video_router(settings.models))
    app.include_router(build_web_router())
    app.include_router(build_docs_router(app.title, app.openapi_url or "/openapi.json"))
    app.mount("/static", NoCacheStaticFiles(directory=STATIC_DIR), name="static")
    if settings.metrics:  # GET /metrics; added last, so its middleware sees every final status
        metrics = Metrics(state)
        state.queue.observer = metrics.observe_stage
        app.include_router(build_metrics_router(metrics))
        app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
