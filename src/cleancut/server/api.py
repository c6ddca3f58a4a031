"""The HTTP API: ``POST /api/remove``, ``GET /api/models``, ``GET /api/config``, probes
(the clip routes are in :mod:`.video_api`)."""

from __future__ import annotations

import asyncio
import re
import urllib.parse
from collections.abc import Awaitable
from typing import Any, Final, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.requests import ClientDisconnect

from .._version import __version__
from ..errors import InvalidOptionError
from ..io.formats import FORMATS, mime_type
from ..models import MODELS
from ..passes import QUALITY_MODES
from .browser_models import BROWSER_MAX_BYTES, BROWSER_SIZES, browser_model_for, sized_key
from .errors import ApiError
from .jobqueue import Slot
from .metrics import note_cutout
from .options import RemoveOptions, openapi_parameters, parse_options
from .ort_assets import WASM_BUNDLE, WEBGPU_BUNDLE
from .state import AppState
from .upload import Upload, check_declared_size, check_media_type, read_upload

__all__ = ["build_router", "get_state"]

_SAFE_NAME: Final = re.compile(r"[^A-Za-z0-9._-]+")
_BINARY: Final = {"type": "string", "format": "binary"}
_URL_PARAM: Final[dict[str, Any]] = {
    "name": "url",
    "in": "query",
    "required": False,
    "description": "Fetch the photo from this http(s) URL instead of uploading it. Only public "
    "addresses unless the server allows private ones; redirects are checked hop by hop; "
    "size and time are capped like an upload (400 url_refused, 502 url_fetch_failed).",
    "schema": {"type": "string", "format": "uri"},
}


class ErrorBody(BaseModel):
    """Every error answer has this shape."""

    error: str
    detail: str


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.cleancut
    return state


def _error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    described = {
        400: "The body is not a readable image, is empty, the form has no field 'file', or "
        "the url is refused.",
        408: "The body (or the url fetch) did not arrive within --upload-timeout, or arrived "
        "slower than --min-upload-rate.",
        413: "The upload is over --max-upload-mb, or the image over --max-pixels.",
        415: "The body is not an image upload (Content-Type), or a format without its plugin (HEIC).",
        422: "An option is unknown or out of range.",
        502: "The photo's url could not be fetched (no connection, an HTTP error, too slow).",
        503: "At capacity (every job slot, or every upload place, taken), not ready yet, or the "
        "time ran out waiting for a worker (Retry-After).",
        504: "The request ran out of time while being processed (--timeout).",
    }
    return {c: {"model": ErrorBody, "description": described[c]} for c in codes}


def _filename(upload_name: str | None, options: RemoveOptions) -> str:
    stem = (upload_name or "image").rsplit("/", 1)[-1].rsplit("\\", 1)[-1].rsplit(".", 1)[0]
    stem = _SAFE_NAME.sub("_", stem).strip("._") or "image"
    return f"{stem[:100]}.cutout.{options.extension}"


def _server_timing(timings: dict[str, float]) -> str:
    return ", ".join(f"{name};dur={seconds * 1000:.1f}" for name, seconds in timings.items())


T = TypeVar("T")


async def unless_client_leaves(request: Request, slot: Slot, work: Awaitable[T]) -> T:
    """``await work`` (the request's stages in its slot) unless its client hangs up first:
    then the slot is abandoned (a job waiting for a worker is dropped, nothing more starts,
    an ONNX Runtime run in progress is terminated) and the request ends with
    ``ClientDisconnect``, with no answer sent to nobody. The body has been read by now, so
    the next ASGI message is the disconnect."""
    current = asyncio.current_task()
    assert current is not None
    left = False

    async def watch() -> None:
        nonlocal left
        while (await request.receive())["type"] != "http.disconnect":
            pass
        left = True
        slot.abandon()
        current.cancel()

    watcher = asyncio.create_task(watch(), name="cleancut-client-watch")
    try:
        return await work
    except asyncio.CancelledError:
        if left and current.uncancel() == 0:  # our own cancel, not the server's shutdown
            raise ClientDisconnect() from None
        raise
    finally:
        watcher.cancel()


def require_ready(state: AppState) -> None:
    engine = state.engine
    if engine.state == "loading":
        raise ApiError(503, "not_ready", "the model is still loading; retry shortly", retry_after=5)
    if engine.state == "failed":
        raise ApiError(
            503, "model_unavailable", f"the model could not be loaded: {engine.error}", retry_after=30
        )


def build_router(models: tuple[str, ...]) -> APIRouter:
    router = APIRouter()
    remove_body = {
        "required": False,
        "description": "The photo: the raw bytes with Content-Type image/* (or "
        "application/octet-stream), or a multipart form with the image in 'file' (or its "
        "address in 'url') and options as further fields. No body with ?url=.",
        "content": {
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "url": _URL_PARAM["schema"],
                        **{p["name"]: p["schema"] for p in openapi_parameters(models)},
                    },
                }
            },
        },
    }

    @router.post(
        "/api/remove",
        summary="Cut out a photo",
        description="Answers the encoded image: PNG (default), WebP, JPEG, or raw pixels.",
        response_class=Response,
        responses={
            200: {
                "description": "The encoded cut-out",
                "content": {mime_type(f): {"schema": _BINARY} for f in FORMATS},
            },
            **_error_responses(400, 408, 413, 415, 422, 502, 503, 504),
        },
        openapi_extra={"parameters": [*openapi_parameters(models), _URL_PARAM], "requestBody": remove_body},
    )
    async def remove(request: Request) -> Response:
        state = get_state(request)
        settings = state.settings
        query = dict(request.query_params)
        url = query.pop("url", None)
        # Cheap refusals first, before a byte of the body is read.
        check_declared_size(request, settings.max_upload_bytes)
        if url is None:  # a ?url= request carries no image, so no image Content-Type either
            check_media_type(request)
        require_ready(state)
        # a bad option is a 422 before the upload
        note_cutout(request, parse_options(query, models=state.engine.models).model)
        if state.queue.full:  # no slot for it now: refuse before a byte of the body is read
            raise state.queue.reject()
        # The photo arrives in the upload stage, which holds no job slot: a client that sends
        # slowly (or a url that answers slowly) cannot keep a worker or a place in the line
        # from anyone, and is cut off by the stage's own deadline and minimum rate.
        async with state.uploads.place() as transfer:
            if url is None:
                upload = await read_upload(request, settings.max_upload_bytes, transfer)
                url = upload.form.pop("url", None)
                if url is not None and upload.data:
                    raise InvalidOptionError("give either the field 'file' or 'url', not both")
            else:
                upload = Upload(b"")
            options = parse_options(
                {**query, **upload.form}, models=state.engine.models, background_image=upload.background
            )
            note_cutout(request, options.model)  # the form may name another model
            data = upload.data
            if url is not None:
                data = await transfer.fetch(url, settings.fetch_policy)
                upload.filename = urllib.parse.urlsplit(url).path
        # Only a request whose photo is here takes a slot: then at most `capacity` photos are
        # decoded at once, and over capacity the answer is an immediate 503.
        async with state.queue.slot(settings.timeout) as slot:
            result = await unless_client_leaves(request, slot, state.engine.remove(slot, data, options))
        headers = {
            "Content-Disposition": f'inline; filename="{_filename(upload.filename, options)}"',
            "Cache-Control": "no-store",
            "Server-Timing": _server_timing(result.timings),
            "X-Image-Width": str(result.width),
            "X-Image-Height": str(result.height),
        }
        if result.box is not None:  # where the (possibly cropped) output lies in the photo
            headers["X-Crop-Box"] = ",".join(map(str, result.box))
        return Response(result.body, media_type=result.media_type, headers=headers)

    @router.get("/api/models", summary="Every model, and which this server has loaded")
    async def list_models(request: Request) -> dict[str, Any]:
        state = get_state(request)
        loaded = state.engine.models
        ready = state.engine.state == "ready"
        entries = [(spec.name, spec) for spec in MODELS.values()]
        entries += [(key, state.settings.spec(key)) for key in loaded if state.settings.spec(key).custom]
        models = []
        for key, spec in entries:
            recipe = state.engine.recipe_of(key) if key in loaded else None
            size = recipe.size if recipe is not None else spec.input_size
            detail = state.browser_detail(key) if key in loaded else ""
            models.append(
                {
                    "name": key,
                    "aliases": list(spec.aliases),
                    "family": recipe.family if recipe is not None else spec.family,
                    "input_size": None if size is None else {"height": size[0], "width": size[1]},
                    "precision": spec.precision,
                    "size": spec.size,  # the download, in bytes (None: not known before it)
                    "license": spec.license,
                    "noncommercial": spec.noncommercial,
                    "description": spec.description,
                    "custom": spec.custom,
                    "source": str(spec.path or spec.url) if spec.custom else None,
                    "loaded": key in loaded,
                    "ready": key in loaded and ready,
                    "default": key == loaded[0],
                    # whether the page can run it itself (else it runs on the server), and why not
                    "browser": key in loaded and not detail and state.settings.browser,
                    "browser_detail": detail,
                }
            )
        return {"default": loaded[0], "models": models}

    @router.get("/api/config", summary="What the web page needs to know")
    async def config(request: Request) -> dict[str, Any]:
        state = get_state(request)
        settings = state.settings
        browser_state, detail = state.browser_status()
        default = settings.default_model
        resource = state.browser_model
        served = state.chunks.models.get(resource) if state.chunks is not None and resource else None
        spec = settings.spec(default)
        if spec.published:
            spec = browser_model_for(spec)
        recipe = state.engine.recipe_of(default)
        ort = state.ort
        return {
            "version": __version__,
            "models": list(settings.models),
            "server": {"state": state.engine.state, "detail": state.engine.error or ""},
            "limits": {
                "max_upload_bytes": settings.max_upload_bytes,
                "max_pixels": settings.max_pixels,
                "timeout": settings.timeout,
                "upload_timeout": settings.upload_timeout,
                "max_video_bytes": settings.max_video_bytes,
                "max_video_seconds": settings.max_video_seconds,
                "max_video_frames": settings.max_video_frames,
                "max_video_pixels": min(settings.max_video_pixels, settings.max_pixels),
                "video_timeout": settings.video_timeout,
            },
            "browser": {
                "state": browser_state,
                "detail": detail,
                "model": None
                if resource is None
                else {
                    "name": spec.name if spec.published else default,
                    "resource": resource,
                    "size": served.size if served is not None else spec.size,
                },
                # the model file's final map (the page runs the file as published)
                "output": state.engine.output_of(default),
                "resources": "/models/resources.json",
                # The quality modes as the page runs them: passes, the gain of their mean, and
                # the resources.json key of each input size other than the model's 1024².
                "modes": None
                if recipe is None
                else {m: [{"size": p.size, "flip": p.flip} for p in recipe.passes(m)] for m in QUALITY_MODES},
                "gain": None if recipe is None else recipe.average_gain,
                "recipe": None if recipe is None else recipe.to_json(),
                "sizes": {str(n): sized_key(resource, n) for n in BROWSER_SIZES}
                if resource is not None and spec.resource is not None
                else {},
                "max_bytes": BROWSER_MAX_BYTES,
                # Every loaded model: its recipe (None until loaded) and whether the page runs it.
                "models": {
                    key: {
                        "recipe": None if (r := state.engine.recipe_of(key)) is None else r.to_json(),
                        "browser": not state.browser_detail(key) and settings.browser,
                        "detail": state.browser_detail(key),
                    }
                    for key in settings.models
                },
                "ort": None
                if ort is None
                else {
                    "version": ort.version,
                    "base": f"/ort/{ort.version}/",
                    "wasm": WASM_BUNDLE,
                    "webgpu": WEBGPU_BUNDLE,
                },
            },
        }

    @router.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="Readiness: the models are loaded",
        responses=_error_responses(503),
    )
    async def readyz(request: Request) -> JSONResponse:
        state = get_state(request)
        require_ready(state)
        return JSONResponse(
            {
                "status": "ready",
                "models": state.engine.describe(),
                "queue": state.queue.stats().as_dict(),
                "uploads": state.uploads.stats(),
                "videos": state.videos.stats(),
            }
        )

    return router
