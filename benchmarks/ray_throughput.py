#!/usr/bin/env python3
"""The Ray engine against the local batch on the same photos, on one machine.

    python benchmarks/ray_throughput.py [--count 24] [--megapixels 1.0] [--rounds 2]
                                        [--workers 1] [--threads 2] [--json F]

Makes ``--count`` photos (the bundled examples resized to about ``--megapixels``, as in
``benchmarks/throughput.py``), starts one local Ray (``num_cpus`` = the machine's cores)
and then alternates, over ``--rounds``, between

* the local batch: ``plan_jobs`` + ``run_jobs`` with one ``Remover(threads=--threads)``
  (``cleancut IN -o OUT``'s code path, model already loaded);
* the Ray engine: ``run_ray(engine=EngineOptions(threads=--threads), num_workers=--workers)``,
  which starts its actor pool (each actor loads the model) on every call.

For both it reports images/s over the whole call and, for Ray, also in steady state (from
the first returned batch to the last, so without the actor start-up). The machine must be
otherwise idle for the numbers to mean anything.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import make_photos  # the same photos as the folder benchmark


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=24)
    ap.add_argument("--megapixels", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    import ray

    from cleancut import Remover
    from cleancut.batch import OutputOptions, plan_jobs, run_jobs
    from cleancut.distributed import run_ray
    from cleancut.options import EngineOptions

    work = Path(tempfile.mkdtemp(prefix="cleancut-ray-bench-"))
    try:
        (work / "in").mkdir()
        photos = make_photos(work / "in", args.count, args.megapixels)
        ray.init(
            num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR
        )
        remover = Remover("isnet_fp16", threads=args.threads).load()
        local: list[float] = []
        ray_total: list[float] = []
        ray_steady: list[float] = []
        for r in range(args.rounds):
            out = work / f"local-{r}"
            jobs, _ = plan_jobs([work / "in"], out)
            t0 = time.perf_counter()
            done = sum(res.status == "written" for res in run_jobs(jobs, remover, OutputOptions()))
            local.append(done / (time.perf_counter() - t0))

            t0 = time.perf_counter()
            stamps: list[float] = []
            engine = EngineOptions(threads=args.threads)
            for res in run_ray([work / "in"], work / f"ray-{r}", engine=engine, num_workers=args.workers):
                if res.status == "written":
                    stamps.append(time.perf_counter())
            ray_total.append(len(stamps) / (time.perf_counter() - t0))
            # rows come back a batch at a time: count those after the first batch
            later = [s for s in stamps if s - stamps[0] > 0.05]
            if later:
                ray_steady.append(len(later) / (stamps[-1] - stamps[0]))
            print(
                f"round {r + 1}: local {local[-1]:.2f} img/s, ray {ray_total[-1]:.2f} img/s "
                f"(steady {ray_steady[-1] if ray_steady else float('nan'):.2f})",
                flush=True,
            )
        result = {
            "photos": len(photos),
            "megapixels": args.megapixels,
            "cpus": os.cpu_count(),
            "workers": args.workers,
            "threads": args.threads,
            "local_img_s": statistics.median(local),
            "ray_img_s": statistics.median(ray_total),
            "ray_steady_img_s": statistics.median(ray_steady) if ray_steady else None,
            "rounds": {"local": local, "ray": ray_total, "ray_steady": ray_steady},
        }
        print(json.dumps(result, indent=2))
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))
    finally:
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
