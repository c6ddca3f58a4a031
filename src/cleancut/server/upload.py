"""Reading the photo out of a request, within the upload limit.

Two shapes are accepted: the raw image as the body (``Content-Type: image/*`` or
``application/octet-stream``) or a multipart form with the image in the field ``file``
(plus option fields). A form may give the field ``url`` instead of ``file``: the route
then fetches the image (:mod:`cleancut.urls`). The size limit is enforced twice: a declared
``Content-Length`` over it is refused before a byte is read, and the bytes actually received
are counted while they stream in, so a chunked or lying client is cut off at the limit too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.types import Message

from .errors import ApiError

__all__ = ["Upload", "read_upload"]

_RAW_TYPES: Final = ("application/octet-stream",)
#: Form encodings; a URL-encoded form can only carry ``url`` (curl -d url=…), not a file.
_FORM_TYPES: Final = ("multipart/form-data", "application/x-www-form-urlencoded")
#: Form fields besides ``file``: the options, with room to spare for a clear 422 on typos.
_MAX_FORM_FIELDS: Final = 40
#: ``file`` and an optional background image (field ``background``).
_MAX_FORM_FILES: Final = 2


@dataclass
class Upload:
    data: bytes
    filename: str | None = None
    form: dict[str, str] = field(default_factory=dict)
    #: An uploaded background image (the multipart file field ``background``), encoded.
    background: bytes | None = None


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "upload_too_large",
        f"the upload is larger than the limit of {limit:,} bytes ({limit / 2**20:.1f} MiB); "
        "the server's --max-upload-mb sets it",
    )


def check_declared_size(request: Request, limit: int) -> None:
    """Refuse a declared ``Content-Length`` over the limit without reading the body."""
    declared = request.headers.get("content-length")
    if declared is None:
        return
    try:
        size = int(declared)
    except ValueError:
        raise ApiError(400, "bad_request", f"Content-Length {declared!r} is not a number") from None
    if size > limit:
        raise _too_large(limit)


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


async def _read_body(request: Request, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        parts.append(chunk)
    return b"".join(parts)


async def read_upload(request: Request, limit: int) -> Upload:
    """The uploaded image bytes (and form fields), or an :class:`ApiError` (400/413/415)."""
    check_declared_size(request, limit)
    check_media_type(request)
    body = await _read_body(request, limit)
    if _media_type(request) not in _FORM_TYPES:
        if not body:
            raise ApiError(400, "empty_body", "the request body is empty; send the image bytes")
        return Upload(body)
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
    try:
        form = await replay.form(max_files=_MAX_FORM_FILES, max_fields=_MAX_FORM_FIELDS)
    except (MultiPartException, HTTPException) as exc:
        detail = getattr(exc, "message", None) or getattr(exc, "detail", None) or str(exc)
        raise ApiError(400, "bad_multipart", f"the multipart form could not be parsed: {detail}") from exc
    try:
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
