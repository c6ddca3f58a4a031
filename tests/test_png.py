"""cleancut.io.png: the multi-threaded PNG encoder writes standard, lossless PNGs."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms

from cleancut.errors import InvalidOptionError
from cleancut.io.png import PngFilter, PngStrategy, _adler32_combine, _zlib_header, encode_png

FILTERS: tuple[PngFilter, ...] = ("none", "sub", "up", "average", "paeth")
STRATEGIES: tuple[PngStrategy, ...] = ("default", "rle", "filtered", "huffman")
STRATEGY_CODES = (zlib.Z_DEFAULT_STRATEGY, zlib.Z_FILTERED, zlib.Z_HUFFMAN_ONLY, zlib.Z_RLE)
SRGB_ICC = bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())


def rng_image(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def cutout(height: int, width: int) -> np.ndarray:
    """A smooth RGBA image with runs of alpha 0 and 255, like a real cut-out."""
    yy, xx = np.mgrid[:height, :width]
    rgb = np.stack([(xx * 3) % 256, (yy * 5) % 256, (xx + yy) % 256], axis=2).astype(np.uint8)
    inside = ((yy - height / 2) / (height / 3)) ** 2 + ((xx - width / 2) / (width / 3)) ** 2
    alpha = np.clip((1.5 - inside) * 255, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.dstack([rgb, alpha]))


def pillow_decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im)


def cv2_decode(data: bytes, channels: int) -> np.ndarray:
    out = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert out is not None
    if channels == 3:
        return cv2.cvtColor(out, cv2.COLOR_BGR2RGB)
    if channels == 4:
        return cv2.cvtColor(out, cv2.COLOR_BGRA2RGBA)
    return out


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every chunk, checking each CRC on the way."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, found = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, payload = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + payload), kind
        found.append((kind, payload))
        pos += 12 + length
    assert pos == len(data)
    return found


def assert_round_trip(pixels: np.ndarray, data: bytes) -> None:
    expected = pixels[:, :, 0] if pixels.ndim == 3 and pixels.shape[2] == 1 else pixels
    channels = 1 if expected.ndim == 2 else expected.shape[2]
    np.testing.assert_array_equal(pillow_decode(data), expected)
    if channels != 2:  # OpenCV turns gray + alpha into BGRA
        np.testing.assert_array_equal(cv2_decode(data, channels), expected)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("channels", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("size", [(1, 1), (1, 37), (41, 1), (3, 7), (300, 29)])
def test_exact_round_trip(channels: int, size: tuple[int, int]) -> None:
    shape = size if channels == 0 else (*size, channels)
    pixels = rng_image(shape, seed=channels)
    assert_round_trip(pixels, encode_png(pixels))


@pytest.mark.parametrize("png_filter", FILTERS)
@pytest.mark.parametrize("channels", [0, 3, 4])
def test_every_filter_with_many_blocks(png_filter: PngFilter, channels: int) -> None:
    pixels = cutout(257, 23)
    if channels == 0:
        pixels = pixels[:, :, 3].copy()
    elif channels == 3:
        pixels = pixels[:, :, :3].copy()
    for block_rows in (1, 7, 256, 1000):
        data = encode_png(pixels, png_filter=png_filter, block_rows=block_rows, threads=2)
        assert_round_trip(pixels, data)


def test_random_noise_every_filter_and_level() -> None:
    pixels = rng_image((67, 13, 4), seed=3)
    for png_filter in FILTERS:
        for level in (0, 1, 3, 9):
            for strategy in STRATEGIES:
                data = encode_png(
                    pixels,
                    level=level,
                    png_filter=png_filter,
                    strategy=strategy,
                    block_rows=10,
                )
                np.testing.assert_array_equal(pillow_decode(data), pixels)


def test_chunk_layout_and_one_zlib_stream() -> None:
    pixels = cutout(200, 50)
    data = encode_png(pixels, icc_profile=SRGB_ICC, block_rows=9, threads=2)
    found = chunks(data)
    kinds = [k for k, _ in found]
    assert kinds[:2] == [b"IHDR", b"iCCP"]
    assert kinds[-1] == b"IEND" and found[-1][1] == b""
    assert set(kinds[2:-1]) == {b"IDAT"}
    assert found[0][1] == struct.pack(">IIBBBBB", 50, 200, 8, 6, 0, 0, 0)
    stream = b"".join(p for k, p in found if k == b"IDAT")
    # One standard zlib stream (header and Adler-32 checked by zlib) of filtered rows.
    raw = zlib.decompress(stream)
    assert len(raw) == 200 * (1 + 50 * 4)
    assert all(raw[i * 201] == 2 for i in range(200))  # the Up filter on every row


def test_large_image_splits_into_several_idat_chunks() -> None:
    pixels = rng_image((600, 600, 4), seed=5)  # 1.4 MB of noise: more than one 1 MiB IDAT
    data = encode_png(pixels, level=0)
    assert sum(k == b"IDAT" for k, _ in chunks(data)) >= 2
    assert_round_trip(pixels, data)


def test_non_contiguous_input() -> None:
    base = cutout(90, 70)
    for view in (base[::2, ::3], base[:, :, :3], base[:, ::-1], base.transpose(1, 0, 2), base[..., 3:]):
        assert not view.flags.c_contiguous or view.shape[2] == 1
        assert_round_trip(view, encode_png(view, block_rows=4, threads=2))


def test_threads_do_not_change_the_bytes() -> None:
    pixels = cutout(301, 40)
    one = encode_png(pixels, threads=1, block_rows=16)
    two = encode_png(pixels, threads=2, block_rows=16)
    four = encode_png(pixels, threads=4, block_rows=16)
    assert one == two == four
    np.testing.assert_array_equal(pillow_decode(two), pixels)


def test_default_threads_and_block_rows() -> None:
    pixels = cutout(2100, 300)  # 2.5 MB: more than one default block
    assert_round_trip(pixels, encode_png(pixels))


def test_levels_trade_size() -> None:
    pixels = cutout(120, 120)
    sizes = [len(encode_png(pixels, level=level)) for level in (0, 1, 9)]
    assert sizes[0] > sizes[1] >= sizes[2]
    assert sizes[0] > pixels.nbytes  # level 0 stores


# --------------------------------------------------------------------------- ICC


@pytest.mark.parametrize("channels", [3, 4])
def test_icc_profile_round_trip(channels: int) -> None:
    pixels = cutout(30, 20)[:, :, :channels].copy()
    data = encode_png(pixels, icc_profile=SRGB_ICC)
    with Image.open(io.BytesIO(data)) as im:
        assert im.info["icc_profile"] == SRGB_ICC
        np.testing.assert_array_equal(np.asarray(im), pixels)
    np.testing.assert_array_equal(cv2_decode(data, channels), pixels)
    kind, payload = chunks(data)[1]
    assert kind == b"iCCP"
    assert payload.startswith(b"ICC profile\x00\x00")
    assert zlib.decompress(payload[len(b"ICC profile\x00\x00") :]) == SRGB_ICC


@pytest.mark.parametrize("icc", [None, b""])
def test_no_icc_chunk_without_a_profile(icc: bytes | None) -> None:
    data = encode_png(cutout(4, 4), icc_profile=icc)
    assert b"iCCP" not in [k for k, _ in chunks(data)]
    with Image.open(io.BytesIO(data)) as im:
        assert "icc_profile" not in im.info


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "pixels",
    [
        np.zeros((4, 4), np.uint16),
        np.zeros((4, 4, 3), np.float32),
        np.zeros((4, 4), bool),
        np.zeros((4, 4), np.int8),
        np.zeros(16, np.uint8),
        np.zeros((2, 4, 4, 3), np.uint8),
        np.zeros((4, 4, 5), np.uint8),
        np.zeros((0, 4, 3), np.uint8),
        np.zeros((4, 0), np.uint8),
        np.zeros((), np.uint8),
    ],
)
def test_bad_pixels_raise(pixels: np.ndarray) -> None:
    with pytest.raises(InvalidOptionError):
        encode_png(pixels)


def test_not_an_array_raises() -> None:
    with pytest.raises(InvalidOptionError):
        encode_png([[1, 2], [3, 4]])  # type: ignore[arg-type]


@pytest.mark.parametrize("level", [-1, 10, 1.0, True, "1", None])
def test_bad_level_raises(level: object) -> None:
    with pytest.raises(InvalidOptionError):
        encode_png(np.zeros((2, 2), np.uint8), level=level)  # type: ignore[arg-type]


def test_numpy_integer_level_is_fine() -> None:
    pixels = cutout(5, 5)
    assert encode_png(pixels, level=np.int64(3)) == encode_png(pixels, level=3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threads": 0},
        {"threads": -2},
        {"threads": 1.5},
        {"block_rows": 0},
        {"png_filter": "adaptive"},
        {"strategy": "fast"},
        {"png_filter": ["up"]},
        {"strategy": None},
        {"icc_profile": "sRGB"},
    ],
)
def test_bad_options_raise(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidOptionError):
        encode_png(np.zeros((2, 2, 3), np.uint8), **kwargs)  # type: ignore[arg-type]


def test_invalid_option_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        encode_png(np.zeros((2, 2), np.float64))


# --------------------------------------------------------------------------- internals


def test_adler32_combine_matches_zlib() -> None:
    rng = np.random.default_rng(7)
    for n1, n2 in [(0, 0), (0, 5), (5, 0), (1, 1), (65521, 3), (100_000, 70_000), (3, 200_000)]:
        a = rng.integers(0, 256, n1, dtype=np.uint8).tobytes()
        b = rng.integers(0, 256, n2, dtype=np.uint8).tobytes()
        assert _adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b)) == zlib.adler32(a + b)
    ones = b"\xff" * 300_000  # sums that wrap the modulus many times
    assert _adler32_combine(zlib.adler32(ones), zlib.adler32(ones), len(ones)) == zlib.adler32(ones * 2)


def test_zlib_header_is_what_zlib_writes() -> None:
    for level in range(10):
        for strategy in STRATEGY_CODES:
            compressor = zlib.compressobj(level, zlib.DEFLATED, 15, 8, strategy)
            header = (compressor.compress(b"x") + compressor.flush())[:2]
            assert _zlib_header(level, strategy) == header, (level, strategy)


@settings(max_examples=60, deadline=None)
@given(
    height=st.integers(1, 12),
    width=st.integers(1, 12),
    channels=st.sampled_from([0, 1, 2, 3, 4]),
    png_filter=st.sampled_from(FILTERS),
    level=st.integers(0, 9),
    block_rows=st.integers(1, 13),
    seed=st.integers(0, 2**32 - 1),
    smooth=st.booleans(),
)
def test_random_small_images(
    height: int,
    width: int,
    channels: int,
    png_filter: PngFilter,
    level: int,
    block_rows: int,
    seed: int,
    smooth: bool,
) -> None:
    shape = (height, width) if channels == 0 else (height, width, channels)
    rng = np.random.default_rng(seed)
    if smooth:  # few distinct values: long runs, as in alpha
        pixels = rng.choice(np.array([0, 1, 255], np.uint8), size=shape)
    else:
        pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    data = encode_png(pixels, level=level, png_filter=png_filter, block_rows=block_rows, threads=2)
    expected = pixels[:, :, 0] if channels == 1 else pixels
    np.testing.assert_array_equal(pillow_decode(data), expected)


def test_one_core_blocks_use_one_thread_and_write_the_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside ``parallel.one_core()`` (a folder batch's stream worker) the encoder deflates on
    the calling thread only; the bytes are the same as with the default threads."""
    import threading

    from cleancut import parallel
    from cleancut.io import png

    pixels = cutout(900, 300)
    seen: set[str] = set()
    original = png._compressor

    def spy(level: int, strategy: int) -> object:
        seen.add(threading.current_thread().name)
        return original(level, strategy)

    monkeypatch.setattr(parallel, "usable_cores", lambda: 4)
    monkeypatch.setattr(png, "_compressor", spy)
    default = encode_png(pixels, block_rows=50)
    assert any(name.startswith("cleancut-png") for name in seen)
    seen.clear()
    with parallel.one_core():
        assert parallel.inner_threads() == 1
        with parallel.one_core():  # nests
            pass
        assert parallel.inner_threads() == 1
        single = encode_png(pixels, block_rows=50)
    assert parallel.inner_threads() == 4
    assert seen == {threading.current_thread().name}
    assert single == default
