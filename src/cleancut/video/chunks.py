"""Chunks of a clip for many machines: planned at keyframes, each decoded on its own.

:func:`plan_chunks` reads the video stream's packets (timestamps and keyframe flags, no
decoding) and cuts the clip into chunks of about ``chunk_seconds`` that start at keyframes.
Each chunk owns the frames whose timestamps fall in ``[start_pts, end_pts)``, so the chunks
partition the clip exactly, whatever the decoder later does.

The temporal step (:class:`~cleancut.video.temporal.TemporalSmoother`) carries state from
frame to frame, so a chunk cut alone would start with a fresh smoother where a single
machine had several frames of history: a seam. Each chunk therefore also gets ``warmup``
frames before its start: they are decoded and go through the network and the smoother, but
are not emitted. The smoother forgets exponentially (``strength`` per still frame, none where
the image moves), so after the warm-up its state matches the single-machine run's to well
under one alpha level (``docs/ray.md`` has the measurements).

:func:`iter_chunk` decodes one chunk: it seeks to the last keyframe at or before the
warm-up's first frame and yields ``(frame, warm)`` pairs, warm-up frames first.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from .decode import (
    Extent,
    Frame,
    VideoInfo,
    VideoSource,
    display_rotation,
    open_video,
    stream_info,
    upright,
)
from .errors import TruncatedVideoError, UnsupportedVideoError, VideoTooLargeError

__all__ = ["DEFAULT_CHUNK_SECONDS", "DEFAULT_WARMUP", "Chunk", "ChunkPlan", "iter_chunk", "plan_chunks"]

#: Seconds of clip per chunk: long enough that the warm-up costs little (24 of 300 frames at
#: 30 fps), short enough that a cluster gets many chunks out of a minute of video.
DEFAULT_CHUNK_SECONDS = 10.0
#: Frames cut before a chunk's start to bring the smoother's state to the single-machine
#: run's (0.85²⁴ ≈ 2 %: what is left of the difference in still regions).
DEFAULT_WARMUP = 24


@dataclass(frozen=True)
class Chunk:
    """One chunk: frames ``first`` .. ``first + frames - 1`` of the clip (in presentation
    order), those with ``start_pts <= pts < end_pts`` (``None``: open on that side).
    ``warmup`` frames before it, from ``warmup_pts`` on, are cut but not emitted; decoding
    starts at the keyframe ``seek_pts`` (``None``: at the start of the file)."""

    index: int
    first: int
    frames: int
    start_pts: int | None
    end_pts: int | None
    warmup: int
    warmup_pts: int | None
    seek_pts: int | None
    time_base: Fraction
    #: the clip's first frame's pts (times in messages count from it)
    origin_pts: int = 0

    @property
    def start_time(self) -> float:
        """Seconds from the clip's first frame to this chunk's."""
        return 0.0 if self.start_pts is None else float((self.start_pts - self.origin_pts) * self.time_base)

    def owns(self, pts: int) -> bool:
        return (self.start_pts is None or pts >= self.start_pts) and (
            self.end_pts is None or pts < self.end_pts
        )

    def describe(self) -> str:
        last = self.first + self.frames - 1
        return f"chunk {self.index} (frames {self.first}–{last}, from {self.start_time:.2f} s)"


@dataclass(frozen=True)
class ChunkPlan:
    """The chunks of a clip, in order, with its :class:`~cleancut.video.decode.VideoInfo`
    and the number of frames its packets hold."""

    info: VideoInfo
    frames: int
    chunks: tuple[Chunk, ...]


def _packets(container: Any, src: VideoSource) -> tuple[list[int | None], set[int], Extent]:
    """Every video packet's pts and the keyframes' pts, read without decoding, and the
    extent every stream's packets cover."""
    import av

    stream = container.streams.video[0]
    pts: list[int | None] = []
    keys: set[int] = set()
    extent = Extent()
    try:
        for packet in container.demux():
            extent.add(packet)
            if packet.size == 0 or packet.stream.index != stream.index:  # a flush packet, audio
                continue
            pts.append(packet.pts)
            if packet.is_keyframe and packet.pts is not None:
                keys.add(packet.pts)
    except av.error.FFmpegError as exc:
        raise TruncatedVideoError(
            f"{src}: the data is damaged after video packet {len(pts)} ({exc})"
        ) from exc
    return pts, keys, extent


def plan_chunks(
    src: VideoSource,
    *,
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
    warmup: int = DEFAULT_WARMUP,
    max_pixels: int = 100_000_000,
) -> ChunkPlan:
    """Plan ``src``'s chunks: about ``chunk_seconds`` each, every one but the first starting
    at a keyframe, with ``warmup`` frames before it (fewer near the start). A clip whose
    packets carry no timestamps, or without keyframes after its start, is one chunk.

    Raises the errors of :func:`~cleancut.video.decode.probe` and
    :class:`~cleancut.video.errors.TruncatedVideoError` when the packets end well before the
    frame count or the duration the header states (the rule
    :func:`~cleancut.video.decode.iter_frames` applies),
    :class:`~cleancut.video.errors.VideoTooLargeError` over ``max_pixels``."""
    if not chunk_seconds > 0:
        from ..errors import InvalidOptionError

        raise InvalidOptionError(f"chunk_seconds must be above 0, got {chunk_seconds}")
    if warmup < 0:
        from ..errors import InvalidOptionError

        raise InvalidOptionError(f"warmup must be 0 or more frames, got {warmup}")
    with open_video(src) as container:
        info = stream_info(container, display_rotation(container))
    if info.width * info.height > max_pixels:
        raise VideoTooLargeError(
            f"{src}: {info.width}×{info.height} frames are over the limit of {max_pixels} pixels"
        )
    with open_video(src) as container:
        raw, keys, extent = _packets(container, src)
        if not raw:
            raise TruncatedVideoError(f"{src}: the clip holds no video packet (truncated or empty)")
        extent.check(src, container, info, len(raw), "are in the file")
    tb = info.time_base
    whole = Chunk(0, 0, len(raw), None, None, 0, None, None, tb)
    if any(p is None for p in raw):
        return ChunkPlan(info, len(raw), (whole,))
    order = sorted({p for p in raw if p is not None})
    keyframes = sorted(keys)
    # chunk starts: the first keyframe at least chunk_seconds after the previous start, as
    # long as half a chunk is left after it (a short tail stays with the chunk before)
    step = Fraction(chunk_seconds) / tb
    starts = [0]
    end_pts = order[-1]
    for k in keyframes:
        i = bisect.bisect_left(order, k)
        if i <= starts[-1] or k - order[starts[-1]] < step or end_pts - k < step / 2:
            continue
        starts.append(i)
    chunks: list[Chunk] = []
    for n, s in enumerate(starts):
        e = starts[n + 1] if n + 1 < len(starts) else len(order)
        w = min(warmup, s)
        from_pts = order[s - w]
        # the last keyframe at or before the warm-up's first frame (none: the file's start)
        j = bisect.bisect_right(keyframes, from_pts) - 1
        seek = keyframes[j] if n > 0 and j >= 0 else None
        chunks.append(
            Chunk(
                index=n,
                first=s,
                frames=e - s,
                start_pts=None if n == 0 else order[s],
                end_pts=None if n + 1 == len(starts) else order[e],
                warmup=w,
                warmup_pts=None if w == 0 or n == 0 else from_pts,
                seek_pts=seek,
                time_base=tb,
                origin_pts=order[0],
            )
        )
    return ChunkPlan(info, len(order), tuple(chunks))


def iter_chunk(
    src: VideoSource, chunk: Chunk, *, max_pixels: int = 100_000_000
) -> Iterator[tuple[Frame, bool]]:
    """Decode ``chunk`` of ``src``: ``(frame, warm)`` for its warm-up frames (``warm`` true),
    then for its own frames, RGB and upright as :func:`~cleancut.video.decode.iter_frames`
    gives them (``index`` counts from the clip's start). Seeks to the chunk's keyframe; where
    the container lands after a frame it needs, decodes from the start instead.

    Raises :class:`~cleancut.video.errors.TruncatedVideoError` where the data is damaged or
    the chunk holds no frame, :class:`~cleancut.video.errors.VideoTooLargeError` over
    ``max_pixels``."""
    import av

    begin = chunk.warmup_pts if chunk.warmup_pts is not None else chunk.start_pts
    seek = chunk.seek_pts
    while True:
        landed_late = decoded = False
        emitted = 0
        index = chunk.first - chunk.warmup
        with open_video(src) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            tb = Fraction(stream.time_base) if stream.time_base else chunk.time_base
            try:
                if seek is not None:
                    container.seek(seek, backward=True, any_frame=False, stream=stream)
                for frame in container.decode(stream):
                    if frame.pts is None:
                        raise TruncatedVideoError(
                            f"{src}: a frame without a timestamp in {chunk.describe()}; "
                            "cut this clip on one machine"
                        )
                    if seek is not None and begin is not None and frame.pts > begin and not decoded:
                        landed_late = True  # the seek landed after the first frame needed
                        break
                    decoded = True
                    if begin is not None and frame.pts < begin:
                        continue
                    if chunk.end_pts is not None and frame.pts >= chunk.end_pts:
                        break
                    if frame.width * frame.height > max_pixels:
                        raise VideoTooLargeError(
                            f"{src}: {frame.width}×{frame.height} frames are over the limit of "
                            f"{max_pixels} pixels"
                        )
                    rgb = frame.to_ndarray(format="rgb24")
                    warm = not chunk.owns(frame.pts)
                    yield Frame(upright(rgb, round(frame.rotation) % 360), frame.pts, tb, index), warm
                    index += 1
                    emitted += not warm
            except av.error.InvalidDataError as exc:
                raise TruncatedVideoError(
                    f"{src}: the data is damaged in {chunk.describe()} ({exc})"
                ) from exc
            except av.error.DecoderNotFoundError as exc:  # pragma: no cover - depends on the build
                raise UnsupportedVideoError(f"{src}: no decoder for this clip's codec") from exc
            except av.error.FFmpegError as exc:
                raise TruncatedVideoError(f"{src}: decoding stopped in {chunk.describe()}: {exc}") from exc
        if landed_late:
            seek = None  # decode from the start of the file instead
            continue
        if emitted == 0:
            raise TruncatedVideoError(f"{src}: {chunk.describe()} holds no decodable frame")
        return
