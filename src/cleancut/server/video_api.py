"""The clip routes: ``POST /api/remove-video`` (202 and a job), ``GET /api/jobs/{id}``
(progress), ``GET /api/jobs/{id}/result`` (the cut-out, once), ``DELETE /api/jobs/{id}``.
How a clip is checked, admitted and run: :mod:`cleancut.server.video`."""

from __future__ import annotations

import importlib.util
from typing import Any, Final

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.types import Receive, Scope, Send

from .api import ErrorBody, get_state, require_ready
from .clips import CLIP_NAME, prepare_clip
from .errors import ApiError
from .metrics import note_clip, note_cutout
from .options import VIDEO_FORMATS, openapi_video_parameters, parse_video_options
from .upload import check_clip_media_type, check_declared_size, read_clip_upload
from .video import download_name

__all__ = ["build_video_router"]

_BINARY: Final = {"type": "string", "format": "binary"}
_JOB_EXAMPLE: Final[dict[str, Any]] = {
    "id": "m3Vq0v9cJ1x8rT2kQ4nB5wZa",
    "state": "running",
    "frames": {"done": 42, "total": 120},
    "progress": 0.35,
    "seconds": 4.0,
    "elapsed_s": 38.2,
    "fps": 1.1,
    "eta_s": 70.9,
    "status_url": "/api/jobs/m3Vq0v9cJ1x8rT2kQ4nB5wZa",
    "result": None,
    "error": None,
    "expires_in": None,
}
_JOB_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "description": "A clip job. state: queued, running, done, failed or cancelled. frames: done "
    "and total (counted from the clip's packets before it was admitted). result (when done): "
    "url, media_type, filename, size. error (when failed): status, error, detail — the same "
    "codes as a photo's (400 truncated_video, 413 video_too_long, 504 timeout, …). expires_in: "
    "seconds until a finished job and its result are deleted.",
    "example": _JOB_EXAMPLE,
}


def _described(*codes: int) -> dict[int | str, dict[str, Any]]:
    described = {
        400: "The body is not a readable clip (unreadable_video, truncated_video, no_video_stream), "
        "is empty, or the form has no field 'file'.",
        404: "No such job: unknown, already downloaded (from the moment its download starts), "
        "cancelled, or expired.",
        408: "The clip did not arrive within --upload-timeout, or arrived slower than --min-upload-rate.",
        409: "The job is not done yet (not_done).",
        413: "The clip is over --max-video-mb (upload_too_large), --max-video-seconds or "
        "--max-video-frames (video_too_long), or --max-video-pixels (video_too_large).",
        415: "The body is not a clip upload (Content-Type), or a codec this FFmpeg cannot decode.",
        422: "An option is unknown or out of range (photo-only ones, quality and the photo formats, "
        "included).",
        501: "This server has no video support (the 'video' extra, PyAV, is not installed).",
        503: "At capacity: every job slot, every upload place, --max-video-jobs clips running, or "
        "--max-video-results jobs kept; or not ready yet (Retry-After).",
    }
    return {c: {"model": ErrorBody, "description": described[c]} for c in codes}


def _require_video() -> None:
    if importlib.util.find_spec("av") is None:
        raise ApiError(
            501,
            "video_unavailable",
            "this server cannot cut out clips: its video support is not installed "
            "(pip install 'cleancut[video]', which brings PyAV and its FFmpeg)",
        )


class _OnceFileResponse(FileResponse):
    """A file answered once: ``done`` runs when the answer ends, sent in full or not."""

    def __init__(self, *args: Any, done: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._done = done

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._done()


def build_video_router(models: tuple[str, ...]) -> APIRouter:
    router = APIRouter()
    body = {
        "required": True,
        "description": "The clip: the raw bytes with Content-Type video/* (or "
        "application/octet-stream), or a multipart form with the clip in 'file' and options as "
        "further fields (a background image as the file field 'background').",
        "content": {
            "video/*": {"schema": _BINARY},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": _BINARY,
                        "background": _BINARY,
                        **{p["name"]: p["schema"] for p in openapi_video_parameters(models)},
                    },
                }
            },
        },
    }

    @router.post(
        "/api/remove-video",
        summary="Cut out a clip (a job with progress)",
        description="Checks the clip and admits it as a job: 202 with the job (its id, frames "
        "total). Poll GET /api/jobs/{id} for frames done; download the result once from "
        "GET /api/jobs/{id}/result when its state is done. Over-limit, unreadable and truncated "
        "clips are refused here, before any inference.",
        status_code=202,
        response_class=JSONResponse,
        responses={
            202: {
                "description": "The job, admitted (Location: its status URL)",
                "content": {"application/json": {"schema": _JOB_SCHEMA}},
            },
            **_described(400, 408, 413, 415, 422, 501, 503),
        },
        openapi_extra={"parameters": openapi_video_parameters(models), "requestBody": body},
    )
    async def remove_video(request: Request) -> JSONResponse:
        state = get_state(request)
        settings = state.settings
        videos = state.videos
        query = dict(request.query_params)
        # Cheap refusals first, before a byte of the body is read (as for photos).
        _require_video()
        check_declared_size(request, settings.max_video_bytes, "--max-video-mb")
        check_clip_media_type(request)
        require_ready(state)
        # a bad option is a 422 now
        note_cutout(request, parse_video_options(query, models=state.engine.models).cut.model)
        videos.check_room()
        if state.queue.full:
            raise state.queue.reject()
        folder = videos.new_folder()
        try:
            # The clip arrives in the upload stage (no job slot), streamed to its folder, and
            # is checked there, before it may take a slot: over a limit, unreadable or
            # truncated, it is refused without any inference.
            async with state.uploads.place() as transfer:
                clip = folder / CLIP_NAME
                upload = await read_clip_upload(request, settings.max_video_bytes, transfer, clip)
                options = parse_video_options(
                    {**query, **upload.form}, models=state.engine.models, background_image=upload.background
                )
                note_cutout(request, options.cut.model)
                remover, _network = state.engine.network_for(options.cut.model)
                facts, cut = await anyio.to_thread.run_sync(prepare_clip, remover, clip, options, settings)
            name = download_name(upload.filename, options)
            job = await videos.start(state.queue, state.engine, folder, name, options, facts, cut)
        except BaseException:
            videos.remove_folder(folder)
            raise
        note_clip(request, job, options.cut.model)  # counted when the job ends
        body = job.as_dict()
        headers = {"Location": body["status_url"], "Cache-Control": "no-store"}
        return JSONResponse(body, status_code=202, headers=headers)

    @router.get(
        "/api/jobs/{job_id}",
        summary="A clip job's progress",
        responses={
            200: {"description": "The job", "content": {"application/json": {"schema": _JOB_SCHEMA}}},
            **_described(404),
        },
    )
    async def job_status(request: Request, job_id: str) -> JSONResponse:
        job = get_state(request).videos.get(job_id)
        return JSONResponse(job.as_dict(), headers={"Cache-Control": "no-store"})

    @router.get(
        "/api/jobs/{job_id}/result",
        summary="A finished clip job's result (once; deleted after)",
        response_class=Response,
        responses={
            200: {
                "description": "The cut-out clip",
                "content": {media: {"schema": _BINARY} for media in VIDEO_FORMATS.values()},
            },
            **_described(404, 409),
        },
    )
    async def job_result(request: Request, job_id: str) -> Response:
        job, done = get_state(request).videos.claim(job_id)
        assert job.result is not None
        return _OnceFileResponse(
            job.result,
            media_type=job.media_type,
            filename=job.filename,
            content_disposition_type="attachment",
            headers={"Cache-Control": "no-store"},
            done=done,
        )

    @router.delete(
        "/api/jobs/{job_id}",
        summary="Cancel a clip job, or delete its result",
        status_code=204,
        response_class=Response,
        responses=_described(404),
    )
    async def job_delete(request: Request, job_id: str) -> Response:
        get_state(request).videos.cancel(job_id)
        return Response(status_code=204)

    return router
