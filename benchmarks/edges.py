#!/usr/bin/env python3
"""Time each edge option on 12 MP and 24 MP photos (mask and colour stages separately).

    python benchmarks/edges.py [--model isnet_fp16] [--repeat 1] [--sizes 12,24]

The photo is ``examples/astronaut.jpg`` Lanczos-upscaled to 4000×3000 and 6000×4000; the
network runs once on it (its 1024² output is reused), then each option's ``make_mask`` and
``foreground_colors`` are timed (median of ``--repeat``). ``bilinear`` is the reference
upsampling alone. Prints JSON, then a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from cleancut import Remover, pipeline
from cleancut.edges import EdgeOptions, foreground_colors, make_mask

REPO = Path(__file__).resolve().parents[1]
SIZES = {12: (3000, 4000), 24: (4000, 6000)}
OPTIONS = {
    "bilinear": EdgeOptions(refine="bilinear", decontaminate="none"),
    "guided": EdgeOptions(refine="guided", decontaminate="none"),
    "blur_fusion": EdgeOptions(refine="bilinear", decontaminate="blur_fusion"),
    "multilevel": EdgeOptions(refine="bilinear", decontaminate="multilevel"),
    "threshold": EdgeOptions(refine="bilinear", decontaminate="none", threshold=128),
    "feather": EdgeOptions(refine="bilinear", decontaminate="none", feather=1.5),
    "islands+holes": EdgeOptions(refine="bilinear", decontaminate="none", min_island=5e-4, min_hole=5e-4),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="isnet_fp16")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--sizes", default="12,24")
    args = ap.parse_args()
    remover = Remover(args.model, backend="onnxruntime").load()
    with Image.open(REPO / "examples" / "astronaut.jpg") as im:
        src = im.convert("RGB")
    y = remover.infer(pipeline.preprocess(np.asarray(src), 1024, exact=False))
    results = []
    for mp in (int(s) for s in args.sizes.split(",")):
        h, w = SIZES[mp]
        pixels = np.asarray(src.resize((w, h), Image.Resampling.LANCZOS))
        for name, opts in OPTIONS.items():
            mask_t, colour_t = [], []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                mask = make_mask(y, pixels, opts)
                t1 = time.perf_counter()
                foreground_colors(pixels, mask, opts)
                t2 = time.perf_counter()
                mask_t.append(t1 - t0)
                colour_t.append(t2 - t1)
            soft = float(((mask > 0) & (mask < 255)).mean())
            results.append({"mp": mp, "option": name, "mask_s": statistics.median(mask_t),
                            "colour_s": statistics.median(colour_t), "soft_fraction": soft})  # fmt: skip
            print(f"# {mp} MP {name}: {results[-1]}", flush=True)
    print(json.dumps(results, indent=1))
    print("| MP | option | make_mask s | foreground_colors s | soft pixels |")
    print("|---|---|---|---|---|")
    for r in results:
        cells = f"{r['mask_s']:.2f} | {r['colour_s']:.2f} | {r['soft_fraction']:.2%}"
        print(f"| {r['mp']} | {r['option']} | {cells} |")


if __name__ == "__main__":
    main()
