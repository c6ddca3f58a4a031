"""The framed cut-out: :func:`apply` places the photo and mask on the canvas that
:mod:`~cleancut.framing.geometry` decides and composites them over the background that
:mod:`~cleancut.framing.backgrounds` makes.

After the geometry (subject box, crop, square canvas, size cap):

5. **Background**: transparent (alpha is the mask), a colour, an image (``fill``: scaled to
   cover the canvas and centre-cropped; ``fit``: scaled to fit inside it, the bars filled
   with the image's mean colour), or ``blur``: the photo itself blurred (Gaussian, sigma
   ``blur`` × the canvas's longer side), with the subject left out of the blur so that it
   does not smear into its own background.
6. **Shadow** (``shadow``): a blurred copy of the mask, offset down (by default), darkens the
   background under the subject.

Any opaque background gives alpha 255 everywhere (so JPEG needs no flattening); a transparent
one keeps the mask as alpha (with the shadow, where there is one, added to it).

Compositing is done on the sRGB-encoded values, not in linear light. The mask is an alpha
matte in the sense of the matting datasets IS-Net is trained on, which composite in sRGB,
and every browser and viewer composites a PNG's alpha in sRGB: blending the same way makes
an opaque output look exactly like the transparent cut-out shown on that colour, and gives
the same pixels as ``Cutout.to_bytes(bg_color=...)`` (pipeline.flatten). Linear-light
blending would thin dark hair on light backgrounds relative to what users see in previews.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Union

import numpy as np

from ..errors import InvalidOptionError
from . import backgrounds
from .geometry import Geometry, geometry, place

if TYPE_CHECKING:
    from .options import Framing

__all__ = ["Framed", "Layer", "apply", "blend"]

#: :func:`blend` works through the canvas in strips of about this many pixels, so that its
#: float32 weights stay ~2 MB (not 8 bytes per canvas pixel) and in cache.
_STRIP_PIXELS: Final = 1 << 18

#: A layer for :func:`blend`: uint8 ``[H, W, 3]`` pixels, an RGB colour, or ``None`` (black).
Layer = Union[np.ndarray, tuple[int, int, int], None]


def blend(
    a: Layer,
    wa: np.ndarray | None,
    b: Layer,
    wb: np.ndarray | None,
    *,
    shade: np.ndarray | None = None,
    opaque: bool = False,
) -> np.ndarray:
    """``round((a·wa + b·wb) / (wa + wb))`` per channel (0 where both weights are 0).

    ``a``, ``b``: uint8 ``[H, W, 3]``, or an RGB colour, or ``None`` for black (a colour is
    never made into a canvas-sized image: one strip of it is reused). ``wa``, ``wb``: uint8
    ``[H, W]``, one of them ``None`` for ``255 −`` the other. ``shade`` (uint8 ``[H, W]``)
    first darkens ``b`` to ``round(b·(255 − shade)/255)``; ``opaque`` returns ``[H, W, 4]``
    with alpha 255. Both are done strip by strip, without a full-size intermediate.

    With ``wa + wb = 255`` this is exactly the integer ``round((a·wa + b·(255 − wa)) / 255)``
    of pipeline.flatten: the weights are integers in float32, so blendLinear's products and
    sums (≤ 65025 < 2²⁴) are exact, and its 1e-5 guard on the divisor moves the quotient by
    < 2e-5, while an integer over 255 is never closer than 1/510 to a rounding tie
    (test_blend_is_exact checks every triple). Several times faster than that formula in
    numpy uint16, which broadcasts alpha over the channels one pixel at a time."""
    import cv2

    first = wa if wa is not None else wb
    assert first is not None, "at least one weight is needed"
    h, w = first.shape
    out = np.empty((h, w, 4 if opaque else 3), dtype=np.uint8)
    rows = max(1, _STRIP_PIXELS // max(1, w))
    black = np.zeros((min(rows, h), w, 3), dtype=np.uint8)

    def layer(x: Layer) -> tuple[np.ndarray, bool]:
        if isinstance(x, np.ndarray):
            return np.ascontiguousarray(x), False
        if x is None:
            return black, True
        flat = np.empty_like(black)
        flat.reshape(-1)[:] = np.tile(np.asarray(x, dtype=np.uint8), flat.shape[0] * w)
        return flat, True

    def complement(x: np.ndarray) -> np.ndarray:
        c: np.ndarray = np.subtract(np.float32(255), x)
        return c

    src_a, flat_a = layer(a)
    src_b, flat_b = layer(b)
    shaded = np.empty_like(black) if shade is not None else None
    rgb = np.empty_like(black) if opaque else None
    for y in range(0, h, rows):
        part = slice(y, min(h, y + rows))
        n = part.stop - y
        w1 = None if wa is None else wa[part].astype(np.float32)
        w2 = None if wb is None else wb[part].astype(np.float32)
        if w1 is None:
            assert w2 is not None
            w1 = complement(w2)
        elif w2 is None:
            w2 = complement(w1)
        s1 = src_a[:n] if flat_a else src_a[part]
        s2 = src_b[:n] if flat_b else src_b[part]
        if shade is not None and shaded is not None:
            dark = shade[part].astype(np.float32)
            s2 = cv2.blendLinear(s2, black[:n], complement(dark), dark, dst=shaded[:n])
        if rgb is None:
            cv2.blendLinear(s1, s2, w1, w2, dst=out[part])
        else:
            cv2.cvtColor(cv2.blendLinear(s1, s2, w1, w2, dst=rgb[:n]), cv2.COLOR_RGB2RGBA, dst=out[part])
    return out


def _rgba(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``[H, W, 4]`` from RGB and alpha (cv2 interleaves the channels several times faster
    than np.dstack)."""
    import cv2

    out = np.empty((*alpha.shape, 4), dtype=np.uint8)
    cv2.mixChannels([np.ascontiguousarray(rgb), np.ascontiguousarray(alpha)], [out], [0, 0, 1, 1, 2, 2, 3, 3])
    return out


@dataclass(frozen=True)
class Framed:
    """The result of :func:`apply`: ``pixels`` RGBA ``[h, w, 4]``, the subject ``mask``
    ``[h, w]`` framed the same way, and the :class:`Geometry` used."""

    pixels: np.ndarray
    mask: np.ndarray
    geometry: Geometry


def apply(
    pixels: np.ndarray,
    mask: np.ndarray,
    framing: Framing,
    *,
    photo: np.ndarray | None = None,
    invert: bool = False,
    max_pixels: int = 100_000_000,
) -> Framed:
    """The framed, composited cut-out.

    ``pixels``: the colours to show (``[H, W, 3|4]`` uint8: the photo, or its decontaminated
    colours); an alpha channel there multiplies the mask. ``mask``: the subject mask ``[H, W]``
    uint8. ``photo``: the original photo for the ``blur`` background (default ``pixels``).
    ``invert``: keep the background instead of the subject (alpha = 255 − mask); the crop
    and centring still follow the subject. ``max_pixels`` bounds a background image that
    still has to be decoded (see :meth:`Framing.loaded`).
    """
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        raise InvalidOptionError(f"pixels must be uint8 [H, W, 3|4], got {pixels.dtype} {pixels.shape}")
    if mask.dtype != np.uint8 or mask.shape != pixels.shape[:2]:
        raise InvalidOptionError(
            f"mask must be uint8 [H, W] of the image's size {pixels.shape[:2]}, got {mask.dtype} {mask.shape}"
        )
    if framing.shadow and invert:
        raise InvalidOptionError("a shadow needs a subject: use it with foreground cut-outs, not background")
    import cv2

    framing = framing.loaded(max_pixels=max_pixels)
    geo = geometry(mask, framing)
    keep = 255 - mask if invert else mask
    if pixels.shape[2] == 4:
        # round(keep · a / 255): cv2 rounds the scaled product, and an integer over 255 is
        # never a tie, so this equals pipeline.apply_mask's integer formula exactly.
        keep = cv2.multiply(np.ascontiguousarray(keep), np.ascontiguousarray(pixels[:, :, 3]), scale=1 / 255)

    colours = place(pixels[:, :, :3], geo.window, geo.window, geo.size)
    # Outside the crop box and past the photo's edges nothing is kept (alpha 0), also when
    # keeping the background.
    alpha = place(keep, geo.window, geo.box, geo.size)
    framed_mask = place(mask, geo.window, geo.box, geo.size)
    ow, oh = geo.size

    bg = framing.background
    if geo.subject is not None:
        left, t, r, b = geo.subject
        subject_px = max(r - left, b - t) * geo.scale
    else:
        subject_px = float(max(ow, oh))
    shadow = backgrounds.shadow(framed_mask, framing, subject_px) if framing.shadow else None

    if bg is None:
        if shadow is None:
            return Framed(_rgba(colours, alpha), framed_mask, geo)
        # A black shadow layer under the subject, "over" with straight (unpremultiplied)
        # alpha: alpha a + s·(1 − a), colours scaled by a / that (uint8 throughout).
        grow = cv2.multiply(shadow, cv2.bitwise_not(alpha), scale=1 / 255)
        rgb = blend(colours, alpha, None, grow)
        return Framed(_rgba(rgb, cv2.add(alpha, grow)), framed_mask, geo)

    back: Layer
    if isinstance(bg, tuple):
        back = bg  # blend reuses one strip of it
    elif isinstance(bg, str):  # "blur"
        source = pixels if photo is None else photo
        if source.shape[:2] != mask.shape:
            raise InvalidOptionError("photo must have the same size as the mask")
        # Reflect both past the photo's edges, so a square canvas is filled with blurred
        # surroundings and the reflected subject is left out of the blur like the real one.
        win_photo = place(
            np.ascontiguousarray(source[:, :, :3]), geo.window, geo.window, geo.size, reflect=True
        )
        win_mask = place(mask, geo.window, geo.window, geo.size, reflect=True)
        sigma = max(backgrounds.MIN_SIGMA_PX, framing.blur * max(ow, oh))
        back = backgrounds.blur_background(win_photo, win_mask, geo.size, sigma)
    elif isinstance(bg, np.ndarray):
        back = backgrounds.image_background(bg, geo.size, framing.fit)
    else:  # loaded() decoded paths and bytes; anything else was refused by validate()
        raise InvalidOptionError(f"unusable background {type(bg).__name__}")
    # The background darkened by the shadow, the cut-out over it and the alpha channel, in
    # one pass of strips: no full-size darkened copy, same pixels as three passes.
    return Framed(blend(colours, alpha, back, None, shade=shadow, opaque=True), framed_mask, geo)
