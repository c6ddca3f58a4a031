"""Model delivery: ``resources.json`` + SHA-256-named chunks, verified, resumable, atomic.

Sources, tried in order:

1. the base URL (``http://``, ``https://`` or ``file://``; default IMG.LY's CDN folder of the
   pinned data package): ``resources.json`` is read, the model's chunks are fetched in
   parallel, each checked for size and SHA-256 (a bad chunk is fetched again), assembled,
   and the whole file checked against the size and SHA-256 pinned in :mod:`cleancut.models.registry`;
2. the ``npm`` client: ``npm pack <package>@<version>`` into a temporary folder, then the
   same assembly and checks from the tarball's ``dist/``. The registry is whatever the
   user's npm is configured for; no host name is written here.

Verified chunks are kept in ``<cache>/chunks`` until the model is installed, so an
interrupted download resumes where it stopped. Chunks and the model are written through
:func:`cleancut.io.atomic.atomic_writer` (a unique temporary name next to the final path)
and moved into place only once verified.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import re
import shutil
import subprocess
import tarfile
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .._version import __version__
from ..config import Settings
from ..errors import CancelledError, ChecksumMismatchError, DownloadError, ModelError, ModelNotFoundError
from ..io.atomic import atomic_writer
from ..progress import ByteCounter, ProgressCallback
from .installed import installed_path, sha256_file, verify_installed
from .registry import DATA_PACKAGE, DATA_VERSION, ModelSpec, resolve_model

__all__ = [
    "Chunk",
    "fetch_published",
    "npm_pack",
]

log = logging.getLogger(__name__)

_BLOCK = 1 << 16
_USER_AGENT = f"cleancut/{__version__}"
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
#: What a failing network stream raises besides OSError (bad status line, short chunked body).
_STREAM_ERRORS = (OSError, http.client.HTTPException)


@dataclass(frozen=True)
class Chunk:
    sha256: str
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


# --------------------------------------------------------------------------- sources


class _Source:
    """Where chunk files come from: anything that opens ``<name>`` as a byte stream."""

    description: str

    def open(self, name: str) -> BinaryIO:  # pragma: no cover - interface
        raise NotImplementedError

    def read_json(self, name: str) -> Any:
        with self.open(name) as f:
            data = _read(f, None, f"{self.description}{name}")
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise DownloadError(f"{self.description}{name} is not valid JSON: {exc}") from exc


def _read(stream: BinaryIO, size: int | None, where: str) -> bytes:
    """Read from a source stream; a broken stream is a :class:`DownloadError` like any other."""
    try:
        return stream.read(size) if size is not None else stream.read()
    except _STREAM_ERRORS as exc:
        raise DownloadError(f"reading {where} failed: {exc!r}") from exc


class _UrlSource(_Source):
    def __init__(self, base_url: str, timeout: float) -> None:
        scheme = urllib.parse.urlsplit(base_url).scheme.lower()
        if scheme not in ("http", "https", "file"):
            raise DownloadError(f"model URL {base_url!r} must start with http://, https:// or file://")
        self.base = base_url if base_url.endswith("/") else base_url + "/"
        self.description = self.base
        self.timeout = timeout

    def open(self, name: str) -> BinaryIO:
        url = urllib.parse.urljoin(self.base, name.lstrip("/"))
        req = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
        try:
            resp: BinaryIO = urllib.request.urlopen(req, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            raise DownloadError(f"GET {url} answered HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, *_STREAM_ERRORS, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DownloadError(f"GET {url} failed: {reason}") from exc
        return resp


class _DirSource(_Source):
    def __init__(self, root: Path, description: str) -> None:
        self.root = root
        self.description = description

    def open(self, name: str) -> BinaryIO:
        path = self.root / name.lstrip("/")
        try:
            return open(path, "rb")
        except OSError as exc:
            raise DownloadError(f"{self.description}: cannot open {name}: {exc}") from exc


# --------------------------------------------------------------------------- chunks


def _parse_entry(resources: Any, spec: ModelSpec, where: str) -> list[Chunk]:
    assert spec.resource is not None
    try:
        entry = resources[spec.resource]
        chunks = [
            Chunk(str(c["hash"]).lower(), int(c["offsets"][0]), int(c["offsets"][1])) for c in entry["chunks"]
        ]
        size = int(entry["size"])
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise DownloadError(
            f"{where}resources.json has no usable entry for {spec.resource}: {exc!r}"
        ) from exc
    if spec.size is not None and size != spec.size:
        raise ChecksumMismatchError(
            f"{where}resources.json says {spec.resource} is {size} bytes; cleancut pins "
            f"{spec.size} bytes for {spec.name} ({DATA_PACKAGE}@{DATA_VERSION})"
        )
    pos = 0
    for c in chunks:
        # The hash becomes a file name and a URL: only 64 hex digits may pass.
        if c.start != pos or c.end <= c.start or not _SHA256_HEX.fullmatch(c.sha256):
            raise DownloadError(f"{where}resources.json lists a malformed chunk for {spec.resource}")
        pos = c.end
    if pos != size:
        raise DownloadError(f"{where}resources.json chunks of {spec.resource} do not add up to its size")
    return chunks


class _ChunkProgress:
    """Bytes of one model, counted per chunk so that progress never goes backwards.

    A chunk fetched again (a retry, or the npm fallback after the base URL failed) only
    adds the bytes beyond its best earlier attempt, so a progress bar neither rewinds nor
    passes its total. One instance lives for a whole :func:`fetch_published` call.
    """

    def __init__(self, key: str, progress: ProgressCallback | None) -> None:
        self.key = key
        self._progress = progress
        self._counter: ByteCounter | None = None
        self._best: dict[str, int] = {}
        self._lock = threading.Lock()

    def start(self, total: int) -> None:
        with self._lock:
            if self._counter is None:  # a second source continues the first one's count
                self._counter = ByteCounter(self.key, total, self._progress)
                if self._progress is not None:
                    self._progress(self.key, 0, total)

    def reached(self, chunk: Chunk, nbytes: int) -> None:
        with self._lock:
            best = self._best.get(chunk.sha256, 0)
            if nbytes > best and self._counter is not None:
                self._best[chunk.sha256] = nbytes
                self._counter.add(nbytes - best)


def _check_cancel(cancel: Callable[[], bool] | None) -> None:
    if cancel is not None and cancel():
        raise CancelledError("model download cancelled")


def _chunk_ok(path: Path, chunk: Chunk) -> bool:
    try:
        return path.stat().st_size == chunk.size and sha256_file(path) == chunk.sha256
    except OSError:
        return False


def _fetch_chunk(
    source: _Source,
    chunk: Chunk,
    dest_dir: Path,
    counter: _ChunkProgress,
    retries: int,
    cancel: Callable[[], bool] | None,
) -> Path:
    _check_cancel(cancel)
    dest = dest_dir / chunk.sha256
    if _chunk_ok(dest, chunk):
        counter.reached(chunk, chunk.size)  # resume: verified earlier, not fetched again
        return dest
    last: Exception | None = None
    attempts = max(1, retries)  # retries=0 would otherwise make no attempt at all
    for attempt in range(1, attempts + 1):
        got = 0
        try:
            h = hashlib.sha256()
            # The checks run inside the writer: a failed one removes the temp file, unrenamed.
            with source.open(chunk.sha256) as src, atomic_writer(dest) as out:
                while True:
                    _check_cancel(cancel)
                    block = _read(src, _BLOCK, f"chunk {chunk.sha256[:12]}… from {source.description}")
                    if not block:
                        break
                    if got + len(block) > chunk.size:
                        raise ChecksumMismatchError(
                            f"chunk {chunk.sha256[:12]}… is longer than the {chunk.size} bytes listed"
                        )
                    h.update(block)
                    out.write(block)
                    got += len(block)
                    counter.reached(chunk, got)
                if got != chunk.size:
                    raise ChecksumMismatchError(
                        f"chunk {chunk.sha256[:12]}… has {got} bytes, expected {chunk.size}"
                    )
                digest = h.hexdigest()
                if digest != chunk.sha256:
                    raise ChecksumMismatchError(
                        f"chunk {chunk.sha256[:12]}… has SHA-256 {digest[:12]}…; "
                        f"the source {source.description} served corrupt data"
                    )
            return dest
        except (DownloadError, ChecksumMismatchError, OSError) as exc:
            last = exc
            log.warning("chunk %s… attempt %d/%d failed: %s", chunk.sha256[:12], attempt, attempts, exc)
    assert last is not None
    raise last


def _assemble(chunk_paths: list[Path], spec: ModelSpec, target: Path) -> None:
    h = hashlib.sha256()
    size = 0
    # The checks run inside the writer: a failed one leaves no file at the target.
    with atomic_writer(target) as out:
        for p in chunk_paths:
            with open(p, "rb") as f:
                while block := f.read(1 << 20):
                    h.update(block)
                    out.write(block)
                    size += len(block)
        if spec.size is not None and size != spec.size:
            raise ChecksumMismatchError(f"assembled {spec.name} is {size} bytes, expected {spec.size}")
        if spec.sha256 is not None and h.hexdigest() != spec.sha256:
            raise ChecksumMismatchError(
                f"assembled {spec.name} has SHA-256 {h.hexdigest()}, expected {spec.sha256}"
            )


def _download_from(
    source: _Source,
    spec: ModelSpec,
    settings: Settings,
    target: Path,
    counter: _ChunkProgress,
    cancel: Callable[[], bool] | None,
) -> None:
    _check_cancel(cancel)
    resources = source.read_json("resources.json")
    chunks = _parse_entry(resources, spec, source.description)
    counter.start(sum(c.size for c in chunks))
    chunk_dir = settings.chunks_dir
    chunk_dir.mkdir(parents=True, exist_ok=True)
    workers = min(settings.download_workers, len(chunks))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cleancut-fetch") as pool:
        futures = [
            pool.submit(_fetch_chunk, source, c, chunk_dir, counter, settings.download_retries, cancel)
            for c in chunks
        ]
        try:
            paths = [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise
    _check_cancel(cancel)
    _assemble(paths, spec, target)
    for p in paths:  # only needed to resume an interrupted download
        p.unlink(missing_ok=True)


# --------------------------------------------------------------------------- npm


def npm_pack(npm: str, spec: str, workdir: Path, timeout: float) -> Path:
    """Run ``npm pack SPEC`` into ``workdir`` and return the tarball.

    The registry is whatever the user's npm is configured for; no host name is written here.
    """
    exe = shutil.which(npm)
    if exe is None:
        raise DownloadError(f"the npm client {npm!r} is not installed (set CLEANCUT_NPM to its path)")
    cmd = [exe, "pack", spec, "--pack-destination", str(workdir), "--silent"]
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise DownloadError(f"`npm pack {spec}` did not finish in {timeout:.0f} s") from exc
    except OSError as exc:
        raise DownloadError(f"could not run {exe}: {exc}") from exc
    tarballs = sorted(workdir.glob("*.tgz"))
    if proc.returncode != 0 or not tarballs:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise DownloadError(f"`npm pack {spec}` failed (exit {proc.returncode}): {' '.join(detail)}")
    return tarballs[0]


@contextmanager
def _npm_source(npm: str, timeout: float) -> Iterator[_Source]:
    spec = f"{DATA_PACKAGE}@{DATA_VERSION}"
    with tempfile.TemporaryDirectory(prefix="cleancut-npm-") as tmpdir:
        tmp = Path(tmpdir)
        tarball = npm_pack(npm, spec, tmp, timeout)
        dist = tmp / "dist"
        dist.mkdir()
        try:
            with tarfile.open(tarball, "r:gz") as tar:
                for member in tar:
                    name = member.name
                    if not member.isfile() or not name.startswith("package/dist/"):
                        continue
                    leaf = name[len("package/dist/") :]
                    if "/" in leaf or leaf.startswith("."):
                        continue
                    src = tar.extractfile(member)
                    if src is None:
                        continue
                    with src, open(dist / leaf, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DownloadError(f"the npm tarball of {spec} is unreadable: {exc}") from exc
        tarball.unlink()
        yield _DirSource(dist, f"npm package {spec} ")


# --------------------------------------------------------------------------- public


def fetch_published(
    spec: ModelSpec | str,
    settings: Settings,
    *,
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
    force: bool = False,
) -> Path:
    """Make sure a published model is installed and verified; return its path.

    Tries the base URL, then ``npm pack``. Raises :class:`ModelNotFoundError` in offline
    mode, :class:`CancelledError` when ``cancel()`` turns true (no fallback is tried then),
    :class:`ChecksumMismatchError` when every source that failed served bytes that do not
    match the pinned size/SHA-256, and :class:`DownloadError` when every source fails
    otherwise (unreachable, HTTP errors, no npm client).
    """
    spec = resolve_model(spec)
    if spec.derived_from is not None:
        raise ValueError(f"{spec.name} is derived, not published: fetch it with models.store.fetch_model")
    target = installed_path(spec, settings)
    state = "not in the cache"
    if not force and target.exists():
        if verify_installed(spec, target):
            return target
        state = "in the cache but corrupt or truncated"
        log.warning("cached %s failed verification (corrupt or truncated); fetching it again", target)
    if settings.offline:
        raise ModelNotFoundError(
            f"model {spec.name} is {state} ({target}) and offline mode is on. "
            f"Run `cleancut models fetch {spec.name}` with network access, or copy "
            f"{spec.filename} into {settings.models_dir}, or unset CLEANCUT_OFFLINE."
        )
    counter = _ChunkProgress(spec.progress_key, progress)
    failures: list[ModelError] = []
    errors: list[str] = []
    try:
        _download_from(
            _UrlSource(settings.model_base_url, settings.download_timeout),
            spec,
            settings,
            target,
            counter,
            cancel,
        )
        return target
    except ModelError as exc:  # CancelledError is no ModelError: it ends the fetch here
        failures.append(exc)
        errors.append(f"{settings.model_base_url}: {exc}")
        log.warning(
            "download from %s failed (%s)%s",
            settings.model_base_url,
            exc,
            "; trying the npm client" if settings.npm else "",
        )
    if settings.npm:
        try:
            with _npm_source(settings.npm, timeout=max(600.0, settings.download_timeout)) as src:
                _download_from(src, spec, settings, target, counter, cancel)
            return target
        except ModelError as exc:
            failures.append(exc)
            errors.append(f"npm: {exc}")
    else:
        errors.append("npm fallback: turned off (CLEANCUT_NPM=0)")
    message = (
        f"could not fetch model {spec.name}. "
        + " | ".join(errors)
        + f". Check the network or set CLEANCUT_MODEL_URL to a mirror of {DATA_PACKAGE}@"
        f"{DATA_VERSION}/dist/ (http(s):// or file://), or place {spec.filename} in "
        f"{settings.models_dir}."
    )
    # Every source that answered served bytes other than the pinned ones: that is a
    # checksum problem (a tampered or broken mirror), not a connection problem.
    if all(isinstance(e, ChecksumMismatchError) for e in failures):
        raise ChecksumMismatchError(message) from failures[-1]
    raise DownloadError(message) from failures[-1]
