#!/usr/bin/env python3
"""Folder throughput against inference-only throughput, in one process, side by side.

    python benchmarks/throughput.py [--count 50] [--megapixels 1.5] [--rounds 2] [--json F]

Makes ``--count`` photos (the bundled examples, resized to about ``--megapixels`` with
varied aspect ratios and flips, JPEG q90) in a temporary folder, then measures, alternating
over ``--rounds``, with one session per mode (``Remover(mode="latency")``: all threads on
one image; ``Remover(mode="throughput")``: the backend's parallel streams, what
``cleancut FOLDER`` uses):

* inference only, latency mode: the network on already-preprocessed tensors, one after another;
* inference only, throughput mode: the same with one caller thread per stream;
* the batch pipeline (``cleancut IN -o OUT``'s code path: ``plan_jobs`` + ``run_jobs``) in
  throughput mode (one worker per stream takes an image through every stage) and in
  latency mode (decode/encode threads overlapped with inference);
* the same work done serially (decode → infer → encode → write, no overlap).

Reports images/s for each and the ratio of the throughput-mode pipeline to the *better* of
the two inference-only rates. Prints JSON and a table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def make_photos(folder: Path, count: int, megapixels: float) -> list[Path]:
    from PIL import Image, ImageOps

    sources = sorted((REPO / "examples").glob("*.jpg"))
    aspects = (1.0, 4 / 3, 3 / 4, 3 / 2, 2 / 3)
    out = []
    for i in range(count):
        with Image.open(sources[i % len(sources)]) as im:
            rgb = im.convert("RGB")
        aspect = aspects[i % len(aspects)]
        w = int((megapixels * 1e6 * aspect) ** 0.5)
        h = int(w / aspect)
        img = rgb.resize((w, h), Image.Resampling.BICUBIC)
        if i % 2:
            img = ImageOps.mirror(img)
        path = folder / f"photo_{i:03d}.jpg"
        img.save(path, quality=90)
        out.append(path)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=50)
    ap.add_argument("--megapixels", type=float, default=1.5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--model", default="isnet_fp16")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--type", default="foreground", help="foreground | background | mask")
    ap.add_argument("--format", default="png", help="png | webp | jpeg")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from cleancut import Remover, codecs, pipeline
    from cleancut.batch import OutputOptions, plan_jobs, run_jobs

    latency = Remover(args.model, backend=args.backend, mode="latency").load()
    throughput = Remover(args.model, backend=args.backend, mode="throughput").load()
    streams = throughput.session.streams
    tmp = Path(tempfile.mkdtemp(prefix="cleancut-throughput-"))
    try:
        (tmp / "in").mkdir()
        photos = make_photos(tmp / "in", args.count, args.megapixels)
        tensors = [pipeline.preprocess(codecs.decode(p, max_pixels=10**9).pixels) for p in photos[:4]]
        for rem in (latency, throughput):
            rem.infer(tensors[0])  # warm-up

        def inference_only(rem: Remover, callers: int) -> float:
            def loop(k: int) -> None:
                for i in range(k, len(photos), callers):
                    rem.infer(tensors[i % len(tensors)])

            t0 = time.perf_counter()
            with ThreadPoolExecutor(callers) as pool:
                list(pool.map(loop, range(callers)))
            return len(photos) / (time.perf_counter() - t0)

        def pipelined(rem: Remover, round_: int) -> float:
            out = tmp / f"out{round_}"
            jobs, fmt = plan_jobs([tmp / "in"], out, args.format)
            t0 = time.perf_counter()
            results = list(run_jobs(jobs, rem, OutputOptions(type=args.type, format=fmt)))
            elapsed = time.perf_counter() - t0
            assert all(r.status == "written" for r in results), [r.error for r in results if r.error]
            shutil.rmtree(out)
            return len(photos) / elapsed

        def serial(round_: int) -> float:
            out = tmp / f"serial{round_}"
            out.mkdir()
            t0 = time.perf_counter()
            for p in photos:
                cut = latency.remove(p, type=args.type)
                cut.save(out / f"{p.stem}.{args.format}", format=args.format)
            elapsed = time.perf_counter() - t0
            shutil.rmtree(out)
            return len(photos) / elapsed

        rates: dict[str, list[float]] = {
            "inference_only_latency": [],
            "inference_only_throughput": [],
            "pipeline_throughput": [],
            "pipeline_latency": [],
            "serial": [],
        }
        for r in range(args.rounds):
            rates["inference_only_latency"].append(inference_only(latency, 1))
            rates["inference_only_throughput"].append(inference_only(throughput, streams))
            rates["pipeline_throughput"].append(pipelined(throughput, r))
            rates["pipeline_latency"].append(pipelined(latency, r))
            rates["serial"].append(serial(r))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in rates.items()}
    best_inference = [
        max(a, b)
        for a, b in zip(rates["inference_only_latency"], rates["inference_only_throughput"], strict=True)
    ]
    reference = max(med["inference_only_latency"], med["inference_only_throughput"])
    report = {
        "benchmark": "throughput",
        "photos": args.count,
        "megapixels": args.megapixels,
        "type": args.type,
        "format": args.format,
        "rounds": args.rounds,
        "session_latency": latency.describe(),
        "session_throughput": throughput.describe(),
        "images_per_s": {k: round(v, 3) for k, v in med.items()},
        "all_rounds": {k: [round(x, 3) for x in v] for k, v in rates.items()},
        "pipeline_vs_inference_only": round(med["pipeline_throughput"] / reference, 3),
        "pipeline_per_round_vs_inference": [
            round(p / i, 3) for p, i in zip(rates["pipeline_throughput"], best_inference, strict=True)
        ],
        "latency_pipeline_vs_inference_only": round(med["pipeline_latency"] / reference, 3),
        "serial_vs_inference_only": round(med["serial"] / reference, 3),
    }
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if args.json:
        args.json.write_text(text)
    print(f"\n{'mode':<28}{'images/s':>10}{'vs best inference-only':>24}")
    for k, v in med.items():
        print(f"{k:<28}{v:>10.3f}{v / reference:>24.1%}")


if __name__ == "__main__":
    main()
