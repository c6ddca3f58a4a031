#!/usr/bin/env python3
"""Folder throughput against inference-only throughput, in one process, side by side.

    python benchmarks/throughput.py [--count 50] [--megapixels 1.5] [--rounds 2] [--json F]

Makes ``--count`` photos (the bundled examples, resized to about ``--megapixels`` with
varied aspect ratios and flips, JPEG q90) in a temporary folder, then measures, alternating
over ``--rounds``, with one session per mode (``Remover(mode="latency")``: all threads on
one image; ``Remover(scheduling="throughput")``: the backend's parallel streams, what
``cleancut FOLDER`` uses):

* inference only, latency mode: the network on already-preprocessed tensors, one after another;
* inference only, throughput mode: the same with one caller thread per stream;
* the batch pipeline (``cleancut IN -o OUT``'s code path: ``plan_jobs`` + ``run_jobs``) in
  throughput mode (one worker per stream takes an image through every stage) and in
  latency mode (decode/encode threads overlapped with inference);
* the same work done serially (decode → infer → encode → write, no overlap).

Reports images/s for each (median over rounds) and the ratio of the throughput-mode
pipeline's median to the *better* inference-only median; beside it the per-round ratios
and their median (single rounds carry the machine's noise), and the CPU seconds per image
of each mode: on cores the model keeps busy the pipeline's CPU ÷ inference's CPU is what
the folder would reach on an idle machine. Prints JSON and a table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
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
    ap.add_argument(
        "--edges",
        choices=("default", "plain"),
        default="default",
        help="default: guided refinement + decontamination (cleancut's default); plain: the "
        "reference's bilinear mask on the photo's colours (no edge stage)",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="only inference-only and the pipeline in throughput mode (what the target compares)",
    )
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from cleancut import EdgeOptions, Remover, pipeline
    from cleancut.batch import OutputOptions, plan_jobs, run_jobs
    from cleancut.io.decode import decode

    edges = EdgeOptions(refine="bilinear", decontaminate="none") if args.edges == "plain" else None
    latency = Remover(args.model, backend=args.backend, mode="latency").load()
    throughput = Remover(args.model, backend=args.backend, scheduling="throughput").load()
    streams = throughput.session.streams
    tmp = Path(tempfile.mkdtemp(prefix="cleancut-throughput-"))
    try:
        (tmp / "in").mkdir()
        photos = make_photos(tmp / "in", args.count, args.megapixels)
        tensors = [pipeline.preprocess(decode(p, max_pixels=10**9).pixels) for p in photos[:4]]
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
            results = list(run_jobs(jobs, rem, OutputOptions(type=args.type, format=fmt, edges=edges)))
            elapsed = time.perf_counter() - t0
            assert all(r.status == "written" for r in results), [r.error for r in results if r.error]
            shutil.rmtree(out)
            return len(photos) / elapsed

        def serial(round_: int) -> float:
            out = tmp / f"serial{round_}"
            out.mkdir()
            t0 = time.perf_counter()
            for p in photos:
                cut = latency.remove(p, type=args.type, edges=edges)
                cut.save(out / f"{p.stem}.{args.format}", format=args.format)
            elapsed = time.perf_counter() - t0
            shutil.rmtree(out)
            return len(photos) / elapsed

        modes: dict[str, Callable[[int], float]] = {
            "inference_only_latency": lambda r: inference_only(latency, 1),
            # one caller more than streams, as batch.run_jobs has workers: each stream then
            # always has an image queued, the best inference-only rate this session gives
            "inference_only_throughput": lambda r: inference_only(throughput, streams + 1),
            "pipeline_throughput": lambda r: pipelined(throughput, r),
            "pipeline_latency": lambda r: pipelined(latency, r),
            "serial": serial,
        }
        if args.quick:
            modes = {k: modes[k] for k in ("inference_only_throughput", "pipeline_throughput")}
        rates: dict[str, list[float]] = {k: [] for k in modes}
        # CPU seconds (all threads of this process) per image: unlike wall time this hardly
        # moves with the other tenants of a shared machine, so pipeline CPU ÷ inference CPU
        # says what the folder would reach on idle cores.
        cpu: dict[str, list[float]] = {k: [] for k in modes}
        for r in range(args.rounds):
            # ABBA order: a machine that gets quieter (or busier) during the run favours
            # neither side.
            order = list(modes.items()) if r % 2 == 0 else list(reversed(modes.items()))
            for name, measure in order:
                c0 = time.process_time()
                rates[name].append(measure(r))
                cpu[name].append((time.process_time() - c0) / len(photos))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in rates.items()}
    inference_keys = [k for k in ("inference_only_latency", "inference_only_throughput") if k in rates]
    best_inference = [max(vals) for vals in zip(*(rates[k] for k in inference_keys), strict=True)]
    reference = max(med[k] for k in inference_keys)
    cpu_med = {k: statistics.median(v) for k, v in cpu.items()}
    per_round = [round(p / i, 3) for p, i in zip(rates["pipeline_throughput"], best_inference, strict=True)]
    report = {
        "benchmark": "throughput",
        "photos": args.count,
        "megapixels": args.megapixels,
        "type": args.type,
        "format": args.format,
        "edges": args.edges,
        "rounds": args.rounds,
        "session_latency": latency.describe(),
        "session_throughput": throughput.describe(),
        "images_per_s": {k: round(v, 3) for k, v in med.items()},
        "all_rounds": {k: [round(x, 3) for x in v] for k, v in rates.items()},
        "pipeline_vs_inference_only": round(med["pipeline_throughput"] / reference, 3),
        "pipeline_per_round_vs_inference": per_round,
        # the same comparison with the noise of single rounds left in: each round's pipeline
        # rate over that round's inference-only rate, the median of those
        "pipeline_per_round_median": round(statistics.median(per_round), 3),
        "cpu_s_per_image": {k: round(v, 4) for k, v in cpu_med.items()},
        "pipeline_cpu_vs_inference_cpu": round(
            cpu_med["pipeline_throughput"] / cpu_med["inference_only_throughput"], 3
        ),
    }
    for key in ("pipeline_latency", "serial"):
        if key in med:
            report[f"{key}_vs_inference_only"] = round(med[key] / reference, 3)
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if args.json:
        args.json.write_text(text)
    print(f"\n{'mode':<28}{'images/s':>10}{'vs best inference-only':>24}{'CPU s/image':>13}")
    for k, v in med.items():
        print(f"{k:<28}{v:>10.3f}{v / reference:>24.1%}{cpu_med[k]:>13.3f}")
    print(
        f"pipeline ÷ inference-only per round: {', '.join(f'{r:.0%}' for r in per_round)} "
        f"(median {report['pipeline_per_round_median']:.1%}); CPU per image "
        f"{report['pipeline_cpu_vs_inference_cpu']:.3f}× inference alone"
    )


if __name__ == "__main__":
    main()
