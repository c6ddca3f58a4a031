"""Where the Ray engine reads and writes: plain paths, ``file://`` and fsspec URIs.

Plain paths go through the local batch's own file code; every URI (``file://`` included)
goes through fsspec, imported only when one is used. ``memory://`` is refused (each Ray
worker has its own), and ``http(s)://`` inputs are fetched only by :mod:`cleancut.urls`'
guarded fetcher, never by fsspec's HTTP filesystem, which would fetch any address, private
ones included. Writes never expose a partial file: a single put on object stores, a hidden
temp name and a rename elsewhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, Literal

from ..errors import InvalidOptionError, OutputExistsError
from ..io.atomic import temp_name_for

__all__ = [
    "HTTP",
    "OBJECT_STORES",
    "check_remote",
    "guarded_fetcher",
    "is_local",
    "is_object_store",
    "join",
    "on_disk",
    "put",
    "scheme",
    "url_to_fs",
]

#: Object stores: a put is atomic, so no temp name is needed there.
OBJECT_STORES: Final = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "r2"})
HTTP: Final = frozenset({"http", "https"})


# A missing extra is an InvalidOptionError: the option asked for cannot be used here, and
# the message says how to make it usable.
def _import_fsspec() -> Any:
    try:
        import fsspec
    except ImportError:
        raise InvalidOptionError(
            "reading and writing URIs needs fsspec; install it with: pip install 'cleancut[ray]'"
        ) from None
    return fsspec


def scheme(uri: str) -> str | None:
    """The lower-case scheme of ``uri``, or ``None`` for a plain path."""
    head, sep, _ = uri.partition("://")
    # "C:\\photos" has no "://"; a scheme is letters, digits, + - . (RFC 3986)
    if sep and head and head.replace("+", "").replace("-", "").replace(".", "").isalnum():
        return head.lower()
    return None


def is_local(uri: str) -> bool:
    """A plain path: handled with the local batch's own file code. Every URI, ``file://``
    included, goes through fsspec."""
    return scheme(uri) is None


def guarded_fetcher() -> Callable[[str], bytes] | None:
    """:func:`cleancut.urls.fetch_url` (public addresses only, size and time caps; its policy
    comes from each worker's ``CLEANCUT_URL_*`` environment), or ``None`` in an install
    without it, where http(s) inputs are refused."""
    try:
        from ..urls import fetch_url
    except ImportError:
        return None
    return fetch_url


def check_remote(uri: str, role: Literal["input", "output"]) -> None:
    """Refuse a location that Ray workers cannot use safely (see the module's notes)."""
    found = scheme(uri)
    if found == "memory":
        raise InvalidOptionError(
            f"{uri}: memory:// lives inside one process and Ray workers are other processes; "
            "use a local folder, file://, or an object store such as s3://"
        )
    if found in HTTP:
        if role == "output":
            raise InvalidOptionError(f"-o {uri}: cannot write to an http(s) address; use a folder or s3://…")
        if guarded_fetcher() is None:
            raise InvalidOptionError(
                f"{uri}: http(s) inputs are not supported by the Ray engine in this version "
                "(fetching arbitrary addresses from cluster workers is unsafe); download the "
                "files to a folder or an object store first"
            )


def url_to_fs(uri: str) -> tuple[Any, str]:
    """The fsspec filesystem of ``uri`` and the path on it."""
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


def join(root: str, rel: str) -> str:
    return root.rstrip("/") + "/" + rel


def on_disk(uri: str) -> Path | None:
    """The local file behind a plain path or a ``file://`` URI (to compare inputs with outputs)."""
    if is_local(uri):
        return Path(uri)
    if scheme(uri) == "file":
        return Path(url_to_fs(uri)[1])
    return None


def is_object_store(fs: Any) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    return any(p in OBJECT_STORES for p in protocols)


def put(uri: str, data: bytes, *, overwrite: bool) -> None:
    """Write to a non-local filesystem without ever exposing a partial object."""
    fs, path = url_to_fs(uri)
    if not overwrite and fs.exists(path):
        raise OutputExistsError(f"{uri} exists (use --overwrite to replace it)")
    if is_object_store(fs):
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
