"""HTTP errors: one JSON shape, ``{"error": code, "detail": message}``, and one mapping from
cleancut's exception tree onto status codes, kept here so every route answers alike.

Bad input is never a 500: images that cannot be read are 400, too large 413, of a type we
cannot decode 415, bad options 422, overload 503 with ``Retry-After``; a ``url`` the policy
refuses is 400, one that cannot be fetched 502. A 500 means a bug.
"""

from __future__ import annotations

from typing import Final

from ..errors import (
    CleancutError,
    ImageTooLargeError,
    InvalidOptionError,
    ModelError,
    TruncatedImageError,
    UnknownModelError,
    UnreadableImageError,
    UnsupportedImageError,
    UrlFetchError,
    UrlRefusedError,
)
from ..video.errors import (
    NoVideoStreamError,
    TruncatedVideoError,
    UnreadableVideoError,
    UnsupportedVideoError,
    VideoTooLargeError,
)

__all__ = ["ApiError", "VideoTooLongError", "from_cleancut_error"]


class VideoTooLongError(VideoTooLargeError):
    """A clip lasts longer, or holds more frames, than the server takes (413)."""


class ApiError(Exception):
    """An answer other than 2xx, raised anywhere in a request and rendered as JSON."""

    def __init__(self, status: int, code: str, detail: str, *, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}

    def body(self) -> dict[str, str]:
        return {"error": self.code, "detail": self.detail}


# Most specific first: the first isinstance match wins. A model that failed to load is the
# server's problem, not the client's: 503, and worth retrying later.
_MAPPING: Final[tuple[tuple[type[CleancutError], int, str, int | None], ...]] = (
    # clips first: each video error is also the photo error of the same kind
    (VideoTooLongError, 413, "video_too_long", None),
    (VideoTooLargeError, 413, "video_too_large", None),
    (UnsupportedVideoError, 415, "unsupported_video", None),
    (TruncatedVideoError, 400, "truncated_video", None),
    (NoVideoStreamError, 400, "no_video_stream", None),
    (UnreadableVideoError, 400, "unreadable_video", None),
    (ImageTooLargeError, 413, "image_too_large", None),
    (UnsupportedImageError, 415, "unsupported_image", None),
    (TruncatedImageError, 400, "truncated_image", None),
    (UnreadableImageError, 400, "unreadable_image", None),
    (InvalidOptionError, 422, "invalid_option", None),
    (UnknownModelError, 422, "invalid_option", None),
    (ModelError, 503, "model_unavailable", 30),
    (UrlRefusedError, 400, "url_refused", None),
    # the client's URL failed, not this server: a bad gateway, not a 5xx of our own making
    (UrlFetchError, 502, "url_fetch_failed", None),
)


def from_cleancut_error(exc: CleancutError) -> ApiError:
    """The HTTP answer for an error cleancut raised on purpose."""
    for cls, status, code, retry_after in _MAPPING:
        if isinstance(exc, cls):
            return ApiError(status, code, str(exc), retry_after=retry_after)
    return ApiError(400, "bad_request", str(exc))
