"""The OpenVINO backend: IS-Net on the CPU's matrix units (AMX bf16 where present).

OpenVINO reads the ONNX graph directly. On CPUs with bf16 support (Intel AMX / AVX-512
BF16) its CPU plugin computes convolutions in bf16 with fp32 accumulation: on the 2-core
Sapphire Rapids development machine a 1024² pass takes about a third of onnxruntime's fp32
time, with a mean alpha difference far below 1/255 (see ``benchmarks/backends.py``).
Compiled models are cached on disk (``CACHE_DIR``) so later processes skip compilation.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DeviceError, ModelError

__all__ = ["OpenVINOSession", "available", "create_session", "version"]

log = logging.getLogger(__name__)


def available() -> bool:
    """True if the ``openvino`` package can be imported."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def version() -> str | None:
    try:
        import openvino as ov
    except ImportError:
        return None
    return str(ov.get_version())


_FIRST_RUN = threading.Lock()
_first_run_done = False


@dataclass
class OpenVINOSession:
    """A compiled model; ``run`` is safe from several threads (one infer request each)."""

    compiled: Any
    model_path: Path
    device: str
    ov_device: str
    threads: int
    precision: str
    reason: str
    mode: str = "latency"
    streams: int = 1
    _requests: queue.SimpleQueue[Any] = field(default_factory=queue.SimpleQueue, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    backend = "openvino"
    max_batch = 1  # measured: batches give no throughput on a CPU (benchmarks/backends.py)

    @property
    def provider(self) -> str:
        return f"OpenVINO {self.ov_device} ({self.precision})"

    @property
    def providers(self) -> list[str]:
        return [self.provider]

    @property
    def on_gpu(self) -> bool:
        return self.ov_device.startswith("GPU")

    def _request(self) -> Any:
        try:
            return self._requests.get_nowait()
        except queue.Empty:
            with self._lock:
                return self.compiled.create_infer_request()

    def run(self, batch: np.ndarray, *, stop: Any = None) -> np.ndarray:
        """``[N, 3, S, S]`` float32 → ``[N, 1, S, S]`` float32 in 0..1.

        The process's first inference runs alone: pyopenvino initialises function-local
        statics on its first call while holding the GIL, and two threads making their first
        call at once can deadlock (one holds the GIL waiting on the static's guard, the
        other initialises it and waits for the GIL), as the folder batch's streams did.
        ``stop`` is accepted for the common signature; a run here ends at the next stage
        boundary instead."""
        global _first_run_done
        if not _first_run_done:
            with _FIRST_RUN:
                if not _first_run_done:
                    out = self._run(batch)
                    _first_run_done = True
                    return out
        return self._run(batch)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        req = self._request()
        try:
            outs = []
            for i in range(batch.shape[0]):
                # share_inputs: OpenVINO reads the caller's array instead of copying its
                # 12 MB into the request's own tensor first (the call is synchronous)
                req.infer({0: np.ascontiguousarray(batch[i : i + 1])}, share_inputs=True)
                outs.append(np.array(req.get_output_tensor(0).data, copy=True))
        finally:
            self._requests.put(req)
        return outs[0] if len(outs) == 1 else np.concatenate(outs, axis=0)

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "openvino",
            "model_path": str(self.model_path),
            "device": self.device,
            "provider": self.provider,
            "providers": self.providers,
            "precision": self.precision,
            "threads": self.threads,
            "mode": self.mode,
            "streams": self.streams,
            "reason": self.reason,
        }


def _bf16_capable(core: Any) -> bool:
    try:
        caps = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:
        return False
    return "BF16" in [str(c) for c in caps]


def create_session(
    path: Path,
    *,
    device: str,
    strict: bool,
    threads: int,
    cache_dir: Path | None,
    mode: str = "latency",
) -> OpenVINOSession:
    """Compile ``path`` for the CPU (or an Intel GPU when ``device="gpu"`` and one exists).

    ``mode="latency"`` puts every thread on one inference. ``mode="throughput"`` lets the
    plugin split them into streams (2 × 1 thread on 2 cores), each running its own image:
    no stream waits at a barrier for a thread that the decode/encode workers of a folder
    batch preempted. Measured side by side under load on the 2-core machine: 1.16 against
    0.78 images/s, 0.77 against 0.61, 0.80 against 0.40 (``benchmarks/throughput.py``).
    """
    try:
        import openvino as ov
    except ImportError as exc:
        raise DeviceError("backend=openvino needs the openvino package: pip install openvino") from exc
    core = ov.Core()
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        core.set_property({"CACHE_DIR": str(cache_dir)})
    devices = list(core.available_devices)
    ov_device = "CPU"
    reason = "OpenVINO on the CPU"
    if device == "gpu":
        gpus = [d for d in devices if d.startswith("GPU")]
        if gpus:
            ov_device = gpus[0]
            reason = f"OpenVINO on {ov_device}"
        elif strict:
            raise DeviceError(f"device=gpu with strict mode, but OpenVINO sees only {devices}")
        else:
            log.warning("device=gpu requested but OpenVINO sees only %s; using the CPU", devices)
            reason = f"no OpenVINO GPU device (have {devices})"
    config: dict[str, Any] = {"PERFORMANCE_HINT": "THROUGHPUT" if mode == "throughput" else "LATENCY"}
    if ov_device == "CPU":
        config["INFERENCE_NUM_THREADS"] = threads
        # bf16 only where the CPU computes it natively (AMX / AVX-512 BF16); elsewhere f32.
        config["INFERENCE_PRECISION_HINT"] = "bf16" if _bf16_capable(core) else "f32"
    try:
        # A path (not a read model) lets the compiled-model cache skip reading the ONNX file.
        compiled = core.compile_model(str(path), ov_device, config)
    except Exception as exc:  # OpenVINO raises RuntimeError subclasses of its own
        raise ModelError(f"OpenVINO could not compile {path}: {exc}") from exc
    try:
        precision = str(compiled.get_property("INFERENCE_PRECISION_HINT")).lower()
    except Exception:
        precision = "default"
    precision = precision.replace("<type: '", "").replace("'>", "")
    try:
        streams = max(1, int(compiled.get_property("NUM_STREAMS")))
    except Exception:
        streams = 1
    return OpenVINOSession(compiled, path, device, ov_device, threads, precision, reason, mode, streams)
