"""Single-file model downloads: streamed into the cache, resumed with HTTP ``Range`` after a
cut connection, verified before an atomic rename, and one download per machine.

:func:`fetch_file` makes sure a target path holds the file at a URL (a published single-file
model); :func:`fetch_url_model` does so for a user's own model given by URL, cached under
``<cache>/models/url/<16 hex of sha256(url)>/<basename>``.

Files next to a target ``NAME``:

- ``.NAME.part``: the bytes received so far, kept across runs so that a later call resumes;
  ``.NAME.part.json`` says where they came from (URL, the server's ETag or Last-Modified,
  sent back as ``If-Range`` so that a file changed on the server restarts from byte 0);
- ``.NAME.lock``: the inter-process lock (:mod:`filelock`: an OS lock, which the kernel drops
  when its holder dies, so a crashed download never blocks the next);
- ``NAME.json``: the record of a file fetched without a pinned SHA-256 (URL, SHA-256, size,
  MD5, time); later uses verify against it;
- ``.NAME.verified``: :func:`cleancut.models.installed.verify_file`'s stamp.

TLS uses the system's trust store; OpenSSL's ``SSL_CERT_FILE``/``SSL_CERT_DIR`` point it at
another one (a private CA). Verification is never turned off.
"""

from __future__ import annotations

import hashlib
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout

from ..config import Settings
from ..errors import (
    CancelledError,
    ChecksumMismatchError,
    DownloadError,
    InvalidOptionError,
    ModelNotFoundError,
)
from ..progress import ProgressCallback
from .installed import verify_file
from .transfer import (
    SAFE_NAME,
    Pin,
    Record,
    Reporter,
    download,
    fired,
    hash_file,
    hex,
    lock_path,
    part_path,
    read_record,
    size_of,
    write_record,
)

__all__ = ["fetch_file", "fetch_url_model", "url_model_path"]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- presence and lock


def _present(target: Path, pin: Pin) -> bool:
    """Whether ``target`` holds the expected file (hashing only where no stamp spares it)."""
    if not target.is_file():
        return False
    if pin.sha256 is not None:
        return verify_file(target, pin.size, pin.sha256)
    rec = read_record(target)
    if rec is not None:
        if pin.md5 is not None and rec.md5 != pin.md5:
            return False
        if pin.size is not None and rec.size != pin.size:
            return False
        if pin.md5 is None and rec.url != pin.url:
            return False  # no checksum pinned: only what this URL delivered counts
        return verify_file(target, rec.size, rec.sha256)
    if pin.md5 is None:
        return False  # nothing to check an unrecorded file against
    # A file put in place by hand (offline installs): adopted if its MD5 and size match.
    try:
        hashes = hash_file(target, md5=True)
        size = target.stat().st_size
    except OSError:
        return False
    assert hashes.md5 is not None
    if hashes.md5.hexdigest() != pin.md5 or (pin.size is not None and size != pin.size):
        return False
    fetched = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        write_record(target, Record(pin.url, hashes.sha256.hexdigest(), size, pin.md5, fetched))
    except DownloadError:
        pass  # a read-only cache: verified now, hashed again next time
    return True


@contextmanager
def _machine_lock(
    target: Path, cancel: Callable[[], bool] | None, waiting: Callable[[], None]
) -> Iterator[None]:
    """Hold ``.NAME.lock`` (one download per machine); ``waiting()`` runs while another
    process holds it. The OS lock dies with its holder, so a killed download never blocks."""
    lock = FileLock(str(lock_path(target)))
    announced = False
    while True:
        if fired(cancel):
            raise CancelledError(f"cancelled while waiting for another process to download {target.name}")
        try:
            lock.acquire(timeout=0.25)
            break
        except Timeout:
            if not announced:
                log.info("another process is downloading %s; waiting for it", target)
                announced = True
            waiting()
        except OSError as exc:
            raise DownloadError(
                f"cannot lock {lock_path(target)}: {exc}; set CLEANCUT_CACHE_DIR to a writable folder"
            ) from exc
    try:
        yield
    finally:
        lock.release()


def _offline_error(target: Path, pin: Pin, exists: bool) -> ModelNotFoundError:
    state = "in the cache but does not match its checksum" if exists else "not in the cache"
    if pin.sha256 is not None:
        check = f"its SHA-256 must be {pin.sha256}"
    elif pin.md5 is not None:
        check = f"its MD5 must be {pin.md5}"
    else:
        check = "no checksum is pinned, so it must be fetched once with network access"
    return ModelNotFoundError(
        f"{target.name} is {state} ({target}) and offline mode is on. Fetch it once with network "
        f"access (unset CLEANCUT_OFFLINE), or put the file from {pin.url} at {target} ({check})."
    )


# --------------------------------------------------------------------------- public


def fetch_file(
    url: str,
    target: Path,
    *,
    sha256: str | None,
    size: int | None = None,
    md5: str | None = None,
    settings: Settings,
    progress_key: str,
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
    force: bool = False,
) -> Path:
    """Make sure ``target`` holds the file at ``url``, verified; return ``target``.

    A target that verifies (size and SHA-256, stamped; or against its record where no SHA-256
    is pinned) is returned at once, offline too. Otherwise the file is streamed into
    ``.NAME.part`` (resumed with ``Range`` after a cut connection, within this call and by a
    later one), checked for size, SHA-256 and the publisher's MD5, and renamed into place;
    under an inter-process lock, so that processes starting together download it once.
    Without ``sha256`` and ``md5`` only https is allowed (redirects included) and the file's
    SHA-256 is recorded in ``NAME.json``. ``force`` fetches again even if the target verifies.

    Raises :class:`ModelNotFoundError` offline when the file is missing,
    :class:`ChecksumMismatchError` for wrong bytes (nothing installed, the partial removed),
    :class:`DownloadError` for network and HTTP failures (the partial kept),
    :class:`CancelledError` when ``cancel()`` turns true (the partial kept).
    """
    target = Path(target)
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https", "file"):
        raise DownloadError(f"model URL {url!r} must start with http://, https:// or file://")
    if size is not None and size < 0:
        raise InvalidOptionError(f"size must not be negative, got {size}")
    pin = Pin(url, hex(sha256, 64, "SHA-256"), size, hex(md5, 32, "MD5"))
    if not pin.pinned and scheme == "http":
        raise InvalidOptionError(
            f"{url} is plain http and no checksum is pinned, so its bytes could be altered on the "
            "way: pass --model-sha256 HEX (model_sha256=...) or use an https:// URL"
        )
    if not force and _present(target, pin):
        return target
    if settings.offline:
        raise _offline_error(target, pin, target.exists())
    if fired(cancel):
        raise CancelledError(f"download of {url} cancelled before it started")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(
            f"cannot create {target.parent}: {exc}; set CLEANCUT_CACHE_DIR to a writable folder"
        ) from exc
    reporter = Reporter(progress_key, progress, size)
    part = part_path(target)
    with _machine_lock(target, cancel, lambda: reporter.report(size_of(part))):
        # The holder we waited for may have installed it meanwhile.
        if not force and _present(target, pin):
            reporter.finish(target.stat().st_size)
            return target
        download(target, pin, settings, reporter, cancel)
    return target


def url_model_path(url: str, settings: Settings) -> Path:
    """Where :func:`fetch_url_model` keeps the model at ``url``:
    ``<cache>/models/url/<16 hex of sha256(url)>/<basename>``."""
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    leaf = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
    name = SAFE_NAME.sub("_", leaf).lstrip(".")[:120] or "model.onnx"
    return settings.models_dir / "url" / digest / name


def fetch_url_model(
    url: str,
    *,
    sha256: str | None,
    settings: Settings,
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
    force: bool = False,
) -> Path:
    """A user's own model given by URL (``-m https://host/x.onnx [--model-sha256 HEX]``):
    cached under ``<cache>/models/url/<16 hex of sha256(url)>/<basename>``, returns the path.

    With ``sha256`` the file is verified against it (a different value than last time fetches
    it again). Without one only https is accepted, and the SHA-256 of the first download is
    logged and recorded: later uses verify against the record, so a file changed on the
    server is refused, not silently taken (``force`` fetches it again and records the new
    one). Offline the model must already be cached.
    """
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        raise InvalidOptionError(f"{url} is a local file: pass its path (-m /path/to/model.onnx) instead")
    if scheme not in ("http", "https") or not parts.netloc:
        raise InvalidOptionError(f"model URL {url!r} must be an http:// or https:// URL")
    pin = hex(sha256, 64, "--model-sha256")
    target = url_model_path(url, settings)
    key = f"fetch:/models/url/{target.name}"
    if pin is not None:
        path = fetch_file(
            url,
            target,
            sha256=pin,
            settings=settings,
            progress_key=key,
            progress=progress,
            cancel=cancel,
            force=force,
        )
        rec = read_record(target)
        if rec is None or rec.sha256 != pin or rec.url != url:
            fetched = datetime.now(UTC).isoformat(timespec="seconds")
            write_record(target, Record(url, pin, path.stat().st_size, None, fetched))
        return path
    if scheme != "https":
        raise InvalidOptionError(
            f"{url} is plain http and no --model-sha256 is given, so its bytes could be altered on "
            "the way: pass --model-sha256 HEX (model_sha256=...) or use an https:// URL"
        )
    before = read_record(target)
    if before is not None and before.url == url and not force:
        try:
            return fetch_file(
                url,
                target,
                sha256=before.sha256,
                size=before.size,
                settings=settings,
                progress_key=key,
                progress=progress,
                cancel=cancel,
            )
        except ChecksumMismatchError as exc:
            raise ChecksumMismatchError(
                f"{exc}. The file at {url} is not the one recorded on first use ({before.fetched}); "
                "if the new one is trusted, pass its --model-sha256 or fetch it again with force"
            ) from exc
    # No record yet (or force): fetched and recorded, once per machine even if several start.
    path = fetch_file(
        url,
        target,
        sha256=None,
        settings=settings,
        progress_key=key,
        progress=progress,
        cancel=cancel,
        force=force,
    )
    after = read_record(target)
    if after is not None and after != before:
        if before is not None and before.url == url and before.sha256 != after.sha256:
            log.warning("the file at %s changed: SHA-256 %s before, %s now", url, before.sha256, after.sha256)
        log.warning(
            "recorded SHA-256 %s of %s; pin it with --model-sha256 %s (model_sha256=...)",
            after.sha256,
            url,
            after.sha256,
        )
    return path
