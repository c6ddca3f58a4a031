"""``cleancut clip.mp4 -o out.webm``: the video clips of ``cleancut remove`` (files by
extension, and the clips in folders), one after another through
:func:`cleancut.video.remove_video`, with a frame progress bar (frames, fps, ETA).

Outputs follow the photo batch's rules (:mod:`cleancut.planning`): one clip goes to ``-o
FILE`` (``.webm``, ``.mov``, ``.mp4``), to ``-o FRAMES/`` (a new folder, or one of frames
written before: PNGs and ``timestamps.json``), into an existing folder as ``NAME.webm``, or
beside itself as ``NAME.cutout.webm``; several clips or folders go to ``-o FOLDER`` with
their relative names (``.mp4`` on a background). An output landing in its input's own
folder carries the ``.cutout`` mark, outputs that are inputs of the run are refused,
outputs that exist are skipped unless ``--overwrite`` (so an interrupted run resumes), and
every output is written under a temporary name and renamed into place.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CleancutError, InvalidOptionError
from ..planning import (
    CUTOUT_MARK,
    STDIO,
    InputSet,
    Job,
    check_folder_output,
    precheck,
    real_path,
    same_file,
    scan_folder,
    unique_name,
)
from .app import echo
from .progress import Counts, FetchProgress

if TYPE_CHECKING:
    from ..config import Settings
    from ..distributed import RayVideoResult
    from ..options import CutOptions, EngineOptions
    from ..video import VideoResult

__all__ = [
    "VIDEO_SUFFIXES",
    "RayTarget",
    "check_video_options",
    "is_clip_name",
    "is_video",
    "plan_clips",
    "remove_videos",
]

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".webm", ".mkv", ".m4v", ".avi", ".mpg", ".mpeg", ".ts"})
#: the output suffixes :func:`cleancut.video.encode.target_for` writes
_OUTPUT_SUFFIXES = frozenset({".webm", ".mov", ".mp4", ".m4v"})


@dataclass(frozen=True)
class RayTarget:
    """``--engine ray`` for clips: the cluster (``None``: a local one) and the settings flags
    given (each worker reads its own environment for the rest)."""

    address: str | None = None
    num_workers: int | None = None
    overrides: Mapping[str, object] = field(default_factory=dict)


def is_video(path: str) -> bool:
    """A file given by name that is a clip (by extension)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES and Path(path).is_file()


def is_clip_name(path: Path) -> bool:
    """A clip a folder scan takes: a video extension, not hidden, not a ``.cutout`` output
    (the photo scan's rule, :func:`cleancut.planning.is_image_name`, for clips)."""
    return (
        path.suffix.lower() in VIDEO_SUFFIXES
        and not path.name.startswith(".")
        and CUTOUT_MARK not in path.name
    )


def video_extension(options: CutOptions) -> str:
    """``.webm`` (VP9 with alpha), or ``.mp4`` when the output is opaque (a background)."""
    opaque = options.bg_color is not None or (options.framing is not None and options.framing.opaque)
    return ".mp4" if opaque else ".webm"


def plan_clips(inputs: Sequence[str], output: str | None, ext: str) -> list[Job]:
    """The clip jobs of INPUT...: clip files given by name and the clips in given folders
    (other inputs are the photo batch's). See the module docstring for the names."""
    items = [str(i) for i in inputs]
    if STDIO in items:
        return []
    out_path = None if output is None or output == STDIO else Path(output)
    exclude = real_path(out_path) if out_path is not None else None
    pairs: list[tuple[Path, Path]] = []  # (clip, its name relative to the -o folder)
    for item in items:
        p = Path(item)
        if p.is_dir():
            pairs.extend((f, f.relative_to(p)) for f in scan_folder(p, exclude, is_clip_name))
        elif is_video(item):
            pairs.append((p, Path(p.name)))
    if not pairs:
        return []
    if output == STDIO:
        raise InvalidOptionError("a video cannot go to stdout: give -o FILE, -o FOLDER or no -o")
    if len(items) == 1 and not Path(items[0]).is_dir():
        return [_plan_one(pairs[0][0], output, ext)]
    if out_path is not None and out_path.exists() and not out_path.is_dir():
        raise InvalidOptionError(f"-o {out_path} must be a folder when there are several inputs")
    if output is not None:
        check_folder_output(output, "several inputs" if len(items) > 1 else "a folder input")
    jobs: list[Job] = []
    taken: dict[Path, str] = {}
    for src, rel in pairs:
        if out_path is not None and real_path(out_path / rel.parent) != real_path(src.parent):
            target = out_path / rel.with_suffix(ext)
            fallback = out_path / rel.with_name(rel.name + ext)  # clip.mov and clip.mp4
        else:  # beside its input: the mark keeps it from being an input of a rerun
            folder = src.parent if out_path is None else out_path / rel.parent
            target = folder / f"{src.stem}{CUTOUT_MARK}{ext}"
            fallback = folder / f"{src.name}{CUTOUT_MARK}{ext}"
        target = unique_name(target, fallback, taken)
        taken[target] = str(src)
        jobs.append(Job(src, target, str(src)))
    return jobs


def _plan_one(src: Path, output: str | None, ext: str) -> Job:
    """One clip: ``-o FILE``, ``-o FRAMES/``, ``-o EXISTING_FOLDER`` or beside it."""
    from ..video.encode import is_frames_folder, target_for

    if output is None:
        return Job(src, src.with_name(f"{src.stem}{CUTOUT_MARK}{ext}"), str(src))
    out = Path(output)
    if out.is_dir() and not is_frames_folder(out):  # a folder of other files: NAME.webm in it
        name = f"{src.stem}{CUTOUT_MARK if real_path(out) == real_path(src.parent) else ''}{ext}"
        return Job(src, out / name, str(src))
    # a file by its suffix, else a folder of frames; an unknown suffix is a usage error now
    return Job(src, target_for(output).path, str(src))


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def check_video_options(options: CutOptions) -> None:
    """Usage errors for flags a clip cannot take, before any model loads."""
    if options.framing is not None and options.framing.crop:
        raise InvalidOptionError(
            "--crop (and --preset ecommerce) are for photos: on a clip the crop would follow the "
            "subject frame by frame and jump; use --square, --max-size or --background"
        )


def remove_videos(
    jobs: list[Job],
    options: CutOptions,
    *,
    engine: EngineOptions,
    settings: Settings,
    overwrite: bool,
    quiet: bool,
    smooth: bool = True,
    ray: RayTarget | None = None,
) -> Counts:
    """Every clip job cut on this machine (or, with ``ray``, each in keyframe chunks on a
    Ray cluster by :func:`cleancut.distributed.run_ray_video`): a frame bar per clip,
    ``wrote``/``skipped``/``error:`` lines, and the counts (a summary line when there are
    several clips)."""
    import time

    from ..io.atomic import sweep_stale_temps
    from ..remover import Remover
    from ..video import remove_video
    from ..video.encode import sweep_stale_frame_folders

    check_video_options(options)
    counts = Counts()
    started = time.perf_counter()
    inputs = InputSet(j.source for j in jobs if j.source is not None)
    todo: list[Job] = []
    for job in jobs:
        assert job.source is not None and job.output is not None
        out = job.output
        same = same_file(job.source, out)
        early = precheck(
            job.source,
            out,
            same=same,
            other=None if same else inputs.clash(out),
            overwrite=overwrite,
            exists=functools.partial(_exists, out),
        )
        if early is None:
            todo.append(job)
        elif early.status == "skipped":
            counts.skipped += 1
            if not quiet:
                echo(f"skipped: {early.reason}")
        else:
            counts.failed += 1
            echo(f"error: {job.name}: {early.reason}")
    if todo:
        for folder in sorted({job.output.parent for job in todo if job.output is not None}):
            sweep_stale_temps(folder)  # a killed run's temporary files …
            sweep_stale_frame_folders(folder)  # … and folders of frames
        if ray is None:
            remover = Remover.from_options(engine, settings=settings)
            remover.load(progress=FetchProgress(quiet))
    # a frame bar on a terminal only, as the photos' bar: in a log or a pipe the carriage
    # returns of a redrawn bar are noise; the closing "wrote" line says it all there
    show_bar = not quiet and sys.stderr.isatty()
    for job in todo:
        assert job.source is not None and job.output is not None
        bars: list[Any] = []

        def update(done: int, total: int, name: str = job.source.name, bars: list[Any] = bars) -> None:
            if not show_bar:
                return
            if not bars:  # made on the first frame: an error before it prints alone
                from tqdm import tqdm

                bars.append(tqdm(total=total or None, unit="frame", desc=name, file=sys.stderr, leave=False))
            bar = bars[0]
            if total and bar.total != total:
                bar.total = total
            bar.update(done - bar.n)

        # a folder of frames keeps its trailing separator: "out.d/" is a folder, not a suffix
        dst = str(job.output) if job.output.suffix.lower() in _OUTPUT_SUFFIXES else f"{job.output}{os.sep}"
        cut: dict[str, Any] = {
            "type": options.type,
            "bg_color": options.bg_color,
            "edges": options.edges,
            "framing": options.framing,
            "mode": options.mode,
            "smooth": smooth,
            "overwrite": overwrite,
            "progress": lambda done, total, update=update: update(done, total),
        }
        try:
            if ray is None:
                result: VideoResult | RayVideoResult = remove_video(job.source, dst, remover=remover, **cut)
            else:
                from ..distributed import run_ray_video
                from ..distributed.driver import without_ray_data_noise

                with without_ray_data_noise():  # Ray Data's MapWorker notice left out
                    result = run_ray_video(
                        job.source,
                        dst,
                        engine=engine,
                        settings=dict(ray.overrides),
                        address=ray.address,
                        num_workers=ray.num_workers,
                        **cut,
                    )
        except CleancutError as exc:
            for bar in bars:
                bar.close()
            counts.failed += 1
            msg = str(exc)
            echo(f"error: {msg}" if job.name in msg else f"error: {job.name}: {msg}")
            continue
        for bar in bars:
            bar.close()
        counts.written += 1
        if not quiet:
            rate = f"{result.frames} frames, {result.seconds:.1f} s, {result.fps:.1f} fps"
            echo(f"wrote {result.path} ({rate})")
    counts.seconds = time.perf_counter() - started
    if len(jobs) > 1 and not quiet:
        echo(f"clips: {counts.summary(of=len(jobs))}")
    return counts
