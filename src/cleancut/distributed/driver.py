"""The Ray driver: :func:`run_ray` plans a run, starts (or joins) Ray and records each row.

The driver lists the inputs and names every output (:mod:`.jobs`), answers what needs no
model work, and hands the rest to Ray Data as ``(input, output)`` rows that
``map_batches`` sends through a pool of :class:`~.actor.CutoutActor`. Rows stream back in
completion order and each is appended to the manifest (:mod:`.manifest`) before it is
yielded, so a killed run keeps what finished and a rerun skips it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from ..config import Settings
from ..errors import InvalidOptionError
from ..options import CutOptions, EngineOptions
from .actor import CutoutActor, WorkerSettings, worker_settings
from .jobs import RayInputs, RayJob, RayResult, Status, existing_outputs, plan_ray_jobs, precheck_row
from .manifest import Manifest, read_manifest
from .uris import is_local

__all__ = ["ACTOR_TASK_RETRIES", "import_ray", "ray_session", "run_ray", "without_ray_data_noise"]

log = logging.getLogger(__name__)


# A missing extra is an InvalidOptionError: the option asked for cannot be used here, and
# the message says how to make it usable.
def import_ray() -> Any:
    try:
        import ray
        import ray.data  # the Data library is a separate extra of ray
    except ImportError as exc:
        raise InvalidOptionError(
            f"--engine ray needs Ray Data, which is not installed ({exc}); "
            "install it with: pip install 'cleancut[ray]'"
        ) from None
    return ray


#: The line Ray's core worker logs (at error level, on the driver's stderr) for every actor
#: of Ray Data's own pools: they take references as constructor arguments and Ray Data
#: restarts them (max_restarts=-1), which Ray warns about whoever the caller is
#: (ray-project/ray#57733). The references live as long as the dataset, so it is noise here;
#: our actor options are not its cause (max_restarts=0 would end retries after a crash).
_RAY_DATA_NOISE: Final = re.compile(
    rb"^\[[^\]]*\] core_worker\.cc:\d+: Actor with class name: 'MapWorker\(.*\)' and ID: '[0-9a-f]+' "
    rb"has constructor arguments in the object store and max_restarts > 0\."
)


@contextlib.contextmanager
def without_ray_data_noise(fd: int = 2) -> Iterator[None]:
    """While the block runs, pass what is written to ``fd`` (stderr) on, except whole lines
    of Ray's MapWorker notice (:data:`_RAY_DATA_NOISE`): Ray logs it from C++, below Python's
    logging, so only the file descriptor can filter it. Text without a line end (a bar's
    redraw) is passed on at once, or within 0.2 s when it might start a Ray line. POSIX only
    (elsewhere the block runs unfiltered); callers decide ``isatty`` before entering."""
    if os.name != "posix":
        yield
        return
    import select
    import threading

    sys.stderr.flush()
    original = os.dup(fd)
    read_end, write_end = os.pipe()
    os.dup2(write_end, fd)
    os.close(write_end)

    def forward(data: bytes) -> None:
        while data:
            data = data[os.write(original, data) :]

    def pump() -> None:
        pending = b""
        while True:
            ready, _, _ = select.select([read_end], [], [], 0.2)
            if not ready:  # idle: nothing more of a held line is coming soon
                forward(pending)
                pending = b""
                continue
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            kept = b"".join(line + b"\n" for line in lines if not _RAY_DATA_NOISE.match(line))
            if not pending.startswith(b"["):  # cannot be a Ray log line: no reason to wait
                kept, pending = kept + pending, b""
            forward(kept)
        forward(pending)
        os.close(read_end)
        os.close(original)

    thread = threading.Thread(target=pump, name="cleancut-ray-stderr", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        # fd back on the real stderr; the pump sees the pipe's end once Ray's children that
        # inherited it are gone too (ray.shutdown), and closes its own descriptors
        os.dup2(original, fd)
        thread.join(timeout=2.0)


def _cluster_cpus(ray: Any) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _cluster_gpus(ray: Any) -> int:
    return int(ray.cluster_resources().get("GPU", 0))


@contextlib.contextmanager
def ray_session(address: str | None, quiet: bool) -> Iterator[Any]:
    """Connect to ``address``, or start a local Ray that lives as long as this block.

    An already initialised Ray (a notebook, a test) is used as it is and left running."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": not quiet,
        # quiet: Ray's own notices (token setup, instance start) are noise for a local run
        "logging_level": logging.ERROR if quiet else logging.INFO,
        "configure_logging": True,
    }
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=os.cpu_count() or 1, **kwargs)
    try:
        yield ray
    finally:
        ray.shutdown()


def run_ray(
    inputs: Iterable[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    options: CutOptions | None = None,
    *,
    engine: EngineOptions | None = None,
    address: str | None = None,
    num_workers: int | None = None,
    batch_size: int | None = None,
    overwrite: bool = False,
    settings: WorkerSettings = None,
    quiet: bool = True,
    on_start: Callable[[int], None] | None = None,
    model: str | None = None,
    device: str | None = None,
    backend: str | None = None,
    strict: bool | None = None,
    threads: int | None = None,
    settings_overrides: Mapping[str, Any] | None = None,
) -> Iterator[RayResult]:
    """Cut out ``inputs`` into the folder ``output`` on Ray; yield one result per input as
    rows finish (in completion order), each already appended to the manifest.

    ``engine``: what every actor runs (:class:`~cleancut.options.EngineOptions`); its
    ``threads`` are the CPUs reserved by, and inference threads of, each CPU actor
    (default: the cluster's CPUs shared out). ``address``: a running cluster
    (``HOST:6379``, ``ray://…``, ``auto``); without it a local Ray is started for this call
    and shut down after it (an already initialised Ray is used and left running).
    ``num_workers``: actors, each holding one loaded model (default: one per GPU where the
    cluster has GPUs, else one per 4 CPUs). ``settings``: a
    :class:`~cleancut.config.Settings` used by every actor as is, or a mapping of
    ``Settings`` field overrides applied to each worker's own environment (default: that
    environment). ``on_start(n)`` is called with the number of rows once planning is done.

    ``model``, ``device``, ``backend``, ``strict``, ``threads`` (the engine's fields one by
    one) and ``settings_overrides`` (the mapping form of ``settings``) are the keywords of
    earlier versions, still accepted; ``engine`` and an engine field together are refused.
    """
    engine = _engine_of(engine, model=model, device=device, backend=backend, strict=strict, threads=threads)
    # as before: explicit Settings win over overrides
    worker: WorkerSettings = settings if settings is not None else settings_overrides
    opts = options if options is not None else CutOptions()
    jobs, _ = plan_ray_jobs(inputs, output, opts.format)
    out = os.fspath(output)
    run = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    if on_start is not None:
        on_start(len(jobs))
    if not jobs:
        return
    if is_local(out):
        # an output folder that takes no files: one error before Ray starts (the manifest
        # would be a PermissionError traceback, every actor's write a failure)
        from ..io.atomic import check_writable

        refused = check_writable(out)
        if refused is not None:
            raise refused
    if address is None and is_local(out):
        # A run killed mid-write leaves hidden temp files of its (local) actors beside the
        # outputs; they are cleared once their writer is gone. Not on a cluster: there a
        # writer's pid belongs to another machine and cannot be checked from here.
        from ..io.atomic import sweep_stale_temps

        for folder in sorted({str(Path(j.output).parent) for j in jobs}):
            sweep_stale_temps(folder)
    # one listing of the output folder, taken before anything is written
    existing = existing_outputs(out)
    done_before = {
        (r.get("input"), r.get("output")) for r in read_manifest(out) if r.get("status") == "written"
    }
    manifest = Manifest(out, run)
    every_input = RayInputs(jobs)
    try:
        todo: list[RayJob] = []
        for job in jobs:
            early = precheck_row(job, overwrite, existing, every_input)
            if early is None:
                todo.append(job)
                continue
            # an output the manifest already records as written needs no new row on every rerun
            if not (early.status == "skipped" and (job.input, job.output) in done_before):
                manifest.append(early)
            yield early
        if todo:
            yield from _run_on_ray(
                todo,
                manifest,
                opts,
                engine,
                worker,
                address=address,
                num_workers=num_workers,
                batch_size=batch_size,
                overwrite=overwrite,
                quiet=quiet,
            )
    finally:
        manifest.close()


def _engine_of(
    engine: EngineOptions | None,
    *,
    model: str | None,
    device: str | None,
    backend: str | None,
    strict: bool | None,
    threads: int | None,
) -> EngineOptions:
    """One :class:`~cleancut.options.EngineOptions`: ``engine``, or one made of the fields
    given one by one (earlier versions' keywords), never both."""
    if engine is None:
        default = EngineOptions()
        return EngineOptions(
            model=default.model if model is None else model,
            device=default.device if device is None else device,
            backend=default.backend if backend is None else backend,
            strict=default.strict if strict is None else strict,
            threads=threads,
        )
    fields = {"model": model, "device": device, "backend": backend, "strict": strict, "threads": threads}
    given = sorted(k for k, v in fields.items() if v is not None)
    if given:
        raise InvalidOptionError(f"give engine= or {'=, '.join(given)}=, not both")
    return engine


def _run_on_ray(
    todo: list[RayJob],
    manifest: Manifest,
    options: CutOptions,
    engine: EngineOptions,
    settings: WorkerSettings,
    *,
    address: str | None,
    num_workers: int | None,
    batch_size: int | None,
    overwrite: bool,
    quiet: bool,
) -> Iterator[RayResult]:
    threads = engine.threads
    if num_workers is not None and num_workers < 1:
        raise InvalidOptionError(f"--num-workers must be at least 1, got {num_workers}")
    if batch_size is not None and batch_size < 1:
        raise InvalidOptionError(f"batch_size must be at least 1, got {batch_size}")
    with contextlib.ExitStack() as stack:
        ray = stack.enter_context(ray_session(address, quiet))
        from ray.data import ActorPoolStrategy, DataContext

        ctx = DataContext.get_current()
        # the caller's bar counts rows; Ray's would interleave. Put back afterwards: the
        # context is the process's, and a notebook's other datasets keep their bars.
        stack.callback(setattr, ctx, "enable_progress_bars", ctx.enable_progress_bars)
        ctx.enable_progress_bars = False
        if quiet:  # Ray Data announces every execution and that its bars are off
            data_log = logging.getLogger("ray.data")
            stack.callback(data_log.setLevel, data_log.level)
            data_log.setLevel(logging.ERROR)
        if hasattr(ctx, "print_on_execution_start"):
            stack.callback(setattr, ctx, "print_on_execution_start", ctx.print_on_execution_start)
            ctx.print_on_execution_start = False
        cpus = _cluster_cpus(ray)
        gpus = _cluster_gpus(ray) if engine.device != "cpu" else 0
        if gpus:
            workers = num_workers or gpus
            per_actor_cpus = threads or 1  # the GPU infers; a CPU decodes and encodes
            resources: dict[str, Any] = {"num_gpus": 1, "num_cpus": per_actor_cpus}
        else:
            workers = num_workers or max(1, cpus // 4)
            per_actor_cpus = threads or max(1, cpus // workers)
            resources = {"num_cpus": per_actor_cpus}
        if address is None and not gpus and workers * per_actor_cpus > cpus:
            # actors that cannot get their CPUs on this one machine would never start
            fit = max(1, cpus // per_actor_cpus)
            log.warning(
                "%d workers × %d threads need %d CPUs but this machine has %d; using %d workers",
                workers,
                per_actor_cpus,
                workers * per_actor_cpus,
                cpus,
                fit,
            )
            workers = fit
            per_actor_cpus = min(per_actor_cpus, cpus)
            resources["num_cpus"] = per_actor_cpus
        workers = min(workers, len(todo))
        # small batches: an image takes about a second on a CPU, and a batch is the unit a
        # crashed actor loses and redoes
        size = batch_size or (16 if gpus else 4)
        if address is None:
            # a local Ray: fetch the model once here rather than in every actor at once (on a
            # cluster each machine's first actor fetches it, under the download's machine lock)
            from ..models import resolve_model
            from ..models.store import fetch_model

            spec = resolve_model(engine.model, family=engine.model_family, sha256=engine.model_sha256)
            fetch_model(spec, worker_settings(settings))

        ds = ray.data.from_items([{"input": j.input, "output": j.output, "name": j.name} for j in todo])
        stage: dict[str, Any] = {
            "batch_size": size,
            "batch_format": "numpy",
            "compute": ActorPoolStrategy(size=workers),
            "fn_constructor_kwargs": {
                "engine": replace(engine, threads=per_actor_cpus),
                # a mapping travels as a plain dict; each actor applies it to its own environment
                "settings": settings
                if isinstance(settings, Settings) or settings is None
                else dict(settings),
                "options": options,
                "overwrite": overwrite,
            },
            **resources,
        }
        ds = _map_batches(ds, stage)
        pending = {(j.input, j.output) for j in todo}
        try:
            for row in ds.iter_rows():
                result = RayResult(
                    input=str(row["input"]),
                    output=str(row["output"]),
                    status=_status(row["status"]),
                    error=str(row["error"]) or None,
                    seconds=float(row["seconds"]),
                    timings={k: float(v) for k, v in json.loads(str(row["timings"])).items()},
                    worker=str(row["worker"]),
                )
                pending.discard((result.input, result.output))
                manifest.append(result)
                yield result
        except (KeyboardInterrupt, GeneratorExit):
            raise
        except Exception as exc:
            # The pipeline itself failed (an actor that kept crashing, a lost cluster): the
            # rows that did not come back are recorded as failed, so a rerun redoes them.
            reason = f"the Ray job stopped before this image was done: {_one_line(exc)}"
            for job in todo:
                if (job.input, job.output) in pending:
                    result = RayResult(job.input, job.output, "failed", reason)
                    manifest.append(result)
                    yield result


#: Ray Data retries a batch whose actor died without limit: a file that kills the process
#: (out of memory, a crashing decoder) would then stall the job for ever. After this many
#: attempts the dataset fails instead, and its unfinished rows are recorded as failed.
ACTOR_TASK_RETRIES: Final = 3


def _map_batches(ds: Any, stage: dict[str, Any]) -> Any:
    import warnings

    try:
        with warnings.catch_warnings():
            # Ray 2.60 deprecates extra remote args (removal planned for 2.64) and offers no
            # named parameter for task retries yet
            warnings.simplefilter("ignore")
            return ds.map_batches(CutoutActor, max_task_retries=ACTOR_TASK_RETRIES, **stage)
    except TypeError:  # a Ray without extra remote args: its own retry policy applies
        return ds.map_batches(CutoutActor, **stage)


_STATUSES: Final[dict[str, Status]] = {"written": "written", "skipped": "skipped", "failed": "failed"}


def _status(value: Any) -> Status:
    return _STATUSES.get(str(value), "failed")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}"[:500]
