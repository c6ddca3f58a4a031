#!/usr/bin/env python3
"""Time and peak traced memory of each framing option (cleancut.framing.apply) at 12 and 24 MP.

    .venv/bin/python benchmarks/framing.py [--sizes 12 24] [--repeat 5] [--no-before] [--json out.json]

The input is a synthetic photo (gradients plus noise) with a soft elliptical subject mask
carrying a real mask's near-zero noise (values 0..4 everywhere), 4000×3000 and 6000×4000.
Each option is timed ``--repeat`` times and the median reported; "before" (the previous
implementation, kept below as :func:`before_apply`) and "after" (the current one) alternate
within each repeat, in one process, so that a loaded machine slows both alike. Peak memory
is what :mod:`tracemalloc` sees (numpy and OpenCV output arrays; OpenCV's internal buffers
are not traced), measured on one extra call of each, apart from the timings.

Prints JSON, then a table. Times include everything :func:`apply` does (crop, resize,
background, shadow, compositing, RGBA assembly); "extra" is the time over the same photo
on a plain white background.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import cleancut.framing as cf  # noqa: E402
from cleancut.errors import InvalidOptionError  # noqa: E402
from cleancut.framing.backgrounds import image_background  # noqa: E402
from cleancut.framing.geometry import cut, resize  # noqa: E402

SIZES = {12: (4000, 3000), 24: (6000, 4000)}
OPTIONS: dict[str, cf.Framing] = {
    "crop": cf.Framing(crop=True),
    "white": cf.Framing(background="white"),
    "image fill": cf.Framing(background=np.full((1080, 1920, 3), 90, np.uint8)),
    "blur": cf.Framing(background="blur"),
    "shadow (white)": cf.Framing(background="white", shadow=True),
    "shadow (transparent)": cf.Framing(shadow=True),
    "blur + shadow": cf.Framing(background="blur", shadow=True),
    "ecommerce": cf.Framing.ecommerce(),
    "ecommerce blur": cf.Framing.ecommerce(background="blur"),
}

Apply = Callable[[np.ndarray, np.ndarray, cf.Framing], cf.Framed]


def make_input(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured photo and a soft elliptical subject mask with near-zero noise (uint8 throughout,
    built row band by row band so that making it does not dominate the memory)."""
    import cv2

    rng = np.random.default_rng(0)
    pixels = np.empty((height, width, 3), np.uint8)
    mask = np.empty((height, width), np.uint8)
    xx = np.arange(width, dtype=np.float32)
    for y0 in range(0, height, 500):
        yy = np.arange(y0, min(height, y0 + 500), dtype=np.float32)[:, None]
        base = np.stack(
            np.broadcast_arrays(xx * (255 / width), yy * (255 / height), (xx + yy) % 256), axis=2
        ).astype(np.uint8)
        pixels[y0 : y0 + len(yy)] = cv2.add(base, rng.integers(0, 40, base.shape, dtype=np.uint8))
        d = np.hypot((yy - height * 0.45) / (height * 0.35), (xx - width * 0.5) / (width * 0.22))
        soft = np.clip((1.0 - d) * 400 + 128, 0, 255).astype(np.uint8)
        mask[y0 : y0 + len(yy)] = np.maximum(soft, rng.integers(0, 5, soft.shape, dtype=np.uint8))
    return pixels, mask


# --------------------------------------------------------------------------- BEFORE (A/B only)
#
# The previous implementation of framing's compositing, kept verbatim (bar names) only to be
# timed against the current one in the same process: numpy uint16 compositing broadcast over
# the channels, float32 blurs scaled back up at full size, float32 shadow at full size. The
# geometry, crop and image-background helpers are unchanged and shared.


def _before_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    prod = a.astype(np.uint16) * b.astype(np.uint16) + 128
    return ((prod + (prod >> 8)) >> 8).astype(np.uint8)


def _before_over(fg: np.ndarray, alpha: np.ndarray, bg: np.ndarray) -> np.ndarray:
    a = alpha[:, :, None].astype(np.uint16)
    v = fg.astype(np.uint16) * a + bg.astype(np.uint16) * (255 - a) + 128
    out: np.ndarray = ((v + (v >> 8)) >> 8).astype(np.uint8)
    return out


def _before_soft_blur(a: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    h, w = a.shape[:2]
    if sigma <= 0:
        return a
    f = min(1.0, 4.0 / sigma)
    sw, sh = max(1, round(w * f)), max(1, round(h * f))
    small = cv2.resize(a, (sw, sh), interpolation=cv2.INTER_AREA) if f < 1 else a
    blurred = cv2.GaussianBlur(small, (0, 0), sigmaX=sigma * f, borderType=cv2.BORDER_REFLECT_101)
    out: np.ndarray = cv2.resize(blurred, (w, h), interpolation=cv2.INTER_LINEAR) if f < 1 else blurred
    return out.reshape(a.shape)


def _before_blur_background(
    photo: np.ndarray, weight: np.ndarray, size: tuple[int, int], sigma: float
) -> np.ndarray:
    import cv2

    ow, oh = size
    out_scale = ow / photo.shape[1]
    f = min(1.0, 4.0 / sigma) * out_scale
    sw, sh = max(1, round(photo.shape[1] * f)), max(1, round(photo.shape[0] * f))
    p = cv2.resize(photo, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32)
    wgt = cv2.resize(weight, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    s = sigma * f / out_scale
    num = cv2.GaussianBlur(p * wgt[:, :, None], (0, 0), sigmaX=s, borderType=cv2.BORDER_REFLECT_101)
    den = cv2.GaussianBlur(wgt, (0, 0), sigmaX=s, borderType=cv2.BORDER_REFLECT_101)
    plain = cv2.GaussianBlur(p, (0, 0), sigmaX=s, borderType=cv2.BORDER_REFLECT_101)
    ok = den > 1e-3
    blurred = np.where(ok[:, :, None], num / np.maximum(den, 1e-3)[:, :, None], plain)
    big = cv2.resize(blurred, (ow, oh), interpolation=cv2.INTER_LINEAR)
    out: np.ndarray = np.clip(big + 0.5, 0, 255).astype(np.uint8)
    return out


def _before_shadow(alpha: np.ndarray, framing: cf.Framing, subject_px: float) -> np.ndarray:
    h, w = alpha.shape
    dx = round(framing.shadow_offset[0] * subject_px)
    dy = round(framing.shadow_offset[1] * subject_px)
    shifted = np.zeros((h, w), dtype=np.float32)
    src = alpha.astype(np.float32) / 255.0
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    if abs(dx) < w and abs(dy) < h:
        shifted[yd, xd] = src[ys, xs]
    soft = _before_soft_blur(shifted, framing.shadow_softness * subject_px)
    out: np.ndarray = np.clip(soft * (255.0 * framing.shadow_opacity) + 0.5, 0, 255).astype(np.uint8)
    return out


def before_apply(pixels: np.ndarray, mask: np.ndarray, framing: cf.Framing) -> cf.Framed:
    """BEFORE: the previous :func:`cleancut.framing.apply` (no ``photo``/``invert``)."""
    geo = cf.geometry(mask, framing)
    keep = mask
    if pixels.shape[2] == 4:
        keep = _before_mul(keep, pixels[:, :, 3])
    colours = resize(cut(pixels[:, :, :3], geo.window, geo.window), geo.size)
    alpha = resize(cut(keep, geo.window, geo.box), geo.size)
    framed_mask = resize(cut(mask, geo.window, geo.box), geo.size)
    ow, oh = geo.size
    bg = framing.background
    if geo.subject is not None:
        left, t, r, b = geo.subject
        subject_px = max(r - left, b - t) * geo.scale
    else:
        subject_px = float(max(ow, oh))
    shadow = _before_shadow(framed_mask, framing, subject_px) if framing.shadow else None
    if bg is None:
        if shadow is None:
            return cf.Framed(np.dstack([colours, alpha]), framed_mask, geo)
        a = alpha.astype(np.float32) / 255.0
        s = shadow.astype(np.float32) / 255.0
        out_a = a + s * (1.0 - a)
        rgb = colours.astype(np.float32) * (a / np.maximum(out_a, 1e-6))[:, :, None]
        rgba = np.dstack(
            [
                np.clip(rgb + 0.5, 0, 255).astype(np.uint8),
                np.clip(out_a * 255.0 + 0.5, 0, 255).astype(np.uint8),
            ]
        )
        return cf.Framed(rgba, framed_mask, geo)
    if isinstance(bg, tuple):
        back = np.empty((oh, ow, 3), dtype=np.uint8)
        back[:] = np.asarray(bg, dtype=np.uint8)
    elif isinstance(bg, str):
        win_photo = cut(np.ascontiguousarray(pixels[:, :, :3]), geo.window, geo.window, reflect=True)
        weight = 255 - cut(mask, geo.window, geo.window, reflect=True)
        back = _before_blur_background(win_photo, weight, geo.size, framing.blur * max(ow, oh))
    elif isinstance(bg, np.ndarray):
        back = image_background(bg, geo.size, framing.fit)
    else:
        raise InvalidOptionError(f"unusable background {type(bg).__name__}")
    if shadow is not None:
        back = _before_mul(back, (255 - shadow)[:, :, None])
    rgb = _before_over(colours, alpha, back)
    out = np.empty((oh, ow, 4), dtype=np.uint8)
    out[:, :, :3] = rgb
    out[:, :, 3] = 255
    return cf.Framed(out, framed_mask, geo)


# --------------------------------------------------------------------------- measuring


def peak_mib(fn: Apply, pixels: np.ndarray, mask: np.ndarray, framing: cf.Framing) -> float:
    tracemalloc.start()
    try:
        fn(pixels, mask, framing)
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def timed(fn: Apply, pixels: np.ndarray, mask: np.ndarray, framing: cf.Framing) -> float:
    t0 = time.perf_counter()
    fn(pixels, mask, framing)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[12, 24], choices=sorted(SIZES))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-before", action="store_true", help="time only the current implementation")
    parser.add_argument("--options", nargs="+", default=list(OPTIONS), choices=list(OPTIONS))
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    import cv2

    impls: dict[str, Apply] = {"after": cf.apply}
    if not args.no_before:
        impls = {"before": before_apply, "after": cf.apply}
    results: list[dict[str, object]] = []
    for mp in args.sizes:
        width, height = SIZES[mp]
        pixels, mask = make_input(width, height)
        for fn in impls.values():  # warm-up: OpenCV's thread pool, page faults
            fn(pixels, mask, OPTIONS["white"])
        for name in args.options:
            framing = OPTIONS[name]
            times: dict[str, list[float]] = {k: [] for k in impls}
            for _ in range(args.repeat):
                for label, fn in impls.items():
                    times[label].append(timed(fn, pixels, mask, framing))
            row: dict[str, object] = {"mp": mp, "size": f"{width}x{height}", "option": name}
            for label, fn in impls.items():
                row[f"{label}_s"] = round(statistics.median(times[label]), 4)
                row[f"{label}_min_s"] = round(min(times[label]), 4)
                row[f"{label}_peak_mib"] = round(peak_mib(fn, pixels, mask, framing), 1)
            results.append(row)
            print(f"  {mp} MP {name}: " + ", ".join(f"{k} {row[f'{k}_s']}s" for k in impls), file=sys.stderr)
        del pixels, mask

    for row in results:  # time over the same photo on plain white
        white = next(r for r in results if r["mp"] == row["mp"] and r["option"] == "white")
        for label in impls:
            row[f"{label}_extra_s"] = round(float(row[f"{label}_s"]) - float(white[f"{label}_s"]), 4)  # type: ignore[arg-type]

    meta = {
        "cpu_count": __import__("os").cpu_count(),
        "cv2_threads": cv2.getNumThreads(),
        "load_avg": __import__("os").getloadavg(),
        "repeat": args.repeat,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
    }
    doc = {"meta": meta, "results": results}
    print(json.dumps(doc, indent=2))
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2))

    labels = list(impls)
    head = f"{'MP':>3} {'option':<22}" + "".join(
        f" {label + ' s':>9} {label + ' extra':>12} {label + ' MiB':>10}" for label in labels
    )
    if len(labels) == 2:
        head += f" {'speed-up':>9}"
    print("\n" + head)
    for row in results:
        line = f"{row['mp']:>3} {row['option']:<22}"
        for label in labels:
            t, extra, mib = row[f"{label}_s"], row[f"{label}_extra_s"], row[f"{label}_peak_mib"]
            line += f" {t:>9.3f} {extra:>12.3f} {mib:>10.0f}"
        if len(labels) == 2:
            line += f" {float(row['before_s']) / float(row['after_s']):>8.1f}×"  # type: ignore[arg-type]
        print(line)


if __name__ == "__main__":
    main()
