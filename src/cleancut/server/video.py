"""Clips on the server: ``POST /api/remove-video`` as a job with progress.

A clip takes minutes, not seconds, so its request does not wait for the cut-out: once the
clip has arrived (through the same upload stage as a photo, streamed to a file) and has been
checked — readable, with a video stream, within the size, duration, frame and pixel limits,
its options valid and a background image decoded — it takes a job slot like a photo and is
answered ``202`` with a job id. ``GET /api/jobs/{id}`` reports the frames done out of the
total; the result is downloaded once from ``GET /api/jobs/{id}/result`` and then deleted.

Backpressure is the photos': the clip holds one slot of the job queue from admission to its
last frame (503 with ``Retry-After`` when none is free), and at most ``max_video_jobs`` clips
hold one at once (503 ``videos_busy``). Each frame's inference is a job of its own on the
inference pool, so a photo admitted meanwhile runs between two frames instead of behind the
whole clip; the clip's deadline (``video_timeout``) ends it like a photo's.

Files: every job has a folder of its own under one per-server folder (``video_dir``); the
clip and the result live there and nowhere else. A refused or failed clip's folder is removed
at once, a result after its download or ``video_result_ttl`` seconds after it was finished,
and the per-server folder when the server stops. At most ``max_video_results`` jobs (running
or waiting for their download) are kept at once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from ..errors import CleancutError
from ..options import CutOptions
from .clips import CLIP_NAME, ClipFacts, ClipRun, too_many_frames
from .errors import ApiError, from_cleancut_error
from .jobqueue import DeadlineExceededError, Slot
from .options import VideoOptions
from .settings import ServerSettings

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from ..remover import Remover
    from .engine import Engine
    from .jobqueue import JobQueue

__all__ = ["VideoJob", "VideoJobs", "download_name"]

log = logging.getLogger(__name__)

JobState = Literal["queued", "running", "done", "failed", "cancelled"]
_ID: Final = re.compile(r"[A-Za-z0-9_-]{16,64}")
_SAFE_NAME: Final = re.compile(r"[^A-Za-z0-9._-]+")


# --------------------------------------------------------------------------- jobs


@dataclass
class VideoJob:
    """One clip's job, as ``GET /api/jobs/{id}`` reports it."""

    id: str
    folder: Path
    filename: str
    media_type: str
    total: int
    seconds: float
    created: float = field(default_factory=time.monotonic)
    state: JobState = "queued"
    done: int = 0
    started: float | None = None
    finished: float | None = None
    error: ApiError | None = None
    result: Path | None = None
    size: int | None = None
    slot: Slot | None = None
    task: asyncio.Task[None] | None = None
    expiry: asyncio.TimerHandle | None = None
    expires_at: float | None = None
    claimed: bool = False
    #: Its client asked to stop it (``DELETE``): it ends as ``cancelled``, not ``failed``.
    cancelled: bool = False

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")

    def remaining(self) -> float | None:
        """Seconds this job is expected to run still (``None`` before its first frame)."""
        if not self.active:
            return 0.0
        if self.started is None or self.done == 0:
            return None
        per_frame = (time.monotonic() - self.started) / self.done
        return per_frame * max(0, self.total - self.done)

    def as_dict(self) -> dict[str, Any]:
        now = time.monotonic()
        elapsed = (self.finished or now) - (self.started or self.created)
        fps = self.done / elapsed if self.started is not None and elapsed > 0 and self.done else None
        eta = self.remaining()
        base = f"/api/jobs/{self.id}"
        return {
            "id": self.id,
            "state": self.state,
            "frames": {"done": self.done, "total": self.total},
            "progress": round(self.done / self.total, 4) if self.total else 0.0,
            "seconds": round(self.seconds, 3),
            "elapsed_s": round(elapsed, 2),
            "fps": None if fps is None else round(fps, 2),
            "eta_s": None if eta is None or not self.active else round(eta, 1),
            "status_url": base,
            "result": None
            if self.state != "done"
            else {
                "url": f"{base}/result",
                "media_type": self.media_type,
                "filename": self.filename,
                "size": self.size,
            },
            "error": None if self.error is None else {"status": self.error.status, **self.error.body()},
            "expires_in": None if self.expires_at is None else max(0, math.ceil(self.expires_at - now)),
        }


def download_name(upload_name: str | None, options: VideoOptions) -> str:
    stem = (upload_name or "clip").rsplit("/", 1)[-1].rsplit("\\", 1)[-1].rsplit(".", 1)[0]
    stem = _SAFE_NAME.sub("_", stem).strip("._") or "clip"
    return f"{stem[:100]}.cutout.{options.format}"


class VideoJobs:
    """The clip jobs of one server: admission, the runs, progress, results and their files.
    Lives on the event loop (like :class:`~cleancut.server.upload.UploadStage`)."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self._jobs: dict[str, VideoJob] = {}
        self._root: Path | None = None
        self._root_lock = threading.Lock()
        self._accepted = 0
        self._rejected = 0
        self._completed = 0
        self._failed = 0
        self._expired = 0

    # ------------------------------------------------------------------ folders

    @property
    def root(self) -> Path:
        """This server's folder for clips and results, made on first use."""
        with self._root_lock:
            if self._root is None or not self._root.is_dir():
                base = self.settings.video_dir
                if base is not None:
                    base.mkdir(parents=True, exist_ok=True)
                self._root = Path(tempfile.mkdtemp(prefix="cleancut-video-", dir=base))
            return self._root

    def new_folder(self) -> Path:
        folder = self.root / secrets.token_urlsafe(18)
        folder.mkdir(mode=0o700)
        return folder

    @staticmethod
    def remove_folder(folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)

    # ------------------------------------------------------------------ admission

    def _running(self) -> list[VideoJob]:
        return [j for j in self._jobs.values() if j.active]

    def check_room(self) -> None:
        """Refuse at once (503 with ``Retry-After``) when ``max_video_jobs`` clips are
        running, or ``max_video_results`` jobs are kept (running or awaiting download)."""
        running = self._running()
        settings = self.settings
        if len(running) >= settings.max_video_jobs:
            self._rejected += 1
            retry = self._retry_after(running)
            raise ApiError(
                503,
                "videos_busy",
                f"{len(running)} clip{'s are' if len(running) != 1 else ' is'} already being cut out "
                f"(the server's --max-video-jobs); one is expected to finish in about {retry} s",
                retry_after=retry,
            )
        if len(self._jobs) >= settings.max_video_results:
            self._rejected += 1
            waiting = [j for j in self._jobs.values() if j.expires_at is not None]
            expiries = [j.expires_at - time.monotonic() for j in waiting if j.expires_at is not None]
            retry = max(1, min(300, math.ceil(min(expiries)))) if expiries else self._retry_after(running)
            raise ApiError(
                503,
                "video_results_full",
                f"{len(self._jobs)} clip results are kept waiting for their download (the server's "
                f"--max-video-results); the first is deleted in at most {retry} s",
                retry_after=retry,
            )

    def _retry_after(self, running: list[VideoJob]) -> int:
        estimates: list[float] = []
        for job in running:
            left = job.remaining()
            if left is None and job.slot is not None:  # not started: at the latest its deadline
                left = job.slot.deadline - time.monotonic()
            if left is not None:
                estimates.append(left)
        return max(1, min(300, math.ceil(min(estimates)))) if estimates else 5

    async def start(
        self,
        queue: JobQueue,
        engine: Engine,
        folder: Path,
        filename: str,
        options: VideoOptions,
        facts: ClipFacts,
        cut: CutOptions,
    ) -> VideoJob:
        """Admit the clip whose files are in ``folder``: take a job slot (or raise the
        queue's 503) and start its run. The folder is the job's from here on."""
        self.check_room()
        slot_cm: AbstractAsyncContextManager[Slot] = queue.slot(self.settings.video_timeout)
        slot = await slot_cm.__aenter__()
        slot.passes_left = facts.frames
        job = VideoJob(
            id=folder.name,
            folder=folder,
            filename=filename,
            media_type=options.media_type,
            total=facts.frames,
            seconds=facts.seconds,
            slot=slot,
        )
        self._jobs[job.id] = job
        self._accepted += 1
        remover = engine.removers[options.cut.model]
        job.task = asyncio.get_running_loop().create_task(
            self._run(job, slot_cm, slot, engine, remover, options, facts, cut),
            name=f"cleancut-video-{job.id[:8]}",
        )
        return job

    # ------------------------------------------------------------------ the run

    async def _run(
        self,
        job: VideoJob,
        slot_cm: AbstractAsyncContextManager[Slot],
        slot: Slot,
        engine: Engine,
        remover: Remover,
        options: VideoOptions,
        facts: ClipFacts,
        cut: CutOptions,
    ) -> None:
        run: ClipRun | None = None
        try:
            output = job.folder / "result" / job.filename
            max_pixels = min(self.settings.max_video_pixels, self.settings.max_pixels)
            opened = functools.partial(ClipRun, max_pixels=max_pixels)
            run = clip = await slot.io(
                "open", opened, remover, job.folder / CLIP_NAME, output, facts, options, cut
            )
            job.state = "running"
            job.started = time.monotonic()
            while True:
                item = await slot.io("decode", clip.next_frame)
                if item is None:
                    break
                frame, xs = item
                if frame.index >= self.settings.max_video_frames:
                    raise too_many_frames(frame.index + 1, self.settings.max_video_frames, exact=False)
                y = await engine.infer_frame(slot, options.cut.model, frame.pixels, xs, options.cut.mode)
                del xs
                await slot.io("encode", clip.finish_frame, frame, y)
                job.done += 1
                job.total = max(job.total, job.done)
                slot.passes_left = max(0, job.total - job.done)
            path = await slot.io("close", clip.close)
            run = None
            job.result = path
            job.size = path.stat().st_size
            job.state = "done"
            self._completed += 1
        except asyncio.CancelledError:
            job.state = "cancelled"
            raise
        except DeadlineExceededError as exc:
            job.error = ApiError(
                504,
                "timeout",
                f"the clip was not done within {self.settings.video_timeout:g} s (the server's "
                f"--video-timeout): {job.done} of {job.total} frames were cut out; {exc}",
            )
        except CleancutError as exc:  # a cancelled ORT run (DELETE) included
            job.error = from_cleancut_error(exc)
        except Exception:  # a bug: logged, reported without internals
            log.exception("clip job %s failed", job.id)
            job.error = ApiError(500, "internal_error", "the server hit an unexpected error; it is logged")
        finally:
            await self._wind_up(job, slot_cm, slot, run)

    async def _wind_up(
        self,
        job: VideoJob,
        slot_cm: AbstractAsyncContextManager[Slot],
        slot: Slot,
        run: ClipRun | None,
    ) -> None:
        """Stop the work, drop what a failed run wrote, give the slot back, and keep the job
        for its download (or its error for its status) until its time is up."""
        try:
            await asyncio.shield(slot.settled())
        except asyncio.CancelledError:
            pass
        if job.cancelled:
            job.state, job.error = "cancelled", None
        elif job.error is not None and job.state != "cancelled":
            job.state = "failed"
        if job.state != "done":
            self._failed += job.state == "failed"
            if run is not None:
                try:
                    await asyncio.to_thread(run.abort)
                except Exception:
                    log.exception("clip job %s: cleaning up", job.id)
            self.remove_folder(job.folder)
        job.finished = time.monotonic()
        await slot_cm.__aexit__(None, None, None)
        if job.id in self._jobs and not job.claimed:
            ttl = self.settings.video_result_ttl
            job.expires_at = job.finished + ttl
            job.expiry = asyncio.get_running_loop().call_later(ttl, self._expire, job.id)

    def _expire(self, job_id: str) -> None:
        job = self._jobs.get(job_id)
        if job is not None and not job.claimed:
            self._expired += job.state == "done"
            self.forget(job)

    # ------------------------------------------------------------------ clients

    def get(self, job_id: str) -> VideoJob:
        job = self._jobs.get(job_id) if _ID.fullmatch(job_id) else None
        if job is None:
            raise ApiError(
                404,
                "not_found",
                f"no clip job {job_id[:80]!r} on this server: unknown, already downloaded (a result is "
                f"given once), cancelled, or expired ({self.settings.video_result_ttl:g} s after it "
                "finished)",
            )
        return job

    def claim(self, job_id: str) -> tuple[VideoJob, Callable[[], None]]:
        """The finished job whose result is to be downloaded now (once), and what to call
        when the download has ended: it forgets the job and deletes its files."""
        job = self.get(job_id)
        if job.state != "done" or job.result is None:
            raise ApiError(
                409,
                "not_done",
                f"the clip job is {job.state} ({job.done} of {job.total} frames); its result can be "
                "downloaded once the state is done",
            )
        # From its claim on, the job is gone for every client (its status, a second download,
        # DELETE: 404), not "being downloaded" until the first answer has ended.
        job.claimed = True
        self._jobs.pop(job.id, None)
        if job.expiry is not None:
            job.expiry.cancel()
        return job, lambda: self.forget(job)

    def cancel(self, job_id: str) -> None:
        """Stop a running job (its slot's cancel signal: the inference in progress is
        terminated) or delete a finished one and its files."""
        job = self.get(job_id)
        if job.active and job.slot is not None:
            job.cancelled = True
            job.slot.expire()  # its run stops at once and winds up (its files go then)
        self.forget(job)

    def forget(self, job: VideoJob) -> None:
        """Drop the job; its folder goes now, or, while its run still winds up, then."""
        self._jobs.pop(job.id, None)
        if job.expiry is not None:
            job.expiry.cancel()
        if not job.active:
            self.remove_folder(job.folder)

    # ------------------------------------------------------------------ server

    def stats(self) -> dict[str, Any]:
        return {
            "max_video_jobs": self.settings.max_video_jobs,
            "running": len(self._running()),
            "kept": len(self._jobs),
            "accepted": self._accepted,
            "rejected": self._rejected,
            "completed": self._completed,
            "failed": self._failed,
            "expired": self._expired,
        }

    async def aclose(self, timeout: float = 30.0) -> None:
        """At shutdown, on the event loop: stop every running job and let it wind up (its
        stage in progress ends: an ONNX Runtime run is terminated), then :meth:`close`."""
        tasks = [j.task for j in self._jobs.values() if j.task is not None and not j.task.done()]
        for job in self._jobs.values():
            if job.active and job.slot is not None:
                job.cancelled = True
                job.slot.expire()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        self.close()

    def close(self) -> None:
        """Stop every job and delete every clip and result (at shutdown)."""
        for job in list(self._jobs.values()):
            if job.slot is not None:
                job.slot.expire()
            if job.task is not None:
                job.task.cancel()
            if job.expiry is not None:
                job.expiry.cancel()
        self._jobs.clear()
        with self._root_lock:
            if self._root is not None:
                shutil.rmtree(self._root, ignore_errors=True)
                self._root = None
