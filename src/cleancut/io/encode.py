"""Encoding: pixels back into PNG, WebP, JPEG or raw bytes."""

from __future__ import annotations

import io
from typing import Final

import numpy as np
from PIL import Image

from ..errors import InvalidOptionError
from .formats import OutputFormat, normalize_format
from .png import encode_png

__all__ = ["encode"]


def _quality_to_int(quality: float) -> int:
    if not 0.0 <= quality <= 1.0:
        raise InvalidOptionError(f"quality must be between 0 and 1, got {quality}")
    return max(1, min(100, round(quality * 100)))


# Largest side each container can hold (libwebp: 16383; baseline JPEG: 65535, libjpeg 65500).
_MAX_SIDE: Final[dict[str, int]] = {"webp": 16383, "jpeg": 65500}


def encode(
    pixels: np.ndarray,
    fmt: OutputFormat,
    *,
    quality: float = 0.8,
    icc_profile: bytes | None = None,
    png_compress_level: int = 1,
) -> bytes:
    """Encode ``[H, W]`` (gray), ``[H, W, 3]`` (RGB) or ``[H, W, 4]`` (RGBA) ``uint8`` pixels.

    PNG is lossless at every level; ``png_compress_level`` trades size for time (1 is the
    fastest level that still compresses: see ``benchmarks/stages.py``). ``quality`` (0..1)
    applies to JPEG and WebP (1.0 makes WebP lossless) and is checked for every format.
    JPEG has no alpha: composite first (``pipeline.flatten``). ``fmt`` may be any alias
    :func:`normalize_format` accepts.
    """
    fmt = normalize_format(fmt)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if (
        pixels.dtype != np.uint8
        or pixels.ndim not in (2, 3)
        or (pixels.ndim == 3 and pixels.shape[2] not in (3, 4))
        or 0 in pixels.shape[:2]
    ):
        raise InvalidOptionError(
            f"pixels must be uint8 [H, W], [H, W, 3] or [H, W, 4] with H, W > 0, "
            f"got {pixels.dtype} {pixels.shape}"
        )
    q = _quality_to_int(quality)
    channels = 1 if pixels.ndim == 2 else int(pixels.shape[2])
    if fmt == "rgba8":
        if channels == 4:
            return np.ascontiguousarray(pixels).tobytes()
        rgb = pixels if channels == 3 else np.repeat(pixels[:, :, None], 3, axis=2)
        alpha = np.full((*pixels.shape[:2], 1), 255, np.uint8)
        raw: bytes = np.concatenate([rgb, alpha], axis=2).tobytes()
        return raw
    if fmt == "alpha8":
        if channels == 1:
            return np.ascontiguousarray(pixels).tobytes()
        if channels == 4:
            return np.ascontiguousarray(pixels[:, :, 3]).tobytes()
        raise InvalidOptionError("alpha8 needs an image with alpha or a mask")
    if fmt == "png" and not 0 <= png_compress_level <= 9:
        raise InvalidOptionError(f"png_compress_level must be 0..9, got {png_compress_level}")
    if fmt == "jpeg" and channels == 4:
        raise InvalidOptionError("JPEG has no alpha channel; flatten onto a colour first")
    limit = _MAX_SIDE.get(fmt)
    if limit is not None and max(pixels.shape[:2]) > limit:
        raise InvalidOptionError(
            f"{fmt.upper()} images can be at most {limit} pixels wide and high; this one is "
            f"{pixels.shape[1]}×{pixels.shape[0]}: use PNG"
        )

    icc = icc_profile if channels in (3, 4) else None
    if fmt == "png":
        return _encode_png(pixels, png_compress_level, icc)
    img = Image.fromarray(np.ascontiguousarray(pixels))
    buf = io.BytesIO()
    extra: dict[str, object] = {"icc_profile": icc} if icc else {}
    if fmt == "jpeg":
        img.save(buf, "JPEG", quality=q, **extra)
    else:  # webp
        if channels == 1:
            img = img.convert("RGB")
        if q >= 100:
            img.save(buf, "WEBP", lossless=True, exact=True, **extra)
        else:
            img.save(buf, "WEBP", quality=q, method=4, alpha_quality=100, **extra)
    return buf.getvalue()


def _encode_png(pixels: np.ndarray, level: int, icc: bytes | None) -> bytes:
    """PNG through cleancut's threaded encoder (:mod:`cleancut.io.png`).

    On a 12 MP cut-out: 0.27 s / 9.9 MB on two threads (0.53 s on one), against 1.14 s /
    10.4 MB for OpenCV's libpng (level 1, RLE) and 6.8 s for Pillow's default level
    (benchmarks/png.py). Bit-exact, ICC profile embedded.
    """
    return encode_png(pixels, level=level, icc_profile=icc)
