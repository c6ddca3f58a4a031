"""onnxruntime-web's files for the in-browser engine: bundled, cached, or fetched once.

The page never loads code from a CDN. The files (pinned in :mod:`.ort_release`) are looked
for, in order:

1. ``--ort-dir``, when given (an air-gapped host's copy): used as it is, or an error;
2. the folder the wheel carries, ``cleancut/server/ort_web/``, filled at wheel-build time by
   ``hatch_build.py`` (a source checkout has none);
3. the cache, ``<cache>/web/onnxruntime-web-VERSION/``, filled by an earlier start;
4. an http(s) download of the registry tarball (``CLEANCUT_NPM_REGISTRY``, else the registry
   ``npm config get registry`` names, else the public one), checked against the pinned
   integrity, its files extracted into the cache;
5. ``npm pack`` (the npm client of :func:`cleancut.models.download.npm_pack`), the same
   checks, into the cache.

Every folder is checked file by file against the pinned SHA-256 before it is used; a
bundled or cached folder that fails the check is passed over (and a cached one replaced).

Two builds are used: the plain WASM build (threads + SIMD) everywhere, and the WebGPU build,
which the page loads only where the browser offers a real GPU adapter.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from .._version import __version__
from ..config import Settings
from ..errors import ChecksumMismatchError, DownloadError
from ..io.atomic import atomic_writer, sweep_stale_temps
from ..models.download import npm_pack
from . import ort_release
from .ort_release import FILES, IntegrityError, ReleaseError

__all__ = [
    "BUNDLED_DIR",
    "ORT_FILES",
    "ORT_WEB_VERSION",
    "WASM_BUNDLE",
    "WEBGPU_BUNDLE",
    "OrtAssets",
    "provision_ort",
]

log = logging.getLogger(__name__)

ORT_WEB_PACKAGE: Final = ort_release.PACKAGE
ORT_WEB_VERSION: Final = ort_release.VERSION
WASM_BUNDLE: Final = "ort.wasm.min.mjs"
WEBGPU_BUNDLE: Final = "ort.webgpu.min.mjs"
#: The files the page loads and their SHA-256 (see :data:`.ort_release.FILES`).
ORT_FILES: Final[dict[str, str]] = FILES
#: Where the wheel carries the files (``hatch_build.py`` puts them there; never in git).
BUNDLED_DIR: Final = Path(__file__).resolve().parent / "ort_web"
_NPM_TIMEOUT: Final = 600.0


@dataclass(frozen=True)
class OrtAssets:
    """A folder holding every file of :data:`ORT_FILES`, verified, and where it came from."""

    folder: Path
    version: str = ORT_WEB_VERSION
    source: str = "cache"

    def path(self, name: str) -> Path | None:
        """The file for a served name, or ``None`` for anything not in the pinned list."""
        return self.folder / name if name in ORT_FILES else None


def _found(assets: OrtAssets) -> OrtAssets:
    log.info("%s %s for the page: %s (%s)", ORT_WEB_PACKAGE, assets.version, assets.folder, assets.source)
    return assets


def _install(files: dict[str, bytes], target: Path) -> None:
    """Write verified files into the cache folder, each one atomically."""
    target.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(target)  # temp files of a start that was killed mid-write
    for name, data in files.items():
        with atomic_writer(target / name) as out:
            out.write(data)


def _from_registry(settings: Settings) -> dict[str, bytes]:
    registry = (
        settings.npm_registry or ort_release.registry_from_npm(settings.npm) or ort_release.DEFAULT_REGISTRY
    )
    url = ort_release.tarball_url(registry)
    log.info("fetching %s@%s from %s (once)", ORT_WEB_PACKAGE, ORT_WEB_VERSION, url)
    data = ort_release.fetch_tarball(
        url, timeout=max(60.0, settings.download_timeout), user_agent=f"cleancut/{__version__}"
    )
    return ort_release.extract_files(data)


def _from_npm(npm: str, parent: Path) -> dict[str, bytes]:
    log.info("fetching %s@%s with npm pack (once)", ORT_WEB_PACKAGE, ORT_WEB_VERSION)
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".npm-", dir=parent) as tmpdir:
        tarball = npm_pack(npm, f"{ORT_WEB_PACKAGE}@{ORT_WEB_VERSION}", Path(tmpdir), _NPM_TIMEOUT)
        try:
            data = tarball.read_bytes()
        except OSError as exc:
            raise ReleaseError(f"cannot read what npm pack wrote ({tarball}): {exc}") from exc
    ort_release.check_tarball(data)
    return ort_release.extract_files(data)


def provision_ort(
    settings: Settings, ort_dir: Path | None = None, *, bundled: Path | None = None
) -> OrtAssets:
    """Verified onnxruntime-web files, from the first source that has them (module docstring).

    ``bundled`` overrides :data:`BUNDLED_DIR` (tests). Raises
    :class:`~cleancut.errors.DownloadError` when they cannot be had (offline, every source
    unreachable) and :class:`~cleancut.errors.ChecksumMismatchError` when every source that
    answered served other bytes than the pinned ones. The server then still runs; the page
    falls back to server mode.
    """
    if ort_dir is not None:
        problems = ort_release.file_problems(ort_dir)
        if problems:
            raise DownloadError(f"--ort-dir {ort_dir}: {'; '.join(problems)}")
        return _found(OrtAssets(ort_dir, source="--ort-dir"))
    bundled = BUNDLED_DIR if bundled is None else bundled
    if bundled.is_dir():
        problems = ort_release.file_problems(bundled)
        if not problems:
            return _found(OrtAssets(bundled, source="bundled with the package"))
        log.warning("the bundled %s files in %s are damaged (%s); trying the cache", ORT_WEB_PACKAGE,
                    bundled, "; ".join(problems))  # fmt: skip
    target = settings.cache_dir / "web" / f"{ORT_WEB_PACKAGE}-{ORT_WEB_VERSION}"
    if target.is_dir() and not ort_release.file_problems(target):
        return _found(OrtAssets(target, source="cache"))
    if settings.offline:
        raise DownloadError(
            f"{ORT_WEB_PACKAGE} {ORT_WEB_VERSION} is neither bundled with this install nor in the cache "
            f"({target}) and offline mode is on; run `cleancut serve` once with network access, "
            "install cleancut from its wheel (which carries the files), or pass --ort-dir"
        )
    errors: list[str] = []
    failures: list[ReleaseError | DownloadError] = []
    attempts: list[tuple[str, Callable[[], dict[str, bytes]]]] = [
        ("registry download", lambda: _from_registry(settings))
    ]
    npm = settings.npm
    if npm:
        attempts.append(("npm pack", lambda: _from_npm(npm, target.parent)))
    else:
        errors.append("npm pack: the npm client is turned off (CLEANCUT_NPM=0)")
    for label, attempt in attempts:
        try:
            files = attempt()
        except (ReleaseError, DownloadError) as exc:
            failures.append(exc)
            errors.append(f"{label}: {exc}")
            log.warning("%s of %s failed: %s", label, ORT_WEB_PACKAGE, exc)
            continue
        try:
            _install(files, target)
        except OSError as exc:
            raise DownloadError(f"cannot write {ORT_WEB_PACKAGE} into the cache {target}: {exc}") from exc
        return _found(OrtAssets(target, source=label))
    message = (
        f"{ORT_WEB_PACKAGE} {ORT_WEB_VERSION} could not be had: "
        + " | ".join(errors)
        + ". Install cleancut from its wheel (it carries the files), set CLEANCUT_NPM_REGISTRY to a "
        "registry mirror, or pass --ort-dir with a copy of the files"
    )
    # Every source that answered served other bytes: a tampered or broken mirror, not the network.
    if all(isinstance(e, IntegrityError) for e in failures):
        raise ChecksumMismatchError(message) from failures[-1]
    raise DownloadError(message) from failures[-1]
