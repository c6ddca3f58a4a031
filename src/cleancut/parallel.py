"""How many threads the work on one image may fan out to.

Some stages split one image over threads (the PNG encoder's deflate blocks, blur-fusion's
tiles): that is what a single cut-out wants, every core on one photo. A folder batch in
throughput mode already keeps every core busy with whole images, one per worker thread
(:func:`cleancut.batch.run_jobs`), and there the extra threads only add start-up and
hand-over costs on cores that have no idle time to give. Such a worker runs its images
inside :func:`one_core`, and the stages ask :func:`inner_threads`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["inner_threads", "one_core", "usable_cores"]

_local = threading.local()


def usable_cores() -> int:
    """The number of CPU cores this process may run on (its affinity mask where known)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def inner_threads() -> int:
    """Threads one image's stage may use on the calling thread: 1 inside :func:`one_core`,
    else the usable cores."""
    return 1 if getattr(_local, "one_core", 0) else usable_cores()


@contextmanager
def one_core() -> Iterator[None]:
    """Within this block (on this thread) stages work on one image with one thread."""
    depth = getattr(_local, "one_core", 0)
    _local.one_core = depth + 1
    try:
        yield
    finally:
        _local.one_core = depth
