"""Choosing what runs a model for ``backend="auto"``: the fastest backend installed and
verified on this machine that fits in memory, by a one-time self-check against onnxruntime.

The self-check runs each backend on a bundled photo in a child process of its own, so that
its time is bounded (:data:`CHECK_TIMEOUT`) and its peak memory is that backend's alone.
Its verdict is kept in ``<cache>/backends/``, keyed by the prepared graph's SHA-256 (what
runs), the thread count, the library versions and the CPU: once per machine, reused by
every process; a new thread count or a changed file is a new key, never a rerun for the
same one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from ..config import Settings
from ..errors import DeviceError
from ..io.atomic import write_atomic
from ..progress import ProgressCallback
from .runtime import Backend, Device, default_threads, gpu_providers_present

if TYPE_CHECKING:
    from ..models.prepare import Prepared

__all__ = ["CHECK_TIMEOUT", "MEMORY_BUDGET", "SLOWER_FOR_MEMORY", "Choice", "resolve", "self_check"]

log = logging.getLogger(__name__)

#: Agreement required of a faster backend against the reference (uint8 alpha).
MAX_MEAN_ABS_DIFF = 2.0
MIN_IOU = 0.99
#: Seconds one backend's self-check may take (two passes and the load); past it, that
#: backend is not chosen.
CHECK_TIMEOUT: Final = 300.0
#: Peak memory of one loaded model above which ``auto`` takes a backend that fits under it
#: (when one agrees with the reference), even if slower: two server workers or Ray actors
#: must fit on a 24 GB machine.
MEMORY_BUDGET: Final = 4 * 1024**3
#: How much slower a backend may be and still be chosen for a lower peak when neither fits
#: the budget (BiRefNet-lite without bf16: OpenVINO f32 5 GB at 1.2x the time of onnxruntime's 12 GB).
SLOWER_FOR_MEMORY: Final = 1.5
_CHECK_VERSION = 2


@dataclass(frozen=True)
class Choice:
    backend: Backend
    reason: str
    record: dict[str, Any] | None = None


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _cpu_identity() -> dict[str, Any]:
    name = platform.processor() or platform.machine()
    flags: list[str] = []
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name") and ":" in line:
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and ":" in line:
                    have = set(line.split(":", 1)[1].split())
                    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
                    flags = [f for f in wanted if f in have]
                    break
    except OSError:
        pass
    return {"cpu": name, "flags": flags, "machine": platform.machine()}


def _record_path(prepared: Prepared, settings: Settings, threads: int) -> tuple[Path, dict[str, Any]]:
    from .openvino import version as ov_version

    ident = {
        "check": _CHECK_VERSION,
        "graph_sha256": prepared.sha256,
        "family": prepared.family.name,
        # the distribution's version: importing onnxruntime would cost ~0.3 s of cold start
        "onnxruntime": _dist_version("onnxruntime") or _dist_version("onnxruntime-gpu"),
        "openvino": ov_version(),
        "threads": threads,
        **_cpu_identity(),
    }
    key = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
    return settings.cache_dir / "backends" / f"{prepared.sha256[:16]}.{key}.json", ident


def _selfcheck_photo() -> bytes:
    return resources.files("cleancut").joinpath("data/selfcheck.jpg").read_bytes()


def _peak_rss() -> int:
    """This process's peak resident memory in bytes, on every OS (``resource`` is POSIX-only
    and counts KiB on Linux but bytes on macOS; Windows has psutil's ``peak_wset``)."""
    try:
        import resource
    except ImportError:  # Windows
        import psutil

        return int(getattr(psutil.Process().memory_info(), "peak_wset", 0))
    peak = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return peak if sys.platform == "darwin" else peak * 1024


def _check_one(backend: str, graph: str, recipe_json: str, threads: int, cache_dir: str, out: str) -> None:
    """In the child: load ``graph`` on ``backend``, run the bundled photo twice (the first
    pass allocates and tunes), save the second's output to ``out`` and print the timings."""
    import time

    from .. import pipeline
    from ..io.decode import decode
    from ..models.families.base import Normalization
    from .runtime import create_onnxruntime_session, get_session

    recipe = json.loads(recipe_json)
    pixels = decode(_selfcheck_photo(), max_pixels=10_000_000).pixels
    x = pipeline.preprocess(
        pixels,
        recipe["height"],
        recipe["width"],
        norm=Normalization(
            scale=recipe["normalization"]["scale"],
            mean=tuple(recipe["normalization"]["mean"]),
            std=tuple(recipe["normalization"]["std"]),
            channels=recipe["normalization"]["channels"],
        ),
        down=recipe["downsample"],
    )
    t0 = time.perf_counter()
    if backend == "onnxruntime":
        sess: Any = create_onnxruntime_session(Path(graph), device="cpu", threads=threads)
    else:
        sess = get_session(
            Path(graph), backend="openvino", device="cpu", threads=threads, cache_dir=Path(cache_dir)
        )
    load = time.perf_counter() - t0
    t1 = time.perf_counter()
    sess.run(x)
    first = time.perf_counter() - t1
    t2 = time.perf_counter()
    y = sess.run(x)
    second = time.perf_counter() - t2
    np.save(out, np.asarray(y, dtype=np.float32))
    peak = _peak_rss()
    print(
        json.dumps(
            {
                "load_s": round(load, 4),
                "first_s": round(first, 4),
                "s": round(second, 4),
                "peak_rss": peak,
                "precision": getattr(sess, "precision", None),
            }
        )
    )


def _run_check(
    backend: str, prepared: Prepared, settings: Settings, threads: int, folder: Path
) -> dict[str, Any]:
    """One backend's check in a child process, bounded by :data:`CHECK_TIMEOUT`."""
    out = folder / f"{backend}.npy"
    code = (
        "import sys; from cleancut.inference.backends import _check_one; a = sys.argv; "
        "_check_one(a[1], a[2], a[3], int(a[4]), a[5], a[6])"
    )
    args = [
        sys.executable,
        "-c",
        code,
        backend,
        str(prepared.path),
        json.dumps(prepared.recipe.to_json()),
        str(threads),
        str(settings.cache_dir),
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=CHECK_TIMEOUT, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish in {CHECK_TIMEOUT:.0f} s"}
    if proc.returncode != 0 or not out.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        return {"error": tail[0][:300]}
    try:
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": f"unreadable self-check output: {proc.stdout[-200:]!r}"}
    result["output"] = np.load(out)
    return result


def self_check(
    prepared: Prepared, settings: Settings, threads: int, progress: ProgressCallback | None = None
) -> dict[str, Any]:
    """Run onnxruntime (the reference) and OpenVINO on the bundled photo; return the record."""
    from .. import pipeline

    del progress
    with tempfile.TemporaryDirectory(prefix="cleancut-selfcheck-") as tmp:
        ref = _run_check("onnxruntime", prepared, settings, threads, Path(tmp))
        ov = _run_check("openvino", prepared, settings, threads, Path(tmp))
    record: dict[str, Any] = {}
    if "error" in ref:
        # the reference itself failed: nothing to compare against; onnxruntime loads it (and
        # reports the real error) in this process
        record.update(onnxruntime_error=ref["error"], choice="onnxruntime", verified=False)
        return record
    record.update(
        onnxruntime_s=ref["s"], onnxruntime_first_s=ref["first_s"], onnxruntime_peak_rss=ref["peak_rss"]
    )
    if "error" in ov:
        log.warning("OpenVINO self-check failed: %s", ov["error"])
        record.update(openvino_error=ov["error"], choice="onnxruntime", verified=False)
        return record
    a, b = pipeline.quantize(ref["output"]), pipeline.quantize(ov["output"])
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    mad = float(diff.mean())
    inter = np.logical_and(a >= 128, b >= 128).sum()
    union = np.logical_or(a >= 128, b >= 128).sum()
    iou = float(inter / union) if union else 1.0
    verified = mad <= MAX_MEAN_ABS_DIFF and iou >= MIN_IOU
    record.update(
        openvino_s=ov["s"],
        openvino_first_s=ov["first_s"],
        openvino_peak_rss=ov["peak_rss"],
        openvino_precision=ov.get("precision"),
        mean_abs_diff=round(mad, 4),
        max_abs_diff=int(diff.max()),
        iou=round(iou, 5),
        verified=verified,
    )
    record["choice"] = _weigh(record)
    return record


def _weigh(record: dict[str, Any]) -> str:
    """Faster wins among the backends that agree, unless it needs more than
    :data:`MEMORY_BUDGET` and the other does not; when neither fits, the one with the lower
    peak unless it is more than :data:`SLOWER_FOR_MEMORY` times slower."""
    if not record.get("verified"):
        return "onnxruntime"
    ort_fits = record["onnxruntime_peak_rss"] <= MEMORY_BUDGET
    ov_fits = record["openvino_peak_rss"] <= MEMORY_BUDGET
    if ort_fits != ov_fits:
        return "onnxruntime" if ort_fits else "openvino"
    faster = "openvino" if record["openvino_s"] < record["onnxruntime_s"] else "onnxruntime"
    if ort_fits:
        return faster
    lean = "openvino" if record["openvino_peak_rss"] < record["onnxruntime_peak_rss"] else "onnxruntime"
    if record[f"{lean}_s"] <= SLOWER_FOR_MEMORY * record[f"{faster}_s"]:
        return lean
    return faster


def _read_record(path: Path, ident: dict[str, Any]) -> dict[str, Any] | None:
    try:
        record: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("identity") == ident else None


def _measure_once(
    path: Path,
    ident: dict[str, Any],
    prepared: Prepared,
    settings: Settings,
    threads: int,
    progress: ProgressCallback | None,
) -> dict[str, Any]:
    """Run the self-check and keep its verdict, one process at a time on this machine (server
    workers or Ray actors that start together wait for the first: the check's onnxruntime
    child alone can peak at 12 GB for BiRefNet), re-reading the verdict after the wait."""
    from filelock import FileLock

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock: Any = FileLock(str(path.with_suffix(".lock")))
        lock.acquire()
    except OSError:  # a read-only cache: measure without the lock
        lock = None
    try:
        record = _read_record(path, ident)
        if record is not None:
            return record
        log.info("measuring onnxruntime against OpenVINO for %s on this CPU (once)", prepared.path.name)
        if progress is not None:
            progress("compute:selfcheck", 0, 1)
        record = {"identity": ident, **self_check(prepared, settings, threads, progress)}
        if progress is not None:
            progress("compute:selfcheck", 1, 1)
        try:
            write_atomic(path, json.dumps(record, indent=2).encode(), overwrite=True)
        except OSError as exc:  # a read-only cache: measured again next time
            log.warning("cannot keep the self-check's verdict in %s: %s", path.parent, exc)
        return record
    finally:
        if lock is not None:
            lock.release()


def _gib(n: Any) -> str:
    return f"{float(n) / 1024**3:.1f} GiB" if isinstance(n, int | float) else "?"


def resolve(
    requested: Backend,
    prepared: Prepared,
    settings: Settings,
    *,
    device: Device,
    strict: bool,
    threads: int | None,
    progress: ProgressCallback | None = None,
) -> Choice:
    """Turn ``auto`` into a concrete backend (running the self-check once if needed).

    A GPU provider in onnxruntime (``device`` not ``cpu``) → onnxruntime on the GPU.
    A dynamically quantised graph (ConvInteger) → onnxruntime (not OpenVINO's fast path,
    measured slower). Otherwise, when OpenVINO is installed, :func:`self_check` runs both
    backends on a bundled photo, each in a child process: OpenVINO is accepted only if its
    mask agrees with onnxruntime's (mean |Δalpha| ≤ 2/255 and IoU ≥ 0.99); of those that
    agree the faster wins, unless it peaks above :data:`MEMORY_BUDGET` and the other does not.
    """
    from .openvino import available as ov_available

    if requested == "openvino":
        if not ov_available():
            raise DeviceError("backend=openvino needs the openvino package: pip install openvino")
        return Choice("openvino", "requested")
    if requested == "onnxruntime":
        return Choice("onnxruntime", "requested")
    if device != "cpu" and not (device == "gpu" and strict):  # strict: the session raises with it
        from .ortinstall import conflict, warn_once

        clash = conflict()  # two onnxruntime builds hide the GPU one: said whichever backend runs
        if clash is not None:
            warn_once(clash)
    if device != "cpu" and gpu_providers_present():
        return Choice("onnxruntime", "a GPU provider is present: onnxruntime on the GPU")
    if device == "gpu" and strict:
        return Choice("onnxruntime", "device=gpu: onnxruntime decides (strict)")
    if not ov_available():
        return Choice("onnxruntime", "openvino is not installed")
    if prepared.info.quantized:
        return Choice("onnxruntime", "dynamically quantised (ConvInteger) graphs run faster in onnxruntime")
    n = threads if threads and threads > 0 else default_threads()
    path, ident = _record_path(prepared, settings, n)
    record = _read_record(path, ident)
    if record is None:
        record = _measure_once(path, ident, prepared, settings, n, progress)
    choice: Backend = "openvino" if record.get("choice") == "openvino" else "onnxruntime"
    memory = (
        f", peak {_gib(record.get('openvino_peak_rss'))} vs {_gib(record.get('onnxruntime_peak_rss'))}"
        if "openvino_peak_rss" in record
        else ""
    )
    if choice == "openvino":
        reason = (
            f"self-check: OpenVINO {record['openvino_s']:.2f} s vs onnxruntime "
            f"{record['onnxruntime_s']:.2f} s{memory}, mean |Δα| {record['mean_abs_diff']:.2f}/255, "
            f"IoU {record['iou']:.4f}"
        )
    elif "onnxruntime_error" in record:
        reason = f"the self-check could not run onnxruntime: {record['onnxruntime_error']}"
    elif "openvino_error" in record:
        reason = f"OpenVINO failed its self-check: {record['openvino_error']}"
    elif not record.get("verified"):
        reason = (
            f"OpenVINO disagreed with the reference (mean |Δα| {record.get('mean_abs_diff')}/255, "
            f"IoU {record.get('iou')})"
        )
    else:
        reason = (
            f"self-check: onnxruntime {record['onnxruntime_s']:.2f} s vs OpenVINO "
            f"{record['openvino_s']:.2f} s{memory}"
        )
    return Choice(choice, reason, record)
