"""What a run shows on stderr while it works: model download bars (:class:`FetchProgress`)
and the one batch loop (:class:`BatchProgress`: bar, error lines, per-file lines, counts)
that the local batch and the Ray engine both go through."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import click

from ..errors import CancelledError
from .app import echo, one_line

__all__ = ["BatchProgress", "Counts", "FetchProgress", "Row", "interrupt_as_cancel"]


class FetchProgress:
    """Progress callback of a model fetch: bars on a terminal, a few plain lines otherwise."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.bars: dict[str, Any] = {}
        self.announced: set[str] = set()

    def __call__(self, key: str, current: int, total: int) -> None:
        if self.quiet or not key.startswith("fetch:"):
            return
        if not self.tty:
            if key not in self.announced:
                self.announced.add(key)
                name = key.rsplit("/", 1)[-1]
                if total > 1:
                    click.echo(f"fetching {name} ({total / 2**20:.1f} MiB)…", err=True)
                else:  # a derived model: built locally, no bytes to count
                    click.echo(f"preparing {name} (once)…", err=True)
            return
        from tqdm import tqdm

        bar = self.bars.get(key)
        if bar is None:
            bar = tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=f"fetch {key.rsplit('/', 1)[-1]}",
                leave=False,
                file=sys.stderr,
            )
            self.bars[key] = bar
        bar.total = total
        bar.update(current - bar.n)
        if current >= total:
            bar.close()


@dataclass(frozen=True)
class Row:
    """One finished input, whichever engine ran it."""

    status: str  # written, skipped or failed
    name: str  # the input as the user gave it
    output: object  # where it went (a path or a URI); None for stdout
    error: str | None = None
    data: bytes | None = None  # the encoded output of a stdout job


@contextlib.contextmanager
def interrupt_as_cancel(quiet: bool) -> Iterator[threading.Event]:
    """While the block runs, a first Ctrl-C (SIGINT) sets the yielded event instead of
    raising: the batch stops starting images, finishes and reports the ones whose output is
    being written, and the caller prints its summary. A second Ctrl-C raises at once, as
    usual. Outside the main thread (no handler can be set there) the event never fires."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def first(signum: int, frame: object) -> None:
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if not quiet:
            click.echo("stopping: finishing the images in flight (Ctrl-C again to stop now)", err=True)

    before = signal.signal(signal.SIGINT, first)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, before)


@dataclass
class Counts:
    written: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    #: the run was stopped (Ctrl-C) before every input was done
    cancelled: bool = False

    @property
    def total(self) -> int:
        return self.written + self.skipped + self.failed

    def summary(self, of: int | None = None) -> str:
        return (
            f"{self.written} written, {self.skipped} skipped, {self.failed} failed, "
            f"of {self.total if of is None else of} in {self.seconds:.1f} s"
        )


class BatchProgress:
    """The one batch loop: a bar on a terminal (several inputs), an error line per failure,
    a ``written: IN -> OUT`` line per input where there is no bar, stdout data passed
    through. ``single``: one input, whose own error line or output says it all."""

    def __init__(self, *, total: int, quiet: bool, single: bool = False) -> None:
        from tqdm import tqdm

        self.quiet = quiet
        self.single = single
        self.show_bar = not quiet and not single and sys.stderr.isatty()
        self.bar = tqdm(total=total, unit="img", disable=not self.show_bar, file=sys.stderr)

    def set_total(self, total: int) -> None:
        """The number of inputs, where it is known only once the run has planned them."""
        self.bar.total = total
        self.bar.refresh()

    def run(self, rows: Iterable[Row]) -> Counts:
        """Show every row as it finishes; the counts once all have, or once ``rows`` stops
        with :class:`~cleancut.errors.CancelledError` (``cancelled`` set)."""
        counts = Counts()
        started = time.perf_counter()
        try:
            for row in _until_cancelled(rows, counts):
                setattr(counts, row.status, getattr(counts, row.status) + 1)
                self.bar.update(1)
                if row.status == "failed":
                    msg = row.error or "failed"
                    where = "" if row.name in msg else f"{row.name}: "
                    self.bar.write(one_line(f"error: {where}{msg}"), file=sys.stderr)
                elif row.data is not None:
                    sys.stdout.buffer.write(row.data)
                    sys.stdout.buffer.flush()
                elif not self.quiet and not self.show_bar and not self.single:
                    echo(f"{row.status}: {row.name} -> {row.output}")
        finally:
            self.bar.close()
        counts.seconds = time.perf_counter() - started
        return counts


def _until_cancelled(rows: Iterable[Row], counts: Counts) -> Iterator[Row]:
    try:
        yield from rows
    except CancelledError:
        counts.cancelled = True
