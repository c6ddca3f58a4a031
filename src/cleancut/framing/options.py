"""Backgrounds and framing: what goes behind the cut-out, and where the subject sits.

A :class:`Framing` says what to do with a cut-out after the mask is made; :func:`apply`
does it, as pure functions on numpy arrays (OpenCV resizes and blurs):

1. **Subject box**: the bounding box of the mask pixels at or above :data:`SUBJECT_LEVEL`.
2. **Crop** (``crop``): the box grown by ``margin`` (a fraction of the subject box's longer
   side, on every side), clamped to the image. Mask values outside it are dropped.
3. **Square canvas** (``square``): a square whose side makes the subject (plus margin) fill
   ``1 − 2·padding`` of it, centred on the subject box (with ``crop``) or on the image.
   Where the canvas reaches past the photo, there is only background.
4. **Size cap** (``max_size``): the canvas is scaled down (never up) so that its longer side
   is at most ``max_size`` (``INTER_AREA``). The canvas is made at that size directly (the
   photo's part of it scaled, the rest filled at output size), never at the source scale.
   **Pixel limit**: an output canvas of more than ``max_pixels`` pixels (the configured
   limit, :attr:`Framing.max_pixels`) is refused with
   :class:`~cleancut.errors.ImageTooLargeError` before anything canvas-sized is allocated,
   whatever the padding, margin and size cap.
5. **Background**: transparent (alpha is the mask), a colour, an image (``fill``: scaled to
   cover the canvas and centre-cropped; ``fit``: scaled to fit inside it, the bars filled
   with the image's mean colour), or ``blur``: the photo itself blurred (Gaussian, sigma
   ``blur`` × the canvas's longer side), with the subject left out of the blur so that it
   does not smear into its own background.
6. **Shadow** (``shadow``): a blurred copy of the mask, offset down (by default), darkens the
   background under the subject.

Any opaque background gives alpha 255 everywhere (so JPEG needs no flattening); a transparent
one keeps the mask as alpha (with the shadow, where there is one, added to it).

The only I/O is decoding a background image given as a path or bytes, which goes through
:func:`cleancut.io.decode.decode` (:meth:`Framing.loaded` does it once for many images).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, Union, cast

import numpy as np

from .config import DEFAULT_MAX_PIXELS
from .errors import ImageTooLargeError, InvalidOptionError
from .pipeline import parse_color

__all__ = [
    "FITS",
    "MAX_BLUR",
    "MAX_MARGIN",
    "MAX_PADDING",
    "MAX_SIZE",
    "PRESETS",
    "SUBJECT_LEVEL",
    "Background",
    "Framed",
    "Framing",
    "Geometry",
    "apply",
    "frame_mask",
    "geometry",
    "make_framing",
    "parse_background",
    "subject_box",
]

#: Mask values at or above this (4 % opacity) are the subject when framing: fainter ones are
#: the network's near-zero noise, invisible in the cut-out, and would stretch the box to
#: the whole photo.
SUBJECT_LEVEL: Final = 10

Fit = Literal["fill", "fit"]
FITS: Final[tuple[Fit, ...]] = ("fill", "fit")
PRESETS: Final = ("ecommerce",)
#: The largest ``margin`` (a fraction of the subject's longer side on every side).
MAX_MARGIN: Final = 10.0
#: The largest ``max_size``: the longest side JPEG can hold (WebP holds 16383); a cap above
#: any real canvas changes nothing, and a bigger number is a typo.
MAX_SIZE: Final = 65_535
#: ``blur`` is in (0, MAX_BLUR]: a sigma as a fraction of the output's longer side.
MAX_BLUR: Final = 0.25
#: ``padding`` is in [0, MAX_PADDING): a fraction of the square canvas's side, each side.
MAX_PADDING: Final = 0.5
#: Blur and shadow sigmas are at least this many output pixels: a Gaussian narrower than
#: this changes no uint8 level, and a tiny ``blur`` must not divide the working scale by 0.
_MIN_SIGMA_PX: Final = 0.1
#: Words that mean "no background" (keep the alpha channel).
_TRANSPARENT: Final = frozenset({"", "none", "transparent"})

#: What :class:`Framing` accepts as ``background``: ``None`` (transparent), an RGB tuple,
#: ``"blur"``, or an image (a path, encoded bytes, or decoded ``[H, W, 3|4]`` uint8 pixels).
#: Strings are read by :func:`parse_background`: ``"white"``, ``"#ffcc00"``, ``"255,204,0"``,
#: ``"blur"`` and ``"transparent"`` are understood, anything else is a path.
Background = Union[None, tuple[int, int, int], str, "os.PathLike[str]", bytes, np.ndarray]

Box = tuple[int, int, int, int]  # left, top, right, bottom (right and bottom exclusive)

# The blurs (background and shadow) run on a copy downscaled until sigma is this many pixels:
# a Gaussian of sigma s removes all detail finer than s anyway, so nothing visible is lost,
# and a 12 MP portrait background takes milliseconds instead of seconds.
_WORK_SIGMA: Final = 4.0


def parse_background(value: Background) -> tuple[int, int, int] | str | Path | bytes | np.ndarray | None:
    """A background as :class:`Framing` keeps it: ``None``, an RGB tuple, ``"blur"``, a
    :class:`~pathlib.Path`, ``bytes`` or an array. Strings that are a colour are colours
    (``white``, ``#fc0``, ``255,204,0``); ``blur`` and ``transparent`` are keywords; any
    other string is taken as an image path."""
    if value is None or isinstance(value, np.ndarray | bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in _TRANSPARENT:
            return None
        if text.lower() == "blur":
            return "blur"
        try:
            return parse_color(text)
        except InvalidOptionError:
            return Path(text)
    if isinstance(value, os.PathLike):
        return Path(value)
    return parse_color(value)  # a tuple or list: raises an actionable error if it is not RGB


@dataclass(frozen=True, eq=False)
class Framing:
    """What goes behind the cut-out and how it is framed (see the module docstring).

    ``margin`` is a fraction of the subject box's longer side added on every side when
    cropping; ``padding`` a fraction of the square canvas's side kept free on every side;
    ``blur`` the background blur's sigma as a fraction of the canvas's longer side;
    ``shadow_offset`` (right, down) and ``shadow_softness`` (sigma) are fractions of the
    subject box's longer side. Values are checked on creation (:meth:`validate`), the one
    place their bounds live: ``blur`` in (0, 0.25], ``shadow_opacity`` in [0, 1],
    ``shadow_offset`` each in [-1, 1], ``shadow_softness`` in (0, 1], ``margin`` in
    [0, :data:`MAX_MARGIN`], ``padding`` in [0, 0.5), ``max_size`` an integer in
    1..:data:`MAX_SIZE`.

    ``max_pixels``: the largest output canvas, in pixels (``None``: the library's default
    limit, 100,000,000). :meth:`loaded` lowers it to the configured pixel limit, so the
    canvas obeys the same ``max_pixels`` as the photo; a bigger one is refused with
    :class:`~cleancut.errors.ImageTooLargeError` before it is allocated.
    """

    background: Background = None
    fit: Fit = "fill"
    blur: float = 0.02
    shadow: bool = False
    shadow_opacity: float = 0.5
    shadow_offset: tuple[float, float] = (0.0, 0.03)
    shadow_softness: float = 0.03
    crop: bool = False
    margin: float = 0.05
    square: bool = False
    padding: float = 0.0
    max_size: int | None = None
    max_pixels: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "background", parse_background(self.background))
        if isinstance(self.fit, str):
            object.__setattr__(self, "fit", self.fit.strip().lower())
        self.validate()

    @classmethod
    def ecommerce(cls, **overrides: object) -> Framing:
        """The e-commerce preset: white background, the product cropped and centred on a
        square canvas filling 85 % of it (``padding`` 0.075, as marketplaces ask), at most
        2000 px. Any field can be overridden."""
        fields: dict[str, object] = {
            "background": (255, 255, 255),
            "crop": True,
            "margin": 0.0,
            "square": True,
            "padding": 0.075,
            "max_size": 2000,
        }
        fields.update(overrides)
        return cls(**fields)  # type: ignore[arg-type]

    def validate(self) -> None:
        """Raise :class:`~cleancut.errors.InvalidOptionError` for any value out of range."""
        if self.fit not in FITS:
            raise InvalidOptionError(f"fit must be one of {', '.join(FITS)}, got {self.fit!r}")
        _check_range(
            "blur", self.blur, 0.0, MAX_BLUR, low_open=True, hint="e.g. 0.02 (2 % of the image size)"
        )
        _check_range("shadow_opacity", self.shadow_opacity, 0.0, 1.0)
        _check_range("shadow_softness", self.shadow_softness, 0.0, 1.0, low_open=True, hint="e.g. 0.03")
        if not (isinstance(self.shadow_offset, tuple) and len(self.shadow_offset) == 2):
            raise InvalidOptionError(
                f"shadow_offset must be a (right, down) pair, got {self.shadow_offset!r}"
            )
        for name, v in zip(("shadow_offset[0]", "shadow_offset[1]"), self.shadow_offset, strict=True):
            _check_range(name, v, -1.0, 1.0)
        _check_range(
            "margin", self.margin, 0.0, MAX_MARGIN, hint="a fraction of the subject's size, e.g. 0.05"
        )
        _check_range(
            "padding", self.padding, 0.0, MAX_PADDING, high_open=True, hint="e.g. 0.075 on each side"
        )
        if self.max_size is not None and (
            isinstance(self.max_size, bool)
            or not isinstance(self.max_size, int | np.integer)
            or not 1 <= self.max_size <= MAX_SIZE
        ):
            raise InvalidOptionError(
                f"max_size must be a positive number of pixels, at most {MAX_SIZE}, "
                f"got {_shown(self.max_size)}"
            )
        if self.max_pixels is not None and (
            isinstance(self.max_pixels, bool)
            or not isinstance(self.max_pixels, int | np.integer)
            or self.max_pixels < 1
        ):
            raise InvalidOptionError(f"max_pixels must be a positive integer, got {_shown(self.max_pixels)}")
        for flag in ("shadow", "crop", "square"):
            if not isinstance(getattr(self, flag), bool | np.bool_):
                raise InvalidOptionError(f"{flag} must be True or False, got {getattr(self, flag)!r}")
        bg = self.background
        if isinstance(bg, np.ndarray) and (
            bg.dtype != np.uint8 or bg.ndim != 3 or bg.shape[2] not in (3, 4) or 0 in bg.shape
        ):
            raise InvalidOptionError(
                f"a background image array must be uint8 [H, W, 3|4], got {bg.dtype} {bg.shape}; "
                "pass a path or bytes to have it decoded"
            )

    @property
    def opaque(self) -> bool:
        """Whether the output has an opaque background (alpha 255 everywhere)."""
        return self.background is not None

    @property
    def is_identity(self) -> bool:
        """True when applying it changes nothing (the plain cut-out)."""
        return not (self.opaque or self.shadow or self.crop or self.square or self.max_size is not None)

    @property
    def canvas_limit(self) -> int:
        """The largest output canvas, in pixels: :attr:`max_pixels` or the default limit."""
        return int(self.max_pixels) if self.max_pixels is not None else DEFAULT_MAX_PIXELS

    def loaded(self, *, max_pixels: int) -> Framing:
        """This framing with a background image given as a path or bytes decoded (through
        :func:`cleancut.io.decode.decode`), so that many cut-outs decode it once, and its
        canvas bound to ``max_pixels`` (the smaller limit wins when it already had one)."""
        limit = max_pixels if self.max_pixels is None else min(int(self.max_pixels), max_pixels)
        bg = self.background
        if not isinstance(bg, Path | bytes):
            return self if limit == self.max_pixels else dataclasses.replace(self, max_pixels=limit)
        from . import io as codecs

        decoded = codecs.decode(bg, max_pixels=max_pixels).pixels
        return dataclasses.replace(self, background=decoded, max_pixels=limit)


def _shown(value: object) -> str:
    """``repr(value)``, shortened: an error message must not echo a 4000-digit number."""
    if isinstance(value, int) and value.bit_length() > 128:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _check_range(
    name: str,
    value: object,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    high_open: bool = False,
    hint: str = "",
) -> None:
    ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    try:
        v = float(cast(float, value)) if ok else math.nan
    except OverflowError:  # an int too large for a float
        v = math.inf
    if not math.isfinite(v) or v < low or v > high or (low_open and v == low) or (high_open and v == high):
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        extra = f" ({hint})" if hint else ""
        raise InvalidOptionError(
            f"{name} must be a number in {lo}{low:g}, {high:g}{hi}, got {_shown(value)}{extra}"
        )


def make_framing(
    preset: str | None = None,
    *,
    background: Background | None = None,
    fit: str | None = None,
    blur: float | None = None,
    shadow: bool | None = None,
    crop: bool | None = None,
    margin: float | None = None,
    square: bool | None = None,
    padding: float | None = None,
    max_size: int | None = None,
) -> Framing | None:
    """A :class:`Framing` from flat options, as the API, CLI and HTTP API take them.

    ``None`` means "not given": the preset's value (or the default) stays. A ``margin``
    implies ``crop`` and a ``padding`` implies ``square`` unless they are given as ``False``,
    so that no option is silently ignored. Returns ``None`` when nothing was asked for.
    """
    given: dict[str, object] = {
        k: v
        for k, v in {
            "background": background,
            "fit": fit,
            "blur": blur,
            "shadow": shadow,
            "crop": crop,
            "margin": margin,
            "square": square,
            "padding": padding,
            "max_size": max_size,
        }.items()
        if v is not None
    }
    if margin is not None and crop is None:
        given["crop"] = True
    if padding is not None and square is None:
        given["square"] = True
    if preset is not None:
        key = preset.strip().lower().replace("-", "")
        if key not in PRESETS:
            raise InvalidOptionError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
        return Framing.ecommerce(**given)
    if not given:
        return None
    framing = Framing(**given)  # type: ignore[arg-type]
    return None if framing.is_identity else framing


# --------------------------------------------------------------------------- geometry


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
    subject = subject_box(mask)
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
    limit = framing.canvas_limit
    if size[0] * size[1] > limit:
        what = []
        if framing.square:
            what.append(f"padding {framing.padding:g}")
        if framing.crop and framing.square:
            what.append(f"margin {framing.margin:g}")
        lower = f"lower {' or '.join(what)}, " if what else ""
        raise ImageTooLargeError(
            f"the framed output would be {_count(size[0])}×{_count(size[1])} px, over the pixel limit "
            f"of {limit:,} (max_pixels) for a {w}×{h} image: {lower}set max_size "
            f"(now {framing.max_size}), or raise max_pixels"
        )
    return Geometry(subject, box, window, size, scale)


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


def _cut(a: np.ndarray, window: Box, region: Box, *, reflect: bool = False) -> np.ndarray:
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


def _place(
    a: np.ndarray, window: Box, region: Box, size: tuple[int, int], *, reflect: bool = False
) -> np.ndarray:
    """``a`` seen through ``window`` (as :func:`_cut`) and scaled to ``size``, made at
    ``size`` directly: the part of the photo inside is scaled on its own and the rest of the
    canvas is filled at the output scale, so a canvas scaled down by ``max_size`` never
    exists at the source scale (a padding of 0.49 makes it 2500× the photo's area)."""
    import cv2

    x0, y0, x1, y1 = window
    ow, oh = size
    if (x1 - x0, y1 - y0) == (ow, oh):
        return _cut(a, window, region, reflect=reflect)
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
        scaled = _resize(np.ascontiguousarray(a), (px1 - px0, py1 - py0))
        # the scaled photo at (px0, py0), mirrored past its edges to fill the canvas
        return _cut(scaled, (-px0, -py0, ow - px0, oh - py0), (0, 0, px1 - px0, py1 - py0), reflect=True)
    # only the source rows/columns that land on the canvas are scaled
    fx0 = min(rx1 - 1, rx0 + math.floor((cx0 - px0) / sx))
    fy0 = min(ry1 - 1, ry0 + math.floor((cy0 - py0) / sy))
    fx1 = max(fx0 + 1, min(rx1, rx0 + math.ceil((cx1 - px0) / sx)))
    fy1 = max(fy0 + 1, min(ry1, ry0 + math.ceil((cy1 - py0) / sy)))
    inner = _resize(np.ascontiguousarray(a[fy0:fy1, fx0:fx1]), (cx1 - cx0, cy1 - cy0))
    out: np.ndarray = cv2.copyMakeBorder(
        np.ascontiguousarray(inner), cy0, oh - cy1, cx0, ow - cx1, cv2.BORDER_CONSTANT, value=0
    )
    return out


def _resize(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    if (a.shape[1], a.shape[0]) == size:
        return a
    shrink = size[0] < a.shape[1] or size[1] < a.shape[0]
    out: np.ndarray = cv2.resize(a, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return out


def frame_mask(mask: np.ndarray, framing: Framing) -> tuple[np.ndarray, Geometry]:
    """The mask cropped, placed and scaled as :func:`apply` places the pixels."""
    geo = geometry(mask, framing)
    return _place(mask, geo.window, geo.box, geo.size), geo


# --------------------------------------------------------------------------- compositing
#
# Compositing is done on the sRGB-encoded values, not in linear light. The mask is an
# alpha matte in the sense of the matting datasets IS-Net is trained on, which composite in
# sRGB, and every browser and viewer composites a PNG's alpha in sRGB: blending the same way
# makes an opaque output look exactly like the transparent cut-out shown on that colour, and
# gives the same pixels as ``Cutout.to_bytes(bg_color=...)`` (pipeline.flatten). Linear-light
# blending would thin dark hair on light backgrounds relative to what users see in previews.


#: :func:`_blend` works through the canvas in strips of about this many pixels, so that its
#: float32 weights stay ~2 MB instead of 8 bytes per canvas pixel (190 MB at 24 MP); the
#: strips cost nothing (measured at 12 MP: 0.29 s in strips vs 0.31 s whole) and stay in cache.
_STRIP_PIXELS: Final = 1 << 18


Layer = Union[np.ndarray, tuple[int, int, int], None]


def _blend(
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
    never made into a canvas-sized image: one strip of it is reused, where filling a 12 MP
    RGB array through numpy's channel broadcast took ~0.1 s). ``wa``, ``wb``: uint8
    ``[H, W]``, one of them ``None`` for ``255 −`` the other. ``shade`` (uint8 ``[H, W]``)
    first darkens ``b`` to ``round(b·(255 − shade)/255)``; ``opaque`` returns ``[H, W, 4]``
    with alpha 255. Both are done strip by strip, without a full-size intermediate.

    With ``wa + wb = 255`` this is exactly the integer ``round((a·wa + b·(255 − wa)) / 255)``
    of pipeline.flatten: the weights are integers in float32, so blendLinear's products and
    sums (≤ 65025 < 2²⁴) are exact, and its 1e-5 guard on the divisor moves the quotient by
    < 2e-5, while an integer over 255 is never closer than 1/510 to a rounding tie
    (test_blend_is_exact checks every triple). ~4× faster than that formula in numpy uint16
    (0.29 s vs 1.3 s at 12 MP on 2 cores), which broadcasts alpha over the channels one
    pixel at a time."""
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
    """``[H, W, 4]`` from RGB and alpha: cv2 interleaves the channels in 0.03 s at 12 MP
    where np.dstack took 0.14 s."""
    import cv2

    out = np.empty((*alpha.shape, 4), dtype=np.uint8)
    cv2.mixChannels([np.ascontiguousarray(rgb), np.ascontiguousarray(alpha)], [out], [0, 0, 1, 1, 2, 2, 3, 3])
    return out


def _work_size(w: int, h: int, f: float) -> tuple[int, int]:
    return max(1, round(w * f)), max(1, round(h * f))


def _blur_background(photo: np.ndarray, mask: np.ndarray, size: tuple[int, int], sigma: float) -> np.ndarray:
    """The photo blurred with the subject left out: ``blur(photo·w) / blur(w)`` where ``w`` is
    255 − mask (normalised convolution), so subject colours do not halo into the background.
    ``photo`` and ``mask`` are the canvas window at source scale; the result is at ``size``
    and ``sigma`` is in output pixels.

    Everything but the last step runs at the working scale (sigma = :data:`_WORK_SIGMA` px):
    shrinking straight there is cheaper than shrinking to the output size first, and the
    blur hides the difference. The result is made uint8 there and only then scaled up: the
    float32 upscale, clip and conversion at full size took 0.45 s of 0.7 s at 12 MP, the
    uint8 upscale takes ~0.03 s (and ±1 level, invisible under a blur)."""
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


def _image_background(image: np.ndarray, size: tuple[int, int], fit: Fit) -> np.ndarray:
    """A background image scaled to ``size``: ``fill`` covers it (centre-cropped), ``fit``
    fits inside it, centred, with the bars in the image's mean colour."""
    import cv2

    from .pipeline import flatten

    rgb = flatten(image, (255, 255, 255)) if image.shape[2] == 4 else image  # alpha onto white
    ow, oh = size
    ih, iw = rgb.shape[:2]
    if fit == "fill":
        s = max(ow / iw, oh / ih)
        rw, rh = max(ow, round(iw * s)), max(oh, round(ih * s))
        x0, y0 = (rw - ow) // 2, (rh - oh) // 2
        if s <= 1:
            big = _resize(rgb, (rw, rh))
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
    out[y0 : y0 + rh, x0 : x0 + rw] = _resize(rgb, (rw, rh))
    return out


def _shadow(alpha: np.ndarray, framing: Framing, subject_px: float) -> np.ndarray:
    """Shadow opacity ``[h, w]`` uint8: ``alpha`` offset and blurred, times the opacity.
    ``subject_px``: the subject's longer side in output pixels (the unit of the offset).

    Shifted, blurred and scaled at the working scale (sigma = :data:`_WORK_SIGMA` px; the
    offset is shifted there by a sub-pixel warp) and only the uint8 result scaled up: the
    float32 shift, upscale and clip at full size took 0.5 s at 12 MP."""
    import cv2

    h, w = alpha.shape
    sigma = max(_MIN_SIGMA_PX, framing.shadow_softness * subject_px)
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

    colours = _place(pixels[:, :, :3], geo.window, geo.window, geo.size)
    # Outside the crop box and past the photo's edges nothing is kept (alpha 0), also when
    # keeping the background.
    alpha = _place(keep, geo.window, geo.box, geo.size)
    framed_mask = _place(mask, geo.window, geo.box, geo.size)
    ow, oh = geo.size

    bg = framing.background
    if geo.subject is not None:
        left, t, r, b = geo.subject
        subject_px = max(r - left, b - t) * geo.scale
    else:
        subject_px = float(max(ow, oh))
    shadow = _shadow(framed_mask, framing, subject_px) if framing.shadow else None

    if bg is None:
        if shadow is None:
            return Framed(_rgba(colours, alpha), framed_mask, geo)
        # A black shadow layer under the subject, "over" with straight (unpremultiplied)
        # alpha: alpha a + s·(1 − a), colours scaled by a / that (uint8 throughout).
        grow = cv2.multiply(shadow, cv2.bitwise_not(alpha), scale=1 / 255)
        rgb = _blend(colours, alpha, None, grow)
        return Framed(_rgba(rgb, cv2.add(alpha, grow)), framed_mask, geo)

    back: Layer
    if isinstance(bg, tuple):
        back = bg  # _blend reuses one strip of it
    elif isinstance(bg, str):  # "blur"
        source = pixels if photo is None else photo
        if source.shape[:2] != mask.shape:
            raise InvalidOptionError("photo must have the same size as the mask")
        # Reflect both past the photo's edges, so a square canvas is filled with blurred
        # surroundings and the reflected subject is left out of the blur like the real one.
        win_photo = _place(
            np.ascontiguousarray(source[:, :, :3]), geo.window, geo.window, geo.size, reflect=True
        )
        win_mask = _place(mask, geo.window, geo.window, geo.size, reflect=True)
        back = _blur_background(win_photo, win_mask, geo.size, max(_MIN_SIGMA_PX, framing.blur * max(ow, oh)))
    elif isinstance(bg, np.ndarray):
        back = _image_background(bg, geo.size, framing.fit)
    else:  # loaded() decoded paths and bytes; anything else was refused by validate()
        raise InvalidOptionError(f"unusable background {type(bg).__name__}")
    # The background darkened by the shadow, the cut-out over it and the alpha channel, in
    # one pass of strips: no full-size darkened copy, and measured 0.41 s vs 0.51 s for
    # three full-size passes at 24 MP (0.15 vs 0.16 s at 12 MP), same pixels.
    return Framed(_blend(colours, alpha, back, None, shade=shadow, opaque=True), framed_mask, geo)
