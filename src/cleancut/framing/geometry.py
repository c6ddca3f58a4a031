"""Where the subject sits: the crop box, the canvas and the output size, and the pixels
placed on that canvas — integer arithmetic and OpenCV resizes, no compositing.

:func:`geometry` decides, in this order:

1. **Subject box**: the bounding box of the mask pixels at or above :data:`SUBJECT_LEVEL`.
2. **Crop** (``crop``): the box grown by ``margin`` (a fraction of the subject box's longer
   side, on every side), clamped to the image. Mask values outside it are dropped.
3. **Square canvas** (``square``): a square whose side makes the subject (plus margin) fill
   ``1 − 2·padding`` of it, centred on the subject box (with ``crop``) or on the image.
   Where the canvas reaches past the photo, there is only background.
4. **Size cap** (``max_size``): the canvas is scaled down (never up) so that its longer side
   is at most ``max_size`` (``INTER_AREA``). **Pixel limit**: an output canvas of more than
   :attr:`Framing.canvas_limit` pixels is refused with
   :class:`~cleancut.errors.ImageTooLargeError` before anything canvas-sized is allocated,
   whatever the padding, margin and size cap.

:func:`place` then makes a layer at the output size directly (the photo's part of it
scaled, the rest filled at output size), never at the source scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np

from ..errors import ImageTooLargeError, InvalidOptionError

if TYPE_CHECKING:
    from .options import Framing

__all__ = [
    "SUBJECT_LEVEL",
    "Box",
    "Geometry",
    "check_canvas",
    "cut",
    "frame_mask",
    "geometry",
    "place",
    "resize",
    "subject_box",
]

#: Mask values at or above this (4 % opacity) are the subject when framing: fainter ones are
#: the network's near-zero noise, invisible in the cut-out, and would stretch the box to
#: the whole photo.
SUBJECT_LEVEL: Final = 10

Box = tuple[int, int, int, int]  # left, top, right, bottom (right and bottom exclusive)


def subject_box(mask: np.ndarray, level: int = SUBJECT_LEVEL) -> Box | None:
    """Bounding box ``(left, top, right, bottom)`` (right/bottom exclusive) of the mask pixels
    ``≥ level``; ``None`` when there are none."""
    if mask.ndim != 2:
        raise InvalidOptionError(f"mask must be [H, W], got shape {mask.shape}")
    on = mask >= level
    rows = np.flatnonzero(on.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(on.any(axis=0))
    return (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


@dataclass(frozen=True)
class Geometry:
    """Where the output comes from, in the source image's pixel coordinates.

    ``subject``: the subject box (``None``: no subject). ``box``: the part of the photo kept
    (the crop, clamped to the image; the whole image without ``crop``). ``window``: the
    canvas in source pixels (may reach past the image when ``square``; only ever
    arithmetic, never allocated at that scale). ``size``: the output ``(width, height)``
    after the size cap; ``scale``: output pixels per source pixel (≤ 1).
    """

    subject: Box | None
    box: Box
    window: Box
    size: tuple[int, int]
    scale: float


def geometry(mask: np.ndarray, framing: Framing) -> Geometry:
    """The crop box, canvas and output size for ``mask`` (``[H, W]`` uint8) — pure arithmetic
    (Python integers: a padding near 0.5 makes a huge number, not an allocation).

    Raises :class:`~cleancut.errors.ImageTooLargeError` when the output canvas would have
    more than :attr:`Framing.canvas_limit` pixels."""
    h, w = mask.shape[:2]
    return _frame(w, h, subject_box(mask), framing, framing.canvas_limit)


def check_canvas(width: int, height: int, framing: Framing | None, *, max_pixels: int) -> None:
    """Refuse, from the photo's size alone, a framed canvas over the pixel limit (the
    smaller of ``framing.max_pixels`` and ``max_pixels``, as :meth:`Framing.loaded` sets it)
    with :class:`~cleancut.errors.ImageTooLargeError`. Every front calls it after the decode
    and before the inference, so the refusal costs no model run. With ``crop`` the canvas
    follows the subject, known only after the inference: :func:`geometry` checks it then."""
    if framing is None or framing.crop or framing.is_identity:
        return
    limit = max_pixels if framing.max_pixels is None else min(int(framing.max_pixels), max_pixels)
    _frame(width, height, None, framing, limit)


def _frame(w: int, h: int, subject: Box | None, framing: Framing, limit: int) -> Geometry:
    """:func:`geometry` for a ``w``×``h`` photo whose subject box is ``subject``, refused
    over ``limit`` pixels."""
    box: Box = (0, 0, w, h)
    extent = (w, h)  # what the square canvas must hold
    centre2 = (w, h)  # twice the centre, to stay in integers
    if framing.crop and subject is not None:
        left, t, r, b = subject
        m = math.ceil(framing.margin * max(r - left, b - t))
        box = (max(0, left - m), max(0, t - m), min(w, r + m), min(h, b + m))
        # The canvas is centred on the subject and sized for the subject plus its margin
        # (not the clamped box), so a subject at the photo's edge is still centred.
        extent = (r - left + 2 * m, b - t + 2 * m)
        centre2 = (left + r, t + b)
    if framing.square:
        side = math.ceil(max(extent) / (1.0 - 2.0 * framing.padding) - 1e-9)
        x0 = (centre2[0] - side) // 2
        y0 = (centre2[1] - side) // 2
        window: Box = (x0, y0, x0 + side, y0 + side)
    else:
        window = box
    ww, wh = window[2] - window[0], window[3] - window[1]
    scale = 1.0
    if framing.max_size is not None and max(ww, wh) > framing.max_size:
        scale = framing.max_size / max(ww, wh)
    size = (max(1, round(ww * scale)), max(1, round(wh * scale)))
    if size[0] * size[1] > limit:
        # values quoted as given (repr): a rounded 0.49999999 would read "lower padding 0.5"
        what = []
        if framing.square:
            what.append(f"padding {_exact(framing.padding)}")
        if framing.crop and framing.square:
            what.append(f"margin {_exact(framing.margin)}")
        lower = f"lower {' or '.join(what)}, " if what else ""
        cap = "set max_size" if framing.max_size is None else f"lower max_size (now {framing.max_size})"
        raise ImageTooLargeError(
            f"the framed output would be {_count(size[0])}×{_count(size[1])} px, over the pixel limit "
            f"of {limit:,} (max_pixels) for a {w}×{h} image: {lower}{cap}, or raise max_pixels"
        )
    return Geometry(subject, box, window, size, scale)


def _exact(value: float) -> str:
    """A value as the caller gave it (its repr: 0.49999999 stays that, never 0.5)."""
    return repr(value) if type(value) in (int, float) else repr(float(value))


def _count(n: int) -> str:
    """A pixel count for a message: exact when sane, else its order of magnitude."""
    return f"{n}" if n < 10**12 else f"~{float(n):.1e}"


def _visible(a: np.ndarray, window: Box, region: Box, reflect: bool) -> Box:
    """The part of ``a`` that shows through ``window``: all of it with ``reflect``, else
    ``region`` clipped to the window and the image (empty when right <= left)."""
    h, w = a.shape[:2]
    if reflect:
        return (0, 0, w, h)
    x0, y0, x1, y1 = window
    return (max(region[0], x0, 0), max(region[1], y0, 0), min(region[2], x1, w), min(region[3], y1, h))


def cut(a: np.ndarray, window: Box, region: Box, *, reflect: bool = False) -> np.ndarray:
    """``a`` seen through ``window``: the pixels inside ``region`` (clipped to the image), and
    outside it zeros, or with ``reflect`` the image mirrored at its edges."""
    import cv2

    x0, y0, x1, y1 = window
    rx0, ry0, rx1, ry1 = _visible(a, window, region, reflect)
    if rx1 <= rx0 or ry1 <= ry0:
        return np.zeros((y1 - y0, x1 - x0, *a.shape[2:]), dtype=a.dtype)
    inner = a[max(ry0, y0) : min(ry1, y1), max(rx0, x0) : min(rx1, x1)]
    top, left = max(ry0, y0) - y0, max(rx0, x0) - x0
    bottom, right = y1 - min(ry1, y1), x1 - min(rx1, x1)
    if not (top or left or bottom or right):
        return np.ascontiguousarray(inner)
    border = cv2.BORDER_REFLECT_101 if reflect and min(inner.shape[:2]) > 1 else cv2.BORDER_REPLICATE
    if not reflect:
        border = cv2.BORDER_CONSTANT
    out: np.ndarray = cv2.copyMakeBorder(
        np.ascontiguousarray(inner), top, bottom, left, right, border, value=0
    )
    return out


def place(
    a: np.ndarray, window: Box, region: Box, size: tuple[int, int], *, reflect: bool = False
) -> np.ndarray:
    """``a`` seen through ``window`` (as :func:`cut`) and scaled to ``size``, made at
    ``size`` directly: the part of the photo inside is scaled on its own and the rest of the
    canvas is filled at the output scale, so a canvas scaled down by ``max_size`` never
    exists at the source scale (a padding of 0.49 makes it 2500× the photo's area)."""
    import cv2

    x0, y0, x1, y1 = window
    ow, oh = size
    if (x1 - x0, y1 - y0) == (ow, oh):
        return cut(a, window, region, reflect=reflect)
    sx, sy = ow / (x1 - x0), oh / (y1 - y0)
    rx0, ry0, rx1, ry1 = _visible(a, window, region, reflect)
    if rx1 <= rx0 or ry1 <= ry0:
        return np.zeros((oh, ow, *a.shape[2:]), dtype=a.dtype)
    # Where the kept part lands on the output canvas (may reach past it with reflect).
    px0, py0 = round((rx0 - x0) * sx), round((ry0 - y0) * sy)
    px1, py1 = round((rx1 - x0) * sx), round((ry1 - y0) * sy)
    if reflect:
        px1, py1 = max(px1, px0 + 1), max(py1, py0 + 1)
    # Clip to the canvas, in output pixels, then back to the source part that fills it.
    cx0, cy0, cx1, cy1 = max(px0, 0), max(py0, 0), min(px1, ow), min(py1, oh)
    if not reflect and (cx1 <= cx0 or cy1 <= cy0):
        return np.zeros((oh, ow, *a.shape[2:]), dtype=a.dtype)
    if reflect:
        scaled = resize(np.ascontiguousarray(a), (px1 - px0, py1 - py0))
        # the scaled photo at (px0, py0), mirrored past its edges to fill the canvas
        return cut(scaled, (-px0, -py0, ow - px0, oh - py0), (0, 0, px1 - px0, py1 - py0), reflect=True)
    # only the source rows/columns that land on the canvas are scaled
    fx0 = min(rx1 - 1, rx0 + math.floor((cx0 - px0) / sx))
    fy0 = min(ry1 - 1, ry0 + math.floor((cy0 - py0) / sy))
    fx1 = max(fx0 + 1, min(rx1, rx0 + math.ceil((cx1 - px0) / sx)))
    fy1 = max(fy0 + 1, min(ry1, ry0 + math.ceil((cy1 - py0) / sy)))
    inner = resize(np.ascontiguousarray(a[fy0:fy1, fx0:fx1]), (cx1 - cx0, cy1 - cy0))
    out: np.ndarray = cv2.copyMakeBorder(
        np.ascontiguousarray(inner), cy0, oh - cy1, cx0, ow - cx1, cv2.BORDER_CONSTANT, value=0
    )
    return out


def resize(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``a`` scaled to ``size`` (``INTER_AREA`` to shrink, ``INTER_LINEAR`` to grow); ``a``
    itself when it already has that size."""
    import cv2

    if (a.shape[1], a.shape[0]) == size:
        return a
    shrink = size[0] < a.shape[1] or size[1] < a.shape[0]
    out: np.ndarray = cv2.resize(a, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return out


def frame_mask(mask: np.ndarray, framing: Framing) -> tuple[np.ndarray, Geometry]:
    """The mask cropped, placed and scaled as :func:`apply` places the pixels."""
    geo = geometry(mask, framing)
    return place(mask, geo.window, geo.box, geo.size), geo
