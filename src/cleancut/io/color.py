"""Pixels of any Pillow mode, sample depth and colour profile into RGB or RGBA ``uint8``.

Decoding (:mod:`cleancut.io.decode`) opens a file safely; this module makes its pixels
what the pipeline takes: 16-bit, 32-bit and float samples scaled to 8 bits, palette, gray,
CMYK and the rarer modes converted, and the embedded ICC profile applied or kept. An RGB
profile is kept with the pixels (the encoders write it back); gray and CMYK profiles are
converted to sRGB here, since the output is RGB; a profile for another colour space, or a
malformed one, is dropped (and logged), so it never mislabels the RGB pixels.
"""

from __future__ import annotations

import io
import logging
from typing import Final

import numpy as np
from PIL import Image, ImageCms

__all__ = ["ALPHA_MODES", "embedded_icc", "scale_to_uint8", "to_rgb"]

log = logging.getLogger(__name__)

#: The Pillow modes with an alpha channel (premultiplied ``La``/``RGBa`` included).
ALPHA_MODES: Final[tuple[str, ...]] = ("LA", "La", "PA", "RGBA", "RGBa")


def _profile_color_space(icc: bytes) -> str | None:
    """The colour space an ICC profile describes (``RGB``, ``GRAY``, ``CMYK``, ...), or
    ``None`` when it does not parse."""
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return str(profile.profile.xcolor_space).strip().upper()
    except Exception:
        return None


_SRGB: ImageCms.ImageCmsProfile | None = None


def _srgb() -> ImageCms.ImageCmsProfile:
    """The sRGB profile (made once)."""
    global _SRGB
    if _SRGB is None:
        _SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    return _SRGB


def _to_srgb(img: Image.Image, icc: bytes, mode: str) -> Image.Image | None:
    """``img`` converted from the profile ``icc`` to sRGB in ``mode``; ``None`` (logged) when
    the profile cannot be applied."""
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        out = ImageCms.profileToProfile(img, src, _srgb(), outputMode=mode)
        return out
    except Exception:
        log.warning("could not apply the embedded ICC profile; using the pixels as sRGB")
        return None


def scale_to_uint8(a: np.ndarray, *, sixteen_bit: bool = False) -> np.ndarray:
    """Map integer or float samples of any depth onto 0..255.

    * ``uint8``: unchanged.
    * ``uint16`` (or ``sixteen_bit``: Pillow's 16-bit modes): ``round(v / 257)`` whatever the
      values, so a dark 16-bit image stays dark.
    * float: ``0..1`` if every finite sample is at most 1, else ``0..255``; rounded half up,
      NaN → 0, ±inf → the ends.
    * other integers (e.g. ``int64`` literals, Pillow's 32-bit ``I``): ``0..255`` if they fit,
      else 16-bit if they fit, else scaled by the maximum. Negative values become 0.
    """
    if a.dtype == np.uint8:
        return a
    if np.issubdtype(a.dtype, np.floating):
        f = a.astype(np.float32)
        finite = np.isfinite(f)
        hi = float(np.max(f, where=finite, initial=0.0))
        f *= 255.0 if hi <= 1.0 else 1.0
        f += 0.5
        np.nan_to_num(f, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
        np.clip(f, 0, 255, out=f)
        as8: np.ndarray = f.astype(np.uint8)
        return as8
    out: np.ndarray
    if a.dtype == np.uint16:
        out = ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)
        return out
    b = a.astype(np.float64) if a.dtype == np.uint64 else a.astype(np.int64)
    hi = b.max() if b.size else 0
    if sixteen_bit or 255 < hi <= 65535:
        out = ((np.clip(b, 0, 65535) + 128) // 257).astype(np.uint8)
    elif hi <= 255:
        out = np.clip(b, 0, 255).astype(np.uint8)
    else:
        out = (np.clip(b, 0, None) * (255.0 / float(hi)) + 0.5).astype(np.uint8)
    return out


def embedded_icc(img: Image.Image, name: str) -> tuple[bytes | None, str | None]:
    """The embedded ICC profile and its colour space (``None``, ``None`` when there is none
    or it is malformed, which is logged)."""
    icc = img.info.get("icc_profile") or None
    if not isinstance(icc, bytes):
        return None, None
    space = _profile_color_space(icc)
    if space is None:
        log.warning("%s: the embedded ICC profile is malformed; it is ignored", name)
        return None, None
    return icc, space


def to_rgb(img: Image.Image, name: str, fmt: str | None) -> tuple[np.ndarray, bytes | None]:
    """``img`` as C-contiguous RGB or RGBA ``uint8`` pixels (RGBA when it has alpha), and
    the RGB ICC profile that describes them (``None``: sRGB). ``name`` labels log lines;
    ``fmt`` is the file format (a 16-bit gray PNG opens as mode ``I``). Pillow's
    exceptions pass through: the caller translates them."""
    icc, space = embedded_icc(img, name)
    mode = img.mode

    if mode.startswith("I") or mode == "F":
        # 16-bit (Pillow < 11 opens 16-bit gray PNG as "I"), 32-bit integer or float gray:
        # scale to 8 bits, then treat as L (a gray ICC profile still applies).
        sixteen = mode.startswith("I;16") or (mode == "I" and fmt == "PNG")
        img = Image.fromarray(scale_to_uint8(np.asarray(img), sixteen_bit=sixteen))
        mode = img.mode
    if mode == "La":
        img = img.convert("LA")  # Pillow converts premultiplied gray only to LA
        mode = "LA"

    if mode in ("1", "L", "LA", "P", "PA"):
        if mode == "P":
            palette_mode = img.palette.mode if img.palette is not None else "RGB"
            has_alpha = "transparency" in img.info or palette_mode == "RGBA"
        else:
            has_alpha = mode in ("LA", "PA")
        target = "RGBA" if has_alpha else "RGB"
        if icc and space == "GRAY" and mode in ("L", "LA"):
            alpha = img.getchannel("A") if mode == "LA" else None
            conv = _to_srgb(img.convert("L"), icc, "RGB")
            icc = None
            if conv is not None:
                if alpha is not None:
                    conv.putalpha(alpha)
                img = conv
            else:
                img = img.convert(target)
        else:
            img = img.convert(target)
    elif mode == "CMYK":
        conv = _to_srgb(img, icc, "RGB") if icc and space == "CMYK" else None
        img = conv if conv is not None else img.convert("RGB")
        icc = None
    elif mode in ("RGB", "RGBA"):
        pass
    else:  # RGBa, RGBX, YCbCr, LAB (its "A" is a colour axis, not alpha), HSV, ...
        img = img.convert("RGBA" if mode in ALPHA_MODES else "RGB")

    if icc and space != "RGB":
        icc = None  # a profile for another colour space would mislabel RGB pixels
    pixels = np.asarray(img)
    if pixels.dtype != np.uint8:
        pixels = scale_to_uint8(pixels)
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    return np.ascontiguousarray(pixels), icc
