"""``Cutout``, the result of every cut-out, and the compose stage that makes one.

Kept apart from :mod:`cleancut.remover` and :mod:`cleancut.stages` so that both can use it
without importing each other: the stages are plain functions, the remover calls them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import io as codecs
from . import pipeline
from .errors import InvalidOptionError
from .io.formats import OutputFormat
from .options import DEFAULT_PNG_LEVEL, check_format
from .pipeline import OutputType

if TYPE_CHECKING:
    from .edges import EdgeOptions
    from .framing import Framing

__all__ = ["Cutout", "check_options", "edges_or_default", "make_cutout"]


@dataclass(frozen=True, eq=False)
class Cutout:
    """The result of every cleancut function.

    ``pixels``: ``[H, W, 4]`` RGBA for ``foreground``/``background``, ``[H, W]`` gray for
    ``mask``. ``mask``: the subject mask ``[H, W]`` uint8 (255 = subject), framed like the
    pixels (full resolution unless cropped or capped). ``icc_profile``: the source's RGB
    profile, carried to encoded outputs. ``timings``: seconds per stage. ``box``: the part
    of the photo the output shows, ``(left, top, right, bottom)`` in the photo's pixels
    (right and bottom exclusive): the crop box with ``crop``, else the whole photo.
    ``opaque``: made on an opaque background (its alpha is 255 everywhere).
    """

    pixels: np.ndarray
    mask: np.ndarray
    type: OutputType
    icc_profile: bytes | None = None
    timings: dict[str, float] = field(default_factory=dict)
    box: tuple[int, int, int, int] | None = None
    #: on an opaque background (a framing colour, blur or image): alpha 255 everywhere
    opaque: bool = False

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)

    def to_pil(self, bg_color: str | tuple[int, int, int] | None = None) -> Any:
        """A ``PIL.Image.Image`` (RGBA, or L for masks; RGB when ``bg_color`` is given)."""
        from PIL import Image

        img = Image.fromarray(self._pixels_for(None, bg_color))
        if self.icc_profile and img.mode in ("RGB", "RGBA"):
            img.info["icc_profile"] = self.icc_profile
        return img

    def _pixels_for(
        self, fmt: OutputFormat | None, bg_color: str | tuple[int, int, int] | None
    ) -> np.ndarray:
        px = self.pixels
        if px.ndim == 3 and (bg_color is not None or fmt == "jpeg"):
            px = pipeline.flatten(px, pipeline.parse_color(bg_color))
        return px

    def to_bytes(
        self,
        format: str = "png",
        *,
        quality: float = 0.8,
        bg_color: str | tuple[int, int, int] | None = None,
        png_compress_level: int = DEFAULT_PNG_LEVEL,
    ) -> bytes:
        """Encode: ``png`` (default), ``webp``, ``jpeg`` (flattened on ``bg_color``, white by
        default), or raw ``rgba8`` / ``alpha8``. ``quality`` 0..1 for JPEG and WebP (1 is
        lossless WebP). ``bg_color`` composites onto an opaque colour in any format but
        ``alpha8`` (the alpha channel alone, which a colour or an opaque background makes all
        255: refused with :class:`~cleancut.errors.InvalidOptionError`)."""
        fmt = codecs.normalize_format(format)
        check_format(fmt, self.type, bg_color=bg_color is not None, opaque=self.opaque)
        return codecs.encode(
            self._pixels_for(fmt, bg_color),
            fmt,
            quality=quality,
            icc_profile=self.icc_profile,
            png_compress_level=png_compress_level,
        )

    def save(
        self,
        path: str | os.PathLike[str],
        *,
        format: str | None = None,
        quality: float = 0.8,
        bg_color: str | tuple[int, int, int] | None = None,
        overwrite: bool = False,
        png_compress_level: int = DEFAULT_PNG_LEVEL,
    ) -> Path:
        """Encode and write atomically in the format the file's extension names (``.png``,
        ``.webp``, ``.jpg``/``.jpeg``, ``.rgba``, ``.alpha``). ``format`` must agree with it,
        or name the format of a path without an extension; anything else (``j.png`` with
        ``format="jpeg"``, ``out.gif``, no extension and no format) is refused with
        :class:`~cleancut.errors.InvalidOptionError` before anything is written."""
        fmt = codecs.output_format(path, codecs.normalize_format(format) if format is not None else None)
        data = self.to_bytes(fmt, quality=quality, bg_color=bg_color, png_compress_level=png_compress_level)
        return codecs.write_atomic(path, data, overwrite=overwrite)


def check_options(output_type: OutputType, edges: EdgeOptions | None, framing: Framing | None) -> None:
    """Refuse option combinations that cannot work, before any work is done."""
    if edges is not None:
        edges.validate()
    if framing is None:
        return
    framing.validate()
    if output_type == "mask" and (framing.opaque or framing.shadow):
        raise InvalidOptionError(
            "a background or shadow needs a cut-out: use type foreground (or background); "
            "a mask output takes only crop, square, padding and max_size"
        )
    if output_type == "background" and framing.shadow:
        raise InvalidOptionError("a shadow needs a subject: use it with type foreground, not background")


def edges_or_default(edges: EdgeOptions | None) -> EdgeOptions:
    """``None`` means the defaults, :class:`~cleancut.edges.EdgeOptions()`: the reference's
    mask (bilinear) with blur-fusion colour decontamination."""
    if edges is not None:
        return edges
    from .edges import EdgeOptions

    return EdgeOptions()


def make_cutout(
    pixels: np.ndarray,
    mask: np.ndarray,
    output_type: OutputType,
    icc_profile: bytes | None = None,
    *,
    edges: EdgeOptions | None = None,
    framing: Framing | None = None,
    max_pixels: int = 100_000_000,
) -> Cutout:
    """The compose stage, shared by :class:`~cleancut.remover.Remover`, the batch runner and the server: the
    output pixels for ``output_type`` from the photo and its full-resolution mask — edge
    colours (``edges``), then background and framing (``framing``)."""
    h, w = mask.shape
    if framing is not None and framing.is_identity:
        framing = None
    if output_type == "mask":
        if framing is None:
            return Cutout(mask, mask, "mask", icc_profile, box=(0, 0, w, h))
        from .framing import frame_mask

        framed_mask, geo = frame_mask(mask, framing)
        return Cutout(framed_mask, framed_mask, "mask", icc_profile, box=geo.box)
    invert = output_type == "background"
    colours = pixels
    edges = edges_or_default(edges)
    if edges.decontaminate != "none":
        from . import edges as edges_mod

        estimate = edges_mod.background_colors if invert else edges_mod.foreground_colors
        colours = estimate(pixels, mask, edges)
    if framing is None:
        return Cutout(
            pipeline.apply_mask(colours, mask, invert=invert),
            mask,
            output_type,
            icc_profile,
            box=(0, 0, w, h),
        )
    from .framing import apply

    framed = apply(colours, mask, framing, photo=pixels, invert=invert, max_pixels=max_pixels)
    return Cutout(
        framed.pixels, framed.mask, output_type, icc_profile, box=framed.geometry.box, opaque=framing.opaque
    )
