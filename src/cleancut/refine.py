"""Guided upsampling of the network's mask to full resolution (fast guided filter).

He & Sun 2015, "Fast Guided Filter": the local linear model ``q = aᵀ·I + b`` is fitted at
low resolution — between the network's ``S×S`` output and the ``S×S`` image the network saw,
both box-averaged down to :data:`GUIDED_FIT_SIZE`² — then ``a`` and ``b`` (which vary
slowly) are upsampled and applied to the full-resolution photo. The mask's edge then follows
the photo's edge at full resolution instead of the bilinear ramp of the ``S×S`` grid, at
O(pixels) cost: the low-resolution fit is a fixed cost (3×3 colour-guide solve per pixel),
the full-resolution part is one four-channel bilinear upsample and a multiply-add per
channel, all OpenCV calls on row blocks.

The guide is made on the reference's sampling grid (``src = dst · S/D``, no half-pixel
offset; :func:`cleancut.pipeline.downsample_planes`), the grid the network input was made
on, so before the box-averaging it is pixel-for-pixel the network's input; the upsampling
of ``a``/``b`` maps back through the same grid and the averaging's offset, so they land
where the bilinear mask would.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from .errors import InvalidOptionError
from .pipeline import quantize

__all__ = ["GUIDED_EPS", "GUIDED_FIT_SIZE", "GUIDED_RADIUS", "guided_upsample"]

#: The fit's resolution: the network's 1024² output and guide box-averaged 4× per side;
#: window radius 2 there (a 20-px window at 1024²); eps 1e-3 (guide in 0..1: a colour step of
#: ~0.03 already steers the fit, flat regions keep the network's value). Chosen by a sweep
#: with benchmarks/quality.py (figures in benchmarks/stages.py's docstring): the wider
#: window at 256² follows soft edges (fur, hair) best and is a fraction of 1024²'s work.
GUIDED_FIT_SIZE: Final = 256
GUIDED_RADIUS: Final = 2
GUIDED_EPS: Final = 1e-3


def _box(x: np.ndarray, r: int) -> np.ndarray:
    """Mean over a (2r+1)² window, edges reflected (O(1) per pixel, OpenCV box filter)."""
    import cv2

    out: np.ndarray = cv2.blur(x, (2 * r + 1, 2 * r + 1), borderType=cv2.BORDER_REFLECT_101)
    return out


def _coefficient_planes(
    channels: list[np.ndarray], p: np.ndarray, radius: int, eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``a_r, a_g, a_b, b`` (box-averaged) from three contiguous float32 guide planes (0..1)
    and ``p``. Planar and in place: much faster than an interleaved ``[h, w, 3]`` version
    with strided channel slices."""
    f32 = np.float32
    mean_i = [_box(c, radius) for c in channels]
    mean_p = _box(p, radius)
    cov = []
    for c, m in zip(channels, mean_i, strict=True):
        t = _box(c * p, radius)
        t -= m * mean_p
        cov.append(t)

    def var(i: int, j: int, diagonal: bool) -> np.ndarray:
        t = _box(channels[i] * channels[j], radius)
        t -= mean_i[i] * mean_i[j]
        if diagonal:
            t += f32(eps)
        return t

    # Σ + εU per pixel (symmetric 3×3), solved in closed form (adjugate / determinant).
    rr, rg, rb = var(0, 0, True), var(0, 1, False), var(0, 2, False)
    gg, gb, bb = var(1, 1, True), var(1, 2, False), var(2, 2, True)

    def minor(x: np.ndarray, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        t: np.ndarray = x * y
        t -= u * v
        return t

    inv_rr, inv_rg, inv_rb = minor(gg, bb, gb, gb), minor(gb, rb, rg, bb), minor(rg, gb, gg, rb)
    inv_gg, inv_gb, inv_bb = minor(rr, bb, rb, rb), minor(rb, rg, rr, gb), minor(rr, gg, rg, rg)
    det = rr * inv_rr
    det += rg * inv_rg
    det += rb * inv_rb
    np.divide(f32(1.0), det, out=det)
    c0, c1, c2 = cov

    def solve(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        t: np.ndarray = x * c0
        t += y * c1
        t += z * c2
        t *= det
        return t

    a_r, a_g, a_b = (
        solve(inv_rr, inv_rg, inv_rb),
        solve(inv_rg, inv_gg, inv_gb),
        solve(inv_rb, inv_gb, inv_bb),
    )
    b = mean_p - a_r * mean_i[0]
    b -= a_g * mean_i[1]
    b -= a_b * mean_i[2]
    return _box(a_r, radius), _box(a_g, radius), _box(a_b, radius), _box(b, radius)


def _check(guide: np.ndarray, p: np.ndarray, radius: int, eps: float) -> None:
    if guide.ndim != 3 or guide.shape[2] != 3 or p.shape != guide.shape[:2]:
        raise InvalidOptionError(f"guide [h, w, 3] and p [h, w] must match, got {guide.shape} and {p.shape}")
    if radius < 1 or eps <= 0:
        raise InvalidOptionError(f"guided filter needs radius >= 1 and eps > 0, got {radius}, {eps}")


def guided_coefficients(
    guide: np.ndarray, p: np.ndarray, radius: int = GUIDED_RADIUS, eps: float = GUIDED_EPS
) -> np.ndarray:
    """Colour guided-filter coefficients: ``guide`` ``[h, w, 3]`` (float in 0..1, or uint8
    0..255), ``p`` float32 ``[h, w]`` → float32 ``[h, w, 4]`` (``a_r, a_g, a_b, b``, for a
    guide in 0..1), already box-averaged."""
    import cv2

    _check(guide, p, radius, eps)
    scale = np.float32(1.0 / 255.0) if guide.dtype == np.uint8 else np.float32(1.0)
    channels = [c.astype(np.float32) * scale for c in cv2.split(np.ascontiguousarray(guide))]
    planes = _coefficient_planes(channels, np.ascontiguousarray(p, dtype=np.float32), radius, eps)
    out: np.ndarray = cv2.merge(planes)
    return out


#: ``cv2.cvtColor(RGBA2GRAY)`` on float32 is ``0.299·c0 + 0.587·c1 + 0.114·c2`` (these float32
#: constants, SIMD): with each ``a`` divided by its weight beforehand it sums the three
#: products ``a_k·I_k`` in one pass, several times faster than the generic
#: ``cv2.transform`` 4→1.
_GREY_WEIGHTS: Final = (0.299, 0.587, 0.114)
#: Output rows per block: four float32 planes of a 6000-px row block stay in L2-sized pieces
#: (16 and 256 rows were slower).
_ROWS_PER_BLOCK: Final = 64


def guided_upsample(
    y: np.ndarray,
    pixels: np.ndarray,
    *,
    radius: int = GUIDED_RADIUS,
    eps: float = GUIDED_EPS,
    fit_size: int = GUIDED_FIT_SIZE,
    rows_per_block: int = _ROWS_PER_BLOCK,
) -> np.ndarray:
    """Network output ``[..., S, S]`` (0..1) and the full photo ``[H, W, 3|4]`` uint8 →
    ``[H, W]`` uint8 mask whose edges follow the photo.

    The fit runs at ``fit_size``² (``S`` and the guide box-averaged by ``S / fit_size``,
    which must be a whole number; otherwise, as for an output smaller than ``fit_size``,
    at ``S``²) with ``radius`` and ``eps`` there.

    Where the photo is flat the result equals the bilinear mask up to rounding (``a = 0``,
    ``b`` = the local mean of the mask); a clean 0/255 mask stays clean because the result
    is clipped to 0..255 before quantising.

    Full resolution, per block of rows, with buffers reused across blocks (no full-size
    float array, no page faults on fresh memory): the packed ``[a_r/w_r, a_g/w_g, a_b/w_b, b]``
    coefficients are upsampled in one 4-channel ``warpAffine`` (one coordinate map for all
    four; four 1-channel warps cost more), multiplied by the guide ``[R, G, B, 255]``
    (uint8), summed by the grey conversion and the ``b`` channel added, in levels
    (``255·(aᵀI + b)``), clipped and rounded.
    """
    import cv2

    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        raise InvalidOptionError(f"pixels must be uint8 [H, W, 3|4], got {pixels.dtype} {pixels.shape}")
    if radius < 1 or eps <= 0:
        raise InvalidOptionError(f"guided filter needs radius >= 1 and eps > 0, got {radius}, {eps}")
    from .pipeline import downsample_planes

    if isinstance(fit_size, bool) or not isinstance(fit_size, int) or fit_size < 1:
        raise InvalidOptionError(f"fit_size must be a positive integer, got {fit_size!r}")
    p = quantize(y).astype(np.float32)
    p *= np.float32(1.0 / 255.0)  # the same levels the bilinear path starts from
    size = p.shape[0]
    height, width = pixels.shape[:2]
    channels = [c.astype(np.float32) * np.float32(1.0 / 255.0) for c in downsample_planes(pixels, size)]
    k = size // fit_size if size % fit_size == 0 else 1
    if k > 1:
        # k×k block means (OpenCV's integer-factor area path): fit pixel j covers network
        # pixels k·j … k·j + k − 1, centred at k·j + (k − 1)/2 on the network's grid.
        p, *channels = (
            np.asarray(cv2.resize(a, (fit_size, fit_size), interpolation=cv2.INTER_AREA), dtype=np.float32)
            for a in (p, *channels)
        )
    s = p.shape[0]
    shift = (k - 1) / (2 * k)  # network coordinate u ↦ fit coordinate u/k − shift
    a_r, a_g, a_b, b = _coefficient_planes(channels, p, radius, eps)
    # Guide in 0..255 and output in levels: a·(I/255)·255 = a·I, so a_k only loses its
    # grey weight, and b is multiplied by the guide's fourth channel, 255.
    packed = cv2.merge([a / np.float32(w) for a, w in zip((a_r, a_g, a_b), _GREY_WEIGHTS, strict=True)] + [b])
    rows = max(1, min(rows_per_block, height))
    out = np.empty((height, width), dtype=np.uint8)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP

    coef = np.empty((rows, width, 4), np.float32)
    guide = np.empty((rows, width, 4), np.uint8)
    q = np.empty((rows, width), np.float32)
    offset = np.empty((rows, width), np.float32)
    for start in range(0, height, rows):
        stop = min(height, start + rows)
        n = stop - start
        c, g, qb, ob = coef[:n], guide[:n], q[:n], offset[:n]
        # the reference grid (src = dst·S/D) then the fit's offset; the block's row offset
        inverse = np.array(
            [[s / width, 0.0, -shift], [0.0, s / height, start * s / height - shift]], dtype=np.float64
        )
        cv2.warpAffine(packed, inverse, (width, n), dst=c, flags=flags, borderMode=cv2.BORDER_REPLICATE)
        if pixels.shape[2] == 3:
            cv2.cvtColor(pixels[start:stop], cv2.COLOR_RGB2RGBA, dst=g)  # alpha 255
        else:
            np.copyto(g, pixels[start:stop])
            g[:, :, 3] = 255
        cv2.multiply(c, g, dst=c, dtype=cv2.CV_32F)  # a_k/w_k·I_k and 255·b
        cv2.cvtColor(c, cv2.COLOR_RGBA2GRAY, dst=qb)  # Σ a_k·I_k
        cv2.extractChannel(c, 3, dst=ob)
        cv2.add(qb, ob, dst=qb)
        # ≤ 0 → 0, then round and saturate at 255 in one pass (cheaper than np.clip and a
        # casting store); rounding is half-to-even, unlike quantize's half-up, at exact .5 only
        cv2.threshold(qb, 0.0, 0.0, cv2.THRESH_TOZERO, dst=qb)
        cv2.convertScaleAbs(qb, dst=out[start:stop])
    return out
