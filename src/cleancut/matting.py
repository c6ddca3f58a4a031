"""Foreground (and background) colour estimation at semi-transparent pixels.

An observed pixel is ``I = α·F + (1 − α)·B``. Cutting out with ``I`` as the colour keeps a
share ``(1 − α)·B`` of the old background in every soft pixel — the halo users see in hair
and fur. Both estimators here recover ``F`` (and ``B``) from ``I`` and ``α``:

* :func:`blur_fusion` — Forte & Pitié 2021, "Approximate Fast Foreground Colour Estimation":
  ``F̂ = F̄ + α·(I − α·F̄ − (1 − α)·B̄)`` where ``F̄``, ``B̄`` are α-weighted box-filtered
  colours; two passes (radius 90 for a robust first guess, then 6 for a local correction).
  Box filters are O(1) per pixel, so the whole method is O(pixels).
* :func:`multilevel` — Germer et al. 2020, "Fast Multi-Level Foreground Estimation": the
  closed-form-matting smoothness energy minimised coarse to fine (a 2×2 solve per pixel
  per channel), here vectorised with numpy (red-black Gauss–Seidel sweeps) instead of the
  numba loops of ``pymatting.estimate_foreground_ml``, so no JIT compiler is a dependency.

Both work in float32 on ``[H, W, 3]`` images in 0..1 and ``[H, W]`` alpha in 0..1.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np

from .parallel import inner_threads

__all__ = ["BLUR_RADII", "blur_fusion", "blur_fusion_tiled", "multilevel", "multilevel_tiled", "soft_tiles"]

#: The paper's two passes: a wide first estimate, then a local refinement.
BLUR_RADII: Final = (90, 6)
_EPS: Final = np.float32(1e-5)


def _blur(x: np.ndarray, r: int) -> np.ndarray:
    import cv2

    out: np.ndarray = cv2.blur(x, (r, r), borderType=cv2.BORDER_REFLECT_101)
    return out


def _blur_fusion_pass(
    image: np.ndarray, fg: np.ndarray, bg: np.ndarray, alpha: np.ndarray, r: int
) -> tuple[np.ndarray, np.ndarray]:
    a = alpha[:, :, None]
    blurred_alpha = _blur(alpha, r)[:, :, None]
    blurred_f = _blur(fg * a, r) / (blurred_alpha + _EPS)
    blurred_b = _blur(bg * (1.0 - a), r) / ((1.0 - blurred_alpha) + _EPS)
    residual = image - a * blurred_f - (1.0 - a) * blurred_b
    f = blurred_f + a * residual
    np.clip(f, 0.0, 1.0, out=f)
    return f, blurred_b


def _blur_fusion_arrays(
    image: np.ndarray, alpha: np.ndarray, radii: tuple[int, int] = BLUR_RADII
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``F̂``, ``B̄`` of the second pass and ``B̂`` (the symmetric background estimate)."""
    f, b = _blur_fusion_pass(image, image, image, alpha, radii[0])
    f, b = _blur_fusion_pass(image, f, b, alpha, radii[1])
    a = alpha[:, :, None]
    # Background by the same correction with the roles swapped: B̂ = B̄ + (1 − α)·(I − α·F̂ − (1 − α)·B̄)
    b_hat = b + (1.0 - a) * (image - a * f - (1.0 - a) * b)
    np.clip(b_hat, 0.0, 1.0, out=b_hat)
    return f, b, b_hat


def blur_fusion(
    image: np.ndarray, alpha: np.ndarray, radii: tuple[int, int] = BLUR_RADII
) -> tuple[np.ndarray, np.ndarray]:
    """Foreground and background colours ``(F̂, B̂)``, float32 ``[H, W, 3]`` in 0..1."""
    f, _, b_hat = _blur_fusion_arrays(image, alpha, radii)
    return f, b_hat


def soft_tiles(soft: np.ndarray, tile: int) -> list[tuple[int, int, int, int]]:
    """``(y0, y1, x0, x1)`` of the ``tile``-sized tiles that hold a nonzero of ``soft``."""
    import cv2

    h, w = soft.shape
    hb, wb = -(-h // tile), -(-w // tile)
    s = soft.view(np.uint8) if soft.dtype == np.bool_ else soft
    padded = cv2.copyMakeBorder(s, 0, hb * tile - h, 0, wb * tile - w, cv2.BORDER_CONSTANT, value=0)
    # max over each tile's rows (a row-wise reduction numpy vectorises), then over its
    # columns: far cheaper than two logical_or.reduceat passes.
    occupied = padded.reshape(hb, tile, wb * tile).max(axis=1).reshape(hb, wb, tile).max(axis=2)
    return [
        (int(i) * tile, min(h, (int(i) + 1) * tile), int(j) * tile, min(w, (int(j) + 1) * tile))
        for i, j in zip(*np.nonzero(occupied), strict=True)
    ]


#: Tiled blur-fusion. The r = 90 box mean varies slowly, so the wide pass runs on a copy
#: area-downscaled by an integer ``k`` (longest side ≤ ``_WIDE_SIDE``; radius scaled alike,
#: still 90 px of the photo) and is upsampled only where needed; its box edges snap to k-px
#: blocks. 768 keeps the edge colours (benchmarks/quality.py; figures in
#: benchmarks/stages.py's docstring) at half the CPU of full size on a 1.5 MP photo.
#: The r = 6 pass runs at full resolution on ``_TILE``² tiles (``_MARGIN`` px of context, so
#: their box means are the whole image's) that hold pixels of the band, ``_BATCH`` tiles at a
#: time stacked into one tall image: a few whole-array OpenCV calls per batch instead of per
#: tile, on arrays small enough to stay in cache, and memory stays at a few MB whatever the
#: image size. Batches run on ``_THREADS`` threads: OpenCV and numpy release the GIL and at
#: this size OpenCV runs each call on one core.
_WIDE_SIDE: Final = 768
_TILE: Final = 64
_MARGIN: Final = 4  # cv2.blur with an even 6×6 box reads offsets −3..+2
_BATCH: Final = 8
_THREADS: Final = 2
#: Pixels whose colour is re-estimated: ``lo ≤ α ≤ hi``. Outside it the estimate cannot
#: matter: at α ≤ 3 the pixel shows ≤ 1.2 % of its colour, at α ≥ 252 the observed colour
#: holds ≤ 1.2 % of background. IS-Net's bilinear-upsampled mask has levels 1–3 over much of
#: the background, so the band is what makes the cost follow the edge, not the image size.
SOFT_BAND: Final = (4, 251)


def _wide_pass(image: np.ndarray, alpha: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    """``F̄``, ``B̄`` of the first pass (``F = B = I``) at the image's own size."""
    import cv2

    a3 = cv2.merge([alpha, alpha, alpha])  # 3-channel: no broadcasting in the products
    blurred_a = _blur(a3, r)
    blurred_f = _blur(cv2.multiply(image, a3), r)
    cv2.divide(blurred_f, blurred_a + _EPS, dst=blurred_f)
    # the reference's order of operations: where mean(α) ≈ 1 this quotient is tiny/tiny
    blurred_b = _blur(cv2.multiply(image, np.float32(1.0) - a3), r)
    cv2.divide(blurred_b, (np.float32(1.0) - blurred_a) + _EPS, dst=blurred_b)
    return blurred_f, blurred_b


def _reflect(i: np.ndarray, n: int) -> np.ndarray:
    """Indices folded into ``0..n-1`` the way ``BORDER_REFLECT_101`` does (any distance)."""
    if n == 1:
        return np.zeros_like(i)
    period = 2 * (n - 1)
    i = np.abs(i) % period
    out: np.ndarray = np.where(i > n - 1, period - i, i)
    return out


def _gather(src: np.ndarray, y0: int, x0: int, size: int, dst: np.ndarray) -> None:
    """``dst`` (``size``², same dtype) = ``src[y0:y0+size, x0:x0+size]``, reflect-101 outside."""
    import cv2

    h, w = src.shape[:2]
    ya, yb, xa, xb = max(0, y0), min(h, y0 + size), max(0, x0), min(w, x0 + size)
    if ya == y0 and xa == x0 and yb == y0 + size and xb == x0 + size:
        np.copyto(dst, src[ya:yb, xa:xb])
        return
    top, left = ya - y0, xa - x0
    bottom, right = y0 + size - yb, x0 + size - xb
    if min(yb - ya, xb - xa) > max(top, bottom, left, right):
        cv2.copyMakeBorder(src[ya:yb, xa:xb], top, bottom, left, right, cv2.BORDER_REFLECT_101, dst=dst)
        return
    rows = _reflect(np.arange(y0, y0 + size), h)  # tiny images: reflect index by index
    cols = _reflect(np.arange(x0, x0 + size), w)
    np.copyto(dst, src[rows[:, None], cols[None, :]])


def blur_fusion_tiled(
    pixels: np.ndarray,
    mask: np.ndarray,
    out: np.ndarray,
    which: int,
    radii: tuple[int, int] = BLUR_RADII,
    band: tuple[int, int] = SOFT_BAND,
) -> None:
    """Blur-fusion on uint8 ``pixels`` ``[H, W, 3|4]`` and ``mask`` ``[H, W]``: writes the
    foreground (``which=0``) or background (``1``) estimate into ``out[..., :3]`` where
    ``band[0] ≤ mask ≤ band[1]`` (:data:`SOFT_BAND`; ``(1, 254)`` is every soft pixel),
    leaving every other pixel alone.

    Same formulas as :func:`blur_fusion`: the first-pass ``F``, ``B`` of every pixel the
    narrow box reads are computed, so inside the band the only departure from the
    whole-image pass is the wide pass's resolution (:func:`_wide_fields`).
    """
    import cv2

    lo, hi = max(1, int(band[0])), min(254, int(band[1]))
    r = radii[1]
    if r // 2 + 1 > _MARGIN:
        raise ValueError(f"narrow radius {r} needs more than {_MARGIN} px of tile context")
    tiles = soft_tiles(cv2.inRange(mask, lo, hi) > 0, _TILE)
    if not tiles:
        return
    rgb = pixels if pixels.shape[2] == 3 else np.ascontiguousarray(pixels[:, :, :3])
    wide_f, wide_b, k = _wide_fields(rgb, mask, radii[0])
    # low-res context for the crops below (a patch reaches TILE + MARGIN px past the
    # image's edge), edge replicated like warpAffine's BORDER_REPLICATE
    pad = -(-(_TILE + _MARGIN) // k) + 2
    wide_f = cv2.copyMakeBorder(wide_f, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    wide_b = cv2.copyMakeBorder(wide_b, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    f32 = np.float32
    inv = f32(1.0 / 255.0)
    size = _TILE + 2 * _MARGIN

    def run(batch: list[tuple[int, int, int, int]]) -> None:
        n = len(batch)
        rows = n * size
        img8 = np.empty((rows, size, 3), np.uint8)
        a8 = np.empty((rows, size), np.uint8)
        f_bar = np.empty((rows, size, 3), np.float32)
        b_bar = np.empty((rows, size, 3), np.float32)
        for j, (y0, _, x0, _) in enumerate(batch):
            py, px = y0 - _MARGIN, x0 - _MARGIN
            sl = slice(j * size, (j + 1) * size)
            _gather(rgb, py, px, size, img8[sl])
            _gather(mask, py, px, size, a8[sl])
            # F̄, B̄ on the patch: a bilinear ×k resize of the low-res crop. INTER_AREA by k
            # averaged k×k blocks, so full-res x sits at (x + 0.5)/k − 0.5 of the low-res
            # grid, which is cv2.resize's own grid for a crop starting at a block edge (c0·k):
            # the bilinear warpAffine computed (bit-identical for k | 32, where its 1/32
            # weights are exact), at less than half the cost.
            # (Context outside the image gets the edge's F̄, B̄ rather than the mirrored
            # pixel's: both vary over ~90 px, the difference is below a level.)
            cy, cx = py // k - 1, px // k - 1
            oy, ox = py - cy * k, px - cx * k
            ny, nx = -(-(oy + size) // k), -(-(ox + size) // k)
            crop = (slice(cy + pad, cy + pad + ny), slice(cx + pad, cx + pad + nx))
            up_f = cv2.resize(wide_f[crop], (nx * k, ny * k), interpolation=cv2.INTER_LINEAR)
            up_b = cv2.resize(wide_b[crop], (nx * k, ny * k), interpolation=cv2.INTER_LINEAR)
            f_bar[sl] = up_f[oy : oy + size, ox : ox + size]
            b_bar[sl] = up_b[oy : oy + size, ox : ox + size]
        # The stack as one tall image: a box at a tile's inner pixel reads only its own
        # patch (margin ≥ 3), so patches do not leak into each other where it is used.
        # Batches of 8 tiles keep every array cache-sized (much larger batches ran slower
        # per pixel). α is made 3-channel once: numpy's broadcast multiply [n, m, 3] ×
        # [n, m, 1] is several times slower than a plain one.
        fb, bb = f_bar, b_bar
        alpha = np.multiply(a8, inv, dtype=f32)
        a3 = cv2.merge([alpha, alpha, alpha])
        na3 = f32(1.0) - a3  # numpy: cv2 would read a scalar as (s, 0, 0, 0)
        image = np.multiply(img8, inv, dtype=f32)
        # first pass at every patch pixel: F₁ = F̄ + α·((I − B̄) − α·(F̄ − B̄)), clipped
        t = cv2.subtract(image, bb)
        d = cv2.subtract(fb, bb)
        cv2.multiply(d, a3, dst=d)
        cv2.subtract(t, d, dst=t)
        cv2.multiply(t, a3, dst=t)
        cv2.add(t, fb, dst=t)
        _clip01(t)
        cv2.multiply(t, a3, dst=t)  # α·F₁
        cv2.multiply(bb, na3, dst=d)  # (1 − α)·B̄
        mean_f = _blur(t, r)
        mean_b = _blur(d, r)
        mean_a = cv2.merge([_blur(alpha, r)] * 3)
        # second pass: F̄₂ = mean(α·F₁)/mean(α), B̄₂ = mean((1 − α)·B̄)/(1 − mean(α))
        cv2.divide(mean_f, mean_a + _EPS, dst=mean_f)
        cv2.divide(mean_b, (f32(1.0) - mean_a) + _EPS, dst=mean_b)
        # F̂ = F̄₂ + α·(I − α·F̄₂ − (1 − α)·B̄₂)
        res = cv2.subtract(image, cv2.multiply(a3, mean_f))
        cv2.subtract(res, cv2.multiply(na3, mean_b), dst=res)
        cv2.multiply(res, a3, dst=res)
        est = cv2.add(mean_f, res, dst=mean_f)
        _clip01(est)
        if which != 0:  # B̂ = B̄₂ + (1 − α)·(I − α·F̂ − (1 − α)·B̄₂)
            res = cv2.subtract(image, cv2.multiply(a3, est))
            cv2.subtract(res, cv2.multiply(na3, mean_b), dst=res)
            cv2.multiply(res, na3, dst=res)
            est = cv2.add(mean_b, res, dst=mean_b)
            _clip01(est)
        est8 = cv2.convertScaleAbs(est, alpha=255.0)  # ≥ 0 here: rounds and saturates
        sel = cv2.inRange(a8, lo, hi)
        for j, (y0, y1, x0, x1) in enumerate(batch):
            inner = (
                slice(j * size + _MARGIN, j * size + _MARGIN + y1 - y0),
                slice(_MARGIN, _MARGIN + x1 - x0),
            )
            np.copyto(out[y0:y1, x0:x1, :3], est8[inner], where=sel[inner][:, :, None] > 0)

    batches = [tiles[i : i + _BATCH] for i in range(0, len(tiles), _BATCH)]
    # Batches are independent and write disjoint tiles of ``out`` (see _THREADS).
    workers = min(_THREADS, inner_threads(), len(batches))
    if workers <= 1:
        for batch in batches:
            run(batch)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(run, batches))


def _clip01(x: np.ndarray) -> None:
    """Clip to 0..1 in place (two cv2 thresholds: 5× faster than np.clip on float32)."""
    import cv2

    cv2.threshold(x, 1.0, 1.0, cv2.THRESH_TRUNC, dst=x)
    cv2.threshold(x, 0.0, 0.0, cv2.THRESH_TOZERO, dst=x)


def _wide_fields(rgb: np.ndarray, mask: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray, int]:
    """First-pass ``F̄``, ``B̄`` (float32 0..1) on a copy area-downscaled by an integer ``k``
    (longest side ≤ ``_WIDE_SIDE``), and ``k``. An integer factor takes OpenCV's block-mean
    path (several times faster); the image is cropped to a multiple of
    ``k`` (< k px lost on two sides, nothing to a 90-px mean)."""
    import cv2

    h, w = mask.shape
    k = max(1, math.ceil(max(h, w) / _WIDE_SIDE))
    sh, sw = max(1, h // k), max(1, w // k)
    crop_h, crop_w = min(h, sh * k), min(w, sw * k)
    small = cv2.resize(rgb[:crop_h, :crop_w], (sw, sh), interpolation=cv2.INTER_AREA)
    small_a = cv2.resize(mask[:crop_h, :crop_w], (sw, sh), interpolation=cv2.INTER_AREA)
    f, b = _wide_pass(
        small.astype(np.float32) / 255.0, small_a.astype(np.float32) / 255.0, max(1, round(r / k))
    )
    return f, b, k


def _shift(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``x`` moved so that ``out[y, x] = x[clamp(y + dy), clamp(x + dx)]`` (edge replicated)."""
    out = np.empty_like(x)
    if dy == 1:
        out[:-1] = x[1:]
        out[-1] = x[-1]
    elif dy == -1:
        out[1:] = x[:-1]
        out[0] = x[0]
    elif dx == 1:
        out[:, :-1] = x[:, 1:]
        out[:, -1] = x[:, -1]
    else:
        out[:, 1:] = x[:, :-1]
        out[:, 0] = x[:, 0]
    return out


_NEIGHBOURS: Final = ((1, 0), (-1, 0), (0, 1), (0, -1))


def _resize(x: np.ndarray, height: int, width: int, nearest: bool) -> np.ndarray:
    import cv2

    if x.shape[:2] == (height, width):
        return x
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA
    out: np.ndarray = cv2.resize(x, (width, height), interpolation=interp)
    return out


#: Levels up to this many pixels are swept whole; bigger ones only in 256² tiles that hold
#: semi-transparent pixels (elsewhere α is 0 or 1 and the caller reads F̂ only inside the
#: soft band): whole-image sweeps of a 24 MP photo take tens of seconds and over a GB.
_WHOLE_LEVEL_PIXELS: Final = 1 << 20
#: Context around a tile: a red-black sweep moves information at most 2 px, so 2 px per
#: sweep plus slack leaves the tile's own pixels as a whole-level sweep would.
_SWEEP_MARGIN: Final = 8
_SWEEP_TILE: Final = 256


def _sweep(
    img: np.ndarray,
    a: np.ndarray,
    f: np.ndarray,
    b: np.ndarray,
    sweeps: int,
    regularization: float,
    gradient_weight: float,
) -> None:
    """``sweeps`` red-black Gauss–Seidel sweeps on ``f``, ``b`` in place."""
    weights = [
        (np.float32(regularization) + np.float32(gradient_weight) * np.abs(a - _shift(a, dy, dx)))[:, :, None]
        for dy, dx in _NEIGHBOURS
    ]
    a3 = a[:, :, None]
    a1 = 1.0 - a3
    wsum = weights[0] + weights[1] + weights[2] + weights[3]
    a00 = a3 * a3 + wsum
    a11 = a1 * a1 + wsum
    a01 = a3 * a1
    inv_det = 1.0 / (a00 * a11 - a01 * a01)
    b00, b01, b11 = inv_det * a11, -inv_det * a01, inv_det * a00
    ai, a1i = a3 * img, a1 * img
    h, w = a.shape
    yy, xx = np.indices((h, w), sparse=True)
    red = np.broadcast_to(((yy + xx) % 2 == 0)[:, :, None], f.shape)
    for _ in range(sweeps):
        for colour in (red, ~red):
            sf = ai.copy()
            sb = a1i.copy()
            for wgt, (dy, dx) in zip(weights, _NEIGHBOURS, strict=True):
                sf += wgt * _shift(f, dy, dx)
                sb += wgt * _shift(b, dy, dx)
            nf = b00 * sf + b01 * sb
            nb = b01 * sf + b11 * sb
            np.clip(nf, 0.0, 1.0, out=nf)
            np.clip(nb, 0.0, 1.0, out=nb)
            np.copyto(f, nf, where=colour)
            np.copyto(b, nb, where=colour)


def _levels(h0: int, w0: int) -> list[tuple[int, int]]:
    n_levels = max(1, math.ceil(math.log2(max(h0, w0))))
    return [
        (max(1, round(h0 ** (level / n_levels))), max(1, round(w0 ** (level / n_levels))))
        for level in range(n_levels + 1)
    ]


def multilevel(
    image: np.ndarray,
    alpha: np.ndarray,
    *,
    regularization: float = 1e-5,
    gradient_weight: float = 1.0,
    small_iterations: int = 10,
    big_iterations: int = 2,
    small_size: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """Foreground and background colours ``(F̂, B̂)`` by multi-level estimation, whole image.

    Parameters and level schedule follow the paper's reference implementation (pymatting):
    ``ceil(log2(max side))`` levels of size ``side^(i/levels)``, 10 sweeps on levels up to
    32×32 and 2 above. Per pixel and channel it solves

        [α² + Σw     α(1−α)    ] [F]   [α·I + Σ w·F_n]
        [α(1−α)      (1−α)² + Σw] [B] = [(1−α)·I + Σ w·B_n]

    over the 4 neighbours ``n`` with ``w = regularization + gradient_weight·|α − α_n|``.
    Sweeps are red-black (half the pixels, then the other half), the vectorisable order
    with Gauss–Seidel's convergence. :func:`multilevel_tiled` is the fast path.
    """
    h0, w0 = alpha.shape
    mean = image.reshape(-1, 3).mean(axis=0).astype(np.float32)
    f = np.broadcast_to(mean, (1, 1, 3)).copy()
    b = f.copy()
    for h, w in _levels(h0, w0):
        img = _resize(image, h, w, nearest=False)
        a = _resize(alpha, h, w, nearest=False).astype(np.float32)
        f = np.ascontiguousarray(_resize(f, h, w, nearest=True))
        b = np.ascontiguousarray(_resize(b, h, w, nearest=True))
        sweeps = small_iterations if h * w <= small_size * small_size else big_iterations
        _sweep(img, a, f, b, sweeps, regularization, gradient_weight)
    return f, b


def multilevel_tiled(
    pixels: np.ndarray,
    mask: np.ndarray,
    out: np.ndarray,
    which: int,
    *,
    regularization: float = 1e-5,
    gradient_weight: float = 1.0,
    small_iterations: int = 10,
    big_iterations: int = 2,
    small_size: int = 32,
    whole_level_pixels: int = _WHOLE_LEVEL_PIXELS,
) -> None:
    """:func:`multilevel` on uint8 ``pixels``/``mask``, writing the foreground (``which=0``)
    or background (``1``) estimate into ``out[..., :3]`` where ``0 < mask < 255``.

    Levels up to 1 MP are swept whole; bigger levels only in the 256² tiles holding soft
    pixels (8 px of context); the uint8 pyramid is area-resized level by level.
    """
    inv = np.float32(1.0 / 255.0)
    h0, w0 = mask.shape
    levels = _levels(h0, w0)
    # The pyramid is built fine to coarse, each level area-resized from the next finer one
    # (resizing the full-size original to every level was a large share of the time).
    pyramid = [(np.ascontiguousarray(pixels[:, :, :3]), mask)]
    for h, w in reversed(levels[:-1]):
        img8, a8 = pyramid[-1]
        pyramid.append((_resize(img8, h, w, nearest=False), _resize(a8, h, w, nearest=False)))
    pyramid.reverse()
    mean = pyramid[0][0].reshape(-1, 3).mean(axis=0).astype(np.float32) * inv
    f = np.broadcast_to(mean, (1, 1, 3)).copy()
    b = f.copy()
    for (h, w), (img8, a8) in zip(levels, pyramid, strict=True):
        f = np.ascontiguousarray(_resize(f, h, w, nearest=True))
        b = np.ascontiguousarray(_resize(b, h, w, nearest=True))
        sweeps = small_iterations if h * w <= small_size * small_size else big_iterations
        if h * w <= whole_level_pixels:
            _sweep(img8.astype(np.float32) * inv, a8.astype(np.float32) * inv, f, b, sweeps,
                   regularization, gradient_weight)  # fmt: skip
            continue
        soft = (a8 > 0) & (a8 < 255)
        for y0, y1, x0, x1 in soft_tiles(soft, _SWEEP_TILE):
            ty0, ty1 = max(0, y0 - _SWEEP_MARGIN), min(h, y1 + _SWEEP_MARGIN)
            tx0, tx1 = max(0, x0 - _SWEEP_MARGIN), min(w, x1 + _SWEEP_MARGIN)
            fs, bs = f[ty0:ty1, tx0:tx1].copy(), b[ty0:ty1, tx0:tx1].copy()
            img_t = img8[ty0:ty1, tx0:tx1].astype(np.float32) * inv
            a_t = a8[ty0:ty1, tx0:tx1].astype(np.float32) * inv
            _sweep(img_t, a_t, fs, bs, sweeps, regularization, gradient_weight)
            f[y0:y1, x0:x1] = fs[y0 - ty0 : y1 - ty0, x0 - tx0 : x1 - tx0]
            b[y0:y1, x0:x1] = bs[y0 - ty0 : y1 - ty0, x0 - tx0 : x1 - tx0]
    soft = (mask > 0) & (mask < 255)
    est = f if which == 0 else b
    vals = est[soft] * 255.0 + 0.5
    out[:, :, :3][soft] = vals.astype(np.uint8)
