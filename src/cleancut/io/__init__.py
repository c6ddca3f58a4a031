"""The only package that reads and writes image files.

- :mod:`~cleancut.io.formats`: output formats (names, extensions, MIME types) and sniffing;
- :mod:`~cleancut.io.decode`: anything a caller holds into a :class:`DecodedImage`;
- :mod:`~cleancut.io.color`: any Pillow mode, sample depth and ICC profile into RGB(A) uint8;
- :mod:`~cleancut.io.encode`: pixels back into PNG, WebP, JPEG or raw bytes;
- :mod:`~cleancut.io.png`: cleancut's threaded PNG encoder;
- :mod:`~cleancut.io.atomic`: :func:`write_atomic` (no partial file is ever visible) and the
  sweep of temporary files an interrupted writer left behind.

The public functions and types are re-exported here.
"""

from __future__ import annotations

from .atomic import sweep_stale_temps, write_atomic
from .decode import DecodedImage, ImageInput, decode
from .encode import encode
from .formats import (
    FORMATS,
    OutputFormat,
    extension_for,
    format_from_path,
    looks_like_url,
    mime_type,
    normalize_format,
    output_format,
)

__all__ = [
    "FORMATS",
    "DecodedImage",
    "ImageInput",
    "OutputFormat",
    "decode",
    "encode",
    "extension_for",
    "format_from_path",
    "looks_like_url",
    "mime_type",
    "normalize_format",
    "output_format",
    "sweep_stale_temps",
    "write_atomic",
]
