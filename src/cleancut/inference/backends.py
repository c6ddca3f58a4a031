"""Choosing what runs a model for ``backend="auto"``: the fastest backend installed and
verified on this machine, by a one-time self-check against the onnxruntime reference."""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .. import pipeline
from ..config import Settings
from ..errors import DeviceError
from ..io.decode import decode
from ..models import INPUT_SIZE, ModelSpec
from ..progress import ProgressCallback
from .runtime import Backend, Device, default_threads, gpu_providers_present

__all__ = ["Choice", "resolve", "self_check"]

log = logging.getLogger(__name__)

#: Agreement required of a faster backend against the reference (uint8 alpha at 1024²).
MAX_MEAN_ABS_DIFF = 2.0
MIN_IOU = 0.99
_CHECK_VERSION = 1


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


def _record_path(spec: ModelSpec, settings: Settings, threads: int) -> tuple[Path, dict[str, Any]]:
    from .openvino import version as ov_version

    ident = {
        "check": _CHECK_VERSION,
        "model": spec.name,
        "model_sha256": spec.sha256,
        # the distribution's version: importing onnxruntime would cost ~0.3 s of cold start
        "onnxruntime": _dist_version("onnxruntime") or _dist_version("onnxruntime-gpu"),
        "openvino": ov_version(),
        "threads": threads,
        **_cpu_identity(),
    }
    key = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
    return settings.cache_dir / "backends" / f"{spec.name}.{key}.json", ident


def _selfcheck_input() -> np.ndarray:
    data = resources.files("cleancut").joinpath("data/selfcheck.jpg").read_bytes()
    return pipeline.preprocess(decode(data, max_pixels=10_000_000).pixels, INPUT_SIZE)


def _timed(run: Any, x: np.ndarray) -> tuple[np.ndarray, float]:
    run(x)  # the first pass allocates and tunes; it is not what later passes cost
    t0 = time.perf_counter()
    y: np.ndarray = run(x)
    return y, time.perf_counter() - t0


def self_check(
    spec: ModelSpec, settings: Settings, threads: int, progress: ProgressCallback | None = None
) -> dict[str, Any]:
    """Run the reference and OpenVINO on the bundled photo; return the comparison record."""
    from ..models.store import ensure_model
    from .runtime import create_onnxruntime_session, get_session

    x = _selfcheck_input()
    ref_graph = ensure_model(spec, settings, progress, backend="onnxruntime")
    ort_sess = create_onnxruntime_session(ref_graph, device="cpu", threads=threads)
    y_ref, t_ort = _timed(ort_sess.run, x)
    del ort_sess  # the reference session is not kept: it would double the memory
    record: dict[str, Any] = {"onnxruntime_s": round(t_ort, 4)}
    try:
        ov_graph = ensure_model(spec, settings, progress, backend="openvino")
        ov_sess = get_session(
            ov_graph,
            backend="openvino",
            device="cpu",
            threads=threads,
            cache_dir=settings.cache_dir,
        )
        y_ov, t_ov = _timed(ov_sess.run, x)
    except Exception as exc:  # a broken OpenVINO install must not stop the cut-out
        log.warning("OpenVINO self-check failed: %s", exc)
        record.update(openvino_error=str(exc), choice="onnxruntime", verified=False)
        return record
    a, b = pipeline.quantize(y_ref), pipeline.quantize(y_ov)
    mad = float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())
    inter = np.logical_and(a >= 128, b >= 128).sum()
    union = np.logical_or(a >= 128, b >= 128).sum()
    iou = float(inter / union) if union else 1.0
    verified = mad <= MAX_MEAN_ABS_DIFF and iou >= MIN_IOU
    record.update(
        openvino_s=round(t_ov, 4),
        openvino_precision=getattr(ov_sess, "precision", None),
        mean_abs_diff=round(mad, 4),
        max_abs_diff=int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max()),
        iou=round(iou, 5),
        verified=verified,
        choice="openvino" if verified and t_ov < t_ort else "onnxruntime",
    )
    return record


def resolve(
    requested: Backend,
    spec: ModelSpec,
    settings: Settings,
    *,
    device: Device,
    strict: bool,
    threads: int | None,
    progress: ProgressCallback | None = None,
) -> Choice:
    """Turn ``auto`` into a concrete backend (running the self-check once if needed).

    A GPU provider in onnxruntime (``device`` not ``cpu``) → onnxruntime on the GPU.
    Otherwise, when OpenVINO is installed, :func:`self_check` runs both backends on a bundled
    photo: onnxruntime on the reference graph and OpenVINO on its graph (for ``isnet_fp16``
    both load its fp32 widening; OpenVINO computes it in bf16 where the CPU has it).
    OpenVINO is accepted only if its mask agrees with the reference (mean |Δalpha| ≤ 2/255
    and IoU ≥ 0.99 at 1024²); the faster accepted backend wins. The verdict is stored in
    ``<cache>/backends/``, keyed by the model, the library versions, the CPU's model and
    flags and the thread count: measured once per machine, reused by every process.
    """
    from .openvino import available as ov_available

    if requested == "openvino":
        if not ov_available():
            raise DeviceError("backend=openvino needs the openvino package: pip install openvino")
        return Choice("openvino", "requested")
    if requested == "onnxruntime":
        return Choice("onnxruntime", "requested")
    if device != "cpu" and gpu_providers_present():
        return Choice("onnxruntime", "a GPU provider is present: onnxruntime on the GPU")
    if device == "gpu" and strict:
        return Choice("onnxruntime", "device=gpu: onnxruntime decides (strict)")
    if not ov_available():
        return Choice("onnxruntime", "openvino is not installed")
    if spec.precision == "quint8":
        # Its dynamically quantised ConvInteger graph is not OpenVINO's fast path (measured
        # slower than onnxruntime), so no self-check is spent on it.
        return Choice("onnxruntime", "quint8 (ConvInteger) graphs run faster in onnxruntime")
    n = threads if threads and threads > 0 else default_threads()
    path, ident = _record_path(spec, settings, n)
    record: dict[str, Any] | None = None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        record = None
    if record is None or record.get("identity") != ident:
        log.info("measuring onnxruntime against OpenVINO for %s on this CPU (once)", spec.name)
        if progress is not None:
            progress("compute:selfcheck", 0, 1)
        record = {"identity": ident, **self_check(spec, settings, n, progress)}
        if progress is not None:
            progress("compute:selfcheck", 1, 1)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_text(json.dumps(record, indent=2))
        tmp.replace(path)
    choice: Backend = "openvino" if record.get("choice") == "openvino" else "onnxruntime"
    if choice == "openvino":
        reason = (
            f"self-check: OpenVINO {record['openvino_s']:.2f} s vs onnxruntime "
            f"{record['onnxruntime_s']:.2f} s, mean |Δα| {record['mean_abs_diff']:.2f}/255, "
            f"IoU {record['iou']:.4f}"
        )
    elif "openvino_error" in record:
        reason = f"OpenVINO failed its self-check: {record['openvino_error']}"
    elif not record.get("verified"):
        reason = (
            f"OpenVINO disagreed with the reference (mean |Δα| {record.get('mean_abs_diff')}/255, "
            f"IoU {record.get('iou')})"
        )
    else:
        reason = "self-check: onnxruntime was faster"
    return Choice(choice, reason, record)
