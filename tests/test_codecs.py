"""codecs: real files written by Pillow (or crafted byte by byte) in tmp_path, decoded and
encoded for real. Pixel values are checked, not just shapes."""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import shutil
import struct
import subprocess
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms, ImageOps

from cleancut import io as image_io
from cleancut.errors import (
    CleancutError,
    ImageTooLargeError,
    InputNotFoundError,
    InvalidOptionError,
    OutputExistsError,
    OutputWriteError,
    TruncatedImageError,
    UnreadableImageError,
    UnsupportedImageError,
)
from cleancut.io.atomic import write_atomic
from cleancut.io.decode import DecodedImage, decode
from cleancut.io.encode import encode
from cleancut.io.formats import FORMATS, extension_for, format_from_path, mime_type, normalize_format

MAX = 10_000_000  # a max_pixels well above every test image


# --------------------------------------------------------------------------- helpers


def save(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def craft_png(width: int, height: int, bit_depth: int, color_type: int, raw: bytes | None) -> bytes:
    """A PNG from its parts: IHDR as given, one IDAT holding ``raw`` (filter bytes included),
    correct CRCs. ``raw=None`` writes no IDAT at all."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    body = png_chunk(b"IHDR", ihdr)
    if raw is not None:
        body += png_chunk(b"IDAT", zlib.compress(raw))
    return b"\x89PNG\r\n\x1a\n" + body + png_chunk(b"IEND", b"")


def mode_of(path: Path) -> str:
    """The Pillow mode a file opens in (to show which decoder path a test exercises)."""
    with Image.open(path) as im:
        return im.mode


def check_decoded(d: DecodedImage, shape: tuple[int, ...]) -> None:
    assert isinstance(d, DecodedImage)
    assert d.pixels.dtype == np.uint8
    assert d.pixels.shape == shape
    assert d.pixels.flags.c_contiguous
    assert (d.height, d.width) == shape[:2]
    assert d.has_alpha == (shape[2] == 4)


# ----- ICC profiles built byte by byte (Pillow can only create sRGB, LAB and XYZ ones)


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def _desc(text: str) -> bytes:
    a = text.encode() + b"\0"
    return (
        b"desc" + bytes(4) + struct.pack(">I", len(a)) + a + bytes(8) + struct.pack(">HB", 0, 0) + bytes(67)
    )


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ " + bytes(4) + _s15(x) + _s15(y) + _s15(z)


def _lut8(in_ch: int, corner: Callable[..., tuple[int, int, int]]) -> bytes:
    """lut8Type with a 2-point CLUT: ``corner(*bits)`` gives the PCS bytes at each corner."""
    identity = (1, 0, 0, 0, 1, 0, 0, 0, 1)
    t = b"mft1" + bytes(4) + bytes([in_ch, 3, 2, 0]) + b"".join(_s15(v) for v in identity)
    t += bytes(range(256)) * in_ch
    for pt in itertools.product(range(2), repeat=in_ch):
        t += bytes(corner(*pt))
    return t + bytes(range(256)) * 3


def build_icc(device_class: bytes, space: bytes, pcs: bytes, tags: list[tuple[bytes, bytes]]) -> bytes:
    table_len = 4 + 12 * len(tags)
    entries, data = [], b""
    for sig, body in tags:
        data += bytes(-len(data) % 4)
        entries.append(sig + struct.pack(">II", 128 + table_len + len(data), len(body)))
        data += body
    data += bytes(-len(data) % 4)
    size = 128 + table_len + len(data)
    header = struct.pack(">I", size) + bytes(4) + struct.pack(">I", 0x02100000) + device_class + space + pcs
    header += struct.pack(">6H", 2024, 1, 1, 0, 0, 0) + b"acsp" + bytes(24)
    header += _s15(0.9642) + _s15(1.0) + _s15(0.8249)
    header += bytes(128 - len(header))
    return header + struct.pack(">I", len(tags)) + b"".join(entries) + data


D50 = (0.9642, 1.0, 0.8249)
#: gray with a linear tone curve (gamma 1.0): gray 128 is 50 % light, sRGB ≈ 188
GRAY_LINEAR_ICC = build_icc(
    b"mntr",
    b"GRAY",
    b"XYZ ",
    [
        (b"desc", _desc("linear gray")),
        (b"wtpt", _xyz(*D50)),
        (b"kTRC", b"curv" + bytes(4) + struct.pack(">IH", 1, 256) + bytes(2)),
    ],
)
#: CMYK whose colour depends on K only: K=0 white, K=255 black (unlike a naive conversion)
CMYK_K_ONLY_ICC = build_icc(
    b"prtr",
    b"CMYK",
    b"Lab ",
    [
        (b"desc", _desc("k only")),
        (b"wtpt", _xyz(*D50)),
        (b"A2B0", _lut8(4, lambda c, m, y, k: (0 if k else 255, 128, 128))),
    ],
)
SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def srgb_encode(linear: float) -> float:
    return 255 * (12.92 * linear if linear <= 0.0031308 else 1.055 * linear ** (1 / 2.4) - 0.055)


@pytest.fixture
def rgb() -> np.ndarray:
    rng = np.random.default_rng(11)
    return rng.integers(0, 256, (12, 17, 3), dtype=np.uint8)


@pytest.fixture
def rgba() -> np.ndarray:
    rng = np.random.default_rng(12)
    a = rng.integers(0, 256, (12, 17, 4), dtype=np.uint8)
    a[0, :4, 3] = [0, 1, 254, 255]
    return a


# --------------------------------------------------------------------------- modes


def test_mode_1(tmp_path: Path) -> None:
    img = Image.new("1", (3, 2))
    img.putpixel((1, 0), 1)
    img.putpixel((2, 1), 1)
    path = tmp_path / "bilevel.png"
    img.save(path)
    d = decode(path, max_pixels=MAX)
    check_decoded(d, (2, 3, 3))
    want = np.array([[0, 255, 0], [0, 0, 255]], np.uint8)
    np.testing.assert_array_equal(d.pixels, np.repeat(want[:, :, None], 3, axis=2))
    assert d.format == "PNG"


def test_mode_l(tmp_path: Path) -> None:
    gray = np.arange(24, dtype=np.uint8).reshape(4, 6) * 11
    path = tmp_path / "gray.png"
    Image.fromarray(gray).save(path)
    d = decode(path, max_pixels=MAX)
    check_decoded(d, (4, 6, 3))
    for c in range(3):
        np.testing.assert_array_equal(d.pixels[..., c], gray)


def test_mode_la(tmp_path: Path) -> None:
    la = np.zeros((3, 4, 2), np.uint8)
    la[..., 0] = np.arange(12).reshape(3, 4) * 20
    la[..., 1] = np.arange(12).reshape(3, 4) * 23
    path = tmp_path / "la.png"
    Image.fromarray(la, "LA").save(path)
    d = decode(path, max_pixels=MAX)
    check_decoded(d, (3, 4, 4))
    for c in range(3):
        np.testing.assert_array_equal(d.pixels[..., c], la[..., 0])
    np.testing.assert_array_equal(d.pixels[..., 3], la[..., 1])


def _palette_image() -> Image.Image:
    p = Image.new("P", (3, 1))
    p.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    p.putdata([0, 1, 2])
    return p


def test_mode_p_without_transparency(tmp_path: Path) -> None:
    path = tmp_path / "p.png"
    _palette_image().save(path)
    assert mode_of(path) == "P"
    d = decode(path, max_pixels=MAX)
    check_decoded(d, (1, 3, 3))
    assert d.pixels.tolist() == [[[255, 0, 0], [0, 255, 0], [0, 0, 255]]]


def test_mode_p_with_transparent_index(tmp_path: Path) -> None:
    for ext in ("png", "gif"):
        path = tmp_path / f"p.{ext}"
        _palette_image().save(path, transparency=1)
        d = decode(path, max_pixels=MAX)
        check_decoded(d, (1, 3, 4))
        assert d.pixels[0, 0].tolist() == [255, 0, 0, 255]
        assert d.pixels[0, 1, 3] == 0
        assert d.pixels[0, 2].tolist() == [0, 0, 255, 255]


def test_mode_p_with_trns_palette_alpha(tmp_path: Path) -> None:
    path = tmp_path / "trns.png"
    _palette_image().save(path, transparency=bytes([255, 128, 0]))  # a tRNS chunk
    with Image.open(path) as im:
        assert im.mode == "P"
        assert im.info["transparency"] == b"\xff\x80\x00"
    d = decode(path, max_pixels=MAX)
    assert d.pixels.tolist() == [[[255, 0, 0, 255], [0, 255, 0, 128], [0, 0, 255, 0]]]


def test_mode_pa() -> None:
    pa = _palette_image().convert("PA")
    pa.putpixel((1, 0), (1, 77))
    d = decode(pa, max_pixels=MAX)
    assert d.pixels.tolist() == [[[255, 0, 0, 255], [0, 255, 0, 77], [0, 0, 255, 255]]]


def test_mode_rgb_and_rgba(tmp_path: Path, rgb: np.ndarray, rgba: np.ndarray) -> None:
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    d = decode(tmp_path / "rgb.png", max_pixels=MAX)
    check_decoded(d, rgb.shape)
    np.testing.assert_array_equal(d.pixels, rgb)
    d = decode(tmp_path / "rgba.png", max_pixels=MAX)
    check_decoded(d, rgba.shape)
    np.testing.assert_array_equal(d.pixels, rgba)


CMYK_SWATCHES = {
    (0, 0, 0, 0): (255, 255, 255),
    (255, 0, 0, 0): (0, 255, 255),
    (0, 255, 0, 0): (255, 0, 255),
    (0, 0, 255, 0): (255, 255, 0),
    (0, 0, 0, 255): (0, 0, 0),
}


def _cmyk_blocks(block: int) -> Image.Image:
    img = Image.new("CMYK", (block * len(CMYK_SWATCHES), block))
    for i, cmyk in enumerate(CMYK_SWATCHES):
        img.paste(cmyk, (i * block, 0, (i + 1) * block, block))
    return img


def test_mode_cmyk_tiff(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.tif"
    _cmyk_blocks(2).save(path)
    assert mode_of(path) == "CMYK"
    d = decode(path, max_pixels=MAX)
    check_decoded(d, (2, 10, 3))
    for i, want in enumerate(CMYK_SWATCHES.values()):
        assert d.pixels[:, 2 * i : 2 * i + 2].reshape(-1, 3).tolist() == [list(want)] * 4
    assert d.icc_profile is None


def test_mode_cmyk_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    _cmyk_blocks(16).save(path, quality=100)
    assert mode_of(path) == "CMYK"
    d = decode(path, max_pixels=MAX)
    check_decoded(d, (16, 80, 3))
    for i, want in enumerate(CMYK_SWATCHES.values()):
        centre = d.pixels[8, 16 * i + 8].astype(int)
        assert np.abs(centre - want).max() <= 4, (i, centre, want)


def test_mode_i16_png(tmp_path: Path) -> None:
    """16-bit gray PNG: 257·k → k, 65535 → 255, and round(v / 257) in between — also for a
    dark image whose values all fit in 8 bits (no guessing from the data)."""
    k = np.arange(256, dtype=np.uint16).reshape(16, 16)
    path = tmp_path / "gray16.png"
    Image.fromarray(k * 257).save(path)
    assert mode_of(path).startswith("I")
    d = decode(path, max_pixels=MAX)
    check_decoded(d, (16, 16, 3))
    np.testing.assert_array_equal(d.pixels[..., 0], k)
    np.testing.assert_array_equal(d.pixels[..., 2], k)

    dark = np.array([[0, 128, 129, 200, 255, 385, 386, 65535]], np.uint16)
    Image.fromarray(dark).save(path)
    d = decode(path, max_pixels=MAX)
    assert d.pixels[0, :, 0].tolist() == [0, 0, 1, 1, 1, 1, 2, 255]
    assert d.pixels[0, :, 0].tolist() == [int(np.floor(v / 257 + 0.5)) for v in dark[0]]

    very_dark = np.array([[0, 100, 128, 129, 200, 255]], np.uint16)  # all would fit in 8 bits
    Image.fromarray(very_dark).save(path)
    assert decode(path, max_pixels=MAX).pixels[0, :, 0].tolist() == [0, 0, 0, 1, 1, 1]


def test_mode_i16_crafted_png_big_endian(tmp_path: Path) -> None:
    vals = np.array([[0, 257, 65535, 257 * 100]], dtype=">u2")
    data = craft_png(4, 1, 16, 0, b"\0" + vals.tobytes())
    d = decode(data, max_pixels=MAX)
    assert d.pixels[0, :, 1].tolist() == [0, 1, 255, 100]


def test_mode_i32_tiff(tmp_path: Path) -> None:
    path = tmp_path / "i32.tif"
    small = np.array([[0, 100, 255, -5]], np.int32)
    Image.fromarray(small).save(path)
    assert mode_of(path) == "I"
    assert decode(path, max_pixels=MAX).pixels[0, :, 0].tolist() == [0, 100, 255, 0]
    sixteen = np.array([[0, 257, 257 * 200, 65535]], np.int32)
    Image.fromarray(sixteen).save(path)
    assert decode(path, max_pixels=MAX).pixels[0, :, 0].tolist() == [0, 1, 200, 255]
    wide = np.array([[0, 1_000_000, 2_000_000]], np.int32)
    Image.fromarray(wide).save(path)
    assert decode(path, max_pixels=MAX).pixels[0, :, 0].tolist() == [0, 128, 255]


def test_mode_f_tiff(tmp_path: Path) -> None:
    path = tmp_path / "f.tif"
    vals = np.array([[0.0, 0.25, 0.5, 1.0, 1 / 255]], np.float32)
    Image.fromarray(vals).save(path)
    assert mode_of(path) == "F"
    d = decode(path, max_pixels=MAX)
    check_decoded(d, (1, 5, 3))
    assert d.pixels[0, :, 0].tolist() == [0, 64, 128, 255, 1]


def test_rgb_16bit_png_crafted() -> None:
    """Pillow cannot write 16-bit RGB, so the file is built by hand. Pillow keeps the high
    byte of each sample: 257·k → k exactly."""
    vals = np.array(
        [[[0, 257, 65535], [257 * 10, 257 * 200, 257 * 255]], [[65535, 0, 0], [257 * 77, 65535, 257 * 3]]],
        dtype=">u2",
    )
    raw = b"".join(b"\0" + vals[r].tobytes() for r in range(2))
    d = decode(craft_png(2, 2, 16, 2, raw), max_pixels=MAX)
    check_decoded(d, (2, 2, 3))
    np.testing.assert_array_equal(d.pixels, (vals.astype(np.uint32) // 257).astype(np.uint8))


def test_rgba_16bit_png_crafted() -> None:
    vals = np.array([[[65535, 257, 0, 257 * 128], [0, 0, 0, 65535]]], dtype=">u2")
    d = decode(craft_png(2, 1, 16, 6, b"\0" + vals[0].tobytes()), max_pixels=MAX)
    check_decoded(d, (1, 2, 4))
    assert d.pixels.tolist() == [[[255, 1, 0, 128], [0, 0, 0, 255]]]


@pytest.mark.parametrize("mode", ["RGBa", "La", "RGBX", "YCbCr", "HSV", "I;16B"])
def test_other_pillow_modes(mode: str) -> None:
    img = Image.new(mode, (3, 2))
    d = decode(img, max_pixels=MAX)
    assert d.pixels.shape[:2] == (2, 3)
    assert d.pixels.shape[2] == (4 if mode in ("RGBa", "La") else 3)


def test_premultiplied_modes_are_unpremultiplied() -> None:
    la = Image.new("La", (1, 1), (50, 100))  # premultiplied: 50 of 100 alpha → 127.5 gray
    assert decode(la, max_pixels=MAX).pixels[0, 0, 3] == 100
    assert abs(int(decode(la, max_pixels=MAX).pixels[0, 0, 0]) - 128) <= 1
    rgba = Image.new("RGBa", (1, 1), (50, 25, 0, 100))
    px = decode(rgba, max_pixels=MAX).pixels[0, 0].astype(int)
    assert px[3] == 100
    assert np.abs(px[:3] - [128, 64, 0]).max() <= 1


def test_lab_tiff_has_no_false_alpha(tmp_path: Path) -> None:
    """LAB's 'A' is the a* axis, not alpha."""
    path = tmp_path / "lab.tif"
    img = Image.new("LAB", (2, 2), (200, 140, 100))
    img.save(path)
    assert mode_of(path) == "LAB"
    d = decode(path, max_pixels=MAX)
    check_decoded(d, (2, 2, 3))
    assert tuple(d.pixels[0, 0].tolist()) == img.convert("RGB").getpixel((0, 0))


# --------------------------------------------------------------------------- EXIF orientation

# The EXIF/TIFF definition of tag 0x0112 says where the stored 0th row and 0th column go on
# display. Each mapping below is derived from that wording, with S the stored array:
ORIENTATION_SPEC: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    1: lambda s: s,  # 0th row = top, 0th column = left
    2: lambda s: s[:, ::-1],  # 0th row = top, 0th column = right: mirror left-right
    3: lambda s: s[::-1, ::-1],  # 0th row = bottom, 0th column = right: rotate 180°
    4: lambda s: s[::-1, :],  # 0th row = bottom, 0th column = left: mirror top-bottom
    5: lambda s: s.transpose(1, 0, 2),  # 0th row = left, 0th column = top: D[c, r] = S[r, c]
    # 0th row = right, 0th column = top: D[c, h−1−r] = S[r, c], i.e. rotate 90° clockwise
    6: lambda s: np.stack([s[::-1, c] for c in range(s.shape[1])]),
    # 0th row = right, 0th column = bottom: D[w−1−c, h−1−r] = S[r, c] (transverse)
    7: lambda s: np.stack([s[::-1, c] for c in range(s.shape[1])])[::-1],
    # 0th row = left, 0th column = bottom: D[w−1−c, r] = S[r, c], rotate 90° counter-clockwise
    8: lambda s: np.stack([s[:, c] for c in range(s.shape[1])])[::-1],
}

BLOCK_COLOURS = np.array(
    [[[230, 20, 20], [20, 200, 20], [20, 20, 230]], [[240, 240, 20], [20, 230, 230], [120, 120, 120]]],
    np.uint8,
)


def _blocks(block: int = 10) -> np.ndarray:
    """2 rows × 3 columns of distinct colours, each a block×block square (30×20 at 10)."""
    return np.repeat(np.repeat(BLOCK_COLOURS, block, axis=0), block, axis=1)


def test_orientation_spec_table_matches_numpy_rotations() -> None:
    """The spec-derived mappings are the usual names (a check on the table itself)."""
    s = np.arange(2 * 3 * 1).reshape(2, 3, 1)
    assert np.array_equal(ORIENTATION_SPEC[6](s), np.rot90(s, -1))  # clockwise
    assert np.array_equal(ORIENTATION_SPEC[8](s), np.rot90(s, 1))  # counter-clockwise
    assert np.array_equal(ORIENTATION_SPEC[3](s), np.rot90(s, 2))
    assert np.array_equal(ORIENTATION_SPEC[5](s), np.rot90(s, 1)[::-1])
    assert np.array_equal(ORIENTATION_SPEC[7](s), np.rot90(s, -1)[::-1])


def _with_orientation(fmt: str, pixels: np.ndarray, orientation: int, **kw: object) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return save(Image.fromarray(pixels), fmt, exif=exif.tobytes(), **kw)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize(("fmt", "kw"), [("PNG", {}), ("WEBP", {"lossless": True})])
def test_exif_orientation_lossless(orientation: int, fmt: str, kw: dict[str, object]) -> None:
    stored = _blocks()
    data = _with_orientation(fmt, stored, orientation, **kw)
    d = decode(data, max_pixels=MAX)
    want = ORIENTATION_SPEC[orientation](stored)
    assert d.pixels.shape == want.shape
    np.testing.assert_array_equal(d.pixels, want)
    with Image.open(io.BytesIO(data)) as im:
        np.testing.assert_array_equal(d.pixels, np.asarray(ImageOps.exif_transpose(im).convert("RGB")))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_jpeg(tmp_path: Path, orientation: int) -> None:
    stored = _blocks()
    path = tmp_path / f"o{orientation}.jpg"
    path.write_bytes(_with_orientation("JPEG", stored, orientation, quality=95))
    d = decode(path, max_pixels=MAX)
    want = ORIENTATION_SPEC[orientation](stored)
    assert d.pixels.shape == want.shape == ((20, 30, 3) if orientation <= 4 else (30, 20, 3))
    # compare the centre of every 10×10 block (JPEG blurs block borders)
    for y in range(5, want.shape[0], 10):
        for x in range(5, want.shape[1], 10):
            assert np.abs(d.pixels[y, x].astype(int) - want[y, x]).max() <= 12, (orientation, y, x)
    with Image.open(path) as im:
        np.testing.assert_array_equal(d.pixels, np.asarray(ImageOps.exif_transpose(im)))


@pytest.mark.parametrize("orientation", [0, 9, 255])
def test_invalid_orientation_keeps_stored_pixels(orientation: int) -> None:
    stored = _blocks(2)
    d = decode(_with_orientation("PNG", stored, orientation), max_pixels=MAX)
    np.testing.assert_array_equal(d.pixels, stored)


def test_malformed_exif_is_ignored() -> None:
    stored = _blocks(2)
    data = save(Image.fromarray(stored), "PNG", exif=b"Exif\x00\x00MM\x00*\xff\xff\xff\xff garbage")
    np.testing.assert_array_equal(decode(data, max_pixels=MAX).pixels, stored)


def test_pil_image_input_gets_orientation_applied(tmp_path: Path) -> None:
    stored = _blocks()
    path = tmp_path / "o6.png"
    path.write_bytes(_with_orientation("PNG", stored, 6))
    with Image.open(path) as im:
        d = decode(im, max_pixels=MAX)
        assert im.size == (30, 20)  # the caller's image is not changed
    np.testing.assert_array_equal(d.pixels, ORIENTATION_SPEC[6](stored))
    assert d.format == "PNG"


# --------------------------------------------------------------------------- ICC


@pytest.mark.parametrize(
    ("fmt", "kw"), [("PNG", {}), ("JPEG", {"quality": 95}), ("WEBP", {"lossless": True}), ("TIFF", {})]
)
def test_rgb_icc_profile_is_kept(fmt: str, kw: dict[str, object], rgb: np.ndarray) -> None:
    data = save(Image.fromarray(rgb), fmt, icc_profile=SRGB_ICC, **kw)
    d = decode(data, max_pixels=MAX)
    assert d.icc_profile == SRGB_ICC
    if fmt != "JPEG":
        np.testing.assert_array_equal(d.pixels, rgb)  # pixels are not converted


def test_rgba_icc_profile_is_kept(rgba: np.ndarray) -> None:
    d = decode(save(Image.fromarray(rgba), "PNG", icc_profile=SRGB_ICC), max_pixels=MAX)
    assert d.icc_profile == SRGB_ICC
    np.testing.assert_array_equal(d.pixels, rgba)


def test_no_profile_means_none(rgb: np.ndarray) -> None:
    assert decode(save(Image.fromarray(rgb), "PNG"), max_pixels=MAX).icc_profile is None


def test_gray_profile_is_converted_to_srgb() -> None:
    want = round(srgb_encode(128 / 255))
    assert want == 188
    for fmt in ("PNG", "JPEG"):
        d = decode(save(Image.new("L", (4, 3), 128), fmt, icc_profile=GRAY_LINEAR_ICC), max_pixels=MAX)
        assert d.icc_profile is None
        assert np.abs(d.pixels.astype(int) - want).max() <= 1, fmt
    la = Image.new("LA", (4, 3), (128, 90))
    d = decode(save(la, "PNG", icc_profile=GRAY_LINEAR_ICC), max_pixels=MAX)
    assert d.icc_profile is None
    assert np.abs(d.pixels[..., :3].astype(int) - want).max() <= 1
    assert np.all(d.pixels[..., 3] == 90)


def test_gray_profile_on_16bit_png_is_converted() -> None:
    data = save(Image.fromarray(np.full((2, 2), 128 * 257, np.uint16)), "PNG", icc_profile=GRAY_LINEAR_ICC)
    d = decode(data, max_pixels=MAX)
    assert d.icc_profile is None
    assert np.abs(d.pixels.astype(int) - 188).max() <= 1


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_cmyk_profile_is_converted_to_srgb(fmt: str) -> None:
    img = Image.new("CMYK", (16, 8), (10, 200, 30, 0))
    img.paste((0, 0, 0, 255), (8, 0, 16, 8))
    d = decode(save(img, fmt, icc_profile=CMYK_K_ONLY_ICC), max_pixels=MAX)
    assert d.icc_profile is None
    check_decoded(d, (8, 16, 3))
    # through the profile: K=0 is white whatever C, M, Y (a naive conversion gives magenta)
    assert np.abs(d.pixels[4, 3].astype(int) - 255).max() <= 3
    assert np.abs(d.pixels[4, 12].astype(int) - 0).max() <= 3
    naive = decode(save(img, fmt), max_pixels=MAX)
    assert naive.pixels[4, 3, 1] < 100


def test_profile_for_another_colour_space_is_dropped(rgb: np.ndarray) -> None:
    d = decode(save(Image.fromarray(rgb), "PNG", icc_profile=GRAY_LINEAR_ICC), max_pixels=MAX)
    assert d.icc_profile is None
    np.testing.assert_array_equal(d.pixels, rgb)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_malformed_icc_is_ignored(fmt: str, rgb: np.ndarray, caplog: pytest.LogCaptureFixture) -> None:
    data = save(Image.fromarray(rgb), fmt, icc_profile=b"this is not an ICC profile" * 3)
    with caplog.at_level("WARNING", logger="cleancut.io.color"):
        d = decode(data, max_pixels=MAX)
    assert d.icc_profile is None
    assert "ICC" in caplog.text
    if fmt == "PNG":
        np.testing.assert_array_equal(d.pixels, rgb)
    gray = decode(save(Image.new("L", (2, 2), 77), fmt, icc_profile=b"\0" * 200), max_pixels=MAX)
    assert gray.icc_profile is None
    assert np.abs(gray.pixels.astype(int) - 77).max() <= 1


@pytest.mark.parametrize(("fmt", "kw"), [("png", {}), ("jpeg", {}), ("webp", {}), ("webp", {"quality": 1.0})])
def test_encode_embeds_icc(fmt: str, kw: dict[str, float], rgb: np.ndarray) -> None:
    data = encode(rgb, fmt, icc_profile=SRGB_ICC, **kw)  # type: ignore[arg-type]
    with Image.open(io.BytesIO(data)) as im:
        assert im.info["icc_profile"] == SRGB_ICC
    assert decode(data, max_pixels=MAX).icc_profile == SRGB_ICC
    plain = encode(rgb, fmt, **kw)  # type: ignore[arg-type]
    with Image.open(io.BytesIO(plain)) as im:
        assert not im.info.get("icc_profile")


def test_encode_does_not_attach_rgb_profile_to_gray() -> None:
    data = encode(np.full((3, 3), 9, np.uint8), "png", icc_profile=SRGB_ICC)
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "L"
        assert not im.info.get("icc_profile")


# --------------------------------------------------------------------------- input kinds


class NonSeekable:
    """A pipe-like binary stream: read() only."""

    def __init__(self, data: bytes) -> None:
        self._buf = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._buf.read(n)

    def seekable(self) -> bool:
        return False

    def seek(self, *args: object) -> int:
        raise io.UnsupportedOperation("seek")

    def tell(self) -> int:
        raise io.UnsupportedOperation("tell")


def test_input_kinds(tmp_path: Path, rgba: np.ndarray) -> None:
    data = save(Image.fromarray(rgba), "PNG")
    path = tmp_path / "in.png"
    path.write_bytes(data)
    sources: list[object] = [
        str(path),
        path,
        data,
        bytearray(data),
        memoryview(data),
        io.BytesIO(data),
        NonSeekable(data),
        rgba,
    ]
    with Image.open(path) as im:
        sources.append(im)
        for src in sources:
            d = decode(src, max_pixels=MAX)  # type: ignore[arg-type]
            check_decoded(d, rgba.shape)
            np.testing.assert_array_equal(d.pixels, rgba)
    assert decode(path, max_pixels=MAX).format == "PNG"
    assert decode(rgba, max_pixels=MAX).format is None


def test_open_binary_file_object(tmp_path: Path, rgb: np.ndarray) -> None:
    path = tmp_path / "in.png"
    Image.fromarray(rgb).save(path)
    with open(path, "rb") as f:
        np.testing.assert_array_equal(decode(f, max_pixels=MAX).pixels, rgb)
        assert not f.closed  # the caller's stream is left open
        f.seek(0)
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_stream_is_read_from_its_start_and_left_open(rgb: np.ndarray) -> None:
    """An un-rewound buffer (position at the end after saving) decodes, as with Image.open,
    and the caller's stream stays usable."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    assert buf.tell() > 0
    np.testing.assert_array_equal(decode(buf, max_pixels=MAX).pixels, rgb)
    assert not buf.closed
    np.testing.assert_array_equal(decode(buf, max_pixels=MAX).pixels, rgb)  # again


def test_text_stream_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("hello")
    with open(path) as f, pytest.raises(UnsupportedImageError, match="binary"):
        decode(f, max_pixels=MAX)  # type: ignore[arg-type]
    with pytest.raises(UnsupportedImageError):
        decode(io.StringIO("hello"), max_pixels=MAX)  # type: ignore[arg-type]


def test_unsupported_source_type() -> None:
    for bad in (12, 1.5, None, ["a.png"], {"path": "a.png"}):
        with pytest.raises(UnsupportedImageError):
            decode(bad, max_pixels=MAX)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("array", "want"),
    [
        (np.array([[0, 128, 255]], np.uint8), [0, 128, 255]),
        (np.array([[[0], [128], [255]]], np.uint8), [0, 128, 255]),
        (np.array([[0, 200, 257, 65535]], np.uint16), [0, 1, 1, 255]),
        (np.array([[0, 100, 200, 255]], np.uint16), [0, 0, 1, 1]),  # dark 16-bit stays dark
        (np.array([[0.0, 0.5, 1.0, 1 / 255, 0.998]], np.float32), [0, 128, 255, 1, 254]),
        (np.array([[0.0, 0.5, 1.0]], np.float64), [0, 128, 255]),
        (np.array([[0.0, 127.6, 255.0, 300.0]], np.float32), [0, 128, 255, 255]),  # 0..255 floats
        (np.array([[False, True]]), [0, 255]),
        (np.array([[0, 100, 255]]), [0, 100, 255]),  # an int64 literal
        # NaN/inf and negative signed samples are refused (issue 24): see the tests below
    ],
)
def test_numpy_gray_inputs(array: np.ndarray, want: list[int]) -> None:
    d = decode(array, max_pixels=MAX)
    check_decoded(d, (1, len(want), 3))
    for c in range(3):
        assert d.pixels[0, :, c].tolist() == want


def test_numpy_color_inputs(rgb: np.ndarray, rgba: np.ndarray) -> None:
    np.testing.assert_array_equal(decode(rgb, max_pixels=MAX).pixels, rgb)
    np.testing.assert_array_equal(decode(rgba, max_pixels=MAX).pixels, rgba)
    np.testing.assert_array_equal(decode(rgb.astype(np.uint16) * 257, max_pixels=MAX).pixels, rgb)
    np.testing.assert_array_equal(decode(rgba.astype(np.float32) / 255, max_pixels=MAX).pixels, rgba)
    np.testing.assert_array_equal(decode(rgb[:, ::-1], max_pixels=MAX).pixels, rgb[:, ::-1])  # a view
    mask = rgb[..., 0] > 128
    d = decode(mask, max_pixels=MAX)
    np.testing.assert_array_equal(d.pixels[..., 1], np.where(mask, 255, 0))


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((4,), np.uint8),
        np.zeros((2, 2, 2), np.uint8),
        np.zeros((2, 2, 5), np.uint8),
        np.zeros((2, 2, 3, 1), np.uint8),
        np.zeros((2, 2), np.complex64),
        np.array([["a", "b"]]),
        np.array([[object(), object()]]),
        np.zeros((2, 2), "datetime64[s]"),
    ],
)
def test_numpy_unsupported(array: np.ndarray) -> None:
    with pytest.raises(UnsupportedImageError):
        decode(array, max_pixels=MAX)


@pytest.mark.parametrize("shape", [(0, 5), (5, 0, 3), (0, 0, 4)])
def test_numpy_zero_size(shape: tuple[int, ...]) -> None:
    with pytest.raises(UnreadableImageError):
        decode(np.zeros(shape, np.uint8), max_pixels=MAX)


def test_numpy_over_the_limit() -> None:
    with pytest.raises(ImageTooLargeError):
        decode(np.zeros((10, 10), np.uint8), max_pixels=99)
    assert decode(np.zeros((10, 10), np.uint8), max_pixels=100).pixels.shape == (10, 10, 3)


# --------------------------------------------------------------------------- animations


def _two_frames(fmt: str, **kw: object) -> bytes:
    frames = [Image.new("RGB", (8, 6), (255, 0, 0)), Image.new("RGB", (8, 6), (0, 0, 255))]
    return save(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, **kw)


@pytest.mark.parametrize(("fmt", "kw"), [("GIF", {}), ("WEBP", {"lossless": True}), ("PNG", {})])
def test_first_frame_of_animations(tmp_path: Path, fmt: str, kw: dict[str, object]) -> None:
    data = _two_frames(fmt, **kw)
    with Image.open(io.BytesIO(data)) as im:
        assert getattr(im, "n_frames", 1) == 2  # really animated
        im.seek(1)
        assert im.convert("RGB").getpixel((0, 0)) == (0, 0, 255)
    path = tmp_path / f"anim.{fmt.lower()}"
    path.write_bytes(data)
    for src in (data, path):
        d = decode(src, max_pixels=MAX)
        assert d.pixels.shape[:2] == (6, 8)
        assert np.all(d.pixels[..., :3] == [255, 0, 0])
        if d.has_alpha:
            assert np.all(d.pixels[..., 3] == 255)


# --------------------------------------------------------------------------- bad input


def test_zero_bytes(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    for src in (b"", bytearray(), memoryview(b""), empty, str(empty), io.BytesIO(), NonSeekable(b"")):
        with pytest.raises(UnreadableImageError, match="empty"):
            decode(src, max_pixels=MAX)  # type: ignore[arg-type]


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n" * 20)
    with pytest.raises(UnreadableImageError, match="not an image"):
        decode(path, max_pixels=MAX)


def test_random_bytes() -> None:
    data = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    with pytest.raises(UnreadableImageError):
        decode(data, max_pixels=MAX)


def _noise_jpeg() -> bytes:
    px = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    return save(Image.fromarray(px), "JPEG", quality=90)


def test_truncated_jpeg(tmp_path: Path) -> None:
    data = _noise_jpeg()
    half = data[: len(data) // 2]
    with pytest.raises(TruncatedImageError, match="truncated"):
        decode(half, max_pixels=MAX)
    path = tmp_path / "half.jpg"
    path.write_bytes(half)
    with pytest.raises(TruncatedImageError):
        decode(path, max_pixels=MAX)
    assert decode(data, max_pixels=MAX).pixels.shape == (64, 64, 3)  # the whole file is fine


def test_truncated_png(rgb: np.ndarray) -> None:
    px = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = save(Image.fromarray(px), "PNG")
    with pytest.raises(TruncatedImageError):
        decode(data[: len(data) // 2], max_pixels=MAX)
    # cut inside the header: cannot even be identified, but says what it looks like
    with pytest.raises(UnreadableImageError, match="PNG"):
        decode(data[:40], max_pixels=MAX)


def test_png_header_claiming_30000_squared_is_refused_without_decoding() -> None:
    """900 M pixels in a 60-byte file. No IDAT at all: reaching the decoder would give a
    TruncatedImageError, so ImageTooLargeError proves the size check came first."""
    bomb = craft_png(30000, 30000, 8, 2, None)
    assert len(bomb) < 100
    for max_pixels in (100_000_000, 800_000_000):  # below and above Pillow's own guard
        t0 = time.perf_counter()
        with pytest.raises(ImageTooLargeError):
            decode(bomb, max_pixels=max_pixels)
        assert time.perf_counter() - t0 < 2.0
    with pytest.raises(ImageTooLargeError, match="max_pixels"):
        decode(craft_png(12000, 12000, 8, 0, None), max_pixels=100_000_000)


def test_max_pixels_is_exact_both_ways() -> None:
    data = save(Image.new("RGB", (25, 4), (1, 2, 3)), "PNG")
    assert decode(data, max_pixels=100).pixels.shape == (4, 25, 3)
    with pytest.raises(ImageTooLargeError):
        decode(data, max_pixels=99)
    with pytest.raises(ImageTooLargeError):
        decode(Image.new("RGB", (25, 4)), max_pixels=99)


def test_max_pixels_above_pillows_guard_and_pillow_left_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pillow's own bomb guard (here lowered to 1000 px) must not refuse what max_pixels
    allows, and the caller's Pillow setting is the same afterwards."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    data = save(Image.new("L", (100, 30), 7), "PNG")  # 3000 px > 2 × 1000: Pillow would refuse
    d = decode(data, max_pixels=5000)
    assert d.pixels.shape == (30, 100, 3)
    assert Image.MAX_IMAGE_PIXELS == 1000
    with pytest.raises(ImageTooLargeError):
        decode(data, max_pixels=2999)
    assert Image.MAX_IMAGE_PIXELS == 1000
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # guard switched off by the caller
    assert decode(data, max_pixels=5000).pixels.shape == (30, 100, 3)
    assert Image.MAX_IMAGE_PIXELS is None


def test_pillow_limit_restored_after_concurrent_decodes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    data = save(Image.new("L", (100, 30), 7), "PNG")
    errors: list[BaseException] = []

    def work(limit: int) -> None:
        try:
            for _ in range(20):
                assert decode(data, max_pixels=limit).pixels.shape == (30, 100, 3)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(3000 + 500 * i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert Image.MAX_IMAGE_PIXELS == 1000


def test_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jpg"
    for src in (missing, str(missing), tmp_path / "no" / "dir" / "x.png", tmp_path / "file.png" / "sub"):
        with pytest.raises(InputNotFoundError) as info:
            decode(src, max_pixels=MAX)
        assert isinstance(info.value, FileNotFoundError)


def test_unusable_path_strings(tmp_path: Path) -> None:
    for src in ("a" * 5000, "bad\0name.png", str(tmp_path / ("x" * 300))):
        with pytest.raises(InputNotFoundError):
            decode(src, max_pixels=MAX)


def test_directory_path(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError, match="not a file"):
        decode(tmp_path, max_pixels=MAX)


HEIC_HEAD = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"


@pytest.mark.parametrize("brand", [b"heic", b"heix", b"mif1"])
def test_heic_without_the_extra(tmp_path: Path, brand: bytes) -> None:
    try:
        import pillow_heif  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("pillow-heif is installed: HEIC is readable")
    data = HEIC_HEAD.replace(b"ftypheic", b"ftyp" + brand) + bytes(200)
    path = tmp_path / "photo.heic"
    path.write_bytes(data)
    for src in (data, path, io.BytesIO(data), NonSeekable(data)):
        with pytest.raises(UnsupportedImageError, match=r"cleancut\[heif\]"):
            decode(src, max_pixels=MAX)  # type: ignore[arg-type]


def test_damaged_avif_is_unreadable_not_a_missing_plugin() -> None:
    from PIL import features

    if not features.check("avif"):
        pytest.skip("this Pillow cannot read AVIF")
    data = b"\x00\x00\x00\x18ftypavif\x00\x00\x00\x00mif1avif" + bytes(200)
    with pytest.raises(UnreadableImageError) as info:
        decode(data, max_pixels=MAX)
    assert not isinstance(info.value, UnsupportedImageError)


# --------------------------------------------------------------------------- encode


def _open(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im)


def test_png_round_trip_is_exact(rgb: np.ndarray, rgba: np.ndarray) -> None:
    gray = rgb[..., 0].copy()
    for px in (rgb, rgba, gray):
        for level in (0, 1, 9):
            data = encode(px, "png", png_compress_level=level)
            assert data.startswith(b"\x89PNG")
            np.testing.assert_array_equal(_open(data), px)
    np.testing.assert_array_equal(decode(encode(rgba, "png"), max_pixels=MAX).pixels, rgba)
    np.testing.assert_array_equal(_open(encode(gray[:, :, None], "png")), gray)  # [H, W, 1]


def test_webp_lossless_round_trip_is_exact_including_alpha(rgba: np.ndarray) -> None:
    data = encode(rgba, "webp", quality=1.0)
    assert data[:4] == b"RIFF"
    assert data[8:12] == b"WEBP"
    np.testing.assert_array_equal(_open(data), rgba)  # colour under alpha 0 too (exact)
    np.testing.assert_array_equal(decode(data, max_pixels=MAX).pixels, rgba)


def test_webp_lossy_is_close_and_keeps_alpha() -> None:
    smooth = np.zeros((32, 32, 4), np.uint8)
    smooth[..., 0] = np.arange(32)[:, None] * 8
    smooth[..., 1] = np.arange(32)[None, :] * 8
    smooth[..., 2] = 100
    smooth[..., 3] = 255
    smooth[:16, :16, 3] = 200
    smooth[16:, 16:, 3] = np.arange(16)[None, :] * 17
    out = _open(encode(smooth, "webp", quality=0.9))
    np.testing.assert_array_equal(out[..., 3], smooth[..., 3])  # alpha_quality=100: lossless alpha
    opaque = smooth[..., 3] > 0
    assert np.abs(out[..., :3].astype(int) - smooth[..., :3])[opaque].mean() < 6
    noise = np.random.default_rng(4).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert len(encode(noise, "webp", quality=0.1)) < len(encode(noise, "webp", quality=0.95))


def test_jpeg_round_trip_is_close() -> None:
    smooth = np.zeros((32, 48, 3), np.uint8)
    smooth[..., 0] = np.arange(32)[:, None] * 8
    smooth[..., 1] = np.arange(48)[None, :] * 5
    smooth[..., 2] = 90
    data = encode(smooth, "jpeg", quality=0.95)
    assert data[:3] == b"\xff\xd8\xff"
    out = _open(data)
    assert out.shape == smooth.shape
    assert np.abs(out.astype(int) - smooth).mean() < 3
    gray = encode(smooth[..., 0].copy(), "jpeg")
    assert _open(gray).ndim == 2


def test_raw_formats() -> None:
    rgba = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    rgb = rgba[..., :3].copy()
    gray = rgba[..., 0].copy()
    assert encode(rgba, "rgba8") == rgba.tobytes()
    out = np.frombuffer(encode(rgb, "rgba8"), np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(out[..., :3], rgb)
    assert np.all(out[..., 3] == 255)
    out = np.frombuffer(encode(gray, "rgba8"), np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(out[..., :3], np.repeat(gray[:, :, None], 3, axis=2))
    assert np.all(out[..., 3] == 255)
    assert encode(rgba, "alpha8") == rgba[..., 3].tobytes()
    assert encode(gray, "alpha8") == gray.tobytes()
    assert encode(rgba[:, ::-1], "rgba8") == np.ascontiguousarray(rgba[:, ::-1]).tobytes()
    with pytest.raises(InvalidOptionError):
        encode(rgb, "alpha8")


def test_encode_accepts_format_aliases(rgb: np.ndarray) -> None:
    assert encode(rgb, "jpg")[:3] == b"\xff\xd8\xff"  # type: ignore[arg-type]
    assert encode(rgb, "image/png")[:4] == b"\x89PNG"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "pixels",
    [
        np.zeros((4, 4), np.float32),
        np.zeros((4, 4, 3), np.uint16),
        np.zeros((4,), np.uint8),
        np.zeros((4, 4, 2), np.uint8),
        np.zeros((4, 4, 5), np.uint8),
        np.zeros((0, 4, 3), np.uint8),
        np.zeros((2, 2, 2, 2), np.uint8),
    ],
)
def test_encode_rejects_bad_pixels(pixels: np.ndarray) -> None:
    for fmt in FORMATS:
        with pytest.raises(InvalidOptionError):
            encode(pixels, fmt)


@pytest.mark.parametrize("quality", [-0.01, 1.01, 80, float("nan"), float("inf")])
def test_quality_out_of_range(quality: float, rgb: np.ndarray) -> None:
    for fmt in FORMATS:
        with pytest.raises(InvalidOptionError, match="quality"):
            encode(rgb, fmt, quality=quality)


def test_quality_ends_are_valid(rgb: np.ndarray) -> None:
    for q in (0.0, 1.0):
        assert encode(rgb, "jpeg", quality=q)
        assert encode(rgb, "webp", quality=q)


def test_png_compress_level_range(rgb: np.ndarray) -> None:
    for level in (-1, 10):
        with pytest.raises(InvalidOptionError):
            encode(rgb, "png", png_compress_level=level)


def test_rgba_to_jpeg_is_refused(rgba: np.ndarray) -> None:
    with pytest.raises(InvalidOptionError, match="flatten"):
        encode(rgba, "jpeg")


def test_sizes_over_the_container_limits_are_refused() -> None:
    with pytest.raises(InvalidOptionError, match="16383"):
        encode(np.zeros((1, 16384, 3), np.uint8), "webp")
    assert encode(np.zeros((1, 16383, 3), np.uint8), "webp", quality=1.0)
    with pytest.raises(InvalidOptionError, match="65500"):
        encode(np.zeros((65501, 1), np.uint8), "jpeg")


def test_mime_type() -> None:
    assert mime_type("png") == "image/png"
    assert mime_type("webp") == "image/webp"
    assert mime_type("jpeg") == "image/jpeg"
    assert mime_type("rgba8") == "image/x-rgba8"
    assert mime_type("rgba8", 640, 480) == "image/x-rgba8;width=640;height=480"
    assert mime_type("alpha8", 3, 2) == "image/x-alpha8;width=3;height=2"
    assert mime_type("png", 640, 480) == "image/png"
    for fmt in FORMATS:
        assert normalize_format(mime_type(fmt, 5, 7)) == fmt


@pytest.mark.parametrize(
    ("name", "want"),
    [
        ("png", "png"),
        ("PNG", "png"),
        (".png", "png"),
        (" image/png ", "png"),
        ("jpg", "jpeg"),
        ("JPEG", "jpeg"),
        ("image/jpeg", "jpeg"),
        ("webp", "webp"),
        ("image/webp", "webp"),
        ("rgba8", "rgba8"),
        ("x-rgba8", "rgba8"),
        ("image/x-rgba8;width=1", "rgba8"),
        ("image/x-rgba8; width=1; height=2", "rgba8"),
        ("alpha8", "alpha8"),
        ("image/x-alpha8", "alpha8"),
    ],
)
def test_normalize_format(name: str, want: str) -> None:
    assert normalize_format(name) == want


@pytest.mark.parametrize("name", ["", "gif", "image/gif", "tiff", "jpgg", "png8", ";png", "image/"])
def test_normalize_format_rejects(name: str) -> None:
    with pytest.raises(InvalidOptionError, match="format"):
        normalize_format(name)


def test_format_from_path_and_extension_for() -> None:
    assert format_from_path("a/b/cut.PNG") == "png"
    assert format_from_path(Path("x.jpeg")) == "jpeg"
    assert format_from_path("x.jpg") == "jpeg"
    assert format_from_path("x.webp") == "webp"
    assert format_from_path("x.rgba") == "rgba8"
    assert format_from_path("x.alpha") == "alpha8"
    for unknown in ("x.gif", "x", "x.tar.gz", ".png.bak", "png"):
        assert format_from_path(unknown) is None
    assert extension_for("jpeg") == ".jpg"
    for fmt in FORMATS:
        ext = extension_for(fmt)
        assert ext.startswith(".")
        assert format_from_path(f"out{ext}") == fmt


# --------------------------------------------------------------------------- write_atomic


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith("tmp"))


def test_write_atomic_writes_and_creates_parents(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.png"
    assert write_atomic(target, b"data") == target
    assert target.read_bytes() == b"data"
    assert _leftovers(target.parent) == []
    assert write_atomic(str(tmp_path / "s.bin"), b"") == tmp_path / "s.bin"
    assert (tmp_path / "s.bin").read_bytes() == b""


def test_write_atomic_refuses_existing_target(tmp_path: Path) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    with pytest.raises(OutputExistsError) as info:
        write_atomic(target, b"new")
    assert isinstance(info.value, FileExistsError)
    assert target.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_write_atomic_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    write_atomic(target, b"new", overwrite=True)
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_write_atomic_failure_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    target = tmp_path / "out.png"
    with pytest.raises(OutputWriteError, match="no space left"):
        write_atomic(target, b"x" * 1000)
    assert list(tmp_path.iterdir()) == []
    target.write_bytes(b"old")
    with pytest.raises(OutputWriteError, match="no space left"):
        write_atomic(target, b"new", overwrite=True)
    assert target.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def _refuses_writes(folder: Path) -> bool:
    probe = folder / ".probe"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError:
        return True
    os.close(fd)
    probe.unlink()
    return False


def _cmd(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=30, check=False)


def _failed(r: subprocess.CompletedProcess[str]) -> str | None:
    return None if r.returncode == 0 else (r.stderr.strip() or f"exit {r.returncode}")


@contextlib.contextmanager
def read_only_folder(folder: Path) -> Iterator[str]:
    """Make ``folder`` refuse new files for this process, root included, and say how: mode
    0500 (root ignores modes), else a read-only bind mount of the folder on itself (needs
    CAP_SYS_ADMIN), else the immutable attribute (``chattr +i``: CAP_LINUX_IMMUTABLE and a
    file system that has it). Each is checked to really refuse a write; where none does, the
    test is skipped with every reason."""

    def chmod() -> str | None:
        folder.chmod(0o500)
        return None

    def bind_ro() -> str | None:
        if not shutil.which("mount"):
            return "no mount command"
        error = _failed(_cmd("mount", "--bind", folder, folder))
        if error is None:
            error = _failed(_cmd("mount", "-o", "remount,bind,ro", folder))
            if error is not None:
                _cmd("umount", "-l", folder)
        return error

    def immutable() -> str | None:
        return _failed(_cmd("chattr", "+i", folder)) if shutil.which("chattr") else "no chattr command"

    mechanisms: list[tuple[str, Callable[[], str | None], Callable[[], object]]] = [
        ("mode 0500", chmod, lambda: folder.chmod(0o700)),
        ("a read-only bind mount", bind_ro, lambda: _cmd("umount", "-l", folder)),
        ("chattr +i", immutable, lambda: _cmd("chattr", "-i", folder)),
    ]
    reasons: list[str] = []
    for how, apply, undo in mechanisms:
        error = apply()
        if error is None and _refuses_writes(folder):
            try:
                yield how
            finally:
                undo()
            return
        if error is None:
            undo()
            error = "writes still go through" + (" (root ignores modes)" if how == "mode 0500" else "")
        reasons.append(f"{how}: {error}")
    pytest.skip("cannot make a folder refuse writes here: " + "; ".join(reasons))


def test_write_atomic_read_only_folder(tmp_path: Path) -> None:
    """A folder that refuses writes (for root too, as in CI): one clear OutputWriteError,
    nothing left behind, and the folder writable again afterwards."""
    folder = tmp_path / "ro"
    folder.mkdir()
    with read_only_folder(folder) as how:
        with pytest.raises(OutputWriteError, match="no permission") as info:
            write_atomic(folder / "out.png", b"x")
        assert "choose another -o folder" in str(info.value), how
        assert list(folder.iterdir()) == []
        with pytest.raises(OutputWriteError, match="no permission"):  # over an existing name too
            write_atomic(folder / "out.png", b"x", overwrite=True)
    assert list(folder.iterdir()) == []
    write_atomic(folder / "out.png", b"x")  # writable again: the mechanism was undone


def test_write_atomic_target_appearing_meanwhile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file created between the existence check and the publish is not replaced."""
    target = tmp_path / "out.png"
    real_fsync = os.fsync

    def fsync_then_race(fd: int) -> None:
        real_fsync(fd)
        target.write_bytes(b"someone else")

    monkeypatch.setattr(os, "fsync", fsync_then_race)
    with pytest.raises(OutputExistsError):
        write_atomic(target, b"mine")
    assert target.read_bytes() == b"someone else"
    assert _leftovers(tmp_path) == []


# --------------------------------------------------------------------------- fuzzing


def _seeds() -> list[bytes]:
    rng = np.random.default_rng(3)
    px = rng.integers(0, 256, (8, 8, 4), dtype=np.uint8)
    img = Image.fromarray(px)
    exif = Image.Exif()
    exif[0x0112] = 6
    return [
        save(img, "PNG"),
        save(img.convert("RGB"), "JPEG", quality=80, exif=exif.tobytes()),
        save(img.convert("P"), "GIF"),
        save(img, "WEBP", lossless=True),
        save(img, "TIFF"),
        save(img.convert("RGB"), "BMP"),
        save(img.convert("L"), "PNG", icc_profile=GRAY_LINEAR_ICC),
        _two_frames("PNG"),
    ]


SEEDS = _seeds()


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 6))):
        pos = draw(st.integers(0, len(data) - 1))
        data[pos] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(st.binary(max_size=512), mutated_images()))
def test_decode_never_raises_anything_but_cleancut_errors(data: bytes) -> None:
    try:
        d = decode(data, max_pixels=1 << 16)
    except CleancutError:
        return
    assert isinstance(d, DecodedImage)
    assert d.pixels.dtype == np.uint8
    assert d.pixels.ndim == 3
    assert d.pixels.shape[2] in (3, 4)
    assert d.pixels.flags.c_contiguous
    assert d.height * d.width <= 1 << 16
    assert d.icc_profile is None or isinstance(d.icc_profile, bytes)


def test_seeds_decode() -> None:
    for data in SEEDS:
        assert decode(data, max_pixels=MAX).pixels.shape[:2] in ((8, 8), (6, 8))


def test_codecs_module_exports() -> None:
    for name in image_io.__all__:
        assert hasattr(image_io, name), name


# --------------------------------------------------------------------------- plain JPEG fast path


def _photo_like(h: int, w: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // max(1, w - 1), yy * 255 // max(1, h - 1), (xx + yy) % 256], axis=2)
    noise = rng.integers(-20, 21, (h, w, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


@pytest.fixture
def imdecode_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts OpenCV JPEG decodes (the fast path) while the test runs."""
    import cv2

    calls: list[int] = []
    real = cv2.imdecode

    def spy(buf: np.ndarray, flags: int) -> np.ndarray | None:
        calls.append(flags)
        return real(buf, flags)

    monkeypatch.setattr(cv2, "imdecode", spy)
    return calls


def _srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.mark.parametrize(
    "kw",
    [
        {"quality": 90},
        {"quality": 95, "subsampling": 0},  # 4:4:4
        {"quality": 75, "subsampling": 1},  # 4:2:2
        {"quality": 85, "progressive": True},
        {"quality": 80, "optimize": True, "icc_profile": "srgb"},
        {"quality": 90, "exif": "orientation-1"},
    ],
    ids=["420", "444", "422", "progressive", "optimized+icc", "exif-upright"],
)
def test_plain_jpeg_is_decoded_by_opencv_bit_for_bit_like_pillow(
    tmp_path: Path, imdecode_calls: list[int], kw: dict[str, object]
) -> None:
    """Upright RGB JPEGs (files and bytes) go through OpenCV's decoder: the same pixels as
    Pillow's, the ICC profile kept, odd sizes included."""
    opts = dict(kw)
    if opts.get("icc_profile") == "srgb":
        opts["icc_profile"] = _srgb_icc()
    if opts.get("exif") == "orientation-1":
        exif = Image.Exif()
        exif[0x0112] = 1
        opts["exif"] = exif.tobytes()
    data = save(_photo_like(173, 259, seed=len(kw)), "JPEG", **opts)
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    want = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    for source in (path, data, str(path)):
        got = decode(source, max_pixels=MAX)
        np.testing.assert_array_equal(got.pixels, want)
        assert got.pixels.flags.c_contiguous and got.format == "JPEG"
        assert got.icc_profile == opts.get("icc_profile")
    assert len(imdecode_calls) == 3
    for bundled in sorted(Path(__file__).resolve().parents[1].joinpath("examples").glob("*.jpg")):
        np.testing.assert_array_equal(
            decode(bundled, max_pixels=MAX).pixels, np.asarray(Image.open(bundled).convert("RGB"))
        )


def test_jpegs_outside_the_plain_case_are_decoded_by_pillow(
    tmp_path: Path, imdecode_calls: list[int]
) -> None:
    """Rotated by EXIF, trailing bytes after the end marker, gray, CMYK, a caller's stream,
    over the pixel limit, truncated: Pillow's path, with its results and its errors."""
    img = _photo_like(60, 90, seed=3)
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = save(img, "JPEG", quality=90, exif=exif.tobytes())
    got = decode(rotated, max_pixels=MAX)
    np.testing.assert_array_equal(
        got.pixels, np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(rotated))).convert("RGB"))
    )
    assert got.pixels.shape == (90, 60, 3)

    plain = save(img, "JPEG", quality=90)
    trailing = plain + b"\x00" * 7
    np.testing.assert_array_equal(
        decode(trailing, max_pixels=MAX).pixels, decode(plain, max_pixels=MAX).pixels
    )
    gray = decode(save(img.convert("L"), "JPEG"), max_pixels=MAX)
    assert gray.pixels.shape == (60, 90, 3)
    cmyk = decode(save(img.convert("CMYK"), "JPEG"), max_pixels=MAX)
    assert cmyk.pixels.shape == (60, 90, 3)
    path = tmp_path / "p.jpg"
    path.write_bytes(plain)
    with open(path, "rb") as stream:
        np.testing.assert_array_equal(decode(stream, max_pixels=MAX).pixels, np.asarray(Image.open(path)))
    with pytest.raises(ImageTooLargeError):
        decode(plain, max_pixels=60 * 90 - 1)
    with pytest.raises(TruncatedImageError):
        decode(plain[: len(plain) * 2 // 3], max_pixels=MAX)
    assert len(imdecode_calls) == 1  # only the plain bytes decoded above took the fast path


def test_a_jpeg_opencv_refuses_falls_back_to_pillow(monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2

    monkeypatch.setattr(cv2, "imdecode", lambda buf, flags: None)
    img = _photo_like(40, 50, seed=4)
    data = save(img, "JPEG", quality=90)
    np.testing.assert_array_equal(
        decode(data, max_pixels=MAX).pixels, np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    )


# --------------------------------------------------------------------------- issue 12


@pytest.mark.parametrize("max_pixels", [1000, 100_000_000, 800_000_000])
def test_too_large_quotes_the_configured_limit_and_how_to_raise_it(max_pixels: int) -> None:
    """900 M pixels: whichever guard refuses it (Pillow's own, kept at its default below
    89 M, raised to ``max_pixels`` above), the message quotes the configured limit and names
    --max-pixels, never Pillow's 178956970 or 200000000."""
    with pytest.raises(ImageTooLargeError) as info:
        decode(craft_png(30000, 30000, 8, 2, None), max_pixels=max_pixels)
    message = str(info.value)
    assert f"over the limit of {max_pixels:,}" in message, message
    assert "900,000,000 pixels" in message, message
    assert "--max-pixels" in message and "CLEANCUT_MAX_PIXELS" in message
    assert "178956970" not in message and "200000000" not in message and "DOS" not in message


def test_closed_file_object_is_an_image_error(tmp_path: Path, rgb: np.ndarray) -> None:
    path = tmp_path / "a.png"
    Image.fromarray(rgb).save(path)
    with open(path, "rb") as f:
        pass
    buf = io.BytesIO(path.read_bytes())
    buf.close()
    for stream in (f, buf):
        with pytest.raises(UnreadableImageError, match="closed") as info:
            decode(stream, max_pixels=MAX)
        assert isinstance(info.value, ValueError)
        assert "open" in str(info.value)  # says what to pass instead


# --------------------------------------------------------------------------- issue 24, item 17


@pytest.mark.parametrize("url", ["https://example.com/photo.jpg", "http://h/x.png", "s3://bucket/a.jpg"])
def test_a_url_string_says_it_is_a_url_and_how_to_fetch_it(url: str) -> None:
    """``Path`` folds ``//``: the message quotes the URL as given and says what to do."""
    with pytest.raises(InputNotFoundError) as info:
        decode(url, max_pixels=MAX)
    message = str(info.value)
    assert repr(url) in message and "is a URL" in message, message
    assert "download it first" in message and "url=" in message, message


def test_a_file_named_like_a_url_is_still_read(
    tmp_path: Path, rgb: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a missing path gets the URL message: ``http://x.png`` is the file x.png in ./http:."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "http:").mkdir()
    Image.fromarray(rgb).save(tmp_path / "http:" / "x.png")
    assert decode("http://x.png", max_pixels=MAX).pixels.shape == rgb.shape


@pytest.mark.parametrize("src", ["", "   "])
def test_an_empty_path_string_is_named_as_such(src: str) -> None:
    with pytest.raises(InputNotFoundError, match="the input path is empty") as info:
        decode(src, max_pixels=MAX)
    assert "not a file: ." not in str(info.value)


@pytest.mark.parametrize(
    "array",
    [
        np.full((8, 8, 3), np.nan),
        np.full((8, 8), np.inf, np.float32),
        np.full((8, 8, 4), -np.inf, np.float16),
        np.where(np.eye(8, dtype=bool)[:, :, None], np.nan, 0.5).repeat(3, axis=2),  # a few NaN
    ],
    ids=["all-nan", "all-inf", "all-neg-inf", "some-nan"],
)
def test_non_finite_float_arrays_are_refused(array: np.ndarray) -> None:
    with pytest.raises(UnreadableImageError, match="NaN or infinite") as info:
        decode(array, max_pixels=MAX)
    assert "nan_to_num" in str(info.value)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64])
def test_signed_arrays_with_negative_values_are_refused(dtype: type[np.signedinteger]) -> None:
    a = np.full((8, 8, 3), 100, dtype)
    a[0, 0, 0] = -7
    with pytest.raises(UnreadableImageError, match=r"negative values \(down to -7\)"):
        decode(a, max_pixels=MAX)


def test_integer_array_ranges_are_read_as_documented() -> None:
    """The docstring's (and README's) rules: ≤255 is 8-bit, ≤65535 is 16-bit, else scaled
    by the maximum; non-negative signed arrays are fine."""

    def gray(values: list[int], dtype: type[np.integer]) -> list[int]:
        return decode(np.array([values], dtype), max_pixels=MAX).pixels[0, :, 0].tolist()

    assert gray([0, 100, 255], np.int16) == [0, 100, 255]
    assert gray([0, 257, 65535], np.int32) == [0, 1, 255]
    assert gray([0, 1_000_000, 2_000_000], np.int64) == [0, 128, 255]
    assert gray([0, 257, 514], np.uint16) == [0, 1, 2]  # uint16 is always 16-bit
