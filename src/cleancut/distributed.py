"""Large jobs on Ray: the local batch's pipeline, spread over a Ray cluster.

``pip install 'cleancut[ray]'``; see ``docs/ray.md``. The driver (this process) lists the
inputs and plans every output name exactly as :func:`cleancut.batch.plan_jobs` does for a
folder, answers what needs no model work (outputs that exist, inputs that would be
overwritten), and hands the rest to Ray Data as ``(input, output)`` rows. ``map_batches``
runs :class:`CutoutActor` on an actor pool: each actor loads one :class:`~cleancut.Remover`
once (on a GPU where the cluster has GPUs) and reuses it for every row it gets. An actor
reads each input through fsspec, cuts it out, finishes it with the local batch's own
finishing step (so every :class:`~cleancut.batch.OutputOptions` field applies) and writes
the result: temp file + rename on local paths, a single put on object stores.

A row never raises: a bad file comes back as a ``failed`` row carrying the error text.
The driver appends every row, as it streams in, to a JSON Lines manifest in the output
folder, so a killed run keeps what finished and a rerun skips outputs that exist (and
redoes failed rows). Inputs are never written to: outputs into an input's own folder take
the local batch's ``.cutout`` mark, and a row whose output is any input of the run is
refused. A FIFO or other non-regular entry of a listed folder fails its row ("not a file")
instead of blocking a worker.

URIs: local paths and ``file://``; any fsspec filesystem every worker can reach
(``s3://``, ``gs://``, ``az://``, …). ``memory://`` is refused (each Ray worker has its own),
and so is ``http(s)://`` unless :mod:`cleancut.urls` provides its guarded fetcher, because
fsspec's HTTP filesystem would fetch any address, private ones included.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np

from . import batch as local_batch
from .config import Settings
from .errors import (
    InputNotFoundError,
    InvalidOptionError,
    OutputExistsError,
)
from .io.atomic import temp_name_for
from .io.formats import OutputFormat, extension_for
from .models import DEFAULT_MODEL
from .options import CutOptions, EngineOptions
from .remover import Remover

if TYPE_CHECKING:
    from .batch import OutputOptions

__all__ = [
    "MANIFEST_NAME",
    "CutoutActor",
    "RayJob",
    "RayResult",
    "manifest_location",
    "plan_ray_jobs",
    "read_manifest",
    "run_ray",
]

log = logging.getLogger(__name__)

#: The manifest in a local output folder: one JSON object per line, appended as rows finish.
MANIFEST_NAME: Final = ".cleancut-manifest.jsonl"
#: On object stores (which cannot append) the manifest is a folder of parts, one object per
#: flush; reading concatenates them.
MANIFEST_PARTS: Final = ".cleancut-manifest"
#: Object stores: a put is atomic, so no temp name is needed there.
_OBJECT_STORES: Final = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "r2"})
_HTTP: Final = frozenset({"http", "https"})

Status = Literal["written", "skipped", "failed"]


# A missing extra is an InvalidOptionError: the option asked for cannot be used here, and
# the message says how to make it usable.
def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # the Data library is a separate extra of ray
    except ImportError as exc:
        raise InvalidOptionError(
            f"--engine ray needs Ray Data, which is not installed ({exc}); "
            "install it with: pip install 'cleancut[ray]'"
        ) from None
    return ray


def _import_fsspec() -> Any:
    try:
        import fsspec
    except ImportError:
        raise InvalidOptionError(
            "reading and writing URIs needs fsspec; install it with: pip install 'cleancut[ray]'"
        ) from None
    return fsspec


# --------------------------------------------------------------------------- locations


def _scheme(uri: str) -> str | None:
    head, sep, _ = uri.partition("://")
    # "C:\\photos" has no "://"; a scheme is letters, digits, + - . (RFC 3986)
    if sep and head and head.replace("+", "").replace("-", "").replace(".", "").isalnum():
        return head.lower()
    return None


def _is_local(uri: str) -> bool:
    """A plain path: handled with the local batch's own file code. Every URI, ``file://``
    included, goes through fsspec."""
    return _scheme(uri) is None


def _guarded_fetcher() -> Callable[[str], bytes] | None:
    """:func:`cleancut.urls.fetch_url` (public addresses only, size and time caps; its policy
    comes from each worker's ``CLEANCUT_URL_*`` environment), or ``None`` in an install
    without it, where http(s) inputs are refused."""
    try:
        from .urls import fetch_url
    except ImportError:
        return None
    return fetch_url


def _check_remote(uri: str, role: Literal["input", "output"]) -> None:
    scheme = _scheme(uri)
    if scheme == "memory":
        raise InvalidOptionError(
            f"{uri}: memory:// lives inside one process and Ray workers are other processes; "
            "use a local folder, file://, or an object store such as s3://"
        )
    if scheme in _HTTP:
        if role == "output":
            raise InvalidOptionError(f"-o {uri}: cannot write to an http(s) address; use a folder or s3://…")
        if _guarded_fetcher() is None:
            raise InvalidOptionError(
                f"{uri}: http(s) inputs are not supported by the Ray engine in this version "
                "(fetching arbitrary addresses from cluster workers is unsafe); download the "
                "files to a folder or an object store first"
            )


def _url_to_fs(uri: str) -> tuple[Any, str]:
    fsspec = _import_fsspec()
    try:
        fs, path = fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as exc:
        # an unknown protocol, or its driver package (s3fs, gcsfs, adlfs) is missing
        raise InvalidOptionError(
            f"{uri}: cannot open this location with fsspec ({exc}); install the "
            "filesystem's package, e.g. pip install s3fs for s3://"
        ) from None
    return fs, str(path)


def _join(root: str, rel: str) -> str:
    return root.rstrip("/") + "/" + rel


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class RayJob:
    """One input and its output, as URIs or local paths (strings: they travel to workers)."""

    input: str
    output: str
    name: str


def _local_pairs(item: str, exclude: Path | None) -> list[tuple[str, Path]]:
    p = Path(item)
    if p.is_dir():
        # the local batch's own scan: same extensions, hidden and *.cutout.* files left out
        return [(str(f), f.relative_to(p)) for f in local_batch._scan(p, exclude)]
    if not p.exists():
        raise InputNotFoundError(f"no such file or folder: {item}")
    return [(str(p), Path(p.name))]


def _walk_key(rel: str) -> tuple[tuple[int, str], ...]:
    """Order of ``os.walk`` top-down with sorted names: a folder's files before its subfolders."""
    parts = rel.split("/")
    return (*((1, d) for d in parts[:-1]), (0, parts[-1]))


def _remote_pairs(item: str, exclude: str | None) -> list[tuple[str, Path]]:
    if _scheme(item) in _HTTP:  # one image per URL: nothing to list, and never fsspec's HTTP
        name = item.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0].split("#", 1)[0] or "image"
        return [(item, Path(name))]
    fs, root = _url_to_fs(item)
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
        if any(d.startswith(".") for d in parts[:-1]) or not local_batch._is_image_name(Path(parts[-1])):
            continue
        rels.append(rel)
    rels.sort(key=_walk_key)
    return [(f"{protocol}://{prefix}{rel}", Path(rel)) for rel in rels]


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
    if local_batch.STDIO in items:
        raise InvalidOptionError("the Ray engine cannot read stdin; pass files, folders or URIs")
    out = os.fspath(output)
    if out == local_batch.STDIO:
        raise InvalidOptionError("the Ray engine writes files; give -o FOLDER (a path or a URI)")
    _check_remote(out, "output")
    for item in items:
        _check_remote(item, "input")
    fmt_out: OutputFormat = fmt or "png"
    ext = extension_for(fmt_out)

    out_local = _is_local(out)
    out_root = str(Path(out)) if out_local else out
    if out_local and Path(out_root).exists() and not Path(out_root).is_dir():
        raise InvalidOptionError(f"-o {out} must be a folder for the Ray engine")
    local_exclude = Path(out_root).resolve() if out_local else None
    remote_exclude = None if out_local else _url_to_fs(out)[1]
    out_scheme = _scheme(out)

    jobs: list[RayJob] = []
    taken: dict[Path, str] = {}
    folders: dict[str, str] = {}

    def dest_of(target: Path) -> str:
        return str(Path(out_root) / target) if out_local else _join(out_root, target.as_posix())

    def folder(uri: str) -> str:
        """The folder of ``uri``: the same string for a path and a ``file://`` URI of one
        local folder (symlinks resolved), the scheme and path for other filesystems."""
        parent = str(Path(uri).parent) if _is_local(uri) else uri.rstrip("/").rsplit("/", 1)[0]
        if parent not in folders:
            on_disk = _on_disk(uri)
            if on_disk is not None:
                folders[parent] = str(local_batch._real(on_disk.parent))
            else:
                folders[parent] = f"{_scheme(uri)}://{_url_to_fs(uri)[1].rstrip('/').rsplit('/', 1)[0]}"
        return folders[parent]

    for item in items:
        if _is_local(item):
            pairs = _local_pairs(item, local_exclude)
        else:
            pairs = _remote_pairs(item, remote_exclude if _scheme(item) == out_scheme else None)
        for src, rel in pairs:
            target, fallback = rel.with_suffix(ext), rel.with_name(rel.name + ext)
            if _scheme(src) not in _HTTP and folder(dest_of(target)) == folder(src):
                # into its input's own folder: the .cutout mark, as the local batch does
                target = rel.with_name(f"{rel.stem}{local_batch.CUTOUT_MARK}{ext}")
                fallback = rel.with_name(f"{rel.name}{local_batch.CUTOUT_MARK}{ext}")
            target = local_batch._unique(target, fallback, taken)
            taken[target] = src
            jobs.append(RayJob(src, dest_of(target), src))
    return jobs, fmt_out


# --------------------------------------------------------------------------- the manifest


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


def _parse_lines(text: str) -> Iterator[dict[str, Any]]:
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            # a line cut short by a crash mid-append: everything before it is intact
            log.warning("ignoring a damaged manifest line: %.80s", line)
            continue
        if isinstance(row, dict):
            yield row


def manifest_location(output: str | os.PathLike[str]) -> str:
    """Where the manifest of ``output`` lives: a file in a local folder, a folder of parts
    on an object store."""
    out = os.fspath(output)
    if _is_local(out):
        return str(Path(out) / MANIFEST_NAME)
    return _join(out, MANIFEST_PARTS) + "/"


def read_manifest(output: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every row of the manifest in ``output`` (a folder or a URI), oldest first."""
    out = os.fspath(output)
    if _is_local(out):
        root = Path(out)
        rows: list[dict[str, Any]] = []
        try:
            rows.extend(_parse_lines((root / MANIFEST_NAME).read_text(encoding="utf-8")))
        except FileNotFoundError:
            pass
        parts = sorted((root / MANIFEST_PARTS).glob("*.jsonl")) if (root / MANIFEST_PARTS).is_dir() else []
        for part in parts:
            rows.extend(_parse_lines(part.read_text(encoding="utf-8")))
        return rows
    fs, root_path = _url_to_fs(out)
    folder = _join(root_path, MANIFEST_PARTS)
    try:
        names = sorted(str(p) for p in fs.find(folder) if str(p).endswith(".jsonl"))
    except FileNotFoundError:
        return []
    rows = []
    for name in names:
        rows.extend(_parse_lines(fs.cat_file(name).decode("utf-8")))
    return rows


class _Manifest:
    """Appends rows as they arrive.

    Local folders: one ``os.write`` per row on an ``O_APPEND`` descriptor, so a row is
    either wholly in the file or not at all, and a killed driver keeps every row before it;
    fsync'd at most once a second (and at the end). Object stores cannot append: rows are
    buffered and each flush (every ``flush_rows`` rows or ``flush_seconds``) puts a new part
    object; a killed driver loses at most the unflushed rows, whose outputs a rerun then
    finds and skips.
    """

    def __init__(self, output: str, run: str, *, flush_rows: int = 500, flush_seconds: float = 30.0) -> None:
        self.run = run
        self.local = _is_local(output)
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._buffer: list[str] = []
        self._seq = 0
        self._last_sync = time.monotonic()
        self._fd: int | None = None
        if self.local:
            root = Path(output)
            root.mkdir(parents=True, exist_ok=True)
            self.path = str(root / MANIFEST_NAME)
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            size = os.fstat(self._fd).st_size
            if size and os.pread(self._fd, 1, size - 1) != b"\n":
                # a line cut short (a full disk, a crash mid-write): end it, so this run's
                # first row starts on a line of its own
                os.write(self._fd, b"\n")
        else:
            self._fs, root_path = _url_to_fs(output)
            self.path = _join(root_path, MANIFEST_PARTS)

    def append(self, result: RayResult) -> None:
        line = result.to_json(self.run) + "\n"
        now = time.monotonic()
        if self._fd is not None:
            os.write(self._fd, line.encode("utf-8"))
            if now - self._last_sync >= 1.0:
                os.fsync(self._fd)
                self._last_sync = now
            return
        self._buffer.append(line)
        if len(self._buffer) >= self.flush_rows or now - self._last_sync >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            return
        if not self._buffer:
            return
        self._seq += 1
        name = _join(self.path, f"{self.run}-{self._seq:06d}.jsonl")
        if not _is_object_store(self._fs):  # object stores have no folders to make
            self._fs.makedirs(self.path, exist_ok=True)
        self._fs.pipe_file(name, "".join(self._buffer).encode("utf-8"))
        self._buffer.clear()
        self._last_sync = time.monotonic()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


# --------------------------------------------------------------------------- the actor


def _describe(exc: BaseException) -> str:
    return local_batch._describe(exc)


#: decoded photo, network input (None: several passes) and timings, as in the local batch
_Prepared = local_batch._Prepared


class CutoutActor:
    """A Ray Data ``map_batches`` callable class: one loaded model per actor, reused.

    Each batch is a dict of columns ``input`` / ``output``; the result has one row per
    input with ``status``, ``error``, ``seconds``, ``timings`` (JSON) and ``worker``.
    Within a batch, reading and decoding of the next images and encoding and writing of
    the previous ones run on two threads while the model infers the current one, as in
    the local batch.
    """

    def __init__(
        self,
        *,
        engine: EngineOptions | None = None,
        settings: Settings | None = None,
        settings_overrides: Mapping[str, Any] | None = None,
        options: CutOptions | None = None,
        overwrite: bool = False,
        prefetch: int = 2,
    ) -> None:
        # Settings built here, on the worker, read the worker's own environment (its cache
        # folder, its CLEANCUT_* variables) unless the driver passed explicit ones.
        if settings is None:
            settings = Settings.from_env(**dict(settings_overrides or {}))
        self.remover = Remover.from_options(engine or EngineOptions(), settings=settings).load()
        # a background image is decoded once per actor, not once per row
        opts = options if options is not None else local_batch.OutputOptions()
        self.options = opts.loaded(settings.max_pixels)
        self.overwrite = overwrite
        self.prefetch = max(1, prefetch)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.fetch_http = _guarded_fetcher()
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="cleancut-read")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="cleancut-write")

    # -- one row, in stages

    def _read(self, uri: str) -> Any:
        """What :meth:`Remover.decode` takes: a local path, or bytes named after the URI (so
        decode errors name the file)."""
        if _is_local(uri):
            return Path(uri)
        if _scheme(uri) in _HTTP:
            if self.fetch_http is None:  # planning refuses these; a hand-built row may not
                raise InvalidOptionError(f"{uri}: http(s) inputs are not supported here")
            data = self.fetch_http(uri)
        else:
            fs, path = _url_to_fs(uri)
            if not _is_object_store(fs):
                # Object stores hold nothing but objects; elsewhere (file://, sftp, smb) a
                # FIFO would block the read for ever, and a device, a folder or a dangling
                # or looping symlink cannot be read either: the local batch's "not a file".
                self._check_regular(fs, path, uri)
            try:
                data = fs.cat_file(path)
            except FileNotFoundError:
                raise InputNotFoundError(f"no such file: {uri}") from None
        stream = io.BytesIO(data)
        stream.name = uri
        return stream

    @staticmethod
    def _check_regular(fs: Any, path: str, uri: str) -> None:
        try:
            kind = fs.info(path).get("type")
        except FileNotFoundError:
            raise InputNotFoundError(f"no such file: {uri}") from None
        except OSError as exc:  # a symlink loop, no permission
            raise InputNotFoundError(f"cannot use {uri} as an input path: {exc.strerror or exc}") from None
        if kind != "file":
            what = f"a {kind} entry" if kind else "a special entry"
            raise InputNotFoundError(f"not a file: {uri} ({what}, not a regular file)")

    def _output_exists(self, uri: str) -> bool:
        if _is_local(uri):
            return Path(uri).exists()
        fs, path = _url_to_fs(uri)
        return bool(fs.exists(path))

    def _prepare(self, uri: str, output: str) -> _Prepared | str:
        """Read, decode, preprocess; or a reason to skip the row without model work."""
        if not self.overwrite and self._output_exists(output):
            return f"{output} exists (use --overwrite to replace it)"
        t0 = time.perf_counter()
        source = self._read(uri)
        t1 = time.perf_counter()
        decoded = self.remover.decode(source)
        t2 = time.perf_counter()
        # several passes (quality modes other than default) are preprocessed as they run
        x = local_batch.prepare(decoded, self.remover, self.options.mode)
        t3 = time.perf_counter()
        return _Prepared(decoded, x, {"read": t1 - t0, "decode": t2 - t1, "preprocess": t3 - t2})

    def _finish(self, output: str, name: str, prepared: _Prepared, y: np.ndarray) -> dict[str, float]:
        """The local batch's finishing step (postprocess, compose, every output option,
        encode); local outputs are written by it too (temp + rename), others here."""
        if _is_local(output):
            job = local_batch.Job(None, Path(output), name)
            timings, _ = local_batch._finish(
                job,
                prepared.decoded,
                y,
                self.options,
                self.overwrite,
                self.remover.exact_resize,
                self.remover.settings.max_pixels,
            )
            return timings
        timings, data = local_batch._finish(
            local_batch.Job(None, None, name),
            prepared.decoded,
            y,
            self.options,
            self.overwrite,
            self.remover.exact_resize,
            self.remover.settings.max_pixels,
        )
        assert data is not None
        t0 = time.perf_counter()
        _put(output, data, overwrite=self.overwrite)
        timings["write"] = time.perf_counter() - t0
        return timings

    # -- a batch

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, list[Any]]:
        inputs = [str(v) for v in batch["input"]]
        outputs = [str(v) for v in batch["output"]]
        names = [str(v) for v in batch["name"]] if "name" in batch else inputs
        n = len(inputs)
        status: list[Status] = ["failed"] * n
        errors: list[str | None] = [None] * n
        seconds = [0.0] * n
        timings: list[dict[str, float]] = [{} for _ in range(n)]
        started = [0.0] * n

        reads: deque[tuple[int, Future[_Prepared | str]]] = deque()
        writes: deque[tuple[int, Future[dict[str, float]]]] = deque()
        upcoming = iter(range(n))

        def submit_read() -> None:
            i = next(upcoming, None)
            if i is not None:
                started[i] = time.perf_counter()
                reads.append((i, self._reader.submit(self._prepare, inputs[i], outputs[i])))

        def settle(i: int, exc: BaseException | None, skip: str | None = None) -> None:
            seconds[i] = time.perf_counter() - started[i]
            if skip is not None:
                status[i], errors[i] = "skipped", skip
            elif exc is None:
                status[i] = "written"
            elif isinstance(exc, OutputExistsError) and not self.overwrite:
                status[i], errors[i] = "skipped", str(exc)
            else:
                status[i], errors[i] = "failed", _describe(exc)

        def drain(limit: int) -> None:
            while len(writes) > limit:
                i, fut = writes.popleft()
                try:
                    timings[i].update(fut.result())
                except Exception as exc:
                    settle(i, exc)
                else:
                    settle(i, None)

        for _ in range(self.prefetch):
            submit_read()
        while reads:
            i, fut = reads.popleft()
            submit_read()  # decode the next image while this one is inferred
            try:
                prepared = fut.result()
            except Exception as exc:
                settle(i, exc)
                continue
            if isinstance(prepared, str):
                settle(i, None, skip=prepared)
                continue
            timings[i].update(prepared.timings)
            t0 = time.perf_counter()
            try:
                y = prepared.infer(self.remover, self.options.mode, None)
            except Exception as exc:
                settle(i, exc)
                continue
            timings[i]["inference"] = time.perf_counter() - t0
            writes.append((i, self._writer.submit(self._finish, outputs[i], names[i], prepared, y)))
            del prepared
            drain(self.prefetch)
        drain(0)
        return {
            "input": inputs,
            "output": outputs,
            "status": list(status),
            "error": ["" if e is None else e for e in errors],
            "seconds": seconds,
            "timings": [json.dumps(t) for t in timings],
            "worker": [self.worker] * n,
        }


def _is_object_store(fs: Any) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    return any(p in _OBJECT_STORES for p in protocols)


def _put(uri: str, data: bytes, *, overwrite: bool) -> None:
    """Write to a non-local filesystem without ever exposing a partial object."""
    fs, path = _url_to_fs(uri)
    if not overwrite and fs.exists(path):
        raise OutputExistsError(f"{uri} exists (use --overwrite to replace it)")
    if _is_object_store(fs):
        fs.pipe_file(path, data)  # one PUT: the object appears whole or not at all
        return
    # other filesystems (file://, sftp, smb, …): a hidden temp name, then a rename
    parent = path.rsplit("/", 1)[0]
    fs.makedirs(parent, exist_ok=True)
    name = path.rsplit("/", 1)[-1]
    tmp = f"{parent}/{temp_name_for(name)}"  # the pattern io.atomic.sweep_stale_temps knows
    try:
        fs.pipe_file(tmp, data)
        fs.mv(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            fs.rm(tmp)
        raise


# --------------------------------------------------------------------------- the driver


class _Inputs:
    """Every input of one run: local and ``file://`` ones by real path and file identity
    (the local batch's own check), others by URI."""

    def __init__(self, jobs: list[RayJob]) -> None:
        on_disk = [(_on_disk(j.input), j.input) for j in jobs]
        self.local = local_batch._Inputs([local_batch.Job(p, None, "") for p, _ in on_disk if p is not None])
        self.names = {str(p): uri for p, uri in on_disk if p is not None}
        self.remote = {uri.rstrip("/") for p, uri in on_disk if p is None}

    def clash(self, output: str) -> str | None:
        path = _on_disk(output)
        if path is None:
            return output if output.rstrip("/") in self.remote else None
        found = self.local.clash(path)
        return None if found is None else self.names.get(str(found), str(found))


def _precheck(
    job: RayJob, overwrite: bool, existing: set[str] | None, inputs: _Inputs | None = None
) -> RayResult | None:
    """Rows that need no model work: refusals and outputs that exist."""
    src, dst = _on_disk(job.input), _on_disk(job.output)
    if (
        local_batch._same_file(src, dst)
        if src is not None and dst is not None
        else job.input.rstrip("/") == job.output.rstrip("/")
    ):
        return RayResult(
            job.input, job.output, "failed", f"refusing to overwrite the input {job.input}; choose another -o"
        )
    other = inputs.clash(job.output) if inputs is not None else None
    if other is not None:
        return RayResult(
            job.input,
            job.output,
            "failed",
            f"refusing to write {job.output}: it is an input of this batch ({other}); "
            "choose another -o (inputs are never written, whatever --overwrite says)",
        )
    if overwrite:
        return None
    exists = Path(job.output).exists() if existing is None else _url_to_fs(job.output)[1] in existing
    if exists:
        return RayResult(
            job.input, job.output, "skipped", f"{job.output} exists (use --overwrite to replace it)"
        )
    return None


def _on_disk(uri: str) -> Path | None:
    """The local file behind a plain path or a ``file://`` URI (to compare inputs with outputs)."""
    if _is_local(uri):
        return Path(uri)
    if _scheme(uri) == "file":
        return Path(_url_to_fs(uri)[1])
    return None


def _existing_outputs(output: str) -> set[str] | None:
    """Object stores: every object under ``output`` from one listing (a HEAD per output
    would cost a request each); ``None`` for local folders, where a stat is cheap."""
    if _is_local(output):
        return None
    fs, root = _url_to_fs(output)
    try:
        return {str(p) for p in fs.find(root)}
    except FileNotFoundError:
        return set()


def _cluster_cpus(ray: Any) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _cluster_gpus(ray: Any) -> int:
    return int(ray.cluster_resources().get("GPU", 0))


@contextlib.contextmanager
def _ray_session(address: str | None, quiet: bool) -> Iterator[Any]:
    """Connect to ``address``, or start a local Ray that lives as long as this block.

    An already initialised Ray (a notebook, a test) is used as it is and left running."""
    ray = _import_ray()
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
    options: OutputOptions | None = None,
    *,
    model: str = DEFAULT_MODEL,
    device: str = "auto",
    backend: str = "auto",
    strict: bool = False,
    address: str | None = None,
    num_workers: int | None = None,
    threads: int | None = None,
    batch_size: int | None = None,
    overwrite: bool = False,
    settings: Settings | None = None,
    settings_overrides: Mapping[str, Any] | None = None,
    quiet: bool = True,
    on_start: Callable[[int], None] | None = None,
) -> Iterator[RayResult]:
    """Cut out ``inputs`` into the folder ``output`` on Ray; yield one result per input as
    rows finish (in completion order), each already appended to the manifest.

    ``address``: a running cluster (``HOST:6379``, ``ray://…``, ``auto``); without it a local
    Ray is started for this call and shut down after it (an already initialised Ray is
    used and left running). ``num_workers``: actors, each holding one loaded model
    (default: one per GPU where the cluster has GPUs, else one per 4 CPUs). ``threads``:
    CPUs reserved by, and inference threads of, each CPU actor (default: the cluster's CPUs
    shared out). ``settings``: used by every actor as is; without it each worker reads its
    own environment, with ``settings_overrides`` (``Settings`` field names) applied.
    ``on_start(n)`` is called with the number of rows once planning is done.
    """
    opts = options if options is not None else local_batch.OutputOptions()
    jobs, _ = plan_ray_jobs(inputs, output, opts.format)
    out = os.fspath(output)
    run = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    if on_start is not None:
        on_start(len(jobs))
    if not jobs:
        return
    if address is None and _is_local(out):
        # A run killed mid-write leaves hidden temp files of its (local) actors beside the
        # outputs; they are cleared once their writer is gone. Not on a cluster: there a
        # writer's pid belongs to another machine and cannot be checked from here.
        from .io.atomic import sweep_stale_temps

        for folder in sorted({str(Path(j.output).parent) for j in jobs}):
            sweep_stale_temps(folder)
    # one listing of the output folder, taken before anything is written
    existing = _existing_outputs(out)
    done_before = {
        (r.get("input"), r.get("output")) for r in read_manifest(out) if r.get("status") == "written"
    }
    manifest = _Manifest(out, run)
    every_input = _Inputs(jobs)
    try:
        todo: list[RayJob] = []
        for job in jobs:
            early = _precheck(job, overwrite, existing, every_input)
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
                model=model,
                device=device,
                backend=backend,
                strict=strict,
                address=address,
                num_workers=num_workers,
                threads=threads,
                batch_size=batch_size,
                overwrite=overwrite,
                settings=settings,
                settings_overrides=settings_overrides,
                quiet=quiet,
            )
    finally:
        manifest.close()


def _run_on_ray(
    todo: list[RayJob],
    manifest: _Manifest,
    options: OutputOptions,
    *,
    model: str,
    device: str,
    backend: str,
    strict: bool,
    address: str | None,
    num_workers: int | None,
    threads: int | None,
    batch_size: int | None,
    overwrite: bool,
    settings: Settings | None,
    settings_overrides: Mapping[str, Any] | None,
    quiet: bool,
) -> Iterator[RayResult]:
    if num_workers is not None and num_workers < 1:
        raise InvalidOptionError(f"--num-workers must be at least 1, got {num_workers}")
    if batch_size is not None and batch_size < 1:
        raise InvalidOptionError(f"batch_size must be at least 1, got {batch_size}")
    with contextlib.ExitStack() as stack:
        ray = stack.enter_context(_ray_session(address, quiet))
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
        gpus = _cluster_gpus(ray) if device != "cpu" else 0
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
            # a local Ray: fetch the model once here rather than in every actor at once
            from .models.store import fetch_model

            fetch_model(model, settings or Settings.from_env(**dict(settings_overrides or {})))

        ds = ray.data.from_items([{"input": j.input, "output": j.output, "name": j.name} for j in todo])
        stage: dict[str, Any] = {
            "batch_size": size,
            "batch_format": "numpy",
            "compute": ActorPoolStrategy(size=workers),
            "fn_constructor_kwargs": {
                "engine": EngineOptions(model, device, backend, strict, per_actor_cpus),
                "settings": settings,
                "settings_overrides": dict(settings_overrides or {}),
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
