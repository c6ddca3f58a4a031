"""``remove_video``: a clip in, its cut-out out, with decode, inference and encode
overlapped (decode and encode each on their own thread, inference on the caller's)."""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .. import pipeline
from ..errors import InvalidOptionError
from ..framing.geometry import check_canvas
from ..options import EngineOptions
from ..planning import real_path, same_file
from ..progress import CancelSignal, ProgressCallback
from .cut import cut_with_options, prepare_options, remover_for
from .decode import Frame, VideoSource, iter_frames, probe, require_video
from .encode import VideoWriter, target_for
from .temporal import TemporalSmoother

if TYPE_CHECKING:
    from ..config import Settings
    from ..edges import EdgeOptions
    from ..framing import Framing
    from ..remover import Remover

__all__ = ["VideoResult", "remove_video"]

T = TypeVar("T")
_END = object()


@dataclass(frozen=True)
class VideoResult:
    """What :func:`remove_video` wrote: the output path, the frame count and seconds taken."""

    path: Path
    frames: int
    seconds: float

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def _ahead(items: Iterable[T], depth: int = 4) -> Iterator[T]:
    """``items`` produced on a thread of its own, up to ``depth`` ahead; its errors are
    raised here, in order. Stops the thread when the consumer stops early."""
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def run() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_END)
        except BaseException as exc:
            q.put(exc)

    thread = threading.Thread(target=run, name="cleancut-video-decode", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


class _Encoder:
    """The writer on a thread of its own, fed through a bounded queue."""

    def __init__(self, writer: VideoWriter, depth: int = 4) -> None:
        self.writer = writer
        self.q: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="cleancut-video-encode", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.q.get()
            if item is _END:
                return
            if self.error is None:
                try:
                    self.writer.write(*item)
                except BaseException as exc:
                    self.error = exc

    def put(self, pixels: Any, pts: int | None) -> None:
        if self.error is not None:
            raise self.error
        self.q.put((pixels, pts))

    def finish(self) -> None:
        self.q.put(_END)
        self.thread.join()
        if self.error is not None:
            raise self.error


def remove_video(
    src: VideoSource,
    dst: str | os.PathLike[str],
    *,
    type: str = "foreground",
    bg_color: str | tuple[int, int, int] | None = None,
    edges: EdgeOptions | None = None,
    framing: Framing | None = None,
    mode: str = "default",
    smooth: bool | TemporalSmoother = True,
    audio: bool = True,
    overwrite: bool = False,
    quality: int = 30,
    remover: Remover | None = None,
    engine: EngineOptions | None = None,
    settings: Settings | None = None,
    progress: ProgressCallback | Callable[[int, int], None] | None = None,
    cancel: CancelSignal | None = None,
) -> VideoResult:
    """Cut the subject out of the clip ``src`` into ``dst``:

    * ``clip.webm``: VP9 with alpha; ``clip.mov``: ProRes 4444 with alpha;
    * ``clip.mp4``: H.264, flattened on ``bg_color`` (white unless given);
    * a folder (existing, or a path ending in ``/`` or without a suffix): one RGBA PNG per
      frame, ``000000.png`` on, and ``timestamps.json`` (frame rate, time base, each
      frame's pts and time in seconds); an existing folder is replaced (``overwrite``)
      only if it is such a folder of frames;
    * ``type="mask"``: the gray mask instead (any of the above); ``type="background"``: the
      background with the subject removed.

    ``bg_color`` flattens any output onto an opaque colour (no alpha then). Audio (unless
    ``audio=False``), frame timestamps (variable frame rates included) and the frame rate are
    carried over; rotation metadata is applied to the pixels. ``smooth`` steadies the edges
    over still parts of the clip (:class:`~cleancut.video.temporal.TemporalSmoother`;
    ``False`` cuts every frame alone). Options are the photos' (``edges``, ``framing``,
    ``mode``), except ``framing.crop``: a crop follows the subject frame by frame, so the
    clip would jump (``square``, ``max_size`` and backgrounds work); ``quality`` is the VP9 CRF,
    a whole number 0..63 (lower is better; H.264 uses 12 less): a photo's 0..1 quality is
    refused. A framed canvas over the pixel limit is refused before the first frame.
    ``progress(done, total)`` or ``progress("compute:video", done, total)`` after each frame
    (``total`` 0 when unknown).

    The output appears complete or not at all: it is written under a temporary name beside
    ``dst`` and renamed at the end; any error (a bad clip, a cancel) removes it. Errors:
    :mod:`cleancut.video.errors` (each also an :class:`~cleancut.errors.ImageError`),
    :class:`~cleancut.errors.OutputExistsError`, :class:`~cleancut.errors.InvalidOptionError`
    (also for a ``dst`` that is ``src``, or a folder holding it: inputs are never written);
    without the ``video`` extra, :class:`~cleancut.video.errors.UnsupportedVideoError`
    saying ``pip install 'cleancut[video]'``.
    """
    t0 = time.perf_counter()
    require_video()  # no PyAV: say how to install it before a model loads
    target = target_for(dst)
    _check_crf(quality)
    _check_not_input(Path(src), target.path)
    if framing is not None and framing.crop:
        raise InvalidOptionError(
            "crop is for photos: on a clip it would follow the subject frame by frame and jump; "
            "use square, max_size or a background, and crop the clip in an editor"
        )
    rem = remover_for(remover, engine, settings)
    options = prepare_options(rem, type=type, edges=edges, framing=framing, mode=mode)
    colour = pipeline.parse_color(bg_color) if bg_color is not None else None
    info = probe(src)
    if options.framing is not None:  # a canvas over the pixel limit: refused before any frame
        check_canvas(info.width, info.height, options.framing, max_pixels=rem.settings.max_pixels)
    total = info.frames
    writer = VideoWriter(
        target,
        info,
        mask=options.type == "mask",
        bg_color=colour,
        audio_from=src if audio else None,
        overwrite=overwrite,
        quality=quality,
    )
    report = _reporter(progress)
    done = 0
    try:
        encoder = _Encoder(writer)
        try:
            frames: Iterator[Frame] = _ahead(iter_frames(src, max_pixels=rem.settings.max_pixels))
            pts_queue: list[int | None] = []

            def tagged() -> Iterator[Frame]:
                for f in frames:
                    pts_queue.append(f.pts)
                    yield f

            for cut in cut_with_options(tagged(), rem, options, smooth, cancel):
                encoder.put(cut.pixels, pts_queue.pop(0))
                done += 1
                if report is not None:
                    report(done, max(total, done))
        finally:
            encoder.finish()
        path = writer.close()
    except BaseException:
        writer.abort()
        raise
    return VideoResult(path, done, time.perf_counter() - t0)


def _check_crf(quality: object) -> None:
    """A clip's ``quality`` is the codec's CRF: a photo's 0..1 quality (0.8) would be a
    near-lossless CRF 0 or 1, silently; refused like any value outside 0..63."""
    if isinstance(quality, bool) or not isinstance(quality, int) or not 0 <= quality <= 63:
        raise InvalidOptionError(
            f"quality on a clip is the codec's CRF, a whole number 0..63 (lower is better, "
            f"default 30), got {quality!r}; the photos' 0..1 quality does not apply to clips"
        )


def _check_not_input(src: Path, dst: Path) -> None:
    """Refuse an output that is the input clip, or a folder that holds it (replacing the
    folder would remove the input)."""
    if same_file(src, dst):
        raise InvalidOptionError(f"refusing to overwrite the input {src}; choose another output")
    if dst.is_dir() and real_path(dst) in real_path(src).parents:
        raise InvalidOptionError(f"refusing to write frames into {dst}: it holds the input {src}")


def _reporter(progress: Any) -> Callable[[int, int], None] | None:
    if progress is None:
        return None
    import inspect

    try:
        params = inspect.signature(progress).parameters.values()
        n = sum(1 for p in params if p.default is inspect.Parameter.empty)
    except (TypeError, ValueError):
        n = 3
    if n >= 3:
        return lambda done, total: progress("compute:video", done, total)
    return lambda done, total: progress(done, total)
