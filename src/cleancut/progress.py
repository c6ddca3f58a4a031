"""Progress and cancellation hooks shared by the download, the pipeline and batches.

A progress callback is ``progress(key, current, total)`` with keys such as
``fetch:/models/isnet_fp16`` (bytes), ``compute:decode``, ``compute:inference``,
``compute:encode`` (stage ``0/1`` then ``1/1``), mirroring the reference's keys.

A cancel signal is a :class:`threading.Event` or any zero-argument callable returning
``True`` when work should stop; it is checked between stages.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Union

from .errors import CancelledError

__all__ = ["ByteCounter", "CancelSignal", "ProgressCallback", "check_cancel", "stage"]

ProgressCallback = Callable[[str, int, int], None]
CancelSignal = Union[threading.Event, Callable[[], bool]]


def check_cancel(cancel: CancelSignal | None, where: str = "") -> None:
    """Raise :class:`CancelledError` if the signal is set."""
    if cancel is None:
        return
    fired = cancel.is_set() if isinstance(cancel, threading.Event) else bool(cancel())
    if fired:
        suffix = f" before {where}" if where else ""
        raise CancelledError(f"cancelled{suffix}")


class stage:  # noqa: N801 - used as a context manager, reads like a keyword
    """Report ``compute:<name>`` as 0/1 on entry and 1/1 on exit, after a cancel check."""

    def __init__(self, name: str, progress: ProgressCallback | None, cancel: CancelSignal | None) -> None:
        self.key = f"compute:{name}"
        self.name = name
        self.progress = progress
        self.cancel = cancel

    def __enter__(self) -> stage:
        check_cancel(self.cancel, self.name)
        if self.progress is not None:
            self.progress(self.key, 0, 1)
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None and self.progress is not None:
            self.progress(self.key, 1, 1)


class ByteCounter:
    """A thread-safe running total reported through a progress callback."""

    def __init__(self, key: str, total: int, progress: ProgressCallback | None) -> None:
        self.key = key
        self.total = total
        self.done = 0
        self._progress = progress
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:  # report inside the lock so callers see a monotonic count
            self.done += n
            if self._progress is not None:
                self._progress(self.key, min(self.done, self.total), self.total)
