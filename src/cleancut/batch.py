"""Many images: plan input → output paths, then run them through one :class:`Remover`.

Planning is pure (:func:`plan_jobs`); running (:func:`run_jobs`) is a small pipeline:
decoding of the next images and encoding/writing of the previous ones run on worker
threads while the model works on the current one (onnxruntime, Pillow and numpy release the
GIL). Queues are bounded, so memory stays flat however long the list. One bad file yields a
``failed`` result and the batch goes on. Outputs that already exist are skipped unless
``overwrite``, so a rerun resumes.

No input is ever written: an output that lands in its input's own folder takes the
``.cutout`` mark (``NAME.cutout.EXT``, also when ``-o`` is the input folder), files carrying
that mark are never inputs, so a rerun does not cut out its own earlier outputs; and
:func:`run_jobs` refuses, whatever ``overwrite`` says, any job whose output is one of the
batch's inputs (the same path, a symlink to it or a hard link of it).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

import numpy as np

from . import io as codecs
from . import stages
from .errors import CancelledError, CleancutError, InvalidOptionError, OutputExistsError
from .io.decode import DecodedImage
from .io.formats import OutputFormat
from .options import CutOptions
from .parallel import one_core
from .passes import QualityMode
from .progress import CancelSignal, check_cancel
from .remover import Remover

if TYPE_CHECKING:
    pass

__all__ = [
    "IMAGE_EXTENSIONS",
    "Job",
    "JobResult",
    "OutputOptions",
    "plan_jobs",
    "run_jobs",
]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS: Final = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jpe",
        ".png",
        ".webp",
        ".gif",
        ".bmp",
        ".tif",
        ".tiff",
        ".heic",
        ".heif",
        ".avif",
        ".jfif",
        ".apng",
        ".tga",
        ".ppm",
        ".pgm",
        ".pnm",
    }
)
#: Marker in the names of outputs written into their input's own folder; files carrying it
#: are never taken as inputs when a folder is scanned.
CUTOUT_MARK: Final = ".cutout"
STDIO: Final = "-"


#: The folder batch's options are the one :class:`~cleancut.options.CutOptions`.
OutputOptions = CutOptions


@dataclass(frozen=True)
class Job:
    """One input and where its result goes. ``None`` means stdin / stdout."""

    source: Path | None
    output: Path | None
    name: str


@dataclass
class JobResult:
    job: Job
    status: Literal["written", "skipped", "failed"]
    error: str | None = None
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    data: bytes | None = None  # the encoded bytes, for stdout jobs only


# --------------------------------------------------------------------------- planning


def _is_image_name(path: Path) -> bool:
    return (
        path.suffix.lower() in IMAGE_EXTENSIONS
        and not path.name.startswith(".")
        and CUTOUT_MARK not in path.name
    )


def _real(path: Path) -> Path:
    """``path`` with every symlink resolved as far as it goes; never raises (a symlink loop
    stays unresolved, where ``Path.resolve`` would raise ``RuntimeError`` on Python 3.11)."""
    try:
        return Path(os.path.realpath(path))
    except (OSError, ValueError):
        return path.absolute()


def _scan(folder: Path, exclude: Path | None) -> list[Path]:
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        rootp = Path(root)
        dirs[:] = sorted(
            d for d in dirs if not d.startswith(".") and (exclude is None or _real(rootp / d) != exclude)
        )
        found.extend(rootp / f for f in sorted(files) if _is_image_name(rootp / f))
    return found


def _beside(path: Path, fmt: OutputFormat) -> Path:
    return path.with_name(f"{path.stem}{CUTOUT_MARK}{codecs.extension_for(fmt)}")


def plan_jobs(
    inputs: Iterable[str | os.PathLike[str]],
    output: str | os.PathLike[str] | None,
    fmt: OutputFormat | None = None,
) -> tuple[list[Job], OutputFormat]:
    """Decide every output path; returns the jobs and the output format.

    * one file: ``-o out.png`` writes that file (format from its extension unless ``fmt``);
      ``-o DIR/`` or an existing folder writes ``DIR/NAME.png``; no ``-o`` writes
      ``NAME.cutout.png`` beside the input; ``-o -`` writes to stdout.
    * ``-`` (stdin): to stdout, or to ``-o FILE``.
    * a folder or several inputs: ``-o`` is a folder and outputs keep their relative names
      with the format's extension; without ``-o`` each goes beside its input as
      ``NAME.cutout.EXT``. Files already named ``*.cutout.*`` are never inputs.
    * an output that would land in its input's own folder (``-o`` the input folder itself,
      or ``-o DIR/`` for a file in DIR) is named ``NAME.cutout.EXT`` as well, so no output is
      an input of this run or of a rerun.
    """
    items = [str(i) for i in inputs]
    if not items:
        raise InvalidOptionError("no input given; pass image files, folders, or - for stdin")
    if items.count(STDIO) and len(items) > 1:
        raise InvalidOptionError("stdin (-) cannot be combined with other inputs")
    out = None if output is None else str(output)
    out_path = None if out is None or out == STDIO else Path(out)
    single = len(items) == 1 and (items[0] == STDIO or not Path(items[0]).is_dir())

    if single:
        fmt_out = fmt or (codecs.format_from_path(out_path) if out_path else None) or "png"
        into_dir = out_path is not None and (out_path.is_dir() or str(out).endswith(("/", os.sep)))
        if items[0] == STDIO:
            if out_path is None:
                return [Job(None, None, "<stdin>")], fmt_out
            target = out_path / f"stdin{codecs.extension_for(fmt_out)}" if into_dir else out_path
            return [Job(None, target, "<stdin>")], fmt_out
        src = Path(items[0])
        if out == STDIO:
            return [Job(src, None, items[0])], fmt_out
        if out_path is None:
            target = _beside(src, fmt_out)
        elif into_dir:
            name = f"{src.stem}{codecs.extension_for(fmt_out)}"
            if _real(out_path) == _real(src.parent):
                name = _beside(src, fmt_out).name
            target = out_path / name
        else:
            target = out_path
        return [Job(src, target, items[0])], fmt_out

    fmt_out = fmt or "png"
    if out == STDIO:
        raise InvalidOptionError("several inputs cannot all go to stdout; give -o FOLDER")
    if out_path is not None and out_path.exists() and not out_path.is_dir():
        raise InvalidOptionError(f"-o {out_path} must be a folder when there are several inputs")
    ext = codecs.extension_for(fmt_out)
    exclude = _real(out_path) if out_path is not None else None
    jobs: list[Job] = []
    taken: dict[Path, str] = {}
    real_dirs: dict[Path, Path] = {}

    def real_dir(folder: Path) -> Path:
        if folder not in real_dirs:
            real_dirs[folder] = _real(folder)
        return real_dirs[folder]

    for item in items:
        p = Path(item)
        pairs = [(f, f.relative_to(p)) for f in _scan(p, exclude)] if p.is_dir() else [(p, Path(p.name))]
        for src, rel in pairs:
            if out_path is not None:
                target = out_path / rel.with_suffix(ext)
                # photo.jpg and photo.png in one folder: photo.png, photo.jpg.png
                fallback = out_path / rel.with_name(rel.name + ext)
            if out_path is None or real_dir(target.parent) == real_dir(src.parent):
                # beside its input (no -o, or -o the input's own folder): the .cutout mark,
                # so that the output is neither an input nor taken as one on a rerun
                folder = src.parent if out_path is None else target.parent
                target = folder / f"{src.stem}{CUTOUT_MARK}{ext}"
                # photo.jpg and photo.png in one folder: photo.cutout.png, photo.png.cutout.png
                fallback = folder / f"{src.name}{CUTOUT_MARK}{ext}"
            target = _unique(target, fallback, taken)
            taken[target] = str(src)
            jobs.append(Job(src, target, str(src)))
    return jobs, fmt_out


def _unique(target: Path, fallback: Path, taken: dict[Path, str]) -> Path:
    """``target``, or when another input already maps there, ``fallback`` (then ``.2``, ``.3``…
    before the extension), so that no two inputs of one batch share an output."""
    if target not in taken:
        return target
    candidate, n = fallback, 2
    while candidate in taken:
        candidate = fallback.with_name(f"{fallback.stem}.{n}{fallback.suffix}")
        n += 1
    return candidate


# --------------------------------------------------------------------------- running


def _same_file(a: Path, b: Path) -> bool:
    if _real(a) == _real(b):
        return True
    try:
        return b.exists() and a.samefile(b)
    except (OSError, ValueError):  # a symlink loop, no permission, a NUL byte
        return False


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


class _Inputs:
    """Every input of one batch, by real path and by file identity (hard links), so that no
    job writes an output over an input of the batch: its own or another job's."""

    def __init__(self, jobs: list[Job]) -> None:
        self.paths: dict[Path, Path] = {}
        self.ids: dict[tuple[int, int], Path] = {}
        for job in jobs:
            if job.source is None:
                continue
            self.paths.setdefault(_real(job.source), job.source)
            fid = _file_id(job.source)
            if fid is not None:
                self.ids.setdefault(fid, job.source)

    def clash(self, output: Path) -> Path | None:
        """The input that ``output`` is, if any."""
        found = self.paths.get(_real(output))
        if found is None and self.ids:
            fid = _file_id(output)
            found = self.ids.get(fid) if fid is not None else None
        return found


def _read_stdin() -> bytes:
    return sys.stdin.buffer.read()


@dataclass
class _Prepared:
    decoded: DecodedImage
    x: np.ndarray | None  # the network input of a single 1024² pass; None: several passes
    timings: dict[str, float]

    def infer(self, remover: Remover, mode: QualityMode, cancel: CancelSignal | None) -> np.ndarray:
        if self.x is not None:
            return remover.infer(self.x, cancel=cancel)
        return remover.predict(self.decoded.pixels, mode=mode, cancel=cancel)


def prepare(decoded: DecodedImage, remover: Remover, mode: QualityMode) -> np.ndarray | None:
    """The default mode's one 1024² input, made ahead (and batchable on a GPU); other modes
    make each pass's input as they run it (:func:`cleancut.stages.infer`)."""
    if mode != "default":
        return None
    return stages.prepare(decoded.pixels, mode, exact=remover.exact_resize)[0]


def _decode(job: Job, remover: Remover, mode: QualityMode = "default") -> _Prepared:
    """Decode and preprocess on a worker thread, while the model runs the previous image
    (the default mode's one pass; other modes preprocess each pass as they run it)."""
    t0 = time.perf_counter()
    source = _read_stdin() if job.source is None else job.source
    decoded = remover.decode(source)
    t1 = time.perf_counter()
    x = prepare(decoded, remover, mode)
    return _Prepared(decoded, x, {"decode": t1 - t0, "preprocess": time.perf_counter() - t1})


def _finish(
    job: Job,
    decoded: DecodedImage,
    y: np.ndarray,
    options: OutputOptions,
    overwrite: bool,
    exact: bool,
    max_pixels: int,
) -> tuple[dict[str, float], bytes | None]:
    """Postprocess, compose, encode and write on a worker thread."""
    t0 = time.perf_counter()
    steps: dict[str, float] = {}
    cut = stages.finish(decoded, y, options, exact=exact, max_pixels=max_pixels, timings=steps)
    t1 = t0 + steps["postprocess"]
    data = stages.encode(cut, options)
    t2 = time.perf_counter()
    timings = {"postprocess": t1 - t0, "encode": t2 - t1}
    if job.output is None:
        return timings, data
    codecs.write_atomic(job.output, data, overwrite=overwrite)
    timings["write"] = time.perf_counter() - t2
    return timings, None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, CleancutError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc} ({exc.filename or 'write'})" if exc.strerror else str(exc)
    return f"unexpected {type(exc).__name__}: {exc}"


def _result(
    job: Job,
    fut: Future[tuple[dict[str, float], bytes | None]],
    started: float,
    overwrite: bool,
    timings: dict[str, float] | None = None,
) -> JobResult:
    """The :class:`JobResult` of a job's finishing work: written, skipped (its output
    appeared meanwhile) or failed, with the reason. Interrupts and cancellation propagate."""
    try:
        finished, data = fut.result()
    except (KeyboardInterrupt, SystemExit, CancelledError):
        raise
    except BaseException as exc:
        if isinstance(exc, OutputExistsError) and not overwrite:
            return JobResult(job, "skipped", str(exc), time.perf_counter() - started)
        return JobResult(job, "failed", _describe(exc), time.perf_counter() - started)
    merged = {**timings, **finished} if timings is not None else finished
    return JobResult(job, "written", None, time.perf_counter() - started, merged, data)


def _failed(exc: BaseException) -> Future[tuple[dict[str, float], bytes | None]]:
    fut: Future[tuple[dict[str, float], bytes | None]] = Future()
    fut.set_exception(exc)
    return fut


def run_jobs(
    jobs: Iterable[Job],
    remover: Remover,
    options: OutputOptions,
    *,
    overwrite: bool = False,
    cancel: CancelSignal | None = None,
    prefetch: int = 2,
) -> Iterator[JobResult]:
    """Process ``jobs`` in order, yielding one :class:`JobResult` each (lazily).

    Decoding runs ``prefetch`` images ahead and encoding/writing up to ``prefetch`` behind
    the inference, on worker threads. When the session takes batches (a GPU with a
    dynamic-batch graph) consecutive images are inferred together. Cancellation stops
    before the next image; results already finished are still reported. A job whose output
    is an input of ``jobs`` (its own or another's) fails without any work, even with
    ``overwrite``.
    """
    job_list = list(jobs)
    inputs = _Inputs(job_list)
    options = options.loaded(remover.settings.max_pixels)
    # several passes per image (quality modes other than default) run image by image
    batch = max(1, remover.session.max_batch) if job_list and options.mode == "default" else 1
    streams = remover.session.streams if job_list and batch == 1 else 1
    if streams > 1:
        yield from _run_streams(job_list, remover, options, overwrite, cancel, streams, inputs)
        return
    workers = 1 if batch == 1 else min(4, os.cpu_count() or 1)
    prefetch = max(prefetch, 2 * batch)
    with (
        ThreadPoolExecutor(workers, thread_name_prefix="cleancut-decode") as decoder,
        ThreadPoolExecutor(workers, thread_name_prefix="cleancut-encode") as encoder,
    ):
        # Jobs that need no work are answered at once, in order.
        pending: deque[tuple[Job, Future[_Prepared] | None, JobResult | None]] = deque()
        encoding: deque[
            tuple[Job, Future[tuple[dict[str, float], bytes | None]], float, dict[str, float]]
        ] = deque()
        it = iter(job_list)

        in_flight = [0]  # decodes submitted and not yet taken

        def refill() -> None:
            # Skipped jobs cost nothing, but stop at a bounded number of them so a resumed
            # batch of a million finished files does not build a million-entry queue.
            while in_flight[0] < prefetch and len(pending) < 64 + prefetch:
                job = next(it, None)
                if job is None:
                    return
                early = _precheck(job, overwrite, inputs)
                if early is not None:
                    pending.append((job, None, early))
                else:
                    pending.append((job, decoder.submit(_decode, job, remover, options.mode), None))
                    in_flight[0] += 1

        def drain(limit: int) -> Iterator[JobResult]:
            while len(encoding) > limit:
                job, fut, started, timings = encoding.popleft()
                yield _result(job, fut, started, overwrite, timings)

        try:
            refill()
            while pending:
                job, fut, early = pending.popleft()
                if early is not None:
                    yield from drain(0)
                    yield early
                    refill()
                    continue
                assert fut is not None
                group: list[tuple[Job, Future[_Prepared]]] = [(job, fut)]
                while len(group) < batch and pending and pending[0][1] is not None:
                    j, f, _ = pending.popleft()
                    assert f is not None
                    group.append((j, f))
                in_flight[0] -= len(group)
                check_cancel(cancel, job.name)
                started = time.perf_counter()
                ready: list[tuple[Job, _Prepared, dict[str, float]]] = []
                for job, fut in group:
                    t0 = time.perf_counter()
                    try:
                        prepared = fut.result()
                    except BaseException as exc:
                        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                            raise
                        # a bad file: its failure takes its place in the output order
                        encoding.append((job, _failed(exc), started, {}))
                        continue
                    ready.append((job, prepared, {"wait": time.perf_counter() - t0}))
                refill()  # start decoding the next images while these are inferred
                if ready:
                    t1 = time.perf_counter()
                    try:
                        if len(ready) == 1:
                            y = ready[0][1].infer(remover, options.mode, cancel)
                        else:  # a batch: default mode, every x is there
                            y = remover.infer(np.concatenate([p.x for _, p, _ in ready]), cancel=cancel)
                    except CancelledError:
                        yield from drain(0)  # report what already finished before stopping
                        raise
                    except BaseException as exc:
                        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                            raise
                        for job, _, timings in ready:
                            encoding.append((job, _failed(exc), started, timings))
                    else:
                        per_image = (time.perf_counter() - t1) / len(ready)
                        for i, (job, prepared, timings) in enumerate(ready):
                            timings.update(prepared.timings, inference=per_image)
                            work = encoder.submit(
                                _finish,
                                job,
                                prepared.decoded,
                                y[i : i + 1],
                                options,
                                overwrite,
                                remover.exact_resize,
                                remover.settings.max_pixels,
                            )
                            encoding.append((job, work, started, timings))
                    del ready
                yield from drain(max(prefetch - 1, batch))
            yield from drain(0)
        except CancelledError:
            yield from drain(0)
            raise
        finally:
            for _, f, _ in pending:
                if f is not None:
                    f.cancel()


def _run_streams(
    job_list: list[Job],
    remover: Remover,
    options: OutputOptions,
    overwrite: bool,
    cancel: CancelSignal | None,
    streams: int,
    inputs: _Inputs,
) -> Iterator[JobResult]:
    """The folder pipeline for a session with several streams (OpenVINO, throughput mode).

    A worker thread takes an image through every stage: decode, preprocess, inference on a
    single-threaded stream, postprocess, encode, write. Streams never wait at a barrier for
    a thread that a decode or encode preempted, which is what held the overlapped pipeline
    (one multi-threaded inference at a time) to 68-100 %, median 73 %, of inference-only
    throughput on the 2-core machine (issue 3; ``benchmarks/throughput.py``). There is one
    worker more than streams, so while one worker decodes or encodes the streams still
    each have an image queued: measured side by side, streams + 1 workers ran at 105 % and
    112 % of inference-only (2 callers), streams workers at 93 % and 98 %. Each worker runs
    its image's stages on its own thread (:func:`cleancut.parallel.one_core`): the PNG
    encoder and blur-fusion do not fan out to cores that the streams keep busy. Results come
    back in input order; at most ``2 · streams + 1`` images are in flight, so memory is flat.
    """

    def whole(job: Job) -> tuple[dict[str, float], bytes | None]:
        check_cancel(cancel, job.name)
        # Every core already works on whole images: one thread per image's stages.
        with one_core():
            prepared = _decode(job, remover, options.mode)
            t0 = time.perf_counter()
            y = prepared.infer(remover, options.mode, cancel)
            timings = {**prepared.timings, "inference": time.perf_counter() - t0}
            finished, data = _finish(
                job,
                prepared.decoded,
                y,
                options,
                overwrite,
                remover.exact_resize,
                remover.settings.max_pixels,
            )
        timings.update(finished)
        return timings, data

    limit = 2 * streams + 1
    pending: deque[tuple[Job, Future[tuple[dict[str, float], bytes | None]] | None, JobResult | None, float]]
    pending = deque()
    running = [0]
    it = iter(job_list)

    def refill() -> None:
        while running[0] < limit and len(pending) < 64 + limit:
            job = next(it, None)
            if job is None:
                return
            early = _precheck(job, overwrite, inputs)
            if early is not None:
                pending.append((job, None, early, 0.0))
            else:
                pending.append((job, pool.submit(whole, job), None, time.perf_counter()))
                running[0] += 1

    with ThreadPoolExecutor(streams + 1, thread_name_prefix="cleancut-stream") as pool:
        try:
            refill()
            while pending:
                job, fut, early, started = pending.popleft()
                if fut is None:
                    assert early is not None
                    yield early
                else:
                    running[0] -= 1
                    try:
                        result = _result(job, fut, started, overwrite)
                    except CancelledError:
                        # Report the images that did finish (in order), then stop.
                        for _, waiting, _, _ in pending:
                            if waiting is not None:
                                waiting.cancel()
                        for j, other, _, t in pending:
                            if other is not None and not other.cancelled():
                                try:
                                    yield _result(j, other, t, overwrite)
                                except CancelledError:
                                    pass
                        pending.clear()
                        raise
                    yield result
                refill()
        finally:
            for _, leftover, _, _ in pending:
                if leftover is not None:
                    leftover.cancel()


def _precheck(job: Job, overwrite: bool, inputs: _Inputs | None = None) -> JobResult | None:
    """Answer jobs that need no model work: skips and refusals."""
    if job.source is not None and job.output is not None and _same_file(job.source, job.output):
        return JobResult(job, "failed", f"refusing to overwrite the input {job.source}; choose another -o")
    other = inputs.clash(job.output) if inputs is not None and job.output is not None else None
    if other is not None:
        return JobResult(
            job,
            "failed",
            f"refusing to write {job.output}: it is an input of this batch ({other}); "
            "choose another -o (inputs are never written, whatever --overwrite says)",
        )
    if job.output is not None and job.output.exists() and not overwrite:
        return JobResult(job, "skipped", f"{job.output} exists (use --overwrite to replace it)")
    return None


#: Signature of a per-result callback, for callers that prefer pushing to pulling.
ResultCallback = Callable[[JobResult], None]
