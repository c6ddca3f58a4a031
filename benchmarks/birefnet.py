#!/usr/bin/env python3
"""BiRefNet-lite's true architecture with random weights: speed, memory, backends and parity.

    # once: a venv with PyTorch beside the project's (never torch in .venv), see benchmarks/README.md
    python3 -m venv .cache/bench-venv
    .cache/bench-venv/bin/pip install torch==2.14.1 torchvision==0.29.1 timm einops kornia \
        huggingface_hub deform-conv2d-onnx-exporter==1.2.0 -e .
    git clone https://github.com/ZhengPeng7/BiRefNet /path/to/BiRefNet      # or any clone / bare git dir

    .cache/bench-venv/bin/python benchmarks/birefnet.py build  --src /path/to/BiRefNet [--seed 0]
    .cache/bench-venv/bin/python benchmarks/birefnet.py speed  [--passes 3] [--json F]
    .cache/bench-venv/bin/python benchmarks/birefnet.py memory [--passes 3] [--json F]
    .cache/bench-venv/bin/python benchmarks/birefnet.py ab     [--variants A,B] [--rounds 10]
    .cache/bench-venv/bin/python benchmarks/birefnet.py parity [--photos FILE|DIR ...] [--json F]
    .cache/bench-venv/bin/python benchmarks/birefnet.py web    [--json F]

No trained weights can be fetched here, so the network is the authors' own code (ZhengPeng7/BiRefNet,
MIT, pinned to ``SRC_COMMIT``; extracted at run time into ``<bench cache>/birefnet-src/``, never
into this repository) with ``bb = swin_v1_t`` (the lite model) and **random weights**, seeded.
The deformable convolutions' offset and modulator convolutions start at zero in their code (a
plain convolution then); ``build`` re-initialises them so the offsets are fractional pixels and
the masks vary, which makes the exported bilinear-gather arithmetic matter for the parity check,
and scales the last convolution so the logits spread over about ±4 on a real photo (a mask
with every grey level, not all 0 or 255). It exports the graph as the authors' notebook
``tutorials/BiRefNet_pth2onnx.ipynb`` does: the legacy exporter (``dynamo=False``), opset 17,
input ``input_image``, output ``output_image``, ``deform_conv2d`` through the pip package
deform-conv2d-onnx-exporter 1.2.0, patched at run time for torch 2.14 (see
:func:`register_deform_conv`). Graph and weights go to the bench cache (``.cache/bench`` at the
repository root, or ``$CLEANCUT_BENCH_CACHE``): build artefacts, never committed, never needed by
CI or the tests.

* ``speed``: ms per 1024² pass (median after the first passes, which are listed) and peak RSS
  for ONNX Runtime fp32 and OpenVINO bf16 / f32, next to IS-Net (the real fp32 graph cleancut
  runs on the CPU, from the cleancut cache: ``--cache``). Each backend runs in its own
  subprocess, one at a time, so a peak RSS (the child's ``ru_maxrss``) is that backend's
  alone. A watchdog kills a child whose RSS passes ``--rss-cap-gb`` (shared machines).
* ``memory``: ONNX Runtime session settings (arena, memory pattern, optimisation level,
  environment allocators, spinning) against peak RSS and ms per pass, for BiRefNet-lite and
  IS-Net side by side; ``cleancut`` is whatever ``cleancut.inference.runtime`` builds today.
* ``ab``: IS-Net on two ONNX Runtime settings loaded side by side in one process, passes
  alternating: the speed cost of a setting, with the machine's other load hitting both alike.
* ``parity``: on real photos (``examples/*.jpg``, the first ``--devset N`` of
  ``.cache/devset/images`` when built, ``--photos DIR``), cleancut's mask
  (``Remover(model=graph, model_family="birefnet", backend="onnxruntime")``) against the
  authors' own PyTorch inference (``tutorials/BiRefNet_inference.ipynb``: PIL resize to 1024²,
  ``ToTensor``, ImageNet ``Normalize``, ``model(x)[-1].sigmoid()``, ``ToPILImage`` and PIL's
  resize back) with the same random weights: max and mean |Δ| in levels of 255 per photo. Also
  the network alone: the ONNX graph on ONNX Runtime against PyTorch on the same tensor.
* ``web``: whether onnxruntime-web can run the graph in the page: its operator set against
  the WASM build's CPU kernels, the graph's size, and the peak memory a WASM heap must hold.

Prints JSON, then a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(os.environ.get("CLEANCUT_BENCH_CACHE", REPO / ".cache" / "bench"))
#: ZhengPeng7/BiRefNet at the commit the figures were measured with (2026-07-24).
SRC_COMMIT = "25cb9309bacf3dde954e4584594e16e142c51de5"
#: The authors' files the model needs (config, dataset and utils are imported by models/).
SRC_FILES = ("config.py", "dataset.py", "image_proc.py", "utils.py", "models", "LICENSE")
SIZE = 1024
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
GB = 1024**3


def src_dir() -> Path:
    return BENCH / "birefnet-src" / SRC_COMMIT[:12]


def graph_path(seed: int) -> Path:
    return BENCH / f"birefnet-lite-random-s{seed}.onnx"


def weights_path(seed: int) -> Path:
    return BENCH / f"birefnet-lite-random-s{seed}.pt"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in have]
    except OSError:
        pass
    return []


def machine() -> dict[str, Any]:
    import psutil

    return {
        "cpu": cpu_name(),
        "cpu_flags": cpu_flags(),
        "logical_cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / GB, 1),
        "python": platform.python_version(),
    }


# ---------------------------------------------------------------------------------------------
# build: the authors' code at SRC_COMMIT, random weights, their ONNX export


def extract_src(src: Path) -> Path:
    """The authors' files at SRC_COMMIT, from a clone or a bare git dir, into the bench cache."""
    dest = src_dir()
    if (dest / "models" / "birefnet.py").exists():
        return dest
    git_dir = src / ".git" if (src / ".git").exists() else src
    if not (git_dir / "HEAD").exists():
        raise SystemExit(f"--src {src}: not a git clone or git dir of ZhengPeng7/BiRefNet")
    ok = subprocess.run(["git", "--git-dir", str(git_dir), "cat-file", "-e", f"{SRC_COMMIT}^{{commit}}"])
    if ok.returncode != 0:
        raise SystemExit(f"--src {src} lacks commit {SRC_COMMIT}: git fetch it first")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".extract-"))
    try:
        archive = subprocess.run(
            ["git", "--git-dir", str(git_dir), "archive", "--format=tar", SRC_COMMIT, *SRC_FILES],
            check=True, capture_output=True,
        )  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive.stdout, check=True)
        config = tmp / "config.py"
        text = config.read_text()
        # The lite model: select 'swin_v1_t' from the backbone list (the notebook's edit, whose
        # literal index has since moved).
        text, n = re.subn(
            r"(self\.bb = \[(.*?)\])\[\d+\]",
            lambda m: f"{m.group(1)}[{_bb_index(m.group(2), 'swin_v1_t')}]",
            text, count=1, flags=re.S,
        )  # fmt: skip
        if n != 1:
            raise SystemExit("config.py: the backbone list 'self.bb = [...][N]' was not found")
        config.write_text(text)
        tmp.replace(dest)  # atomic: a half-extracted tree is never seen under dest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _bb_index(items: str, name: str) -> int:
    names = re.findall(r"'([^']+)'", items)
    return names.index(name)


def import_authors() -> Any:
    """Import the authors' ``models.birefnet`` (extracted by ``build``) and return the class."""
    src = src_dir()
    if not (src / "models" / "birefnet.py").exists():
        raise SystemExit(f"{src} is missing: run `birefnet.py build --src CLONE` first")
    if str(src) not in sys.path:
        sys.path.insert(0, str(src))
    from config import Config  # type: ignore[import-not-found]
    from models.birefnet import BiRefNet  # type: ignore[import-not-found]

    if Config().bb != "swin_v1_t":
        raise SystemExit(f"{src}/config.py selects {Config().bb}, not swin_v1_t")
    return BiRefNet


def register_deform_conv() -> None:
    """deform-conv2d-onnx-exporter 1.2.0 with the two fixes torch 2.14 needs, patched in memory.

    1. Its dtype table import (``torch.onnx._type_utils``) moved to
       ``torch.onnx._internal.torchscript_exporter._type_utils``: without it the package falls
       back to tables that no longer hold every type.
    2. Spatial sizes the tracer leaves unknown: the authors' notebook reads them from the
       tensor's strides (contiguous NCHW: W = stride[2], H = stride[1] / stride[2]; N from
       stride[3] = 1 for the batch of one exported here).
    """
    import deform_conv2d_onnx_exporter as dcn
    from torch.onnx import symbolic_helper

    if getattr(dcn, "JitScalarType", None) is None:
        from torch.onnx._internal.torchscript_exporter._type_utils import JitScalarType

        dcn.JitScalarType = JitScalarType

    def get_tensor_dim_size(tensor: Any, dim: int) -> int:
        size = symbolic_helper._get_tensor_dim_size(tensor, dim)
        if size is None:
            strides = tensor.type().strides()
            if dim == 3:
                size = strides[2]
            elif dim == 2:
                size = strides[1] // strides[2]
            elif dim == 0:
                size = strides[3]
        if size is None:
            raise RuntimeError(f"deform_conv2d export: dimension {dim} of {tensor} is unknown")
        return int(size)

    dcn.get_tensor_dim_size = get_tensor_dim_size
    dcn.register_deform_conv2d_onnx_op()


def authors_transform() -> Any:
    """``transform_image`` of the authors' inference notebook."""
    from torchvision import transforms

    return transforms.Compose(
        [
            transforms.Resize((SIZE, SIZE)),
            transforms.ToTensor(),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )


def cmd_build(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from PIL import Image

    extract_src(args.src)
    graph, weights = graph_path(args.seed), weights_path(args.seed)
    if graph.exists() and weights.exists() and not args.force:
        print(f"{graph} exists (--force rebuilds)")
        return {"graph": str(graph), "weights": str(weights)}
    birefnet_cls = import_authors()
    torch.manual_seed(args.seed)
    torch.set_float32_matmul_precision("high")  # the notebook's choice
    model = birefnet_cls(bb_pretrained=False).eval()
    from models.modules.deform_conv import DeformableConv2d  # type: ignore[import-not-found]

    gen = torch.Generator().manual_seed(args.seed + 1)
    n_deform = 0
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, DeformableConv2d):
                # Offsets of about ±1.5 px (fractional: bilinear sampling matters) that vary with
                # the input; modulators 2·sigmoid(·) spread over 0.2..1.8.
                for conv, bias_std in ((m.offset_conv, 1.5), (m.modulator_conv, 1.0)):
                    conv.weight.normal_(0.0, 0.02, generator=gen)
                    conv.bias.normal_(0.0, bias_std, generator=gen)
                n_deform += 1
        # Calibrate the last convolution on a real photo: logits with mean 0 and std 2.
        photo = Image.open(REPO / "examples" / "astronaut.jpg").convert("RGB")
        x = authors_transform()(photo).unsqueeze(0)
        out_conv = model.decoder.conv_out1[0]
        logits = model(x)[-1]
        mean, std = float(logits.mean()), float(logits.std())
        if not np.isfinite(std) or std == 0:
            raise SystemExit(f"random network gave degenerate logits (mean {mean}, std {std})")
        out_conv.weight.mul_(2.0 / std)
        out_conv.bias.sub_(mean).mul_(2.0 / std)
        check = model(x)[-1]
    params = sum(p.numel() for p in model.parameters())
    BENCH.mkdir(parents=True, exist_ok=True)
    tmp_w = weights.with_name(f".{weights.name}.{os.getpid()}.tmp")
    torch.save(model.state_dict(), tmp_w)
    tmp_w.replace(weights)

    register_deform_conv()
    tmp_g = graph.with_name(f".{graph.name}.{os.getpid()}.tmp")
    t0 = time.perf_counter()
    torch.onnx.export(
        model, (torch.randn(1, 3, SIZE, SIZE),), str(tmp_g),
        verbose=False, opset_version=17, input_names=["input_image"], output_names=["output_image"],
        dynamo=False,
    )  # fmt: skip
    export_s = time.perf_counter() - t0
    tmp_g.replace(graph)
    import onnx

    g = onnx.load(str(graph), load_external_data=False)
    report = {
        "benchmark": "birefnet-build",
        "source": f"ZhengPeng7/BiRefNet@{SRC_COMMIT}",
        "seed": args.seed,
        "parameters": params,
        "deformable_convs_reinitialised": n_deform,
        "logits_before_calibration": {"mean": round(mean, 4), "std": round(std, 4)},
        "logits_after": {"mean": round(float(check.mean()), 4), "std": round(float(check.std()), 4)},
        "graph": str(graph),
        "graph_bytes": graph.stat().st_size,
        "nodes": len(g.graph.node),
        "inputs": [(i.name, [d.dim_value for d in i.type.tensor_type.shape.dim]) for i in g.graph.input],
        "outputs": [(o.name, [d.dim_value for d in o.type.tensor_type.shape.dim]) for o in g.graph.output],
        "export_s": round(export_s, 1),
        "torch": torch.__version__,
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2),
    }
    return report


# ---------------------------------------------------------------------------------------------
# one measurement, in a child process: load, first passes, timed passes, peak RSS


#: ONNX Runtime session settings measured by ``memory`` (cleancut's are built by its runtime).
ORT_VARIANTS: dict[str, dict[str, Any]] = {
    "cleancut": {},
    "cleancut-low-memory": {},
    "all+arena+pattern": {"level": "all", "arena": True, "pattern": True},
    "no-arena": {"level": "all", "arena": False, "pattern": True},
    "no-pattern": {"level": "all", "arena": True, "pattern": False},
    "no-arena+no-pattern": {"level": "all", "arena": False, "pattern": False},
    "no-arena+no-pattern+extended": {"level": "extended", "arena": False, "pattern": False},
    "no-arena+no-pattern+basic": {"level": "basic", "arena": False, "pattern": False},
    "env-arena(same-as-requested)": {"level": "all", "env_arena": True, "pattern": False},
    "no-arena+no-pattern+no-spin": {"level": "all", "arena": False, "pattern": False, "spin": False},
}


def _ort_session(graph: Path, threads: int, variant: str) -> Any:
    import onnxruntime as ort

    if variant.startswith("cleancut"):
        from cleancut.inference.runtime import create_onnxruntime_session

        low = variant == "cleancut-low-memory"
        return create_onnxruntime_session(graph, device="cpu", threads=threads, low_memory=low).session
    v = ORT_VARIANTS[variant]
    opts = ort.SessionOptions()
    opts.graph_optimization_level = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    }[v["level"]]
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    opts.enable_cpu_mem_arena = v.get("arena", True)
    opts.enable_mem_pattern = v.get("pattern", True)
    if not v.get("spin", True):
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if v.get("env_arena"):
        # One arena in the environment that grows by what is asked (not the next power of two)
        # and that the session uses instead of its own.
        mem = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        ort.create_and_register_allocator(mem, ort.OrtArenaCfg(0, 1, -1, -1))
        opts.add_session_config_entry("session.use_env_allocators", "1")
    return ort.InferenceSession(str(graph), sess_options=opts, providers=["CPUExecutionProvider"])


def child(job: dict[str, Any]) -> dict[str, Any]:
    """Run one job (backend, variant, graph) and return its times and memory."""
    import psutil

    proc = psutil.Process()
    base_rss = proc.memory_info().rss
    graph = Path(job["graph"])
    threads = int(job["threads"])
    x = np.load(job["input"])
    t0 = time.perf_counter()
    if job["backend"] == "onnxruntime":
        sess = _ort_session(graph, threads, job["variant"])
        name = sess.get_inputs()[0].name

        def run() -> np.ndarray:
            out: np.ndarray = sess.run(None, {name: x})[0]
            return out
    else:
        import openvino as ov

        core = ov.Core()
        compiled = core.compile_model(
            str(graph), "CPU",
            {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads,
             "INFERENCE_PRECISION_HINT": job["variant"]},
        )  # fmt: skip
        req = compiled.create_infer_request()

        def run() -> np.ndarray:
            req.infer({0: x})
            return np.array(req.get_output_tensor(0).data, copy=True)

    load_s = time.perf_counter() - t0
    loaded_rss = proc.memory_info().rss
    times, cpu = [], []
    out = None
    for _ in range(int(job["first"]) + int(job["passes"])):
        t, c = time.perf_counter(), time.process_time()
        out = run()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    assert out is not None
    first, rest = times[: int(job["first"])], times[int(job["first"]) :]
    rest_cpu = cpu[int(job["first"]) :]
    np.save(job["output"], out)
    return {
        "load_s": round(load_s, 2),
        "first_ms": [round(t * 1000) for t in first],
        "ms": round(statistics.median(rest) * 1000) if rest else None,
        "ms_all": [round(t * 1000) for t in rest],
        # CPU seconds of every thread per pass: less sensitive to other load on a shared machine
        # than wall time (but spinning threads count too).
        "cpu_ms": round(statistics.median(rest_cpu) * 1000) if rest_cpu else None,
        "rss_start_gb": round(base_rss / GB, 2),
        "rss_loaded_gb": round(loaded_rss / GB, 2),
        "rss_end_gb": round(proc.memory_info().rss / GB, 2),
        # Linux reports KiB: the child's own peak, load and passes together.
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2),
        "output_shape": list(out.shape),
    }


def run_child(job: dict[str, Any], cap_gb: float, timeout: float) -> dict[str, Any]:
    """``child(job)`` in a fresh interpreter (this file with ``_child``), watched for memory."""
    import psutil

    while psutil.virtual_memory().available < (cap_gb + 1) * GB:
        # Shared machine: wait for room rather than push others into swapless OOM.
        print(f"  waiting: {psutil.virtual_memory().available / GB:.1f} GB free, want {cap_gb + 1:.0f}")
        time.sleep(15)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(job, f)
    out_json = f.name + ".out"
    cmd = [sys.executable, __file__, "_child", f.name, out_json]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watched = psutil.Process(p.pid)
    peak = [0.0]
    killed = threading.Event()

    def watch() -> None:
        while p.poll() is None:
            try:
                rss = watched.memory_info().rss / GB
            except psutil.Error:
                return
            peak[0] = max(peak[0], rss)
            if rss > cap_gb:
                killed.set()
                p.kill()
                return
            time.sleep(0.05)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        log, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        log, _ = p.communicate()
        return {"error": f"timed out after {timeout:.0f} s", "log": log[-2000:]}
    finally:
        t.join()
        Path(f.name).unlink()
    if killed.is_set():
        return {"error": f"killed: RSS passed --rss-cap-gb {cap_gb}", "peak_rss_gb": round(peak[0], 2)}
    if p.returncode != 0 or not Path(out_json).exists():
        return {"error": f"child exited {p.returncode}", "log": log[-3000:]}
    result: dict[str, Any] = json.loads(Path(out_json).read_text())
    Path(out_json).unlink()
    return result


def imagenet_input(photo: Path) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(photo), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"cannot read {photo}")
    rgb = cv2.cvtColor(cv2.resize(bgr, (SIZE, SIZE), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    x = (rgb.astype(np.float32) / 255.0 - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def isnet_input(photo: Path) -> np.ndarray:
    """IMG.LY's IS-Net input: 1024² RGB, ``(v − 128) / 256`` (what ``isnet_fp16`` is fed)."""
    import cv2

    bgr = cv2.imread(str(photo), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"cannot read {photo}")
    rgb = cv2.cvtColor(cv2.resize(bgr, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(((rgb.astype(np.float32) - 128) / 256).transpose(2, 0, 1)[None])


def isnet_graph(cache: Path | None) -> Path:
    from cleancut import Settings
    from cleancut.models.store import ensure_model

    settings = Settings.from_env(cache_dir=cache) if cache else Settings.from_env()
    prepared: Any = ensure_model("isnet_fp16", settings)
    return Path(getattr(prepared, "path", prepared))  # a Path, or a Prepared graph holding one


def default_cache() -> Path | None:
    test_cache = REPO / ".cache" / "cleancut"
    return test_cache if test_cache.exists() else None


def measure(jobs: list[tuple[str, str, str, str]], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run ``(model, backend, variant, graph)`` jobs one after the other, each in its own child."""
    from cleancut.inference.runtime import default_threads

    threads = args.threads or default_threads()
    photo = REPO / "examples" / "astronaut.jpg"
    work = Path(tempfile.mkdtemp(prefix="birefnet-bench-"))
    inputs = {"birefnet": work / "birefnet.npy", "isnet": work / "isnet.npy"}
    np.save(inputs["birefnet"], imagenet_input(photo))
    np.save(inputs["isnet"], isnet_input(photo))
    rows = []
    try:
        for model, backend, variant, graph in jobs:
            print(f"-- {model} {backend} {variant}", flush=True)
            job = {
                "graph": graph, "backend": backend, "variant": variant, "threads": threads,
                "input": str(inputs[model]), "output": str(work / f"{model}-{backend}-{variant}.npy"),
                "first": args.first, "passes": args.passes,
            }  # fmt: skip
            r = run_child(job, args.rss_cap_gb, args.timeout)
            row = {"model": model, "backend": backend, "variant": variant, "threads": threads, **r}
            if "error" not in r:
                ref = work / f"{model}-onnxruntime-{jobs_ref(jobs, model)}.npy"
                if ref.exists() and ref != Path(job["output"]):
                    a, b = np.load(job["output"]), np.load(ref)
                    if model == "birefnet":  # logits: compare the masks they make
                        a, b = 1 / (1 + np.exp(-a)), 1 / (1 + np.exp(-b))
                    row["max_abs_diff_255_vs_ort"] = round(float(np.abs(a - b).max() * 255), 3)
            print("   ", json.dumps({k: v for k, v in row.items() if k != "log"}), flush=True)
            rows.append(row)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def jobs_ref(jobs: list[tuple[str, str, str, str]], model: str) -> str:
    """The first ONNX Runtime variant run for ``model``: the reference for output agreement."""
    return next(v for m, b, v, _ in jobs if m == model and b == "onnxruntime")


def need_graph(seed: int) -> Path:
    g = graph_path(seed)
    if not g.exists():
        raise SystemExit(f"{g} is missing: run `birefnet.py build --src CLONE` first")
    return g


def cmd_speed(args: argparse.Namespace) -> dict[str, Any]:
    g, i = str(need_graph(args.seed)), str(isnet_graph(args.cache))
    jobs = [
        ("birefnet", "onnxruntime", "cleancut", g),
        ("birefnet", "onnxruntime", "cleancut-low-memory", g),
        ("birefnet", "openvino", "bf16", g),
        ("birefnet", "openvino", "f32", g),
        ("isnet", "onnxruntime", "cleancut", i),
        ("isnet", "onnxruntime", "cleancut-low-memory", i),
        ("isnet", "openvino", "bf16", i),
        ("isnet", "openvino", "f32", i),
    ]
    jobs = [j for j in jobs if j[0] in args.models.split(",")]
    return {"benchmark": "birefnet-speed", "machine": machine(), "graph": g, "isnet": i,
            "first": args.first, "passes": args.passes, "results": measure(jobs, args)}  # fmt: skip


def cmd_memory(args: argparse.Namespace) -> dict[str, Any]:
    g, i = str(need_graph(args.seed)), str(isnet_graph(args.cache))
    variants = args.variants.split(",") if args.variants else list(ORT_VARIANTS)
    unknown = [v for v in variants if v not in ORT_VARIANTS]
    if unknown:
        raise SystemExit(f"unknown --variants {unknown}; choose from {', '.join(ORT_VARIANTS)}")
    jobs = [("isnet", "onnxruntime", v, i) for v in variants]
    jobs += [("birefnet", "onnxruntime", v, g) for v in variants]
    return {"benchmark": "birefnet-memory", "machine": machine(), "graph": g, "isnet": i,
            "first": args.first, "passes": args.passes, "results": measure(jobs, args)}  # fmt: skip


def print_rows(report: dict[str, Any]) -> None:
    print(f"\nCPU: {report['machine']['cpu']} ({', '.join(report['machine']['cpu_flags'])}), "
          f"{report['results'][0]['threads']} threads")  # fmt: skip
    print(f"{'model':<10}{'backend':<13}{'variant':<30}{'ms/pass':>9}  {'first passes ms':<18}"
          f"{'load s':>7}{'loaded GB':>10}{'peak GB':>9}{'max|Δ|':>8}")  # fmt: skip
    for r in report["results"]:
        if "error" in r:
            print(f"{r['model']:<10}{r['backend']:<13}{r['variant']:<30}  {r['error']}")
            continue
        first = ", ".join(f"{t:,}" for t in r["first_ms"])
        diff = r.get("max_abs_diff_255_vs_ort")
        print(
            f"{r['model']:<10}{r['backend']:<13}{r['variant']:<30}{r['ms']:>9,}  {first:<18}"
            f"{r['load_s']:>7.1f}{r['rss_loaded_gb']:>10.2f}{r['peak_rss_gb']:>9.2f}"
            f"{'' if diff is None else f'{diff:.2f}':>8}"
        )


def cmd_ab(args: argparse.Namespace) -> dict[str, Any]:
    """IS-Net on two ONNX Runtime settings, loaded side by side in one process, passes
    alternating (so the other load on a shared machine hits both alike): the speed cost of a
    setting. Memory is per process, so ``memory`` measures that; never run for BiRefNet here
    (two of its sessions at once would not fit beside other work)."""
    from cleancut.inference.runtime import default_threads

    threads = args.threads or default_threads()
    x = isnet_input(REPO / "examples" / "astronaut.jpg")
    graph = isnet_graph(args.cache)
    names = args.variants.split(",")
    sessions = {v: _ort_session(graph, threads, v) for v in names}
    inp = {v: s.get_inputs()[0].name for v, s in sessions.items()}
    for v, sess in sessions.items():  # first passes: allocate and tune
        for _ in range(args.first):
            sess.run(None, {inp[v]: x})
    wall: dict[str, list[float]] = {v: [] for v in names}
    cpu: dict[str, list[float]] = {v: [] for v in names}
    for i in range(args.rounds):
        order = names if i % 2 == 0 else names[::-1]
        for v in order:
            t, c = time.perf_counter(), time.process_time()
            sessions[v].run(None, {inp[v]: x})
            wall[v].append(time.perf_counter() - t)
            cpu[v].append(time.process_time() - c)
    rows = [
        {"variant": v, "ms": round(statistics.median(wall[v]) * 1000), "min_ms": round(min(wall[v]) * 1000),
         "cpu_ms": round(statistics.median(cpu[v]) * 1000)}
        for v in names
    ]  # fmt: skip
    return {"benchmark": "birefnet-ab", "machine": machine(), "model": "isnet", "graph": str(graph),
            "threads": threads, "rounds": args.rounds, "results": rows}  # fmt: skip


def print_ab(report: dict[str, Any]) -> None:
    print(f"\nIS-Net, {report['rounds']} alternating passes each, {report['threads']} threads")
    print(f"{'variant':<32}{'median ms':>10}{'min ms':>8}{'CPU ms':>8}")
    for r in report["results"]:
        print(f"{r['variant']:<32}{r['ms']:>10,}{r['min_ms']:>8,}{r['cpu_ms']:>8,}")


# ---------------------------------------------------------------------------------------------
# parity: cleancut's recipe against the authors' PyTorch inference, same random weights

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def parity_photos(args: argparse.Namespace) -> list[Path]:
    found = sorted((REPO / "examples").glob("*.jpg"))
    devset = REPO / ".cache" / "devset" / "images"
    if args.devset and devset.is_dir():
        found += sorted(p for p in devset.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)[: args.devset]
    for extra in args.photos or []:
        if extra.is_dir():
            found += sorted(p for p in extra.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
        elif extra.is_file():
            found.append(extra)
        else:
            raise SystemExit(f"--photos {extra}: no such file or folder")
    return found


def diff_stats(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """|a − b| in levels of 255 (uint8 masks, or floats in 0..1 scaled by 255)."""
    if a.dtype == np.uint8:
        d = np.abs(a.astype(np.int16) - b.astype(np.int16)).astype(np.float64)
    else:
        d = np.abs(a.astype(np.float64) - b.astype(np.float64)) * 255
    return {
        "max": round(float(d.max()), 4),
        "mean": round(float(d.mean()), 5),
        "over_1": round(float((d > 1).mean()) * 100, 4),  # % of pixels more than one level off
    }


def sigmoid(v: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / (1.0 + np.exp(-v.astype(np.float64)))
    return out


def cmd_parity(args: argparse.Namespace) -> dict[str, Any]:
    """The two sides in two child processes, one after the other: PyTorch's memory is gone
    before ONNX Runtime's session (~12 GB at cleancut's default settings) is built."""
    graph = need_graph(args.seed)
    photos = parity_photos(args)
    work = Path(tempfile.mkdtemp(prefix="birefnet-parity-"))
    try:
        (work / "photos.json").write_text(json.dumps([str(p) for p in photos]))
        for stage in ("torch", "ort"):
            cmd = [sys.executable, __file__, "_parity", stage, str(work), "--seed", str(args.seed)]
            if subprocess.run(cmd).returncode != 0:
                raise SystemExit(f"parity: the {stage} stage failed (its output is above)")
        rows = json.loads((work / "rows.json").read_text())
        recipe = json.loads((work / "recipe.json").read_text())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "benchmark": "birefnet-parity", "machine": machine(), "graph": str(graph),
        "weights": str(weights_path(args.seed)), "recipe": recipe, "results": rows,
    }  # fmt: skip


def parity_torch(work: Path, seed: int) -> None:
    """The authors' inference notebook, step by step, on every photo: inputs, logits, masks."""
    import torch
    from PIL import Image
    from torchvision import transforms

    birefnet_cls = import_authors()
    torch.set_float32_matmul_precision("high")  # the notebook's setting
    model = birefnet_cls(bb_pretrained=False)
    model.load_state_dict(torch.load(weights_path(seed), map_location="cpu", weights_only=True))
    model.eval()
    tf = authors_transform()
    for i, name in enumerate(json.loads((work / "photos.json").read_text())):
        # No EXIF transpose in their code: the orientation tag is recorded, to see it is unset.
        image: Image.Image = Image.open(name)
        orientation = image.getexif().get(0x0112)
        image = image.convert("RGB") if image.mode != "RGB" else image
        x = tf(image).unsqueeze(0)
        t0 = time.perf_counter()
        with torch.no_grad():
            logits = model(x)[-1].to(torch.float32)
        torch_s = time.perf_counter() - t0
        pred = logits.sigmoid()[0].squeeze()
        mask = np.array(transforms.ToPILImage()(pred).resize(image.size))
        np.savez(work / f"{i}.npz", x=x.numpy(), logits=logits.numpy(), mask=mask)
        meta = {"size": list(image.size), "orientation": orientation, "torch_s": torch_s}
        (work / f"{i}.json").write_text(json.dumps(meta))
        print(f"  torch {Path(name).name}: {torch_s:.1f} s", flush=True)


def parity_ort(work: Path, seed: int) -> None:
    """The graph alone on ONNX Runtime, then cleancut's whole path, against the saved side."""
    import gc

    from cleancut import Remover
    from cleancut.inference.runtime import create_onnxruntime_session

    graph = need_graph(seed)
    names = json.loads((work / "photos.json").read_text())
    # The network alone: the exported graph on ONNX Runtime, the authors' own input tensor.
    sess = create_onnxruntime_session(graph, device="cpu", low_memory=True)
    net = []
    for i in range(len(names)):
        r = np.load(work / f"{i}.npz")
        y = sess.run(r["x"])
        net.append({
            "logits_max_abs": round(float(np.abs(y - r["logits"]).max()), 5),
            **{f"prob_{k}": v for k, v in diff_stats(sigmoid(y), sigmoid(r["logits"])).items()},
        })  # fmt: skip
    del sess
    gc.collect()

    # cleancut's whole path: decode, the family's recipe, the network, the mask at full size.
    remover = Remover(str(graph), model_family="birefnet", backend="onnxruntime", device="cpu")
    rows = []
    for i, name in enumerate(names):
        r = np.load(work / f"{i}.npz")
        meta = json.loads((work / f"{i}.json").read_text())
        mask = remover.segment(name).mask
        if mask.shape != r["mask"].shape:
            raise SystemExit(f"{name}: cleancut's mask is {mask.shape}, the authors' {r['mask'].shape}")
        rows.append({
            "photo": Path(name).name, "size": meta["size"], "exif_orientation": meta["orientation"],
            "mask_mean_255": round(float(r["mask"].mean()), 2),
            "mask_levels_used": int(np.unique(r["mask"]).size),
            "cleancut_vs_authors": diff_stats(mask, r["mask"]),
            "network_ort_vs_torch": net[i],
            "torch_s": round(meta["torch_s"], 2),
        })  # fmt: skip
        print(f"  cleancut {Path(name).name}: {json.dumps(rows[-1]['cleancut_vs_authors'])}", flush=True)
    (work / "rows.json").write_text(json.dumps(rows))
    recipe = remover.recipe.to_json() if hasattr(remover, "recipe") else None
    (work / "recipe.json").write_text(json.dumps(recipe))


def print_parity(report: dict[str, Any]) -> None:
    print(f"\n{'photo':<26}{'size':>11}{'levels':>7}{'max|Δ|':>8}{'mean|Δ|':>9}{'>1 lvl %':>9}"
          f"{'net max|Δ|':>11}{'net mean':>9}")  # fmt: skip
    for r in report["results"]:
        c, n = r["cleancut_vs_authors"], r["network_ort_vs_torch"]
        size = "x".join(str(v) for v in r["size"])
        print(f"{r['photo'][:25]:<26}{size:>11}{r['mask_levels_used']:>7}{c['max']:>8.0f}{c['mean']:>9.4f}"
              f"{c['over_1']:>9.3f}{n['prob_max']:>11.4f}{n['prob_mean']:>9.5f}")  # fmt: skip


# ---------------------------------------------------------------------------------------------
# web: onnxruntime-web (the page's engine) on this graph, in headless Chromium

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
#: The page's way (static/js/engine-worker.js): the WASM build, every core, optimisation "all".
WEB_PAGE = """<!doctype html><meta charset="utf-8"><script type="module">
const out = {};
try {
  const ort = await import("./ort/%(bundle)s");
  ort.env.wasm.wasmPaths = new URL("./ort/", location.href).href;
  ort.env.wasm.numThreads = self.crossOriginIsolated
    ? Math.min(navigator.hardwareConcurrency || 1, 16) : 1;
  ort.env.logLevel = "error";
  out.threads = ort.env.wasm.numThreads;
  let t = performance.now();
  const bytes = new Uint8Array(await (await fetch("./model.onnx")).arrayBuffer());
  out.fetch_ms = performance.now() - t;
  t = performance.now();
  const session = await ort.InferenceSession.create(
    bytes, {executionProviders: ["wasm"], graphOptimizationLevel: "all"});
  out.create_ms = performance.now() - t;
  const n = 3 * %(size)d * %(size)d;
  const x = new ort.Tensor("float32", new Float32Array(n).fill(0.25), [1, 3, %(size)d, %(size)d]);
  out.pass_ms = [];
  for (let i = 0; i < %(passes)d; i++) {
    t = performance.now();
    const y = await session.run({[session.inputNames[0]]: x});
    out.pass_ms.push(performance.now() - t);
    out.output_dims = y[session.outputNames[0]].dims;
  }
  out.ok = true;
} catch (e) { out.ok = false; out.error = String(e && e.message || e); }
window.__result = out;
</script>"""


def graph_ops(graph: Path) -> dict[str, Any]:
    import onnx

    g = onnx.load(str(graph))
    init_bytes = sum(t.ByteSize() for t in g.graph.initializer)
    return {
        "opset": [(o.domain or "ai.onnx", o.version) for o in g.opset_import],
        "ops": dict(sorted(Counter(n.op_type for n in g.graph.node).items())),
        "domains": sorted({n.domain or "ai.onnx" for n in g.graph.node}),
        "initializer_bytes": init_bytes,
    }


def browser_run(graph: Path, ort_folder: Path, bundle: str, passes: int, timeout_s: float) -> dict[str, Any]:
    """One page that loads ``graph`` into onnxruntime-web and runs ``passes`` passes; the
    renderer's peak RSS is polled from outside."""
    import http.server
    import socketserver

    import psutil
    from playwright.sync_api import sync_playwright

    page_html = (WEB_PAGE % {"bundle": bundle, "size": SIZE, "passes": passes}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a: Any) -> None:
            pass

        def do_GET(self) -> None:
            if self.path in ("/", "/index.html"):
                body, ctype = page_html, "text/html"
                path = None
            elif self.path == "/model.onnx":
                path, ctype = graph, "application/octet-stream"
            elif self.path.startswith("/ort/") and "/" not in self.path[5:]:
                path = ort_folder / self.path[5:]
                ctype = "text/javascript" if path.suffix in (".mjs", ".js") else "application/wasm"
            else:
                self.send_error(404)
                return
            if path is not None:
                if not path.is_file():
                    self.send_error(404)
                    return
                body = path.read_bytes()
            self.send_response(200)
            # Cross-origin isolation, as the server sends it: SharedArrayBuffer for WASM threads.
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    chromium = os.environ.get("CLEANCUT_CHROMIUM", "/usr/bin/chromium")
    peak = [0.0]
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            me = psutil.Process()
            done = threading.Event()

            def watch() -> None:
                while not done.is_set():
                    total = 0.0
                    for c in me.children(recursive=True):
                        try:
                            if "--type=renderer" in " ".join(c.cmdline()):
                                total = max(total, c.memory_info().rss / GB)
                        except psutil.Error:
                            pass
                    peak[0] = max(peak[0], total)
                    time.sleep(0.2)

            w = threading.Thread(target=watch, daemon=True)
            w.start()
            page = browser.new_page()
            t0 = time.perf_counter()
            page.goto(f"http://127.0.0.1:{port}/")
            try:
                page.wait_for_function(
                    "window.__result !== undefined", timeout=timeout_s * 1000, polling=1000
                )
                result: dict[str, Any] = page.evaluate("window.__result")
            except Exception as exc:  # a crashed renderer (out of memory) or a timeout
                result = {"ok": False, "error": f"{type(exc).__name__}: {exc!s}".splitlines()[0]}
            result["wall_s"] = round(time.perf_counter() - t0, 1)
            done.set()
            w.join()
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    result["renderer_peak_rss_gb"] = round(peak[0], 2)
    for k in ("fetch_ms", "create_ms"):
        if k in result:
            result[k] = round(result[k])
    if "pass_ms" in result:
        result["pass_ms"] = [round(t) for t in result["pass_ms"]]
    return result


def cmd_web(args: argparse.Namespace) -> dict[str, Any]:
    from cleancut import Settings
    from cleancut.server.ort_assets import ORT_WEB_VERSION, WASM_BUNDLE, provision_ort

    graph = need_graph(args.seed)
    settings = Settings.from_env(cache_dir=args.cache) if args.cache else Settings.from_env()
    assets = provision_ort(settings)
    report: dict[str, Any] = {
        "benchmark": "birefnet-web", "machine": machine(), "graph": str(graph),
        "graph_bytes": graph.stat().st_size, "onnxruntime_web": ORT_WEB_VERSION, **graph_ops(graph),
    }  # fmt: skip
    runs = {"birefnet-lite": graph}
    if not args.skip_isnet:
        runs = {"isnet (fp32)": isnet_graph(args.cache), **runs}
    report["runs"] = {}
    for name, g in runs.items():
        print(f"-- {name} in Chromium", flush=True)
        report["runs"][name] = browser_run(g, assets.folder, WASM_BUNDLE, args.passes, args.timeout)
        print("   ", json.dumps(report["runs"][name]), flush=True)
    return report


def print_web(report: dict[str, Any]) -> None:
    print(f"\ngraph {report['graph_bytes'] / 1e6:.1f} MB, {sum(report['ops'].values()):,} nodes, "
          f"{len(report['ops'])} operator types, domains {', '.join(report['domains'])}")  # fmt: skip
    print(f"{'model':<16}{'ok':<5}{'threads':>8}{'create s':>10}{'pass s':>16}{'renderer GB':>13}  error")
    for name, r in report["runs"].items():
        passes = ", ".join(f"{t / 1000:.1f}" for t in r.get("pass_ms", []))
        create = f"{r['create_ms'] / 1000:.1f}" if "create_ms" in r else "-"
        print(f"{name:<16}{r['ok']!s:<5}{r.get('threads', '-'):>8}{create:>10}{passes:>16}"
              f"{r['renderer_peak_rss_gb']:>13.2f}  {r.get('error', '')}")  # fmt: skip


# ---------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="extract the authors' code, random weights, export the graph")
    b.add_argument("--src", type=Path, required=True, help="a clone or git dir of ZhengPeng7/BiRefNet")
    b.add_argument("--force", action="store_true", help="rebuild an existing graph")
    for name in ("speed", "memory"):
        p = sub.add_parser(name)
        p.add_argument("--passes", type=int, default=3, help="timed passes after the first ones")
        p.add_argument("--first", type=int, default=2, help="first passes, listed, not in the median")
        p.add_argument("--threads", type=int, default=None)
        p.add_argument("--cache", type=Path, default=default_cache(), help="cleancut cache with IS-Net")
        p.add_argument("--rss-cap-gb", type=float, default=14.0, help="kill a child above this RSS")
        p.add_argument("--timeout", type=float, default=900, help="seconds per child")
        if name == "speed":
            p.add_argument("--models", default="birefnet,isnet", help="comma list: birefnet, isnet")
        if name == "memory":
            p.add_argument("--variants", default=None, help=f"comma list of: {', '.join(ORT_VARIANTS)}")
    for p in sub.choices.values():
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--json", type=Path, default=None, help="also write the JSON report here")
    a = sub.add_parser("ab", help="IS-Net on two ORT settings side by side, passes alternating")
    a.add_argument("--variants", default="all+arena+pattern,no-arena+no-pattern")
    a.add_argument("--rounds", type=int, default=10)
    a.add_argument("--first", type=int, default=2)
    a.add_argument("--threads", type=int, default=None)
    a.add_argument("--cache", type=Path, default=default_cache(), help="cleancut cache with IS-Net")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--json", type=Path, default=None, help="also write the JSON report here")
    pp = sub.add_parser("parity", help="cleancut's mask against the authors' PyTorch inference")
    pp.add_argument("--photos", type=Path, nargs="*", help="more photos: files or folders")
    pp.add_argument("--devset", type=int, default=5, help="the first N dev-set photos, when built")
    pp.add_argument("--seed", type=int, default=0)
    pp.add_argument("--json", type=Path, default=None, help="also write the JSON report here")
    w = sub.add_parser("web", help="onnxruntime-web on the graph, in headless Chromium")
    w.add_argument("--passes", type=int, default=1)
    w.add_argument("--timeout", type=float, default=900, help="seconds for the page")
    w.add_argument("--cache", type=Path, default=default_cache(), help="cleancut cache (IS-Net, ORT web)")
    w.add_argument("--skip-isnet", action="store_true", help="only BiRefNet-lite")
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--json", type=Path, default=None, help="also write the JSON report here")
    q = sub.add_parser("_parity")
    q.add_argument("stage", choices=["torch", "ort"])
    q.add_argument("work", type=Path)
    q.add_argument("--seed", type=int, default=0)
    c = sub.add_parser("_child")
    c.add_argument("job", type=Path)
    c.add_argument("out", type=Path)
    args = ap.parse_args()
    if args.cmd == "_parity":
        (parity_torch if args.stage == "torch" else parity_ort)(args.work, args.seed)
        return
    if args.cmd == "_child":
        args.out.write_text(json.dumps(child(json.loads(args.job.read_text()))))
        return
    commands = {
        "build": cmd_build, "speed": cmd_speed, "memory": cmd_memory, "ab": cmd_ab,
        "parity": cmd_parity, "web": cmd_web,
    }  # fmt: skip
    report = commands[args.cmd](args)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    if args.cmd in ("speed", "memory"):
        print_rows(report)
    elif args.cmd == "parity":
        print_parity(report)
    elif args.cmd == "ab":
        print_ab(report)
    elif args.cmd == "web":
        print_web(report)


if __name__ == "__main__":
    main()
