"""``cleancut watch IN [-o OUT]``: cut out photos as they arrive in a folder.

The folder is watched with ``watchdog`` (inotify on Linux, FSEvents on macOS,
ReadDirectoryChangesW on Windows). On start, every photo of IN without an up-to-date output
is cut first (resumable like ``cleancut IN -o OUT``: an output that exists is kept unless its
photo is newer, or ``--overwrite``); then each photo that is added, replaced or moved in is
cut as soon as it is complete, replacing its output. Names, formats, the ``.cutout`` mark,
the refusal to write over an input and atomic writes are the folder run's
(:func:`cleancut.planning.plan_jobs`, :func:`cleancut.batch.run_jobs`).

A photo is read only once complete: after its last change it must keep its size and
modification time for ``--settle`` seconds; where the OS reports that a writer closed the
file (inotify's close-write) a short grace suffices. A file moved into IN is complete at once.
Ctrl-C (or SIGTERM) stops after the photo being cut, its output written or not begun: no
temporary file is left.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import stat
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Final

import click

from ..cli_options import cut_options, engine_options, table_option
from ..errors import CleancutError, InvalidOptionError
from ..io.formats import OutputFormat, normalize_format
from ..options import EngineOptions
from .app import SettingsFlags, echo, errors, settings_options
from .progress import FetchProgress
from .remove import cut_options_from_flags, engine_from_flags

if TYPE_CHECKING:
    from watchdog.events import FileSystemEvent

    from ..batch import Job, JobResult
    from ..config import Settings
    from ..edges import EdgeOptions
    from ..framing import Framing
    from ..options import CutOptions
    from ..remover import Remover

__all__ = ["watch_cmd"]

log = logging.getLogger("cleancut")

#: After a close-write event, how long the file must stay unchanged before it is read.
CLOSE_GRACE: Final = 0.2
#: Longest wait for an event before the loop looks at its pending files again.
_TICK: Final = 0.5


@dataclass
class _Pending:
    """A photo seen changing: read once ``due`` has passed and its ``stat`` is unchanged."""

    due: float
    stat: tuple[int, int] | None


def _stat(path: Path) -> tuple[int, int] | None:
    """Size and modification time (ns) of a regular file; ``None`` when it is not one (gone)."""
    try:
        st = path.stat()
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return st.st_size, st.st_mtime_ns


class Watch:
    """Which photos of ``folder`` are ready to cut. Fed with watchdog's events (from its
    thread, through a queue) and asked :meth:`ready` by the loop. Pending photos are kept
    by real path, so two spellings of one file are one photo."""

    def __init__(self, folder: Path, output: Path | None, settle: float) -> None:
        from ..planning import real_path

        self.folder = folder
        self.root = real_path(folder)
        # An output folder inside IN is not watched: what is written there is never an input.
        out = real_path(output) if output is not None else None
        self.exclude = out if out is not None and out != self.root and _inside(out, self.root) else None
        self.settle = settle
        self.events: queue.Queue[FileSystemEvent] = queue.Queue()
        self.pending: dict[Path, _Pending] = {}

    def takes(self, path: Path) -> bool:
        """A photo of the watched tree, as the folder scan takes them: an image name, not
        hidden, not ``.cutout``, in no hidden folder and not in the output folder."""
        from ..planning import is_image_name, real_path

        if not is_image_name(path):
            return False
        real = real_path(path)
        try:
            parts = real.parent.relative_to(self.root).parts
        except ValueError:
            return False
        if any(p.startswith(".") for p in parts):
            return False
        return self.exclude is None or not _inside(real, self.exclude)

    def note(self, path: Path, *, closed: bool = False, complete: bool = False) -> None:
        """``path`` changed: read it after ``--settle`` seconds of quiet, after
        :data:`CLOSE_GRACE` when its writer closed it, or at once when it was moved in."""
        from ..planning import real_path

        if not self.takes(path):
            return
        wait = 0.0 if complete else min(self.settle, CLOSE_GRACE) if closed else self.settle
        self.pending[real_path(path)] = _Pending(time.monotonic() + wait, _stat(path))

    def handle(self, event: FileSystemEvent) -> None:
        from watchdog.events import (
            DirCreatedEvent,
            DirMovedEvent,
            FileClosedEvent,
            FileDeletedEvent,
            FileMovedEvent,
        )

        from ..planning import real_path

        src = Path(os.fsdecode(event.src_path))
        if isinstance(event, FileDeletedEvent):
            self.pending.pop(real_path(src), None)
        elif isinstance(event, FileMovedEvent):
            self.pending.pop(real_path(src), None)
            self.note(Path(os.fsdecode(event.dest_path)), complete=True)
        elif isinstance(event, (DirCreatedEvent, DirMovedEvent)):
            # A folder moved in (or made and filled at once) may report only itself.
            target = Path(os.fsdecode(event.dest_path or event.src_path))
            if target.is_dir():
                from ..planning import scan_folder

                for photo in scan_folder(target, self.exclude):
                    self.note(photo)
        elif not event.is_directory:
            self.note(src, closed=isinstance(event, FileClosedEvent))

    def wait(self) -> None:
        """Take the events that arrive until the nearest pending file is due (or a tick)."""
        now = time.monotonic()
        timeout = min([_TICK, *(p.due - now for p in self.pending.values())])
        try:
            event = self.events.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return
        self.handle(event)
        while True:
            try:
                self.handle(self.events.get_nowait())
            except queue.Empty:
                return

    def ready(self) -> list[Path]:
        """The pending photos that are due and complete; one that changed meanwhile waits on."""
        now = time.monotonic()
        done: list[Path] = []
        for path, entry in list(self.pending.items()):
            if entry.due > now:
                continue
            current = _stat(path)
            if current is None:  # gone, or no longer a file
                del self.pending[path]
            elif current != entry.stat:  # still being written: wait for quiet again
                self.pending[path] = _Pending(now + self.settle, current)
            else:
                del self.pending[path]
                done.append(path)
        return sorted(done)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


@contextmanager
def _observer(watch: Watch) -> Iterator[None]:
    """watchdog's observer on ``watch.folder`` (recursive) for as long as the block runs."""
    from watchdog.events import (
        DirCreatedEvent,
        DirMovedEvent,
        FileClosedEvent,
        FileCreatedEvent,
        FileDeletedEvent,
        FileModifiedEvent,
        FileMovedEvent,
        FileSystemEventHandler,
    )
    from watchdog.observers import Observer

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            watch.events.put(event)

    observer = Observer()
    # Only what can make a photo new or complete: our own reads (open, close-nowrite) and
    # attribute changes would otherwise wake the loop for nothing.
    kinds = [
        FileCreatedEvent,
        FileModifiedEvent,
        FileClosedEvent,
        FileMovedEvent,
        FileDeletedEvent,
        DirCreatedEvent,
        DirMovedEvent,
    ]
    observer.schedule(Handler(), str(watch.folder), recursive=True, event_filter=kinds)
    observer.start()
    try:
        yield
    finally:
        observer.stop()
        observer.join(timeout=5)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@dataclass(frozen=True)
class _Target:
    folder: Path
    output: str | None
    fmt: OutputFormat | None
    options: CutOptions
    overwrite: bool
    quiet: bool


@click.command("watch")
@click.argument("folder", metavar="IN", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    default=None,
    metavar="OUT",
    help="Folder for the cut-outs (default: beside each photo as NAME.cutout.png). It may lie "
    "inside IN: it is not watched.",
)
@click.option(
    "--settle",
    type=click.FloatRange(min=0.05, max=3600),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="A photo is read once its size and time have not changed for this long (a short grace "
    "after its writer closes it, where the OS tells; at once when moved in).",
)
@table_option("model", "-m", show_default=True)
@table_option("model_family")
@table_option("model_sha256")
@table_option("mode", "quality_mode", show_default=True)
@table_option("type", "-t", "output_type", show_default=True)
@table_option("format", "-f", "fmt", default=None)
@table_option("quality", "-q", show_default=True)
@table_option("bg_color")
@cut_options
@engine_options
@table_option("strict", "strict_device", is_flag=True)
@table_option("threads")
@click.option(
    "--overwrite",
    is_flag=True,
    help="On start, cut every photo again, replacing outputs that exist (never inputs).",
)
@click.option("--quiet", is_flag=True, help="Print only errors.")
@settings_options
def watch_cmd(
    folder: Path,
    output: str | None,
    settle: float,
    model: str,
    model_family: str | None,
    model_sha256: str | None,
    quality_mode: str,
    output_type: str,
    fmt: str | None,
    quality: float,
    bg_color: str | None,
    edges: EdgeOptions | None,
    framing: Framing | None,
    device: str,
    backend: str,
    strict_device: bool,
    threads: int | None,
    overwrite: bool,
    quiet: bool,
    flags: SettingsFlags,
) -> None:
    """Watch the folder IN and cut out each photo that arrives or is replaced.

    On start, photos of IN without an up-to-date output are cut first (a rerun resumes);
    then each new, replaced or moved-in photo is cut once it is completely written, and its
    output replaced. Takes the options of `cleancut remove`. Runs until Ctrl-C (or SIGTERM),
    which stops after the photo in progress and leaves no temporary file (exit 130).

    \b
    cleancut watch uploads/ -o cutouts/
    cleancut watch tethered/ -o web/ -f webp --bg-color white
    cleancut watch shop/                 writes shop/NAME.cutout.png beside each photo
    """
    with errors():
        settings = flags.settings()
        out_fmt = normalize_format(fmt) if fmt else None
        options = cut_options_from_flags(
            output_type, out_fmt, quality, bg_color, edges, framing, quality_mode, settings
        )
        _check_paths(folder, output)
        _plan(_Target(folder, output, out_fmt, options, overwrite, quiet))  # its usage errors, now
        engine = engine_from_flags(model, model_family, model_sha256, device, backend, strict_device, threads)
        target = _Target(folder, output, out_fmt, options, overwrite, quiet)
        previous = signal.signal(signal.SIGTERM, _interrupt)  # a service stop: the same clean stop
        try:
            _watch(target, engine, settings, settle)
        except KeyboardInterrupt:
            if not quiet:
                echo(f"stopped watching {folder}")
            sys.exit(130)
        finally:
            signal.signal(signal.SIGTERM, previous)


def _check_paths(folder: Path, output: str | None) -> None:
    """Usage errors before any model loads: IN a folder, OUT a folder (or to be made one),
    and the watching library installed."""
    try:
        import watchdog.observers  # noqa: F401
    except ImportError as exc:  # a dependency of cleancut: a broken install
        raise CleancutError(
            f"watch needs the watchdog package ({exc}), a dependency of cleancut: pip install 'watchdog>=5'"
        ) from exc
    if not folder.exists():
        raise InvalidOptionError(f"{folder}: no such folder to watch")
    if not folder.is_dir():
        raise InvalidOptionError(
            f"{folder} is a file: watch takes a folder (cut a file with `cleancut FILE`)"
        )
    if output == "-":
        raise InvalidOptionError("watch writes files: give -o FOLDER, or no -o to write beside each photo")
    if output is not None:
        out = Path(output)
        if out.exists() and not out.is_dir():
            raise InvalidOptionError(f"-o {out} is a file: watch writes into a folder")


def _watch(target: _Target, engine: EngineOptions, settings: Settings, settle: float) -> None:
    from ..io.atomic import sweep_stale_temps
    from ..planning import real_path
    from ..remover import Remover

    output_path = Path(target.output) if target.output is not None else None
    if output_path is not None:
        output_path.mkdir(parents=True, exist_ok=True)
    watch = Watch(target.folder, output_path, settle)
    remover = Remover.from_options(engine, settings=settings, scheduling="latency")
    remover.load(progress=FetchProgress(target.quiet))
    with _observer(watch):  # watching before the first scan: nothing that arrives is missed
        jobs, out_fmt = _plan(target)
        options = replace(target.options, format=out_fmt)
        for folder in sorted({j.output.parent for j in jobs if j.output is not None}):
            sweep_stale_temps(folder)  # what a run killed mid-write left
        backlog = [j for j in jobs if target.overwrite or _stale(j)]
        now = time.time()
        # A photo written within the settle time may still be growing: it waits its turn.
        for job in backlog:
            assert job.source is not None
            if _age(job.source, now) < settle:
                watch.note(job.source)
        todo = [j for j in backlog if j.source is not None and real_path(j.source) not in watch.pending]
        if not target.quiet:
            shown = target.output or "beside each photo"
            echo(
                f"watching {target.folder} -> {shown}: {len(jobs) - len(backlog)} up to date, "
                f"{len(backlog)} to cut (Ctrl-C to stop)"
            )
        _cut(todo, remover, options, target, overwrite=target.overwrite)
        while True:
            watch.wait()
            ready = watch.ready()
            if ready:
                _cut(_jobs_for(ready, target), remover, options, target, overwrite=True)


def _plan(target: _Target) -> tuple[list[Job], OutputFormat]:
    """The folder run's plan of IN: the same names as ``cleancut IN -o OUT``."""
    from ..planning import plan_jobs

    return plan_jobs([target.folder], target.output, target.fmt)


def _jobs_for(paths: list[Path], target: _Target) -> list[Job]:
    """The planned jobs of ``paths`` (matched by real path); a photo gone meanwhile has none."""
    from ..planning import real_path

    wanted = {real_path(p) for p in paths}
    jobs, _fmt = _plan(target)
    return [j for j in jobs if j.source is not None and real_path(j.source) in wanted]


def _stale(job: Job) -> bool:
    """No output yet, or one older than its photo (the photo was replaced since)."""
    assert job.source is not None and job.output is not None
    try:
        out = job.output.stat().st_mtime_ns
    except OSError:
        return True
    try:
        return job.source.stat().st_mtime_ns > out
    except OSError:
        return False


def _age(path: Path, now: float) -> float:
    try:
        return now - path.stat().st_mtime
    except OSError:
        return float("inf")


def _cut(jobs: list[Job], remover: Remover, options: CutOptions, target: _Target, *, overwrite: bool) -> None:
    """Run ``jobs`` through the folder run's pipeline; one line per result."""
    if not jobs:
        return
    from ..batch import run_jobs

    for result in run_jobs(jobs, remover, options, overwrite=overwrite):
        _report(result, target.quiet)


def _report(result: JobResult, quiet: bool) -> None:
    if result.status == "failed":
        echo(f"failed: {result.job.name}: {result.error}")
    elif not quiet and result.status == "written":
        echo(f"wrote {result.job.output} ({result.seconds:.1f} s)")
    elif not quiet:
        echo(f"skipped: {result.error}")
