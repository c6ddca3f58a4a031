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


#: Tiled blur-fusion: tile size, and the longest side of the image the wide (r = 90) pass
#: runs on. The r = 90 box mean varies slowly, so it is computed on an area-downscaled copy
#: (radius scaled alike, i.e. still 90 px of the photo) and upsampled: on 24 MP this takes
#: the whole-image pass from ~11 s to well under a second (benchmarks/edges.py); only tiles
#: holding soft pixels then run the r = 6 pass at full resolution.
_TILE: Final = 256
_WIDE_SIDE: Final = 1536


def _wide_pass(image: np.ndarray, alpha: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    """``F̄``, ``B̄`` of the first pass (``F = B = I``) at the image's own size."""
    a = alpha[:, :, None]
    blurred_alpha = _blur(alpha, r)[:, :, None]
    blurred_f = _blur(image * a, r) / (blurred_alpha + _EPS)
    blurred_b = _blur(image * (1.0 - a), r) / ((1.0 - blurred_alpha) + _EPS)
    return blurred_f, blurred_b


def blur_fusion_tiled(
    pixels: np.ndarray, mask: np.ndarray, out: np.ndarray, which: int, radii: tuple[int, int] = BLUR_RADII
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
    tiles = soft_tiles(soft, _TILE)
    if not tiles:
        return
    scale = min(1.0, _WIDE_SIDE / max(h, w))
    sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
    small = cv2.resize(pixels[:, :, :3], (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    small_a = cv2.resize(mask, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    wide_f, wide_b = _wide_pass(small, small_a, max(1, round(radii[0] * scale)))
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
        f2, b2 = _blur_fusion_pass(image, f1, bb, alpha, radii[1])
        if which == 0:
            est = f2
        else:
            est = b2 + (1.0 - a) * (image - a * f2 - (1.0 - a) * b2)
            np.clip(est, 0.0, 1.0, out=est)
        iy0, iy1, ix0, ix1 = y0 - ty0, y1 - ty0, x0 - tx0, x1 - tx0
        sel = soft[y0:y1, x0:x1]
        vals = est[iy0:iy1, ix0:ix1][sel] * 255.0 + 0.5
        out[y0:y1, x0:x1, :3][sel] = vals.astype(np.uint8)


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
#: soft band). Whole-image sweeps at 24 MP took 30 s and 1.7 GB (benchmarks/edges.py).
_WHOLE_LEVEL_PIXELS: Final = 1 << 20
#: Context around a tile: a red-black sweep moves information at most 2 px, so 2 px per
#: sweep plus slack leaves the tile's own pixels as a whole-level sweep would.
_SWEEP_MARGIN: Final = 8


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
    # The pyramid is built fine to coarse, each level area-resized from the next finer one:
    # resizing the 24 MP original to every level took 3 s of the 11 s (benchmarks/edges.py).
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
        for y0, y1, x0, x1 in soft_tiles(soft, _TILE):
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
