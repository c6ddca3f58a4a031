"""Output formats (names, aliases, extensions, MIME types) and input sniffing (what a file's
first bytes say it is)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final, Literal

from ..errors import InvalidOptionError

__all__ = [
    "AVIF_BRANDS",
    "FORMATS",
    "HEIF_BRANDS",
    "OutputFormat",
    "extension_for",
    "format_from_path",
    "iso_bmff_brand",
    "looks_like",
    "mime_type",
    "normalize_format",
]

OutputFormat = Literal["png", "webp", "jpeg", "rgba8", "alpha8"]

FORMATS: Final[tuple[OutputFormat, ...]] = ("png", "webp", "jpeg", "rgba8", "alpha8")
_FORMAT_ALIASES: Final[dict[str, OutputFormat]] = {
    "png": "png",
    "image/png": "png",
    "webp": "webp",
    "image/webp": "webp",
    "jpeg": "jpeg",
    "jpg": "jpeg",
    "image/jpeg": "jpeg",
    "rgba8": "rgba8",
    "x-rgba8": "rgba8",
    "image/x-rgba8": "rgba8",
    "alpha8": "alpha8",
    "x-alpha8": "alpha8",
    "image/x-alpha8": "alpha8",
}
_EXTENSIONS: Final[dict[OutputFormat, str]] = {
    "png": ".png",
    "webp": ".webp",
    "jpeg": ".jpg",
    "rgba8": ".rgba",
    "alpha8": ".alpha",
}
_EXT_TO_FORMAT: Final[dict[str, OutputFormat]] = {
    ".png": "png",
    ".webp": "webp",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".rgba": "rgba8",
    ".alpha": "alpha8",
}
_MIME: Final[dict[OutputFormat, str]] = {
    "png": "image/png",
    "webp": "image/webp",
    "jpeg": "image/jpeg",
    "rgba8": "image/x-rgba8",
    "alpha8": "image/x-alpha8",
}


# --------------------------------------------------------------------------- formats


def normalize_format(fmt: str) -> OutputFormat:
    """Map a format name, extension-like name or MIME type onto one of :data:`FORMATS`."""
    key = fmt.strip().lower().lstrip(".")
    key = key.split(";", 1)[0].strip()
    try:
        return _FORMAT_ALIASES[key]
    except KeyError:
        raise InvalidOptionError(
            f"unknown output format {fmt!r}; choose one of: {', '.join(FORMATS)}"
        ) from None


def format_from_path(path: str | os.PathLike[str]) -> OutputFormat | None:
    """The output format a file name's extension asks for, if any."""
    return _EXT_TO_FORMAT.get(Path(path).suffix.lower())


def extension_for(fmt: OutputFormat) -> str:
    return _EXTENSIONS[fmt]


def mime_type(fmt: OutputFormat, width: int | None = None, height: int | None = None) -> str:
    """The MIME type; raw formats carry their size as parameters, as the reference does."""
    mime = _MIME[fmt]
    if fmt in ("rgba8", "alpha8") and width is not None and height is not None:
        mime += f";width={width};height={height}"
    return mime


# --------------------------------------------------------------------------- sniffing


HEIF_BRANDS: Final[tuple[bytes, ...]] = (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1")
AVIF_BRANDS: Final[tuple[bytes, ...]] = (b"avif", b"avis")


def iso_bmff_brand(head: bytes) -> bytes | None:
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return head[8:12]
    return None


SIGNATURES: Final[tuple[tuple[bytes, str], ...]] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
)


def looks_like(head: bytes) -> str | None:
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    for magic, kind in SIGNATURES:
        if head.startswith(magic):
            return kind
    return None
