"""Long clips on Ray: :func:`run_ray_video` cuts a clip in chunks on the cluster and joins
them without a seam.

The driver plans chunks at keyframes (:func:`cleancut.video.chunks.plan_chunks`) and sends
each to a pool of :class:`VideoChunkActor` (one loaded model per actor). An actor decodes its
chunk from the keyframe before it, runs the network and the temporal smoother over the
chunk's warm-up frames (not emitted) and its own frames, and returns each own frame's
full-resolution mask, compressed (a mask is a few percent of its raw size): little travels,
and the driver never holds more than a window of chunks' masks.

The driver decodes the clip once more, in order, finishes every frame with the photo
compose stage (edge colours, background, framing: :func:`cleancut.cutout.make_cutout`) and
writes it with :class:`~cleancut.video.encode.VideoWriter`, so timing, audio and every
output kind are those of :func:`cleancut.video.remove_video`. The output appears whole or
not at all: any failed chunk stops the run and removes it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from ..config import Settings
from ..errors import CleancutError, InvalidOptionError
from ..options import CutOptions, EngineOptions
from .actor import WorkerSettings, worker_settings
from .driver import ray_session

if TYPE_CHECKING:
    from ..edges import EdgeOptions
    from ..framing import Framing
    from ..video.chunks import Chunk
    from ..video.temporal import TemporalSmoother

__all__ = [
    "ChunkMasks",
    "RayVideoError",
    "RayVideoResult",
    "VideoChunkActor",
    "run_ray_video",
    "video_options",
]

log = logging.getLogger(__name__)

#: Ray restarts a lost actor and redoes its chunk this many times before the run fails.
CHUNK_RETRIES: Final = 2


class RayVideoError(CleancutError, RuntimeError):
    """The cluster could not cut a chunk (a worker lost for good, a chunk that does not line
    up with the clip); the output was not written."""


@dataclass(frozen=True)
class ChunkMasks:
    """What an actor sends back for a chunk: each own frame's pts and its mask
    (``[height, width]`` uint8, zlib-compressed), in order."""

    index: int
    pts: tuple[int, ...]
    shapes: tuple[tuple[int, int], ...]
    masks: tuple[bytes, ...]
    worker: str
    seconds: float
    warmup: int

    def mask(self, i: int) -> np.ndarray:
        return np.frombuffer(zlib.decompress(self.masks[i]), np.uint8).reshape(self.shapes[i])


def video_options(
    *,
    type: str = "foreground",
    edges: EdgeOptions | None = None,
    framing: Framing | None = None,
    mode: str = "default",
    max_pixels: int = 100_000_000,
) -> CutOptions:
    """The photo options checked and loaded once (what ``prepare_options`` makes for
    :func:`~cleancut.video.remove_video`), without a model."""
    from .. import pipeline
    from ..cutout import check_options
    from ..passes import normalize_quality_mode

    output_type = pipeline.normalize_output_type(type)
    check_options(output_type, edges, framing)
    quality_mode = normalize_quality_mode(mode)
    options = CutOptions(type=output_type, edges=edges, framing=framing, mode=quality_mode)
    return replace(options.loaded(max_pixels), type=output_type, mode=quality_mode)


def _smoother(smooth: bool | TemporalSmoother) -> TemporalSmoother | None:
    from ..video.temporal import TemporalSmoother

    if isinstance(smooth, TemporalSmoother):
        return replace(smooth)  # the same parameters, no state
    return TemporalSmoother() if smooth else None


class VideoChunkActor:
    """A Ray actor: one loaded model, cutting one chunk per call (:meth:`cut`)."""

    def __init__(
        self,
        *,
        engine: EngineOptions | None = None,
        settings: WorkerSettings = None,
        options: CutOptions | None = None,
        smooth: bool | TemporalSmoother = True,
    ) -> None:
        from ..remover import Remover

        resolved = worker_settings(settings)
        self.remover = Remover.from_options(engine or EngineOptions(), settings=resolved).load()
        self.options = options if options is not None else CutOptions()
        self.smooth = smooth
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def cut(self, src: str, chunk: Chunk) -> ChunkMasks:
        """The masks of ``chunk``'s own frames, the network and the smoother having run over
        its warm-up frames first (the per-frame steps of :func:`cleancut.video.cut_frames`)."""
        from ..stages import make_mask
        from ..video.chunks import iter_chunk
        from ..video.cut import network_outputs

        t0 = time.perf_counter()
        rem = self.remover
        smoother = _smoother(self.smooth)
        pts: list[int] = []
        shapes: list[tuple[int, int]] = []
        masks: list[bytes] = []
        warm_frames = 0
        frames = (
            (frame.pixels, (frame.pts, warm))
            for frame, warm in iter_chunk(src, chunk, max_pixels=rem.settings.max_pixels)
        )
        for pixels, (frame_pts, warm), y in network_outputs(frames, rem, self.options.mode):
            if smoother is not None:
                y = smoother.step(pixels, y)
            if warm:
                warm_frames += 1
                continue
            mask = make_mask(y, pixels, self.options.edges, rem.recipe)
            assert frame_pts is not None  # iter_chunk refuses frames without one
            pts.append(frame_pts)
            shapes.append((int(mask.shape[0]), int(mask.shape[1])))
            masks.append(zlib.compress(np.ascontiguousarray(mask, np.uint8).tobytes(), 1))
        return ChunkMasks(
            chunk.index,
            tuple(pts),
            tuple(shapes),
            tuple(masks),
            self.worker,
            time.perf_counter() - t0,
            warm_frames,
        )


@dataclass(frozen=True)
class RayVideoResult:
    """What :func:`run_ray_video` wrote: the output, its frames, its chunks, the seconds
    taken and the actors that cut them."""

    path: Path
    frames: int
    chunks: int
    seconds: float
    workers: int

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def run_ray_video(
    src: str | os.PathLike[str],
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
    engine: EngineOptions | None = None,
    settings: WorkerSettings = None,
    address: str | None = None,
    num_workers: int | None = None,
    chunk_seconds: float | None = None,
    warmup: int | None = None,
    window: int | None = None,
    quiet: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> RayVideoResult:
    """Cut the clip ``src`` into ``dst`` on Ray, in chunks of about ``chunk_seconds``
    (default 10) that start at keyframes, each with ``warmup`` frames (default 24) cut before
    it so that the temporal step sees across chunk borders.

    The output is :func:`~cleancut.video.remove_video`'s for the same options (``type``,
    ``bg_color``, ``edges``, ``framing``, ``mode``, ``smooth``, ``audio``, ``overwrite``,
    ``quality``; the same output kinds, timing and audio). ``engine``, ``settings``,
    ``address``, ``num_workers`` are :func:`~cleancut.distributed.run_ray`'s: each actor
    holds one model; ``engine.threads`` are its CPUs. ``src`` must be a local path that
    every worker sees at the same place (one machine, or a shared mount). ``window``: the
    most chunks sent out and not yet written (default: twice the workers), which bounds
    what the driver and the object store hold. ``progress(done, total)`` after each frame.

    Errors: those of :func:`~cleancut.video.remove_video` for the clip and the output (a
    chunk's error names the chunk), :class:`RayVideoError` when the cluster fails; in every
    case nothing is left at ``dst``.
    """
    from ..cutout import make_cutout
    from ..video.chunks import DEFAULT_CHUNK_SECONDS, DEFAULT_WARMUP, plan_chunks
    from ..video.decode import iter_frames
    from ..video.encode import VideoWriter, target_for

    t0 = time.perf_counter()
    if num_workers is not None and num_workers < 1:
        raise InvalidOptionError(f"--num-workers must be at least 1, got {num_workers}")
    if window is not None and window < 1:
        raise InvalidOptionError(f"window must be at least 1 chunk, got {window}")
    engine = engine or EngineOptions()
    local = worker_settings(settings)
    src_path = Path(src).resolve()
    target = target_for(dst)
    _check_not_input(src_path, target.path)
    if framing is not None and framing.crop:
        raise InvalidOptionError(
            "crop is for photos: on a clip it would follow the subject frame by frame and jump; "
            "use square, max_size or a background, and crop the clip in an editor"
        )
    options = video_options(type=type, edges=edges, framing=framing, mode=mode, max_pixels=local.max_pixels)
    from .. import pipeline

    colour = pipeline.parse_color(bg_color) if bg_color is not None else None
    plan = plan_chunks(
        src_path,
        chunk_seconds=DEFAULT_CHUNK_SECONDS if chunk_seconds is None else chunk_seconds,
        warmup=DEFAULT_WARMUP if warmup is None else warmup,
        max_pixels=local.max_pixels,
    )
    writer = VideoWriter(
        target,
        plan.info,
        mask=options.type == "mask",
        bg_color=colour,
        audio_from=src_path if audio else None,
        overwrite=overwrite,
        quality=quality,
    )
    done = 0
    try:
        with contextlib.ExitStack() as stack:
            ray = stack.enter_context(ray_session(address, quiet))
            if address is None:  # a local Ray: fetch the model once here, not in every actor
                from ..models.store import fetch_model

                fetch_model(engine.model, local)
            actors, workers = _start_actors(
                ray, engine, settings, options, smooth, num_workers, len(plan.chunks), address
            )
            stack.callback(_stop_actors, ray, actors)
            encoder = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="cleancut-video-encode"))
            written: Future[None] | None = None
            results = _in_order(ray, actors, str(src_path), plan.chunks, window or 2 * len(actors))
            # the decoder runs on a thread of its own, a few frames ahead
            frames = stack.enter_context(_Ahead(iter_frames(src_path, max_pixels=local.max_pixels)))
            for masks in results:  # a chunk's error surfaces here, before its frames are read
                for k, pts in enumerate(masks.pts):
                    frame = frames.next()
                    if frame is None:
                        raise RayVideoError(
                            f"{src}: the chunks hold more frames than the clip decodes to ({done}); "
                            "did the file change while it was being cut?"
                        )
                    if frame.pts != pts:
                        raise RayVideoError(
                            f"{src}: frame {frame.index} has pts {frame.pts} but chunk {masks.index} "
                            f"gave pts {pts}: the chunks do not line up with the clip"
                        )
                    cut = make_cutout(
                        frame.pixels,
                        masks.mask(k),
                        options.type,
                        edges=options.edges,
                        framing=options.framing,
                        max_pixels=local.max_pixels,
                    )
                    if written is not None:
                        written.result()  # the previous frame's encode (its errors surface here)
                    written = encoder.submit(writer.write, cut.pixels, frame.pts)
                    done += 1
                    if progress is not None:
                        progress(done, max(plan.frames, done))
            if written is not None:
                written.result()
            if frames.next() is not None:
                raise RayVideoError(
                    f"{src}: the clip decodes to more frames than the chunks hold ({done}); "
                    "did the file change while it was being cut?"
                )
        path = writer.close()
    except BaseException:
        writer.abort()
        raise
    return RayVideoResult(path, done, len(plan.chunks), time.perf_counter() - t0, workers)


def _check_not_input(src: Path, dst: Path) -> None:
    """Refuse an output that is the input clip, or a folder that holds it (as
    :func:`~cleancut.video.remove_video` does: inputs are never written)."""
    from ..planning import real_path, same_file

    if same_file(src, dst):
        raise InvalidOptionError(f"refusing to overwrite the input {src}; choose another output")
    if dst.is_dir() and real_path(dst) in real_path(src).parents:
        raise InvalidOptionError(f"refusing to write frames into {dst}: it holds the input {src}")


class _Ahead:
    """An iterator run on a thread of its own, a few items ahead; its errors are raised by
    :meth:`next`, which gives ``None`` at the end. Leaving the ``with`` block stops it."""

    def __init__(self, items: Iterator[Any], depth: int = 4) -> None:
        self._q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._items = items
        self._thread = threading.Thread(target=self._run, name="cleancut-video-decode", daemon=True)

    def __enter__(self) -> _Ahead:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Empty):
            while True:  # unblock a put
                self._q.get_nowait()
        self._thread.join(timeout=5)

    def _put(self, item: tuple[str, Any]) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put(("item", item)):
                    return
            self._put(("end", None))
        except BaseException as exc:
            self._put(("error", exc))

    def next(self) -> Any:
        kind, value = self._q.get()
        if kind == "error":
            raise value
        if kind == "end":
            self._q.put(("end", None))  # later calls see the end too
            return None
        return value


def _start_actors(
    ray: Any,
    engine: EngineOptions,
    settings: WorkerSettings,
    options: CutOptions,
    smooth: bool | TemporalSmoother,
    num_workers: int | None,
    chunks: int,
    address: str | None,
) -> tuple[list[Any], int]:
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    gpus = int(ray.cluster_resources().get("GPU", 0)) if engine.device != "cpu" else 0
    if gpus:
        workers = num_workers or gpus
        per_actor = engine.threads or 1
        resources: dict[str, Any] = {"num_gpus": 1, "num_cpus": per_actor}
    else:
        workers = num_workers or max(1, cpus // 4)
        per_actor = engine.threads or max(1, cpus // workers)
        if address is None and workers * per_actor > cpus:  # more than this machine has
            workers = max(1, cpus // per_actor)
            per_actor = min(per_actor, cpus)
        resources = {"num_cpus": per_actor}
    workers = max(1, min(workers, chunks))
    actor_cls = ray.remote(VideoChunkActor).options(
        max_restarts=CHUNK_RETRIES, max_task_retries=CHUNK_RETRIES, **resources
    )
    kwargs = {
        "engine": replace(engine, threads=per_actor),
        "settings": settings if isinstance(settings, Settings) or settings is None else dict(settings),
        "options": options,
        "smooth": smooth,
    }
    return [actor_cls.remote(**kwargs) for _ in range(workers)], workers


def _stop_actors(ray: Any, actors: list[Any]) -> None:
    for actor in actors:
        with contextlib.suppress(Exception):
            ray.kill(actor)


def _in_order(
    ray: Any, actors: list[Any], src: str, chunks: tuple[Chunk, ...], window: int
) -> Iterator[ChunkMasks]:
    """Each chunk's masks, in order, from whichever actor is free; at most ``window`` chunks
    sent out and not yet consumed."""
    idle = list(actors)
    running: dict[Any, tuple[int, Any]] = {}
    finished: dict[int, Any] = {}
    sent = 0
    for i in range(len(chunks)):
        while i not in finished:
            while idle and sent < len(chunks) and sent - i < window:
                actor = idle.pop()
                running[actor.cut.remote(src, chunks[sent])] = (sent, actor)
                sent += 1
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                index, actor = running.pop(ref)
                finished[index] = ref
                idle.append(actor)
        yield _get(ray, finished.pop(i), chunks[i])


def _get(ray: Any, ref: Any, chunk: Chunk) -> ChunkMasks:
    from ray.exceptions import RayActorError, RayTaskError

    try:
        result: ChunkMasks = ray.get(ref)
    except RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, CleancutError):
            try:
                named = type(cause)(f"{chunk.describe()}: {cause}")
            except Exception:  # an error type built otherwise: as it came
                named = cause
            raise named from None
        raise RayVideoError(f"{chunk.describe()} failed on the cluster: {_one_line(exc)}") from None
    except RayActorError as exc:
        raise RayVideoError(
            f"{chunk.describe()}: its Ray worker was lost {CHUNK_RETRIES + 1} times: {_one_line(exc)}"
        ) from None
    return result


def _one_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1] if lines else ''}"[:500]
