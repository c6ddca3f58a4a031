"""onnxruntime-web's files for the in-browser engine, provisioned once into the cache.

The page must never load code from a CDN, and the Python package should not carry 60 MB of
WebAssembly, so the files come from npm on first run: ``npm pack onnxruntime-web@VERSION``
(through whatever registry the user's npm is configured for), the tarball checked against
the registry integrity pinned below, and only the files the page needs extracted into
``<cache>/web/onnxruntime-web-VERSION/``, each checked against its pinned SHA-256. Later
starts only re-hash them. An air-gapped install can point ``--ort-dir`` at a folder holding
the same files (copied from any machine's cache or from the package's ``dist/``).

Two builds are used: the plain WASM build (threads + SIMD) everywhere, and the WebGPU build,
which the page loads only where the browser offers a real GPU adapter.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import shutil
import tarfile
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ..config import Settings
from ..errors import ChecksumMismatchError, DownloadError
from ..models.download import npm_pack
from ..models.installed import sha256_file

__all__ = [
    "ORT_FILES",
    "ORT_WEB_VERSION",
    "WASM_BUNDLE",
    "WEBGPU_BUNDLE",
    "OrtAssets",
    "provision_ort",
]

log = logging.getLogger(__name__)

ORT_WEB_PACKAGE: Final = "onnxruntime-web"
#: The version measured in the design notes (§3): ~11 s per IS-Net pass, 2 WASM threads.
ORT_WEB_VERSION: Final = "1.30.0"
#: ``npm view onnxruntime-web@1.30.0 dist.integrity``.
ORT_WEB_INTEGRITY: Final = (
    "sha512-q0y+JrrtukXSzsBWEMccVfqX25LRmosXHF+CaRJmg8pZClzcV7svNc4rKY3jL02Vb7QmRMDs1SigqR4CXAfKYQ=="
)
WASM_BUNDLE: Final = "ort.wasm.min.mjs"
WEBGPU_BUNDLE: Final = "ort.webgpu.min.mjs"
#: The files the page loads (from ``package/dist/``) and their SHA-256.
ORT_FILES: Final[dict[str, str]] = {
    # WASM build: the API module, its Emscripten glue and the threaded SIMD binary.
    WASM_BUNDLE: "219e6a1fc8a9938268d18efca3c91d310bd2f4a59bbd13744df5b2b7fc6cee3b",
    "ort-wasm-simd-threaded.mjs": "e13f7f94fc51b4ca72b12faeb1ee95f4ace6dfbc8939bc718aabdc0a27c4299b",
    "ort-wasm-simd-threaded.wasm": "3398c10d07d229bd91b364548e130e0e51a8e5704b88c7c083ebbeb78842dee2",
    # WebGPU build (asyncify binary), fetched by the page only when a GPU adapter exists.
    WEBGPU_BUNDLE: "3dffff71811bc13a3a3d9591c57ca5ee5735b8f5f3eaf789510b02bb040ae3a0",
    "ort-wasm-simd-threaded.asyncify.mjs": "3d1c85995364bb643302fc6fd877a0c3ba5ae72401815e0f24828a53d9191e28",
    "ort-wasm-simd-threaded.asyncify.wasm": (
        "39f9f0894d478800487ed9f7dbe92618498db320cf55c8e3d89adff8dce658da"
    ),
}
_NPM_TIMEOUT: Final = 600.0


@dataclass(frozen=True)
class OrtAssets:
    """A folder holding every file of :data:`ORT_FILES`, verified."""

    folder: Path
    version: str = ORT_WEB_VERSION

    def path(self, name: str) -> Path | None:
        """The file for a served name, or ``None`` for anything not in the pinned list."""
        return self.folder / name if name in ORT_FILES else None


def _problems(folder: Path) -> list[str]:
    out = []
    for name, digest in ORT_FILES.items():
        path = folder / name
        if not path.is_file():
            out.append(f"{name} is missing")
        elif sha256_file(path) != digest:
            out.append(f"{name} does not match its pinned SHA-256")
    return out


def _check_integrity(tarball: Path) -> None:
    algo, _, expected = ORT_WEB_INTEGRITY.partition("-")
    h = hashlib.new(algo)
    with open(tarball, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    if base64.b64encode(h.digest()).decode() != expected:
        raise ChecksumMismatchError(
            f"the npm tarball of {ORT_WEB_PACKAGE}@{ORT_WEB_VERSION} does not match the pinned "
            "integrity; check the registry your npm uses"
        )


def _extract(tarball: Path, stage: Path) -> None:
    wanted = {f"package/dist/{name}": name for name in ORT_FILES}
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            for member in tar:
                leaf = wanted.get(member.name)
                if leaf is None or not member.isfile():
                    continue
                src = tar.extractfile(member)
                if src is None:
                    continue
                with src, open(stage / leaf, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DownloadError(f"the npm tarball of {ORT_WEB_PACKAGE} is unreadable: {exc}") from exc


def provision_ort(settings: Settings, ort_dir: Path | None = None) -> OrtAssets:
    """Verified onnxruntime-web files: from ``ort_dir``, the cache, or ``npm pack``.

    Raises :class:`~cleancut.errors.DownloadError` when they cannot be had (offline, no npm,
    registry unreachable) and :class:`~cleancut.errors.ChecksumMismatchError` when what came
    is not what is pinned. The server then still runs; the page falls back to server mode.
    """
    if ort_dir is not None:
        problems = _problems(ort_dir)
        if problems:
            raise DownloadError(f"--ort-dir {ort_dir}: {'; '.join(problems)}")
        return OrtAssets(ort_dir)
    target = settings.cache_dir / "web" / f"{ORT_WEB_PACKAGE}-{ORT_WEB_VERSION}"
    if target.is_dir() and not _problems(target):
        return OrtAssets(target)
    if settings.offline:
        raise DownloadError(
            f"{ORT_WEB_PACKAGE} {ORT_WEB_VERSION} is not in the cache ({target}) and offline mode is "
            "on; run `cleancut serve` once with network access, or pass --ort-dir"
        )
    if not settings.npm:
        raise DownloadError(
            f"{ORT_WEB_PACKAGE} is not in the cache and the npm client is turned off (CLEANCUT_NPM=0); "
            "pass --ort-dir"
        )
    log.info("fetching %s@%s with npm (once) into %s", ORT_WEB_PACKAGE, ORT_WEB_VERSION, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".ort-", dir=target.parent) as tmpdir:
        work = Path(tmpdir)
        tarball = npm_pack(settings.npm, f"{ORT_WEB_PACKAGE}@{ORT_WEB_VERSION}", work, _NPM_TIMEOUT)
        _check_integrity(tarball)
        stage = work / "stage"
        stage.mkdir()
        _extract(tarball, stage)
        problems = _problems(stage)
        if problems:
            raise ChecksumMismatchError(f"{ORT_WEB_PACKAGE}@{ORT_WEB_VERSION}: {'; '.join(problems)}")
        if target.exists():  # incomplete or corrupt leftover: move it aside, then replace
            stale = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.stale")
            target.rename(stale)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            stage.rename(target)
        except OSError:
            if _problems(target):  # another server won the race only if its copy is good
                raise
    return OrtAssets(target)
