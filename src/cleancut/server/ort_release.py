"""The pinned onnxruntime-web release: which files the page uses, and how to fetch and verify them.

Standard library only, with no imports from the rest of cleancut: the wheel's build hook
(``hatch_build.py``) loads this file by path to bundle into the wheel exactly the files the
server would otherwise fetch at run time (:mod:`cleancut.server.ort_assets`), checked
against the same pins. Failures are :class:`ReleaseError` (the source failed) and
:class:`IntegrityError` (bytes that are not the pinned ones); callers turn them into their
own errors.

The registry tarball URL is ``<registry>/<name>/-/<name>-<version>.tgz``; the registry is
the caller's choice (``CLEANCUT_NPM_REGISTRY``, else ``npm config get registry``, else
:data:`DEFAULT_REGISTRY`), so no host name is fixed here.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import shutil
import subprocess
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Final

__all__ = [
    "DEFAULT_REGISTRY",
    "FILES",
    "INTEGRITY",
    "PACKAGE",
    "TARBALL_SIZE",
    "VERSION",
    "IntegrityError",
    "ReleaseError",
    "check_tarball",
    "extract_files",
    "fetch_tarball",
    "file_problems",
    "registry_from_npm",
    "tarball_url",
]

PACKAGE: Final = "onnxruntime-web"
#: The version measured in the design notes (§3): ~11 s per IS-Net pass, 2 WASM threads.
VERSION: Final = "1.30.0"
#: ``npm view onnxruntime-web@1.30.0 dist.integrity``.
INTEGRITY: Final = (
    "sha512-q0y+JrrtukXSzsBWEMccVfqX25LRmosXHF+CaRJmg8pZClzcV7svNc4rKY3jL02Vb7QmRMDs1SigqR4CXAfKYQ=="
)
#: Bytes of that tarball: a download is cut off past it, so a bad mirror cannot fill the disk.
TARBALL_SIZE: Final = 33_106_585
#: Used only when neither ``CLEANCUT_NPM_REGISTRY`` nor an npm client names a registry.
DEFAULT_REGISTRY: Final = "https://registry.npmjs.org/"
#: The files the page loads (from the tarball's ``package/dist/``) and their SHA-256.
FILES: Final[dict[str, str]] = {
    # WASM build: the API module, its Emscripten glue and the threaded SIMD binary.
    "ort.wasm.min.mjs": "219e6a1fc8a9938268d18efca3c91d310bd2f4a59bbd13744df5b2b7fc6cee3b",
    "ort-wasm-simd-threaded.mjs": "e13f7f94fc51b4ca72b12faeb1ee95f4ace6dfbc8939bc718aabdc0a27c4299b",
    "ort-wasm-simd-threaded.wasm": "3398c10d07d229bd91b364548e130e0e51a8e5704b88c7c083ebbeb78842dee2",
    # WebGPU build (asyncify binary), fetched by the page only when a GPU adapter exists.
    "ort.webgpu.min.mjs": "3dffff71811bc13a3a3d9591c57ca5ee5735b8f5f3eaf789510b02bb040ae3a0",
    "ort-wasm-simd-threaded.asyncify.mjs": "3d1c85995364bb643302fc6fd877a0c3ba5ae72401815e0f24828a53d9191e28",
    "ort-wasm-simd-threaded.asyncify.wasm": (
        "39f9f0894d478800487ed9f7dbe92618498db320cf55c8e3d89adff8dce658da"
    ),
}
_BLOCK: Final = 1 << 20


class ReleaseError(Exception):
    """The release could not be had from a source (unreachable, HTTP error, unreadable)."""


class IntegrityError(ReleaseError):
    """A source served bytes other than the pinned ones."""


def tarball_url(registry: str) -> str:
    """The public tarball URL of the pinned release on ``registry`` (http or https)."""
    base = registry.strip()
    scheme = urllib.parse.urlsplit(base).scheme.lower()
    if scheme not in ("http", "https"):
        raise ReleaseError(f"npm registry {registry!r} must be an http:// or https:// URL")
    return f"{base.rstrip('/')}/{PACKAGE}/-/{PACKAGE}-{VERSION}.tgz"


def registry_from_npm(npm: str | None, timeout: float = 30.0) -> str | None:
    """The registry the user's npm client is configured for, or ``None`` without a usable one."""
    exe = shutil.which(npm) if npm else None
    if exe is None:
        return None
    try:
        proc = subprocess.run(
            [exe, "config", "get", "registry"],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    value = proc.stdout.strip()
    return value if proc.returncode == 0 and value.startswith(("http://", "https://")) else None


def check_tarball(data: bytes) -> None:
    """Raise :class:`IntegrityError` unless ``data`` is the pinned tarball."""
    algo, _, expected = INTEGRITY.partition("-")
    if len(data) != TARBALL_SIZE or base64.b64encode(hashlib.new(algo, data).digest()).decode() != expected:
        raise IntegrityError(
            f"the tarball of {PACKAGE}@{VERSION} ({len(data)} bytes) does not match the pinned "
            f"integrity ({TARBALL_SIZE} bytes, {INTEGRITY[:20]}…); the registry served other bytes"
        )


def fetch_tarball(url: str, *, timeout: float, user_agent: str) -> bytes:
    """GET the tarball at ``url`` and return it, verified with :func:`check_tarball`."""
    req = urllib.request.Request(url, headers={"User-Agent": user_agent})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            buf = io.BytesIO()
            while block := resp.read(_BLOCK):
                buf.write(block)
                if buf.tell() > TARBALL_SIZE:
                    raise IntegrityError(f"GET {url} sent more than the pinned {TARBALL_SIZE} bytes")
    except urllib.error.HTTPError as exc:
        raise ReleaseError(f"GET {url} answered HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise ReleaseError(f"GET {url} failed: {exc.reason}") from exc
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise ReleaseError(f"GET {url} failed: {exc!r}") from exc
    data = buf.getvalue()
    check_tarball(data)
    return data


def extract_files(data: bytes) -> dict[str, bytes]:
    """The page's files out of the tarball ``data``, each checked against :data:`FILES`."""
    wanted = {f"package/dist/{name}": name for name in FILES}
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar:
                leaf = wanted.get(member.name)
                if leaf is None or not member.isfile():
                    continue
                src = tar.extractfile(member)
                if src is not None:
                    with src:
                        found[leaf] = src.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ReleaseError(f"the tarball of {PACKAGE}@{VERSION} is unreadable: {exc}") from exc
    problems = []
    for name, digest in FILES.items():
        if name not in found:
            problems.append(f"{name} is missing")
        elif hashlib.sha256(found[name]).hexdigest() != digest:
            problems.append(f"{name} does not match its pinned SHA-256")
    if problems:
        raise IntegrityError(f"{PACKAGE}@{VERSION}: {'; '.join(problems)}")
    return found


def file_problems(folder: Path) -> list[str]:
    """What keeps ``folder`` from holding every file of :data:`FILES` as pinned (empty: none)."""
    out = []
    for name, digest in FILES.items():
        path = folder / name
        try:
            with open(path, "rb") as f:
                ok = hashlib.file_digest(f, "sha256").hexdigest() == digest
        except FileNotFoundError:
            out.append(f"{name} is missing")
            continue
        except OSError as exc:
            out.append(f"{name} is unreadable ({exc.strerror or exc})")
            continue
        if not ok:
            out.append(f"{name} does not match its pinned SHA-256")
    return out
