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
    "Extent",
    "Frame",
    "VideoInfo",
    "display_rotation",
    "iter_frames",
    "open_video",
    "probe",
    "require_video",
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


def require_video() -> None:
    """Raise :class:`~cleancut.video.errors.UnsupportedVideoError`, saying how to install
    it, when the ``video`` extra (PyAV) is missing: every front checks this before any work."""
    try:
        import av  # noqa: F401
    except ImportError as exc:
        raise UnsupportedVideoError(
            f"cutting out video clips needs the video extra (PyAV and its FFmpeg), which is not "
            f"installed ({exc}); install it with: pip install 'cleancut[video]'"
        ) from None


def open_video(src: VideoSource) -> Any:
    """The opened container (PyAV), with its errors turned into ours."""
    require_video()
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


class Extent:
    """The time the packets read so far cover, over every stream (a clip whose audio runs
    past its video is not cut short): compared with what the header declares once the
    packets end (:meth:`check`), as every container must be."""

    def __init__(self) -> None:
        self.start: float | None = None
        self.end: float | None = None

    def add(self, packet: Any) -> None:
        at = packet.pts if packet.pts is not None else packet.dts
        if at is None or packet.size == 0 or not packet.time_base:
            return
        begin = float(at * packet.time_base)
        finish = float((at + (packet.duration or 0)) * packet.time_base)
        self.start = begin if self.start is None else min(self.start, begin)
        self.end = finish if self.end is None else max(self.end, finish)

    def check(self, src: VideoSource, container: Any, info: VideoInfo, count: int, what: str) -> None:
        """Raise :class:`~cleancut.video.errors.TruncatedVideoError` when ``count`` frames
        (``what``: "could be decoded", "are in the file") fall well short of the frame count
        the header states, or the packets end well before the duration it states (Matroska,
        WebM and MPEG-TS state no frame count). Short: more than 10 % and a frame."""
        if info.frames and count < info.frames * 0.9 - 1:
            raise TruncatedVideoError(
                f"{src}: only {count} of the {info.frames} frames the header states {what} "
                "(the file is truncated)"
            )
        declared = container.duration / 1_000_000 if container.duration else None
        if declared is None or self.end is None:
            return
        origin = container.start_time / 1_000_000 if container.start_time is not None else self.start
        covered = self.end - (origin if origin is not None else 0.0)
        frame = float(1 / info.rate) if info.rate else 0.1
        if covered < declared * 0.9 - frame:
            raise TruncatedVideoError(
                f"{src}: the data ends at {max(covered, 0.0):.2f} s of the {declared:.2f} s the "
                f"header states ({count} frames {what}; the file is truncated)"
            )


def iter_frames(src: VideoSource, *, max_pixels: int = 100_000_000) -> Iterator[Frame]:
    """Decode ``src`` frame by frame (RGB, upright, timestamps kept). Raises
    :class:`~cleancut.video.errors.VideoTooLargeError` before decoding a frame over
    ``max_pixels``, :class:`~cleancut.video.errors.TruncatedVideoError` when the data ends
    before the first frame or well before the frame count or the duration the header
    states (:class:`Extent`)."""
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
        extent = Extent()
        try:
            # every stream's packets, so that their extent can be checked; only video decoded
            for packet in container.demux():
                extent.add(packet)
                if packet.stream.index != stream.index:
                    continue
                for frame in packet.decode():
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
        extent.check(src, container, info, index, "could be decoded")
