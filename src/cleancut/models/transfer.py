"""One file over HTTP into a kept partial: the streaming, ``Range`` resume, retries and
checks behind :func:`cleancut.models.fetch.fetch_file` (see its module for the files kept
next to a target)."""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from http.client import HTTPMessage
from pathlib import Path
from typing import IO, Any

from .._version import __version__
from ..config import Settings
from ..errors import (
    CancelledError,
    ChecksumMismatchError,
    DownloadError,
    InvalidOptionError,
)
from ..io.atomic import replace_into, write_atomic
from ..progress import ProgressCallback

log = logging.getLogger("cleancut.models.fetch")

_BLOCK = 1 << 18
_USER_AGENT = f"cleancut/{__version__}"
#: Answers worth another try: the server or a proxy is busy or restarting.
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
#: What a failing network stream raises besides OSError (bad status line, short body).
_STREAM_ERRORS = (OSError, http.client.HTTPException)
#: Attempts that each made progress are not counted against ``download_retries``; this bounds
#: a server that sends a few bytes per connection.
_MAX_ATTEMPTS = 100
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)", re.IGNORECASE)
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


# --------------------------------------------------------------------------- small helpers


def hex(value: str | None, digits: int, what: str) -> str | None:
    if value is None:
        return None
    v = value.strip().lower()
    if not re.fullmatch(f"[0-9a-f]{{{digits}}}", v):
        raise InvalidOptionError(f"{what} must be {digits} hexadecimal digits, got {value!r}")
    return v


def fired(cancel: Callable[[], bool] | None) -> bool:
    return cancel is not None and bool(cancel())


def part_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.part")


def _part_meta_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.part.json")


def lock_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.lock")


def _record_path(target: Path) -> Path:
    # The name verify_installed reads for files without a pinned checksum.
    return target.with_name(f"{target.name}.json")


def size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


@dataclass(frozen=True)
class Record:
    """What a file fetched without a pinned SHA-256 turned out to be, on first use."""

    url: str
    sha256: str
    size: int
    md5: str | None
    fetched: str  # ISO 8601, UTC


def read_record(target: Path) -> Record | None:
    try:
        data = json.loads(_record_path(target).read_text())
        rec = Record(
            url=str(data["url"]),
            sha256=str(data["sha256"]).lower(),
            size=int(data["size"]),
            md5=None if data.get("md5") is None else str(data["md5"]).lower(),
            fetched=str(data.get("fetched", "")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return rec if re.fullmatch("[0-9a-f]{64}", rec.sha256) else None


def write_record(target: Path, rec: Record) -> None:
    try:
        write_atomic(_record_path(target), json.dumps(asdict(rec), indent=1).encode(), overwrite=True)
    except OSError as exc:
        raise DownloadError(f"cannot record the checksum of {target}: {exc}") from exc


class _Hashes:
    def __init__(self, md5: bool) -> None:
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False) if md5 else None

    def update(self, data: bytes) -> None:
        self.sha256.update(data)
        if self.md5 is not None:
            self.md5.update(data)


def hash_file(path: Path, md5: bool) -> _Hashes:
    h = _Hashes(md5)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h


class Reporter:
    """``progress(key, done, total)`` that never goes backwards (a restart from byte 0 stays
    silent until it passes what was shown) and only reports once a total is known."""

    def __init__(self, key: str, progress: ProgressCallback | None, total: int | None) -> None:
        self.key = key
        self.progress = progress
        self.total = total
        self.shown = -1

    def set_total(self, total: int) -> None:
        if self.total is None:
            self.total = total

    def report(self, done: int) -> None:
        if self.progress is None or self.total is None:
            return
        done = min(done, self.total)
        if self.shown < 0 and done > 0:
            self.progress(self.key, 0, self.total)  # every bar starts at 0, as the chunked download's
            self.shown = 0
        if done > self.shown:
            self.shown = done
            self.progress(self.key, done, self.total)

    def finish(self, size: int) -> None:
        self.set_total(size)
        self.report(size)


# --------------------------------------------------------------------------- HTTP


class _RetryError(Exception):
    """One attempt failed in a way worth another (resumed) attempt."""


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects to http(s) only, and to https only where no checksum is pinned."""

    def __init__(self, https_only: bool) -> None:
        self.https_only = https_only

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if scheme not in ("http", "https") or (self.https_only and scheme != "https"):
            fp.close()
            why = (
                "no checksum is pinned, so only https is followed; pass --model-sha256 HEX to allow it"
                if self.https_only and scheme == "http"
                else "only http(s) redirects are followed"
            )
            raise DownloadError(f"GET {req.full_url} redirected to {newurl} (HTTP {code}): {why}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _open(url: str, offset: int, validator: str | None, timeout: float, https_only: bool) -> Any:
    """The response to a GET of ``url`` from byte ``offset``; errors sorted into ``_RetryError``
    (worth another attempt), a 416 response (returned) and :class:`DownloadError`."""
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if offset > 0:
        headers["Range"] = f"bytes={offset}-"
        if validator is not None:
            headers["If-Range"] = validator  # the server sends all of it if the file changed
    req = urllib.request.Request(url, headers=headers)
    opener = urllib.request.build_opener(
        _Redirects(https_only), urllib.request.HTTPSHandler(context=ssl.create_default_context())
    )
    try:
        return opener.open(req, timeout=timeout)
    except DownloadError:  # a refused redirect (an OSError too: not one to retry)
        raise
    except urllib.error.HTTPError as exc:
        if exc.code == 416:
            return exc  # a response like any other, read (and closed) by the caller
        exc.close()
        if exc.code in _RETRY_STATUS:
            raise _RetryError(f"HTTP {exc.code} {exc.reason}") from exc
        raise DownloadError(f"GET {url} answered HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        reason = exc.reason
        if req.type == "file":  # a local mirror: a missing file does not appear by retrying
            raise DownloadError(f"cannot read {url}: {reason}") from exc
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise DownloadError(
                f"GET {url}: the server's TLS certificate is not trusted ({reason.verify_message}); "
                "if it is signed by a private CA, point SSL_CERT_FILE at that CA's certificate"
            ) from exc
        if isinstance(reason, TimeoutError):
            raise _RetryError(f"no answer within {timeout:g} s") from exc
        raise _RetryError(f"{reason}") from exc
    except TimeoutError as exc:
        raise _RetryError(f"no answer within {timeout:g} s") from exc
    except _STREAM_ERRORS as exc:
        raise _RetryError(f"{exc!r}") from exc
    except ValueError as exc:  # a malformed URL
        raise DownloadError(f"GET {url}: {exc}") from exc


def _content_length(resp: Any) -> int | None:
    value = resp.headers.get("Content-Length")
    try:
        n = int(value) if value is not None else None
    except ValueError:
        return None
    return n if n is not None and n >= 0 else None


def _validator(resp: Any) -> str | None:
    etag = resp.headers.get("ETag")
    if etag and not etag.startswith("W/"):  # If-Range takes strong validators only
        return str(etag)
    modified = resp.headers.get("Last-Modified")
    return str(modified) if modified else None


# --------------------------------------------------------------------------- the download


@dataclass(frozen=True)
class Pin:
    url: str
    sha256: str | None
    size: int | None
    md5: str | None

    @property
    def pinned(self) -> bool:
        return self.sha256 is not None or self.md5 is not None


class _Partial:
    """The kept ``.NAME.part`` and what it is, open for appending."""

    def __init__(self, target: Path, pin: Pin) -> None:
        self.path = part_path(target)
        self.meta = _part_meta_path(target)
        self.pin = pin
        self.validator: str | None = None
        self.hashes = _Hashes(pin.md5 is not None)
        self.offset = 0
        kept = self._usable()
        # Unbuffered: every received block is on disk at once, for a later run (or the next
        # process, after a kill) to resume from.
        try:
            self.file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise DownloadError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        if not kept:
            self.restart()
            return
        try:
            self.hashes = hash_file(self.path, pin.md5 is not None)
        except OSError:
            self.restart()
            return
        self.offset = size_of(self.path)
        if self.offset:
            log.info("resuming %s from byte %d", pin.url, self.offset)

    def _usable(self) -> bool:
        """Whether a kept partial may be resumed: same URL, not longer than the file, and
        either a validator to send as If-Range or a checksum that catches a mix of versions."""
        size = size_of(self.path)
        if size == 0:
            return False
        try:
            meta = json.loads(self.meta.read_text())
            url, validator = str(meta["url"]), meta.get("validator")
        except (OSError, ValueError, KeyError, TypeError):
            url, validator = None, None
        if url is not None and url != self.pin.url:
            return False
        if self.pin.size is not None and size > self.pin.size:
            log.info("the kept partial %s is longer than %d bytes; restarting", self.path, self.pin.size)
            return False
        self.validator = str(validator) if validator else None
        return self.validator is not None or self.pin.pinned

    def restart(self, validator: str | None = None) -> None:
        """Drop the bytes so far and start again from byte 0."""
        self.file.truncate(0)
        self.offset = 0
        self.hashes = _Hashes(self.pin.md5 is not None)
        self.validator = validator
        meta = {"url": self.pin.url, "validator": validator}
        try:
            write_atomic(self.meta, json.dumps(meta).encode(), overwrite=True)
        except OSError as exc:
            raise DownloadError(f"cannot write {self.meta}: {exc}") from exc

    def append(self, data: bytes) -> None:
        try:
            view = memoryview(data)
            while view:  # a raw file may take fewer bytes than given
                view = view[self.file.write(view) or 0 :]
        except OSError as exc:
            raise DownloadError(
                f"cannot write {self.path}: {exc.strerror or exc}; the {self.offset} bytes received "
                "so far are kept there and the next run resumes"
            ) from exc
        self.hashes.update(data)
        self.offset += len(data)

    def close(self) -> None:
        self.file.close()

    def discard(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)
        self.meta.unlink(missing_ok=True)


def _stream(
    part: _Partial, settings: Settings, reporter: Reporter, cancel: Callable[[], bool] | None
) -> None:
    """Fill ``part`` with the whole file, resuming with ``Range`` after each cut connection."""
    pin = part.pin
    url = pin.url
    https_only = not pin.pinned
    allowed = max(1, settings.download_retries)
    failures = attempts = 0
    complete = False
    if pin.size is not None:
        reporter.report(part.offset)
    while not complete:
        if pin.size is not None and part.offset == pin.size:
            return  # the kept partial is whole: verify it
        if fired(cancel):
            raise CancelledError(
                f"download of {url} cancelled; the {part.offset} bytes received are kept in "
                f"{part.path} and the next run resumes from there"
            )
        attempts += 1
        start = part.offset
        try:
            complete = _attempt(part, settings.download_timeout, https_only, reporter, cancel)
            continue
        except _RetryError as exc:
            reason = str(exc)
        if part.offset > start:
            failures = 0  # this attempt made progress: only stalls count against the retries
        elif part.offset == start:
            failures += 1  # (a restart from byte 0 does not count: it happens once per partial)
        if failures >= allowed or attempts >= _MAX_ATTEMPTS:
            kept = (
                f"; {part.offset} bytes are kept in {part.path} and the next run resumes"
                if part.offset
                else ""
            )
            raise DownloadError(f"GET {url} failed after {attempts} attempt(s): {reason}{kept}")
        log.warning("GET %s: %s; trying again from byte %d", url, reason, part.offset)
        time.sleep(min(0.2 * 2 ** max(0, failures - 1), 5.0))


def _attempt(
    part: _Partial, timeout: float, https_only: bool, reporter: Reporter, cancel: Callable[[], bool] | None
) -> bool:
    """One GET from ``part.offset``; True once the file is whole. Raises ``_RetryError`` after a
    cut connection, a stall or a busy server."""
    pin = part.pin
    url = pin.url
    resp = _open(url, part.offset, part.validator, timeout, https_only)
    with resp:
        status = getattr(resp, "status", None)
        if status == 416:
            # The range starts at or past the end: whole already if the server's size says so.
            m = _UNSATISFIED_RANGE.fullmatch((resp.headers.get("Content-Range") or "").strip())
            if m is not None and int(m[1]) == part.offset and part.offset > 0:
                reporter.set_total(part.offset)
                return True
            log.info("GET %s: range from byte %d not satisfiable; restarting", url, part.offset)
            part.restart()
            raise _RetryError("HTTP 416 Range Not Satisfiable (restarted from byte 0)")
        total: int | None
        if status == 206:
            m = _CONTENT_RANGE.fullmatch((resp.headers.get("Content-Range") or "").strip())
            if m is None or int(m[1]) != part.offset:
                part.restart()
                raise _RetryError(
                    f"HTTP 206 with an unusable Content-Range {resp.headers.get('Content-Range')!r}"
                )
            total = None if m[3] == "*" else int(m[3])
        else:  # 200 (or a file:// answer, which has no status): the whole file from byte 0
            if part.offset:
                log.info("GET %s: the server sent the whole file instead of a range; restarting", url)
            part.restart(_validator(resp))
            total = _content_length(resp)
        if total is not None and pin.size is not None and total != pin.size:
            raise ChecksumMismatchError(
                f"{url} is {total} bytes, expected {pin.size}: the server holds another file"
            )
        if total is not None:
            reporter.set_total(total)
        reporter.report(part.offset)
        while True:
            if fired(cancel):
                raise CancelledError(
                    f"download of {url} cancelled; the {part.offset} bytes received are kept in "
                    f"{part.path} and the next run resumes from there"
                )
            try:
                # read1: what has arrived (up to a block), so a cut or a stall loses nothing
                block = resp.read1(_BLOCK)
            except TimeoutError as exc:
                raise _RetryError(
                    f"the server sent nothing for {timeout:g} s after byte {part.offset}"
                ) from exc
            except _STREAM_ERRORS as exc:
                raise _RetryError(f"connection cut after byte {part.offset}: {exc!r}") from exc
            if not block:
                break
            if pin.size is not None and part.offset + len(block) > pin.size:
                raise ChecksumMismatchError(f"{url} sent more than the {pin.size} bytes expected")
            part.append(block)
            reporter.report(part.offset)
    if total is not None and part.offset < total:
        raise _RetryError(f"connection closed after byte {part.offset} of {total}")
    if pin.size is not None and part.offset < pin.size:
        raise _RetryError(f"connection closed after byte {part.offset} of {pin.size}")
    return True


def _check(part: _Partial) -> str:
    """The partial's SHA-256 once its size, SHA-256 and MD5 match what is expected."""
    pin = part.pin
    sha = part.hashes.sha256.hexdigest()
    if pin.size is not None and part.offset != pin.size:
        raise ChecksumMismatchError(f"{pin.url} delivered {part.offset} bytes, expected {pin.size}")
    if pin.sha256 is not None and sha != pin.sha256:
        raise ChecksumMismatchError(
            f"{pin.url} delivered a file with SHA-256 {sha}, expected {pin.sha256}; nothing was installed"
        )
    if pin.md5 is not None and part.hashes.md5 is not None:
        md5 = part.hashes.md5.hexdigest()
        if md5 != pin.md5:
            raise ChecksumMismatchError(
                f"{pin.url} delivered a file with MD5 {md5}, expected {pin.md5}; nothing was installed"
            )
    return sha


def download(
    target: Path, pin: Pin, settings: Settings, reporter: Reporter, cancel: Callable[[], bool] | None
) -> None:
    fresh = False  # whether this round started from byte 0
    while True:
        part = _Partial(target, pin)
        resumed = part.offset > 0
        try:
            _stream(part, settings, reporter, cancel)
            sha = _check(part)
        except ChecksumMismatchError as exc:
            part.discard()
            if resumed and not fresh:  # the kept bytes may be an older version: once more from 0
                log.warning(
                    "%s; the resumed partial was dropped, fetching %s again from byte 0", exc, pin.url
                )
                fresh = True
                continue
            raise
        except BaseException:
            part.close()  # kept for the next run to resume
            raise
        part.close()
        break
    if pin.sha256 is None:  # recorded before the rename: an installed unpinned file always has one
        md5 = part.hashes.md5.hexdigest() if part.hashes.md5 is not None else None
        fetched = datetime.now(UTC).isoformat(timespec="seconds")
        write_record(target, Record(pin.url, sha, part.offset, md5, fetched))
    try:
        replace_into(part.path, target)
    except OSError as exc:
        raise DownloadError(f"cannot move the verified {part.path} to {target}: {exc}") from exc
    part.meta.unlink(missing_ok=True)
    reporter.finish(part.offset)
