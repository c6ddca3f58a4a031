"""The bounded job queue: admission, the inference executor, deadlines and cancellation.

Every request that will decode an image takes a *slot* once its photo has arrived (the
upload stage, :mod:`.upload`, receives it first: a slow client never holds a slot). There
are ``workers + queue_size`` slots; when none is free the request is refused at once
(:class:`QueueFullError`, answered 503 with ``Retry-After``) instead of waiting in memory —
rembg's server, which queues without bound, grew to 137 GB under load (rembg #752). Because
a slot is taken before decoding, at most that many decoded images exist at any time: memory
stays flat whatever the load.

``Retry-After`` comes from the queue's state: when the first slot is expected to free up,
from the recent inference times and how long the running inferences have been going, and
never later than the nearest deadline of an admitted request (before any inference has
finished, that deadline is all there is to go by).

Inside a slot, work runs in two executors: an I/O pool (decode, pre- and post-processing,
encoding: Pillow and numpy release the GIL) and the inference pool with exactly
``workers`` threads, so inference is serialised there and never oversubscribes the CPU.

A clip (``POST /api/remove-video``) holds one slot for all its frames but submits each
frame's inference to the inference pool as a job of its own: photos admitted meanwhile take
their turn between two frames, never behind the whole clip. Its ``passes_left`` (frames
still to run) feeds the estimate of when its slot frees.

Each slot has a deadline. When it passes, the request is answered (503 if its inference
never started, 504 otherwise) and the slot's cancel signal fires: a job still waiting is
dropped from the executor, a running one stops at its next stage boundary, and an ONNX
Runtime run in progress is terminated through the hooks registered with
:meth:`Slot.on_cancel`. The slot itself is only given back when its last piece of work has
really stopped, so a timed-out request can never leave a worker busy behind the count.
A request whose client hangs up is treated alike (:meth:`Slot.abandon`): its waiting jobs
are dropped, nothing more starts for it, and its slot frees as soon as its work has stopped.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import CancelledError

__all__ = ["DeadlineExceededError", "JobQueue", "QueueFullError", "QueueStats", "Slot", "StageObserver"]

T = TypeVar("T")

_MAX_RETRY_AFTER = 300


class QueueFullError(Exception):
    """Every slot is taken; ``retry_after`` estimates when one frees up (seconds) and
    ``basis`` says what the estimate rests on."""

    def __init__(self, capacity: int, running: int, retry_after: int, basis: str) -> None:
        super().__init__(
            f"the server is at capacity: {capacity} in progress ({running} running on a worker, "
            f"the rest waiting for one or being decoded or encoded); a place is expected to free "
            f"up in about {retry_after} s ({basis})"
        )
        self.retry_after = retry_after
        self.basis = basis


class DeadlineExceededError(Exception):
    """The request's time ran out. ``stage`` says where: ``queued`` if its inference had not
    started (the server was too busy), else the stage that was running."""

    def __init__(self, stage: str, timeout: float) -> None:
        where = "waiting for a free worker" if stage == "queued" else f"during {stage}"
        super().__init__(f"the request took longer than {timeout:g} s ({where})")
        self.stage = stage


@dataclass(frozen=True)
class QueueStats:
    workers: int
    capacity: int
    admitted: int
    running: int
    accepted: int
    rejected: int
    timed_out: int
    #: Requests whose client hung up while they held a slot (their work was dropped).
    abandoned: int
    mean_inference_s: float | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Slot:
    """One admitted request: runs its stages, enforces its deadline, gives the slot back."""

    def __init__(self, queue: JobQueue, timeout: float) -> None:
        self._queue = queue
        self.timeout = timeout
        self.admitted_at = time.monotonic()
        self.deadline = self.admitted_at + timeout
        self.cancel = threading.Event()
        self.timings: dict[str, float] = {}
        self._hooks: list[Callable[[], None]] = []
        self._hooks_lock = threading.Lock()
        self._pending: Future[Any] | None = None
        #: When its inference started and ended (monotonic seconds), for the queue's estimate.
        self.inference_started: float | None = None
        self.inference_ended: float | None = None
        #: Its client hung up (:meth:`abandon`).
        self.abandoned = False
        #: Inferences this slot still has to run, when it runs many (a clip: one per frame
        #: left); ``None`` for a photo's single inference.
        self.passes_left: int | None = None

    # ------------------------------------------------------------------ cancellation

    def on_cancel(self, hook: Callable[[], None]) -> Callable[[], None]:
        """Call ``hook`` (from any thread) when the deadline passes; returns an unregister
        function. A hook registered after the signal fired runs at once."""
        with self._hooks_lock:
            if not self.cancel.is_set():
                self._hooks.append(hook)
                return lambda: self._unhook(hook)
        hook()
        return lambda: None

    def _unhook(self, hook: Callable[[], None]) -> None:
        with self._hooks_lock:
            if hook in self._hooks:
                self._hooks.remove(hook)

    def abandon(self) -> None:
        """Its client hung up: no stage is to start for it any more, and one in progress stops
        as at a deadline (an ONNX Runtime run is terminated through the hooks)."""
        if not self.abandoned:
            self.abandoned = True
            self._queue._count_abandoned()
        self.expire()

    def expire(self) -> None:
        """Fire the cancel signal and every hook (idempotent)."""
        with self._hooks_lock:
            if self.cancel.is_set():
                return
            self.cancel.set()
            hooks, self._hooks = self._hooks, []
        for hook in hooks:
            hook()

    # ------------------------------------------------------------------ stages

    async def io(self, name: str, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the I/O pool (decode, resize, encode)."""
        return await self._run(self._queue._io, name, fn, args)

    async def inference(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the inference pool (``workers`` threads, one job each)."""
        return await self._run(self._queue._inference, "inference", fn, args, track=True)

    async def _run(
        self,
        executor: ThreadPoolExecutor,
        name: str,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        track: bool = False,
    ) -> T:
        if self.cancel.is_set():
            raise DeadlineExceededError(name, self.timeout)
        submitted = time.monotonic()
        started: list[float] = []
        observe = self._queue.observer
        clip = self.passes_left is not None
        waiting = _Waiting(self._queue) if track else None

        def guarded() -> T:
            if waiting is not None:
                waiting.leave()
            # A job the deadline overtook while it waited must not start at all.
            if self.cancel.is_set():
                why = "its client left" if self.abandoned else "the request ran out of time"
                raise CancelledError(f"{name} cancelled: {why}")
            started.append(time.monotonic())
            if track:
                self.timings["queue"] = started[0] - submitted
                self.inference_started = started[0]
                self._queue._running_start()
                if observe is not None:
                    observe("queue", started[0] - submitted, clip)
            done = False
            try:
                result = fn(*args)
                done = True
                return result
            finally:
                ended = time.monotonic()
                self.timings[name] = elapsed = ended - started[0]
                if track:
                    self.inference_ended = ended
                    self._queue._running_done(elapsed, ok=not self.cancel.is_set())
                if observe is not None and done and not self.cancel.is_set():
                    observe(name, elapsed, clip)  # a stage cut short says nothing of its time

        future = executor.submit(guarded)
        if waiting is not None:  # dropped unstarted (deadline, a client gone): no longer waiting
            future.add_done_callback(lambda _f: waiting.leave())
        self._pending = future
        remaining = self.deadline - time.monotonic()
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout=max(remaining, 0.0))
        except TimeoutError:
            # cancel() succeeds only for a job that has not started: the executor drops it.
            # A running one is stopped by the cancel signal and the hooks (ORT terminate).
            queued = future.cancel()
            self.expire()
            self._queue._count_timeout()
            if queued and observe is not None:  # it waited for a worker all its time
                observe("queue", time.monotonic() - submitted, clip)
            raise DeadlineExceededError("queued" if queued else name, self.timeout) from None

    async def settled(self) -> None:
        """Wait until the last piece of work submitted for this slot has stopped: after a
        timeout or a cancel its stage may still be running on its thread, and whatever it
        uses (a clip's decoder and writer) must not be closed under it."""
        pending = self._pending
        if pending is not None and not pending.done():
            await asyncio.wait([asyncio.wrap_future(pending)])

    # ------------------------------------------------------------------ release

    def _release(self) -> None:
        pending = self._pending
        if pending is not None and not pending.done():
            # Still running after a timeout: keep counting the slot until the work stops.
            pending.add_done_callback(lambda _f: self._queue._release(self))
        else:
            self._queue._release(self)


class _Waiting:
    """One inference job counted in :attr:`JobQueue.waiting` until it starts or is dropped."""

    def __init__(self, queue: JobQueue) -> None:
        self._queue = queue
        self._counted = True
        with queue._lock:
            queue._waiting += 1

    def leave(self) -> None:
        with self._queue._lock:
            if self._counted:
                self._counted = False
                self._queue._waiting -= 1


#: Told each stage that ends: its name (``queue`` for the wait for an inference worker), its
#: seconds, and whether its slot is a clip's. Called from the worker threads.
StageObserver = Callable[[str, float, bool], None]


class JobQueue:
    """Admission control and the two executors (see the module docstring)."""

    def __init__(self, workers: int, queue_size: int) -> None:
        if workers < 1 or queue_size < 0:
            raise ValueError("workers must be >= 1 and queue_size >= 0")
        self.workers = workers
        self.capacity = workers + queue_size
        self._inference = ThreadPoolExecutor(workers, thread_name_prefix="cleancut-inference")
        self._io = ThreadPoolExecutor(self.capacity, thread_name_prefix="cleancut-io")
        self._lock = threading.Lock()
        self._admitted = 0
        self._running = 0
        self._accepted = 0
        self._rejected = 0
        self._timed_out = 0
        self._abandoned = 0
        self._waiting = 0
        self._service: deque[float] = deque(maxlen=32)
        #: Metrics hook (:mod:`.metrics`): told the time of each stage as it ends.
        self.observer: StageObserver | None = None
        self._slots: list[Slot] = []  # admitted, in admission order

    @property
    def waiting(self) -> int:
        """Inference jobs submitted and not yet started on a worker (the line's depth)."""
        with self._lock:
            return self._waiting

    @property
    def full(self) -> bool:
        with self._lock:
            return self._admitted >= self.capacity

    def expected_wait(self) -> tuple[float, str]:
        """Seconds until the first slot is expected to free up, and what that rests on.

        Each admitted request frees its slot at the latest at its deadline. With recent
        inference times known (their mean, ``m``), a running inference is expected to end
        ``m`` after it started, one already past its inference within moments, and when a
        worker is idle the next request to reach it ``m`` from now.
        """
        now = time.monotonic()
        with self._lock:
            slots = list(self._slots)
            mean = sum(self._service) / len(self._service) if self._service else None
            running = self._running
        if len(slots) < self.capacity:
            return 0.0, "a place is free now"
        candidates = [s.deadline - now for s in slots]
        candidates += [0.0 for s in slots if s.inference_ended is not None and s.passes_left is None]
        if mean is None:
            basis = "no inference has finished yet: at the latest when the oldest request's --timeout ends"
        else:
            basis = f"recent inferences took {mean:.1f} s each"
            for s in slots:
                if s.passes_left is not None:  # a clip: frees once its frames left have run
                    candidates.append(mean * s.passes_left)
                elif s.inference_started is not None and s.inference_ended is None:
                    candidates.append(mean - (now - s.inference_started))
            if running < self.workers and any(s.inference_started is None for s in slots):
                candidates.append(mean)
        return max(min(candidates), 0.0), basis

    def retry_after(self) -> int:
        """:meth:`expected_wait` in whole seconds, for ``Retry-After`` (1 to 300)."""
        wait, _basis = self.expected_wait()
        return max(1, min(_MAX_RETRY_AFTER, math.ceil(wait)))

    def reject(self) -> QueueFullError:
        """The error for a request refused without a slot (counted as rejected)."""
        with self._lock:
            self._rejected += 1
            running = self._running
        wait, basis = self.expected_wait()
        retry = max(1, min(_MAX_RETRY_AFTER, math.ceil(wait)))
        return QueueFullError(self.capacity, running, retry, basis)

    @asynccontextmanager
    async def slot(self, timeout: float) -> AsyncIterator[Slot]:
        """Take a slot or raise :class:`QueueFullError` at once; give it back on exit."""
        slot = Slot(self, timeout)
        with self._lock:
            admitted = self._admitted < self.capacity
            if admitted:
                self._admitted += 1
                self._accepted += 1
                self._slots.append(slot)
        if not admitted:
            raise self.reject()
        try:
            yield slot
        finally:
            slot._release()

    def stats(self) -> QueueStats:
        with self._lock:
            mean = sum(self._service) / len(self._service) if self._service else None
            return QueueStats(
                workers=self.workers,
                capacity=self.capacity,
                admitted=self._admitted,
                running=self._running,
                accepted=self._accepted,
                rejected=self._rejected,
                timed_out=self._timed_out,
                abandoned=self._abandoned,
                mean_inference_s=None if mean is None else round(mean, 3),
            )

    def shutdown(self) -> None:
        """Stop taking work; jobs still queued are dropped, running ones finish."""
        self._inference.shutdown(wait=False, cancel_futures=True)
        self._io.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ internal

    def _release(self, slot: Slot) -> None:
        with self._lock:
            self._admitted -= 1
            self._slots.remove(slot)

    def _running_start(self) -> None:
        with self._lock:
            self._running += 1

    def _running_done(self, elapsed: float, *, ok: bool) -> None:
        # Inference is the bottleneck the line waits on: its duration drives Retry-After.
        with self._lock:
            self._running -= 1
            if ok:
                self._service.append(elapsed)

    def _count_abandoned(self) -> None:
        with self._lock:
            self._abandoned += 1

    def _count_timeout(self) -> None:
        with self._lock:
            self._timed_out += 1
