#!/usr/bin/env python3
"""Time the edge options on 12 MP and 24 MP photos, and the fast paths against the code they
replaced, side by side in one process.

    python benchmarks/edges.py [--model isnet_fp16] [--repeat 3] [--sizes 12,24] [--ab-only]

The photo is ``examples/astronaut.jpg`` Lanczos-upscaled to 4000×3000 and 6000×4000; the
network runs once on it (its 1024² output is reused).

1. Before/after (``--repeat`` rounds, old and new interleaved so machine load hits both
   alike; median wall time and median process CPU time): the guided upsampling
   (``refine.guided_upsample``), blur-fusion (``matting.blur_fusion_tiled`` on the guided
   mask) and islands+holes (``maskops``), with how far the new output is from the old
   (max |Δ| in levels; blur-fusion compared on the band ``matting.SOFT_BAND`` it writes).
   The guided row also changed its parameters: the first version fitted at 1024² with a
   5×5 window, the current one at ``refine.GUIDED_FIT_SIZE``² (a wider window that
   benchmarks/quality.py scores better), so its Δ is a different mask, not rounding.
2. Each option's ``make_mask`` and ``foreground_colors`` (current code; skipped with
   ``--ab-only``); ``bilinear`` is the reference upsampling alone.

Prints JSON, then tables.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cleancut import Remover, maskops, matting, refine
from cleancut.edges import EdgeOptions, foreground_colors, make_mask
from cleancut.errors import InvalidOptionError
from cleancut.passes import Pass, pass_input
from cleancut.pipeline import quantize

REPO = Path(__file__).resolve().parents[1]
SIZES = {12: (3000, 4000), 24: (4000, 6000)}
OPTIONS = {
    "default (guided+blur_fusion)": EdgeOptions(),
    "bilinear": EdgeOptions(refine="bilinear", decontaminate="none"),
    "guided": EdgeOptions(refine="guided", decontaminate="none"),
    "blur_fusion": EdgeOptions(refine="bilinear", decontaminate="blur_fusion"),
    "multilevel": EdgeOptions(refine="bilinear", decontaminate="multilevel"),
    "threshold": EdgeOptions(refine="bilinear", decontaminate="none", threshold=128),
    "feather": EdgeOptions(refine="bilinear", decontaminate="none", feather=1.5),
    "islands+holes": EdgeOptions(refine="bilinear", decontaminate="none", min_island=5e-4, min_hole=5e-4),
}


# ---------------------------------------------------------------------------------------
# BEFORE: the implementations these fast paths replaced, copied verbatim (renamed old_*)
# from src/cleancut/refine.py, matting.py and maskops.py at commit fba8f67, for the A/B
# only. Not used by cleancut itself.
# ---------------------------------------------------------------------------------------

_OLD_EPS = np.float32(1e-5)
_OLD_TILE = 256
_OLD_WIDE_SIDE = 1536


def _old_box(x: np.ndarray, r: int) -> np.ndarray:
    import cv2

    out: np.ndarray = cv2.blur(x, (2 * r + 1, 2 * r + 1), borderType=cv2.BORDER_REFLECT_101)
    return out


def _old_blur(x: np.ndarray, r: int) -> np.ndarray:
    import cv2

    out: np.ndarray = cv2.blur(x, (r, r), borderType=cv2.BORDER_REFLECT_101)
    return out


def _old_guided_coefficients(
    guide: np.ndarray, p: np.ndarray, radius: int = 2, eps: float = 1e-3
) -> np.ndarray:
    """Colour guided-filter coefficients: ``guide`` float32 ``[h, w, 3]`` in 0..1, ``p``
    float32 ``[h, w]`` → ``[h, w, 4]`` (``a_r, a_g, a_b, b``), already box-averaged."""
    if guide.ndim != 3 or guide.shape[2] != 3 or p.shape != guide.shape[:2]:
        raise InvalidOptionError(f"guide [h, w, 3] and p [h, w] must match, got {guide.shape} and {p.shape}")
    mean_i = _old_box(guide, radius)
    mean_p = _old_box(p, radius)
    cov_ip = _old_box(guide * p[:, :, None], radius) - mean_i * mean_p[:, :, None]
    # Σ + εU per pixel (symmetric 3×3), solved in closed form (adjugate / determinant).
    var = np.empty((*p.shape, 6), dtype=np.float32)
    pairs = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))
    for k, (i, j) in enumerate(pairs):
        var[:, :, k] = _old_box(guide[:, :, i] * guide[:, :, j], radius) - mean_i[:, :, i] * mean_i[:, :, j]
    rr, rg, rb, gg, gb, bb = (var[:, :, k] for k in range(6))
    rr = rr + eps
    gg = gg + eps
    bb = bb + eps
    inv_rr = gg * bb - gb * gb
    inv_rg = gb * rb - rg * bb
    inv_rb = rg * gb - gg * rb
    inv_gg = rr * bb - rb * rb
    inv_gb = rb * rg - rr * gb
    inv_bb = rr * gg - rg * rg
    det = rr * inv_rr + rg * inv_rg + rb * inv_rb
    c0, c1, c2 = cov_ip[:, :, 0], cov_ip[:, :, 1], cov_ip[:, :, 2]
    coef = np.empty((*p.shape, 4), dtype=np.float32)
    coef[:, :, 0] = (inv_rr * c0 + inv_rg * c1 + inv_rb * c2) / det
    coef[:, :, 1] = (inv_rg * c0 + inv_gg * c1 + inv_gb * c2) / det
    coef[:, :, 2] = (inv_rb * c0 + inv_gb * c1 + inv_bb * c2) / det
    coef[:, :, 3] = mean_p - (coef[:, :, :3] * mean_i).sum(axis=2)
    out: np.ndarray = _old_box(coef, radius)
    return out


def old_guided_upsample(
    y: np.ndarray,
    pixels: np.ndarray,
    *,
    radius: int = 2,  # the first version's fit: at the network's 1024², 5×5 window
    eps: float = 1e-3,
    rows_per_block: int = 512,
) -> np.ndarray:
    """Network output ``[..., S, S]`` (0..1) and the full photo ``[H, W, 3|4]`` uint8 →
    ``[H, W]`` uint8 mask whose edges follow the photo.

    Where the photo is flat the result equals the bilinear mask up to rounding (``a = 0``,
    ``b`` = the local mean of the mask); a clean 0/255 mask stays clean because the result
    is clipped to 0..1 before quantising. Full-resolution work is done in row blocks so the
    float32 temporaries stay at a few tens of MB on 24 MP photos.
    """
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        raise InvalidOptionError(f"pixels must be uint8 [H, W, 3|4], got {pixels.dtype} {pixels.shape}")
    if radius < 1 or eps <= 0:
        raise InvalidOptionError(f"guided filter needs radius >= 1 and eps > 0, got {radius}, {eps}")
    p = quantize(y).astype(np.float32) / 255.0  # the same levels the bilinear path starts from
    s = p.shape[0]
    rgb = np.ascontiguousarray(pixels[:, :, :3])
    height, width = rgb.shape[:2]
    from cleancut.pipeline import _resize_fast

    small = _resize_fast(rgb, s, s).astype(np.float32) / 255.0
    coef = _old_guided_coefficients(small, p, radius, eps)
    out = np.empty((height, width), dtype=np.uint8)
    # a, b upsampled on the reference grid, one row block at a time (warpAffine with the
    # block's row offset in the inverse map).
    import cv2

    for start in range(0, height, rows_per_block):
        stop = min(height, start + rows_per_block)
        inverse = np.array([[s / width, 0.0, 0.0], [0.0, s / height, start * s / height]], dtype=np.float64)
        ab = cv2.warpAffine(
            coef, inverse, (width, stop - start),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE,
        )  # fmt: skip
        guide: np.ndarray = rgb[start:stop].astype(np.float32) * np.float32(1.0 / 255.0)
        q: np.ndarray = np.array(ab[:, :, 3], dtype=np.float32)
        q += ab[:, :, 0] * guide[:, :, 0]
        q += ab[:, :, 1] * guide[:, :, 1]
        q += ab[:, :, 2] * guide[:, :, 2]
        np.clip(q, 0.0, 1.0, out=q)
        q *= np.float32(255.0)
        q += np.float32(0.5)
        out[start:stop] = q.astype(np.uint8)  # truncation of v + 0.5 = round half up
    return out


def _old_blur_fusion_pass(
    image: np.ndarray, fg: np.ndarray, bg: np.ndarray, alpha: np.ndarray, r: int
) -> tuple[np.ndarray, np.ndarray]:
    a = alpha[:, :, None]
    blurred_alpha = _old_blur(alpha, r)[:, :, None]
    blurred_f = _old_blur(fg * a, r) / (blurred_alpha + _OLD_EPS)
    blurred_b = _old_blur(bg * (1.0 - a), r) / ((1.0 - blurred_alpha) + _OLD_EPS)
    residual = image - a * blurred_f - (1.0 - a) * blurred_b
    f = blurred_f + a * residual
    np.clip(f, 0.0, 1.0, out=f)
    return f, blurred_b


def _old_soft_tiles(soft: np.ndarray, tile: int) -> list[tuple[int, int, int, int]]:
    """``(y0, y1, x0, x1)`` of the ``tile``-sized tiles that hold a ``True`` of ``soft``."""
    h, w = soft.shape
    rows = np.arange(0, h, tile)
    cols = np.arange(0, w, tile)
    occupied = np.logical_or.reduceat(np.logical_or.reduceat(soft, rows, axis=0), cols, axis=1)
    return [
        (int(y0), int(min(h, y0 + tile)), int(x0), int(min(w, x0 + tile)))
        for (i, j) in zip(*np.nonzero(occupied), strict=True)
        for y0, x0 in ((rows[i], cols[j]),)
    ]


def _old_wide_pass(image: np.ndarray, alpha: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    """``F̄``, ``B̄`` of the first pass (``F = B = I``) at the image's own size."""
    a = alpha[:, :, None]
    blurred_alpha = _old_blur(alpha, r)[:, :, None]
    blurred_f = _old_blur(image * a, r) / (blurred_alpha + _OLD_EPS)
    blurred_b = _old_blur(image * (1.0 - a), r) / ((1.0 - blurred_alpha) + _OLD_EPS)
    return blurred_f, blurred_b


def old_blur_fusion_tiled(
    pixels: np.ndarray,
    mask: np.ndarray,
    out: np.ndarray,
    which: int,
    radii: tuple[int, int] = matting.BLUR_RADII,
) -> None:
    """Blur-fusion on uint8 ``pixels`` ``[H, W, 3|4]`` and ``mask`` ``[H, W]``: writes the
    foreground (``which=0``) or background (``1``) estimate into ``out[..., :3]`` where
    ``0 < mask < 255``, leaving every other pixel alone.

    Same formulas as :func:`blur_fusion`; the wide pass runs on a copy whose longest side
    is at most 1536 px, the narrow one per 256² tile that holds soft pixels (with 1 + r/2
    pixels of context, so its box means are the whole-image ones).
    """
    import cv2

    h, w = mask.shape
    soft = (mask > 0) & (mask < 255)
    tiles = _old_soft_tiles(soft, _OLD_TILE)
    if not tiles:
        return
    scale = min(1.0, _OLD_WIDE_SIDE / max(h, w))
    sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
    small = cv2.resize(pixels[:, :, :3], (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    small_a = cv2.resize(mask, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    wide_f, wide_b = _old_wide_pass(small, small_a, max(1, round(radii[0] * scale)))
    margin = radii[1] // 2 + 1
    inv = np.float32(1.0 / 255.0)
    fx, fy = sw / w, sh / h
    for y0, y1, x0, x1 in tiles:
        ty0, ty1 = max(0, y0 - margin), min(h, y1 + margin)
        tx0, tx1 = max(0, x0 - margin), min(w, x1 + margin)
        # INTER_AREA maps pixel centres, src = (dst + 0.5) · s − 0.5: upsample on that grid
        m = np.array([[fx, 0.0, (tx0 + 0.5) * fx - 0.5], [0.0, fy, (ty0 + 0.5) * fy - 0.5]], dtype=np.float64)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        size = (tx1 - tx0, ty1 - ty0)
        bf = cv2.warpAffine(wide_f, m, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
        bb = cv2.warpAffine(wide_b, m, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
        image = pixels[ty0:ty1, tx0:tx1, :3].astype(np.float32) * inv
        alpha = mask[ty0:ty1, tx0:tx1].astype(np.float32) * inv
        a = alpha[:, :, None]
        f1 = bf + a * (image - a * bf - (1.0 - a) * bb)
        np.clip(f1, 0.0, 1.0, out=f1)
        f2, b2 = _old_blur_fusion_pass(image, f1, bb, alpha, radii[1])
        if which == 0:
            est = f2
        else:
            est = b2 + (1.0 - a) * (image - a * f2 - (1.0 - a) * b2)
            np.clip(est, 0.0, 1.0, out=est)
        iy0, iy1, ix0, ix1 = y0 - ty0, y1 - ty0, x0 - tx0, x1 - tx0
        sel = soft[y0:y1, x0:x1]
        vals = est[iy0:iy1, ix0:ix1][sel] * 255.0 + 0.5
        out[y0:y1, x0:x1, :3][sel] = vals.astype(np.uint8)


def _old_component_mass(
    support: np.ndarray, weight: np.ndarray, connectivity: int
) -> tuple[np.ndarray, np.ndarray]:
    """Labels of ``support``'s components and each one's summed ``weight`` (index = label)."""
    import cv2

    count, labels = cv2.connectedComponents(support, connectivity=connectivity, ltype=cv2.CV_32S)
    mass = np.bincount(labels.ravel(), weights=weight.ravel(), minlength=count)
    return labels, mass


def old_remove_islands(mask: np.ndarray, min_fraction: float) -> np.ndarray:
    """Clear subject islands whose mass (sum of alpha, in opaque pixels) is below
    ``min_fraction`` of the image area.

    Components are those of the mask's support (``mask > 0``, 8-connected), so an island's
    soft edge goes with it instead of leaving a faint ring; measuring mass rather than pixel
    count keeps a faint haze from counting as a big island.
    """
    if not 0.0 <= min_fraction < 1.0:
        raise InvalidOptionError(f"min_island must be a fraction in [0, 1), got {min_fraction}")
    if min_fraction == 0.0:
        return mask.copy()
    labels, mass = _old_component_mass((mask > 0).astype(np.uint8), mask.astype(np.float32) / 255.0, 8)
    limit = min_fraction * mask.size
    drop = mass < limit
    drop[0] = False  # label 0 is the background (mask == 0) itself
    out = mask.copy()
    out[drop[labels]] = 0
    return out


def old_fill_holes(mask: np.ndarray, min_fraction: float) -> np.ndarray:
    """Fill holes (background regions enclosed by the subject, not touching the image
    border) whose mass (sum of 1 − alpha) is below ``min_fraction`` of the image area.

    Background components are 4-connected, the dual of the subject's 8-connectivity, so a
    diagonal gap in the subject's outline does not leak a hole into the surroundings.
    """
    if not 0.0 <= min_fraction < 1.0:
        raise InvalidOptionError(f"min_hole must be a fraction in [0, 1), got {min_fraction}")
    if min_fraction == 0.0:
        return mask.copy()
    support = (mask < 255).astype(np.uint8)
    labels, mass = _old_component_mass(support, (255 - mask).astype(np.float32) / 255.0, 4)
    limit = min_fraction * mask.size
    fill = mass < limit
    fill[0] = False  # label 0: the opaque subject itself
    border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    fill[np.unique(border)] = False
    out = mask.copy()
    out[fill[labels]] = 255
    return out


# ---------------------------------------------------------------------------------------
# (end of BEFORE)
# ---------------------------------------------------------------------------------------


def _timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    w0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - w0, time.process_time() - c0, result


def ab(name: str, mp: int, old: Callable[[], Any], new: Callable[[], Any], repeat: int,
       diff: Callable[[Any, Any], int]) -> dict[str, Any]:  # fmt: skip
    """Old and new interleaved ``repeat`` times; median wall and CPU seconds of each."""
    runs: dict[str, list[tuple[float, float]]] = {"old": [], "new": []}
    outs: dict[str, Any] = {}
    for _ in range(repeat):
        for label, fn in (("old", old), ("new", new)):
            wall, cpu, outs[label] = _timed(fn)
            runs[label].append((wall, cpu))
    row: dict[str, Any] = {"mp": mp, "stage": name, "max_diff_levels": diff(outs["old"], outs["new"])}
    for label, rs in runs.items():
        row[f"{label}_s"] = statistics.median(w for w, _ in rs)
        row[f"{label}_cpu_s"] = statistics.median(c for _, c in rs)
    row["speedup"] = row["old_s"] / row["new_s"]
    print(f"# {row}", flush=True)
    return row


def _max_diff(a: np.ndarray, b: np.ndarray, where: np.ndarray | None = None) -> int:
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return int((d if where is None else d[where]).max(initial=0))


def before_after(y: np.ndarray, pixels: np.ndarray, mp: int, repeat: int) -> list[dict[str, Any]]:
    rows = [
        ab(
            "guided",
            mp,
            lambda: old_guided_upsample(y, pixels),
            lambda: refine.guided_upsample(y, pixels),
            repeat,
            _max_diff,
        )
    ]
    mask = refine.guided_upsample(y, pixels)
    lo, hi = matting.SOFT_BAND
    band = (mask >= lo) & (mask <= hi)

    def colours(fn: Callable[..., None]) -> Callable[[], np.ndarray]:
        def run() -> np.ndarray:
            out = pixels.copy()
            fn(pixels, mask, out, 0)
            return out

        return run

    new, old = colours(matting.blur_fusion_tiled), colours(old_blur_fusion_tiled)
    rows.append(ab("blur_fusion", mp, old, new, repeat, lambda a, b: _max_diff(a, b, band)))
    frac = 5e-4

    def islands_holes(
        remove: Callable[..., np.ndarray], fill: Callable[..., np.ndarray]
    ) -> Callable[[], np.ndarray]:
        return lambda: fill(remove(mask, frac), frac)

    old_ih = islands_holes(old_remove_islands, old_fill_holes)
    new_ih = islands_holes(maskops.remove_islands, maskops.fill_holes)
    rows.append(ab("islands+holes", mp, old_ih, new_ih, repeat, _max_diff))
    return rows


def options(y: np.ndarray, pixels: np.ndarray, mp: int, repeat: int) -> list[dict[str, Any]]:
    results = []
    for name, opts in OPTIONS.items():
        mask_t, colour_t = [], []
        mask = np.empty(0, np.uint8)
        for _ in range(repeat):
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
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="isnet_fp16")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sizes", default="12,24")
    ap.add_argument("--ab-only", action="store_true", help="only the before/after comparison")
    args = ap.parse_args()
    remover = Remover(args.model, backend="onnxruntime").load()
    with Image.open(REPO / "examples" / "astronaut.jpg") as im:
        src = im.convert("RGB")
    y = remover.infer(pass_input(np.asarray(src), Pass(1024), remover.recipe))
    ab_rows: list[dict[str, Any]] = []
    option_rows: list[dict[str, Any]] = []
    for mp in (int(s) for s in args.sizes.split(",")):
        h, w = SIZES[mp]
        pixels = np.asarray(src.resize((w, h), Image.Resampling.LANCZOS))
        ab_rows += before_after(y, pixels, mp, args.repeat)
        if not args.ab_only:
            option_rows += options(y, pixels, mp, args.repeat)
    print(json.dumps({"before_after": ab_rows, "options": option_rows}, indent=1))
    print("| MP | stage | before s | after s | speed-up | before CPU s | after CPU s | max Δ levels |")
    print("|---|---|---|---|---|---|---|---|")
    for r in ab_rows:
        print(f"| {r['mp']} | {r['stage']} | {r['old_s']:.3f} | {r['new_s']:.3f} | {r['speedup']:.1f}× | "
              f"{r['old_cpu_s']:.3f} | {r['new_cpu_s']:.3f} | {r['max_diff_levels']} |")  # fmt: skip
    if option_rows:
        print()
        print("| MP | option | make_mask s | foreground_colors s | soft pixels |")
        print("|---|---|---|---|---|")
        for r in option_rows:
            cells = f"{r['mask_s']:.2f} | {r['colour_s']:.2f} | {r['soft_fraction']:.2%}"
            print(f"| {r['mp']} | {r['option']} | {cells} |")


if __name__ == "__main__":
    main()
