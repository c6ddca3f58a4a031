#!/usr/bin/env python3
"""Folder throughput against inference-only throughput, in one process, side by side.

    python benchmarks/throughput.py [--count 50] [--megapixels 1.5] [--rounds 2] [--json F]

Makes ``--count`` photos (the bundled examples, resized to about ``--megapixels`` with
varied aspect ratios and flips, JPEG q90) in a temporary folder, then measures, alternating
over ``--rounds``, with one session per mode (``Remover(scheduling="latency")``: all threads on
one image; ``Remover(scheduling="throughput")``: the backend's parallel streams, what
``cleancut FOLDER`` uses):

* inference only, latency mode: the network on already-preprocessed tensors, one after another;
* inference only, throughput mode: the same with one caller thread per stream;
* the batch pipeline (``cleancut IN -o OUT``'s code path: ``plan_jobs`` + ``run_jobs``) in
  throughput mode (one worker per stream takes an image through every stage) and in
  latency mode (decode/encode threads overlapped with inference);
* the same work done serially (decode → infer → encode → write, no overlap).

The stated figure is the **median of per-round ratios**: in each round the throughput-mode
pipeline's rate over the better inference-only rate *of that same round* (the modes take
turns, in ABBA order, so neighbours in time share the machine's load of the moment), then
the median of those ratios over the rounds; the same for the other modes and for CPU
seconds per image. Medians of rates from different rounds are printed too, but only as
rates: their ratio mixes rounds that saw different loads and is not reported. CPU seconds
per image (all threads) move less with other tenants than wall time: on cores the model
keeps busy, pipeline CPU ÷ inference CPU says what the folder would reach on an idle
machine. Prints JSON and a table, with every round's ratio.
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
        help="default: cleancut's defaults (the bilinear mask, blur-fusion edge colours); plain: "
        "the reference's bilinear mask on the photo's colours (no edge stage)",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="only inference-only and the pipeline in throughput mode (what the target compares)",
    )
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from cleancut import EdgeOptions, Remover
    from cleancut.batch import OutputOptions, plan_jobs, run_jobs
    from cleancut.io.decode import decode
    from cleancut.models.families.isnet_imgly import published_recipe
    from cleancut.passes import Pass, pass_input

    edges = EdgeOptions(refine="bilinear", decontaminate="none") if args.edges == "plain" else None
    latency = Remover(args.model, backend=args.backend, scheduling="latency").load()
    throughput = Remover(args.model, backend=args.backend, scheduling="throughput").load()
    streams = throughput.session.streams
    tmp = Path(tempfile.mkdtemp(prefix="cleancut-throughput-"))
    try:
        (tmp / "in").mkdir()
        photos = make_photos(tmp / "in", args.count, args.megapixels)
        tensors = [
            pass_input(decode(p, max_pixels=10**9).pixels, Pass(1024), published_recipe()) for p in photos[:4]
        ]
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
    cpu_med = {k: statistics.median(v) for k, v in cpu.items()}
    inference_keys = [k for k in ("inference_only_latency", "inference_only_throughput") if k in rates]
    # the baseline of each round: the better inference-only rate measured in that round
    baseline = [max(vals) for vals in zip(*(rates[k] for k in inference_keys), strict=True)]
    per_round = {
        k: [round(x / b, 3) for x, b in zip(v, baseline, strict=True)]
        for k, v in rates.items()
        if k not in inference_keys
    }
    cpu_per_round = [
        round(p / i, 3)
        for p, i in zip(cpu["pipeline_throughput"], cpu["inference_only_throughput"], strict=True)
    ]
    ratio = {k: round(statistics.median(v), 3) for k, v in per_round.items()}
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
        # the stated figure: median over rounds of (pipeline ÷ best inference-only, same round)
        "pipeline_vs_inference_only": ratio["pipeline_throughput"],
        "per_round_vs_inference_only": per_round,
        "median_of_per_round_ratios": ratio,
        "baseline_images_per_s_per_round": [round(b, 3) for b in baseline],
        "all_rounds_images_per_s": {k: [round(x, 3) for x in v] for k, v in rates.items()},
        "median_images_per_s": {k: round(v, 3) for k, v in med.items()},
        "cpu_s_per_image": {k: round(v, 4) for k, v in cpu_med.items()},
        # CPU per image of the pipeline ÷ that of inference alone, per round and their median
        "pipeline_cpu_vs_inference_cpu_per_round": cpu_per_round,
        "pipeline_cpu_vs_inference_cpu": round(statistics.median(cpu_per_round), 3),
    }
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if args.json:
        args.json.write_text(text)
    rounds_head = "".join(f"{'r' + str(i + 1):>8}" for i in range(args.rounds))
    print("\nimages/s per round, then each round's rate ÷ that round's best inference-only rate")
    print(f"{'mode':<34}{'median':>8}{rounds_head}")
    for k in rates:
        cells = "".join(f"{x:>8.3f}" for x in rates[k])
        print(f"{k:<34}{med[k]:>8.3f}{cells}")
    for k, v in per_round.items():
        cells = "".join(f"{x:>8.1%}" for x in v)
        print(f"{k + ' ÷ inference':<34}{ratio[k]:>8.1%}{cells}")
    cells = "".join(f"{x:>8.3f}" for x in cpu_per_round)
    print(f"{'CPU/image ÷ inference':<34}{report['pipeline_cpu_vs_inference_cpu']:>8.3f}{cells}")
    print(
        f"pipeline (throughput mode) ÷ inference-only: median of per-round ratios "
        f"{report['pipeline_vs_inference_only']:.1%} over {args.rounds} round(s); CPU per image "
        f"{report['pipeline_cpu_vs_inference_cpu']:.3f}× inference alone (median of rounds)"
    )


if __name__ == "__main__":
    main()
