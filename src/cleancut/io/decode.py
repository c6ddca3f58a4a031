"""Decoding: anything a caller may hold (path, bytes, file object, PIL image, numpy array)
into a :class:`DecodedImage` — RGB or RGBA ``uint8`` pixels with the EXIF orientation
applied, plus the ICC profile that describes them.

This module opens the source safely (the pixel limit checked before Pillow allocates,
HEIF/AVIF plugins, a fast path for plain JPEGs); :mod:`cleancut.io.color` turns the pixels
into RGB. Pillow's own exceptions never escape: they are translated here, in one place,
into the :mod:`cleancut.errors` tree."""

from __future__ import annotations

import io
import logging
import os
import re
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final, Union, cast

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError, features

from ..errors import (
    CleancutError,
    ImageTooLargeError,
    InputNotFoundError,
    TruncatedImageError,
    UnreadableImageError,
    UnsupportedImageError,
)
from .color import embedded_icc, scale_to_uint8, to_rgb
from .formats import AVIF_BRANDS, HEIF_BRANDS, iso_bmff_brand, looks_like, looks_like_url

__all__ = [
    "DecodedImage",
    "ImageInput",
    "decode",
]

log = logging.getLogger(__name__)

ImageInput = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes], Image.Image, np.ndarray]

# Pillow refuses images over 2 * MAX_IMAGE_PIXELS before we can look at them; our own,
# configurable limit is checked first, so Pillow's guard only needs to stay out of the way
# of a limit set above it. Pillow's limit is a process-wide global: it is raised only while
# a decode that needs it runs (reference-counted across threads) and then put back, so the
# caller's own Pillow code never sees a changed limit afterwards.
_limit_lock = threading.Lock()
_limit_active: list[int] = []  # max_pixels of the decodes currently holding a raised limit
_limit_saved: int | None = None  # Pillow's own value, restored when the last one leaves


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


_heif_plugin: bool | None = None  # None: not tried yet; then whether pillow-heif is registered
_heif_lock = threading.Lock()


def _register_optional_plugins() -> bool:
    """Register HEIF/AVIF openers from the optional extra (once); True if they are available."""
    global _heif_plugin
    with _heif_lock:
        if _heif_plugin is not None:
            return _heif_plugin
        try:
            import pillow_heif
        except ImportError:
            _heif_plugin = False
            return False
        pillow_heif.register_heif_opener()
        if hasattr(pillow_heif, "register_avif_opener"):
            try:
                pillow_heif.register_avif_opener()
            except Exception:  # newer pillow-heif dropped AVIF: Pillow reads it natively
                log.debug("pillow_heif has no AVIF opener", exc_info=True)
        _heif_plugin = True
        return True


@contextmanager
def _pillow_limits(max_pixels: int) -> Iterator[None]:
    """Keep Pillow's decompression-bomb guard out of the way of our own ``max_pixels``."""
    global _limit_saved
    with _limit_lock:
        base = _limit_saved if _limit_active else Image.MAX_IMAGE_PIXELS
        raise_it = base is not None and max_pixels > base
        if raise_it:
            if not _limit_active:
                _limit_saved = base
            _limit_active.append(max_pixels)
            Image.MAX_IMAGE_PIXELS = max(_limit_active)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # Pillow warns (UserWarning) about damaged metadata it then skips ("Tag data larger
            # than file", "Possibly corrupt EXIF data"): the image decodes or we raise our own
            # error, so those lines with Pillow's file paths are no use to a user.
            warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
            yield
    finally:
        if raise_it:
            with _limit_lock:
                _limit_active.remove(max_pixels)
                Image.MAX_IMAGE_PIXELS = max(_limit_active) if _limit_active else _limit_saved


def _too_large(width: int, height: int, max_pixels: int) -> ImageTooLargeError:
    return ImageTooLargeError(f"image is {width}×{height} = {_over_limit(f'{width * height:,}', max_pixels)}")


def _over_limit(pixels: str, max_pixels: int) -> str:
    return (
        f"{pixels} pixels, over the limit of {max_pixels:,}; raise it with max_pixels= / "
        "--max-pixels / CLEANCUT_MAX_PIXELS if the file is trusted"
    )


_BOMB_PIXELS: Final = re.compile(r"\((\d+) pixels\)")


def _bomb(name: str, exc: Image.DecompressionBombError, max_pixels: int) -> ImageTooLargeError:
    """Pillow's own guard refused the image (at twice its limit, which stays at Pillow's
    default under a lower ``max_pixels``): our message, which quotes the configured limit
    and how to raise it, not Pillow's 178956970 (or twice ``max_pixels``)."""
    found = _BOMB_PIXELS.search(str(exc))
    pixels = f"{int(found.group(1)):,}" if found else "more"
    return ImageTooLargeError(f"{name}: image is {_over_limit(pixels, max_pixels)}")


def _url_message(url: str) -> str:
    """The library reads local data only: a URL gets that said, and how to get the photo."""
    shown = url if len(url) <= 200 else url[:197] + "..."
    return (
        f"{shown!r} is a URL, and the library reads only local files, bytes, file objects, PIL "
        "images and arrays: download it first (e.g. urllib.request.urlopen(url).read()) and pass "
        "the bytes, or let a running `cleancut serve` fetch it (POST /api/remove with url=…)"
    )


def _open_source(source: ImageInput) -> tuple[IO[bytes] | str | Path, str]:
    """Return something ``Image.open`` accepts and a human name for messages.

    A seekable stream is read from its start, whatever its position (``Image.open`` seeks
    to 0 too); a non-seekable one from where it stands. Streams are never closed here.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise UnreadableImageError("the image data is empty (0 bytes)")
        return io.BytesIO(data), "image data"
    if isinstance(source, (str, os.PathLike)):
        if isinstance(source, str) and not source.strip():
            raise InputNotFoundError(f"the input path is empty ({source!r}); pass the path of an image file")
        path = Path(source)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            if isinstance(source, str) and looks_like_url(source):
                raise InputNotFoundError(_url_message(source)) from None
            raise InputNotFoundError(f"no such file: {path}") from None
        except (OSError, ValueError) as exc:  # name too long, NUL byte, no permission, loop
            raise InputNotFoundError(f"cannot use {str(path)[:200]!r} as an input path: {exc}") from None
        if not path.is_file():
            raise InputNotFoundError(f"not a file: {path}")
        if st.st_size == 0:
            raise UnreadableImageError(f"{path} is empty (0 bytes)")
        return path, str(path)
    if hasattr(source, "read"):
        src = cast("IO[bytes]", source)
        name = str(getattr(src, "name", "image stream"))
        closed = (
            f"{name} is a closed file object; pass an open one (read it inside its with-block), "
            "or the path or the bytes"
        )
        if getattr(src, "closed", False) is True:
            raise UnreadableImageError(closed)
        try:
            seekable = bool(src.seekable()) if hasattr(src, "seekable") else False
        except (OSError, ValueError):
            seekable = False
        stream: IO[bytes]
        try:
            if seekable:
                stream = src
                stream.seek(0)
                first = stream.read(1)
                stream.seek(0)
            else:
                data = src.read()
                first = data[:1]
                stream = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else src
        except ValueError as exc:  # io's "I/O operation on closed file" and the like
            raise UnreadableImageError(
                closed if getattr(src, "closed", False) else f"{name} could not be read: {exc}"
            ) from None
        if not isinstance(first, (bytes, bytearray)):
            raise UnsupportedImageError(
                f"{name} is a text stream; open the file in binary mode ('rb') or pass its path"
            )
        if not first:
            raise UnreadableImageError(f"{name} is empty (0 bytes)")
        return stream, name
    raise UnsupportedImageError(
        f"cannot read an image from a {type(source).__name__}; pass a path, bytes, a binary "
        "file object, a PIL image or a numpy array"
    )


def _head(fp: IO[bytes] | str | Path) -> bytes:
    """The first bytes of the source (from its start, as ``Image.open`` reads it)."""
    try:
        if isinstance(fp, (str, Path)):
            with open(fp, "rb") as f:
                return f.read(16)
        fp.seek(0)
        head = fp.read(16)
        fp.seek(0)
        return head
    except (OSError, ValueError):
        return b""


def _open_image(fp: IO[bytes] | str | Path, name: str, max_pixels: int) -> Image.Image:
    try:
        with _pillow_limits(max_pixels):
            img = Image.open(fp)
    except UnidentifiedImageError as exc:
        head = _head(fp)
        brand = iso_bmff_brand(head)
        if brand in HEIF_BRANDS + AVIF_BRANDS:
            kind = "HEIC/HEIF" if brand in HEIF_BRANDS else "AVIF"
            tried = _heif_plugin is not None
            if _register_optional_plugins():
                if not tried:  # registered just now: try again with the new opener
                    return _open_image(fp, name, max_pixels)
            elif not (brand in AVIF_BRANDS and features.check("avif")):
                raise UnsupportedImageError(
                    f"{name} is {kind}; install the extra to read it: pip install 'cleancut[heif]'"
                ) from exc
            # a reader is there (pillow-heif, or Pillow's own AVIF): the file itself is bad
            raise UnreadableImageError(f"{name} looks like {kind} but could not be read: damaged?") from exc
        looks = looks_like(head)
        if looks is not None:
            raise UnreadableImageError(
                f"{name} starts like a {looks} file but its header is damaged or cut short"
            ) from exc
        raise UnreadableImageError(
            f"{name} is not an image in a format cleancut can read "
            "(expected JPEG, PNG, WebP, GIF, TIFF, BMP, HEIC or AVIF)"
        ) from exc
    except Image.DecompressionBombError as exc:
        raise _bomb(name, exc, max_pixels) from exc
    except MemoryError:
        raise
    except Exception as exc:  # plugins raise many types on corrupt headers
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
        raise _bomb(name, exc, max_pixels) from exc
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


def _from_pil(img: Image.Image, name: str, fmt: str | None) -> DecodedImage:
    """``img`` as RGB(A) (:func:`~cleancut.io.color.to_rgb`); a mode Pillow cannot convert
    is an :class:`~cleancut.errors.UnsupportedImageError`."""
    try:
        pixels, icc = to_rgb(img, name, fmt)
    except (CleancutError, MemoryError):
        raise
    except Exception as exc:  # a mode or palette Pillow cannot convert
        raise UnsupportedImageError(
            f"{name} has pixel mode {img.mode!r}, which cleancut could not convert to RGB: {exc}"
        ) from exc
    return DecodedImage(pixels, icc, fmt)


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
    _check_samples(a)
    a = scale_to_uint8(a)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    elif a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return DecodedImage(np.ascontiguousarray(a))


def _check_samples(a: np.ndarray) -> None:
    """Refuse samples with no brightness to read: NaN or infinite floats, negative signed
    integers (a silent clip to 0 would give a near-empty cut-out)."""
    if np.issubdtype(a.dtype, np.floating):
        bad = int(a.size - np.count_nonzero(np.isfinite(a)))
        if bad:
            raise UnreadableImageError(
                f"the {a.dtype} array holds {bad:,} NaN or infinite value(s) of {a.size:,}; "
                "an image needs finite samples in 0..1 (or 0..255): replace them first, "
                "e.g. np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=0.0)"
            )
    elif np.issubdtype(a.dtype, np.signedinteger) and a.size and int(a.min()) < 0:
        raise UnreadableImageError(
            f"the {a.dtype} array holds negative values (down to {int(a.min())}); image "
            "samples are 0..255 (or 0..65535): shift or clip them first, e.g. "
            "np.clip(a, 0, None), or pass uint8"
        )


_ORIENTATION_TAG: Final = 0x0112


def _rotated(img: Image.Image) -> bool:
    """Whether the EXIF orientation moves the pixels (2-8); raises on malformed EXIF."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")  # as in decoding
        return img.getexif().get(_ORIENTATION_TAG, 1) in range(2, 9)


def _exif_transpose(img: Image.Image, name: str) -> Image.Image:
    try:
        # Pillow's exif_transpose returns a *copy* even of an upright image, a cost a folder
        # batch takes from the model: only orientations 2-8 move the pixels.
        if not _rotated(img):
            return img
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
            out = ImageOps.exif_transpose(img)
    except Exception:  # malformed EXIF must not cost the user the cut-out
        log.warning("%s: the EXIF orientation could not be read; using the stored orientation", name)
        return img
    return out if out is not None else img


_JPEG_END: Final = b"\xff\xd9"


def _decode_plain_jpeg(
    img: Image.Image, fp: IO[bytes] | str | Path, name: str, max_pixels: int
) -> DecodedImage | None:
    """A colour JPEG that needs no conversion, decoded by OpenCV straight into numpy; or
    ``None``, and Pillow decodes it.

    Both link libjpeg-turbo with the same settings (islow DCT, fancy upsampling), so the
    pixels are the same bit for bit; OpenCV hands over its buffer, where Pillow's decode is
    followed by a copy into numpy, time a folder batch gives back to the model (the figures
    are in the README's performance section). Only the plain case is taken: a file or
    bytes (not a caller's stream), an RGB JPEG that ends with its end-of-image marker (a
    truncated one goes to Pillow, which says so), upright (no EXIF rotation to apply), an
    RGB ICC profile or none, within the pixel limit. Anything else, or a decode OpenCV
    refuses, falls back to Pillow, whose messages are the library's.
    """
    if img.format != "JPEG" or img.mode != "RGB":
        return None
    width, height = img.size
    if width <= 0 or height <= 0 or width * height > max_pixels:
        return None  # Pillow's path reports it
    try:
        if _rotated(img):
            return None
    except Exception:  # malformed EXIF: Pillow's path says so
        return None
    icc, space = embedded_icc(img, name)
    if icc is not None and space != "RGB":
        return None
    if isinstance(fp, (str, Path)):
        try:
            data = Path(fp).read_bytes()
        except OSError:
            return None
    elif isinstance(fp, io.BytesIO):
        data = fp.getvalue()
    else:
        return None
    if not data.endswith(_JPEG_END):
        return None
    import cv2

    try:
        pixels = cv2.imdecode(
            np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION
        )
    except cv2.error:
        return None
    if pixels is None or pixels.shape != (height, width, 3) or pixels.dtype != np.uint8:
        return None
    return DecodedImage(np.ascontiguousarray(pixels), icc, "JPEG")


def decode(source: ImageInput, *, max_pixels: int) -> DecodedImage:
    """Decode ``source`` into upright RGB/RGBA ``uint8`` pixels.

    Accepts a path, ``bytes``, a binary file object, a ``PIL.Image.Image`` or a numpy array
    (``[H, W]``, ``[H, W, 3]`` RGB or ``[H, W, 4]`` RGBA). An array's samples are read as:
    ``uint8`` as is; ``uint16`` as 16-bit (``v / 257``); other integer types as 8-bit when
    the largest value is at most 255, else as 16-bit when it is at most 65535, else scaled
    by the largest value; ``bool`` as 0/255; floats as 0..1 when the largest is at most 1,
    else as 0..255 (outside values are clipped). NaN or infinite floats and negative signed
    integers are refused (:class:`~cleancut.errors.UnreadableImageError`). A string that is a
    URL is refused with how to fetch it: the library reads no network.

    Applies EXIF orientation, converts every Pillow mode, keeps RGB ICC profiles,
    converts CMYK and gray profiles to sRGB, and takes the first frame of animations.
    A seekable file object is read from its start, as ``Image.open`` does; file objects are
    never closed.
    """
    if isinstance(source, np.ndarray):
        return _from_array(source, max_pixels)
    if isinstance(source, Image.Image):
        _load(source, "image", max_pixels)
        img = _exif_transpose(source, "image")
        return _from_pil(img, "image", getattr(source, "format", None))
    fp, name = _open_source(source)
    img = _open_image(fp, name, max_pixels)
    # Image.open leaves a multi-frame file on its first frame. Leaving the block closes the
    # file only when Pillow opened it (a path); a caller's stream is left open.
    with img:
        fmt = img.format
        fast = _decode_plain_jpeg(img, fp, name, max_pixels)
        if fast is not None:
            return fast
        _load(img, name, max_pixels)
        upright = _exif_transpose(img, name)
        return _from_pil(upright, name, fmt)
