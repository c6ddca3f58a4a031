"""``cleancut remove`` (the default command): its flags (from the options table,
:mod:`cleancut.cli_options`), the checks made before any model loads, and the run of
INPUT... on this machine or on Ray."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..cli_options import clip_option, cut_options, engine_options, ray_options, table_option
from ..cutout import check_options
from ..errors import InvalidOptionError
from ..io.formats import OutputFormat, normalize_format
from ..options import CutOptions, EngineOptions
from ..passes import normalize_quality_mode
from ..pipeline import normalize_output_type, parse_color
from .app import SettingsFlags, echo, errors, settings_options
from .progress import BatchProgress, Counts, FetchProgress, Row, interrupt_as_cancel
from .video import RayTarget

if TYPE_CHECKING:
    from ..batch import Job, JobResult
    from ..config import Settings
    from ..edges import EdgeOptions
    from ..framing import Framing
    from ..remover import Remover

__all__ = ["remove_cmd"]

log = logging.getLogger("cleancut")


@dataclass(frozen=True)
class _Run:
    """How INPUT... is run, beside what each cut-out looks like (:class:`CutOptions`)."""

    engine: EngineOptions
    #: ``-f`` as given: ``None`` lets the local batch take the format from ``-o``'s extension
    fmt: OutputFormat | None
    flags: SettingsFlags
    settings: Settings
    overwrite: bool
    quiet: bool
    on_ray: bool
    address: str | None = None
    num_workers: int | None = None
    #: video clips: the temporal step on the network output (``--smooth/--no-smooth``)
    smooth: bool = True
    #: photo-only flags given (``--format``, ``--quality``): refused by a run of clips only
    photo_only: tuple[str, ...] = ()


#: ``remove --help``'s examples (\b keeps click from rewrapping the block).
_EXAMPLES = """Examples:

\b
  cleancut photo.jpg                        photo.cutout.png beside it
  cleancut photo.jpg -o out.webp -q 0.9     WebP (the format follows -o's extension)
  cleancut photos/ -o cutouts/              a folder, recursively; reruns skip done files
  cleancut photos/ -o masks/ -t mask        8-bit gray masks
  cleancut - < in.jpg > out.png             stdin to stdout
  cleancut shoes/ -o shop/ -f jpeg --preset ecommerce
  cleancut me.jpg -o portrait.jpg --background blur --refine guided
  cleancut photo.jpg --device gpu --strict-device
  cleancut -v photo.jpg                     which model, backend, device and threads run
  cleancut -vv photos/ -o out/              also each file's stage timings
"""


@click.command("remove", epilog=_EXAMPLES)
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option(
    "-o",
    "--output",
    default=None,
    metavar="PATH",
    help="Output file, or folder for several inputs; - for stdout.",
)
@table_option("model", "-m", show_default=True)
@table_option("model_family")
@table_option("model_sha256")
@table_option("mode", "quality_mode", show_default=True)
@table_option("type", "-t", "output_type", show_default=True)
@table_option("format", "-f", "fmt", default=None)  # default: from the -o extension
@table_option("quality", "-q", show_default=True)
@table_option("bg_color")
@cut_options
@engine_options
@ray_options
@table_option("strict", "strict_device", is_flag=True)
@table_option("threads")
@click.option("--overwrite", is_flag=True, help="Replace outputs that exist (never inputs).")
@click.option("--quiet", is_flag=True, help="Print only errors.")
@clip_option("smooth")
@settings_options
def remove_cmd(
    inputs: tuple[str, ...],
    output: str | None,
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
    engine: str,
    address: str | None,
    num_workers: int | None,
    strict_device: bool,
    threads: int | None,
    overwrite: bool,
    quiet: bool,
    smooth: bool,
    flags: SettingsFlags,
) -> None:
    """Cut out INPUT... (files, folders, or - for stdin)."""
    with errors():
        settings = flags.settings()
        out_fmt = normalize_format(fmt) if fmt else None
        options = cut_options_from_flags(
            output_type, out_fmt, quality, bg_color, edges, framing, quality_mode, settings
        )
        run = _Run(
            engine=engine_from_flags(
                model, model_family, model_sha256, device, backend, strict_device, threads
            ),
            fmt=out_fmt,
            flags=flags,
            settings=settings,
            overwrite=overwrite,
            quiet=quiet,
            on_ray=_check_engine(engine, output, address, num_workers),
            address=address,
            num_workers=num_workers,
            smooth=smooth,
            photo_only=_given(("--format", "fmt"), ("--quality", "quality")),
        )
        _dispatch(inputs, output, options, run)


def engine_from_flags(
    model: str,
    family: str | None,
    sha256: str | None,
    device: str,
    backend: str,
    strict: bool,
    threads: int | None,
) -> EngineOptions:
    """The engine flags as one :class:`EngineOptions`. ``-m`` with ``--model-family`` and
    ``--model-sha256`` must name a model (published, a file that exists, or a URL): else a
    usage error before anything runs."""
    from ..errors import ModelNotFoundError, UnknownModelError
    from ..models import resolve_model

    try:
        resolve_model(model, family=family, sha256=sha256)
    except (UnknownModelError, ModelNotFoundError) as exc:
        raise InvalidOptionError(f"--model: {exc.args[0] if exc.args else exc}") from exc
    return EngineOptions(
        model=model,
        model_family=family,
        model_sha256=sha256,
        device=device,
        backend=backend,
        strict=strict,
        threads=threads,
    )


def _given(*flags: tuple[str, str]) -> tuple[str, ...]:
    """The ``(flag, parameter)`` pairs given on the command line (or its environment), not
    left at their defaults."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    defaults = (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)
    return tuple(flag for flag, name in flags if ctx.get_parameter_source(name) not in defaults)


def cut_options_from_flags(
    output_type: str,
    fmt: OutputFormat | None,
    quality: float,
    bg_color: str | None,
    edges: EdgeOptions | None,
    framing: Framing | None,
    quality_mode: str,
    settings: Settings,
) -> CutOptions:
    """The flags as one :class:`CutOptions`, checked (usage errors) before any model loads.
    Its format is ``fmt`` or ``png``; the local batch may take another from ``-o``."""
    color = parse_color(bg_color) if bg_color is not None else None
    if color is not None and framing is not None and framing.opaque:
        raise InvalidOptionError("--bg-color and --background both set the background: give one")
    out_type = normalize_output_type(output_type)
    check_options(out_type, edges, framing)
    if framing is not None:  # decoded now: a bad background image fails before the model loads
        framing = framing.loaded(max_pixels=settings.max_pixels)
    return CutOptions(
        type=out_type,
        format=fmt or "png",
        quality=quality,
        bg_color=color,
        edges=edges,
        framing=framing,
        mode=normalize_quality_mode(quality_mode),
    )


def _check_engine(engine: str, output: str | None, address: str | None, num_workers: int | None) -> bool:
    """Whether this run goes to Ray; usage errors for Ray options without ``--engine ray``."""
    if engine.lower() != "ray":
        if address is not None or num_workers is not None:
            raise InvalidOptionError("--address and --num-workers apply only with --engine ray")
        return False
    if output is None or output == "-":
        raise InvalidOptionError("--engine ray writes into a folder: give -o FOLDER (a path or a URI)")
    return True


def _dispatch(inputs: tuple[str, ...], output: str | None, options: CutOptions, run: _Run) -> None:
    """The one place that decides what runs INPUT...: Ray (which plans its own inputs, URIs
    included), else the local image batch; video clips (files by extension and the clips in
    given folders) go to :mod:`cleancut.cli.video`, in the same run as the photos beside
    them. Another kind of input gets its branch here."""
    from ..planning import check_inputs
    from .video import is_video, plan_clips, video_extension

    check_inputs(inputs, urls=run.on_ray)  # "" is no folder, a URL no file (Ray reads URIs)
    clips = plan_clips(inputs, output, video_extension(options))
    if clips:  # no video extra: one line saying how to install it, before any work
        from ..video.decode import require_video

        require_video()
    if clips and run.photo_only and not _holds_photos(inputs, is_video):
        # in a run of clips only, a photo's format or quality would be silently ignored
        raise InvalidOptionError(
            f"{' and '.join(run.photo_only)} apply to photos only: a clip's container follows -o "
            "(.webm VP9 with alpha, .mov ProRes 4444 with alpha, .mp4 H.264 without alpha, or "
            "FOLDER/ for PNG frames) and its quality is the codec's; leave them out"
        )
    if clips and run.on_ray:
        if _holds_photos(inputs, is_video):
            raise InvalidOptionError(
                "--engine ray cuts photos or clips in one run, not both: give the clips and the "
                "photos in two runs"
            )
        _remove_clips_on_ray(output, options, run, clips)
    elif clips:
        _remove_mixed(inputs, output, options, run, clips)
    elif run.on_ray:
        assert output is not None  # _check_engine
        _remove_on_ray(inputs, output, options, run)
    else:
        _remove_images(inputs, output, options, run)


def _holds_photos(inputs: tuple[str, ...], is_video: Callable[[str], bool]) -> bool:
    """Whether INPUT... holds a photo: a file that is not a clip, or an image in a folder."""
    from ..planning import scan_folder

    for item in inputs:
        p = Path(item)
        if p.is_dir():
            if scan_folder(p, None):
                return True
        elif not is_video(item):
            return True
    return False


def _remove_clips_on_ray(output: str | None, options: CutOptions, run: _Run, clips: list[Job]) -> None:
    """``--engine ray`` on clips: each clip cut in keyframe chunks on the cluster
    (:func:`cleancut.distributed.run_ray_video`), with the local run's names, skips, bars,
    error lines and exit code."""
    from .video import remove_videos

    counts = remove_videos(
        clips,
        options,
        engine=run.engine,
        settings=run.settings,
        overwrite=run.overwrite,
        quiet=run.quiet,
        smooth=run.smooth,
        ray=RayTarget(address=run.address, num_workers=run.num_workers, overrides=run.flags.overrides()),
    )
    if counts.failed:
        sys.exit(1)


def _remove_mixed(
    inputs: tuple[str, ...], output: str | None, options: CutOptions, run: _Run, clips: list[Job]
) -> None:
    """Clips, and the photos given beside them or found in the same folders: the photos
    through the local batch first (when there are any), then the clips; exit 1 if any
    failed. Several inputs make ``-o`` a folder for both."""
    from ..batch import plan_jobs
    from .video import check_video_options, is_video, remove_videos

    check_video_options(options)
    others = tuple(p for p in inputs if not is_video(p))
    failed = False
    if others:
        photo_out = output
        if output is not None and len(inputs) > 1 and not output.endswith(("/", os.sep)):
            photo_out = output + os.sep  # one photo beside clips: -o is their folder too
        jobs, out_fmt = plan_jobs(others, photo_out, run.fmt)
        if jobs:
            _sweep_stale_temps(jobs)
            counts = _run_local(jobs, replace(options, format=out_fmt), run)
            _report_local(jobs, counts, run.quiet)
            failed = counts.failed > 0
    counts = remove_videos(
        clips,
        options,
        engine=run.engine,
        settings=run.settings,
        overwrite=run.overwrite,
        quiet=run.quiet,
        smooth=run.smooth,
    )
    if failed or counts.failed:
        sys.exit(1)


# --------------------------------------------------------------------------- local images


def _remove_images(inputs: tuple[str, ...], output: str | None, options: CutOptions, run: _Run) -> None:
    """Images (files, folders, stdin) on this machine: plan, load the model, run the batch."""
    from ..batch import plan_jobs

    jobs, out_fmt = plan_jobs(inputs, output, run.fmt)
    _sweep_stale_temps(jobs)
    if not jobs:
        click.echo("no images found in the given folders", err=True)
        sys.exit(1)
    counts = _run_local(jobs, replace(options, format=out_fmt), run)
    _report_local(jobs, counts, run.quiet)
    if counts.failed:
        sys.exit(1)


def _sweep_stale_temps(jobs: list[Job]) -> None:
    """A run killed mid-write (SIGKILL, power loss) leaves hidden temp files of ours beside
    its outputs; the rerun that resumes it clears those whose writer is gone."""
    from ..io.atomic import sweep_stale_temps

    for folder in sorted({job.output.parent for job in jobs if job.output is not None}):
        sweep_stale_temps(folder)


def _run_local(jobs: list[Job], options: CutOptions, run: _Run) -> Counts:
    """One loaded model through :func:`cleancut.batch.run_jobs`, shown by the batch loop."""
    from ..batch import check_output_folders, run_jobs
    from ..remover import Remover

    # an output folder that takes no files is one error line before the model loads
    check_output_folders(jobs, run.overwrite)
    # Several images: the backend may run them in parallel streams (batch.run_jobs).
    scheduling = "throughput" if len(jobs) > 1 else "latency"
    remover = Remover.from_options(run.engine, settings=run.settings, scheduling=scheduling)
    remover.load(progress=FetchProgress(run.quiet))
    _log_engine(remover, run.settings)
    # Ctrl-C: the images being written are finished and reported, then the summary
    with interrupt_as_cancel(run.quiet) as stop:
        results = _log_timings(run_jobs(jobs, remover, options, overwrite=run.overwrite, cancel=stop))
        rows = (Row(r.status, r.job.name, r.job.output, r.error, r.data) for r in results)
        return BatchProgress(total=len(jobs), quiet=run.quiet, single=len(jobs) == 1).run(rows)


def _log_engine(remover: Remover, settings: Settings) -> None:
    """-v: what runs and why: the model, the backend and the reason for it, the device and
    the provider actually running, threads, and the cache."""
    if not log.isEnabledFor(logging.INFO):
        return
    d = remover.describe()
    log.info("model %s (family %s): %s", d["model"], d.get("family", "?"), d.get("model_path", "?"))
    log.info("backend %s: %s", d.get("backend", "?"), d.get("backend_reason") or "asked for")
    streams = f", {d['streams']} stream(s)" if "streams" in d else ""
    mode = f", {d['mode']} mode" if "mode" in d else ""
    log.info(
        "device %s: %s (%s); %s threads%s%s",
        d.get("device", "?"),
        d.get("provider", "?"),
        d.get("reason", ""),
        d.get("threads", "?"),
        mode,
        streams,
    )
    log.info("cache %s (%s)", settings.cache_dir, "offline" if settings.offline else "online")


def _log_timings(results: Iterator[JobResult]) -> Iterator[JobResult]:
    """-vv: each file's stages (wait, decode, preprocess, inference, postprocess, encode,
    write) in milliseconds, as one line when it is done."""
    for r in results:
        if r.timings and log.isEnabledFor(logging.DEBUG):
            steps = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in r.timings.items())
            log.debug("%s: %s; %s in %.0f ms", r.job.name, steps, r.status, r.seconds * 1000)
        yield r


def _report_local(jobs: list[Job], counts: Counts, quiet: bool) -> None:
    """The closing line: ``wrote OUT`` for one input, the counts for several; nothing when
    quiet, or for one input that failed or went to stdout (its error line or output says it).
    A run stopped by Ctrl-C prints its counts so far, then ``cancelled``, and exits 130."""
    single = len(jobs) == 1
    if counts.cancelled:
        if not quiet and not single:
            click.echo(counts.summary(of=len(jobs)), err=True)
        click.echo("cancelled", err=True)
        sys.exit(130)
    if quiet or (single and (counts.failed or jobs[0].output is None)):
        return
    if single and counts.written:
        echo(f"wrote {jobs[0].output} ({counts.seconds:.1f} s)")
    elif single:
        echo(f"skipped: {jobs[0].output} exists (use --overwrite)")
    else:
        click.echo(counts.summary(of=len(jobs)), err=True)


# --------------------------------------------------------------------------- Ray


def _remove_on_ray(inputs: tuple[str, ...], output: str, options: CutOptions, run: _Run) -> None:
    """``--engine ray``: the same batch loop, error lines, summary and exit code as the local
    batch; the work runs in :mod:`cleancut.distributed`, which plans its own inputs (URIs
    included)."""
    from ..distributed import manifest_location, run_ray
    from ..distributed.driver import without_ray_data_noise

    progress = BatchProgress(total=0, quiet=run.quiet)

    def on_start(total: int) -> None:
        progress.set_total(total)
        if total == 0:
            click.echo("no images found in the given inputs", err=True)

    results = run_ray(
        inputs,
        output,
        options,
        engine=run.engine,
        address=run.address,
        num_workers=run.num_workers,
        overwrite=run.overwrite,
        # only the flags given: each Ray worker reads its own environment for the rest
        settings=run.flags.overrides(),
        # Ray's own logs only with -v: the bar, error lines and summary are the interface
        quiet=not log.isEnabledFor(logging.INFO),
        on_start=on_start,
    )
    # the bar decided above, on the real stderr; Ray Data's MapWorker notice left out
    with without_ray_data_noise():
        counts = progress.run(Row(r.status, r.input, r.output, r.error) for r in results)
    if counts.total == 0:
        sys.exit(1)
    if not run.quiet:
        echo(f"{counts.summary()} (manifest: {manifest_location(output)})")
    if counts.failed:
        sys.exit(1)
