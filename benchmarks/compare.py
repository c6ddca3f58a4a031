#!/usr/bin/env python3
"""cleancut side by side with its peers: same photos, same weights, one run.

    python benchmarks/compare.py [--rounds 2] [--photos small|large|all]
                                 [--tools imgly,rembg,cleancut,cleancut-ort] [--work DIR]
                                 [--skip-install] [--json FILE] [--timeout S]
    python benchmarks/compare.py --report FILE.json     # print a saved run's tables again

Tools (each in its own subprocess, loaded once, one warm-up call, then every photo):

* ``imgly``: IMG.LY's ``@imgly/background-removal-node@1.4.5`` from npm, model ``medium``,
  PNG output at its default quality 0.8, run by ``benchmarks/peers/imgly_node_run.mjs``.
  Installed into ``WORK/imgly-node`` with ``npm install --ignore-scripts`` and an npm
  ``overrides`` entry forcing ``sharp`` 0.33.5 (``benchmarks/peers/package.json``): the
  pinned sharp 0.32 downloads libvips and onnxruntime-node's script downloads CUDA binaries
  in their install scripts, while sharp 0.33 ships its binaries as npm packages and
  onnxruntime-node carries its CPU binaries inside its npm package. Its model data comes
  from ``npm pack @imgly/background-removal-data@1.4.5``, extracted into
  ``WORK/imgly-node/data`` and passed as ``config.publicPath`` (a ``file://`` URL of its
  ``dist/``); the assembled ``/models/medium`` is checked to be byte-identical to
  cleancut's ``isnet_fp16.onnx``.
* ``rembg``: ``rembg[cpu]`` from PyPI in its own venv (``WORK/rembg-venv``), session
  ``dis_custom`` (rembg's IS-Net class for custom weights) on cleancut's ``isnet_fp16.onnx``.
  rembg accepts a custom ``model_path`` only inside its home folder, so the model is
  symlinked into ``WORK/rembg-home`` and ``REMBG_HOME`` points there (``U2NET_HOME``, which
  would win, is removed from its environment). Timed: ``remove(bytes)`` → PNG bytes → write.
* ``cleancut``: the path the CLI takes for one file (``plan_jobs`` + ``run_jobs`` on one
  loaded ``Remover``), default backend unless ``--cleancut-backend``. Also timed: the CLI as
  a whole process on one 12 MP photo (cold start: imports and model load, cache warm).
* ``cleancut-ort``: the same with ``backend="onnxruntime"``, the peers' runtime, in the
  column "cleancut on onnxruntime" beside "cleancut on OpenVINO" (``auto``'s choice on a CPU
  with OpenVINO installed; the column is named after the backend the worker reports). A
  peer ÷ cleancut-on-onnxruntime is what the pipeline gains on the same runtime;
  cleancut-on-onnxruntime ÷ cleancut is what the backend gains.

Per photo, the time is the wall time of one call from reading the input file to the PNG
written, in a process already loaded and warmed up; the load and the first (warm-up) call
are reported apart, and so is each call's CPU time (whole process, all threads), which other
jobs on a shared machine disturb less than wall time. Rounds run ABAB (imgly, rembg,
cleancut, cleancut-ort, imgly, …) so machine noise falls on all; medians per photo and tool,
and the ratios to each cleancut column per photo and per size class (also within each
round, with their median), are printed as JSON (stdout and ``--json``) and as tables.

Photos: the bundled examples (0.1–0.3 MP) and 12 MP phone-size JPEGs made from them:
centre-cropped to 4:3 and upscaled to 4000×3000 with Lanczos, JPEG quality 92, written into
``WORK/photos``: real photo content at phone resolution, but upscaled, so smoother than a
real 12 MP photo (PNG sizes and encode times are somewhat lower than for a real one).

Quality: each tool's output alpha against cleancut's (IoU of alpha ≥ 128, mean and max
absolute difference), the PNG's colour type (palette = lossy quantisation) and the mean RGB
error against the source photo where the cut-out is opaque.

This file runs as the orchestrator (cleancut's venv) and as the Python workers (``--worker``,
including inside rembg's venv): at module level it imports only the standard library.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers"
#: cleancut-ort: cleancut forced onto onnxruntime, the peers' runtime (its graph: the same
#: weights widened to fp32, unused outputs pruned), to separate what the pipeline gains from
#: what the backend (OpenVINO bf16 by default on this CPU) gains.
TOOLS = ("imgly", "rembg", "cleancut", "cleancut-ort")
#: the cleancut columns the peers are divided by
REFERENCES = ("cleancut", "cleancut-ort")
IMGLY_VERSION = "1.4.5"
IMGLY_DATA = f"@imgly/background-removal-data@{IMGLY_VERSION}"
IMGLY_MODEL = "medium"  # IMG.LY's name for isnet_fp16
MODEL = "isnet_fp16"
REMBG_SPEC = "rembg[cpu]"  # rembg's onnxruntime dependency sits in the cpu extra
SMALL_PHOTOS = ("astronaut.jpg", "chelsea.jpg", "coffee.jpg")
LARGE_SIZE = (4000, 3000)
WARMUP_PHOTO = REPO / "examples" / "astronaut.jpg"
NPM_TIMEOUT = 900
PIP_TIMEOUT = 1800
IMPORT_TIMEOUT = 1200  # rembg's first import compiles pymatting with numba (≈ 100 s here)

Json = dict[str, Any]


# =========================================================================== workers
# Run in a subprocess: ``compare.py --worker cleancut|rembg JOB.json``. One JSON object per
# line on stdout, as the node runner does: info, warmup, then one per photo and repeat.


def _emit(obj: Json) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _run_photos(job: Json, cut: Callable[[str, str], Json]) -> None:
    # cpu_s: CPU time of the whole process (all threads) during the call; less sensitive
    # than wall time to other jobs on a shared machine.
    warm = job.get("warmup")
    if warm:
        t0, c0 = time.perf_counter(), time.process_time()
        extra = cut(warm["input"], warm["output"])
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        _emit({"kind": "warmup", "input": warm["input"], "seconds": seconds, "cpu_s": cpu} | extra)
    for photo in job["photos"]:
        for i in range(int(job.get("repeat", 1))):
            t0, c0 = time.perf_counter(), time.process_time()
            extra = cut(photo["input"], photo["output"])
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            _emit(
                {"kind": "photo", "name": photo["name"], "repeat": i, "seconds": seconds, "cpu_s": cpu}
                | extra
            )


def worker_cleancut(job: Json) -> None:
    t0 = time.perf_counter()
    cleancut = importlib.import_module("cleancut")
    batch = importlib.import_module("cleancut.batch")
    t1 = time.perf_counter()
    kwargs: Json = {}
    if job.get("backend"):
        kwargs["backend"] = job["backend"]
    remover = cleancut.Remover(job["model"], **kwargs)
    remover.load()
    t2 = time.perf_counter()
    _emit(
        {
            "kind": "info",
            "versions": {
                "cleancut": getattr(cleancut, "__version__", None),
                "python": platform.python_version(),
            },
            "describe": remover.describe(),
            "import_s": t1 - t0,
            "load_s": t2 - t1,
        }
    )

    def cut(inp: str, out: str) -> Json:
        # What `cleancut IN -o OUT --overwrite` does after loading the model.
        jobs, fmt = batch.plan_jobs([inp], out)
        results = list(batch.run_jobs(jobs, remover, batch.OutputOptions(format=fmt), overwrite=True))
        if len(results) != 1 or results[0].status != "written":
            raise RuntimeError(
                f"cleancut did not write {out}: {results[0].error if results else 'no result'}"
            )
        return {"bytes": Path(out).stat().st_size, "stages": results[0].timings}

    _run_photos(job, cut)


def worker_rembg(job: Json) -> None:
    t0 = time.perf_counter()
    rembg = importlib.import_module("rembg")
    sessions = importlib.import_module("rembg.sessions")
    ort = importlib.import_module("onnxruntime")
    t1 = time.perf_counter()
    names = {cls.name() for cls in sessions.sessions_class}
    # dis_custom: IS-Net preprocessing (1024², mean 0.5, std 1); u2net_custom would feed
    # the model 320² ImageNet-normalised input, so it is only a fallback for old rembg.
    model_name = "dis_custom" if "dis_custom" in names else "u2net_custom"
    session = rembg.new_session(model_name, model_path=job["model_path"])
    t2 = time.perf_counter()
    _emit(
        {
            "kind": "info",
            "versions": {
                "rembg": getattr(rembg, "__version__", None),
                "onnxruntime": ort.__version__,
                "python": platform.python_version(),
            },
            "session": model_name,
            "session_class": type(session).__name__,
            "providers": session.inner_session.get_providers(),
            "model_path": job["model_path"],
            "import_s": t1 - t0,
            "load_s": t2 - t1,
        }
    )

    def cut(inp: str, out: str) -> Json:
        data = Path(inp).read_bytes()
        png = rembg.remove(data, session=session)
        if not isinstance(png, bytes):
            raise TypeError(f"rembg.remove(bytes) returned {type(png).__name__}")
        Path(out).write_bytes(png)
        return {"bytes": len(png)}

    _run_photos(job, cut)


WORKERS: dict[str, Callable[[Json], None]] = {"cleancut": worker_cleancut, "rembg": worker_rembg}


# =========================================================================== set-up


@dataclass(frozen=True)
class Photo:
    name: str
    path: Path
    size_class: str  # "small" | "large"
    width: int
    height: int

    @property
    def megapixels(self) -> float:
        return round(self.width * self.height / 1e6, 2)


class StepError(RuntimeError):
    """An install or run step failed; the message says which and why."""


def _tail(text: str | bytes | None, n: int = 1500) -> str:
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text[-n:].strip()


def _run(
    cmd: Sequence[str], *, timeout: float, cwd: Path | None = None, env: dict[str, str] | None = None
) -> str:
    try:
        proc = subprocess.run(
            list(cmd), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError as exc:
        raise StepError(f"{cmd[0]} not found: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise StepError(f"{' '.join(cmd)} timed out after {timeout:.0f} s: {_tail(exc.stderr)}") from exc
    if proc.returncode != 0:
        raise StepError(f"{' '.join(cmd)} exited {proc.returncode}: {_tail(proc.stderr or proc.stdout)}")
    return proc.stdout


def make_photos(work: Path, which: str) -> list[Photo]:
    from PIL import Image, ImageOps

    photos: list[Photo] = []
    folder = work / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    for name in SMALL_PHOTOS:
        src = REPO / "examples" / name
        with Image.open(src) as im:
            size = im.size
            if which in ("small", "all"):
                photos.append(Photo(name, src, "small", *size))
            if which in ("large", "all"):
                target = folder / f"{Path(name).stem}_12mp.jpg"
                if not target.exists():
                    big = ImageOps.fit(im.convert("RGB"), LARGE_SIZE, Image.Resampling.LANCZOS)
                    tmp = target.with_suffix(".tmp.jpg")
                    big.save(tmp, quality=92)
                    tmp.replace(target)
                photos.append(Photo(target.name, target, "large", *LARGE_SIZE))
    photos.sort(key=lambda p: (p.size_class != "small", p.name))
    return photos


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def cleancut_model_path(env: dict[str, str]) -> Path:
    config = importlib.import_module("cleancut.config")
    path = Path(config.Settings.from_env(env).cache_dir) / "models" / f"{MODEL}.onnx"
    if not path.is_file():
        raise StepError(f"{path} is missing: run `cleancut models fetch {MODEL}` first")
    return path


def install_imgly(work: Path, skip: bool, model_path: Path) -> Json:
    """npm install into WORK/imgly-node (once) and extract the data package; returns facts."""
    folder = work / "imgly-node"
    pkg = folder / "node_modules" / "@imgly" / "background-removal-node" / "package.json"
    dist = folder / "data" / "package" / "dist"
    info: Json = {"folder": str(folder)}
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        raise StepError("node and npm are needed for the imgly peer")
    info["node"] = _run([node, "--version"], timeout=60).strip()
    wanted = (PEERS / "package.json").read_text()
    manifest = folder / "package.json"
    fresh = manifest.exists() and manifest.read_text() == wanted and pkg.exists()
    if not fresh:
        if skip:
            raise StepError(f"{folder} is not installed (run without --skip-install)")
        folder.mkdir(parents=True, exist_ok=True)
        manifest.write_text(wanted)
        t0 = time.perf_counter()
        _run(
            [npm, "install", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=folder,
            timeout=NPM_TIMEOUT,
        )
        info["npm_install_s"] = round(time.perf_counter() - t0, 1)
    if json.loads(pkg.read_text())["version"] != IMGLY_VERSION:
        raise StepError(f"{pkg} is not version {IMGLY_VERSION}")
    if not (dist / "resources.json").exists():
        if skip:
            raise StepError(f"{dist} is missing (run without --skip-install)")
        t0 = time.perf_counter()
        packs = folder / "pack"
        packs.mkdir(exist_ok=True)
        _run(
            [npm, "pack", IMGLY_DATA, "--pack-destination", str(packs), "--loglevel=error"],
            cwd=folder,
            timeout=NPM_TIMEOUT,
        )
        tgz = sorted(packs.glob("*.tgz"))
        if not tgz:
            raise StepError(f"npm pack {IMGLY_DATA} wrote no tarball")
        tmp = folder / "data.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        with tarfile.open(tgz[-1]) as tar:
            tar.extractall(tmp, filter="data")
        shutil.rmtree(folder / "data", ignore_errors=True)
        tmp.rename(folder / "data")
        shutil.rmtree(packs, ignore_errors=True)
        info["data_fetch_s"] = round(time.perf_counter() - t0, 1)
    info["publicPath"] = dist.resolve().as_uri() + "/"
    # Same weights? Assemble IMG.LY's model from its chunks and compare with ours.
    entry = json.loads((dist / "resources.json").read_text())[f"/models/{IMGLY_MODEL}"]
    h = hashlib.sha256()
    for chunk in sorted(entry["chunks"], key=lambda c: c["offsets"][0]):
        h.update((dist / chunk["hash"]).read_bytes())
    info["model_sha256"] = h.hexdigest()
    info["same_weights_as_cleancut"] = info["model_sha256"] == _sha256(model_path)
    return info


def rembg_python(work: Path) -> Path:
    return work / "rembg-venv" / "bin" / "python"


def install_rembg(work: Path, skip: bool, model_path: Path, spec: str) -> Json:
    venv = work / "rembg-venv"
    python = rembg_python(work)
    marker = venv / ".cleancut-bench"
    info: Json = {"venv": str(venv), "spec": spec}
    if not (marker.exists() and marker.read_text() == spec):
        if skip:
            raise StepError(f"{venv} is not installed (run without --skip-install)")
        t0 = time.perf_counter()
        if not python.exists():
            _run([sys.executable, "-m", "venv", str(venv)], timeout=300)
        _run([str(python), "-m", "pip", "install", "-q", "--upgrade", spec], timeout=PIP_TIMEOUT)
        info["pip_install_s"] = round(time.perf_counter() - t0, 1)
        # The first import compiles pymatting's numba kernels into its cache: do it here,
        # not inside a timed run.
        t0 = time.perf_counter()
        _run([str(python), "-c", "import rembg"], timeout=IMPORT_TIMEOUT)
        info["first_import_s"] = round(time.perf_counter() - t0, 1)
        marker.write_text(spec)
    freeze = _run([str(python), "-m", "pip", "freeze"], timeout=120)
    info["packages"] = {
        line.split("==")[0].lower(): line.split("==")[1]
        for line in freeze.splitlines()
        if "==" in line and line.split("==")[0].lower() in ("rembg", "onnxruntime", "pillow", "numpy")
    }
    # rembg refuses a model_path outside its home folder: link ours in.
    home = work / "rembg-home"
    link = home / "models" / "dis_custom" / model_path.name
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(model_path.resolve())
    info["rembg_home"] = str(home)
    info["model_path"] = str(link)
    return info


# =========================================================================== running


def _parse_lines(text: str | bytes | None) -> list[Json]:
    if text is None:
        return []
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    out: list[Json] = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out


def run_worker(cmd: Sequence[str], env: dict[str, str], timeout: float) -> Json:
    """Run one tool over all photos; returns its parsed lines, wall time and any error."""
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    error: str | None = None
    stdout: str | bytes | None
    stderr: str | bytes | None
    rc: int | None
    try:
        proc = subprocess.run(
            list(cmd), env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        stdout, stderr, rc = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        stdout, stderr, rc = exc.stdout, exc.stderr, None
        error = f"timed out after {timeout:.0f} s"
    except OSError as exc:
        stdout, stderr, rc = "", "", None
        error = f"could not start {cmd[0]}: {exc}"
    wall = time.perf_counter() - t0
    if rc not in (0, None):
        error = f"exited {rc}: {_tail(stderr)}"
    lines = _parse_lines(stdout)
    info = next((x for x in lines if x.get("kind") == "info"), {})
    warm = next((x for x in lines if x.get("kind") == "warmup"), None)
    return {
        "wall_s": round(wall, 3),
        "loadavg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "info": info,
        "warmup": warm,
        "photos": [x for x in lines if x.get("kind") == "photo"],
        "error": error,
    }


def run_cli_cold(photo: Photo, out: Path, env: dict[str, str], backend: str | None, timeout: float) -> Json:
    exe = Path(sys.executable).parent / "cleancut"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "from cleancut.cli import main; main()"]
    cmd += [str(photo.path), "-o", str(out), "--overwrite", "--quiet", "-m", MODEL]
    if backend:
        cmd += ["--backend", backend]
    out.unlink(missing_ok=True)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"photo": photo.name, "seconds": None, "error": f"timed out after {timeout:.0f} s"}
    seconds = time.perf_counter() - t0
    ok = proc.returncode == 0 and out.exists()
    return {
        "photo": photo.name,
        "seconds": round(seconds, 3) if ok else None,
        "error": None if ok else f"exited {proc.returncode}: {_tail(proc.stderr)}",
        "command": " ".join(cmd),
    }


# =========================================================================== quality


_PNG_TYPES = {0: "gray", 2: "rgb", 3: "palette", 4: "gray+alpha", 6: "rgba"}


def png_info(path: Path) -> Json:
    """Colour type and chunks of a PNG, read from its bytes (palette = quantised, lossy)."""
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return {"format": "not png", "bytes": len(data)}
    chunks: list[str] = []
    pos = 8
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8].decode("latin-1")
        if kind not in chunks:
            chunks.append(kind)
        pos += 12 + length
    bit_depth, color_type = data[24], data[25]
    return {
        "bytes": len(data),
        "color_type": _PNG_TYPES.get(color_type, str(color_type)),
        "bit_depth": bit_depth,
        "palette": color_type == 3,
        "chunks": [c for c in chunks if c not in ("IDAT",)],
    }


def _load_rgba(path: Path) -> Any:
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGBA"))


def quality_report(photos: Sequence[Photo], outputs: dict[str, dict[str, Path]]) -> Json:
    """Per photo: each tool's alpha vs cleancut's, PNG type, RGB error vs the source."""
    import numpy as np
    from PIL import Image

    report: Json = {}
    for photo in photos:
        with Image.open(photo.path) as im:
            src = np.asarray(im.convert("RGB")).astype(np.int16)
        ref_path = outputs.get("cleancut", {}).get(photo.name)
        ref = _load_rgba(ref_path)[..., 3].astype(np.int16) if ref_path and ref_path.exists() else None
        row: Json = {}
        for tool, paths in outputs.items():
            path = paths.get(photo.name)
            if path is None or not path.exists():
                continue
            rgba = _load_rgba(path)
            entry: Json = png_info(path)
            if rgba.shape[:2] != src.shape[:2]:
                entry["error"] = (
                    f"output is {rgba.shape[1]}×{rgba.shape[0]}, source {src.shape[1]}×{src.shape[0]}"
                )
                row[tool] = entry
                continue
            alpha = rgba[..., 3].astype(np.int16)
            top = int(alpha.max())
            entry["max_alpha"] = top
            if top >= 250:
                # A lossless cut-out keeps the decoded source pixels where it is opaque (both
                # decoders are libjpeg-turbo and agree): palette quantisation shows up here.
                # Measured at the output's highest alpha, because IMG.LY truncates v·255 and
                # its subject tops out below 255; rembg composites RGB towards black by alpha.
                sel = alpha == top
                err = np.abs(rgba[..., :3].astype(np.int16)[sel] - src[sel])
                entry["rgb_mean_abs_err_vs_source"] = round(float(err.mean()), 3)
            flat = np.ascontiguousarray(rgba).view(np.uint32).ravel()
            entry["distinct_rgba"] = int(np.unique(flat).size)
            entry["lossy"] = bool(entry["palette"] or entry.get("rgb_mean_abs_err_vs_source", 0) > 1.0)
            if ref is not None:
                a, b = alpha >= 128, ref >= 128
                union = int(np.logical_or(a, b).sum())
                diff = np.abs(alpha - ref)
                entry["vs_cleancut"] = {
                    "iou": round(int(np.logical_and(a, b).sum()) / union, 5) if union else 1.0,
                    "mean_abs_alpha_diff": round(float(diff.mean()), 3),
                    "max_abs_alpha_diff": int(diff.max()),
                    "pct_pixels_diff_gt_16": round(100 * float((diff > 16).mean()), 3),
                }
            row[tool] = entry
        report[photo.name] = row
    return report


# =========================================================================== summary


def _median(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return round(statistics.median(vals), 3) if vals else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def _round_median(result: Json, round_no: int, name: str) -> float | None:
    return _median(
        p["seconds"]
        for run in result["runs"]
        if run.get("round") == round_no
        for p in run["photos"]
        if p["name"] == name
    )


def _sum_or_none(values: Iterable[float | None]) -> float | None:
    vals = list(values)
    return None if any(v is None for v in vals) else sum(v for v in vals if v is not None)


def summarize(photos: Sequence[Photo], tools: Sequence[str], results: Json, cli: list[Json]) -> Json:
    per_photo: Json = {}
    for photo in photos:
        row: Json = {"size_class": photo.size_class, "megapixels": photo.megapixels}
        for tool in tools:
            times = [
                p["seconds"]
                for run in results[tool]["runs"]
                for p in run["photos"]
                if p["name"] == photo.name
            ]
            stages = [
                p["stages"]
                for run in results[tool]["runs"]
                for p in run["photos"]
                if p["name"] == photo.name and p.get("stages")
            ]
            cpu = [
                p.get("cpu_s")
                for run in results[tool]["runs"]
                for p in run["photos"]
                if p["name"] == photo.name
            ]
            row[tool] = {
                "median_s": _median(times),
                "cpu_median_s": _median(cpu),
                "min_s": round(min(times), 3) if times else None,
                "n": len(times),
                "stages_median_s": {k: _median(st.get(k) for st in stages) for k in stages[0]}
                if stages
                else None,
            }
        for ref in (r for r in REFERENCES if r in tools):
            for tool in tools:
                if tool == ref or (ref == "cleancut-ort" and tool == "cleancut"):
                    continue
                row[f"{tool}/{ref}"] = _ratio(row[tool]["median_s"], row[ref]["median_s"])
                # The same ratio inside each round: neighbours in time share the machine's
                # load of the moment, so these move less than the times themselves.
                per_round = [
                    _ratio(
                        _round_median(results[tool], r, photo.name),
                        _round_median(results[ref], r, photo.name),
                    )
                    for r in range(1, 1 + max(len(results[tool]["runs"]), len(results[ref]["runs"])))
                ]
                row[f"{tool}/{ref}_per_round"] = per_round
                row[f"{tool}/{ref}_per_round_median"] = _median(per_round)
        per_photo[photo.name] = row
    per_class: Json = {}
    for size_class in ("small", "large"):
        names = [p.name for p in photos if p.size_class == size_class]
        if not names:
            continue
        entry: Json = {"photos": names}
        for tool in tools:
            meds = [per_photo[n][tool]["median_s"] for n in names]
            entry[f"{tool}_total_s"] = round(sum(meds), 3) if all(m is not None for m in meds) else None
        for ref in (r for r in REFERENCES if r in tools):
            for tool in tools:
                if tool == ref or (ref == "cleancut-ort" and tool == "cleancut"):
                    continue
                key = f"{tool}/{ref}"
                entry[key] = _ratio(entry[f"{tool}_total_s"], entry[f"{ref}_total_s"])
                entry[f"{key}_per_photo_median"] = _median([per_photo[n][key] for n in names])
                rounds = len(per_photo[names[0]][f"{key}_per_round"])
                entry[f"{key}_per_round"] = [
                    _ratio(
                        *(_sum_or_none(_round_median(results[t], r, n) for n in names) for t in (tool, ref))
                    )
                    for r in range(1, rounds + 1)
                ]
                entry[f"{key}_per_round_median"] = _median(entry[f"{key}_per_round"])
        per_class[size_class] = entry
    startup: Json = {}
    for tool in tools:
        runs = results[tool]["runs"]
        startup[tool] = {
            "import_s": _median(r["info"].get("import_s") for r in runs),
            "load_s": _median(r["info"].get("load_s") for r in runs),
            "first_call_s": _median((r["warmup"] or {}).get("seconds") for r in runs),
            "process_wall_s": _median(r["wall_s"] for r in runs if not r["error"]),
        }
    return {
        "per_photo": per_photo,
        "per_class": per_class,
        "startup": startup,
        "cleancut_cli_cold_s": _median(c.get("seconds") for c in cli),
    }


def _fmt(v: float | None, width: int, unit: str = "") -> str:
    return f"{'—':>{width}}" if v is None else f"{v:>{width - len(unit)}.2f}{unit}"


def _labels(report: Json, tools: Sequence[str]) -> dict[str, str]:
    """Column names: the cleancut columns named after the backend their worker reported."""
    names = {"imgly": "IMG.LY node", "rembg": "rembg"}
    out: dict[str, str] = {}
    for tool in tools:
        if tool in names:
            out[tool] = names[tool]
            continue
        backend = (report["tools"][tool].get("info") or {}).get("describe", {}).get("backend")
        if backend is None:
            backend = "onnxruntime" if tool == "cleancut-ort" else "default backend"
        out[tool] = f"cleancut on {'OpenVINO' if backend == 'openvino' else backend}"
    return out


def _ratio_columns(tools: Sequence[str]) -> list[tuple[str, str]]:
    """(tool, reference) pairs shown as ratio columns: every other tool ÷ each cleancut column."""
    return [
        (t, ref)
        for ref in REFERENCES
        if ref in tools
        for t in tools
        if t != ref and not (ref == "cleancut-ort" and t == "cleancut")
    ]


def print_table(report: Json, tools: Sequence[str]) -> None:
    s = report["summary"]
    labels = _labels(report, tools)
    short = {"imgly": "IMG.LY", "rembg": "rembg", "cleancut": "cc", "cleancut-ort": "cc-ort"}
    pairs = _ratio_columns(tools)
    rounds = report["config"]["rounds"]
    widths = {t: max(13, len(labels[t]) + 2) for t in tools}
    rw = 15
    print(f"\nMedian seconds per photo (read → cut-out → PNG written; loaded and warm; {rounds} round(s))")
    print("  cc = " + labels.get("cleancut", "—") + ", cc-ort = " + labels.get("cleancut-ort", "—"))
    head = (
        f"{'photo':<22}{'MP':>6}"
        + "".join(f"{labels[t]:>{widths[t]}}" for t in tools)
        + "".join(f"{short[t] + '÷' + short[r]:>{rw}}" for t, r in pairs)
    )
    print(head)
    print("-" * len(head))
    for name, row in s["per_photo"].items():
        print(
            f"{name:<22}{row['megapixels']:>6}"
            + "".join(_fmt(row[t]["median_s"], widths[t]) for t in tools)
            + "".join(_fmt(row[f"{t}/{r}"], rw, "×") for t, r in pairs)
        )
    for size_class, entry in s["per_class"].items():
        label = f"{size_class} ({len(entry['photos'])} photos, sum)"
        print(
            f"{label:<28}"
            + "".join(_fmt(entry[f"{t}_total_s"], widths[t]) for t in tools)
            + "".join(_fmt(entry[f"{t}/{r}"], rw, "×") for t, r in pairs)
        )
    print("\nCPU seconds per photo, whole process, all threads (medians; steadier than wall time here)")
    print(head)
    for name, row in s["per_photo"].items():
        print(
            f"{name:<22}{row['megapixels']:>6}"
            + "".join(_fmt(row[t].get("cpu_median_s"), widths[t]) for t in tools)
            + "".join(
                _fmt(_ratio(row[t].get("cpu_median_s"), row[r].get("cpu_median_s")), rw, "×")
                for t, r in pairs
            )
        )
    if rounds > 1:
        for size_class, entry in s["per_class"].items():
            parts = [
                f"{short[t]}÷{short[r]} "
                + ", ".join("—" if v is None else f"{v:.2f}×" for v in entry[f"{t}/{r}_per_round"])
                + f" (median {_fmt(entry[f'{t}/{r}_per_round_median'], 8, '×').strip()})"
                for t, r in pairs
            ]
            print(f"  {size_class}, ratio of sums in each round: " + "; ".join(parts))
    print(f"\nStart-up, medians (warm-up call on {WARMUP_PHOTO.name})")
    print(f"{'tool':<14}{'import':>10}{'load':>10}{'1st call':>10}{'process':>10}")
    for t in tools:
        st = s["startup"][t]
        print(
            f"{t:<14}"
            + _fmt(st["import_s"], 10)
            + _fmt(st["load_s"], 10)
            + _fmt(st["first_call_s"], 10)
            + _fmt(st["process_wall_s"], 10)
        )
    print("  imgly loads its model lazily, inside its 1st call; process = the whole worker run")
    if s["cleancut_cli_cold_s"] is not None:
        cli = report["cleancut_cli_cold"]
        print(
            f"cleancut CLI as a whole process (start → PNG written), {cli[0]['photo']}: "
            f"{s['cleancut_cli_cold_s']:.2f} s (median)"
        )
    if report.get("quality"):
        print(
            "\nQuality vs cleancut's output: IoU (alpha ≥ 128), mean/max |Δalpha|; PNG; RGB error vs source"
        )
        print(
            f"{'photo':<22}{'tool':<14}{'IoU':>8}{'mean Δα':>9}{'max Δα':>8}{'max α':>7}{'PNG':>9}"
            f"{'lossy':>7}{'RGB err':>9}{'KiB':>8}"
        )
        for name, row in report["quality"].items():
            for tool, q in row.items():
                vs = q.get("vs_cleancut", {})
                cmp = (
                    f"{vs['iou']:>8.4f}{vs['mean_abs_alpha_diff']:>9.3f}{vs['max_abs_alpha_diff']:>8}"
                    if vs
                    else f"{'—':>8}{'—':>9}{'—':>8}"
                )
                print(
                    f"{name:<22}{tool:<14}{cmp}{q.get('max_alpha', '—'):>7}{q.get('color_type', '?'):>9}"
                    f"{'yes' if q.get('lossy') else 'no':>7}"
                    + _fmt(q.get("rgb_mean_abs_err_vs_source"), 9)
                    + f"{q.get('bytes', 0) / 1024:>8.0f}"
                )
    for tool, r in report["tools"].items():
        for err in r.get("errors", []):
            print(f"\nerror: {tool}: {err}")


# =========================================================================== main


def _base_env() -> dict[str, str]:
    env = os.environ.copy()
    local = REPO / ".cache" / "cleancut"
    if not env.get("CLEANCUT_CACHE_DIR") and (local / "models" / f"{MODEL}.onnx").exists():
        env["CLEANCUT_CACHE_DIR"] = str(local)
    env.setdefault("CLEANCUT_OFFLINE", "1")
    return env


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2, help="ABAB rounds (default 2)")
    ap.add_argument("--repeat", type=int, default=1, help="timed calls per photo per round (default 1)")
    ap.add_argument("--photos", choices=("small", "large", "all"), default="all")
    ap.add_argument(
        "--tools",
        default=",".join(TOOLS),
        help="comma-separated, from imgly,rembg,cleancut,cleancut-ort (default all four; "
        "cleancut-ort: cleancut on onnxruntime, the peers' runtime)",
    )
    ap.add_argument("--work", type=Path, default=REPO / ".cache" / "bench", help="install and output folder")
    ap.add_argument(
        "--skip-install", action="store_true", help="use what is installed in --work; install nothing"
    )
    ap.add_argument("--json", type=Path, help="also write the JSON report here")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per tool subprocess (default 1800)")
    ap.add_argument("--cleancut-backend", default=None, help="pass backend=… to cleancut (default: its own)")
    ap.add_argument(
        "--rembg-spec", default=REMBG_SPEC, help=f"pip requirement for rembg (default {REMBG_SPEC})"
    )
    ap.add_argument("--no-quality", action="store_true", help="skip the output comparison")
    ap.add_argument("--report", type=Path, help="print the table of a saved --json report again; run nothing")
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("job", nargs="?", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        WORKERS[args.worker](json.loads(args.job.read_text()))
        return 0
    if args.report:
        saved: Json = json.loads(args.report.read_text())
        shown = [t for t, r in saved["tools"].items() if r["runs"]]
        photos = [
            Photo(p["name"], Path(p["path"]), p["size_class"], p["width"], p["height"])
            for p in saved["photos"]
        ]
        saved["summary"] = summarize(photos, shown, saved["tools"], saved.get("cleancut_cli_cold", []))
        print_table(saved, shown)
        return 0

    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = sorted(set(tools) - set(TOOLS))
    if unknown or not tools:
        ap.error(f"--tools: unknown {unknown}; choose from {','.join(TOOLS)}")
    if args.rounds < 1 or args.repeat < 1:
        ap.error("--rounds and --repeat must be at least 1")
    work: Path = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    env = _base_env()
    started = time.time()

    report: Json = {
        "benchmark": "compare",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": platform.python_version(),
        },
        "config": {
            "rounds": args.rounds,
            "repeat": args.repeat,
            "photos": args.photos,
            "tools": tools,
            "work": str(work),
            "model": MODEL,
            "imgly_model": IMGLY_MODEL,
            "warmup_photo": WARMUP_PHOTO.name,
            "cleancut_backend": args.cleancut_backend,
            "timing": "per photo: read file → cut-out → PNG written, in a loaded, warmed-up process",
        },
        "tools": {t: {"install": None, "runs": [], "errors": []} for t in tools},
    }
    print(f"compare: work folder {work}", file=sys.stderr)
    photos = make_photos(work, args.photos)
    report["photos"] = [
        {
            "name": p.name,
            "path": str(p.path),
            "size_class": p.size_class,
            "width": p.width,
            "height": p.height,
            "megapixels": p.megapixels,
            "note": "examples photo"
            if p.size_class == "small"
            else "upscaled real photo (Lanczos, 4:3 crop), q92",
        }
        for p in photos
    ]
    model_path = cleancut_model_path(env)
    report["model"] = {"path": str(model_path), "sha256": _sha256(model_path)}

    # ---- install: a failure is reported and that tool left out
    ready: list[str] = []
    for tool in tools:
        print(f"compare: installing {tool}", file=sys.stderr)
        try:
            if tool == "imgly":
                info = install_imgly(work, args.skip_install, model_path)
            elif tool == "rembg":
                info = install_rembg(work, args.skip_install, model_path, args.rembg_spec)
            else:
                info = {
                    "python": sys.executable,
                    "backend": "onnxruntime" if tool == "cleancut-ort" else None,
                }
            report["tools"][tool]["install"] = info
            ready.append(tool)
        except (StepError, OSError, KeyError, ValueError, tarfile.TarError) as exc:
            report["tools"][tool]["install"] = {"error": str(exc)}
            report["tools"][tool]["errors"].append(f"install: {exc}")
            print(f"compare: {tool} install failed: {exc}", file=sys.stderr)

    # ---- jobs
    out_dirs = {t: work / "out" / t for t in ready}
    jobs_dir = work / "jobs"
    jobs_dir.mkdir(exist_ok=True)
    commands: dict[str, list[str]] = {}
    envs: dict[str, dict[str, str]] = {}
    for tool in ready:
        out_dirs[tool].mkdir(parents=True, exist_ok=True)
        job: Json = {
            "work": str(work / "imgly-node"),
            "model": MODEL,
            "repeat": args.repeat,
            "warmup": {"input": str(WARMUP_PHOTO), "output": str(out_dirs[tool] / "_warmup.png")},
            "photos": [
                {
                    "name": p.name,
                    "input": str(p.path),
                    "output": str(out_dirs[tool] / f"{Path(p.name).stem}.png"),
                }
                for p in photos
            ],
        }
        tool_env = dict(env)
        if tool == "imgly":
            job.update(
                publicPath=report["tools"]["imgly"]["install"]["publicPath"], model=IMGLY_MODEL, quality=0.8
            )
            commands[tool] = [shutil.which("node") or "node", str(PEERS / "imgly_node_run.mjs")]
        elif tool == "rembg":
            job["model_path"] = report["tools"]["rembg"]["install"]["model_path"]
            tool_env["REMBG_HOME"] = report["tools"]["rembg"]["install"]["rembg_home"]
            tool_env.pop("U2NET_HOME", None)  # it would take precedence over REMBG_HOME
            commands[tool] = [str(rembg_python(work)), str(Path(__file__).resolve()), "--worker", "rembg"]
        else:
            job["backend"] = "onnxruntime" if tool == "cleancut-ort" else args.cleancut_backend
            commands[tool] = [sys.executable, str(Path(__file__).resolve()), "--worker", "cleancut"]
        job_file = jobs_dir / f"{tool}.json"
        job_file.write_text(json.dumps(job, indent=1))
        commands[tool].append(str(job_file))
        envs[tool] = tool_env

    # ---- rounds, ABAB
    cli_runs: list[Json] = []
    large = [p for p in photos if p.size_class == "large"]
    cli_photo = (large or photos)[0]
    for r in range(args.rounds):
        for tool in ready:
            print(f"compare: round {r + 1}/{args.rounds}: {tool}", file=sys.stderr)
            run = run_worker(commands[tool], envs[tool], args.timeout)
            run["round"] = r + 1
            report["tools"][tool]["runs"].append(run)
            if run["error"]:
                report["tools"][tool]["errors"].append(f"round {r + 1}: {run['error']}")
                print(f"compare: {tool} round {r + 1}: {run['error']}", file=sys.stderr)
        if "cleancut" in ready:
            print(f"compare: round {r + 1}/{args.rounds}: cleancut CLI cold start", file=sys.stderr)
            cli_runs.append(
                run_cli_cold(
                    cli_photo, work / "out" / "cli_cold.png", env, args.cleancut_backend, args.timeout
                )
            )
    report["cleancut_cli_cold"] = cli_runs
    for tool in ready:
        runs = report["tools"][tool]["runs"]
        info = next((r["info"] for r in runs if r["info"]), {})
        report["tools"][tool]["info"] = info

    report["summary"] = summarize(photos, ready, report["tools"], cli_runs)
    if not args.no_quality:
        outputs = {
            t: {p.name: out_dirs[t] / f"{Path(p.name).stem}.png" for p in photos}
            for t in ready
            if any(run["photos"] for run in report["tools"][t]["runs"])
        }
        report["quality"] = quality_report(photos, outputs)
    report["elapsed_s"] = round(time.time() - started, 1)

    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)
    print_table(report, ready)
    return 0 if all(not report["tools"][t]["errors"] for t in tools) else 1


if __name__ == "__main__":
    sys.exit(main())
