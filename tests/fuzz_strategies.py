"""Bad (and odd but valid) inputs for cleancut, and the judges of what it made of them.

Shared by the fast slice in ``tests/test_fuzz.py`` and the full campaign ``fuzz/run.py``.

Inputs (Hypothesis strategies):

* :func:`image_bytes` — real files of every container (JPEG, PNG, WebP, GIF, TIFF, BMP) and
  Pillow mode, then damaged: truncated at any offset, bit flips, overwritten or deleted
  ranges, another format's magic, two files spliced; plus crafted headers claiming huge or
  zero dimensions, malformed EXIF (orientation garbage, huge IFD counts, offsets out of the
  file) and ICC profiles (garbage, truncated, flipped, for the wrong colour space),
  zero-size data, random bytes, 1×1 images, multi-frame and 16-bit files.
* :func:`library_inputs` — the above as bytes, paths and streams, plus PIL images of every
  mode and numpy arrays of odd shapes and dtypes, and objects that are no image at all.

Judges return a :class:`Verdict`: ``ok`` (a correct result: the invariants hold), ``error``
(our clear error: a :class:`~cleancut.errors.CleancutError`, a JSON 4xx, an ``error:``
line) or ``failure`` (anything else: another exception, a traceback, a 500, a wrong result).
"""

from __future__ import annotations

import functools
import io
import math
import os
import shutil
import struct
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from hypothesis import strategies as st
from PIL import Image, ImageCms

from cleancut.errors import CleancutError
from cleancut.io.decode import DecodedImage, decode

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"

Outcome = Literal["ok", "error", "failure"]

#: Every Pillow mode the issue names (plus a few more Pillow can make).
MODES: tuple[str, ...] = (
    "1",
    "L",
    "LA",
    "La",
    "P",
    "PA",
    "I",
    "I;16",
    "I;16B",
    "F",
    "RGB",
    "RGBA",
    "RGBa",
    "RGBX",
    "CMYK",
    "YCbCr",
    "LAB",
    "HSV",
)


@dataclass(frozen=True)
class Case:
    """One input. ``data``: the bytes of a file; ``obj``: anything else a caller may pass."""

    label: str
    data: bytes | None = None
    obj: Any = None
    as_path: bool = False  # hand ``data`` over as the path of a file holding it


@dataclass
class Verdict:
    outcome: Outcome
    detail: str = ""


@dataclass
class Budget:
    """How many more inputs may run the real model (each costs a full IS-Net pass)."""

    left: int
    used: int = 0

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        self.used += 1
        return True


@dataclass
class Tally:
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    failures: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, target: str, case: Case, verdict: Verdict) -> None:
        per = self.counts.setdefault(target, {"ok": 0, "error": 0, "failure": 0})
        per[verdict.outcome] += 1
        if verdict.outcome == "failure":
            self.failures.append((target, case.label, verdict.detail))


# --------------------------------------------------------------------------- seed files


def _gradient(w: int, h: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    r = (x * 255 // max(w - 1, 1)).astype(np.uint8)
    g = (y * 255 // max(h - 1, 1)).astype(np.uint8)
    b = ((x + y) * 7 % 256).astype(np.uint8)
    a = np.where((x - w / 2) ** 2 + (y - h / 2) ** 2 < (min(w, h) / 2) ** 2, 255, 40).astype(np.uint8)
    return np.dstack([r, g, b, a])


def pil_image(mode: str, w: int, h: int) -> Image.Image:
    """A small picture (not a flat colour) in ``mode``."""
    if w == 0 or h == 0:
        return Image.new(mode, (w, h))
    rgba = Image.fromarray(_gradient(w, h), "RGBA")
    if mode in ("RGBA", "RGBa", "LA", "La"):
        return rgba.convert(mode)
    if mode == "PA":
        return rgba.convert("PA")
    if mode in ("I", "I;16", "I;16B", "F"):
        wide = np.asarray(rgba.convert("L"), dtype=np.int32) * 257
        if mode == "F":
            return Image.fromarray(wide.astype(np.float32) / 65535.0, "F")
        img = Image.fromarray(wide, "I")
        return img if mode == "I" else img.convert(mode)
    return rgba.convert("RGB").convert(mode)


def _save(img: Image.Image, fmt: str, **kwargs: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


@functools.cache
def srgb_profile() -> bytes:
    data: bytes = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return data


@functools.cache
def seeds() -> tuple[tuple[str, bytes], ...]:
    """Valid files of every container and the modes each can hold; small, so that decoding
    one costs milliseconds (the real photos are there once each, for realistic damage)."""
    out: list[tuple[str, bytes]] = []
    w, h = 19, 13
    for mode in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16"):
        out.append((f"png/{mode}", _save(pil_image(mode, w, h), "PNG")))
    p = pil_image("P", w, h)
    out.append(("png/P+trns", _save(p, "PNG", transparency=3)))
    out.append(("png/RGB+icc", _save(pil_image("RGB", w, h), "PNG", icc_profile=srgb_profile())))
    frames = [pil_image("RGBA", w, h).rotate(a) for a in (0, 90, 180)]
    out.append(("apng/3", _save(frames[0], "PNG", save_all=True, append_images=frames[1:])))
    for mode in ("L", "RGB", "CMYK"):
        out.append((f"jpeg/{mode}", _save(pil_image(mode, w, h), "JPEG", quality=80)))
    out.append(("jpeg/RGB+icc", _save(pil_image("RGB", w, h), "JPEG", icc_profile=srgb_profile())))
    out.append(("jpeg/progressive", _save(pil_image("RGB", 40, 30), "JPEG", progressive=True)))
    for mode in ("RGB", "RGBA"):
        out.append((f"webp/{mode}", _save(pil_image(mode, w, h), "WEBP", quality=70)))
    out.append(("webp/lossless", _save(pil_image("RGBA", w, h), "WEBP", lossless=True)))
    out.append(("webp/anim", _save(frames[0], "WEBP", save_all=True, append_images=frames[1:])))
    out.append(("gif/P", _save(pil_image("P", w, h), "GIF")))
    out.append(
        (
            "gif/anim",
            _save(
                frames[0].convert("P"),
                "GIF",
                save_all=True,
                append_images=[f.convert("P") for f in frames[1:]],
            ),
        )
    )
    for mode in ("RGB", "RGBA", "CMYK", "I", "I;16", "F", "LAB", "YCbCr", "1", "L"):
        out.append((f"tiff/{mode}", _save(pil_image(mode, w, h), "TIFF")))
    out.append(("tiff/pages", _save(frames[0], "TIFF", save_all=True, append_images=frames[1:])))
    for mode in ("RGB", "P", "1"):
        out.append((f"bmp/{mode}", _save(pil_image(mode, w, h), "BMP")))
    for mode in ("L", "RGB", "RGBA"):
        out.append((f"1x1/{mode}", _save(pil_image(mode, 1, 1), "PNG")))
    out.append(("1x1/jpeg", _save(pil_image("RGB", 1, 1), "JPEG")))
    for path in sorted(EXAMPLES.glob("*.jpg"))[:1]:
        out.append((f"photo/{path.name}", path.read_bytes()))
    return tuple(out)


# --------------------------------------------------------------------------- crafting


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int, depth: int = 8, color: int = 2, idat: bytes | None = None) -> bytes:
    """A PNG signature and a well-formed IHDR for any size, with (almost) no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    body = zlib.compress(b"\x00" * 64) if idat is None else idat
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")


def _jpeg_with_size(width: int, height: int) -> bytes:
    """A real small JPEG whose SOF header is rewritten to claim another size."""
    data = bytearray(_save(pil_image("RGB", 16, 16), "JPEG"))
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        i = data.find(marker)
        if i >= 0:
            data[i + 5 : i + 9] = struct.pack(">HH", height & 0xFFFF, width & 0xFFFF)
            break
    return bytes(data)


def _gif_with_size(width: int, height: int) -> bytes:
    data = bytearray(_save(pil_image("P", 8, 8), "GIF"))
    data[6:10] = struct.pack("<HH", width & 0xFFFF, height & 0xFFFF)
    i = data.find(b"\x2c")  # image descriptor
    if i >= 0:
        data[i + 5 : i + 9] = struct.pack("<HH", width & 0xFFFF, height & 0xFFFF)
    return bytes(data)


def _bmp_with_size(width: int, height: int) -> bytes:
    data = bytearray(_save(pil_image("RGB", 8, 8), "BMP"))
    data[18:26] = struct.pack(
        "<ii", max(min(width, 2**31 - 1), -(2**31)), max(min(height, 2**31 - 1), -(2**31))
    )
    return bytes(data)


def _webp_with_size(width: int, height: int) -> bytes:
    """An extended (VP8X) WebP whose canvas claims another size."""
    data = bytearray(_save(pil_image("RGBA", 8, 8), "WEBP", lossless=True, exif=b"Exif\x00\x00II*\x00"))
    if data[12:16] == b"VP8X":
        w, h = max(width - 1, 0) & 0xFFFFFF, max(height - 1, 0) & 0xFFFFFF
        data[24:30] = w.to_bytes(3, "little") + h.to_bytes(3, "little")
    return bytes(data)


def _tiff_with_size(width: int, height: int) -> bytes:
    data = bytearray(_save(pil_image("RGB", 8, 8), "TIFF"))
    # walk the first IFD (little-endian, as Pillow writes) and patch ImageWidth/ImageLength
    (ifd,) = struct.unpack_from("<I", data, 4)
    (n,) = struct.unpack_from("<H", data, ifd)
    for k in range(n):
        at = ifd + 2 + 12 * k
        tag, typ = struct.unpack_from("<HH", data, at)
        if tag in (256, 257):
            value = width if tag == 256 else height
            if typ == 3:
                struct.pack_into("<H", data, at + 8, value & 0xFFFF)
            else:
                struct.pack_into("<I", data, at + 8, value & 0xFFFFFFFF)
    return bytes(data)


_SIZE_FORGERS: dict[str, Callable[[int, int], bytes]] = {
    "png": png_claiming,
    "jpeg": _jpeg_with_size,
    "gif": _gif_with_size,
    "bmp": _bmp_with_size,
    "webp": _webp_with_size,
    "tiff": _tiff_with_size,
}

_DIMENSIONS = st.one_of(
    st.sampled_from(
        [0, 1, 2, 3, 255, 256, 16383, 16384, 65500, 65535, 65536, 100_000, 2**24, 2**31 - 1, 2**32 - 1]
    ),
    st.integers(0, 2**32 - 1),
)


@st.composite
def huge_dimensions(draw: st.DrawFn) -> Case:
    kind = draw(st.sampled_from(sorted(_SIZE_FORGERS)))
    w, h = draw(_DIMENSIONS), draw(_DIMENSIONS)
    return Case(f"claims/{kind}:{w}x{h}", _SIZE_FORGERS[kind](w, h))


def _ifd(entries: list[tuple[int, int, int, bytes]], count_override: int | None = None) -> bytes:
    """A little-endian TIFF header with one IFD: entries are (tag, type, count, 4-byte value)."""
    n = len(entries) if count_override is None else count_override
    body = struct.pack("<H", n & 0xFFFF)
    for tag, typ, count, value in entries:
        body += struct.pack("<HHI", tag & 0xFFFF, typ & 0xFFFF, count & 0xFFFFFFFF) + value[:4].ljust(
            4, b"\x00"
        )
    return b"II*\x00" + struct.pack("<I", 8) + body + struct.pack("<I", 0)


@st.composite
def exif_payloads(draw: st.DrawFn) -> bytes:
    """The bytes of an APP1/eXIf payload: plausible to garbage."""
    kind = draw(st.sampled_from(["orientation", "count", "offsets", "types", "random", "cut", "loop"]))
    if kind == "orientation":
        value = draw(st.one_of(st.integers(0, 9), st.integers(0, 0xFFFF)))
        typ = draw(st.sampled_from([3, 3, 4, 2, 7, 9, 12, 0, 99]))
        tiff = _ifd([(0x0112, typ, draw(st.integers(0, 3)), struct.pack("<H", value))])
    elif kind == "count":
        tiff = _ifd([(0x0112, 3, 1, b"\x06\x00")], count_override=draw(st.integers(2, 0xFFFF)))
    elif kind == "offsets":
        tag = draw(st.sampled_from([0x0112, 0x8769, 0x8825, 0xA005, 0x927C, 0x010F]))
        tiff = _ifd(
            [
                (
                    tag,
                    draw(st.sampled_from([2, 4, 7, 13])),
                    draw(st.integers(0, 2**32 - 1)),
                    struct.pack("<I", draw(st.integers(0, 2**32 - 1))),
                )
            ]
        )
    elif kind == "types":
        entries = [
            (
                draw(st.integers(0, 0xFFFF)),
                draw(st.integers(0, 20)),
                draw(st.integers(0, 2**32 - 1)),
                draw(st.binary(min_size=4, max_size=4)),
            )
            for _ in range(draw(st.integers(1, 6)))
        ]
        tiff = _ifd(entries)
    elif kind == "loop":  # an IFD whose next-IFD offset points back at itself
        tiff = _ifd([(0x0112, 3, 1, b"\x03\x00")])[:-4] + struct.pack("<I", 8)
    elif kind == "cut":
        tiff = _ifd([(0x0112, 3, 1, b"\x06\x00")])[: draw(st.integers(0, 20))]
    else:
        tiff = draw(st.binary(max_size=64))
    return b"Exif\x00\x00" + tiff


@st.composite
def with_bad_exif(draw: st.DrawFn) -> Case:
    fmt = draw(st.sampled_from(["JPEG", "PNG", "WEBP", "TIFF"]))
    payload = draw(exif_payloads())
    img = pil_image("RGB", 11, 7)
    try:
        data = _save(img, fmt, exif=payload if fmt != "TIFF" else Image.Exif())
    except Exception:  # Pillow refused to write it: use the raw APP1 splice instead
        fmt = "JPEG"
        data = None
    if data is None or fmt == "TIFF":
        jpeg = _save(img, "JPEG")
        seg = b"\xff\xe1" + struct.pack(">H", min(len(payload) + 2, 0xFFFF)) + payload[:0xFFFD]
        data = jpeg[:2] + seg + jpeg[2:]
        fmt = "JPEG"
    return Case(f"exif/{fmt}:{len(payload)}B", data)


@st.composite
def icc_payloads(draw: st.DrawFn) -> bytes:
    real = srgb_profile()
    kind = draw(
        st.sampled_from(["garbage", "truncated", "flipped", "header-only", "gray", "cmyk", "huge-size"])
    )
    if kind == "garbage":
        return draw(st.binary(min_size=1, max_size=300))
    if kind == "truncated":
        return real[: draw(st.integers(1, len(real) - 1))]
    if kind == "flipped":
        data = bytearray(real)
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] ^= 1 << draw(st.integers(0, 7))
        return bytes(data)
    if kind == "header-only":
        return real[:128]
    if kind == "huge-size":  # the profile's own size field claims gigabytes
        return struct.pack(">I", draw(st.integers(len(real), 2**32 - 1))) + real[4:]
    space = b"GRAY" if kind == "gray" else b"CMYK"
    return real[:16] + space + real[20:]


@st.composite
def with_bad_icc(draw: st.DrawFn) -> Case:
    fmt, mode = draw(
        st.sampled_from(
            [
                ("PNG", "RGB"),
                ("PNG", "L"),
                ("PNG", "RGBA"),
                ("JPEG", "RGB"),
                ("JPEG", "CMYK"),
                ("JPEG", "L"),
                ("WEBP", "RGB"),
                ("TIFF", "RGB"),
                ("TIFF", "CMYK"),
            ]
        )
    )
    icc = draw(icc_payloads())
    return Case(f"icc/{fmt}-{mode}:{len(icc)}B", _save(pil_image(mode, 9, 6), fmt, icc_profile=icc))


# --------------------------------------------------------------------------- damage


_MAGICS = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff\xe0",
    b"GIF89a",
    b"II*\x00",
    b"MM\x00*",
    b"BM",
    b"RIFF\x00\x00\x00\x00WEBP",
    b"\x00\x00\x00\x18ftypheic",
    b"\x00\x00\x00\x1cftypavif",
    b"%PDF-1.4",
    b"PK\x03\x04",
    b"\x00\x00\x00\x00",
)


@st.composite
def damaged(draw: st.DrawFn) -> Case:
    label, data = draw(st.sampled_from(seeds()))
    how = draw(
        st.sampled_from(
            ["truncate", "truncate", "flip", "flip", "overwrite", "magic", "splice", "delete", "dup"]
        )
    )
    n = len(data)
    if how == "truncate":
        at = draw(st.integers(0, n - 1))
        return Case(f"{label}:truncate@{at}", data[:at])
    if how == "flip":
        out = bytearray(data)
        # most damage lands in the headers, where parsers decide sizes and offsets
        hi = draw(st.sampled_from([min(n, 64), min(n, 1024), n]))
        flips = draw(st.lists(st.tuples(st.integers(0, hi - 1), st.integers(0, 7)), min_size=1, max_size=8))
        for pos, bit in flips:
            out[pos] ^= 1 << bit
        return Case(f"{label}:flip{len(flips)}<{hi}", bytes(out))
    if how == "overwrite":
        at = draw(st.integers(0, n - 1))
        junk = draw(st.binary(min_size=1, max_size=16))
        return Case(f"{label}:overwrite@{at}", data[:at] + junk + data[at + len(junk) :])
    if how == "magic":
        magic = draw(st.sampled_from(_MAGICS))
        return Case(f"{label}:magic={magic[:4]!r}", magic + data[len(magic) :])
    if how == "splice":
        other_label, other = draw(st.sampled_from(seeds()))
        i, j = draw(st.integers(0, n)), draw(st.integers(0, len(other)))
        return Case(f"{label}+{other_label}:splice@{i},{j}", data[:i] + other[j:])
    if how == "delete":
        i = draw(st.integers(0, n - 1))
        k = draw(st.integers(1, 64))
        return Case(f"{label}:delete@{i}+{k}", data[:i] + data[i + k :])
    i = draw(st.integers(0, n - 1))
    k = draw(st.integers(1, 64))
    return Case(f"{label}:dup@{i}+{k}", data[: i + k] + data[i:])


def _valid() -> st.SearchStrategy[Case]:
    return st.sampled_from(seeds()).map(lambda s: Case(f"{s[0]}:valid", s[1]))


def _junk() -> st.SearchStrategy[Case]:
    return st.one_of(
        st.just(Case("empty", b"")),
        st.binary(min_size=1, max_size=64).map(lambda b: Case(f"random:{len(b)}B", b)),
        st.sampled_from(_MAGICS).map(lambda m: Case(f"magic-only:{m[:4]!r}", m)),
    )


def image_bytes() -> st.SearchStrategy[Case]:
    """Bytes of a file: mostly damaged real files, then crafted headers, junk and valid ones."""
    return st.one_of(
        damaged(),
        damaged(),
        damaged(),
        huge_dimensions(),
        with_bad_exif(),
        with_bad_icc(),
        _junk(),
        _valid(),
    )


# --------------------------------------------------------------------------- other inputs


@st.composite
def pil_inputs(draw: st.DrawFn) -> Case:
    mode = draw(st.sampled_from(MODES))
    w, h = draw(st.sampled_from([0, 1, 2, 7])), draw(st.sampled_from([0, 1, 3, 5]))
    img = pil_image(mode, w, h)
    return Case(f"pil/{mode}:{w}x{h}", obj=img)


_DTYPES = (
    "bool",
    "uint8",
    "int8",
    "uint16",
    "int16",
    "int32",
    "int64",
    "uint64",
    "float16",
    "float32",
    "float64",
    "complex64",
    "object",
    "U1",
)


@st.composite
def array_inputs(draw: st.DrawFn) -> Case:
    ndim = draw(st.integers(0, 4))
    shape = tuple(draw(st.lists(st.integers(0, 6), min_size=ndim, max_size=ndim)))
    dtype = draw(st.sampled_from(_DTYPES))
    fill = draw(st.sampled_from(["zeros", "ones", "max", "random", "nan", "inf", "negative"]))
    size = math.prod(shape)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if dtype == "object":
        arr = np.empty(shape, dtype=object)
    elif dtype == "U1":
        arr = np.full(shape, "x")
    else:
        base = {
            "zeros": np.zeros(size),
            "ones": np.ones(size),
            "max": np.full(size, 1e300),
            "random": rng.random(size) * 300 - 20,
            "nan": np.full(size, np.nan),
            "inf": np.full(size, np.inf),
            "negative": -rng.random(size) * 1e6,
        }[fill]
        with np.errstate(all="ignore"):
            if np.issubdtype(np.dtype(dtype), np.integer):
                info = np.iinfo(np.dtype(dtype))
                base = np.nan_to_num(base, nan=0, posinf=info.max, neginf=info.min).clip(info.min, info.max)
            arr = base.astype(dtype).reshape(shape)
    return Case(f"array/{dtype}{shape}:{fill}", obj=arr)


def _odd_objects() -> st.SearchStrategy[Case]:
    return st.sampled_from(
        [
            Case("obj/None", obj=None),
            Case("obj/int", obj=42),
            Case("obj/list", obj=[[1, 2], [3, 4]]),
            Case("obj/str-missing", obj="/nonexistent/dir/photo.jpg"),
            Case("obj/str-nul", obj="bad\x00name.png"),
            Case("obj/str-long", obj="x" * 5000),
            Case("obj/dir", obj=str(REPO / "examples")),
            Case("obj/text-stream", obj=io.StringIO("not bytes")),
            Case("obj/empty-stream", obj=io.BytesIO()),
            Case("obj/memoryview", obj=memoryview(b"\x89PNG\r\n")),
            Case("obj/bytearray", obj=bytearray(b"GIF89a\x01")),
        ]
    )


@st.composite
def as_stream_or_path(draw: st.DrawFn, cases: st.SearchStrategy[Case]) -> Case:
    """Bytes delivered the ways a caller may: bytes, a binary stream, a file path."""
    case = draw(cases)
    how = draw(st.sampled_from(["bytes", "bytes", "stream", "path"]))
    if how == "bytes" or case.data is None:
        return case
    if how == "stream":
        return Case(f"{case.label}|stream", obj=io.BytesIO(case.data))
    return Case(f"{case.label}|path", data=case.data, as_path=True)


def library_inputs() -> st.SearchStrategy[Case]:
    return st.one_of(
        as_stream_or_path(image_bytes()),
        as_stream_or_path(image_bytes()),
        pil_inputs(),
        array_inputs(),
        _odd_objects(),
    )


def source_of(case: Case, folder: Path) -> Any:
    """What to hand cleancut for ``case`` (``as_path`` cases are written to ``folder``)."""
    if case.as_path and case.data is not None:
        fd, name = tempfile.mkstemp(suffix=".img", dir=folder)
        with os.fdopen(fd, "wb") as f:
            f.write(case.data)
        return name
    if case.data is not None:
        return case.data
    if isinstance(case.obj, io.IOBase):
        case.obj.seek(0)
    return case.obj


# --------------------------------------------------------------------------- judges


def check_decoded(d: DecodedImage, max_pixels: int) -> str | None:
    """Why a decoded image breaks the contract, or None."""
    px = d.pixels
    if not isinstance(px, np.ndarray) or px.dtype != np.uint8 or px.ndim != 3:
        return f"pixels are {type(px).__name__} {getattr(px, 'dtype', '?')} ndim {getattr(px, 'ndim', '?')}"
    if px.shape[2] not in (3, 4) or px.shape[0] < 1 or px.shape[1] < 1:
        return f"bad shape {px.shape}"
    if px.shape[0] * px.shape[1] > max_pixels:
        return f"{px.shape} is over max_pixels {max_pixels}"
    if not px.flags.c_contiguous:
        return "pixels not C-contiguous"
    if d.icc_profile is not None and not isinstance(d.icc_profile, bytes):
        return "icc_profile is not bytes"
    return None


def _unexpected(exc: BaseException) -> Verdict:
    return Verdict("failure", f"{type(exc).__module__}.{type(exc).__name__}: {str(exc)[:300]}")


def _clean(exc: CleancutError) -> Verdict:
    message = str(exc)
    if not message.strip():
        return Verdict("failure", f"{type(exc).__name__} with an empty message")
    if "Traceback" in message:
        return Verdict("failure", f"{type(exc).__name__} message carries a traceback")
    return Verdict("error", type(exc).__name__)


def judge_decode(case: Case, folder: Path, max_pixels: int = 100_000_000) -> Verdict:
    try:
        decoded = decode(source_of(case, folder), max_pixels=max_pixels)
    except CleancutError as exc:
        return _clean(exc)
    except Exception as exc:
        return _unexpected(exc)
    problem = check_decoded(decoded, max_pixels)
    return Verdict("failure", problem) if problem else Verdict("ok", "decoded")


OPTION_TYPES = ("foreground", "background", "mask")


def judge_library(remover: Any, case: Case, folder: Path, budget: Budget, out_format: str) -> Verdict:
    """``Remover.remove`` then ``Cutout.to_bytes``; decodable inputs reach the model only
    while the budget lasts (after that the library's own decode step is judged)."""
    from cleancut import Cutout

    source = source_of(case, folder)
    try:
        decoded = remover.decode(source)
    except CleancutError as exc:
        return _clean(exc)
    except Exception as exc:
        return _unexpected(exc)
    problem = check_decoded(decoded, remover.settings.max_pixels)
    if problem:
        return Verdict("failure", problem)
    if not budget.take():
        return Verdict("ok", "decoded (inference budget spent)")
    source = source_of(case, folder)
    try:
        cut: Cutout = remover.remove(source, type="foreground")
        encoded = cut.to_bytes(out_format, bg_color="white" if out_format == "jpeg" else None)
    except CleancutError as exc:
        return Verdict("failure", f"decodable input failed later: {type(exc).__name__}: {exc}")
    except Exception as exc:
        return _unexpected(exc)
    h, w = decoded.height, decoded.width
    if cut.pixels.shape != (h, w, 4) or cut.mask.shape != (h, w) or cut.mask.dtype != np.uint8:
        return Verdict("failure", f"cut-out {cut.pixels.shape} / mask {cut.mask.shape} for a {w}×{h} image")
    # The cut-out's alpha is the mask, combined with any alpha the photo already had.
    alpha, mask = cut.pixels[:, :, 3].astype(np.int32), cut.mask.astype(np.int32)
    own = decoded.pixels[:, :, 3].astype(np.int32) if decoded.has_alpha else np.full_like(mask, 255)
    if not (
        np.all(alpha <= mask) and np.all(alpha <= own) and np.array_equal(alpha[own == 255], mask[own == 255])
    ):
        return Verdict("failure", "foreground alpha is not the mask (times the photo's own alpha)")
    if out_format in ("png", "webp", "jpeg"):
        back = Image.open(io.BytesIO(encoded))
        if back.size != (w, h):
            return Verdict("failure", f"encoded {out_format} is {back.size}, expected {(w, h)}")
    return Verdict("ok", "cut out")


def judge_cli_result(result: Any, out_path: Path | None, expect_image: bool) -> Verdict:
    """A ``CliRunner`` result: exit 0 with a valid output, or exit 1/2 with one error line."""
    exc = result.exception
    if exc is not None and not isinstance(exc, SystemExit):
        return _unexpected(exc)
    stderr = result.stderr if hasattr(result, "stderr") else result.output
    text = f"{result.output}\n{stderr}"
    if "Traceback" in text:
        return Verdict("failure", "a traceback reached the user")
    code = result.exit_code
    if code == 0:
        if expect_image and out_path is not None:
            try:
                with Image.open(out_path) as img:
                    img.load()
            except Exception as e:
                return Verdict("failure", f"exit 0 but the output is not an image: {e}")
        return Verdict("ok", "exit 0")
    if code not in (1, 2):
        return Verdict("failure", f"exit code {code}: {stderr[-300:]!r}")
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.lower().startswith("error:")]
    if len(errors) != 1:
        return Verdict("failure", f"exit {code} with {len(errors)} error lines: {stderr[-300:]!r}")
    if out_path is not None and out_path.exists():
        return Verdict("failure", f"exit {code} but an output was written")
    return Verdict("error", f"exit {code}")


_CLEAN_STATUSES = frozenset({400, 408, 413, 415, 422})


def judge_http_response(response: Any) -> Verdict:
    status = response.status_code
    if status == 200:
        try:
            w, h = int(response.headers["x-image-width"]), int(response.headers["x-image-height"])
            ctype = response.headers["content-type"]
            if ctype.startswith(("image/png", "image/webp", "image/jpeg")):
                img = Image.open(io.BytesIO(response.content))
                if img.size != (w, h):
                    return Verdict("failure", f"200 with a {img.size} image, headers say {(w, h)}")
        except Exception as exc:
            return Verdict("failure", f"200 but the answer is not a valid image: {exc!r}")
        return Verdict("ok", "200")
    try:
        body = response.json()
    except ValueError:
        return Verdict("failure", f"{status} without a JSON body: {response.text[:200]!r}")
    if not (isinstance(body, dict) and isinstance(body.get("error"), str) and body.get("detail")):
        return Verdict("failure", f"{status} with an unexpected body {body!r:.200}")
    if status not in _CLEAN_STATUSES:
        return Verdict("failure", f"{status} {body['error']}: {str(body['detail'])[:200]}")
    return Verdict("error", f"{status} {body['error']}")


# --------------------------------------------------------------------------- options


_ODD_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)

#: Numbers every numeric option is tried with: zero, signs, the tiniest and hugest floats,
#: NaN, infinities (also as JSON/JS spell them), and text that is almost a number.
_EXTREMES = [
    "0", "-0", "-1", "1", "1e-300", "5e-324", "-5e-324", "1e300", "1e309", "-1e309", "nan", "NaN",
    "inf", "-inf", "Infinity", "0x10", "1_0", " 1 ", "", "9" * 30, "1e3",
]  # fmt: skip


def _around(*bounds: float) -> list[str]:
    """Each bound, and a hair inside and outside it."""
    out: list[str] = []
    for b in bounds:
        for v in (b, b - 1e-9, b + 1e-9, b * (1 - 1e-15), b * (1 + 1e-15)):
            out.append(repr(float(v)))
    return out


def _number(valid: list[str], *bounds: float) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(valid),
        st.sampled_from(valid),
        st.sampled_from(_around(*bounds)),
        st.sampled_from(_EXTREMES),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        _ODD_TEXT,
    )


def _integer(valid: list[str], *bounds: int) -> st.SearchStrategy[str]:
    near = [str(b + d) for b in bounds for d in (-1, 0, 1)]
    return st.one_of(
        st.sampled_from(valid),
        st.sampled_from(valid),
        st.sampled_from(near),
        st.sampled_from(_EXTREMES),
        st.integers().map(str),
        _ODD_TEXT,
    )


_FLAG = ["true", "false", "1", "0", "yes", "no", "on", "off"]


def _option(valid: list[str], odd: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(valid), st.sampled_from(valid), st.sampled_from(odd), _ODD_TEXT)


#: Every option of ``POST /api/remove`` (and its CLI flag), valid values and nonsense. The
#: valid numbers are kept small enough for a real run on a 16–200 px photo.
OPTION_VALUES: dict[str, st.SearchStrategy[str]] = {
    "type": _option(list(OPTION_TYPES), ["Foreground", "fg", "alpha", "", "mask "]),
    "format": _option(
        ["png", "webp", "jpeg", "rgba8", "alpha8"], ["PNG", "jpg", "gif", "image/png", "", "tiff"]
    ),
    "quality": _number(["0", "0.5", "1", "0.8"], 0.0, 1.0),
    "bg_color": _option(
        ["white", "#ff0000", "0,128,255", "transparent"],
        ["#fff", "#gggggg", "300,0,0", "1,2", "-1,0,0", "", "rgb(1,2,3)"],
    ),
    "refine": _option(["guided", "bilinear"], ["Guided", "bicubic", "", "none"]),
    "decontaminate": _option(["none", "blur_fusion", "blur-fusion"], ["multilevel ", "all", "", "yes"]),
    "threshold": _integer(["0", "128", "255"], 0, 255),
    "feather": _number(["0", "1.5", "30", "500"], 0.0, 16.0, 500.0),
    "min_island": _number(["0", "0.001", "0.5", "0.999999"], 0.0, 1.0),
    "min_hole": _number(["0", "0.001", "0.5", "0.999999"], 0.0, 1.0),
    "background": _option(
        ["white", "blur", "transparent", "#00ff00", "10,20,30"], ["/etc/passwd", "beach.jpg", "", "none"]
    ),
    "fit": _option(["fill", "fit"], ["Fill", "stretch", ""]),
    "blur": _number(["0.02", "0.25", "1e-9"], 0.0, 0.25),
    "shadow": _option(_FLAG, ["maybe", "2", ""]),
    "crop": _option(_FLAG, ["maybe", "2", ""]),
    "margin": _number(["0", "0.05", "10"], 0.0, 10.0),
    "square": _option(_FLAG, ["maybe", "2", ""]),
    "padding": _number(["0", "0.075", "0.45", "0.49", "0.4999"], 0.0, 0.5),
    "max_size": _integer(["1", "64", "200", "65535"], 1, 65535),
    "preset": _option(["ecommerce"], ["E-Commerce", "catalog", ""]),
    "mode": _option(["fast", "default", "best"], ["FAST", "turbo", "", "best!"]),
    "model": _option(["isnet_fp16", "isnet_quint8", "small", "medium"], ["nope", "", "isnet_fp32"]),
}

#: The options that are numbers, with their bounds: (low, high, low open, high open, integer).
NUMERIC_BOUNDS: dict[str, tuple[float, float, bool, bool, bool]] = {
    "quality": (0.0, 1.0, False, False, False),
    "threshold": (0, 255, False, False, True),
    "feather": (0.0, 500.0, False, False, False),
    "min_island": (0.0, 1.0, False, True, False),
    "min_hole": (0.0, 1.0, False, True, False),
    "blur": (0.0, 0.25, True, False, False),
    "margin": (0.0, 10.0, False, False, False),
    "padding": (0.0, 0.5, False, True, False),
    "max_size": (1, 65535, False, False, True),
}


def in_bounds(name: str, value: Any) -> bool:
    """Whether ``value`` (as the library takes it) is inside ``name``'s documented range."""
    low, high, low_open, high_open, integer = NUMERIC_BOUNDS[name]
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.integer | np.floating):
        return False
    if integer and not isinstance(value, int | np.integer):
        return False
    try:
        v = float(value)
    except OverflowError:
        return False
    if not math.isfinite(v):
        return False
    return (low < v if low_open else low <= v) and (v < high if high_open else v <= high)


@st.composite
def option_sets(draw: st.DrawFn) -> dict[str, str]:
    """Some of the cut-out options, with values from valid to nonsense."""
    names = draw(st.lists(st.sampled_from(sorted(OPTION_VALUES)), unique=True, max_size=6))
    return {n: draw(OPTION_VALUES[n]) for n in names}


_BOOL_FLAGS = ("shadow", "crop", "square")


def cli_args_for(options: dict[str, str]) -> list[str]:
    """The CLI flags for HTTP-style options (``max_size`` → ``--max-size``; a flag option is
    ``--crop`` or ``--no-crop`` by the truth of its text)."""
    args: list[str] = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if name in _BOOL_FLAGS:
            args.append(flag if value.strip().lower() in ("true", "1", "yes", "on") else f"--no-{name}")
        else:
            args.append(f"{flag}={value}")  # one token, so that "-1" is a value, not a flag
    return args


@st.composite
def photo_bytes(draw: st.DrawFn) -> Case:
    """A valid small photo (16–200 px, odd aspect ratios too) as PNG, JPEG or WebP: what the
    real model runs on, so that the options meet real masks."""
    w, h = draw(st.integers(16, 200)), draw(st.integers(16, 200))
    mode = draw(st.sampled_from(["RGB", "RGB", "RGBA", "L"]))
    fmt = draw(st.sampled_from(["PNG", "JPEG", "WEBP"]))
    img = pil_image(mode, w, h)
    if fmt == "JPEG" and mode == "RGBA":
        img = img.convert("RGB")
    return Case(f"photo/{fmt}-{mode}:{w}x{h}", _save(img, fmt))


# --------------------------------------------------------------------------- library options


def _typed_number(name: str) -> st.SearchStrategy[Any]:
    low, high, _, _, integer = NUMERIC_BOUNDS[name]
    edges = [low, high, -0.0, -1, 1e-300, 5e-324, 1e300, math.nan, math.inf, -math.inf]
    edges += [b + d for b in (low, high) for d in (-1e-9, 1e-9)]
    if integer:
        return st.one_of(
            st.integers(int(low), int(high)),
            st.sampled_from([int(low) - 1, int(high) + 1, 2**63, -(2**63), 10**400]),
            st.sampled_from(edges),
            st.booleans(),
        )
    return st.one_of(
        st.floats(low, high),
        st.floats(low, high),
        st.sampled_from(edges),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-3, 3),
        st.sampled_from([True, "0.1", None, np.float32(0.3), np.int64(2)]),
    )


LIBRARY_OPTIONS: dict[str, st.SearchStrategy[Any]] = {
    "refine": st.sampled_from(["guided", "bilinear", "Guided", "bicubic", "", 3]),
    "decontaminate": st.sampled_from(["none", "blur_fusion", "blur-fusion", "all", ""]),
    "threshold": _typed_number("threshold"),
    "feather": _typed_number("feather"),
    "min_island": _typed_number("min_island"),
    "min_hole": _typed_number("min_hole"),
    "background": st.sampled_from(
        ["white", "blur", "transparent", (0, 255, 0), (1, 2), "no-such-file.png", b"not an image"]
    ),
    "fit": st.sampled_from(["fill", "fit", "stretch"]),
    "blur": _typed_number("blur"),
    "shadow": st.sampled_from([True, False, "yes"]),
    "crop": st.sampled_from([True, False, 1]),
    "margin": _typed_number("margin"),
    "square": st.sampled_from([True, False, None]),
    "padding": _typed_number("padding"),
    "max_size": _typed_number("max_size"),
    "preset": st.sampled_from(["ecommerce", "catalog"]),
    # the engine's choices: every quality mode on both published models (aliases too)
    "mode": st.sampled_from(["fast", "default", "best", "BEST ", "better", "", None, 3]),
    "model": st.sampled_from(["isnet_fp16", "isnet_quint8", "small", "medium", "nope", "", None]),
    # a family or checksum is for files of your own: on a published model only one that agrees
    "model_family": st.sampled_from([None, "isnet-imgly", "birefnet", "ISNET_IMGLY", "nope", ""]),
    "model_sha256": st.sampled_from(
        [None, "abc", "0" * 64, "b6e8497ba978a6f5fbb647e419d2696cd80df5a23cb6a8ea532021911bd76acb"]
    ),
}


@st.composite
def library_option_sets(draw: st.DrawFn) -> dict[str, Any]:
    """Flat keywords of :func:`cleancut.remove_background` & co., typed as Python callers
    pass them, from valid to nonsense (NaN, infinities, huge integers, bools, strings)."""
    names = draw(st.lists(st.sampled_from(sorted(LIBRARY_OPTIONS)), unique=True, max_size=6))
    return {n: draw(LIBRARY_OPTIONS[n]) for n in names}


def _network_output(seed: int) -> np.ndarray:
    """A plausible IS-Net output ``[1, 1, 64, 64]`` (a soft blob, or nothing, or everything)
    for fuzzing the stages after the network without running it."""
    rng = np.random.default_rng(seed)
    kind = seed % 4
    if kind == 0:
        return np.zeros((1, 1, 64, 64), np.float32)
    if kind == 1:
        return np.ones((1, 1, 64, 64), np.float32)
    yy, xx = np.mgrid[0:64, 0:64]
    cy, cx, r = rng.uniform(0, 64), rng.uniform(0, 64), rng.uniform(2, 40)
    d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
    y = np.clip((r - d) / 4 + 0.5, 0, 1).astype(np.float32)
    return y[None, None]


_GEOMETRY = ("crop", "margin", "square", "padding", "max_size", "preset")


def judge_options(
    remover: Any,
    case: Case,
    options: dict[str, Any],
    out_type: str,
    out_format: str,
    folder: Path,
    budget: Budget,
    seed: int,
) -> Verdict:
    """Flat keywords through the library: a clean cleancut error, or a valid cut-out of the
    right size and type. While ``budget`` lasts the real model runs (``remove_background``
    & co.); after it the same stages run on a synthetic network output (``make_mask`` and
    ``make_cutout`` on the decoded photo), which is cheap enough for thousands of inputs."""
    from cleancut import api
    from cleancut.framing import make_framing
    from cleancut.models import resolve_model
    from cleancut.models.families.isnet_imgly import published_recipe
    from cleancut.passes import QUALITY_MODES, normalize_quality_mode
    from cleancut.remover import check_options, make_cutout, make_mask

    framing_keys = ("background", "fit", "blur", "shadow", "crop", "margin", "square", "padding", "max_size")
    edge_kw = {k: options.get(k) for k in ("refine", "decontaminate", *EDGE_NAMES)}
    frame_kw = {k: options[k] for k in framing_keys if k in options}
    limit = remover.settings.max_pixels
    try:
        decoded = remover.decode(source_of(case, folder))
    except CleancutError as exc:
        return _clean(exc)
    except Exception as exc:
        return _unexpected(exc)
    real = budget.take()
    try:
        if real:
            fn = {
                "foreground": api.remove_background,
                "background": api.remove_foreground,
                "mask": api.segment_foreground,
            }[out_type]
            cut = fn(source_of(case, folder), settings=remover.settings, **options)
        else:
            normalize_quality_mode(options.get("mode", "default"))
            resolve_model(
                options.get("model", "isnet_fp16"),
                family=options.get("model_family"),
                sha256=options.get("model_sha256"),
            )
            edges = api.edge_options(**edge_kw)
            framing = make_framing(options.get("preset"), **frame_kw)
            check_options(out_type, edges, framing)  # type: ignore[arg-type]
            if framing is not None:
                framing = framing.loaded(max_pixels=limit)
            mask = make_mask(_network_output(seed), decoded.pixels, edges, published_recipe())
            cut = make_cutout(
                decoded.pixels,
                mask,
                out_type,  # type: ignore[arg-type]
                decoded.icc_profile,
                edges=edges,
                framing=framing,
                max_pixels=limit,
            )
        encoded = cut.to_bytes(out_format, bg_color="white" if out_format == "jpeg" else None)
    except CleancutError as exc:
        return _clean(exc)
    except Exception as exc:
        return _unexpected(exc)
    for name in NUMERIC_BOUNDS:
        if options.get(name) is not None and not in_bounds(name, options[name]):
            return Verdict("failure", f"accepted {name}={options[name]!r}, out of its range")
    mode = options.get("mode", "default")
    if not (isinstance(mode, str) and mode.strip().lower() in QUALITY_MODES):
        return Verdict("failure", f"accepted mode={mode!r}")
    h, w = cut.mask.shape
    want = (h, w) if out_type == "mask" else (h, w, 4)
    if cut.pixels.shape != want or cut.pixels.dtype != np.uint8 or cut.mask.dtype != np.uint8:
        return Verdict("failure", f"{out_type} pixels {cut.pixels.shape} {cut.pixels.dtype}, mask {(h, w)}")
    if h * w > limit:
        return Verdict("failure", f"a {w}×{h} canvas is over max_pixels {limit}")
    framed = any(options.get(k) is not None and options.get(k) is not False for k in _GEOMETRY)
    if not framed and (h, w) != (
        decoded.height,
        decoded.width,
    ):
        return Verdict(
            "failure", f"no framing asked, yet {w}×{h} for a {decoded.width}×{decoded.height} photo"
        )
    if options.get("max_size") is not None and max(h, w) > options["max_size"]:
        return Verdict("failure", f"{w}×{h} is over max_size {options['max_size']}")
    asked_square = options.get("square") is True or options.get("padding") is not None
    if asked_square and options.get("square") is not False and h != w:
        return Verdict("failure", f"square asked, got {w}×{h}")
    problem = check_encoded(encoded, out_format, w, h, out_type)
    if problem:
        return Verdict("failure", problem)
    return Verdict("ok", "real" if real else "composed")


EDGE_NAMES = ("threshold", "feather", "min_island", "min_hole")


def check_encoded(data: bytes, fmt: str, w: int, h: int, out_type: str = "foreground") -> str | None:
    """Why ``data`` is not a ``w×h`` image in ``fmt``, or None."""
    if fmt in ("png", "webp", "jpeg"):
        try:
            with Image.open(io.BytesIO(data)) as img:
                img.load()
                size = img.size
        except Exception as exc:
            return f"encoded {fmt} does not decode: {exc!r}"
        return None if size == (w, h) else f"encoded {fmt} is {size}, expected {(w, h)}"
    channels = 1 if fmt == "alpha8" else 4
    if out_type == "mask" and fmt == "rgba8":
        channels = len(data) // max(1, w * h)  # a mask as rgba8: whatever the encoder makes of gray
    if len(data) != w * h * channels:
        return f"raw {fmt} of {len(data)} bytes for {w}×{h}×{channels}"
    return None


# --------------------------------------------------------------------------- video clips

#: Clip outputs the video fuzzer asks for (a folder of frames ends in a separator).
CLIP_OUTPUTS = ("out.webm", "out.mov", "out.mp4", "frames/")


@functools.lru_cache(maxsize=1)
def clip_seeds() -> tuple[tuple[str, bytes], ...]:
    """Tiny valid clips (48×32, 4 frames, a moving square over a gradient) in the
    containers and codecs users bring: H.264/MP4 with AAC, VP9/WebM, MPEG-4/AVI, H.264/MKV,
    MPEG-2/TS, and one with rotation metadata. Made once with PyAV."""
    from fractions import Fraction

    import av

    specs = [
        ("mp4-h264-aac", "mp4", "libx264", "yuv420p", True, 0),
        ("webm-vp9", "webm", "libvpx-vp9", "yuv420p", False, 0),
        ("avi-mpeg4", "avi", "mpeg4", "yuv420p", False, 0),
        ("mkv-h264", "matroska", "libx264", "yuv420p", False, 0),
        ("ts-mpeg2", "mpegts", "mpeg2video", "yuv420p", False, 0),
        ("mp4-rotated", "mp4", "libx264", "yuv420p", False, 90),
    ]
    out = []
    base = np.ascontiguousarray(_gradient(48, 32)[..., :3])
    for label, fmt, codec, pix, audio, rotate in specs:
        buf = io.BytesIO()
        with av.open(buf, "w", format=fmt) as c:
            s = c.add_stream(codec, rate=8)
            s.width, s.height, s.pix_fmt = 48, 32, pix
            if rotate:
                s.set_display_rotation(rotate)
            a = c.add_stream("aac", rate=8000) if audio else None
            for i in range(4):
                img = base.copy()
                img[8:24, 4 + 8 * i : 20 + 8 * i] = (230, 40, 40)
                for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)
            if a is not None:
                frame = av.AudioFrame.from_ndarray(
                    np.zeros((1, 4000), np.float32), format="fltp", layout="mono"
                )
                frame.sample_rate, frame.pts, frame.time_base = 8000, 0, Fraction(1, 8000)
                for p in a.encode(frame):
                    c.mux(p)
                for p in a.encode():
                    c.mux(p)
        out.append((label, buf.getvalue()))
    return tuple(out)


@st.composite
def damaged_clip(draw: st.DrawFn) -> Case:
    label, data = draw(st.sampled_from(clip_seeds()))
    how = draw(
        st.sampled_from(["truncate", "truncate", "flip", "flip", "overwrite", "delete", "dup", "splice"])
    )
    n = len(data)
    i = draw(st.integers(0, n - 1))
    if how == "truncate":
        return Case(f"{label}:truncate@{i}", data[:i], as_path=True)
    if how == "flip":
        out = bytearray(data)
        hi = draw(st.sampled_from([min(n, 256), min(n, 4096), n]))
        flips = draw(st.lists(st.tuples(st.integers(0, hi - 1), st.integers(0, 7)), min_size=1, max_size=8))
        for pos, bit in flips:
            out[pos] ^= 1 << bit
        return Case(f"{label}:flip{len(flips)}<{hi}", bytes(out), as_path=True)
    if how == "overwrite":
        junk = draw(st.binary(min_size=1, max_size=32))
        return Case(f"{label}:overwrite@{i}", data[:i] + junk + data[i + len(junk) :], as_path=True)
    k = draw(st.integers(1, 256))
    if how == "delete":
        return Case(f"{label}:delete@{i}+{k}", data[:i] + data[i + k :], as_path=True)
    if how == "dup":
        return Case(f"{label}:dup@{i}+{k}", data[: i + k] + data[i:], as_path=True)
    other_label, other = draw(st.sampled_from(clip_seeds()))
    j = draw(st.integers(0, len(other)))
    return Case(f"{label}+{other_label}:splice@{i},{j}", data[:i] + other[j:], as_path=True)


def clip_bytes() -> st.SearchStrategy[Case]:
    """Clip files: mostly damaged tiny clips, then valid ones, images and junk."""
    return st.one_of(
        damaged_clip(),
        damaged_clip(),
        damaged_clip(),
        st.sampled_from(clip_seeds()).map(lambda s: Case(f"{s[0]}:valid", s[1], as_path=True)),
        st.sampled_from(seeds()).map(lambda s: Case(f"image {s[0]} as a clip", s[1], as_path=True)),
        st.binary(max_size=64).map(lambda b: Case(f"random:{len(b)}B", b, as_path=True)),
    )


def clip_options() -> st.SearchStrategy[dict[str, Any]]:
    """remove_video's keywords as callers pass them: mostly valid (so damaged clips reach the
    decoder and the model), sometimes not (each must be refused before any output)."""
    valid = st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from(["foreground", "background", "mask"]),
            "mode": st.sampled_from(["default", "fast", "default", "best"]),
            "smooth": st.booleans(),
            "bg_color": st.sampled_from(["white", "#00ff00", (0, 0, 0), None]),
            "audio": st.booleans(),
            "quality": st.sampled_from([0, 30, 63]),
        },
    )
    anything = st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from(["MASK", "nope", "", "foreground"]),
            "mode": st.sampled_from(["FAST", "turbo", ""]),
            "smooth": st.sampled_from([0, 1, "yes"]),
            "bg_color": st.sampled_from(["nope", (300, 0, 0), (1, 2), "#12"]),
            "quality": st.sampled_from([-1, 64, 10**9, 1.5, float("nan")]),
        },
    )
    return st.one_of(valid, valid, valid, anything)


def clip_opens(case: Case, folder: Path) -> bool:
    """Whether the clip opens with a video stream (so that cutting it is worth a model run)."""
    from cleancut.video import probe

    path = folder / "probe.clip"
    path.write_bytes(case.data or b"")
    try:
        probe(path)
        return True
    except Exception:
        return False
    finally:
        path.unlink(missing_ok=True)


def judge_clip(remover: Any, case: Case, options: dict[str, Any], output: str, folder: Path) -> Verdict:
    """``remove_video``: a clean cleancut error with nothing left at the output (and no
    hidden temporary file or folder), or an output that decodes with every frame."""
    from cleancut.video import iter_frames, remove_video

    src = folder / "in.clip"
    src.write_bytes(case.data or b"")
    out_dir = folder / "out"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir()
    dst = str(out_dir / output.rstrip("/")) + ("/" if output.endswith("/") else "")
    try:
        try:
            result = remove_video(src, dst, remover=remover, **options)
        except CleancutError as exc:
            left = sorted(p.name for p in out_dir.iterdir())
            if left:
                return Verdict("failure", f"{type(exc).__name__} left {left} behind")
            return _clean(exc)
        except Exception as exc:
            return _unexpected(exc)
        left = sorted(p.name for p in out_dir.iterdir() if p.name.startswith("."))
        if left:
            return Verdict("failure", f"temporary files left: {left}")
        if output.endswith("/"):
            frames = sorted(result.path.glob("*.png"))
            if len(frames) != result.frames or not (result.path / "timestamps.json").is_file():
                return Verdict("failure", f"{len(frames)} PNGs for {result.frames} frames")
            return Verdict("ok", "frames")
        if output.endswith(".mp4") or output.endswith(".mov"):
            got = sum(1 for _ in iter_frames(result.path))
        else:
            import av

            with av.open(str(result.path)) as c:
                got = sum(1 for p in c.demux(c.streams.video[0]) if p.size)
        if got != result.frames or got == 0:
            return Verdict("failure", f"the output holds {got} frames, remove_video said {result.frames}")
        return Verdict("ok", "clip")
    finally:
        src.unlink(missing_ok=True)
        shutil.rmtree(out_dir, ignore_errors=True)


@st.composite
def clip_http_options(draw: st.DrawFn) -> dict[str, str]:
    """``POST /api/remove-video``'s options as text: the photo options (valid to nonsense,
    crop among them, which clips refuse), plus ``format`` and ``smooth``."""
    options = draw(option_sets())
    extra = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "format": st.sampled_from(["webm", "mov", "mp4", "MP4", "gif", "", "png"]),
                "smooth": st.sampled_from(["true", "false", "0", "1", "maybe", ""]),
            },
        )
    )
    return {**options, **extra}


def judge_http_clip(client: Any, response: Any, root: Path, wait_s: float = 120.0) -> Verdict:
    """A clip job: 202 then a job that ends (``done`` with a result downloaded once, whose
    frames decode; or ``failed`` with a JSON error), or a clean JSON 4xx at once; and, once
    the job is over and its result taken, no file left in the server's clip folder."""
    import time

    if response.status_code != 202:
        verdict = judge_http_response(response)
        if verdict.outcome == "ok":  # a 200 is not an answer this route gives
            return Verdict("failure", f"200 from POST /api/remove-video: {response.text[:200]!r}")
        return verdict
    job = response.json()
    deadline = time.monotonic() + wait_s
    while job.get("state") in ("queued", "running"):
        if time.monotonic() > deadline:
            return Verdict("failure", f"the job did not end in {wait_s:.0f} s: {job!r:.300}")
        time.sleep(0.05)
        r = client.get(job["status_url"])
        if r.status_code != 200:
            return Verdict("failure", f"status {r.status_code}: {r.text[:200]!r}")
        job = r.json()
    if job["state"] == "done":
        r = client.get(job["result"]["url"])
        if r.status_code != 200 or not r.content:
            return Verdict("failure", f"result {r.status_code}: {r.text[:200]!r}")
        try:
            import av

            with av.open(io.BytesIO(r.content)) as c:
                frames = sum(1 for p in c.demux(c.streams.video[0]) if p.size)
        except Exception as exc:
            return Verdict("failure", f"the result does not decode: {exc!r}")
        if frames != job["frames"]["done"] or frames == 0:
            return Verdict("failure", f"{frames} frames in the result, the job says {job['frames']!r}")
        outcome = Verdict("ok", "clip")
    else:
        error = job.get("error")
        if not (isinstance(error, dict) and error.get("error") and error.get("detail")):
            return Verdict("failure", f"job {job['state']} without a JSON error: {job!r:.300}")
        outcome = Verdict("error", f"job {job['state']}: {error['error']}")
        client.delete(job["status_url"])
    left = sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())
    if left:
        return Verdict("failure", f"files left in the clip folder: {left[:5]}")
    return outcome
