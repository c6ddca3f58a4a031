"""Probe and decode a clip: frames as upright RGB arrays with their timestamps.

Rotation metadata (the display matrix) is applied to the pixels, so every later stage and
every output sees the clip the way a player shows it; the outputs carry no rotation.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputNotFoundError
from .errors import (
    NoVideoStreamError,
    TruncatedVideoError,
    UnreadableVideoError,
    UnsupportedVideoError,
    VideoTooLargeError,
)

__all__ = [
    "Frame",
    "VideoInfo",
    "display_rotation",
    "iter_frames",
    "open_video",
    "probe",
    "stream_info",
    "upright",
]

VideoSource = str | os.PathLike[str]


@dataclass(frozen=True)
class VideoInfo:
    """What a clip holds: upright size (rotation applied), nominal frame rate, the video
    stream's time base, its rotation in degrees (counter-clockwise, as FFmpeg reports it),
    the frame count the header claims (0 when unknown) and whether it has audio."""

    width: int
    height: int
    rate: Fraction | None
    time_base: Fraction
    rotation: int
    frames: int
    duration: float | None
    has_audio: bool
    codec: str


@dataclass(frozen=True)
class Frame:
    """One decoded frame: ``pixels`` ``[H, W, 3]`` uint8 RGB (upright), ``pts`` in
    ``time_base`` units (``None`` when the clip has none), ``index`` from 0."""

    pixels: np.ndarray
    pts: int | None
    time_base: Fraction
    index: int

    @property
    def time(self) -> float | None:
        return None if self.pts is None else float(self.pts * self.time_base)


def open_video(src: VideoSource) -> Any:
    """The opened container (PyAV), with its errors turned into ours."""
    import av

    path = Path(src)
    if not path.is_file():
        raise InputNotFoundError(f"no such video file: {path}")
    if path.stat().st_size == 0:
        raise UnreadableVideoError(f"{path} is empty; expected a video clip")
    try:
        container = av.open(str(path), mode="r")
    except av.error.InvalidDataError as exc:
        raise UnreadableVideoError(f"{path} is not a video FFmpeg can read ({exc})") from exc
    except av.error.FFmpegError as exc:
        raise UnreadableVideoError(f"{path} could not be opened as a video: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise NoVideoStreamError(
            f"{path} has no video stream (audio-only or data file); expected a video clip"
        )
    stream = container.streams.video[0]
    ctx = stream.codec_context
    if ctx is None or not getattr(ctx, "is_decoder", True):
        fmt = container.format.name
        container.close()
        raise UnsupportedVideoError(
            f"{path}: its video codec is one this FFmpeg build cannot decode (container {fmt}); "
            "convert the clip to H.264, VP9, ProRes or AV1 first"
        )
    return container


def display_rotation(container: Any) -> int:
    """Counter-clockwise degrees from the display matrix, read off the first frame (PyAV
    reports it per frame); 0 when none or when no frame decodes here."""
    import av

    stream = container.streams.video[0]
    try:
        for frame in container.decode(stream):
            angle: float = frame.rotation
            return round(angle) % 360
    except av.error.FFmpegError:
        return 0
    return 0


def upright(pixels: np.ndarray, rotation: int) -> np.ndarray:
    """Turn pixels stored with a ``rotation`` (CCW degrees to display) upright."""
    if rotation == 0:
        return pixels
    return np.ascontiguousarray(np.rot90(pixels, k=round(rotation / 90) % 4))


def probe(src: VideoSource) -> VideoInfo:
    """The clip's :class:`VideoInfo` without decoding it."""
    with open_video(src) as container:
        return stream_info(container, display_rotation(container))


def stream_info(container: Any, rotation: int) -> VideoInfo:
    """What the first video stream of an open ``container`` holds, shown upright after a
    ``rotation`` (:func:`display_rotation`)."""
    stream = container.streams.video[0]
    ctx = stream.codec_context
    w, h = int(ctx.width), int(ctx.height)
    if rotation in (90, 270):
        w, h = h, w
    rate = stream.average_rate or stream.base_rate or stream.guessed_rate
    duration = float(stream.duration * stream.time_base) if stream.duration else None
    if duration is None and container.duration:
        duration = container.duration / 1_000_000
    return VideoInfo(
        width=w,
        height=h,
        rate=Fraction(rate) if rate else None,
        time_base=Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000),
        rotation=rotation,
        frames=int(stream.frames or 0),
        duration=duration,
        has_audio=bool(container.streams.audio),
        codec=str(ctx.name),
    )


def iter_frames(src: VideoSource, *, max_pixels: int = 100_000_000) -> Iterator[Frame]:
    """Decode ``src`` frame by frame (RGB, upright, timestamps kept). Raises
    :class:`~cleancut.video.errors.VideoTooLargeError` before decoding a frame over
    ``max_pixels``, :class:`~cleancut.video.errors.TruncatedVideoError` when the data ends
    before the first frame or well before the frame count the header states."""
    import av

    with open_video(src) as container:
        info = stream_info(container, 0)
        if info.width * info.height > max_pixels:
            raise VideoTooLargeError(
                f"{src}: {info.width}×{info.height} frames are over the limit of {max_pixels} pixels"
            )
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        tb = info.time_base
        index = 0
        try:
            for frame in container.decode(stream):
                if frame.width * frame.height > max_pixels:
                    raise VideoTooLargeError(
                        f"{src}: {frame.width}×{frame.height} frames are over the limit of "
                        f"{max_pixels} pixels"
                    )
                rgb = frame.to_ndarray(format="rgb24")
                yield Frame(upright(rgb, round(frame.rotation) % 360), frame.pts, tb, index)
                index += 1
        except av.error.InvalidDataError as exc:
            if index == 0:
                raise TruncatedVideoError(f"{src}: no frame could be decoded ({exc})") from exc
            raise TruncatedVideoError(f"{src}: the data is damaged after frame {index} ({exc})") from exc
        except av.error.DecoderNotFoundError as exc:  # pragma: no cover - depends on the build
            raise UnsupportedVideoError(f"{src}: no decoder for codec {info.codec!r}") from exc
        except av.error.FFmpegError as exc:
            raise TruncatedVideoError(f"{src}: decoding stopped after frame {index}: {exc}") from exc
        if index == 0:
            raise TruncatedVideoError(f"{src}: the clip holds no decodable frame (truncated or empty)")
        if info.frames and index < info.frames * 0.9 - 1:
            raise TruncatedVideoError(
                f"{src}: only {index} of the {info.frames} frames the header states could be decoded "
                "(the file is truncated)"
            )
