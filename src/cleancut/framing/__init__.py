"""Backgrounds and framing: what goes behind the cut-out, and where the subject sits.

A :class:`Framing` says what to do with a cut-out after the mask is made; :func:`apply`
does it, as pure functions on numpy arrays (OpenCV resizes and blurs). One job a module:

- :mod:`.options`: the :class:`Framing` type, its bounds and :func:`make_framing`;
- :mod:`.geometry`: subject box, crop, square canvas and size cap, and placing pixels there;
- :mod:`.backgrounds`: the blurred-photo and image backgrounds and the shadow, at output size;
- :mod:`.compose`: :func:`apply`, which composites the cut-out over them (sRGB).

The names below are the public surface; import them from here.
"""

from __future__ import annotations

from .compose import Framed, apply
from .geometry import SUBJECT_LEVEL, Geometry, check_canvas, frame_mask, geometry, subject_box
from .options import (
    FITS,
    MAX_BLUR,
    MAX_MARGIN,
    MAX_PADDING,
    MAX_SIZE,
    PRESETS,
    Background,
    Framing,
    make_framing,
    parse_background,
)

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
    "check_canvas",
    "frame_mask",
    "geometry",
    "make_framing",
    "parse_background",
    "subject_box",
]
