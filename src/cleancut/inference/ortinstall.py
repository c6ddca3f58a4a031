"""What is wrong with this environment's onnxruntime install, and the pip commands that fix it.

Every onnxruntime build (``onnxruntime``, ``onnxruntime-gpu``, ``onnxruntime-openvino``,
``onnxruntime-directml``, …) is a separate distribution that installs the same
``onnxruntime`` package folder. Two at once overwrite each other's files: the one installed
last decides which execution providers exist (``pip install onnxruntime onnxruntime-gpu``
may leave only the CPU one), and uninstalling either deletes files the other needs. The
checks here find that, a package left empty by such an uninstall, and a GPU provider that
is present but cannot load its CUDA libraries; each message ends with the exact fix.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import shlex
import sys
import threading
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "OrtDistribution",
    "broken_install",
    "conflict",
    "gpu_load_fix",
    "install_problem",
    "live_build",
    "onnxruntime_distributions",
    "pip",
    "preload_gpu_libraries",
    "warn_once",
]

log = logging.getLogger(__name__)

#: Builds to keep when several are installed, most specific first: whoever installed a GPU
#: or accelerator build beside the plain one meant to use it.
KEEP_ORDER: tuple[str, ...] = (
    "onnxruntime-gpu",
    "onnxruntime-rocm",
    "onnxruntime-migraphx",
    "onnxruntime-directml",
    "onnxruntime-openvino",
    "onnxruntime-qnn",
    "onnxruntime-cann",
    "onnxruntime-silicon",
    "ort-nightly-gpu",
    "ort-nightly",
    "onnxruntime-training",
    "onnxruntime",
)


@dataclass(frozen=True)
class OrtDistribution:
    """One installed distribution that provides the ``onnxruntime`` package."""

    name: str
    version: str
    location: str


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _provides_onnxruntime(dist: metadata.Distribution) -> bool:
    top = dist.read_text("top_level.txt")
    if top is not None:
        return "onnxruntime" in top.split()
    files = dist.files or []
    return any(str(f).replace("\\", "/") == "onnxruntime/__init__.py" for f in files)


def _candidates() -> list[metadata.Distribution]:
    """The metadata folders on ``sys.path`` named like an onnxruntime build: reading only
    those, not every installed distribution's metadata (0.2 s on each session's start)."""
    out: list[metadata.Distribution] = []
    for entry in sys.path:
        try:
            paths = sorted(Path(entry or ".").iterdir())
        except OSError:
            continue
        for path in paths:
            low = path.name.lower()
            if low.startswith(("onnxruntime", "ort_nightly", "ort-nightly")) and low.endswith(
                (".dist-info", ".egg-info")
            ):
                out.append(metadata.PathDistribution(path))
    return out


def onnxruntime_distributions() -> list[OrtDistribution]:
    """Installed distributions that provide the ``onnxruntime`` package, in ``sys.path``
    order, one per name (``onnxruntime-extensions`` and ``onnxruntime-genai`` install other
    packages and are not counted)."""
    found: dict[str, OrtDistribution] = {}
    for dist in _candidates():
        raw = dist.metadata["Name"] or ""
        name = _canonical(raw)
        if not name.startswith(("onnxruntime", "ort-nightly")) or name in found:
            continue
        if _provides_onnxruntime(dist):
            found[name] = OrtDistribution(name, dist.version, str(dist.locate_file("")))
    return list(found.values())


def pip(*args: str) -> str:
    """A pip command for this very interpreter (``python -m pip``, not whichever ``pip`` the
    shell finds first)."""
    python = shlex.quote(sys.executable) if sys.executable else "python"
    return " ".join([python, "-m", "pip", *map(shlex.quote, args)])


def _keep(names: list[str]) -> str:
    """The build to keep: first in :data:`KEEP_ORDER`; an unknown one before plain onnxruntime."""

    def rank(name: str) -> float:
        return KEEP_ORDER.index(name) if name in KEEP_ORDER else KEEP_ORDER.index("onnxruntime") - 0.5

    return min(names, key=rank)


def live_build() -> tuple[str, str] | None:
    """Whose files the ``onnxruntime`` package holds now: ``(distribution, version)`` as its
    build info says, or ``None`` when that cannot be read."""
    try:
        from onnxruntime.capi import build_and_package_info as info
    except Exception:  # a half-deleted package fails in many ways
        return None
    name = getattr(info, "package_name", None)
    version = getattr(info, "__version__", None)
    return (str(name), str(version)) if name and version else None


def conflict(dists: list[OrtDistribution] | None = None) -> str | None:
    """Two or more onnxruntime builds installed together: what that does and the fix."""
    dists = onnxruntime_distributions() if dists is None else dists
    if len(dists) < 2:
        return None
    names = [d.name for d in dists]
    keep = _keep(names)
    listing = ", ".join(f"{d.name} {d.version}" for d in dists)
    live = live_build()
    now = ""
    if live is not None:
        now = f" (now {live[0]} {live[1]}'s files"
        with contextlib.suppress(Exception):
            import onnxruntime

            now += ", providers: " + ", ".join(onnxruntime.get_available_providers())
        now += ")"
    return (
        f"{len(dists)} onnxruntime distributions are installed together ({listing}): they write "
        f"the same onnxruntime folder, so the one installed last decides which execution "
        f"providers exist{now}, and uninstalling one breaks the other. Keep one: "
        f"{pip('uninstall', '-y', *names)} && {pip('install', keep)}"
    )


def broken_install(dists: list[OrtDistribution] | None = None) -> str | None:
    """``onnxruntime`` missing, or present but emptied (its files deleted by uninstalling a
    second build that shared them): what is wrong and the fix; ``None`` when it imports."""
    try:
        import onnxruntime

        if hasattr(onnxruntime, "InferenceSession") and hasattr(onnxruntime, "get_available_providers"):
            return None
        why: str = (
            "its files are missing (uninstalling a second onnxruntime build deletes the files they share)"
        )
    except ImportError as exc:
        why = f"it does not import ({exc})"
    dists = onnxruntime_distributions() if dists is None else dists
    if not dists:
        return f"onnxruntime is not installed: {pip('install', 'onnxruntime')}"
    names = [d.name for d in dists]
    return (
        f"the onnxruntime package is broken: {why}. Reinstall one build: "
        f"{pip('uninstall', '-y', *names)} && {pip('install', _keep(names))}"
    )


_warned: set[str] = set()
_warned_lock = threading.Lock()


def warn_once(message: str) -> None:
    """Log ``message`` as a warning the first time this process meets it (the backend choice
    and the session both check the install; the user needs to read it once)."""
    with _warned_lock:
        first = message not in _warned
        _warned.add(message)
    if first:
        log.warning("%s", message)


def install_problem() -> str | None:
    """The first thing wrong with the onnxruntime install (broken, then two builds at once),
    with its fix; ``None`` when there is nothing to fix."""
    return broken_install() or conflict()


def _cuda_version() -> str | None:
    with contextlib.suppress(Exception):
        from onnxruntime.capi import build_and_package_info as info

        version = getattr(info, "cuda_version", None)
        return str(version) if version else None
    return None


def gpu_load_fix(provider: str) -> str:
    """Why ``provider`` (present in this build) may not have loaded, and what to install."""
    if provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
        cuda = _cuda_version()
        major = cuda.split(".")[0] if cuda else None
        built = f"this onnxruntime-gpu is built for CUDA {cuda} and needs" if cuda else "it needs"
        extra = "" if provider == "CUDAExecutionProvider" else " (TensorRT also needs its own libraries)"
        return (
            f"{built} the CUDA{f' {major}' if major else ''} and cuDNN 9 libraries and an NVIDIA "
            f"driver (`nvidia-smi` shows the GPU){extra}; to put the libraries in this environment: "
            f"{pip('install', 'onnxruntime-gpu[cuda,cudnn]')}"
        )
    if provider == "DmlExecutionProvider":
        return "DirectML needs Windows 10 1903 or later and a DirectX 12 GPU driver"
    if provider in ("ROCMExecutionProvider", "MIGraphXExecutionProvider"):
        return "it needs the ROCm libraries of the version this build names and an AMD GPU driver"
    return "its libraries or driver are missing"


def preload_gpu_libraries() -> str:
    """Load the CUDA and cuDNN libraries of the ``nvidia-*`` pip packages
    (``onnxruntime-gpu[cuda,cudnn]``) so the CUDA provider finds them: its library has no
    search path into site-packages on Linux. onnxruntime's own ``preload_dlls`` does it (1.21
    and later); what it prints goes to the returned text, never to stdout, which may be an
    image (``cleancut - > out.png``). Returns that text (empty when nothing was done)."""
    try:
        import onnxruntime
    except ImportError:
        return ""
    preload: Any = getattr(onnxruntime, "preload_dlls", None)
    if preload is None or not _cuda_version():
        return ""
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            preload()
    except Exception as exc:  # a missing library is reported by the session that needs it
        out.write(f"preload_dlls failed: {exc}\n")
    text = out.getvalue().strip()
    if text:
        log.debug("onnxruntime.preload_dlls: %s", text)
    return text
