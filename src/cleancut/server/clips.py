"""A clip on the server, before and while it is cut out: :func:`inspect_clip` checks it
(readable, a video stream, within the limits, not truncated) without any inference, and
:class:`ClipRun` cuts it out frame by frame in steps the job queue's pools run (the jobs
around it: :mod:`cleancut.server.video`)."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, cast

import numpy as np

from .. import stages
from ..cutout import make_cutout
from ..errors import ImageError
from ..options import CutOptions
from ..video.cut import prepare_options
from ..video.decode import Frame, VideoInfo, iter_frames, open_video, probe
from ..video.encode import OutputKind, Target, VideoWriter
from ..video.errors import TruncatedVideoError, UnreadableVideoError, VideoError, VideoTooLargeError
from ..video.temporal import TemporalSmoother
from .errors import VideoTooLongError
from .options import VideoOptions
from .settings import ServerSettings

if TYPE_CHECKING:
    from ..remover import Remover

__all__ = ["CLIP_NAME", "ClipFacts", "ClipRun", "inspect_clip", "prepare_clip", "too_many_frames"]

#: The clip's own name inside its job folder (never the client's name).
CLIP_NAME: Final = "clip"


# --------------------------------------------------------------------------- checking a clip


@dataclass(frozen=True)
class ClipFacts:
    """What a clip holds, as checked before it is admitted: the probe's :class:`VideoInfo`,
    the frames counted by reading its packets, and its duration in seconds."""

    info: VideoInfo
    frames: int
    seconds: float


def _anonymous(exc: VideoError, path: Path) -> VideoError:
    """The same error without the server's temporary path in its message."""
    text = str(exc).replace(str(path), "the clip")
    renamed = type(exc)(text)
    renamed.__cause__ = exc.__cause__
    return renamed


def inspect_clip(path: Path, *, max_seconds: float, max_frames: int, max_pixels: int) -> ClipFacts:
    """Check the clip at ``path`` without decoding more than its first frame: readable, with
    a video stream, frames within ``max_pixels``, and its packets (read, not decoded) within
    ``max_frames`` and ``max_seconds``; a clip whose packets end well before the frame count
    its header states is truncated. Raises :mod:`cleancut.video.errors` errors (400/413/415)
    and :class:`~cleancut.server.errors.VideoTooLongError` (413)."""
    try:
        return _inspect(path, max_seconds, max_frames, max_pixels)
    except VideoError as exc:
        raise _anonymous(exc, path) from exc.__cause__


def _inspect(path: Path, max_seconds: float, max_frames: int, max_pixels: int) -> ClipFacts:
    import av

    info = probe(path)
    if info.width * info.height > max_pixels:
        raise VideoTooLargeError(
            f"the clip's frames are {info.width}×{info.height} = {info.width * info.height:,} pixels, "
            f"over the server's limit of {max_pixels:,} (--max-video-pixels)"
        )
    if info.frames > max_frames:  # the header's count: the clip's own number of frames
        raise too_many_frames(info.frames, max_frames, exact=True)
    count = 0
    first = last = None
    with open_video(path) as container:
        stream = container.streams.video[0]
        tb = stream.time_base
        try:
            for packet in container.demux(stream):
                if packet.size == 0:  # the demuxer's end-of-stream marker
                    continue
                count += 1
                if count > max_frames:  # counting stops here: there may be more
                    raise too_many_frames(count, max_frames, exact=False)
                if packet.pts is not None and tb:
                    t = float(packet.pts * tb)
                    first = t if first is None else min(first, t)
                    last = t if last is None else max(last, t)
                    if last - first > max_seconds:
                        raise _too_long(last - first, max_seconds)
        except av.error.FFmpegError as exc:
            raise TruncatedVideoError(f"the clip's data is damaged after {count} frames ({exc})") from exc
    if count == 0:
        raise TruncatedVideoError("the clip holds no video frame (truncated or empty)")
    if info.frames and count < info.frames * 0.9 - 1:
        raise TruncatedVideoError(
            f"only {count} of the {info.frames} frames the clip's header states are in the file "
            "(the file is truncated)"
        )
    _first_frame(path)
    step = float(1 / info.rate) if info.rate else 0.0
    seconds = (last - first) + step if first is not None and last is not None else (info.duration or 0.0)
    if seconds > max_seconds + 1e-3:
        raise _too_long(seconds, max_seconds)
    return ClipFacts(info, count, seconds)


def _first_frame(path: Path) -> None:
    """Decode the first frame: bytes that merely look like a container (a stray header) are
    refused here, not after the clip was admitted."""
    import av

    with open_video(path) as container:
        try:
            for _frame in container.decode(container.streams.video[0]):
                return
        except av.error.FFmpegError as exc:
            raise UnreadableVideoError(
                f"the clip's first frame could not be decoded: it is not a video FFmpeg can read, or "
                f"it is damaged ({exc})"
            ) from exc
    raise UnreadableVideoError(
        "no frame of the clip could be decoded: it is not a video FFmpeg can read, or it is damaged"
    )


def too_many_frames(frames: int, limit: int, *, exact: bool) -> VideoTooLongError:
    """The 413 for a clip over ``limit`` frames. ``exact``: ``frames`` is the clip's own
    count (its header's); else counting stopped at ``frames`` and the clip has "more than"
    the limit (never "more than" a number it may have exactly)."""
    has = f"{frames:,} frames" if exact else f"more than {limit:,} frames"
    return VideoTooLongError(f"the clip has {has}, over the server's limit of {limit:,} (--max-video-frames)")


def _too_long(seconds: float, limit: float) -> VideoTooLongError:
    return VideoTooLongError(
        f"the clip lasts more than {seconds:.1f} s, over the server's limit of {limit:g} s "
        "(--max-video-seconds)"
    )


def prepare_clip(
    remover: Remover, path: Path, options: VideoOptions, settings: ServerSettings
) -> tuple[ClipFacts, CutOptions]:
    """Everything checked before a clip is admitted (in a worker thread): the clip itself
    (:func:`inspect_clip`) and its cut options, with an uploaded background image decoded."""
    facts = inspect_clip(
        path,
        max_seconds=settings.max_video_seconds,
        max_frames=settings.max_video_frames,
        max_pixels=min(settings.max_video_pixels, settings.max_pixels),
    )
    cut = options.cut
    try:
        prepared = prepare_options(
            remover, type=cut.type, edges=cut.edges, framing=cut.framing, mode=cut.mode
        )
    except ImageError as exc:  # same status as for the clip, saying which image it was
        raise type(exc)(f"the background image: {exc}") from exc
    return facts, prepared


# --------------------------------------------------------------------------- one clip, frame by frame


class ClipRun:
    """A clip's frames through the photo stages, in steps the job runs on the queue's pools:
    :meth:`next_frame` (decode and the network's inputs, I/O pool), the network (inference
    pool, :meth:`Engine.infer_frame`), :meth:`finish_frame` (the temporal step, the mask,
    the cut-out and its encoding, I/O pool), then :meth:`close` or :meth:`abort`. The same
    steps as :func:`cleancut.video.remove_video`, so the server's clip is the library's."""

    def __init__(
        self,
        remover: Remover,
        clip: Path,
        output: Path,
        facts: ClipFacts,
        options: VideoOptions,
        cut: CutOptions,
        *,
        max_pixels: int,
    ) -> None:
        self.remover = remover
        self.clip = clip
        self.cut = cut
        self.max_pixels = max_pixels
        self.smoother = TemporalSmoother() if options.smooth else None
        self._frames = cast(Generator[Frame, None, None], iter_frames(clip, max_pixels=max_pixels))
        self.writer = VideoWriter(
            Target(output, cast(OutputKind, options.format)),
            facts.info,
            mask=cut.type == "mask",
            bg_color=options.cut.bg_color,
            audio_from=clip,
        )

    def next_frame(self) -> tuple[Frame, list[np.ndarray]] | None:
        try:
            frame = next(self._frames, None)
        except VideoError as exc:
            raise _anonymous(exc, self.clip) from exc.__cause__
        if frame is None:
            return None
        return frame, stages.prepare(frame.pixels, self.cut.mode, self.remover.recipe)

    def finish_frame(self, frame: Frame, y: np.ndarray) -> None:
        if self.smoother is not None:
            y = self.smoother.step(frame.pixels, y)
        mask = stages.make_mask(y, frame.pixels, self.cut.edges, self.remover.recipe)
        cut = make_cutout(
            frame.pixels,
            mask,
            self.cut.type,
            edges=self.cut.edges,
            framing=self.cut.framing,
            max_pixels=self.max_pixels,
        )
        self.writer.write(cut.pixels, frame.pts)

    def close(self) -> Path:
        self._frames.close()
        return self.writer.close()

    def abort(self) -> None:
        try:
            self._frames.close()
        finally:
            self.writer.abort()
