"""Edge quality: full-resolution mask refinement, mask controls and colour decontamination.

This is the surface the rest of cleancut calls::

    options = EdgeOptions(refine="guided", decontaminate="blur_fusion", feather=1.0)
    options.validate()
    mask = make_mask(y, pixels, options)            # y: the network output [1, 1, S, S]
    rgb = foreground_colors(pixels, mask, options)  # subject colour at soft pixels
    rgba = pipeline.apply_mask(rgb, mask)

The algorithms live in :mod:`cleancut.refine` (fast guided filter), :mod:`cleancut.matting`
(blur-fusion and multi-level foreground estimation) and :mod:`cleancut.maskops`. The
defaults are what ``benchmarks/quality.py`` showed to improve the scores (see the table in
the docstring of :class:`EdgeOptions`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal, get_args

import numpy as np

from . import maskops, matting, pipeline, refine
from .errors import InvalidOptionError
from .maskops import MAX_FEATHER

if TYPE_CHECKING:
    from .models.families.base import Upsample

__all__ = [
    "DECONTAMINATE_METHODS",
    "MAX_FEATHER",
    "REFINE_METHODS",
    "DecontaminateMethod",
    "EdgeOptions",
    "RefineMethod",
    "background_colors",
    "foreground_colors",
    "make_mask",
]

RefineMethod = Literal["bilinear", "guided"]
DecontaminateMethod = Literal["none", "blur_fusion", "multilevel"]
REFINE_METHODS: Final[tuple[str, ...]] = get_args(RefineMethod)
DECONTAMINATE_METHODS: Final[tuple[str, ...]] = get_args(DecontaminateMethod)


@dataclass(frozen=True)
class EdgeOptions:
    """How the full-resolution mask and the cut-out's edge colours are made.

    ``refine``: ``bilinear`` (the reference's upsampling) or ``guided`` (fast guided filter
    on the full-resolution photo). ``decontaminate``: ``none``, ``blur_fusion`` or
    ``multilevel`` — replace the colour of semi-transparent pixels by the subject's own, so
    the old background does not show as a fringe. ``threshold``: binarise at this level
    (an integer 0..255). ``feather``: Gaussian sigma in pixels, 0..:data:`MAX_FEATHER` (500).
    ``min_island`` / ``min_hole``: remove subject islands / fill holes smaller than this
    fraction of the image area, in [0, 1). :meth:`validate` is the one check of these bounds
    (the library, the CLI and the HTTP API all refuse through it).

    Defaults chosen on real photos with human masks (``benchmarks/quality.py --set real
    --split tune``): ``guided`` softens thin structures and raises MAE there, so the mask is
    the reference's (``bilinear``). ``blur_fusion`` changes colours only, never the mask, and
    lowers the edge colour error on the composites with a known foreground, so it stays on.
    ``threshold``, ``feather`` and islands/holes are off (each worsens a score).
    """

    refine: RefineMethod = "bilinear"
    decontaminate: DecontaminateMethod = "blur_fusion"
    threshold: int | None = None
    feather: float = 0.0
    min_island: float = 0.0
    min_hole: float = 0.0

    def validate(self) -> None:
        """Raise :class:`InvalidOptionError` naming the option, the value and what is allowed."""
        if self.refine not in REFINE_METHODS:
            raise InvalidOptionError(
                f"unknown refine method {self.refine!r}; choose one of: {', '.join(REFINE_METHODS)}"
            )
        if self.decontaminate not in DECONTAMINATE_METHODS:
            raise InvalidOptionError(
                f"unknown decontaminate method {self.decontaminate!r}; "
                f"choose one of: {', '.join(DECONTAMINATE_METHODS)}"
            )
        if self.threshold is not None and (
            isinstance(self.threshold, bool)
            or not isinstance(self.threshold, (int, np.integer))
            or not 0 <= self.threshold <= 255
        ):
            raise InvalidOptionError(
                f"threshold must be an integer 0..255 (or None for a soft mask), got {_shown(self.threshold)}"
            )
        _check_number(
            "feather", self.feather, "a Gaussian sigma in pixels, e.g. 1.5", MAX_FEATHER, open_=False
        )
        _check_number("min_island", self.min_island, "a fraction of the image area, e.g. 0.001", 1.0)
        _check_number("min_hole", self.min_hole, "a fraction of the image area, e.g. 0.001", 1.0)


def _check_number(name: str, value: object, meaning: str, upper: float, *, open_: bool = True) -> None:
    """``value`` must be a real number (not a bool) in ``[0, upper)`` (``[0, upper]`` when
    not ``open_``); NaN and infinities are refused."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    try:
        v = float(value) if ok else math.nan  # type: ignore[arg-type]
    except OverflowError:  # an int too large for a float
        v = math.inf
    if not math.isfinite(v) or v < 0 or v > upper or (open_ and v == upper):
        bound = f"0 ≤ {name} {'<' if open_ else '≤'} {upper:g}"
        raise InvalidOptionError(f"{name} must be {meaning} ({bound}), got {_shown(value)}")


def _shown(value: object) -> str:
    """``repr(value)``, shortened: an error message must not echo a 4000-digit number."""
    if isinstance(value, int) and value.bit_length() > 128:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _check_pixels(pixels: np.ndarray) -> None:
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        raise InvalidOptionError(f"pixels must be uint8 [H, W, 3|4], got {pixels.dtype} {pixels.shape}")


def _check_mask(pixels: np.ndarray, mask: np.ndarray) -> None:
    _check_pixels(pixels)
    if mask.dtype != np.uint8 or mask.shape != pixels.shape[:2]:
        raise InvalidOptionError(
            f"mask must be uint8 [H, W] matching the image {pixels.shape[:2]}, got {mask.dtype} {mask.shape}"
        )


def make_mask(
    y: np.ndarray, pixels: np.ndarray, options: EdgeOptions, *, up: Upsample = "imgly", truncate: bool = False
) -> np.ndarray:
    """Network output ``[1, 1, S, S]`` (0..1) → full-resolution ``[H, W]`` uint8 mask.

    ``up`` and ``truncate``: the model's upsampling and 8-bit step (its recipe's), for
    ``refine="bilinear"``.
    Order: upsample (``refine``), then ``threshold``, then islands and holes, then
    ``feather`` — so feathering softens the final outline rather than the removed pieces.
    ``refine="bilinear"`` with every control off is exactly :func:`pipeline.postprocess`.
    """
    options.validate()
    _check_pixels(pixels)
    height, width = pixels.shape[:2]
    if options.refine == "guided":
        mask = refine.guided_upsample(y, pixels)
    else:
        mask = pipeline.postprocess(y, height, width, up=up, truncate=truncate)
    if options.threshold is not None:
        mask = maskops.threshold(mask, int(options.threshold))
    if options.min_island > 0:
        mask = maskops.remove_islands(mask, float(options.min_island))
    if options.min_hole > 0:
        mask = maskops.fill_holes(mask, float(options.min_hole))
    if options.feather > 0:
        mask = maskops.feather(mask, float(options.feather))
    return mask


def _estimate(pixels: np.ndarray, mask: np.ndarray, options: EdgeOptions, which: int) -> np.ndarray:
    """Replace RGB at soft pixels by the estimated foreground (``which=0``) or background (1)."""
    _check_mask(pixels, mask)
    options.validate()
    out = pixels.copy()
    if options.decontaminate == "blur_fusion":
        matting.blur_fusion_tiled(pixels, mask, out, which)
    elif options.decontaminate == "multilevel":
        matting.multilevel_tiled(pixels, mask, out, which)
    return out


def foreground_colors(pixels: np.ndarray, mask: np.ndarray, options: EdgeOptions) -> np.ndarray:
    """``pixels`` with RGB replaced by the estimated subject colour at semi-transparent pixels
    (unchanged elsewhere, and everywhere when ``decontaminate="none"``). Alpha, if any, is kept.

    ``multilevel`` rewrites every ``0 < mask < 255``; ``blur_fusion`` the band
    :data:`cleancut.matting.SOFT_BAND` (4..251): beyond it a pixel shows ≤ 1.2 % of its colour
    or holds ≤ 1.2 % of background, and IS-Net's faint 1–3 levels over the background would
    otherwise make most of the image "soft"."""
    return _estimate(pixels, mask, options, 0)


def background_colors(pixels: np.ndarray, mask: np.ndarray, options: EdgeOptions) -> np.ndarray:
    """The same for the background colour (for ``type="background"`` cut-outs): at soft
    pixels, the old background without the subject's share. Both estimators give it."""
    return _estimate(pixels, mask, options, 1)
