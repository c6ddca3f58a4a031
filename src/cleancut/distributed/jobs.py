"""The Ray engine's plan: every input and its output, named as the local batch names them.

The driver lists local folders with :func:`cleancut.planning.scan_folder` and other
filesystems with fsspec (the same rules: image extensions only, hidden and ``*.cutout.*``
files left out, the same order), names every output with the local batch's rules (the
``.cutout`` mark in an input's own folder, fallback names for collisions), and answers the
rows that need no model work with :func:`cleancut.planning.precheck`: outputs that exist are
skipped, outputs that are inputs of the run are refused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from ..errors import InputNotFoundError, InvalidOptionError
from ..io.formats import OutputFormat, extension_for
from ..planning import (
    CUTOUT_MARK,
    STDIO,
    InputSet,
    check_folder_output,
    is_image_name,
    precheck,
    real_path,
    same_file,
    scan_folder,
    unique_name,
)
from .uris import HTTP, check_remote, is_local, join, on_disk, scheme, url_to_fs

__all__ = [
    "RayInputs",
    "RayJob",
    "RayResult",
    "Status",
    "existing_outputs",
    "local_pairs",
    "plan_ray_jobs",
    "precheck_row",
    "remote_pairs",
]

Status = Literal["written", "skipped", "failed"]


@dataclass(frozen=True)
class RayJob:
    """One input and its output, as URIs or local paths (strings: they travel to workers)."""

    input: str
    output: str
    name: str


@dataclass
class RayResult:
    """One row of the manifest: what happened to one input."""

    input: str
    output: str
    status: Status
    error: str | None = None
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    worker: str | None = None

    def to_json(self, run: str) -> str:
        row = {
            "input": self.input,
            "output": self.output,
            "status": self.status,
            "error": self.error,
            "seconds": round(self.seconds, 4),
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "worker": self.worker,
            "run": run,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        return json.dumps(row, ensure_ascii=False)


# --------------------------------------------------------------------------- listing


def local_pairs(item: str, exclude: Path | None) -> list[tuple[str, Path]]:
    """(input, relative name) for a local file or every input of a local folder."""
    p = Path(item)
    if p.is_dir():
        # the local batch's own scan: same extensions, hidden and *.cutout.* files left out
        return [(str(f), f.relative_to(p)) for f in scan_folder(p, exclude)]
    if not p.exists():
        raise InputNotFoundError(f"no such file or folder: {item}")
    return [(str(p), Path(p.name))]


def _walk_key(rel: str) -> tuple[tuple[int, str], ...]:
    """Order of ``os.walk`` top-down with sorted names: a folder's files before its subfolders."""
    parts = rel.split("/")
    return (*((1, d) for d in parts[:-1]), (0, parts[-1]))


def remote_pairs(item: str, exclude: str | None) -> list[tuple[str, Path]]:
    """(input URI, relative name) for one URI: a file, or every input under a folder, in the
    local scan's order; an http(s) URL is one image, never listed."""
    if scheme(item) in HTTP:  # one image per URL: nothing to list, and never fsspec's HTTP
        name = item.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0].split("#", 1)[0] or "image"
        return [(item, Path(name))]
    fs, root = url_to_fs(item)
    protocol = item.split("://", 1)[0]
    try:
        is_dir = fs.isdir(root)
    except OSError as exc:
        raise InputNotFoundError(f"cannot list {item}: {exc}") from None
    if not is_dir:
        if not fs.exists(root):
            raise InputNotFoundError(f"no such file or folder: {item}")
        return [(item, Path(root.rstrip("/").rsplit("/", 1)[-1]))]
    prefix = root.rstrip("/") + "/"
    if exclude is not None and exclude.rstrip("/") + "/" == prefix:
        # -o the input folder itself: it is scanned (its outputs carry the .cutout mark);
        # only an output folder *inside* an input is left out
        exclude = None
    rels: list[str] = []
    for found in fs.find(root):
        path = str(found)
        if exclude is not None and (path + "/").startswith(exclude.rstrip("/") + "/"):
            continue
        rel = path[len(prefix) :] if path.startswith(prefix) else path.rsplit("/", 1)[-1]
        parts = rel.split("/")
        if any(d.startswith(".") for d in parts[:-1]) or not is_image_name(Path(parts[-1])):
            continue
        rels.append(rel)
    rels.sort(key=_walk_key)
    return [(f"{protocol}://{prefix}{rel}", Path(rel)) for rel in rels]


# --------------------------------------------------------------------------- naming


def plan_ray_jobs(
    inputs: Iterable[str | os.PathLike[str]], output: str | os.PathLike[str], fmt: OutputFormat | None = None
) -> tuple[list[RayJob], OutputFormat]:
    """Every input under ``output`` (a folder, local or a URI), named as the local batch does.

    Folders are scanned recursively with the local batch's rules (image extensions only,
    hidden files and folders and ``*.cutout.*`` skipped, the output folder left out when it
    lies inside an input); outputs keep their relative names with the format's extension,
    and two inputs that would share an output get the local batch's fallback names
    (``photo.png``, ``photo.jpg.png``). An output that would land in its input's own folder
    (``-o`` the input folder) is named ``NAME.cutout.EXT``, as the local batch names it, so
    it is never an input. ``-o`` is always a folder here.
    """
    items = [os.fspath(i) for i in inputs]
    if not items:
        raise InvalidOptionError("no input given; pass image files, folders, or URIs")
    if STDIO in items:
        raise InvalidOptionError("the Ray engine cannot read stdin; pass files, folders or URIs")
    out = os.fspath(output)
    if out == STDIO:
        raise InvalidOptionError("the Ray engine writes files; give -o FOLDER (a path or a URI)")
    check_remote(out, "output")
    for item in items:
        check_remote(item, "input")
    fmt_out: OutputFormat = fmt or "png"
    ext = extension_for(fmt_out)

    out_local = is_local(out)
    out_root = str(Path(out)) if out_local else out
    if out_local and Path(out_root).exists() and not Path(out_root).is_dir():
        raise InvalidOptionError(f"-o {out} must be a folder for the Ray engine")
    if out_local:
        check_folder_output(out, "the Ray engine")
    local_exclude = Path(out_root).resolve() if out_local else None
    remote_exclude = None if out_local else url_to_fs(out)[1]
    out_scheme = scheme(out)

    jobs: list[RayJob] = []
    taken: dict[Path, str] = {}
    folders: dict[str, str] = {}

    def dest_of(target: Path) -> str:
        return str(Path(out_root) / target) if out_local else join(out_root, target.as_posix())

    def folder(uri: str) -> str:
        """The folder of ``uri``: the same string for a path and a ``file://`` URI of one
        local folder (symlinks resolved), the scheme and path for other filesystems."""
        parent = str(Path(uri).parent) if is_local(uri) else uri.rstrip("/").rsplit("/", 1)[0]
        if parent not in folders:
            path = on_disk(uri)
            if path is not None:
                folders[parent] = str(real_path(path.parent))
            else:
                folders[parent] = f"{scheme(uri)}://{url_to_fs(uri)[1].rstrip('/').rsplit('/', 1)[0]}"
        return folders[parent]

    for item in items:
        if is_local(item):
            pairs = local_pairs(item, local_exclude)
        else:
            pairs = remote_pairs(item, remote_exclude if scheme(item) == out_scheme else None)
        for src, rel in pairs:
            target, fallback = rel.with_suffix(ext), rel.with_name(rel.name + ext)
            if scheme(src) not in HTTP and folder(dest_of(target)) == folder(src):
                # into its input's own folder: the .cutout mark, as the local batch does
                target = rel.with_name(f"{rel.stem}{CUTOUT_MARK}{ext}")
                fallback = rel.with_name(f"{rel.name}{CUTOUT_MARK}{ext}")
            target = unique_name(target, fallback, taken)
            taken[target] = src
            jobs.append(RayJob(src, dest_of(target), src))
    return jobs, fmt_out


# --------------------------------------------------------------------------- rows without model work


class RayInputs:
    """Every input of one run: local and ``file://`` ones by real path and file identity
    (the local batch's own :class:`~cleancut.planning.InputSet`), others by URI."""

    def __init__(self, jobs: list[RayJob]) -> None:
        paths = [(on_disk(j.input), j.input) for j in jobs]
        self.local = InputSet(p for p, _ in paths if p is not None)
        self.names = {str(p): uri for p, uri in paths if p is not None}
        self.remote = {uri.rstrip("/") for p, uri in paths if p is None}

    def clash(self, output: str) -> str | None:
        path = on_disk(output)
        if path is None:
            return output if output.rstrip("/") in self.remote else None
        found = self.local.clash(path)
        return None if found is None else self.names.get(str(found), str(found))


def existing_outputs(output: str) -> set[str] | None:
    """Object stores: every object under ``output`` from one listing (a HEAD per output
    would cost a request each); ``None`` for local folders, where a stat is cheap."""
    if is_local(output):
        return None
    fs, root = url_to_fs(output)
    try:
        return {str(p) for p in fs.find(root)}
    except FileNotFoundError:
        return set()


def precheck_row(
    job: RayJob, overwrite: bool, existing: set[str] | None, inputs: RayInputs | None = None
) -> RayResult | None:
    """Rows that need no model work: refusals and outputs that exist
    (:func:`cleancut.planning.precheck`). ``existing``: :func:`existing_outputs`."""
    src, dst = on_disk(job.input), on_disk(job.output)
    same = (
        same_file(src, dst)
        if src is not None and dst is not None
        else job.input.rstrip("/") == job.output.rstrip("/")
    )
    other = inputs.clash(job.output) if not same and inputs is not None else None

    def exists() -> bool:
        return Path(job.output).exists() if existing is None else url_to_fs(job.output)[1] in existing

    early = precheck(job.input, job.output, same=same, other=other, overwrite=overwrite, exists=exists)
    return None if early is None else RayResult(job.input, job.output, early.status, early.reason)
