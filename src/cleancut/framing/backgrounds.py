"""The layers behind and under the subject, each made at the output size: the blurred photo
(``blur``), a background image (``fill`` or ``fit``) and the drop shadow (``shadow``).

A colour needs no layer (:func:`cleancut.framing.compose.blend` takes it as it is). The
blurs run on a copy shrunk until sigma is :data:`_WORK_SIGMA` pixels: a Gaussian of sigma
``s`` removes all detail finer than ``s`` anyway, so nothing visible is lost, and a large
canvas's blur stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import numpy as np

from .geometry import resize

if TYPE_CHECKING:
    from .options import Fit, Framing

__all__ = ["MIN_SIGMA_PX", "blur_background", "image_background", "shadow"]

#: Blur and shadow sigmas are at least this many output pixels: a Gaussian narrower than
#: this changes no uint8 level, and a tiny ``blur`` must not divide the working scale by 0.
MIN_SIGMA_PX: Final = 0.1
#: The blurs run at the scale where sigma is this many pixels (see the module docstring).
_WORK_SIGMA: Final = 4.0


def _work_size(w: int, h: int, f: float) -> tuple[int, int]:
    """``(w, h)`` scaled by ``f``, at least one pixel each."""
    return max(1, round(w * f)), max(1, round(h * f))


def blur_background(photo: np.ndarray, mask: np.ndarray, size: tuple[int, int], sigma: float) -> np.ndarray:
    """The photo blurred with the subject left out: ``blur(photo·w) / blur(w)`` where ``w`` is
    255 − mask (normalised convolution), so subject colours do not halo into the background.
    ``photo`` and ``mask`` are the canvas window at source scale; the result is at ``size``
    and ``sigma`` is in output pixels.

    Everything but the last step runs at the working scale (sigma = :data:`_WORK_SIGMA` px):
    shrinking straight there is cheaper than shrinking to the output size first, and the
    blur hides the difference. The result is made uint8 there and only then scaled up (a
    float32 upscale, clip and conversion at full size would cost most of the time; the uint8
    one is off by at most ±1 level, invisible under a blur)."""
    import cv2

    ow, oh = size
    out_scale = ow / photo.shape[1]
    sw, sh = _work_size(photo.shape[1], photo.shape[0], min(1.0, _WORK_SIGMA / sigma) * out_scale)
    s = sigma * (sw / ow)
    p = cv2.resize(photo, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32)
    wgt = cv2.resize(mask, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32)
    wgt = np.subtract(np.float32(1), wgt * np.float32(1 / 255))
    num = cv2.GaussianBlur(p * wgt[:, :, None], (0, 0), sigmaX=s, borderType=cv2.BORDER_REFLECT_101)
    den = cv2.GaussianBlur(wgt, (0, 0), sigmaX=s, borderType=cv2.BORDER_REFLECT_101)
    plain = cv2.GaussianBlur(p, (0, 0), sigmaX=s, borderType=cv2.BORDER_REFLECT_101)
    # Deep inside a large subject no background is within reach: fall back to the plain blur
    # there (the subject covers it anyway).
    ok = den > 1e-3
    blurred = np.where(ok[:, :, None], num / np.maximum(den, 1e-3)[:, :, None], plain)
    small = np.clip(blurred + 0.5, 0, 255).astype(np.uint8)
    if (sw, sh) == (ow, oh):
        return small
    out: np.ndarray = cv2.resize(small, (ow, oh), interpolation=cv2.INTER_LINEAR)
    return out


def image_background(image: np.ndarray, size: tuple[int, int], fit: Fit) -> np.ndarray:
    """A background image scaled to ``size``: ``fill`` covers it (centre-cropped), ``fit``
    fits inside it, centred, with the bars in the image's mean colour."""
    import cv2

    from ..pipeline import flatten

    rgb = flatten(image, (255, 255, 255)) if image.shape[2] == 4 else image  # alpha onto white
    ow, oh = size
    ih, iw = rgb.shape[:2]
    if fit == "fill":
        s = max(ow / iw, oh / ih)
        rw, rh = max(ow, round(iw * s)), max(oh, round(ih * s))
        x0, y0 = (rw - ow) // 2, (rh - oh) // 2
        if s <= 1:
            big = resize(rgb, (rw, rh))
            return np.ascontiguousarray(big[y0 : y0 + oh, x0 : x0 + ow])
        # Scaling up, only the covering part is made (as resize maps pixel centres): scaling
        # the whole image first made a 1×2000 px strip behind a 100² canvas 100×200000.
        sx, sy = rw / iw, rh / ih
        warp = np.array([[sx, 0.0, 0.5 * sx - 0.5 - x0], [0.0, sy, 0.5 * sy - 0.5 - y0]])
        out: np.ndarray = cv2.warpAffine(
            np.ascontiguousarray(rgb), warp, (ow, oh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        return out
    s = min(ow / iw, oh / ih)
    rw, rh = min(ow, max(1, round(iw * s))), min(oh, max(1, round(ih * s)))
    mean = np.round(rgb.reshape(-1, 3).mean(axis=0)).astype(np.uint8)
    out = np.empty((oh, ow, 3), dtype=np.uint8)
    out[:] = mean
    x0, y0 = (ow - rw) // 2, (oh - rh) // 2
    out[y0 : y0 + rh, x0 : x0 + rw] = resize(rgb, (rw, rh))
    return out


def shadow(alpha: np.ndarray, framing: Framing, subject_px: float) -> np.ndarray:
    """Shadow opacity ``[h, w]`` uint8: ``alpha`` offset and blurred, times the opacity.
    ``subject_px``: the subject's longer side in output pixels (the unit of the offset).

    Shifted, blurred and scaled at the working scale (sigma = :data:`_WORK_SIGMA` px; the
    offset is shifted there by a sub-pixel warp) and only the uint8 result scaled up, never
    a float32 canvas-sized copy."""
    import cv2

    h, w = alpha.shape
    sigma = max(MIN_SIGMA_PX, framing.shadow_softness * subject_px)
    sw, sh = _work_size(w, h, min(1.0, _WORK_SIGMA / sigma))
    small = cv2.resize(alpha, (sw, sh), interpolation=cv2.INTER_AREA) if (sw, sh) != (w, h) else alpha
    dx = framing.shadow_offset[0] * subject_px * sw / w
    dy = framing.shadow_offset[1] * subject_px * sh / h
    shift = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]], dtype=np.float64)
    moved = cv2.warpAffine(
        small.astype(np.float32),
        shift,
        (sw, sh),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    soft = cv2.GaussianBlur(moved, (0, 0), sigmaX=sigma * sw / w, borderType=cv2.BORDER_REFLECT_101)
    low: np.ndarray = np.clip(soft * np.float32(framing.shadow_opacity) + 0.5, 0, 255).astype(np.uint8)
    if (sw, sh) == (w, h):
        return low
    out: np.ndarray = cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR)
    return out
