"""A multi-threaded, lossless PNG encoder in numpy and ISA-L's deflate (``zlib`` as fallback).

Writing a 12 MP RGBA cut-out used to dominate a cut-out's end-to-end time: libpng (through
OpenCV or Pillow) filters and deflates the whole image on one core. Here the scanlines are
filtered with numpy and deflated in row blocks, one block per task on a thread pool
(CPython's ``zlib`` and numpy release the GIL while they work on large buffers); the raw
deflate output of the blocks is joined into *one* standard zlib stream, so the file is an
ordinary PNG that every decoder reads.

How the stream is put together (the technique pigz uses):

* every block gets its own raw-deflate compressor (no header): ISA-L's (``isal`` on PyPI,
  Intel's hand-vectorised deflate, several times zlib's speed) at levels 1-3, zlib's otherwise; all
  blocks but the last end with ``Z_SYNC_FLUSH`` (which ends on a byte boundary with an
  empty stored block, so the next block's deflate data can follow directly), the last one
  with ``Z_FINISH`` (which sets the final-block bit);
* the two-byte header zlib itself would write (``78 01`` at level 1) goes in front, and
  the Adler-32 of the whole filtered data goes at the end: each block computes its own
  Adler-32, and the main thread combines them in order (:func:`_adler32_combine`, the
  arithmetic of zlib's ``adler32_combine``).

Blocks do not share a deflate window, which costs about 0.02 % of the file at the default
block size (2 MiB of filtered data). How the rows are split depends only on the image and
``block_rows``, never on ``threads``: one and two threads write the same bytes.

Filter and strategy (``benchmarks/png.py`` measures them, with its figures): on photo
cut-outs the *Up* filter with zlib's default strategy gives the smallest file of the cheap
choices and compresses as fast as any. Up costs one vectorised subtraction; the residual
rows of a natural image repeat, which deflate's matcher finds (Z_RLE only looks one byte
back), and the alpha channel of a cut-out, long runs of 0 and 255, becomes zeros. Paeth
(libpng's choice in the OpenCV path) costs more CPU in numpy than the whole compression,
and libpng's per-row adaptive choice made files larger, so neither is the default.
"""

from __future__ import annotations

import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, Literal

import numpy as np

from ..errors import InvalidOptionError
from ..parallel import inner_threads

_isal: Any
try:  # Intel's ISA-L deflate, much faster than zlib's at levels 1-3 (see _compressor)
    from isal import isal_zlib as _isal
except ImportError:  # pragma: no cover - isal has wheels for every common platform
    _isal = None

__all__ = ["PngFilter", "PngStrategy", "encode_png"]

PngFilter = Literal["none", "sub", "up", "average", "paeth"]
PngStrategy = Literal["default", "rle", "filtered", "huffman"]

_SIGNATURE: Final[bytes] = b"\x89PNG\r\n\x1a\n"
_FILTER_CODES: Final[dict[str, int]] = {"none": 0, "sub": 1, "up": 2, "average": 3, "paeth": 4}
_STRATEGIES: Final[dict[str, int]] = {
    "default": zlib.Z_DEFAULT_STRATEGY,
    "rle": zlib.Z_RLE,
    "filtered": zlib.Z_FILTERED,
    "huffman": zlib.Z_HUFFMAN_ONLY,
}
_COLOR_TYPES: Final[dict[int, int]] = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type
_BLOCK_BYTES: Final[int] = 2 << 20  # filtered bytes per deflate block (default block_rows)
_IDAT_BYTES: Final[int] = 1 << 20  # payload of each IDAT chunk
_MAX_SIDE: Final[int] = 2**31 - 1  # PNG's limit on width and height
_ADLER_BASE: Final[int] = 65521


def encode_png(
    pixels: np.ndarray,
    *,
    level: int = 1,
    icc_profile: bytes | None = None,
    threads: int | None = None,
    png_filter: PngFilter = "up",
    strategy: PngStrategy = "default",
    block_rows: int | None = None,
) -> bytes:
    """Encode ``uint8`` pixels as a standard 8-bit PNG, deflating row blocks on several threads.

    ``pixels``: ``[H, W]`` or ``[H, W, 1]`` (gray), ``[H, W, 2]`` (gray + alpha),
    ``[H, W, 3]`` (RGB) or ``[H, W, 4]`` (RGBA), ``uint8``, any strides (a non-contiguous
    array is copied one block at a time, never whole). ``level``: zlib's 0..9 (0 stores).
    ``icc_profile``: written as an ``iCCP`` chunk right after ``IHDR`` (it must suit the
    colour type: an RGB profile for RGB/RGBA). ``threads``: worker threads, default the
    usable cores (one inside :func:`cleancut.parallel.one_core`). ``png_filter``,
    ``strategy``: the PNG row filter (one for every row) and the zlib strategy; the defaults
    are the measured best for photo cut-outs (see the module's docstring). ``block_rows``:
    rows per deflate block (default: about 2 MiB of filtered data); it changes the bytes a
    little, ``threads`` never does.

    Raises :class:`~cleancut.errors.InvalidOptionError` for anything else.
    """
    if not isinstance(pixels, np.ndarray):
        raise InvalidOptionError(f"pixels must be a numpy array, got {type(pixels).__name__}")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if (
        pixels.dtype != np.uint8
        or pixels.ndim not in (2, 3)
        or (pixels.ndim == 3 and pixels.shape[2] not in _COLOR_TYPES)
        or not 0 < pixels.shape[0] <= _MAX_SIDE
        or not 0 < pixels.shape[1] <= _MAX_SIDE
    ):
        raise InvalidOptionError(
            "pixels must be uint8 [H, W], [H, W, 2], [H, W, 3] or [H, W, 4] with H, W > 0, "
            f"got {pixels.dtype} {pixels.shape}"
        )
    level = _int_option("level", level, 0, 9)
    threads = inner_threads() if threads is None else _int_option("threads", threads, 1, 1024)
    if not isinstance(png_filter, str) or png_filter not in _FILTER_CODES:
        raise InvalidOptionError(f"png_filter must be one of {', '.join(_FILTER_CODES)}, got {png_filter!r}")
    if not isinstance(strategy, str) or strategy not in _STRATEGIES:
        raise InvalidOptionError(f"strategy must be one of {', '.join(_STRATEGIES)}, got {strategy!r}")
    if icc_profile is not None and not isinstance(icc_profile, bytes | bytearray | memoryview):
        raise InvalidOptionError(f"icc_profile must be bytes, got {type(icc_profile).__name__}")

    height, width = int(pixels.shape[0]), int(pixels.shape[1])
    channels = 1 if pixels.ndim == 2 else int(pixels.shape[2])
    stride = width * channels
    if block_rows is None:
        block_rows = max(1, _BLOCK_BYTES // (stride + 1))
    else:
        block_rows = _int_option("block_rows", block_rows, 1, _MAX_SIDE)
    # Filtering cannot help stored blocks: level 0 keeps the rows as they are.
    code = 0 if level == 0 else _FILTER_CODES[png_filter]
    zstrategy = _STRATEGIES[strategy]
    starts = list(range(0, height, block_rows))

    def encode_block(index: int) -> tuple[bytes, int, int]:
        lo = starts[index]
        hi = min(lo + block_rows, height)
        filtered = _filter_rows(pixels, lo, hi, channels, code).data
        compressor = _compressor(level, zstrategy)
        last = hi == height
        data = compressor.compress(filtered) + compressor.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)
        return data, _adler32(filtered), filtered.nbytes

    workers = min(threads, len(starts))
    if workers == 1:
        blocks = [encode_block(i) for i in range(len(starts))]
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cleancut-png") as pool:
            blocks = list(pool.map(encode_block, range(len(starts))))

    adler = 1
    for _, block_adler, size in blocks:
        adler = _adler32_combine(adler, block_adler, size)
    header = _zlib_header(level, zstrategy)
    stream = b"".join([header, *(data for data, _, _ in blocks), struct.pack(">I", adler)])
    del blocks

    ihdr = struct.pack(">IIBBBBB", width, height, 8, _COLOR_TYPES[channels], 0, 0, 0)
    parts: list[bytes | memoryview] = [_SIGNATURE, *_chunk(b"IHDR", ihdr)]
    if icc_profile:
        parts += _chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(bytes(icc_profile)))
    view = memoryview(stream)
    for offset in range(0, len(stream), _IDAT_BYTES):
        parts += _chunk(b"IDAT", view[offset : offset + _IDAT_BYTES])
    parts += _chunk(b"IEND", b"")
    return b"".join(parts)


def _compressor(level: int, strategy: int) -> Any:
    """A raw-deflate compressor: ISA-L for levels 1-3 with the default strategy, else zlib.

    ISA-L is several times faster than zlib at these levels and no larger
    (``benchmarks/png.py``); in a folder batch the encoder's CPU time is taken from the
    model. ISA-L has levels 0-3 only and ignores strategies; level 0 here means *stored* (zlib).
    """
    if _isal is not None and 1 <= level <= 3 and strategy == zlib.Z_DEFAULT_STRATEGY:
        return _isal.compressobj(level, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY)
    return zlib.compressobj(level, zlib.DEFLATED, -15, 8, strategy)


def _adler32(data: memoryview | bytes) -> int:
    return int(_isal.adler32(data)) if _isal is not None else zlib.adler32(data)


def _crc32(data: bytes | memoryview, value: int = 0) -> int:
    return int(_isal.crc32(data, value)) if _isal is not None else zlib.crc32(data, value)


def _int_option(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InvalidOptionError(f"{name} must be an integer {low}..{high}, got {value!r}")
    number = int(value)
    if not low <= number <= high:
        raise InvalidOptionError(f"{name} must be {low}..{high}, got {number}")
    return number


def _zlib_header(level: int, strategy: int) -> bytes:
    """The two bytes zlib itself writes: deflate with a 32 KiB window, the level hint, FCHECK."""
    if strategy in (zlib.Z_HUFFMAN_ONLY, zlib.Z_RLE) or level < 2:
        hint = 0
    else:
        hint = 1 if level < 6 else 2 if level == 6 else 3
    cmf = 0x78
    flg = hint << 6
    flg += 31 - (cmf * 256 + flg) % 31
    return bytes((cmf, flg))


def _chunk(kind: bytes, data: bytes | memoryview) -> list[bytes | memoryview]:
    crc = _crc32(data, _crc32(kind))
    return [struct.pack(">I", len(data)) + kind, data, struct.pack(">I", crc)]


def _adler32_combine(adler1: int, adler2: int, len2: int) -> int:
    """The Adler-32 of ``A + B`` from those of ``A`` and ``B`` and ``len(B)``.

    With ``a = 1 + sum(bytes)`` and ``b = sum of the running a's`` (mod 65521): running
    B's bytes on from A's state adds ``len(B) * (a1 - 1)`` to ``b`` on top of B's own sums.
    """
    a1, b1 = adler1 & 0xFFFF, adler1 >> 16
    a2, b2 = adler2 & 0xFFFF, adler2 >> 16
    a = (a1 + a2 - 1) % _ADLER_BASE
    b = (b1 + b2 + (len2 % _ADLER_BASE) * (a1 - 1)) % _ADLER_BASE
    return (b << 16) | a


def _filter_rows(pixels: np.ndarray, lo: int, hi: int, bpp: int, code: int) -> np.ndarray:
    """Rows ``lo:hi`` as PNG filtered scanlines: ``[hi - lo, 1 + W * bpp]`` uint8, contiguous.

    Every filter predicts from the *raw* neighbours (left, up, up-left), so each is a few
    whole-array operations; the row above the block is read from ``pixels`` (zeros above
    the first row, as the PNG specification says).
    """
    n = hi - lo
    stride = int(pixels.shape[1]) * bpp
    out = np.empty((n, stride + 1), np.uint8)
    out[:, 0] = code
    res = out[:, 1:]
    raw = np.ascontiguousarray(pixels[lo:hi]).reshape(n, stride)
    if code == 0:
        res[...] = raw
        return out
    if code == 1:
        _sub(raw, res, bpp)
        return out
    above = np.ascontiguousarray(pixels[lo - 1]).reshape(stride) if lo > 0 else np.zeros(stride, np.uint8)
    if code == 2:
        np.subtract(raw[0], above, out=res[0])
        np.subtract(raw[1:], raw[:-1], out=res[1:])
        return out
    up = np.empty_like(raw)
    up[0] = above
    up[1:] = raw[:-1]
    left = _shift_right(raw, bpp)
    if code == 3:
        # floor((left + up) / 2) without widening: (a & b) + ((a ^ b) >> 1)
        np.bitwise_and(left, up, out=res)
        np.bitwise_xor(left, up, out=left)
        np.right_shift(left, 1, out=left)
        np.add(res, left, out=res)
        np.subtract(raw, res, out=res)
        return out
    _paeth(raw, left, up, _shift_right(up, bpp), res)
    return out


def _sub(raw: np.ndarray, res: np.ndarray, bpp: int) -> None:
    res[:, :bpp] = raw[:, :bpp]
    np.subtract(raw[:, bpp:], raw[:, :-bpp], out=res[:, bpp:])


def _shift_right(rows: np.ndarray, bpp: int) -> np.ndarray:
    """Each row's left neighbours: the row moved ``bpp`` bytes right, zeros shifted in."""
    shifted = np.empty_like(rows)
    shifted[:, :bpp] = 0
    shifted[:, bpp:] = rows[:, :-bpp]
    return shifted


def _paeth(raw: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray, res: np.ndarray) -> None:
    """Paeth: predict with whichever of left (a), up (b), up-left (c) is nearest a + b - c."""
    c16 = c.astype(np.int16)
    bc = b.astype(np.int16)
    bc -= c16  # b - c
    ac = a.astype(np.int16)
    ac -= c16  # a - c
    del c16
    pc = np.add(bc, ac)  # (a + b - c) - c
    np.abs(pc, out=pc)
    pa = np.abs(bc, out=bc)  # |p - a| = |b - c|
    pb = np.abs(ac, out=ac)  # |p - b| = |a - c|
    use_a = (pa <= pb) & (pa <= pc)
    use_b = pb <= pc
    del pa, pb, pc
    pred = np.where(use_a, a, np.where(use_b, b, c))
    np.subtract(raw, pred, out=res)
