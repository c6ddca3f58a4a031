"""Wheel build hook: bundle onnxruntime-web's files so the page's in-browser mode needs no npm.

Runs for ``python -m build`` / ``pip wheel`` (not for the sdist, not for editable installs).
It obtains the pinned release described in ``src/cleancut/server/ort_release.py`` (loaded by
path, so the build needs nothing but the standard library and hatchling), checks the tarball
against its pinned integrity and each file against its pinned SHA-256, and adds the files to
the wheel as ``cleancut/server/ort_web/``. The repository never holds them.

Sources, in order:

1. ``CLEANCUT_BUILD_ORT_DIR``: a folder already holding the files (e.g. a server's cache
   folder ``<cache>/web/onnxruntime-web-1.30.0``), for offline builds;
2. an http(s) download of ``<registry>/onnxruntime-web/-/onnxruntime-web-<version>.tgz``, the
   registry being ``CLEANCUT_NPM_REGISTRY``, else ``npm config get registry``, else the
   public one;
3. ``npm pack onnxruntime-web@<version>``.

``CLEANCUT_BUILD_ORT=0`` builds a wheel without them (the server then fetches them at its
first start, as from a source checkout).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

_WHEEL_DIR = "cleancut/server/ort_web"


def _load_release(root: Path) -> ModuleType:
    path = root / "src" / "cleancut" / "server" / "ort_release.py"
    spec = importlib.util.spec_from_file_location("_cleancut_ort_release", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _npm_pack(release: ModuleType, npm: str, workdir: Path) -> bytes:
    exe = shutil.which(npm)
    if exe is None:
        raise release.ReleaseError(f"the npm client {npm!r} is not installed")
    spec = f"{release.PACKAGE}@{release.VERSION}"
    try:
        proc = subprocess.run(
            [exe, "pack", spec, "--pack-destination", str(workdir), "--silent"],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise release.ReleaseError(f"`npm pack {spec}` failed: {exc}") from exc
    tarballs = sorted(workdir.glob("*.tgz"))
    if proc.returncode != 0 or not tarballs:
        detail = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise release.ReleaseError(f"`npm pack {spec}` failed (exit {proc.returncode}): {detail}")
    data = tarballs[0].read_bytes()
    release.check_tarball(data)
    return data


def _obtain(release: ModuleType, stage: Path) -> str:
    """Put the verified files into ``stage``; return where they came from."""
    local = os.environ.get("CLEANCUT_BUILD_ORT_DIR", "").strip()
    if local:
        problems = release.file_problems(Path(local))
        if problems:
            raise RuntimeError(f"CLEANCUT_BUILD_ORT_DIR={local}: {'; '.join(problems)}")
        for name in release.FILES:
            shutil.copyfile(Path(local) / name, stage / name)
        return local
    npm = os.environ.get("CLEANCUT_NPM", "npm").strip() or "npm"
    npm = "" if npm.lower() in ("0", "false", "no", "off") else npm
    registry = (
        os.environ.get("CLEANCUT_NPM_REGISTRY", "").strip()
        or release.registry_from_npm(npm or None)
        or release.DEFAULT_REGISTRY
    )
    errors = []
    files: dict[str, bytes] | None = None
    source = ""
    try:
        source = release.tarball_url(registry)
        files = release.extract_files(
            release.fetch_tarball(source, timeout=120.0, user_agent="cleancut-build")
        )
    except release.ReleaseError as exc:
        errors.append(f"{registry}: {exc}")
    if files is None and npm:
        with tempfile.TemporaryDirectory(prefix="cleancut-npm-") as tmp:
            try:
                files = release.extract_files(_npm_pack(release, npm, Path(tmp)))
                source = "npm pack"
            except release.ReleaseError as exc:
                errors.append(f"npm: {exc}")
    if files is None:
        raise RuntimeError(
            f"cannot bundle {release.PACKAGE}@{release.VERSION} into the wheel: {' | '.join(errors)}. "
            "Set CLEANCUT_NPM_REGISTRY to a reachable registry, CLEANCUT_BUILD_ORT_DIR to a folder "
            "with the files, or CLEANCUT_BUILD_ORT=0 to build a wheel without them"
        )
    for name, data in files.items():
        (stage / name).write_bytes(data)
    return source


class OrtBundleHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        if os.environ.get("CLEANCUT_BUILD_ORT", "1").strip().lower() in ("0", "false", "no", "off"):
            self.app.display_warning("CLEANCUT_BUILD_ORT=0: the wheel carries no onnxruntime-web files")
            return
        release = _load_release(Path(self.root))
        self._stage = Path(tempfile.mkdtemp(prefix="cleancut-ort-"))
        source = _obtain(release, self._stage)
        problems = release.file_problems(self._stage)  # what goes into the wheel, checked once more
        if problems:
            raise RuntimeError(f"bundled {release.PACKAGE} files: {'; '.join(problems)}")
        for name in release.FILES:
            build_data["force_include"][str(self._stage / name)] = f"{_WHEEL_DIR}/{name}"
        self.app.display_info(f"bundled {release.PACKAGE}@{release.VERSION} ({source}), verified")

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        stage = getattr(self, "_stage", None)
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)
