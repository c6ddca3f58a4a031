"""Which files are inputs and what each output is called: shared by the local batch
(:mod:`cleancut.batch`) and the Ray engine (:mod:`cleancut.distributed`).

Scanning folders (image extensions, hidden and ``*.cutout.*`` files left out), naming
outputs (the ``.cutout`` mark beside an input, a fallback name when two inputs would share
one), and the checks that answer a job without any model work: an output that exists is
skipped, an output that is an input of the run (the same path, a symlink to it or a hard
link of it) is refused whatever ``--overwrite`` says. One copy of these rules keeps both
engines naming and protecting files the same way. :func:`plan_jobs` is the local batch's
whole plan, paths only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from . import io as codecs
from .errors import InvalidOptionError
from .io.formats import OutputFormat

__all__ = [
    "CUTOUT_MARK",
    "IMAGE_EXTENSIONS",
    "STDIO",
    "Early",
    "InputSet",
    "Job",
    "beside",
    "check_folder_output",
    "check_inputs",
    "is_image_name",
    "plan_jobs",
    "precheck",
    "real_path",
    "same_file",
    "scan_folder",
    "unique_name",
]

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


@dataclass(frozen=True)
class Job:
    """One input and where its result goes. ``None`` means stdin / stdout."""

    source: Path | None
    output: Path | None
    name: str


# --------------------------------------------------------------------------- names


def is_image_name(path: Path) -> bool:
    """An input a folder scan takes: an image extension, not hidden, not a ``.cutout`` output."""
    return (
        path.suffix.lower() in IMAGE_EXTENSIONS
        and not path.name.startswith(".")
        and CUTOUT_MARK not in path.name
    )


def real_path(path: Path) -> Path:
    """``path`` with every symlink resolved as far as it goes; never raises (a symlink loop
    stays unresolved, where ``Path.resolve`` would raise ``RuntimeError`` on Python 3.11)."""
    try:
        return Path(os.path.realpath(path))
    except (OSError, ValueError):
        return path.absolute()


def scan_folder(
    folder: Path, exclude: Path | None, takes: Callable[[Path], bool] | None = None
) -> list[Path]:
    """Every input under ``folder`` (the files ``takes``, by default :func:`is_image_name`;
    clips have their own), in ``os.walk`` order with sorted names; hidden folders and the
    folder ``exclude`` (a real path: an output folder inside the input) left out."""
    takes = takes or is_image_name
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        rootp = Path(root)
        dirs[:] = sorted(
            d for d in dirs if not d.startswith(".") and (exclude is None or real_path(rootp / d) != exclude)
        )
        found.extend(rootp / f for f in sorted(files) if takes(rootp / f))
    return found


def beside(path: Path, fmt: OutputFormat) -> Path:
    """The output of ``path`` in its own folder: ``NAME.cutout.EXT``."""
    return path.with_name(f"{path.stem}{CUTOUT_MARK}{codecs.extension_for(fmt)}")


def unique_name(target: Path, fallback: Path, taken: dict[Path, str]) -> Path:
    """``target``, or when another input already maps there, ``fallback`` (then ``.2``, ``.3``…
    before the extension), so that no two inputs of one batch share an output."""
    if target not in taken:
        return target
    candidate, n = fallback, 2
    while candidate in taken:
        candidate = fallback.with_name(f"{fallback.stem}.{n}{fallback.suffix}")
        n += 1
    return candidate


#: Names a run writes as files (photos, raw outputs, clips): a missing ``-o`` ending so is
#: a file name, never a folder to create for several inputs.
_FILE_SUFFIXES: Final = IMAGE_EXTENSIONS | {".rgba", ".alpha", ".webm", ".mov", ".mp4", ".m4v", ".mkv"}


def check_folder_output(output: str, why: str) -> None:
    """Refuse ``-o`` for a run that writes into a folder (``why``: "a folder input", "several
    inputs", …) when it is a missing path named like a file (``newfile.png``): creating a
    folder of that name is never what was meant. A trailing ``/`` asks for the folder."""
    if output.endswith(("/", os.sep)):
        return
    path = Path(output)
    suffix = path.suffix.lower()
    if suffix in _FILE_SUFFIXES and not path.exists() and not path.is_symlink():
        raise InvalidOptionError(
            f"-o {output} is named like a {suffix} file, but {why} writes into a folder: "
            f"give a folder (to create a folder named {path.name}, write -o {output}/)"
        )


# --------------------------------------------------------------------------- the local plan


def check_inputs(items: Iterable[str], *, urls: bool = False) -> None:
    """Usage errors for inputs that are no path: an empty string (``Path("")`` is the
    current folder, so ``cleancut ""`` would cut out every photo under it) and, unless
    ``urls`` (Ray reads URIs), a missing ``https://…`` (this machine's run reads files;
    ``Path`` would fold its ``//``)."""
    for item in items:
        if not item.strip():
            raise InvalidOptionError(
                f"an input is an empty string ({item!r}); give a file, a folder (. for this "
                "one), or - for stdin"
            )
        if not urls and codecs.looks_like_url(item) and not os.path.lexists(item):
            raise InvalidOptionError(
                f"{item!r} is a URL, and this run reads local files: download it first (e.g. "
                "curl -O), run with --engine ray for s3://, gs:// and other storage URIs, or send "
                "it to a running `cleancut serve` as url="
            )


def plan_jobs(
    inputs: Iterable[str | os.PathLike[str]],
    output: str | os.PathLike[str] | None,
    fmt: OutputFormat | None = None,
) -> tuple[list[Job], OutputFormat]:
    """Decide every output path; returns the jobs and the output format.

    * one file: ``-o out.png`` writes that file in the format its extension names (``fmt``
      must agree; an extension that is no output format, or none without ``fmt``, is
      refused: :func:`cleancut.io.formats.output_format`);
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
    check_inputs(items)
    if items.count(STDIO) and len(items) > 1:
        raise InvalidOptionError("stdin (-) cannot be combined with other inputs")
    out = None if output is None else str(output)
    out_path = None if out is None or out == STDIO else Path(out)
    single = len(items) == 1 and (items[0] == STDIO or not Path(items[0]).is_dir())

    if single:
        into_dir = out_path is not None and (out_path.is_dir() or str(out).endswith(("/", os.sep)))
        # -o FILE: the format its name says, never another (a contradiction is a usage error)
        to_file = out_path is not None and not into_dir
        fmt_out = codecs.output_format(out_path, fmt) if to_file and out_path else fmt or "png"
        if items[0] == STDIO:
            if out_path is None:
                return [Job(None, None, "<stdin>")], fmt_out
            target = out_path / f"stdin{codecs.extension_for(fmt_out)}" if into_dir else out_path
            return [Job(None, target, "<stdin>")], fmt_out
        src = Path(items[0])
        if out == STDIO:
            return [Job(src, None, items[0])], fmt_out
        if out_path is None:
            target = beside(src, fmt_out)
        elif into_dir:
            name = f"{src.stem}{codecs.extension_for(fmt_out)}"
            if real_path(out_path) == real_path(src.parent):
                name = beside(src, fmt_out).name
            target = out_path / name
        else:
            target = out_path
        return [Job(src, target, items[0])], fmt_out

    fmt_out = fmt or "png"
    if out == STDIO:
        raise InvalidOptionError("several inputs cannot all go to stdout; give -o FOLDER")
    if out_path is not None and out_path.exists() and not out_path.is_dir():
        raise InvalidOptionError(f"-o {out_path} must be a folder when there are several inputs")
    if out is not None:
        check_folder_output(out, "several inputs" if len(items) > 1 else "a folder input")
    ext = codecs.extension_for(fmt_out)
    exclude = real_path(out_path) if out_path is not None else None
    jobs: list[Job] = []
    taken: dict[Path, str] = {}
    real_dirs: dict[Path, Path] = {}

    def real_dir(folder: Path) -> Path:
        if folder not in real_dirs:
            real_dirs[folder] = real_path(folder)
        return real_dirs[folder]

    for item in items:
        p = Path(item)
        pairs = (
            [(f, f.relative_to(p)) for f in scan_folder(p, exclude)] if p.is_dir() else [(p, Path(p.name))]
        )
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
            target = unique_name(target, fallback, taken)
            taken[target] = str(src)
            jobs.append(Job(src, target, str(src)))
    return jobs, fmt_out


# --------------------------------------------------------------------------- inputs are never outputs


def same_file(a: Path, b: Path) -> bool:
    """``a`` and ``b`` are one file: the same real path, or (hard links) the same file."""
    if real_path(a) == real_path(b):
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


class InputSet:
    """Every input of one run, by real path and by file identity (hard links), so that no
    job writes an output over an input of the run: its own or another job's."""

    def __init__(self, sources: Iterable[Path]) -> None:
        self.paths: dict[Path, Path] = {}
        self.ids: dict[tuple[int, int], Path] = {}
        for source in sources:
            self.paths.setdefault(real_path(source), source)
            fid = _file_id(source)
            if fid is not None:
                self.ids.setdefault(fid, source)

    def clash(self, output: Path) -> Path | None:
        """The input that ``output`` is, if any."""
        found = self.paths.get(real_path(output))
        if found is None and self.ids:
            fid = _file_id(output)
            found = self.ids.get(fid) if fid is not None else None
        return found


@dataclass(frozen=True)
class Early:
    """A job answered without model work: its status and the reason."""

    status: Literal["skipped", "failed"]
    reason: str


def precheck(
    source: object,
    output: object,
    *,
    same: bool,
    other: object | None,
    overwrite: bool,
    exists: Callable[[], bool],
) -> Early | None:
    """The answer for a job that needs no model work, in this order: its output is its own
    input (``same``), or another input of the run (``other``, that input), both refused
    whatever ``overwrite`` says; or its output exists (``exists()``, asked only without
    ``overwrite``) and is skipped. ``None``: the job needs the model."""
    if same:
        return Early("failed", f"refusing to overwrite the input {source}; choose another -o")
    if other is not None:
        return Early(
            "failed",
            f"refusing to write {output}: it is an input of this batch ({other}); "
            "choose another -o (inputs are never written, whatever --overwrite says)",
        )
    if not overwrite and exists():
        return Early("skipped", f"{output} exists (use --overwrite to replace it)")
    return None
