#!/usr/bin/env python3
"""How many warm-up frames make a Ray chunk's seam match the single-machine run.

    python benchmarks/video_seams.py [--clips 4] [--frames 90] [--size 256] [--mode default]

The clips are ``video_flicker.py``'s (dev-set photos with human masks, panned or with the
subject sliding over another photo; still for the first third, moving, still again; sensor
noise and an H.264 round trip). The network runs once per frame; then, for seams placed in
the still start (late in it, where the smoother has the longest history), in the motion and
in the still end, the temporal step is restarted ``K`` frames before the seam, as a Ray
chunk with ``warmup=K`` does, and the seam frame and the 3 after it are compared with the
uninterrupted run: the largest and the mean |Δα| in alpha levels (0..255) of the final mask.

Prints JSON, then a table (per K: the worst seam over all clips and seam kinds).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import video_flicker
from cleancut import Remover, Settings
from cleancut.stages import make_mask
from cleancut.video import TemporalSmoother

REPO = Path(__file__).resolve().parents[1]
WARMUPS = (0, 2, 4, 8, 12, 16, 24, 32)
AFTER = 4  # the seam frame and the 3 after it


def _masks(
    frames: list[np.ndarray], ys: list[np.ndarray], start: int, stop: int, recipe: Any
) -> list[np.ndarray]:
    """The masks of frames ``start`` .. ``stop - 1`` with the smoother started at ``start``."""
    sm = TemporalSmoother()
    return [
        make_mask(sm.step(frames[t], ys[t]), frames[t], None, recipe).astype(np.int16)
        for t in range(start, stop)
    ]


def run(args: argparse.Namespace) -> dict[str, object]:
    settings = Settings.from_env(environ={}, cache_dir=REPO / ".cache" / "cleancut")
    remover = Remover(args.model, settings=settings).load()
    clips = video_flicker.make_clips(args.clips, args.frames, args.size, args.seed)
    n = args.frames
    third = n // 3
    seams = {"still": third - 2, "moving": n // 2, "still after motion": n - AFTER - 1}
    rows = []
    for clip in clips:
        ys = [remover.predict(f, mode=args.mode) for f in clip.frames]
        whole = _masks(clip.frames, ys, 0, n, remover.recipe)
        for kind, s in seams.items():
            for k in WARMUPS:
                part = _masks(clip.frames, ys, max(0, s - k), s + AFTER, remover.recipe)[-AFTER:]
                diff = [np.abs(a - b) for a, b in zip(part, whole[s : s + AFTER], strict=True)]
                rows.append(
                    {
                        "clip": clip.name,
                        "clip_kind": clip.kind,
                        "seam": kind,
                        "frame": s,
                        "warmup": k,
                        "max_seam": int(diff[0].max()),
                        "mean_seam": float(diff[0].mean()),
                        "max_after": int(max(d.max() for d in diff)),
                        "pixels_over_2": float(np.mean([(d > 2).mean() for d in diff])),
                    }
                )
    return {"mode": args.mode, "size": args.size, "frames": n, "seams": seams, "rows": rows}


def table(result: dict[str, object]) -> str:
    rows = result["rows"]
    assert isinstance(rows, list)
    lines = [
        "warm-up | max |Δα| seam | mean |Δα| seam | max |Δα| 4 frames | share of pixels > 2",
        "---|---|---|---|---",
    ]
    for k in WARMUPS:
        sel = [r for r in rows if r["warmup"] == k]
        lines.append(
            f"{k} | {max(r['max_seam'] for r in sel)} | {max(r['mean_seam'] for r in sel):.3f} | "
            f"{max(r['max_after'] for r in sel)} | {max(r['pixels_over_2'] for r in sel):.2%}"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--frames", type=int, default=90)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--mode", default="default")
    ap.add_argument("--model", default="isnet_fp16")
    ap.add_argument("--seed", type=int, default=0)
    result = run(ap.parse_args())
    print(json.dumps(result))
    print(table(result))


if __name__ == "__main__":
    main()
