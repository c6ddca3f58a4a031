#!/usr/bin/env python3
"""Flicker and accuracy of video cut-outs, with the temporal step (``smooth``) on and off.

    python benchmarks/video_flicker.py [--clips 6] [--frames 20] [--size 256] [--mode default]

Clips are made from the real-photo dev set (``benchmarks/devset.py``, ``report`` split;
photos with human masks), so the true mask of every frame is known:

* ``pan``: a camera window over the photo, still for a third of the clip, panning by a few
  whole pixels per frame, then still again;
* ``object``: the subject (cut by its true mask) sliding over another dev-set photo as a
  still background, with pauses.

Each frame gets sensor-like noise (Poisson-Gaussian: variance ``0.5·level + 4``) and the
clip goes through H.264 (libx264, CRF 26) and back, as a phone clip would. The network runs
once per frame; both variants (smoothing on, off) finish the same outputs.

Measures (alpha in 0..1):

* flicker: mean |Δα| between consecutive frames over *static* pixels, those whose clean
  image (before noise and compression) did not change between the two frames;
* accuracy: MAE and IoU (α ≥ 0.5) against the moved true mask, over all frames and over the
  frames in motion alone (where smearing would show).

Prints JSON, then a table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import devset
from cleancut import Remover, Settings
from cleancut.stages import make_mask
from cleancut.video import TemporalSmoother

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Clip:
    name: str
    kind: str
    frames: list[np.ndarray]  # noisy, compressed (what the network sees)
    clean: list[np.ndarray]  # before noise
    truth: list[np.ndarray]  # true alpha 0..1


def _fit(pixels: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    h, w = mask.shape
    s = size / max(h, w)
    dsize = (max(8, round(w * s)), max(8, round(h * s)))
    return (
        cv2.resize(pixels, dsize, interpolation=cv2.INTER_AREA),
        cv2.resize(mask.astype(np.float32) / 255.0, dsize, interpolation=cv2.INTER_AREA),
    )


def _offsets(n: int, step: tuple[int, int]) -> list[tuple[int, int]]:
    """Still for the first third, moving by ``step`` per frame, still for the last third."""
    out, x, y = [], 0, 0
    for i in range(n):
        if n // 3 <= i < n - n // 3:
            x, y = x + step[0], y + step[1]
        out.append((x, y))
    return out


def pan_clip(name: str, pixels: np.ndarray, mask: np.ndarray, n: int) -> tuple[list, list]:
    h, w = mask.shape
    step = (3, 1)
    moves = _offsets(n, step)
    mx, my = moves[-1]
    ww, wh = w - mx - 1, h - my - 1
    frames = [pixels[y : y + wh, x : x + ww] for x, y in moves]
    truth = [mask[y : y + wh, x : x + ww] for x, y in moves]
    return frames, truth


def object_clip(pixels: np.ndarray, mask: np.ndarray, bg: np.ndarray, n: int) -> tuple[list, list]:
    import cv2

    h, w = mask.shape
    bg = cv2.resize(bg, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    moves = _offsets(n, (4, 0))
    frames, truth = [], []
    for x, _ in moves:
        m = np.zeros_like(mask)
        fg = np.zeros_like(pixels)
        m[:, x:] = mask[:, : w - x] if x else mask
        fg[:, x:] = pixels[:, : w - x] if x else pixels
        a = m[..., None]
        frames.append((fg * a + bg * (1 - a)).round().clip(0, 255).astype(np.uint8))
        truth.append(m)
    return frames, truth


def degrade(frames: list[np.ndarray], rng: np.random.Generator, crf: int = 26) -> list[np.ndarray]:
    """Poisson-Gaussian sensor noise, then an H.264 round trip (even sides)."""
    import av

    h, w = frames[0].shape[:2]
    h2, w2 = h - h % 2, w - w % 2
    noisy = []
    for f in frames:
        f = f[:h2, :w2].astype(np.float32)
        sigma = np.sqrt(0.5 * f + 4.0)
        noisy.append(np.clip(f + rng.normal(0.0, 1.0, f.shape) * sigma, 0, 255).astype(np.uint8))
    import io

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = w2, h2, "yuv420p"
        s.options = {"crf": str(crf), "preset": "veryfast"}
        for f in noisy:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    buf.seek(0)
    with av.open(buf) as c:
        return [fr.to_ndarray(format="rgb24") for fr in c.decode(video=0)]


def make_clips(count: int, n: int, size: int, seed: int) -> list[Clip]:
    rng = np.random.default_rng(seed)
    pool = [p for p in devset.pairs("report", subsets=("ccp_person", "coco_mval", "grabcut"), limit=8)]
    rng.shuffle(pool)
    clips = []
    for i in range(count):
        pair = pool[i]
        pixels, mask = _fit(*pair.load(), size)
        if i % 2 == 0:
            clean, truth = pan_clip(pair.name, pixels, mask, n)
            kind = "pan"
        else:
            bg, _ = _fit(*pool[-1 - i].load(), size)
            clean, truth = object_clip(pixels, mask, bg, n)
            kind = "object"
        frames = degrade(clean, rng)
        h, w = frames[0].shape[:2]
        clips.append(Clip(pair.name, kind, frames, [c[:h, :w] for c in clean], [t[:h, :w] for t in truth]))
    return clips


def measure(alphas: list[np.ndarray], clip: Clip) -> dict[str, float]:
    diffs, static = [], []
    for t in range(1, len(alphas)):
        still = np.abs(clip.clean[t].astype(np.int16) - clip.clean[t - 1].astype(np.int16)).max(axis=2) == 0
        if still.any():
            diffs.append(float(np.abs(alphas[t] - alphas[t - 1])[still].sum()))
            static.append(int(still.sum()))
    n = len(alphas)
    moving = [t for t in range(n) if n // 3 <= t < n - n // 3]
    mae = [float(np.abs(a - m).mean()) for a, m in zip(alphas, clip.truth, strict=True)]
    iou = []
    for a, m in zip(alphas, clip.truth, strict=True):
        p, g = a >= 0.5, m >= 0.5
        union = (p | g).sum()
        iou.append(float((p & g).sum() / union) if union else 1.0)
    return {
        "flicker": sum(diffs) / max(1, sum(static)),
        "mae": float(np.mean(mae)),
        "iou": float(np.mean(iou)),
        "mae_moving": float(np.mean([mae[t] for t in moving])),
        "iou_moving": float(np.mean([iou[t] for t in moving])),
    }


def run(args: argparse.Namespace) -> dict[str, object]:
    settings = Settings.from_env(environ={}, cache_dir=REPO / ".cache" / "cleancut")
    remover = Remover(args.model, settings=settings).load()
    clips = make_clips(args.clips, args.frames, args.size, args.seed)
    rows = []
    t0 = time.perf_counter()
    for clip in clips:
        ys = [remover.predict(f, mode=args.mode) for f in clip.frames]
        row: dict[str, object] = {
            "clip": clip.name,
            "kind": clip.kind,
            "size": list(clip.frames[0].shape[:2]),
        }
        for label, smoother in (("off", None), ("on", TemporalSmoother(strength=args.strength))):
            alphas = []
            for f, y in zip(clip.frames, ys, strict=True):
                yy = smoother.step(f, y) if smoother is not None else y
                alphas.append(make_mask(yy, f, None, remover.recipe).astype(np.float32) / 255.0)
            row[label] = measure(alphas, clip)
        rows.append(row)
        print(f"  {clip.kind:6s} {clip.name}: done", file=sys.stderr)
    summary: dict[str, object] = {}
    for kind in ("all", "pan", "object"):
        chosen = [r for r in rows if kind in ("all", r["kind"])]
        if not chosen:
            continue
        part = {
            label: {
                k: float(np.mean([r[label][k] for r in chosen]))  # type: ignore[index]
                for k in ("flicker", "mae", "iou", "mae_moving", "iou_moving")
            }
            for label in ("off", "on")
        }
        part["flicker_ratio_on_off"] = part["on"]["flicker"] / part["off"]["flicker"]  # type: ignore[assignment]
        summary[kind] = part
    return {
        "model": args.model,
        "mode": args.mode,
        "strength": args.strength,
        "clips": args.clips,
        "frames": args.frames,
        "size": args.size,
        "seconds": round(time.perf_counter() - t0, 1),
        "rows": rows,
        "summary": summary,
    }


def table(result: dict[str, object]) -> str:
    lines = [
        f"{'clip':28s} {'kind':6s} | {'flicker off':>11s} {'on':>8s} {'ratio':>6s} | "
        f"{'MAE off':>8s} {'on':>8s} | {'IoU off':>7s} {'on':>7s} | {'MAE mov off':>11s} {'on':>8s}"
    ]
    rows = list(result["rows"])  # type: ignore[call-overload]
    for kind, part in result["summary"].items():  # type: ignore[attr-defined]
        rows.append({"clip": f"mean ({kind})", "kind": "", **part})
    for r in rows:
        off, on = r["off"], r["on"]
        ratio = on["flicker"] / off["flicker"] if off["flicker"] else float("nan")
        lines.append(
            f"{r['clip'][:28]:28s} {r['kind']:6s} | "
            f"{off['flicker']:11.5f} {on['flicker']:8.5f} {ratio:6.2f} | "
            f"{off['mae']:8.5f} {on['mae']:8.5f} | {off['iou']:7.4f} {on['iou']:7.4f} | "
            f"{off['mae_moving']:11.5f} {on['mae_moving']:8.5f}"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="isnet_fp16")
    ap.add_argument("--mode", default="default")
    ap.add_argument("--clips", type=int, default=6)
    ap.add_argument("--frames", type=int, default=18)
    ap.add_argument("--size", type=int, default=256, help="long side of the clips, pixels")
    ap.add_argument("--strength", type=float, default=TemporalSmoother().strength)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    result = run(args)
    print(json.dumps(result, indent=1))
    print(table(result))


if __name__ == "__main__":
    main()
