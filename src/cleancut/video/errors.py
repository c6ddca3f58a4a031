"""Errors of the video path: each is also the photo error a caller already catches
(``except cleancut.ImageError`` covers a bad clip too)."""

from __future__ import annotations

from ..errors import (
    ImageError,
    ImageTooLargeError,
    TruncatedImageError,
    UnreadableImageError,
    UnsupportedImageError,
)

__all__ = [
    "NoVideoStreamError",
    "TruncatedVideoError",
    "UnreadableVideoError",
    "UnsupportedVideoError",
    "VideoError",
    "VideoTooLargeError",
]


class VideoError(ImageError):
    """The input clip cannot be used."""


class UnreadableVideoError(VideoError, UnreadableImageError):
    """The file is empty, not a media file, or corrupt."""


class NoVideoStreamError(UnreadableVideoError):
    """The file is a media file without a video stream (audio only, for example)."""


class TruncatedVideoError(VideoError, TruncatedImageError):
    """The clip ends before its last frame: no frame, or fewer than its header says, decoded."""


class UnsupportedVideoError(VideoError, UnsupportedImageError):
    """The codec or container cannot be decoded (or written) with the installed FFmpeg."""


class VideoTooLargeError(VideoError, ImageTooLargeError):
    """A frame has more pixels than the configured limit."""
