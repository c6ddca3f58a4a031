#!/usr/bin/env python3
"""Inference alone, per backend: seconds per 1024² pass and agreement with the fp32 path.

    python benchmarks/backends.py [--model isnet_fp16] [--rounds 3] [--photos DIR] [--json F]

Paths compared, side by side in one process, round-robin over the photos (so machine noise
hits all of them alike):

* ``ort-fp16``:   onnxruntime on the published fp16 graph, pruned to ``output``
* ``ort-fp32``:   onnxruntime on its fp32 widening (the reference for accuracy)
* ``ov-f32``:     OpenVINO on the fp32 graph, f32 precision
* ``ov-bf16``:    OpenVINO on the fp32 graph, bf16 precision (AMX) — cleancut's ``auto`` here

Accuracy per path against ``ort-fp32`` on every photo: mean and max |Δalpha| of the uint8
mask at 1024², and IoU of the masks at 128. Photos: ``examples/*.jpg`` plus, if
scikit-image is installed, its bundled colour photos, plus ``--photos DIR``.
Prints JSON, then a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def photos(extra: Path | None) -> list[Path]:
    found = sorted((REPO / "examples").glob("*.jpg"))
    try:
        import skimage

        data = Path(skimage.__file__).parent / "data"
        for name in ("rocket.jpg", "motorcycle_left.png", "coffee.png", "chelsea.png", "astronaut.png"):
            if (data / name).exists() and name.split(".")[0] not in {p.stem for p in found}:
                found.append(data / name)
    except ImportError:
        pass
    if extra is not None:
        found += sorted(p for p in extra.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"})
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="isnet_fp16")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--photos", type=Path, default=None)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from cleancut import Settings, pipeline
    from cleancut.inference.runtime import create_onnxruntime_session, default_threads
    from cleancut.io.decode import decode
    from cleancut.models import resolve_model
    from cleancut.models.prepare import prepare
    from cleancut.models.store import ensure_model, fetch_model, model_sha256
    from cleancut.passes import Pass, pass_input

    settings = Settings.from_env()
    spec = resolve_model(args.model)
    threads = args.threads or default_threads()
    cpu = ensure_model(spec, settings)  # what the CPU backends load (fp16 widened to fp32)
    fp32 = cpu.path
    source = fetch_model(spec, settings)
    published = prepare(spec, source, model_sha256(spec, source, settings), settings, gpu=True).path

    runners: dict[str, Any] = {}
    if published != fp32:
        runners["ort-published"] = create_onnxruntime_session(published, threads=threads).run
    runners["ort-fp32"] = create_onnxruntime_session(fp32, threads=threads).run
    try:
        import openvino as ov

        core = ov.Core()
        for name, precision in (("ov-f32", "f32"), ("ov-bf16", "bf16")):
            compiled = core.compile_model(
                str(fp32), "CPU",
                {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads,
                 "INFERENCE_PRECISION_HINT": precision},
            )  # fmt: skip
            req = compiled.create_infer_request()

            def run(x: np.ndarray, req: Any = req) -> np.ndarray:
                req.infer({0: x})
                return np.array(req.get_output_tensor(0).data, copy=True)

            runners[name] = run
    except ImportError:
        print("openvino not installed: OpenVINO paths skipped")

    own = Pass(cpu.recipe.width, height=cpu.recipe.height)
    inputs = {
        p.name: pass_input(decode(p, max_pixels=10**9).pixels, own, cpu.recipe) for p in photos(args.photos)
    }
    for run in runners.values():  # warm-up: first passes allocate and tune
        run(next(iter(inputs.values())))
    times: dict[str, list[float]] = {k: [] for k in runners}
    masks: dict[str, dict[str, np.ndarray]] = {k: {} for k in runners}
    for _ in range(args.rounds):
        for photo, x in inputs.items():
            for name, run in runners.items():
                t0 = time.perf_counter()
                y = run(x)
                times[name].append(time.perf_counter() - t0)
                masks[name][photo] = pipeline.quantize(y)

    ref = masks["ort-fp32"]
    ref_median = statistics.median(times["ort-fp32"])
    results = []
    for name in runners:
        mads, maxs, ious = [], [], []
        for photo, m in masks[name].items():
            d = np.abs(m.astype(np.int16) - ref[photo].astype(np.int16))
            a, b = m >= 128, ref[photo] >= 128
            union = np.logical_or(a, b).sum()
            mads.append(float(d.mean()))
            maxs.append(int(d.max()))
            ious.append(float(np.logical_and(a, b).sum() / union) if union else 1.0)
        results.append({
            "path": name,
            "median_s": round(statistics.median(times[name]), 3),
            "min_s": round(min(times[name]), 3),
            "speedup_vs_ort_fp32": round(ref_median / statistics.median(times[name]), 2),
            "mean_abs_diff_255": round(statistics.mean(mads), 3),
            "max_abs_diff_255": max(maxs),
            "iou_mean": round(statistics.mean(ious), 5),
            "iou_min": round(min(ious), 5),
        })  # fmt: skip
    report = {
        "benchmark": "backends",
        "model": spec.name,
        "threads": threads,
        "photos": list(inputs),
        "rounds": args.rounds,
        "results": results,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    print(
        f"\n{'path':<16}{'median s':>10}{'min s':>8}{'speed-up':>10}{'mean|Δα|':>10}{'max':>6}{'IoU min':>10}"
    )
    for r in results:
        print(
            f"{r['path']:<16}{r['median_s']:>10.3f}{r['min_s']:>8.3f}{r['speedup_vs_ort_fp32']:>9.2f}x"
            f"{r['mean_abs_diff_255']:>10.3f}{r['max_abs_diff_255']:>6}{r['iou_min']:>10.4f}"
        )


if __name__ == "__main__":
    main()
