#!/usr/bin/env python3
"""What each quality mode costs: seconds per photo for ``fast``, ``default`` and ``best``.

    python benchmarks/modes.py [--rounds 5] [--model isnet_fp16] [--backend auto] [--json F]

One :class:`~cleancut.Remover` (every pass's session loaded first), the bundled example
photos, whole cut-outs (``remove(..., type="mask", mode=m)``: passes, combining and the mask
stage). Each round runs every mode on every photo in a rotated order, so machine noise hits
all modes alike; the stated figure is the median over rounds of each round's ratio to
``default`` (a ratio of medians from different rounds would mix unrelated noise).
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
from PIL import Image

from cleancut import Remover
from cleancut.models.families.isnet_imgly import published_recipe
from cleancut.passes import QUALITY_MODES

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--model", default="isnet_fp16")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in sorted((REPO / "examples").glob("*.jpg"))]
    remover = Remover(args.model, backend=args.backend).load()
    modes = list(QUALITY_MODES)
    for m in modes:  # load every pass's session and warm it up
        remover.remove(photos[0], type="mask", mode=m)
    rounds: list[dict[str, float]] = []
    for r in range(args.rounds):
        seconds = dict.fromkeys(modes, 0.0)
        order = modes[r % len(modes) :] + modes[: r % len(modes)]
        for pixels in photos:
            for m in order:
                t0 = time.perf_counter()
                remover.remove(pixels, type="mask", mode=m)
                seconds[m] += time.perf_counter() - t0
        rounds.append({m: s / len(photos) for m, s in seconds.items()})
    result: dict[str, Any] = {
        "model": args.model,
        "backend": args.backend,
        "photos": len(photos),
        "rounds": rounds,
        "modes": {
            m: {
                "passes": [f"{p.size}{'f' if p.flip else ''}" for p in published_recipe().passes(m)],
                "median_seconds": statistics.median(r[m] for r in rounds),
                "ratio_to_default": statistics.median(r[m] / r["default"] for r in rounds),
                "ratio_min": min(r[m] / r["default"] for r in rounds),
                "ratio_max": max(r[m] / r["default"] for r in rounds),
            }
            for m in modes
        },
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print("\n| mode | passes | s/photo (median) | × default (median of per-round ratios) | min–max |")
    print("|---|---|---|---|---|")
    for m, v in result["modes"].items():
        print(f"| {m} | {' + '.join(v['passes'])} | {v['median_seconds']:.2f} | {v['ratio_to_default']:.2f} "
              f"| {v['ratio_min']:.2f}–{v['ratio_max']:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
