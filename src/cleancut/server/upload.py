"""Reading the photo out of a request: the upload stage, its limits and its deadlines.

Two shapes are accepted: the raw image as the body (``Content-Type: image/*`` or
``application/octet-stream``) or a multipart form with the image in the field ``file``
(plus option fields). A form may give the field ``url`` instead of ``file``: the image is
then fetched (:mod:`cleancut.urls`). The size limit is enforced twice: a declared
``Content-Length`` over it is refused before a byte is read, and the bytes actually received
are counted while they stream in, so a chunked or lying client is cut off at the limit too.

The photo arrives in the **upload stage** (:class:`UploadStage`), before the request takes
one of the job queue's slots: a client that sends slowly (or a ``url`` source that answers
slowly) holds an *upload place*, never a worker or a place in the line. The stage is bounded
on its own terms:

* at most ``max_uploads`` requests receive their photo at once; one more is answered at once
  with 503 ``uploads_busy`` and a ``Retry-After`` saying when the first place frees at the
  latest (the nearest cut-off below);
* a body must have arrived within ``upload_timeout`` seconds (408 ``upload_timeout``);
* after the first ``grace`` seconds it must keep up ``min_rate`` bytes per second on average
  (408 ``upload_too_slow``), so a client trickling a byte at a time is cut off within
  seconds, not at the total deadline;
* a ``url`` fetch runs within what is left of the same deadline.

A 408 is sent with ``Connection: close``: the rest of the body is not waited for.

A clip (``POST /api/remove-video``, :func:`read_clip_upload`) goes through the same stage
under its own size limit, but is streamed to a file as it arrives, never held in memory:
the raw body is written as it comes, and a multipart form is parsed from the counted stream
(Starlette spools the file part to an anonymous temporary file, copied to its place once the
form is complete).
"""

from __future__ import annotations

import asyncio
import math
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Final

import anyio
import anyio.to_thread
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import FormParser, MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.types import Message

from ..urls import UrlPolicy, fetch_url
from .errors import ApiError

__all__ = ["ClipUpload", "Transfer", "Upload", "UploadStage", "read_clip_upload", "read_upload"]

_RAW_TYPES: Final = ("application/octet-stream",)
#: Form encodings; a URL-encoded form can only carry ``url`` (curl -d url=…), not a file.
_FORM_TYPES: Final = ("multipart/form-data", "application/x-www-form-urlencoded")
#: Form fields besides ``file``: the options, with room to spare for a clear 422 on typos.
_MAX_FORM_FIELDS: Final = 40
#: ``file`` and an optional background image (field ``background``).
_MAX_FORM_FILES: Final = 2


class _CheckedMultiPartParser(MultiPartParser):
    """Starlette's parser, noting whether the closing boundary came: without it the form
    is cut short, and its last part (often the file) is missing or incomplete."""

    complete = False

    def on_end(self) -> None:
        self.complete = True


#: What a URL-encoded body may hold: printable ASCII (and line ends curl may leave).
_URLENCODED_BYTES: Final = frozenset(range(0x20, 0x7F)) | {0x09, 0x0A, 0x0D}


def _not_urlencoded(body: bytes) -> ApiError | None:
    """A 415 for a body labelled ``application/x-www-form-urlencoded`` that is not such a
    form: image bytes sent with ``curl --data-binary @photo.jpg`` and no Content-Type."""
    if not body.translate(None, bytes(_URLENCODED_BYTES)):
        return None
    return ApiError(
        415,
        "unsupported_media_type",
        "the body is labelled application/x-www-form-urlencoded but holds binary data (an image "
        "sent without its Content-Type? curl --data-binary sets that label): send the image with "
        "Content-Type image/* (curl: -H 'Content-Type: image/jpeg' --data-binary @photo.jpg) or as "
        "the multipart field 'file' (curl: -F file=@photo.jpg); a URL-encoded form can only carry "
        "'url' and options",
    )


async def _parse_request_form(request: Request, media: str) -> FormData:
    """The form of ``request`` (whose stream gives its counted body): a 400 ``bad_multipart``
    for a form that cannot be parsed or ends before its closing boundary."""
    try:
        if media == "multipart/form-data":
            parser = _CheckedMultiPartParser(
                request.headers, request.stream(), max_files=_MAX_FORM_FILES, max_fields=_MAX_FORM_FIELDS
            )
            form = await parser.parse()
            if not parser.complete:
                await form.close()
                raise ApiError(
                    400,
                    "bad_multipart",
                    "the multipart form ends before its closing boundary (the body was cut short, or "
                    "its boundary is not the one in Content-Type); nothing of it was used",
                )
            return form
        return await FormParser(request.headers, request.stream(), max_fields=_MAX_FORM_FIELDS).parse()
    except (MultiPartException, HTTPException) as exc:
        detail = getattr(exc, "message", None) or getattr(exc, "detail", None) or str(exc)
        raise ApiError(400, "bad_multipart", f"the multipart form could not be parsed: {detail}") from exc


def _single_fields(form: FormData) -> None:
    """A 400 for a field given more than once (two photos, or an option twice): which one
    was meant is not ours to guess."""
    seen: dict[str, int] = {}
    for key, _value in form.multi_items():
        seen[key] = seen.get(key, 0) + 1
    repeated = sorted(k for k, n in seen.items() if n > 1)
    if repeated:
        name = repeated[0]
        what = "one photo per request" if name == "file" else "each field once"
        raise ApiError(
            400,
            "bad_multipart",
            f"the form gives the field {name[:100]!r} {seen[name]} times; send {what}",
        )


@dataclass
class Upload:
    data: bytes
    filename: str | None = None
    form: dict[str, str] = field(default_factory=dict)
    #: An uploaded background image (the multipart file field ``background``), encoded.
    background: bytes | None = None


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _too_large(limit: int, flag: str = "--max-upload-mb") -> ApiError:
    return ApiError(
        413,
        "upload_too_large",
        f"the upload is larger than the limit of {limit:,} bytes ({limit / 2**20:.1f} MiB); "
        f"the server's {flag} sets it",
    )


def check_declared_size(request: Request, limit: int, flag: str = "--max-upload-mb") -> None:
    """Refuse a declared ``Content-Length`` over the limit without reading the body."""
    declared = request.headers.get("content-length")
    if declared is None:
        return
    try:
        size = int(declared)
    except ValueError:
        raise ApiError(400, "bad_request", f"Content-Length {declared!r} is not a number") from None
    if size > limit:
        raise _too_large(limit, flag)


def check_media_type(request: Request) -> None:
    """Refuse bodies that cannot be an image upload (415) before reading them."""
    media = _media_type(request)
    if media in _FORM_TYPES or media.startswith("image/") or media in _RAW_TYPES:
        return
    hint = (
        "send the photo as the body with Content-Type image/* (curl: -H 'Content-Type: image/jpeg' "
        "--data-binary @photo.jpg) or as the multipart field 'file' (curl: -F file=@photo.jpg)"
    )
    got = f"Content-Type {media!r}" if media else "no Content-Type"
    raise ApiError(415, "unsupported_media_type", f"got {got}; {hint}")


def check_clip_media_type(request: Request) -> None:
    """Refuse bodies that cannot be a clip upload (415) before reading them."""
    media = _media_type(request)
    if media == "multipart/form-data" or media.startswith("video/") or media in _RAW_TYPES:
        return
    hint = (
        "send the clip as the body with Content-Type video/* (curl: -H 'Content-Type: video/mp4' "
        "--data-binary @clip.mp4) or as the multipart field 'file' (curl: -F file=@clip.mp4)"
    )
    got = f"Content-Type {media!r}" if media else "no Content-Type"
    raise ApiError(415, "unsupported_media_type", f"got {got}; {hint}")


class _ClosingApiError(ApiError):
    """An error answered with ``Connection: close`` (the request's body was not read to
    its end, so the connection cannot carry another request)."""

    def headers(self) -> dict[str, str]:
        return {**super().headers(), "Connection": "close"}


class Transfer:
    """One request's place in the upload stage: its clock and the bytes counted so far."""

    def __init__(self, stage: UploadStage) -> None:
        self._stage = stage
        self.started = time.monotonic()
        self.deadline = self.started + stage.timeout
        self.received = 0

    def cutoff(self) -> float:
        """When this transfer is cut off unless more bytes arrive (monotonic seconds)."""
        if self._stage.min_rate <= 0:
            return self.deadline
        return min(self.deadline, self.started + self._stage.grace + self.received / self._stage.min_rate)

    def expired(self) -> ApiError:
        """The 408 for a transfer past its cut-off (counted)."""
        stage = self._stage
        elapsed = time.monotonic() - self.started
        if time.monotonic() >= self.deadline:
            stage._timed_out += 1
            return _ClosingApiError(
                408,
                "upload_timeout",
                f"the upload did not arrive within {stage.timeout:g} s ({self.received:,} bytes "
                "came); the server's --upload-timeout sets the limit",
            )
        stage._too_slow += 1
        return _ClosingApiError(
            408,
            "upload_too_slow",
            f"the upload arrived too slowly: {self.received:,} bytes in {elapsed:.1f} s, under the "
            f"minimum of {_rate(stage.min_rate)} after the first {stage.grace:g} s; the server's "
            "--min-upload-rate sets it",
        )

    async def next_chunk(self, stream: AsyncIterator[bytes]) -> bytes | None:
        """The next piece of the body (``None`` at its end), or a 408 at the cut-off."""
        wait = self.cutoff() - time.monotonic()
        if wait <= 0:
            raise self.expired()
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), timeout=wait)
        except StopAsyncIteration:
            return None
        except TimeoutError:
            raise self.expired() from None
        self.received += len(chunk)
        return chunk

    async def fetch(self, url: str, policy: UrlPolicy) -> bytes:
        """Fetch ``url`` within what is left of this transfer's deadline (a worker thread;
        :func:`fetch_url`'s own deadline always ends it, so the place is never held longer)."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise self.expired()
        bounded = policy.with_(timeout=min(policy.timeout, remaining))
        data: bytes = await anyio.to_thread.run_sync(fetch_url, url, bounded, limiter=self._stage._limiter())
        self.received = len(data)
        return data


def _rate(bytes_per_s: float) -> str:
    return f"{bytes_per_s / 1024:g} KiB/s" if bytes_per_s >= 1024 else f"{bytes_per_s:g} B/s"


class UploadStage:
    """The bounded upload stage (see the module docstring). Lives on the event loop: its
    counters are only touched there."""

    def __init__(self, max_uploads: int, timeout: float, min_rate: float, grace: float) -> None:
        if max_uploads < 1 or timeout <= 0 or min_rate < 0 or grace < 0:
            raise ValueError("max_uploads >= 1, timeout > 0, min_rate >= 0 and grace >= 0 are needed")
        self.max_uploads = max_uploads
        self.timeout = timeout
        self.min_rate = min_rate
        self.grace = grace
        self._active: list[Transfer] = []
        self._threads: anyio.CapacityLimiter | None = None
        self._accepted = 0
        self._rejected = 0
        self._timed_out = 0
        self._too_slow = 0

    def _limiter(self) -> anyio.CapacityLimiter:
        # Created on first use, inside the event loop; one thread per upload place at most.
        if self._threads is None:
            self._threads = anyio.CapacityLimiter(self.max_uploads)
        return self._threads

    def retry_after(self) -> int:
        """Seconds until an upload place frees at the latest: the nearest cut-off of the
        transfers in progress (each ends by then, unless more of its bytes arrive)."""
        if not self._active:
            return 1
        nearest = min(t.cutoff() for t in self._active) - time.monotonic()
        return max(1, math.ceil(nearest))

    @asynccontextmanager
    async def place(self) -> AsyncIterator[Transfer]:
        """Take an upload place or raise a 503 at once; give it back on exit."""
        if len(self._active) >= self.max_uploads:
            self._rejected += 1
            retry = self.retry_after()
            raise ApiError(
                503,
                "uploads_busy",
                f"{self.max_uploads} uploads are already arriving (the server's --max-uploads); "
                f"the first place frees in at most {retry} s",
                retry_after=retry,
            )
        transfer = Transfer(self)
        self._active.append(transfer)
        self._accepted += 1
        try:
            yield transfer
        finally:
            self._active.remove(transfer)

    def stats(self) -> dict[str, Any]:
        return {
            "max_uploads": self.max_uploads,
            "active": len(self._active),
            "accepted": self._accepted,
            "rejected": self._rejected,
            "timed_out": self._timed_out,
            "too_slow": self._too_slow,
        }


async def _read_body(request: Request, limit: int, transfer: Transfer) -> bytes:
    parts: list[bytes] = []
    size = 0
    stream = request.stream()
    try:
        while (chunk := await transfer.next_chunk(stream)) is not None:
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            parts.append(chunk)
    finally:
        await stream.aclose()
    return b"".join(parts)


async def read_upload(request: Request, limit: int, transfer: Transfer) -> Upload:
    """The uploaded image bytes (and form fields), or an :class:`ApiError` (400/408/413/415).
    The body must arrive within ``transfer``'s deadline and minimum rate."""
    check_declared_size(request, limit)
    check_media_type(request)
    body = await _read_body(request, limit, transfer)
    media = _media_type(request)
    if media not in _FORM_TYPES:
        if not body:
            raise ApiError(400, "empty_body", "the request body is empty; send the image bytes")
        return Upload(body)
    if media == "application/x-www-form-urlencoded" and (refused := _not_urlencoded(body)) is not None:
        raise refused
    return await _parse_form(request, body)


async def _parse_form(request: Request, body: bytes) -> Upload:
    # The body is already in memory (and within the limit): replay it to Starlette's
    # multipart parser instead of letting the parser read an unbounded stream.
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    replay = Request(request.scope, receive)
    form = await _parse_request_form(replay, _media_type(request))
    try:
        _single_fields(form)
        upload = form.get("file")
        if not isinstance(upload, UploadFile) and "url" not in form:
            # Say what is missing before judging the other fields: a photo sent under the
            # wrong field name is the common mistake, and its answer is "use `file`".
            raise ApiError(
                400,
                "missing_file",
                "the multipart form has no file field named 'file' (curl: -F file=@photo.jpg), "
                "and no 'url' field",
            )
        fields: dict[str, str] = {}
        background: bytes | None = None
        for key, value in form.multi_items():
            if key == "file":
                continue
            if key == "background" and isinstance(value, UploadFile):  # a background image
                background = await value.read()
                if not background:
                    raise ApiError(400, "empty_body", "the uploaded background image is empty")
                continue
            if not isinstance(value, str):
                raise ApiError(400, "bad_multipart", f"form field {key!r} must be text, not a file")
            fields[key] = value
        if not isinstance(upload, UploadFile):
            if "url" in fields:  # the image is to be fetched from a URL instead
                return Upload(b"", None, fields, background)
            raise ApiError(
                400,
                "missing_file",
                "the multipart form has no file field named 'file' (curl: -F file=@photo.jpg)",
            )
        data = await upload.read()
        if not data:
            raise ApiError(400, "empty_body", f"the uploaded file {upload.filename or ''!r} is empty")
        return Upload(data, upload.filename, fields, background)
    finally:
        await form.close()


# --------------------------------------------------------------------------- clips

#: Bytes gathered before a write to the clip's file (off the event loop).
_WRITE_BLOCK: Final = 1 << 20


@dataclass
class ClipUpload:
    """A clip received into ``path`` (its bytes are on disk, not here)."""

    path: Path
    size: int
    filename: str | None = None
    form: dict[str, str] = field(default_factory=dict)
    #: An uploaded background image (the multipart file field ``background``), encoded.
    background: bytes | None = None


class _CountedBody:
    """The request body as an async iterator under the transfer's clock and a size limit."""

    def __init__(self, request: Request, limit: int, transfer: Transfer) -> None:
        self._stream = request.stream()
        self._limit = limit
        self._transfer = transfer
        self.size = 0

    def __aiter__(self) -> _CountedBody:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._transfer.next_chunk(self._stream)
        if chunk is None:
            raise StopAsyncIteration
        self.size += len(chunk)
        if self.size > self._limit:
            raise _too_large(self._limit, "--max-video-mb")
        return chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


async def _write_stream(body: _CountedBody, path: Path) -> None:
    with open(path, "xb") as out:
        block: list[bytes] = []
        pending = 0
        async for chunk in body:
            block.append(chunk)
            pending += len(chunk)
            if pending >= _WRITE_BLOCK:
                await anyio.to_thread.run_sync(out.write, b"".join(block))
                block, pending = [], 0
        if block:
            await anyio.to_thread.run_sync(out.write, b"".join(block))


def _copy_file(src: BinaryIO, path: Path) -> int:
    src.seek(0)
    with open(path, "xb") as out:
        shutil.copyfileobj(src, out, _WRITE_BLOCK)
        return out.tell()


async def read_clip_upload(request: Request, limit: int, transfer: Transfer, path: Path) -> ClipUpload:
    """Receive a clip into ``path`` (which must not exist): the raw body, or the multipart
    field ``file`` plus option fields and an optional ``background`` image. Errors as for
    :func:`read_upload` (400/408/413/415); ``path`` may be left partly written on error, for
    the caller to remove with its folder."""
    check_declared_size(request, limit, "--max-video-mb")
    check_clip_media_type(request)
    body = _CountedBody(request, limit, transfer)
    try:
        if _media_type(request) != "multipart/form-data":
            await _write_stream(body, path)
            if body.size == 0:
                raise ApiError(400, "empty_body", "the request body is empty; send the clip's bytes")
            return ClipUpload(path, body.size)
        return await _parse_clip_form(request, body, path)
    finally:
        await body.aclose()


async def _parse_clip_form(request: Request, body: _CountedBody, path: Path) -> ClipUpload:
    async def receive() -> Message:
        try:
            chunk = await body.__anext__()
        except StopAsyncIteration:
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.request", "body": chunk, "more_body": True}

    counted = Request(request.scope, receive)
    form = await _parse_request_form(counted, "multipart/form-data")
    try:
        _single_fields(form)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(
                400,
                "missing_file",
                "the multipart form has no file field named 'file' (curl: -F file=@clip.mp4)",
            )
        fields: dict[str, str] = {}
        background: bytes | None = None
        for key, value in form.multi_items():
            if key == "file":
                continue
            if key == "background" and isinstance(value, UploadFile):
                background = await value.read()
                if not background:
                    raise ApiError(400, "empty_body", "the uploaded background image is empty")
                continue
            if not isinstance(value, str):
                raise ApiError(400, "bad_multipart", f"form field {key!r} must be text, not a file")
            fields[key] = value
        size = await anyio.to_thread.run_sync(_copy_file, upload.file, path)
        if size == 0:
            raise ApiError(400, "empty_body", f"the uploaded file {upload.filename or ''!r} is empty")
        return ClipUpload(path, size, upload.filename, fields, background)
    finally:
        await form.close()
