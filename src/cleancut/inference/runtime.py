"""Inference sessions: providers, threads, and one shared session per model per process.

``device="auto"`` uses a GPU provider when one is present and loads, else the CPU, and logs
why; ``"gpu"`` asks for a GPU; ``"cpu"`` never tries one. With ``strict=True`` a GPU that was
asked for but is not the provider actually running raises :class:`DeviceError` instead of
silently running on the CPU (rembg #439, #632, #661; imgly #156).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from ..errors import DeviceError, InvalidOptionError, ModelError

if TYPE_CHECKING:
    import onnxruntime

__all__ = [
    "BACKENDS",
    "GPU_PROVIDERS",
    "MODES",
    "Backend",
    "Device",
    "InferenceSession",
    "Mode",
    "Session",
    "available_providers",
    "cap_threads",
    "default_threads",
    "get_session",
    "gpu_providers_present",
    "usable_cpus",
]

log = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "gpu"]
DEVICES: tuple[Device, ...] = ("auto", "cpu", "gpu")
Backend = Literal["auto", "onnxruntime", "openvino"]
BACKENDS: tuple[Backend, ...] = ("auto", "onnxruntime", "openvino")
#: ``latency``: every thread on one image (one photo, the server). ``throughput``: several
#: images at once in independent streams (folder batches; see batch.run_jobs).
Mode = Literal["latency", "throughput"]
MODES: tuple[Mode, ...] = ("latency", "throughput")


#: ``stop(terminate)`` registers ``terminate`` (a call that ends a run in progress) with the
#: caller's cancel signal and returns the call that unregisters it (the server's deadlines).
StopHook = Callable[[Callable[[], None]], Callable[[], None]]


class Session(Protocol):
    """What the pipeline needs from a loaded model, whatever runs it."""

    backend: str
    model_path: Path
    threads: int
    max_batch: int
    #: How many ``run`` calls may usefully overlap (OpenVINO's streams in throughput mode).
    streams: int

    @property
    def provider(self) -> str: ...

    @property
    def providers(self) -> list[str]: ...

    @property
    def on_gpu(self) -> bool: ...

    def run(self, batch: np.ndarray, *, stop: StopHook | None = None) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]: ...


#: GPU-class execution providers, best first. TensorRT before CUDA: when both load, TRT is faster.
GPU_PROVIDERS: tuple[str, ...] = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "ROCMExecutionProvider",
    "MIGraphXExecutionProvider",
    "CoreMLExecutionProvider",
    "DmlExecutionProvider",
)
CPU_PROVIDER = "CPUExecutionProvider"


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


_capped_lock = threading.Lock()
_capped_warned: set[tuple[int, int]] = set()  # (asked, cap) already warned about


def cap_threads(threads: int | None) -> int | None:
    """The inference threads to use for ``threads`` as asked (``None``: the default,
    :func:`default_threads`), the one rule of every front (``--threads``, ``serve
    --threads``, ``Remover(threads=)``, Ray): fewer than 1 is refused
    (:class:`~cleancut.errors.InvalidOptionError`); more than the CPUs this process may use
    is capped to them, with a warning (once per value), since extra threads only contend
    for the same cores (and each new count would cost a new backend self-check)."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int | np.integer):
        raise InvalidOptionError(f"threads must be a whole number of at least 1, got {threads!r}")
    if threads < 1:
        raise InvalidOptionError(f"threads must be at least 1, got {threads}")
    cap = usable_cpus()
    if threads <= cap:
        return int(threads)
    with _capped_lock:
        first = (int(threads), cap) not in _capped_warned
        _capped_warned.add((int(threads), cap))
    if first:
        log.warning(
            "threads %d is more than the %d CPU(s) this process may use; using %d "
            "(more threads than CPUs only slow the inference down)",
            threads,
            cap,
            cap,
        )
    return cap


def default_threads() -> int:
    """Physical cores this process may run on: hyper-threads only slow convolutions down."""
    allowed = usable_cpus()
    try:
        import psutil

        physical = psutil.cpu_count(logical=False) or allowed
    except ImportError:  # pragma: no cover - psutil is a dependency
        physical = allowed
    return max(1, min(allowed, physical))


def available_providers() -> list[str]:
    import onnxruntime as ort

    if not hasattr(ort, "get_available_providers"):  # emptied by uninstalling a second build
        from .ortinstall import broken_install

        raise DeviceError(broken_install() or "the onnxruntime package is broken: reinstall it")
    return list(ort.get_available_providers())


def gpu_providers_present() -> list[str]:
    """GPU execution providers this onnxruntime build offers (not yet proven to load)."""
    available = available_providers()
    return [p for p in GPU_PROVIDERS if p in available]


def normalize_backend(backend: str) -> Backend:
    b = backend.strip().lower().replace("-", "").replace("_", "")
    aliases: dict[str, Backend] = {
        "auto": "auto",
        "onnxruntime": "onnxruntime",
        "ort": "onnxruntime",
        "openvino": "openvino",
        "ov": "openvino",
    }
    try:
        return aliases[b]
    except KeyError:
        raise InvalidOptionError(
            f"unknown backend {backend!r}; choose auto, onnxruntime or openvino"
        ) from None


def normalize_device(device: str) -> Device:
    d = device.strip().lower()
    if d == "cuda":
        d = "gpu"
    if d not in DEVICES:
        raise InvalidOptionError(f"unknown device {device!r}; choose auto, cpu or gpu")
    return d


def _choose_providers(device: Device, strict: bool) -> tuple[list[str], str]:
    from .ortinstall import broken_install, conflict, onnxruntime_distributions, pip, warn_once

    broken = broken_install()
    if broken is not None:  # nothing runs, not even on the CPU
        raise DeviceError(broken)
    if device == "cpu":
        return [CPU_PROVIDER], "device=cpu"
    # Two onnxruntime builds at once: the one installed last decides, often silently the CPU one.
    clash = conflict()
    available = available_providers()
    gpus = [p for p in GPU_PROVIDERS if p in available]
    if clash is not None and not (device == "gpu" and strict and not gpus):
        warn_once(clash)
    if gpus:
        return [*gpus, CPU_PROVIDER], f"GPU providers present: {', '.join(gpus)}"
    if clash is not None:
        why = clash
    else:
        names = [d.name for d in onnxruntime_distributions()] or ["onnxruntime"]
        why = (
            f"no GPU execution provider in this onnxruntime build (available: {', '.join(available)}); "
            f"for an NVIDIA GPU, replace it with onnxruntime-gpu: {pip('uninstall', '-y', *names)} && "
            f"{pip('install', 'onnxruntime-gpu')} (README: GPU)"
        )
    if device == "gpu" and strict:
        raise DeviceError(f"device=gpu with strict mode, but {why}")
    if clash is not None:
        log.info("device=%s: running on the CPU (see the warning above)", device)
    elif device == "gpu":
        log.warning("device=gpu: %s; running on the CPU", why)
    else:
        log.info("device=auto: %s; running on the CPU", why)
    return [CPU_PROVIDER], why


@dataclass
class InferenceSession:
    """One loaded graph. ``run`` is safe to call from several threads at once."""

    session: onnxruntime.InferenceSession
    model_path: Path
    device: Device
    threads: int
    requested_providers: list[str]
    reason: str
    gpu_batch: int = 8
    _input: str = field(init=False)
    _output: str = field(init=False)
    max_batch: int = field(init=False)
    backend = "onnxruntime"
    streams = 1  # one intra-op pool: overlapping runs would only fight over its threads

    def __post_init__(self) -> None:
        self._input = self.session.get_inputs()[0].name
        self._output = self.session.get_outputs()[0].name
        dynamic = not isinstance(self.session.get_inputs()[0].shape[0], int)
        # Batches only pay off on a GPU; on a CPU one image already fills every core.
        self.max_batch = self.gpu_batch if dynamic and self.on_gpu else 1

    @property
    def providers(self) -> list[str]:
        """Providers actually running, best first (what ORT really loaded)."""
        return list(self.session.get_providers())

    @property
    def provider(self) -> str:
        return self.providers[0]

    @property
    def on_gpu(self) -> bool:
        return self.provider in GPU_PROVIDERS

    def run(self, batch: np.ndarray, *, stop: StopHook | None = None) -> np.ndarray:
        """``[N, 3, H, W]`` float32 → ``[N, 1, H, W]`` float32 in 0..1.

        Up to ``max_batch`` images go through the network at once; on CUDA/TensorRT the
        tensors are bound to device memory with I/O binding (one host→device copy in, one
        device→host copy out, no intermediate host buffers). ``stop`` lets a caller's cancel
        signal terminate a run in progress (``RunOptions.terminate``): the run then raises.
        """
        step = max(1, self.max_batch)
        outs = [
            self._run_one(np.ascontiguousarray(batch[i : i + step]), stop)
            for i in range(0, batch.shape[0], step)
        ]
        return outs[0] if len(outs) == 1 else np.concatenate(outs, axis=0)

    def _run_one(self, x: np.ndarray, stop: StopHook | None = None) -> np.ndarray:
        if stop is not None and self.provider not in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
            import onnxruntime as ort

            run_options = ort.RunOptions()

            def terminate() -> None:
                run_options.terminate = True

            unregister = stop(terminate)
            try:
                stopped: np.ndarray = self.session.run([self._output], {self._input: x}, run_options)[0]
            finally:
                unregister()
            return stopped
        if self.provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
            import onnxruntime as ort

            binding = self.session.io_binding()
            binding.bind_ortvalue_input(self._input, ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0))
            binding.bind_output(self._output, "cuda", 0)
            self.session.run_with_iobinding(binding)
            out: np.ndarray = binding.copy_outputs_to_cpu()[0]
            return out
        result: np.ndarray = self.session.run([self._output], {self._input: x})[0]
        return result

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "onnxruntime",
            "model_path": str(self.model_path),
            "device": self.device,
            "provider": self.provider,
            "providers": self.providers,
            "threads": self.threads,
            "reason": self.reason,
        }


_sessions: dict[tuple[str, str, str, bool, int, str], Session] = {}
_lock = threading.Lock()


def _provider_options(providers: list[str], cache_dir: Path | None, batch: int) -> list[Any]:
    """Providers with options: TensorRT in fp16 with an engine cache and a batch profile."""
    out: list[Any] = []
    for name in providers:
        if name == "TensorrtExecutionProvider":
            shape = "x3x1024x1024"
            opts: dict[str, Any] = {
                "trt_fp16_enable": True,
                "trt_profile_min_shapes": f"input:1{shape}",
                "trt_profile_opt_shapes": f"input:{batch}{shape}",
                "trt_profile_max_shapes": f"input:{batch}{shape}",
            }
            if cache_dir is not None:
                opts.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(cache_dir / "tensorrt"))
            out.append((name, opts))
        else:
            out.append(name)
    return out


def _create(
    path: Path,
    device: Device,
    strict: bool,
    threads: int,
    cache_dir: Path | None = None,
    gpu_batch: int = 8,
    *,
    low_memory: bool = False,
) -> InferenceSession:
    from .ortinstall import gpu_load_fix, preload_gpu_libraries

    providers, reason = _choose_providers(device, strict)  # first: it explains a broken install
    import onnxruntime as ort

    if {"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(providers):
        preload_gpu_libraries()  # CUDA/cuDNN from the nvidia-* pip packages, where installed
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Sequential: parallel execution mode (IMG.LY's choice) measured 1.7x slower here (2 cores, IS-Net).
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    if low_memory:
        # Free each tensor when it dies instead of keeping a planned block and an arena grown in
        # powers of two: BiRefNet-lite fp32 peaks at 6.8 GB instead of 11.9 GB; IS-Net 0.9 against
        # 1.2 GB, but ~15 % more CPU per pass, hence opt-in (benchmarks/birefnet.py memory, ab).
        opts.enable_cpu_mem_arena = False
        opts.enable_mem_pattern = False
    # onnxruntime prints its provider fallbacks ("EP Error … Falling back") to stdout, which
    # may be the image (`cleancut - > out.png`): kept for the debug log instead.
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            sess = ort.InferenceSession(
                str(path), sess_options=opts, providers=_provider_options(providers, cache_dir, gpu_batch)
            )
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph/RuntimeException types
        if providers == [CPU_PROVIDER]:
            raise ModelError(f"onnxruntime could not load {path}: {exc}") from exc
        try:  # the CPU alone tells a GPU that cannot start from a graph that cannot load
            sess = ort.InferenceSession(str(path), sess_options=opts, providers=[CPU_PROVIDER])
        except Exception as cpu_exc:
            raise ModelError(f"onnxruntime could not load {path}: {cpu_exc}") from cpu_exc
        reason = f"{providers[0]} failed to start ({exc}); {gpu_load_fix(providers[0])}"
        if strict:
            raise DeviceError(f"{reason}; strict mode forbids the CPU fallback") from exc
        log.warning("%s; running on the CPU", reason)
    if printed.getvalue().strip():
        log.debug("onnxruntime: %s", printed.getvalue().strip())
    active = sess.get_providers()
    wanted_gpu = device in ("gpu", "auto") and providers[0] in GPU_PROVIDERS
    if wanted_gpu and active[0] not in GPU_PROVIDERS:
        msg = (
            f"asked for {providers[0]} but onnxruntime runs {active[0]}: the GPU provider did not "
            f"load; {gpu_load_fix(providers[0])}"
        )
        if strict:
            raise DeviceError(msg + "; strict mode forbids the CPU fallback")
        log.warning("%s; running on the CPU", msg)
        reason = msg
    return InferenceSession(sess, path, device, threads, providers, reason, gpu_batch)


def get_session(
    path: Path,
    *,
    backend: Backend = "onnxruntime",
    device: Device = "auto",
    strict: bool = False,
    threads: int | None = None,
    cache_dir: Path | None = None,
    mode: Mode = "latency",
) -> Session:
    """The process-wide session for this graph, backend, device, thread count and mode.

    Created once and shared: sessions are thread-safe, and a second copy would only
    double the memory. ``cache_dir`` (the cleancut cache) is where OpenVINO keeps compiled
    models and TensorRT its engines. ``mode="throughput"`` (folder batches) lets OpenVINO
    split the threads into independent streams that each run one image; onnxruntime ignores it.
    """
    if backend == "auto":
        raise InvalidOptionError("resolve backend='auto' first (cleancut.inference.backends.resolve)")
    if mode not in MODES:
        raise InvalidOptionError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    n = threads if threads and threads > 0 else default_threads()
    key = (str(path), backend, device, strict, n, mode)
    with _lock:
        sess = _sessions.get(key)
        if sess is None:
            if backend == "openvino":
                from .openvino import create_session

                ov_cache = None if cache_dir is None else cache_dir / "openvino"
                sess = create_session(
                    path, device=device, strict=strict, threads=n, cache_dir=ov_cache, mode=mode
                )
            else:
                sess = _create(path, device, strict, n, cache_dir)
            _sessions[key] = sess
        return sess


def create_onnxruntime_session(
    path: Path,
    *,
    device: Device = "cpu",
    strict: bool = False,
    threads: int | None = None,
    low_memory: bool = False,
) -> InferenceSession:
    """A private (not shared) onnxruntime session, e.g. as the reference in a self-check;
    ``low_memory`` turns off the CPU arena and memory pattern (see :func:`_create`)."""
    n = threads if threads and threads > 0 else default_threads()
    return _create(path, device, strict, n, low_memory=low_memory)


def clear_sessions() -> None:
    """Forget every cached session (tests, or to free memory)."""
    with _lock:
        _sessions.clear()
