"""The pure-numpy pipeline against literal ports of IMG.LY's reference (no model needed).

The reference (``@imgly/background-removal`` 1.4.x, ``resizeBilinear``) is ported below as a
deliberately slow, per-pixel, per-channel loop in plain Python floats (IEEE doubles, as in
JavaScript), so that the vectorised, separable, row-blocked implementation is checked
against the definition rather than against itself.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cleancut import pipeline
from cleancut.errors import CleancutError, InvalidOptionError
from cleancut.pipeline import (
    OutputType,
    apply_mask,
    compose,
    flatten,
    normalize_output_type,
    parse_color,
    postprocess,
    resize_bilinear,
)
from conftest import imgly_preprocess as preprocess

# --------------------------------------------------------------------------- reference


def js_round(v: float) -> int:
    """JavaScript ``Math.round`` (ECMA-262: the closest integer, ties towards +∞) for the
    non-negative values a convex combination of 0..255 can take. Written as floor plus the
    exact fractional part, because ``floor(v + 0.5)`` itself rounds once more (it turns
    0.49999999999999994 into 1)."""
    r = math.floor(v)
    return r + 1 if v - r >= 0.5 else r


def reference_resize(src: np.ndarray, new_h: int, new_w: int) -> np.ndarray:
    """Literal port of IMG.LY's ``resizeBilinear`` loop (one output sample at a time)."""
    src_h, src_w = src.shape[:2]
    chans = 1 if src.ndim == 2 else src.shape[2]
    data = src.reshape(src_h, src_w, chans).tolist()
    out = np.zeros((new_h, new_w, chans), dtype=np.uint8)
    scale_x = src_w / new_w
    scale_y = src_h / new_h
    for y in range(new_h):
        for x in range(new_w):
            for c in range(chans):
                src_x = x * scale_x
                src_y = y * scale_y
                x1 = max(math.floor(src_x), 0)
                x2 = min(math.ceil(src_x), src_w - 1)
                y1 = max(math.floor(src_y), 0)
                y2 = min(math.ceil(src_y), src_h - 1)
                dx = src_x - x1
                dy = src_y - y1
                p1 = data[y1][x1][c]
                p2 = data[y1][x2][c]
                p3 = data[y2][x1][c]
                p4 = data[y2][x2][c]
                v = (1 - dx) * (1 - dy) * p1 + dx * (1 - dy) * p2 + (1 - dx) * dy * p3 + dx * dy * p4
                out[y, x, c] = js_round(v)
    return out.reshape((new_h, new_w, *src.shape[2:]))


def half_pixel_resize_row(row: np.ndarray, new_w: int) -> np.ndarray:
    """Bilinear on the *other* common grid (pixel centres: ``src = (x + 0.5)·s − 0.5``, as
    OpenCV / PIL use), for one row: only used to show what mixing grids does."""
    w = row.shape[0]
    pos = np.clip((np.arange(new_w) + 0.5) * (w / new_w) - 0.5, 0, w - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, w - 1)
    frac = pos - lo
    v = row[lo] * (1 - frac) + row[hi] * frac
    out: np.ndarray = np.floor(v + 0.5).astype(np.uint8)
    return out


def random_image(rng: np.random.Generator, h: int, w: int, c: int | None) -> np.ndarray:
    shape = (h, w) if c is None else (h, w, c)
    return rng.integers(0, 256, shape, dtype=np.uint8)


# --------------------------------------------------------------------------- resize_bilinear

RESIZE_CASES = [
    # (source shape, (new height, new width)), chosen to cover every situation
    ((7, 5), (13, 11)),  # up, 2-D
    ((20, 17, 3), (6, 9)),  # down, RGB
    ((9, 13, 4), (16, 7)),  # up in y, down in x, RGBA
    ((11, 7), (17, 19)),  # non-integer ratios both ways
    ((13, 29, 3), (5, 11)),  # non-integer down-scaling
    ((32, 48, 3), (16, 16)),  # integer down-scaling (2 and 3)
    ((4, 4, 3), (16, 16)),  # integer up-scaling (ratio 1/4: dyadic fractions, exact .5 ties)
    ((3, 5), (6, 10)),  # ratio 1/2: every other sample is an exact tie at .5
    ((1, 10), (4, 23)),  # 1×N source
    ((10, 1), (23, 4)),  # N×1 source
    ((1, 1, 3), (5, 7)),  # a single pixel
    ((30, 40), (1, 1)),  # down to a single pixel
    ((1, 12, 4), (1, 5)),  # 1×N to 1×M
    ((12, 1), (5, 1)),  # N×1 to M×1
    ((5, 3), (5, 8)),  # only the width changes
    ((5, 3, 3), (9, 3)),  # only the height changes
    ((6, 6, 3), (6, 6)),  # identity size
    ((6, 9, 1), (4, 4)),  # explicit single channel
]


@pytest.mark.parametrize(("shape", "size"), RESIZE_CASES)
def test_resize_matches_reference_loop(shape: tuple[int, ...], size: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape) * 31 + size[0] * 7 + size[1])
    src = rng.integers(0, 256, shape, dtype=np.uint8)
    got = resize_bilinear(src, *size)
    want = reference_resize(src, *size)
    assert got.dtype == np.uint8
    assert got.shape == want.shape == size + shape[2:]
    np.testing.assert_array_equal(got, want)


@settings(max_examples=120, deadline=None)
@given(
    src_h=st.integers(1, 12),
    src_w=st.integers(1, 12),
    dst_h=st.integers(1, 14),
    dst_w=st.integers(1, 14),
    channels=st.sampled_from([None, 1, 3, 4]),
    seed=st.integers(0, 2**32 - 1),
)
def test_resize_matches_reference_loop_random_sizes(
    src_h: int, src_w: int, dst_h: int, dst_w: int, channels: int | None, seed: int
) -> None:
    src = random_image(np.random.default_rng(seed), src_h, src_w, channels)
    np.testing.assert_array_equal(resize_bilinear(src, dst_h, dst_w), reference_resize(src, dst_h, dst_w))


def test_resize_extreme_values_and_ties() -> None:
    """Checkerboards of 0/255 at ratio 1/2 put every in-between sample exactly on .5:
    127.5 must round up (JavaScript's Math.round), never to even."""
    src = np.zeros((4, 4), np.uint8)
    src[::2, ::2] = 255
    src[1::2, 1::2] = 255
    got = resize_bilinear(src, 8, 8)
    np.testing.assert_array_equal(got, reference_resize(src, 8, 8))
    assert got[0, 1] == 128  # (255 + 0) / 2 = 127.5 → 128
    assert got[1, 1] == 128  # (255 + 0 + 0 + 255) / 4 = 127.5 → 128
    flat = np.full((3, 5, 3), 255, np.uint8)
    np.testing.assert_array_equal(resize_bilinear(flat, 17, 4), np.full((17, 4, 3), 255, np.uint8))


def test_resize_tie_rounds_like_the_reference() -> None:
    """Regression: 13 → 7 px columns give dx = 5/7 (rounded); with these four neighbours
    the reference's own expression evaluates to exactly 153.5 and Math.round gives 154. The
    earlier separable evaluation got 153.49999999999997 and returned 153."""
    src = np.zeros((9, 13), np.uint8)
    src[1, 3], src[1, 4], src[2, 3], src[2, 4] = 169, 145, 210, 147
    sx, sy = 2 * (13 / 7), 2 * (9 / 16)
    assert (math.floor(sx), math.floor(sy)) == (3, 1)
    dx, dy = sx - 3, sy - 1
    v = (1 - dx) * (1 - dy) * 169 + dx * (1 - dy) * 145 + (1 - dx) * dy * 210 + dx * dy * 147
    assert v == 153.5
    assert reference_resize(src, 16, 7)[2, 2] == 154
    assert resize_bilinear(src, 16, 7)[2, 2] == 154


@pytest.mark.parametrize("block_elements", [1, 7, 93 * 3, 93 * 5 + 50, 93 * 36])
def test_resize_row_blocks(monkeypatch: pytest.MonkeyPatch, block_elements: int) -> None:
    """The row-blocking loop must stitch blocks seamlessly, including a short last block."""
    rng = np.random.default_rng(block_elements)
    src = rng.integers(0, 256, (23, 17, 3), dtype=np.uint8)
    whole = resize_bilinear(src, 37, 31)  # one block with the default size
    monkeypatch.setattr(pipeline, "_RESIZE_BLOCK_ELEMENTS", block_elements)
    per_row = 31 * 3  # output elements per row
    rows_per_block = max(1, block_elements // per_row)
    assert math.ceil(37 / rows_per_block) >= 2  # several blocks really run
    assert rows_per_block == 1 or 37 % rows_per_block != 0  # and the last one is short
    blocked = resize_bilinear(src, 37, 31)
    np.testing.assert_array_equal(blocked, whole)
    np.testing.assert_array_equal(blocked, reference_resize(src, 37, 31))


def test_resize_identity_is_a_copy() -> None:
    src = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    out = resize_bilinear(src, 2, 4)
    np.testing.assert_array_equal(out, src)
    out[0, 0, 0] = 99
    assert src[0, 0, 0] == 0


def test_resize_accepts_non_contiguous_views() -> None:
    rng = np.random.default_rng(5)
    base = rng.integers(0, 256, (10, 12, 4), dtype=np.uint8)
    view = base[::-1, 1::2, :3]
    np.testing.assert_array_equal(
        resize_bilinear(view, 7, 9), reference_resize(np.ascontiguousarray(view), 7, 9)
    )


@pytest.mark.parametrize(
    ("src", "size"),
    [
        (np.zeros((4, 4), np.float32), (2, 2)),
        (np.zeros((4, 4), np.uint16), (2, 2)),
        (np.zeros(16, np.uint8), (2, 2)),
        (np.zeros((2, 2, 2, 2), np.uint8), (2, 2)),
        (np.zeros((4, 4), np.uint8), (0, 2)),
        (np.zeros((4, 4), np.uint8), (2, -1)),
        (np.zeros((0, 4), np.uint8), (2, 2)),
        (np.zeros((4, 0, 3), np.uint8), (2, 2)),
    ],
)
def test_resize_rejects_bad_input(src: np.ndarray, size: tuple[int, int]) -> None:
    with pytest.raises(InvalidOptionError):
        resize_bilinear(src, *size)


# --------------------------------------------------------------------------- grid offsets


def _edge_position(row: np.ndarray) -> int:
    """First column at or over half intensity."""
    return int(np.argmax(row >= 128))


def test_down_up_round_trip_keeps_a_sharp_edge_in_place() -> None:
    """A 3000 px wide photo with a sharp vertical edge, taken to 1024×1024 and back on the
    same grid: the edge stays within 1 pixel of where it was."""
    width, height, edge = 3000, 12, 1700
    img = np.zeros((height, width, 3), np.uint8)
    img[:, edge:] = 255
    down = resize_bilinear(img, 1024, 1024)
    up = resize_bilinear(down, height, width)
    assert up.shape == img.shape
    for y in range(height):
        for c in range(3):
            assert abs(_edge_position(up[y, :, c]) - edge) <= 1


def test_down_up_round_trip_within_one_pixel_for_every_edge_phase() -> None:
    """The same for every position of the edge relative to the sampling grid (one full
    period of 3000/1024 and more). Rows are independent, so one row stands for the image."""
    width = 3000
    for edge in range(1500, 1540):
        row = np.zeros((1, width), np.uint8)
        row[:, edge:] = 255
        up = resize_bilinear(resize_bilinear(row, 1, 1024), 1, width)
        assert abs(_edge_position(up[0]) - edge) <= 1, edge


def test_round_trip_has_no_systematic_offset_but_mixed_grids_do() -> None:
    """Why both directions must share a grid: with ``src = dst·s`` both ways the offsets
    cancel (mean shift ≈ 0), while down-sampling on this grid and up-sampling on the
    pixel-centre grid moves every edge right by about ``(s − 1)/2`` pixels (≈ 2.4 px at
    6000 → 1024), i.e. the mask would land beside the subject."""
    width = 6000
    scale = width / 1024
    same, mixed = [], []
    for edge in range(2000, 2000 + 48):  # > 8 periods of the sampling pattern
        row = np.zeros((1, width), np.uint8)
        row[:, edge:] = 255
        down = resize_bilinear(row, 1, 1024)
        same.append(_edge_position(resize_bilinear(down, 1, width)[0]) - edge)
        mixed.append(_edge_position(half_pixel_resize_row(down[0].astype(float), width)) - edge)
    assert abs(np.mean(same)) < 0.25
    assert max(abs(e) for e in same) <= math.ceil(scale / 2)
    assert np.mean(mixed) > (scale - 1) / 2 - 0.5
    assert min(mixed) >= 0  # always shifted the same way


# --------------------------------------------------------------------------- preprocess


def test_preprocess_shape_dtype_layout() -> None:
    rng = np.random.default_rng(1)
    px = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    x = preprocess(px)
    assert x.shape == (1, 3, 1024, 1024)
    assert x.dtype == np.float32
    assert x.flags.c_contiguous
    assert x.min() >= -0.5
    assert x.max() <= 127 / 256


@pytest.mark.parametrize(("shape", "size"), [((23, 37, 3), 16), ((40, 9, 4), 12), ((16, 16, 3), 16)])
def test_preprocess_values_match_reference(shape: tuple[int, int, int], size: int) -> None:
    rng = np.random.default_rng(size)
    px = rng.integers(0, 256, shape, dtype=np.uint8)
    x = preprocess(px, size)
    resized = reference_resize(px[:, :, :3], size, size)  # alpha ignored
    want = ((resized.astype(np.float32) - 128.0) / 256.0).transpose(2, 0, 1)[None]
    assert x.shape == (1, 3, size, size)
    np.testing.assert_array_equal(x, want)
    # (v − 128) / 256 is exact in float32: every value is a multiple of 1/256
    np.testing.assert_array_equal(x * 256.0 + 128.0, resized.transpose(2, 0, 1)[None].astype(np.float32))


def test_preprocess_channel_order_is_rgb() -> None:
    px = np.empty((3, 4, 3), np.uint8)
    px[..., 0], px[..., 1], px[..., 2] = 0, 128, 255
    x = preprocess(px, 8)
    assert np.all(x[0, 0] == np.float32(-0.5))
    assert np.all(x[0, 1] == np.float32(0.0))
    assert np.all(x[0, 2] == np.float32(127 / 256))


def test_preprocess_ignores_alpha() -> None:
    rng = np.random.default_rng(2)
    rgba = rng.integers(0, 256, (9, 11, 4), dtype=np.uint8)
    other_alpha = rgba.copy()
    other_alpha[..., 3] = 255 - other_alpha[..., 3]
    a = preprocess(rgba, 10)
    np.testing.assert_array_equal(a, preprocess(np.ascontiguousarray(rgba[..., :3]), 10))
    np.testing.assert_array_equal(a, preprocess(other_alpha, 10))


@pytest.mark.parametrize(
    "px",
    [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 1), np.uint8), np.zeros((4, 4, 3), np.float32)],
)
def test_preprocess_rejects_bad_input(px: np.ndarray) -> None:
    with pytest.raises(InvalidOptionError):
        preprocess(px, 8)


def test_preprocess_follows_the_normalisation_and_channel_order() -> None:
    """``(v·scale − mean) / std`` per network channel; BGR feeds blue first."""
    from cleancut.models.families import Normalization

    px = np.empty((6, 5, 3), np.uint8)
    px[..., 0], px[..., 1], px[..., 2] = 10, 128, 250
    norm = Normalization(scale=1 / 255, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    x = pipeline.preprocess(px, 4, 3, norm=norm, down="bilinear")
    assert x.shape == (1, 3, 4, 3)
    for c, v in enumerate((10, 128, 250)):
        np.testing.assert_allclose(x[0, c], (v / 255 - norm.mean[c]) / norm.std[c], rtol=1e-6)
    bgr = pipeline.preprocess(px, 4, norm=Normalization(channels="BGR"), down="bilinear")
    assert np.all(bgr[0, 0] == 250) and np.all(bgr[0, 2] == 10)


@pytest.mark.parametrize("down", ["pil-bilinear", "pil-lanczos"])
def test_pil_downsampling_is_pillow_s_own(down: str) -> None:
    """The families whose reference is torchvision's Resize on a PIL image get Pillow's
    anti-aliased filters exactly."""
    from PIL import Image

    from cleancut.models.families import Normalization

    rng = np.random.default_rng(4)
    px = rng.integers(0, 256, (301, 457, 3), dtype=np.uint8)
    x = pipeline.preprocess(px, 64, 96, norm=Normalization(), down=down)  # type: ignore[arg-type]
    f = Image.Resampling.BILINEAR if down == "pil-bilinear" else Image.Resampling.LANCZOS
    want = np.asarray(Image.fromarray(px).resize((96, 64), f)).transpose(2, 0, 1)[None].astype(np.float32)
    np.testing.assert_array_equal(x, want)


# --------------------------------------------------------------------------- postprocess


def reference_round(v: float) -> int:
    """``v * 255`` rounded half up in double precision, as cleancut quantises the network
    output. (The reference truncates, which caps alpha at 254: see pipeline.postprocess.)
    Values outside 0..1 (which a sigmoid output never has) are clipped here; NaN → 0."""
    if math.isnan(v):
        return 0
    return math.floor(min(max(v, 0.0), 1.0) * 255 + 0.5)


def test_postprocess_rounds_so_the_subject_reaches_255() -> None:
    vals = np.array([[0.0, 0.5, 0.999, 1.0], [1 / 255, 0.0039, 0.9999999, 0.001]], np.float32)
    m = postprocess(vals[None, None], 2, 4)
    assert m.dtype == np.uint8
    assert m.tolist() == [[0, 128, 255, 255], [1, 1, 255, 0]]
    assert m.tolist() == [[reference_round(float(v)) for v in r] for r in vals]


def test_postprocess_clips_out_of_range_and_nan() -> None:
    vals = np.array([[-0.2, -np.inf, 1.7, np.inf, np.nan, 1.0000001]], np.float32)
    assert postprocess(vals, 1, 6).tolist() == [[0, 0, 255, 255, 0, 255]]


def test_postprocess_rounding_equals_float64_reference() -> None:
    """Checked on a sample plus every float32 next to each (k + 0.5)/255 rounding boundary."""
    rng = np.random.default_rng(3)
    near = []
    for k in range(256):
        c = np.float32((k + 0.5) / 255)
        lo = hi = c
        for _ in range(3):
            lo = np.nextafter(lo, np.float32(0))
            hi = np.nextafter(hi, np.float32(2))
            near += [lo, hi]
        near.append(c)
    vals = np.concatenate([rng.random(512 * 512 - len(near), dtype=np.float32), np.array(near, np.float32)])
    vals = np.clip(vals, 0, 1).reshape(512, 512)
    got = postprocess(vals, 512, 512)
    want = np.floor(vals.astype(np.float64) * 255 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(got, want)


def test_postprocess_resizes_on_the_reference_grid() -> None:
    rng = np.random.default_rng(4)
    out = rng.random((1, 1, 8, 8), dtype=np.float32)
    m = postprocess(out, 13, 21)
    m8 = np.array([[reference_round(float(v)) for v in row] for row in out[0, 0]], np.uint8)
    assert m.shape == (13, 21)
    np.testing.assert_array_equal(m, reference_resize(m8, 13, 21))
    np.testing.assert_array_equal(postprocess(out, 3, 5), reference_resize(m8, 3, 5))


def test_postprocess_accepts_any_leading_unit_axes() -> None:
    rng = np.random.default_rng(6)
    out = rng.random((6, 6), dtype=np.float32)
    want = postprocess(out, 9, 4)
    for shaped in (out[None], out[None, None], out[None, None, None], out.astype(np.float64)):
        np.testing.assert_array_equal(postprocess(shaped, 9, 4), want)


@pytest.mark.parametrize("shape", [(2, 1, 4, 4), (4,), (), (1, 0, 0)])
def test_postprocess_rejects_batches_and_bad_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(InvalidOptionError):
        postprocess(np.zeros(shape, np.float32), 4, 4)


def test_postprocess_rejects_bad_target_size() -> None:
    with pytest.raises(InvalidOptionError):
        postprocess(np.zeros((4, 4), np.float32), 0, 4)


# --------------------------------------------------------------------------- compose / apply_mask


@pytest.fixture
def rgb_and_mask() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return (
        rng.integers(0, 256, (9, 13, 3), dtype=np.uint8),
        rng.integers(0, 256, (9, 13), dtype=np.uint8),
    )


def test_foreground_alpha_is_the_mask(rgb_and_mask: tuple[np.ndarray, np.ndarray]) -> None:
    px, mask = rgb_and_mask
    out = compose(px, mask, "foreground")
    assert out.shape == (9, 13, 4)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., :3], px)
    np.testing.assert_array_equal(out[..., 3], mask)


def test_background_alpha_is_the_inverted_mask(rgb_and_mask: tuple[np.ndarray, np.ndarray]) -> None:
    px, mask = rgb_and_mask
    out = compose(px, mask, "background")
    np.testing.assert_array_equal(out[..., :3], px)
    np.testing.assert_array_equal(out[..., 3].astype(int), 255 - mask.astype(int))


def test_mask_output_is_the_mask(rgb_and_mask: tuple[np.ndarray, np.ndarray]) -> None:
    px, mask = rgb_and_mask
    out = compose(px, mask, "mask")
    assert out.shape == mask.shape
    np.testing.assert_array_equal(out, mask)


def test_existing_alpha_is_multiplied_exactly_for_all_pairs() -> None:
    """``round(a · m / 255)`` for all 65 536 (alpha, mask) pairs, against exact integer
    arithmetic (a·m/255 is never exactly half-way: 255 is odd)."""
    a, m = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    px = np.zeros((256, 256, 4), np.uint8)
    px[..., 0] = 7
    px[..., 3] = a
    want = (2 * a * m + 255) // 510  # floor(a·m/255 + 1/2)
    fg = apply_mask(px, m.astype(np.uint8))
    np.testing.assert_array_equal(fg[..., 3], want)
    np.testing.assert_array_equal(fg[..., 0], 7)
    bg = apply_mask(px, m.astype(np.uint8), invert=True)
    np.testing.assert_array_equal(bg[..., 3], (2 * a * (255 - m) + 255) // 510)
    np.testing.assert_array_equal(compose(px, m.astype(np.uint8), "foreground"), fg)
    np.testing.assert_array_equal(compose(px, m.astype(np.uint8), "background"), bg)
    # and a float reference agrees
    np.testing.assert_array_equal(fg[..., 3], np.floor(a * m / 255 + 0.5))


def test_apply_mask_does_not_modify_its_inputs(rgb_and_mask: tuple[np.ndarray, np.ndarray]) -> None:
    px, mask = rgb_and_mask
    px0, mask0 = px.copy(), mask.copy()
    compose(px, mask, "foreground")
    compose(px, mask, "background")
    np.testing.assert_array_equal(px, px0)
    np.testing.assert_array_equal(mask, mask0)


@pytest.mark.parametrize(
    ("px", "mask"),
    [
        (np.zeros((4, 5, 3), np.uint8), np.zeros((5, 4), np.uint8)),  # shape mismatch
        (np.zeros((4, 5, 4), np.uint8), np.zeros((4, 6), np.uint8)),
        (np.zeros((4, 5, 3), np.uint8), np.zeros((4, 5), np.float32)),  # mask dtype
        (np.zeros((4, 5, 3), np.uint8), np.zeros((4, 5, 1), np.uint8)),  # mask not 2-D
        (np.zeros((4, 5), np.uint8), np.zeros((4, 5), np.uint8)),  # pixels gray
        (np.zeros((4, 5, 2), np.uint8), np.zeros((4, 5), np.uint8)),
        (np.zeros((4, 5, 3), np.uint16), np.zeros((4, 5), np.uint8)),
    ],
)
def test_apply_mask_rejects_bad_input(px: np.ndarray, mask: np.ndarray) -> None:
    output_types: tuple[OutputType, ...] = ("foreground", "background")
    for output_type in output_types:
        with pytest.raises(InvalidOptionError):
            compose(px, mask, output_type)


def test_compose_rejects_unknown_type(rgb_and_mask: tuple[np.ndarray, np.ndarray]) -> None:
    px, mask = rgb_and_mask
    with pytest.raises(InvalidOptionError):
        compose(px, mask, "alpha")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- flatten


def test_flatten_equals_the_float_formula_exactly_for_every_value() -> None:
    """Exhaustive (16.7 M combinations of colour, alpha and background): the result is
    exactly ``round((c·a + bg·(255 − a)) / 255)`` half up, i.e. a tolerance of ±0."""
    c, a = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    rgba = np.empty((256, 256, 4), np.uint8)
    rgba[..., 0] = c
    rgba[..., 1] = 255 - c
    rgba[..., 2] = c // 2
    rgba[..., 3] = a
    af = a / 255.0
    for bg in range(256):
        out = flatten(rgba, (bg, 255 - bg, 128))
        for ch, bgc in ((0, bg), (1, 255 - bg), (2, 128)):
            want = np.floor(rgba[..., ch] * af + bgc * (1 - af) + 0.5)
            # float rounding never lands on the wrong side: 255·value is never a tie
            np.testing.assert_array_equal(out[..., ch], want)


def test_flatten_ends_and_shapes() -> None:
    rgba = np.array([[[10, 20, 30, 0], [10, 20, 30, 255], [200, 100, 50, 128]]], np.uint8)
    out = flatten(rgba, (255, 255, 255))
    assert out.shape == (1, 3, 3)
    assert out.dtype == np.uint8
    assert out[0, 0].tolist() == [255, 255, 255]  # transparent → the background
    assert out[0, 1].tolist() == [10, 20, 30]  # opaque → unchanged
    assert out[0, 2].tolist() == [math.floor((v * 128 + 255 * 127) / 255 + 0.5) for v in (200, 100, 50)]
    rgb = np.zeros((2, 2, 3), np.uint8)
    assert flatten(rgb, (1, 2, 3)) is rgb
    gray = np.zeros((2, 2), np.uint8)
    assert flatten(gray, (1, 2, 3)) is gray


def test_flatten_rejects_bad_colour() -> None:
    with pytest.raises(InvalidOptionError):
        flatten(np.zeros((2, 2, 4), np.uint8), (256, 0, 0))


# --------------------------------------------------------------------------- parse_color


@pytest.mark.parametrize(
    ("value", "want"),
    [
        (None, (255, 255, 255)),
        ("white", (255, 255, 255)),
        ("black", (0, 0, 0)),
        ("Red", (255, 0, 0)),
        ("  rebeccapurple ", (102, 51, 153)),
        ("#fc0", (255, 204, 0)),
        ("#FFCC00", (255, 204, 0)),
        ("#ffcc0080", (255, 204, 0)),  # alpha of #rrggbbaa is dropped
        ("255,204,0", (255, 204, 0)),
        (" 1 , 2 ,3 ", (1, 2, 3)),
        ("0,0,0", (0, 0, 0)),
        ("rgb(10,20,30)", (10, 20, 30)),
        ("hsl(0,100%,50%)", (255, 0, 0)),
        ((1, 2, 3), (1, 2, 3)),
        ([4, 5, 6], (4, 5, 6)),
        ((np.uint8(7), np.int64(8), 9), (7, 8, 9)),
        ((0, 0, 255), (0, 0, 255)),
    ],
)
def test_parse_color(value: object, want: tuple[int, int, int]) -> None:
    got = parse_color(value)  # type: ignore[arg-type]
    assert got == want
    assert type(got) is tuple
    assert all(type(c) is int for c in got)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "nocolour",
        "#12",
        "#gggggg",
        "ffcc00",
        "256,0,0",
        "-1,0,0",
        "1,2",
        "1,2,3,4",
        "1.5,2,3",
        "a,b,c",
        ",,",
        "²,1,1",
        (1, 2),
        (1, 2, 300),
        (1, 2, -1),
        (1.0, 2, 3),
        (True, False, True),
        ("1", "2", "3"),
        42,
    ],
)
def test_parse_color_rejects(value: object) -> None:
    with pytest.raises(InvalidOptionError):
        parse_color(value)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- output types


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("foreground", "foreground"),
        ("fg", "foreground"),
        (" Foreground ", "foreground"),
        ("background", "background"),
        ("BG", "background"),
        ("mask", "mask"),
        ("alpha", "mask"),
        ("alphamask", "mask"),
    ],
)
def test_normalize_output_type(value: str, want: str) -> None:
    assert normalize_output_type(value) == want
    assert normalize_output_type(want) in pipeline.OUTPUT_TYPES


@pytest.mark.parametrize("value", ["", "fore", "masks", "alpha mask", None, 1])
def test_normalize_output_type_rejects(value: object) -> None:
    with pytest.raises(InvalidOptionError) as info:
        normalize_output_type(value)  # type: ignore[arg-type]
    assert isinstance(info.value, (CleancutError, ValueError))


def test_large_masks_upsample_fast_and_within_one_level_of_the_reference() -> None:
    """Above 2 MP the mask is upsampled with OpenCV on the same grid (weights quantised to
    1/32): a soft, model-like mask differs from the exact port by at most one level."""
    import cv2

    m = np.zeros((1024, 1024), np.uint8)
    cv2.circle(m, (500, 520), 300, 255, -1)
    m = cv2.GaussianBlur(m, (0, 0), 3)
    out = m.astype(np.float32)[None, None] / 255
    fast = postprocess(out, 1500, 2000)  # 3 MP: the OpenCV path
    exact = resize_bilinear(np.floor(out[0, 0].astype(np.float64) * 255 + 0.5).astype(np.uint8), 1500, 2000)
    diff = np.abs(fast.astype(np.int16) - exact.astype(np.int16))
    assert fast.shape == (1500, 2000)
    assert diff.max() <= 1
    assert (diff > 0).mean() < 1e-3


def test_fast_preprocess_is_within_one_level_of_the_exact_port() -> None:
    """``exact=False`` (OpenCV on the same grid) feeds the network values within one level
    of the reference's, i.e. within 1/256 after normalisation."""
    rng = np.random.default_rng(11)
    import cv2

    img = cv2.GaussianBlur(rng.integers(0, 256, (300, 451, 3), dtype=np.uint8), (0, 0), 2)
    exact = preprocess(img, 1024)
    fast = preprocess(img, 1024, exact=False)
    assert fast.shape == exact.shape == (1, 3, 1024, 1024)
    diff = np.abs(fast - exact) * 256
    assert diff.max() <= 1.0 + 1e-4
    assert (diff > 0.5).mean() < 0.01


@pytest.mark.parametrize("channels", [3, 4])
def test_fast_preprocess_warps_four_channels_with_the_three_channel_values(channels: int) -> None:
    """The fast path widens RGB to RGBA before OpenCV's warp (its vectorised case); R, G, B
    come out exactly as a three-channel warp gives them, and an alpha channel is ignored."""
    import cv2

    from cleancut.pipeline import _resize_fast, downsample_planes

    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (517, 733, channels), dtype=np.uint8)
    want = cv2.split(_resize_fast(np.ascontiguousarray(img[:, :, :3]), 1024, 1024))
    got = downsample_planes(img, 1024)
    assert len(got) == 3
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    x = preprocess(img, 1024, exact=False)
    np.testing.assert_array_equal(x[0] * 256 + 128, np.stack(want).astype(np.float32))


def test_quantize_truncates_where_a_family_s_reference_does() -> None:
    y = np.array([[0.0, 0.5, 254.9 / 255, 1.0, 1.5, np.nan]], dtype=np.float32)
    assert pipeline.quantize(y).tolist() == [[0, 128, 255, 255, 255, 0]]
    assert pipeline.quantize(y, truncate=True).tolist() == [[0, 127, 254, 255, 255, 0]]
