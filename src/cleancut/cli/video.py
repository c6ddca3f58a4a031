"""``cleancut clip.mp4 -o out.webm``: video inputs of ``cleancut remove`` (by extension),
one clip after another through :func:`cleancut.video.remove_video`, with a frame progress
bar (frames, fps, ETA). Several clips (or ``-o FOLDER``) write ``FOLDER/<name>.webm``
(``.mp4`` on a background colour); outputs that exist are skipped unless ``--overwrite``,
so an interrupted run resumes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import CleancutError, InvalidOptionError
from .app import echo
from .progress import FetchProgress

if TYPE_CHECKING:
    from ..config import Settings
    from ..options import CutOptions, EngineOptions

__all__ = ["VIDEO_SUFFIXES", "is_video", "remove_videos"]

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".webm", ".mkv", ".m4v", ".avi", ".mpg", ".mpeg", ".ts"})
_MARK = ".cutout"


def is_video(path: str) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES and Path(path).is_file()


def _targets(inputs: tuple[str, ...], output: str | None, ext: str) -> list[tuple[Path, Path]]:
    srcs = [Path(p) for p in inputs]
    if len(srcs) == 1 and output is not None and Path(output).suffix and not Path(output).is_dir():
        return [(srcs[0], Path(output))]
    if output == "-":
        raise InvalidOptionError("a video cannot go to stdout: give -o FILE or -o FOLDER")
    if output is None:
        return [(s, s.with_name(f"{s.stem}{_MARK}{ext}")) for s in srcs]
    folder = Path(output)
    return [(s, folder / f"{s.stem}{ext}") for s in srcs]


def remove_videos(
    inputs: tuple[str, ...],
    output: str | None,
    options: CutOptions,
    *,
    engine: EngineOptions,
    settings: Settings,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Every clip of ``inputs`` (all video files) cut on this machine."""
    from ..remover import Remover
    from ..video import remove_video

    opaque = options.bg_color is not None or (options.framing is not None and options.framing.opaque)
    ext = ".mp4" if opaque else ".webm"
    jobs = _targets(inputs, output, ext)
    remover = Remover.from_options(engine, settings=settings)
    remover.load(progress=FetchProgress(quiet))
    failed = 0
    for src, dst in jobs:
        if dst.exists() and not overwrite and dst.suffix:
            if not quiet:
                echo(f"skipped: {dst} exists (use --overwrite)")
            continue
        bars: list[Any] = []

        def update(done: int, total: int, name: str = src.name, bars: list[Any] = bars) -> None:
            if quiet:
                return
            if not bars:  # made on the first frame: an error before it prints alone
                from tqdm import tqdm

                bars.append(tqdm(total=total or None, unit="frame", desc=name, file=sys.stderr, leave=False))
            bar = bars[0]
            if total and bar.total != total:
                bar.total = total
            bar.update(done - bar.n)

        try:
            result = remove_video(
                src,
                dst,
                type=options.type,
                bg_color=options.bg_color,
                edges=options.edges,
                framing=options.framing,
                mode=options.mode,
                overwrite=overwrite,
                remover=remover,
                progress=lambda done, total: update(done, total),
            )
        except InvalidOptionError:
            raise
        except CleancutError as exc:
            failed += 1
            for bar in bars:
                bar.close()
            echo(f"error: {exc}")
            continue
        for bar in bars:
            bar.close()
        if not quiet:
            rate = f"{result.frames} frames, {result.seconds:.1f} s, {result.fps:.1f} fps"
            echo(f"wrote {result.path} ({rate})")
    if failed:
        click.echo(f"{failed} of {len(jobs)} clips failed", err=True)
        sys.exit(1)
