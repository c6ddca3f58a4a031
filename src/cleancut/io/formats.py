"""Output formats (names, aliases, extensions, MIME types) and input sniffing (what a file's
first bytes say it is)."""

from __future__ import annotations

import os
import re
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
    "looks_like_url",
    "mime_type",
    "normalize_format",
    "output_format",
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


#: Clip containers: named as a photo's output, they get that said (the input is a photo).
_CLIP_SUFFIXES: Final = frozenset({".webm", ".mov", ".mp4", ".m4v", ".mkv", ".avi"})


def output_format(path: str | os.PathLike[str], fmt: OutputFormat | None = None) -> OutputFormat:
    """The format a photo's output file ``path`` is written in: its extension's, which
    ``fmt`` (when given) must agree with. No file is ever written in one format under
    another's name: a contradiction (``j.png`` with ``jpeg``), an extension that is no
    output format (``.gif``, ``.bmp``, ``.webm``) or, without ``fmt``, no extension at all
    is an :class:`~cleancut.errors.InvalidOptionError` saying which names work. Without an
    extension, ``fmt`` is written as given (the name then claims no format)."""
    p = Path(path)
    suffix = p.suffix.lower()
    named = _EXT_TO_FORMAT.get(suffix)
    names = ", ".join(f"{ext} ({f})" for f, ext in _EXTENSIONS.items())
    if named is not None:
        if fmt is not None and fmt != named:
            raise InvalidOptionError(
                f"{p.name} names a {named} file but the format asked for is {fmt}: name it "
                f"{p.stem}{_EXTENSIONS[fmt]}, or leave the format out (it follows the extension)"
            )
        return named
    if not suffix:
        if fmt is not None:
            return fmt
        raise InvalidOptionError(
            f"{p.name} has no extension, so it names no format: give one of {names}, or the "
            "format (--format / format=); for a folder, end the path with /"
        )
    what = (
        "a clip container, not a photo format (the input is a photo)"
        if suffix in _CLIP_SUFFIXES
        else "not an output format of cleancut"
    )
    raise InvalidOptionError(f"cannot write {p.name}: {suffix} is {what}; name the file with one of {names}")


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


#: ``scheme://``: a string that is a URL, not a path (``Path`` would fold its ``//``).
_URL: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def looks_like_url(text: str) -> bool:
    """Whether ``text`` is written as a URL (``https://…``, ``s3://…``), not a path."""
    return bool(_URL.match(text))


def looks_like(head: bytes) -> str | None:
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    for magic, kind in SIGNATURES:
        if head.startswith(magic):
            return kind
    return None
