"""The framing options: :class:`Framing` (what goes behind the cut-out and where the subject
sits), its bounds, and the readers that build it from flat options and background strings.

Every bound lives here, in :meth:`Framing.validate`, so the API, CLI, HTTP API and Ray
reject the same bad values the same way (:mod:`cleancut.options` shows them to the fronts).
The one I/O is decoding a background image given as a path or bytes
(:meth:`Framing.loaded`, through :func:`cleancut.io.decode.decode`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, Union, cast

import numpy as np

from ..config import DEFAULT_MAX_PIXELS
from ..errors import InvalidOptionError
from ..pipeline import parse_color

__all__ = [
    "FITS",
    "MAX_BLUR",
    "MAX_MARGIN",
    "MAX_PADDING",
    "MAX_SIZE",
    "PRESETS",
    "Background",
    "Fit",
    "Framing",
    "make_framing",
    "parse_background",
]

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
#: Words that mean "no background" (keep the alpha channel).
_TRANSPARENT: Final = frozenset({"", "none", "transparent"})

#: What :class:`Framing` accepts as ``background``: ``None`` (transparent), an RGB tuple,
#: ``"blur"``, or an image (a path, encoded bytes, or decoded ``[H, W, 3|4]`` uint8 pixels).
#: Strings are read by :func:`parse_background`: ``"white"``, ``"#ffcc00"``, ``"255,204,0"``,
#: ``"blur"`` and ``"transparent"`` are understood, anything else is a path.
Background = Union[None, tuple[int, int, int], str, "os.PathLike[str]", bytes, np.ndarray]


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
    """What goes behind the cut-out and how it is framed (see :func:`cleancut.framing.apply`
    for the order in which it is applied).

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
        from .. import io as codecs

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
