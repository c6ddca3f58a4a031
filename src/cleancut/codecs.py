"""The only module that reads and writes image files.

``decode`` turns anything a caller may hold (path, bytes, file object, PIL image, numpy
array) into a :class:`DecodedImage`: RGB or RGBA ``uint8`` pixels with the EXIF orientation
applied, plus the ICC profile that describes them. ``encode`` turns pixels back into bytes.
``write_atomic`` puts bytes on disk without ever exposing a partial file.

Pillow's own exceptions never escape: they are translated here, in one place, into the
:mod:`cleancut.errors` tree.
"""

from __future__ import annotations

import io
import logging
import os
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final, Literal, Union

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from .errors import (
    ImageTooLargeError,
    InputNotFoundError,
    InvalidOptionError,
    OutputExistsError,
    TruncatedImageError,
    UnreadableImageError,
    UnsupportedImageError,
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
    "mime_type",
    "normalize_format",
    "write_atomic",
]

log = logging.getLogger(__name__)

ImageInput = Union[
    str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes], Image.Image, np.ndarray
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

# Pillow refuses images over 2 * MAX_IMAGE_PIXELS before we can look at them; our own,
# configurable limit is checked first, so Pillow's guard only needs to stay out of the way
# of a limit set above it.
_PILLOW_BOMB_LIMIT: Final[int | None] = Image.MAX_IMAGE_PIXELS


@dataclass(frozen=True)
class DecodedImage:
    """Decoded pixels, ready for the pipeline.

    ``pixels`` is ``[H, W, 3]`` (RGB) or ``[H, W, 4]`` (RGBA, when the source has
    transparency) ``uint8``, C-contiguous, upright (EXIF orientation applied).
    ``icc_profile`` is an RGB ICC profile describing ``pixels`` (``None``: sRGB).
    ``format`` is the container format Pillow detected (``None`` for in-memory inputs).
    """

    pixels: np.ndarray
    icc_profile: bytes | None = None
    format: str | None = None

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def has_alpha(self) -> bool:
        return bool(self.pixels.shape[2] == 4)


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


# --------------------------------------------------------------------------- decoding


_HEIF_BRANDS: Final[tuple[bytes, ...]] = (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1")
_AVIF_BRANDS: Final[tuple[bytes, ...]] = (b"avif", b"avis")
_plugins_registered = False


def _register_optional_plugins() -> bool:
    """Register HEIF/AVIF openers from the optional extra; True if anything new was added."""
    global _plugins_registered
    if _plugins_registered:
        return False
    _plugins_registered = True
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    if hasattr(pillow_heif, "register_avif_opener"):
        try:
            pillow_heif.register_avif_opener()
        except Exception:  # newer pillow-heif dropped AVIF: Pillow reads it natively
            log.debug("pillow_heif has no AVIF opener", exc_info=True)
    return True


def _sniff_iso_bmff_brand(head: bytes) -> bytes | None:
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return head[8:12]
    return None


@contextmanager
def _pillow_limits(max_pixels: int) -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        if _PILLOW_BOMB_LIMIT is not None and max_pixels > _PILLOW_BOMB_LIMIT:
            Image.MAX_IMAGE_PIXELS = max_pixels
        yield


def _too_large(width: int, height: int, max_pixels: int) -> ImageTooLargeError:
    return ImageTooLargeError(
        f"image is {width}×{height} = {width * height:,} pixels, over the limit of "
        f"{max_pixels:,}; raise it with max_pixels= / --max-pixels / CLEANCUT_MAX_PIXELS "
        "if the file is trusted"
    )


def _open_source(source: ImageInput) -> tuple[IO[bytes] | str | Path, str]:
    """Return something ``Image.open`` accepts and a human name for messages."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise UnreadableImageError("the image data is empty (0 bytes)")
        return io.BytesIO(data), "image data"
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise InputNotFoundError(f"no such file: {path}")
        if not path.is_file():
            raise InputNotFoundError(f"not a file: {path}")
        if path.stat().st_size == 0:
            raise UnreadableImageError(f"{path} is empty (0 bytes)")
        return path, str(path)
    if hasattr(source, "read"):
        name = str(getattr(source, "name", "image stream"))
        seekable = getattr(source, "seekable", lambda: False)()
        stream: IO[bytes] = source if seekable else io.BytesIO(source.read())
        if seekable:
            pos = stream.tell()
            empty = not stream.read(1)
            stream.seek(pos)
        else:
            empty = stream.getbuffer().nbytes == 0  # type: ignore[attr-defined]
        if empty:
            raise UnreadableImageError(f"{name} is empty (0 bytes)")
        return stream, name
    raise UnsupportedImageError(
        f"cannot read an image from a {type(source).__name__}; pass a path, bytes, a binary "
        "file object, a PIL image or a numpy array"
    )


def _head(fp: IO[bytes] | str | Path) -> bytes:
    if isinstance(fp, (str, Path)):
        with open(fp, "rb") as f:
            return f.read(16)
    pos = fp.tell()
    head = fp.read(16)
    fp.seek(pos)
    return head


def _open_image(fp: IO[bytes] | str | Path, name: str, max_pixels: int) -> Image.Image:
    try:
        with _pillow_limits(max_pixels):
            img = Image.open(fp)
    except UnidentifiedImageError as exc:
        brand = _sniff_iso_bmff_brand(_head(fp))
        if brand in _HEIF_BRANDS + _AVIF_BRANDS:
            if _register_optional_plugins():
                return _open_image(fp, name, max_pixels)
            kind = "HEIC/HEIF" if brand in _HEIF_BRANDS else "AVIF"
            raise UnsupportedImageError(
                f"{name} is {kind}; install the extra to read it: pip install 'cleancut[heif]'"
            ) from exc
        raise UnreadableImageError(
            f"{name} is not an image in a format cleancut can read "
            "(expected JPEG, PNG, WebP, GIF, TIFF, BMP, HEIC or AVIF)"
        ) from exc
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"{name}: {exc}") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise UnreadableImageError(f"{name} could not be read: {exc}") from exc
    return img


def _load(img: Image.Image, name: str, max_pixels: int) -> None:
    width, height = img.size
    if width <= 0 or height <= 0:
        raise UnreadableImageError(f"{name} has no pixels ({width}×{height})")
    if width * height > max_pixels:
        raise _too_large(width, height, max_pixels)
    try:
        with _pillow_limits(max_pixels):
            img.load()
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"{name}: {exc}") from exc
    except OSError as exc:
        if "truncated" in str(exc).lower() or "broken data stream" in str(exc).lower():
            raise TruncatedImageError(
                f"{name} is truncated: the file ends before the image does ({exc}); "
                "re-download or re-export it"
            ) from exc
        raise UnreadableImageError(f"{name} could not be decoded: {exc}") from exc
    except MemoryError:
        raise
    except Exception as exc:  # Pillow raises many types on corrupt data
        raise UnreadableImageError(f"{name} could not be decoded: {exc}") from exc


def _profile_color_space(icc: bytes) -> str | None:
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return str(profile.profile.xcolor_space).strip().upper()
    except Exception:
        return None


_SRGB: ImageCms.ImageCmsProfile | None = None


def _srgb() -> ImageCms.ImageCmsProfile:
    global _SRGB
    if _SRGB is None:
        _SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    return _SRGB


def _to_srgb(img: Image.Image, icc: bytes, mode: str) -> Image.Image | None:
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        out = ImageCms.profileToProfile(img, src, _srgb(), outputMode=mode)
        return out
    except Exception:
        log.warning("could not apply the embedded ICC profile; using the pixels as sRGB")
        return None


def _scale_to_uint8(a: np.ndarray) -> np.ndarray:
    """Map integer or float samples of any depth onto 0..255."""
    if a.dtype == np.uint8:
        return a
    if np.issubdtype(a.dtype, np.floating):
        a = np.nan_to_num(a.astype(np.float32), nan=0.0, posinf=255.0, neginf=0.0)
        hi = float(a.max()) if a.size else 0.0
        scale = 255.0 if hi <= 1.0 else 1.0
        return np.clip(a * scale + 0.5, 0, 255).astype(np.uint8)
    a = a.astype(np.int64)
    hi = int(a.max()) if a.size else 0
    a = np.clip(a, 0, None)
    if hi <= 255:
        return a.astype(np.uint8)
    if hi <= 65535:
        return ((a + 128) // 257).astype(np.uint8)
    return (a * 255 // hi).astype(np.uint8)


def _from_pil(img: Image.Image, name: str, fmt: str | None) -> DecodedImage:
    icc = img.info.get("icc_profile") or None
    mode = img.mode
    space = _profile_color_space(icc) if icc else None
    if icc and space is None:
        log.warning("%s: the embedded ICC profile is malformed; it is ignored", name)
        icc = None

    if mode in ("1", "L", "LA", "La", "P", "PA"):
        if mode == "P":
            palette_mode = img.palette.mode if img.palette is not None else "RGB"
            has_alpha = "transparency" in img.info or palette_mode == "RGBA"
        else:
            has_alpha = mode in ("LA", "La", "PA")
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
    elif mode.startswith("I") or mode == "F":
        gray = _scale_to_uint8(np.asarray(img))
        return DecodedImage(
            np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2)), None, fmt
        )
    elif mode in ("RGB", "RGBA"):
        pass
    elif mode == "RGBa":
        img = img.convert("RGBA")
    else:
        try:
            img = img.convert("RGBA" if "A" in mode else "RGB")
        except (ValueError, OSError) as exc:
            raise UnsupportedImageError(f"{name} has pixel mode {mode!r}, which cleancut cannot convert") from exc

    if icc and space not in ("RGB",):
        icc = None  # a profile for another colour space would mislabel RGB pixels
    pixels = np.asarray(img)
    if pixels.dtype != np.uint8:
        pixels = _scale_to_uint8(pixels)
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    return DecodedImage(np.ascontiguousarray(pixels), icc, fmt)


def _from_array(a: np.ndarray, max_pixels: int) -> DecodedImage:
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)):
        raise UnsupportedImageError(
            f"a numpy image must be [H, W], [H, W, 1], [H, W, 3] (RGB) or [H, W, 4] (RGBA); "
            f"got shape {a.shape}"
        )
    h, w = a.shape[:2]
    if h == 0 or w == 0:
        raise UnreadableImageError(f"the array has no pixels (shape {a.shape})")
    if h * w > max_pixels:
        raise _too_large(w, h, max_pixels)
    if a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise UnsupportedImageError(f"unsupported array dtype {a.dtype}; use uint8")
    a = _scale_to_uint8(a)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    elif a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return DecodedImage(np.ascontiguousarray(a))


def _exif_transpose(img: Image.Image, name: str) -> Image.Image:
    try:
        out = ImageOps.exif_transpose(img)
    except Exception:  # malformed EXIF must not cost the user the cut-out
        log.warning("%s: the EXIF orientation could not be read; using the stored orientation", name)
        return img
    return out if out is not None else img


def decode(source: ImageInput, *, max_pixels: int) -> DecodedImage:
    """Decode ``source`` into upright RGB/RGBA ``uint8`` pixels.

    Accepts a path, ``bytes``, a binary file object, a ``PIL.Image.Image`` or a numpy array
    (``[H, W]``, ``[H, W, 3]`` RGB or ``[H, W, 4]`` RGBA; ``uint8``, ``uint16`` or float in
    0..1). Applies EXIF orientation, converts every Pillow mode, keeps RGB ICC profiles,
    converts CMYK and gray profiles to sRGB, and takes the first frame of animations.
    """
    if isinstance(source, np.ndarray):
        return _from_array(source, max_pixels)
    if isinstance(source, Image.Image):
        _load(source, "image", max_pixels)
        img = _exif_transpose(source, "image")
        return _from_pil(img, "image", getattr(source, "format", None))
    fp, name = _open_source(source)
    img = _open_image(fp, name, max_pixels)
    try:
        fmt = img.format
        if getattr(img, "is_animated", False):
            img.seek(0)
        _load(img, name, max_pixels)
        upright = _exif_transpose(img, name)
        return _from_pil(upright, name, fmt)
    finally:
        img.close()


# --------------------------------------------------------------------------- encoding


def _quality_to_int(quality: float) -> int:
    if not 0.0 <= quality <= 1.0:
        raise InvalidOptionError(f"quality must be between 0 and 1, got {quality}")
    return max(1, min(100, round(quality * 100)))


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
    applies to JPEG and WebP. JPEG has no alpha: composite first (``pipeline.flatten``).
    """
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3):
        raise InvalidOptionError(f"pixels must be uint8 [H, W(, C)], got {pixels.dtype} {pixels.shape}")
    channels = 1 if pixels.ndim == 2 else int(pixels.shape[2])
    if fmt == "rgba8":
        if channels == 4:
            return np.ascontiguousarray(pixels).tobytes()
        rgb = pixels if channels == 3 else np.repeat(pixels[:, :, None], 3, axis=2)
        alpha = np.full(pixels.shape[:2] + (1,), 255, np.uint8)
        return np.concatenate([rgb, alpha], axis=2).tobytes()
    if fmt == "alpha8":
        if channels == 1:
            return np.ascontiguousarray(pixels).tobytes()
        if channels == 4:
            return np.ascontiguousarray(pixels[:, :, 3]).tobytes()
        raise InvalidOptionError("alpha8 needs an image with alpha or a mask")

    img = Image.fromarray(pixels)
    buf = io.BytesIO()
    icc = icc_profile if channels in (3, 4) else None
    extra: dict[str, object] = {"icc_profile": icc} if icc else {}
    if fmt == "png":
        if not 0 <= png_compress_level <= 9:
            raise InvalidOptionError(f"png_compress_level must be 0..9, got {png_compress_level}")
        img.save(buf, "PNG", compress_level=png_compress_level, **extra)
    elif fmt == "jpeg":
        if channels == 4:
            raise InvalidOptionError("JPEG has no alpha channel; flatten onto a colour first")
        img.save(buf, "JPEG", quality=_quality_to_int(quality), **extra)
    elif fmt == "webp":
        if channels == 1:
            img = img.convert("RGB")
        q = _quality_to_int(quality)
        if q >= 100:
            img.save(buf, "WEBP", lossless=True, exact=True, **extra)
        else:
            img.save(buf, "WEBP", quality=q, method=4, alpha_quality=100, **extra)
    else:  # pragma: no cover - normalize_format guards this
        raise InvalidOptionError(f"unknown output format {fmt!r}")
    return buf.getvalue()


# --------------------------------------------------------------------------- writing


def write_atomic(path: str | os.PathLike[str], data: bytes, *, overwrite: bool = False) -> Path:
    """Write ``data`` to ``path`` so that no partial file is ever visible there.

    The bytes go to a hidden temporary file next to the target, are flushed to disk, and
    are then moved into place. Without ``overwrite`` an existing file is never replaced,
    even if it appears between our check and our rename (hard-link publish).
    """
    target = Path(path)
    if not overwrite and target.exists():
        raise OutputExistsError(f"{target} exists; pass overwrite=True (--overwrite) to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, target)
        else:
            try:
                os.link(tmp, target)
            except FileExistsError:
                raise OutputExistsError(
                    f"{target} appeared while writing; pass overwrite=True to replace it"
                ) from None
            except OSError:  # no hard links on this file system
                if target.exists():
                    raise OutputExistsError(f"{target} exists") from None
                os.replace(tmp, target)
    finally:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
    return target
