"""The JSON Lines manifest of a Ray run: one row per input, appended as rows finish.

It lives in the output folder, so a killed run keeps the record of what finished and a
rerun knows what it may skip. Local folders get one file appended one ``os.write`` per row;
object stores, which cannot append, get a folder of part objects, one per flush. Reading
concatenates the parts and ignores, with a warning, a damaged line: one cut short by a
crash, bytes that are not UTF-8, JSON that is not a row.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from ..errors import OutputWriteError
from .jobs import RayResult
from .uris import is_local, is_object_store, join, url_to_fs

__all__ = ["MANIFEST_NAME", "MANIFEST_PARTS", "Manifest", "manifest_location", "parse_lines", "read_manifest"]

log = logging.getLogger(__name__)

#: The manifest in a local output folder: one JSON object per line, appended as rows finish.
MANIFEST_NAME: Final = ".cleancut-manifest.jsonl"
#: On object stores (which cannot append) the manifest is a folder of parts, one object per
#: flush; reading concatenates them.
MANIFEST_PARTS: Final = ".cleancut-manifest"


#: The statuses a row may have.
_STATUSES: Final = frozenset({"written", "skipped", "failed"})


def _valid_row(row: Any) -> bool:
    """Whether a parsed line is a row this module wrote: an object whose ``input`` and
    ``output`` are strings and whose ``status`` is one of the three, with the optional
    fields of the right types. Anything else (``[1, 2]``, ``"str"``, ``{"input": 5}``) is
    damage, not a row a rerun may trust."""
    if not isinstance(row, dict):
        return False
    if not (isinstance(row.get("input"), str) and isinstance(row.get("output"), str)):
        return False
    if not (isinstance(row.get("status"), str) and row["status"] in _STATUSES):
        return False
    for key in ("error", "worker", "run", "finished_at"):
        if row.get(key) is not None and not isinstance(row[key], str):
            return False
    seconds = row.get("seconds")
    if seconds is not None and not _is_number(seconds):
        return False
    timings = row.get("timings", {})
    return isinstance(timings, dict) and all(_is_number(v) for v in timings.values())


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_lines(text: str | bytes) -> Iterator[dict[str, Any]]:
    """The rows of a manifest's text, skipping (with a warning) every damaged line: one cut
    short by a crash, bytes that are not UTF-8, JSON that is not a row."""
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    # split on b"\n" only: a file name may hold U+2028 or U+0085, which str.splitlines
    # would take for line ends (json.dumps with ensure_ascii=False writes them raw)
    for raw in data.split(b"\n"):
        raw = raw.strip()
        if not raw:
            continue
        try:
            row = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            # a line cut short by a crash mid-append, or garbage: everything else is intact
            row = None
        if not _valid_row(row):
            log.warning("ignoring a damaged manifest line: %.80s", raw.decode("utf-8", "backslashreplace"))
            continue
        yield row


def manifest_location(output: str | os.PathLike[str]) -> str:
    """Where the manifest of ``output`` lives: a file in a local folder, a folder of parts
    on an object store."""
    out = os.fspath(output)
    if is_local(out):
        return str(Path(out) / MANIFEST_NAME)
    return join(out, MANIFEST_PARTS) + "/"


def read_manifest(output: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every row of the manifest in ``output`` (a folder or a URI), oldest first."""
    out = os.fspath(output)
    if is_local(out):
        root = Path(out)
        rows: list[dict[str, Any]] = []
        try:
            rows.extend(parse_lines((root / MANIFEST_NAME).read_bytes()))
        except FileNotFoundError:
            pass
        parts = sorted((root / MANIFEST_PARTS).glob("*.jsonl")) if (root / MANIFEST_PARTS).is_dir() else []
        for part in parts:
            rows.extend(parse_lines(part.read_bytes()))
        return rows
    fs, root_path = url_to_fs(out)
    folder = join(root_path, MANIFEST_PARTS)
    try:
        names = sorted(str(p) for p in fs.find(folder) if str(p).endswith(".jsonl"))
    except FileNotFoundError:
        return []
    rows = []
    for name in names:
        rows.extend(parse_lines(fs.cat_file(name)))
    return rows


class Manifest:
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
        self.local = is_local(output)
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._buffer: list[str] = []
        self._seq = 0
        self._last_sync = time.monotonic()
        self._fd: int | None = None
        if self.local:
            root = Path(output)
            self.path = str(root / MANIFEST_NAME)
            try:
                root.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            except OSError as exc:  # a read-only manifest in a writable folder, say
                raise OutputWriteError(
                    f"cannot write the manifest {self.path}: {exc.strerror or exc}; "
                    "choose another -o folder or fix its permissions"
                ) from exc
            size = os.fstat(self._fd).st_size
            if size and os.pread(self._fd, 1, size - 1) != b"\n":
                # a line cut short (a full disk, a crash mid-write): end it, so this run's
                # first row starts on a line of its own
                os.write(self._fd, b"\n")
        else:
            self._fs, root_path = url_to_fs(output)
            self.path = join(root_path, MANIFEST_PARTS)

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
        name = join(self.path, f"{self.run}-{self._seq:06d}.jsonl")
        if not is_object_store(self._fs):  # object stores have no folders to make
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
