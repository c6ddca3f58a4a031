"""Many images through one :class:`Remover`: the local batch's pipeline.

:func:`run_jobs` runs the jobs that :func:`cleancut.planning.plan_jobs` planned (re-exported
here) as a small pipeline: decoding of the next images and encoding/writing of the previous
ones run on worker threads while the model works on the current one (onnxruntime, Pillow
and numpy release the GIL). Queues are bounded, so memory stays flat however long the list.
One bad file yields a ``failed`` result and the batch goes on. Outputs that already exist
are skipped unless ``overwrite``, so a rerun resumes; a job whose output is an input of the
batch is refused whatever ``overwrite`` says (the rules live in :mod:`cleancut.planning`).
The stages of one image (:class:`Prepared`, :func:`prepare`, :func:`finish`) are public:
the Ray actor (:mod:`cleancut.distributed.actor`) runs the same ones.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from . import io as codecs
from . import stages
from .errors import CancelledError, CleancutError, OutputExistsError, OutputWriteError
from .io.atomic import check_writable
from .io.decode import DecodedImage
from .options import CutOptions
from .parallel import one_core
from .passes import QualityMode
from .planning import (
    CUTOUT_MARK,
    IMAGE_EXTENSIONS,
    STDIO,
    InputSet,
    Job,
    plan_jobs,
    precheck,
    same_file,
)
from .progress import CancelSignal, check_cancel
from .remover import Remover

if TYPE_CHECKING:
    from .models.families import Recipe

__all__ = [
    "CUTOUT_MARK",
    "IMAGE_EXTENSIONS",
    "STDIO",
    "Job",
    "JobResult",
    "OutputOptions",
    "Prepared",
    "check_output_folders",
    "describe",
    "finish",
    "plan_jobs",
    "prepare",
    "run_jobs",
]

log = logging.getLogger(__name__)

#: The folder batch's options are the one :class:`~cleancut.options.CutOptions`.
OutputOptions = CutOptions


@dataclass
class JobResult:
    job: Job
    status: Literal["written", "skipped", "failed"]
    error: str | None = None
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    data: bytes | None = None  # the encoded bytes, for stdout jobs only


# --------------------------------------------------------------------------- running


def _read_stdin() -> bytes:
    return sys.stdin.buffer.read()


@dataclass
class Prepared:
    """One decoded image, ready for the model (see :func:`prepare`), and its timings so far."""

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
    return stages.prepare(decoded.pixels, mode, remover.recipe)[0]


def _decode(job: Job, remover: Remover, options: OutputOptions) -> Prepared:
    """Decode and preprocess on a worker thread, while the model runs the previous image
    (the default mode's one pass; other modes preprocess each pass as they run it). A framed
    canvas over the pixel limit is refused here, before any inference."""
    t0 = time.perf_counter()
    source = _read_stdin() if job.source is None else job.source
    decoded = remover.decode(source)
    stages.check_canvas(decoded, options.framing, max_pixels=remover.settings.max_pixels)
    mode = options.mode
    t1 = time.perf_counter()
    x = prepare(decoded, remover, mode)
    return Prepared(decoded, x, {"decode": t1 - t0, "preprocess": time.perf_counter() - t1})


def finish(
    job: Job,
    decoded: DecodedImage,
    y: np.ndarray,
    options: OutputOptions,
    overwrite: bool,
    recipe: Recipe,
    max_pixels: int,
) -> tuple[dict[str, float], bytes | None]:
    """Postprocess, compose, encode and write (temp file + rename) on a worker thread; the
    encoded bytes come back instead when ``job.output`` is ``None``."""
    t0 = time.perf_counter()
    steps: dict[str, float] = {}
    cut = stages.finish(decoded, y, options, recipe=recipe, max_pixels=max_pixels, timings=steps)
    t1 = t0 + steps["postprocess"]
    data = stages.encode(cut, options)
    t2 = time.perf_counter()
    timings = {"postprocess": t1 - t0, "encode": t2 - t1}
    if job.output is None:
        return timings, data
    codecs.write_atomic(job.output, data, overwrite=overwrite)
    timings["write"] = time.perf_counter() - t2
    return timings, None


def describe(exc: BaseException) -> str:
    """The error text of a failed job, as the CLI prints it and the Ray manifest records it."""
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
        return JobResult(job, "failed", describe(exc), time.perf_counter() - started)
    merged = {**timings, **finished} if timings is not None else finished
    return JobResult(job, "written", None, time.perf_counter() - started, merged, data)


def _failed(exc: BaseException) -> Future[tuple[dict[str, float], bytes | None]]:
    fut: Future[tuple[dict[str, float], bytes | None]] = Future()
    fut.set_exception(exc)
    return fut


def check_output_folders(
    jobs: Sequence[Job], overwrite: bool = False, inputs: InputSet | None = None
) -> dict[Path, OutputWriteError]:
    """Check once, before any work, that the output folders of ``jobs`` take new files.

    When none does and a job needs writing, raises the :class:`OutputWriteError` (one clear
    error instead of every inference followed by a failed write); otherwise returns the
    folders that refuse, whose jobs then fail without any model work."""
    refused: dict[Path, OutputWriteError] = {}
    for folder in sorted({j.output.parent for j in jobs if j.output is not None}):
        error = check_writable(folder)
        if error is not None:
            refused[folder] = error
    # (a rerun of a finished batch into a read-only folder still just skips)
    if (
        refused
        and all(j.output is None or j.output.parent in refused for j in jobs)
        and any(j.output is not None and _precheck(j, overwrite, inputs) is None for j in jobs)
    ):
        raise next(iter(refused.values()))
    return refused


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
    ``overwrite``. Output folders that refuse new files are found first
    (:func:`check_output_folders`): when no output can be written this raises
    :class:`~cleancut.errors.OutputWriteError` before any work.
    """
    job_list = list(jobs)
    inputs = InputSet(j.source for j in job_list if j.source is not None)
    refused = check_output_folders(job_list, overwrite, inputs)
    options = options.loaded(remover.settings.max_pixels)
    # several passes per image (quality modes other than default) run image by image
    batch = max(1, remover.session.max_batch) if job_list and options.mode == "default" else 1
    streams = remover.session.streams if job_list and batch == 1 else 1
    if streams > 1:
        yield from _run_streams(job_list, remover, options, overwrite, cancel, streams, inputs, refused)
        return
    workers = 1 if batch == 1 else min(4, os.cpu_count() or 1)
    prefetch = max(prefetch, 2 * batch)
    with (
        ThreadPoolExecutor(workers, thread_name_prefix="cleancut-decode") as decoder,
        ThreadPoolExecutor(workers, thread_name_prefix="cleancut-encode") as encoder,
    ):
        # Jobs that need no work are answered at once, in order.
        pending: deque[tuple[Job, Future[Prepared] | None, JobResult | None]] = deque()
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
                early = _precheck(job, overwrite, inputs, refused)
                if early is not None:
                    pending.append((job, None, early))
                else:
                    pending.append((job, decoder.submit(_decode, job, remover, options), None))
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
                group: list[tuple[Job, Future[Prepared]]] = [(job, fut)]
                while len(group) < batch and pending and pending[0][1] is not None:
                    j, f, _ = pending.popleft()
                    assert f is not None
                    group.append((j, f))
                in_flight[0] -= len(group)
                check_cancel(cancel, job.name)
                started = time.perf_counter()
                ready: list[tuple[Job, Prepared, dict[str, float]]] = []
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
                                finish,
                                job,
                                prepared.decoded,
                                y[i : i + 1],
                                options,
                                overwrite,
                                remover.recipe,
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
    inputs: InputSet,
    refused: dict[Path, OutputWriteError],
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
            prepared = _decode(job, remover, options)
            t0 = time.perf_counter()
            y = prepared.infer(remover, options.mode, cancel)
            timings = {**prepared.timings, "inference": time.perf_counter() - t0}
            finished, data = finish(
                job,
                prepared.decoded,
                y,
                options,
                overwrite,
                remover.recipe,
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
            early = _precheck(job, overwrite, inputs, refused)
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


def _precheck(
    job: Job,
    overwrite: bool,
    inputs: InputSet | None = None,
    refused: dict[Path, OutputWriteError] | None = None,
) -> JobResult | None:
    """Answer jobs that need no model work: skips and refusals (:func:`cleancut.planning.precheck`),
    and failures of outputs whose folder takes no new files (``refused``)."""
    src, out = job.source, job.output
    same = src is not None and out is not None and same_file(src, out)
    other = inputs.clash(out) if not same and inputs is not None and out is not None else None
    early = precheck(
        src, out, same=same, other=other, overwrite=overwrite, exists=lambda: out is not None and out.exists()
    )
    if early is None and out is not None and refused and out.parent in refused:
        return JobResult(job, "failed", str(refused[out.parent]))
    return None if early is None else JobResult(job, early.status, early.reason)


#: Signature of a per-result callback, for callers that prefer pushing to pulling.
ResultCallback = Callable[[JobResult], None]
