"""Backgrounds and framing (cleancut.framing): each option's output checked for what it promises.

Pure functions, so most checks run on synthetic images whose answer is known exactly; the
real photos (two inferences, shared by the module) check the same promises on real masks
with their soft edges and near-zero noise.
"""

from __future__ import annotations

import dataclasses
import io
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cleancut import ImageTooLargeError, InvalidOptionError, Remover, pipeline
from cleancut.framing import (
    MAX_SIZE,
    SUBJECT_LEVEL,
    Framing,
    apply,
    frame_mask,
    geometry,
    make_framing,
    parse_background,
    subject_box,
)
from conftest import EXAMPLES

WHITE = (255, 255, 255)


@pytest.fixture(scope="module")
def real(remover: Remover) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(pixels, mask) of two real photos: astronaut (512×512), chelsea (451×300)."""
    out = {}
    for name in ("astronaut", "chelsea"):
        decoded = remover.decode(EXAMPLES / f"{name}.jpg")
        out[name] = (decoded.pixels, remover.predict_mask(decoded.pixels))
    return out


def disc(h: int, w: int, cy: float, cx: float, r: float, soft: float = 3.0) -> np.ndarray:
    """A soft-edged disc mask: 255 inside, a ramp of ``soft`` px, 0 outside."""
    yy, xx = np.mgrid[0:h, 0:w]
    d = np.hypot(yy - cy, xx - cx)
    return np.clip((r - d) / soft * 255 + 128, 0, 255).astype(np.uint8)


def photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A textured photo (smooth gradients plus noise): blurring it changes it."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // max(1, w - 1), yy * 255 // max(1, h - 1), (xx + yy) % 256], axis=2)
    return np.clip(base + rng.integers(-40, 41, (h, w, 3)), 0, 255).astype(np.uint8)


def expected_box(mask: np.ndarray, margin: float) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask >= SUBJECT_LEVEL)
    left, top, right, bottom = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    m = math.ceil(margin * max(right - left, bottom - top))
    h, w = mask.shape
    return (max(0, left - m), max(0, top - m), min(w, right + m), min(h, bottom + m))


# --------------------------------------------------------------------------- geometry


def test_subject_box_is_the_bounding_box_of_the_subject() -> None:
    mask = np.zeros((50, 80), np.uint8)
    mask[10:20, 30:41] = 255
    mask[45, 2] = SUBJECT_LEVEL - 1  # network noise: not subject
    assert subject_box(mask) == (30, 10, 41, 20)
    mask[45, 2] = SUBJECT_LEVEL
    assert subject_box(mask) == (2, 10, 41, 46)
    assert subject_box(np.zeros((5, 5), np.uint8)) is None


@pytest.mark.parametrize("margin", [0.0, 0.1, 0.5])
def test_crop_box_holds_the_whole_mask_plus_the_margin_clamped(
    real: dict[str, tuple[np.ndarray, np.ndarray]], margin: float
) -> None:
    # A subject at the right edge: the margin is clamped there, kept on the other sides.
    mask = disc(120, 200, 60, 190, 30)
    masks = [mask, *(m for _, m in real.values())]
    for m in masks:
        framed = apply(np.zeros((*m.shape, 3), np.uint8), m, Framing(crop=True, margin=margin))
        box = framed.geometry.box
        assert box == expected_box(m, margin)
        left, top, right, bottom = box
        assert 0 <= left < right <= m.shape[1] and 0 <= top < bottom <= m.shape[0]
        # Every subject pixel is inside, and the output is exactly that part of the mask.
        ys, xs = np.nonzero(m >= SUBJECT_LEVEL)
        assert left <= xs.min() and xs.max() < right and top <= ys.min() and ys.max() < bottom
        np.testing.assert_array_equal(framed.mask, m[top:bottom, left:right])
        np.testing.assert_array_equal(framed.pixels[:, :, 3], m[top:bottom, left:right])
    # The disc's box, by hand: 61 px wide subject → ceil(0.1·61) = 7 px margin.
    if margin == 0.1:
        left, top, right, bottom = subject_box(mask) or (0, 0, 0, 0)
        assert apply(photo(120, 200), mask, Framing(crop=True, margin=0.1)).geometry.box == (
            left - 7,
            top - 7,
            200,
            bottom + 7,
        )


def test_crop_drops_mask_noise_outside_the_box() -> None:
    mask = disc(100, 100, 50, 50, 10)
    mask[2, 2] = SUBJECT_LEVEL - 1
    framed = apply(photo(100, 100), mask, Framing(crop=True, margin=0.0))
    assert framed.mask.sum() == mask.sum() - (SUBJECT_LEVEL - 1)


def test_without_a_subject_crop_keeps_the_whole_image() -> None:
    mask = np.zeros((30, 40), np.uint8)
    geo = geometry(mask, Framing(crop=True))
    assert geo.subject is None and geo.box == (0, 0, 40, 30) and geo.size == (40, 30)


# --------------------------------------------------------------------------- e-commerce


def check_ecommerce(pixels: np.ndarray, mask: np.ndarray, framing: Framing) -> None:
    framed = apply(pixels, mask, framing)
    out, fmask = framed.pixels, framed.mask
    side = out.shape[0]
    assert out.shape == (side, side, 4)  # square
    assert side <= (framing.max_size or side)  # size cap
    assert (out[:, :, 3] == 255).all()  # opaque: JPEG-ready
    assert (out[fmask == 0][:, :3] == 255).all()  # white wherever there is no subject
    geo = framed.geometry
    assert geo.subject is not None
    # Subject centred within 1 px: its box's centre in output pixels vs the canvas centre.
    left, top, right, bottom = geo.subject
    ox, oy = (left - geo.window[0]) * geo.scale, (top - geo.window[1]) * geo.scale
    cx = ox + (right - left) * geo.scale / 2
    cy = oy + (bottom - top) * geo.scale / 2
    assert abs(cx - side / 2) <= 1 and abs(cy - side / 2) <= 1
    # Padding: the subject's longer side fills (1 − 2·padding) of the canvas, ±1 px; no
    # subject pixel closer to an edge than the padding (less 1 px for rounding).
    pad = framing.padding * side
    assert abs(max(right - left, bottom - top) * geo.scale - (side - 2 * pad)) <= 1.5
    ys, xs = np.nonzero(fmask >= 128)
    assert xs.min() >= pad - 1 and ys.min() >= pad - 1
    assert xs.max() <= side - pad and ys.max() <= side - pad


def test_ecommerce_on_real_photos(real: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    for pixels, mask in real.values():
        check_ecommerce(pixels, mask, Framing.ecommerce())
        check_ecommerce(pixels, mask, Framing.ecommerce(max_size=200, padding=0.2))


def test_ecommerce_caps_a_big_photo_and_centres_an_off_centre_subject() -> None:
    h, w = 2400, 3600
    mask = disc(h, w, 1250, 2550, 1000, soft=8)  # off centre, near the right edge
    framing = Framing.ecommerce()
    check_ecommerce(photo(h, w), mask, framing)
    assert apply(photo(h, w), mask, framing).pixels.shape[:2] == (2000, 2000)
    # A small product is not blown up: the cap is a cap.
    small = disc(300, 300, 150, 150, 60)
    out = apply(photo(300, 300), small, framing).pixels
    left, _, right, _ = subject_box(small) or (0, 0, 0, 0)
    assert out.shape[0] == math.ceil((right - left) / 0.85 - 1e-9) < 2000


def test_square_without_crop_letterboxes_the_whole_photo() -> None:
    mask = disc(100, 200, 50, 50, 20)
    framed = apply(photo(100, 200), mask, Framing(square=True, padding=0.1))
    geo = framed.geometry
    assert geo.box == (0, 0, 200, 100) and geo.size == (250, 250)
    # Transparent: the bands above and below the photo are empty.
    assert (framed.pixels[:75, :, 3] == 0).all() and (framed.pixels[175:, :, 3] == 0).all()
    np.testing.assert_array_equal(framed.pixels[75:175, 25:225, 3], mask)


# --------------------------------------------------------------------------- backgrounds


def test_colour_background_is_exact() -> None:
    pixels = photo(60, 80)
    mask = disc(60, 80, 30, 40, 15, soft=6)
    out = apply(pixels, mask, Framing(background="#ff8000")).pixels
    assert (out[:, :, 3] == 255).all()
    assert (out[mask == 0][:, :3] == (255, 128, 0)).all()
    np.testing.assert_array_equal(out[mask == 255][:, :3], pixels[mask == 255])
    # Soft edges: exactly what flattening the transparent cut-out onto that colour gives.
    np.testing.assert_array_equal(
        out[:, :, :3], pipeline.flatten(pipeline.apply_mask(pixels, mask), (255, 128, 0))
    )


def test_blur_background_keeps_the_subject_and_blurs_the_rest(
    real: dict[str, tuple[np.ndarray, np.ndarray]],
) -> None:
    for pixels, mask in [(photo(200, 300), disc(200, 300, 100, 150, 50)), real["astronaut"]]:
        out = apply(pixels, mask, Framing(background="blur")).pixels
        assert (out[:, :, 3] == 255).all()
        inside = mask == 255
        np.testing.assert_array_equal(out[inside][:, :3], pixels[inside])
        away = mask == 0
        diff = np.abs(out[:, :, :3].astype(int) - pixels.astype(int))[away]
        assert diff.mean() > 5  # blurred, not the photo itself


def test_blur_background_does_not_smear_the_subject_into_it() -> None:
    # A white subject on a black background: a plain blur would spread white around it.
    pixels = np.zeros((200, 200, 3), np.uint8)
    mask = np.zeros((200, 200), np.uint8)
    pixels[70:130, 70:130] = 255
    mask[70:130, 70:130] = 255
    out = apply(pixels, mask, Framing(background="blur", blur=0.05)).pixels
    ring = out[60:70, 60:140, :3]  # right outside the subject
    assert ring.max() <= 2
    import cv2

    plain = cv2.GaussianBlur(pixels, (0, 0), 10)
    assert plain[60:70, 60:140].max() > 60  # what smearing would have looked like


def test_blur_on_a_square_canvas_fills_it_with_the_surroundings() -> None:
    pixels = photo(100, 300)
    mask = disc(100, 300, 50, 150, 30)
    out = apply(pixels, mask, Framing(background="blur", crop=True, square=True, padding=0.1)).pixels
    assert (out[:, :, 3] == 255).all()
    assert out[:5, :, :3].std() > 1  # the band past the photo holds blurred photo, not a flat fill


def test_blur_background_is_close_to_a_full_resolution_blur() -> None:
    # The blur runs on a downscaled copy (sigma 4 px there) and is scaled back up; against
    # the same normalised convolution computed at full resolution in float64, the visible
    # background differs by well under one level on average (0.35 / 0.55 measured).
    import cv2

    h, w = 600, 800
    pixels = photo(h, w)
    mask = disc(h, w, 280, 400, 150, soft=6)
    away = mask == 0
    for blur in (0.02, 0.05):
        out = apply(pixels, mask, Framing(background="blur", blur=blur)).pixels[:, :, :3]
        sigma = blur * max(h, w)
        weight = 1.0 - mask / 255.0
        num = cv2.GaussianBlur(pixels * weight[:, :, None], (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
        den = cv2.GaussianBlur(weight, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
        reference = num / np.maximum(den, 1e-3)[:, :, None]
        diff = np.abs(out - reference)[away]
        assert diff.mean() < 1.5 and np.percentile(diff, 99) < 6, (blur, diff.mean())


def test_image_background_fill_and_fit_geometry(tmp_path: Path) -> None:
    # A 200×100 background: left half red, right half blue.
    bg = np.zeros((100, 200, 3), np.uint8)
    bg[:, :100] = (255, 0, 0)
    bg[:, 100:] = (0, 0, 255)
    pixels = photo(100, 100)
    empty = np.zeros((100, 100), np.uint8)
    fill = apply(pixels, empty, Framing(background=bg, fit="fill")).pixels[:, :, :3]
    # fill: scaled to cover 100×100 (×1), centre-cropped: columns 50..150 of the image.
    assert (fill[:, :48] == (255, 0, 0)).all() and (fill[:, 52:] == (0, 0, 255)).all()
    fit = apply(pixels, empty, Framing(background=bg, fit="fit")).pixels[:, :, :3]
    # fit: scaled ×0.5 to 100×50, centred; the bars above and below in the mean colour.
    assert (fit[:25] == (128, 0, 128)).all() and (fit[75:] == (128, 0, 128)).all()
    assert (fit[27:73, :48] == (255, 0, 0)).all() and (fit[27:73, 52:] == (0, 0, 255)).all()
    # The same image as a path and as encoded bytes (decoded through codecs) gives the same.
    path = tmp_path / "bg.png"
    Image.fromarray(bg).save(path)
    np.testing.assert_array_equal(apply(pixels, empty, Framing(background=str(path))).pixels[:, :, :3], fill)
    np.testing.assert_array_equal(
        apply(pixels, empty, Framing(background=path.read_bytes())).pixels[:, :, :3], fill
    )


def test_image_background_covers_the_ecommerce_canvas() -> None:
    bg = photo(50, 70, seed=3)
    mask = disc(100, 160, 50, 80, 25)
    out = apply(photo(100, 160), mask, Framing.ecommerce(background=bg)).pixels
    assert out.shape[0] == out.shape[1] and (out[:, :, 3] == 255).all()


# --------------------------------------------------------------------------- shadow


def test_shadow_darkens_only_outside_the_subject_and_below_it() -> None:
    pixels = photo(200, 200)
    mask = disc(200, 200, 80, 100, 40)
    plain = apply(pixels, mask, Framing(background=WHITE)).pixels.astype(int)
    shaded = apply(pixels, mask, Framing(background=WHITE, shadow=True)).pixels.astype(int)
    darker = (plain - shaded)[:, :, :3].max(axis=2)
    assert (shaded <= plain).all()  # never lighter
    assert (darker[mask == 255] == 0).all()  # the subject is untouched
    assert darker.max() > 40  # a visible shadow
    # Below the subject (offset down): the shadow's centre of mass is under the subject's.
    ys, _ = np.nonzero(darker > 0)
    weights = darker[darker > 0]
    assert np.average(ys, weights=weights) > 80 + 5
    # Just under the disc's bottom edge (y = 120) it is darker than just over its top (y = 40).
    assert darker[121:124, 95:105].min() > 0
    assert darker[121:124, 95:105].mean() > 2 * darker[37:40, 95:105].mean()


def test_shadow_is_close_to_a_full_resolution_shadow() -> None:
    # The shadow is shifted and blurred on a downscaled copy; on a transparent background
    # its opacity is the alpha where there is no subject, to compare with the mask shifted
    # and blurred at full resolution in float64 (measured: mean 0.03–0.1, max 1.9 levels).
    import cv2

    h, w = 600, 800
    pixels = photo(h, w)
    mask = disc(h, w, 280, 400, 150, soft=6)
    side = 301  # the subject box's longer side
    for softness, offset in ((0.03, (0.0, 0.03)), (0.1, (0.05, 0.1))):
        framing = Framing(shadow=True, shadow_softness=softness, shadow_offset=offset)
        alpha = apply(pixels, mask, framing).pixels[:, :, 3]
        dx, dy = round(offset[0] * side), round(offset[1] * side)
        shifted = np.zeros((h, w))
        shifted[dy:, dx:] = mask[: h - dy, : w - dx] / 255.0
        sigma = softness * side
        reference = cv2.GaussianBlur(shifted, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101) * 0.5 * 255
        diff = np.abs(alpha - reference)[mask == 0]
        assert diff.mean() < 0.5 and diff.max() < 3, (softness, diff.mean(), diff.max())


def test_shadow_on_a_transparent_background_goes_into_the_alpha() -> None:
    pixels = photo(120, 120)
    mask = disc(120, 120, 50, 60, 25)
    out = apply(pixels, mask, Framing(shadow=True, shadow_opacity=0.6)).pixels
    alpha = out[:, :, 3].astype(int)
    assert (alpha >= mask).all() and (alpha[mask == 255] == 255).all()
    assert alpha[80, 60] > 0 and mask[80, 60] == 0  # under the subject
    assert alpha.max() <= 255 and (alpha[mask == 0] <= round(0.6 * 255) + 1).all()
    # Where the subject is opaque its colours are untouched.
    np.testing.assert_array_equal(out[mask == 255][:, :3], pixels[mask == 255])


# --------------------------------------------------------------------------- alpha rules


def test_identity_framing_is_the_plain_cut_out(real: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    pixels, mask = real["chelsea"]
    out = apply(pixels, mask, Framing())
    np.testing.assert_array_equal(out.pixels, pipeline.apply_mask(pixels, mask))
    assert Framing().is_identity and not Framing(crop=True).is_identity


def test_alpha_rules() -> None:
    pixels = photo(50, 60)
    mask = disc(50, 60, 25, 30, 12)
    for framing in (Framing(crop=True), Framing(square=True), Framing(max_size=20)):
        framed = apply(pixels, mask, framing)
        np.testing.assert_array_equal(framed.pixels[:, :, 3], framed.mask)  # transparent: alpha = mask
    for bg in ("white", "blur", photo(10, 10)):
        framed = apply(pixels, mask, Framing(background=bg, square=True, padding=0.2))
        assert (framed.pixels[:, :, 3] == 255).all()  # opaque: 255 everywhere
    # An RGBA photo's own transparency multiplies the mask (as pipeline.apply_mask).
    rgba = np.dstack([pixels, np.full((50, 60), 128, np.uint8)])
    np.testing.assert_array_equal(apply(rgba, mask, Framing(crop=True, margin=0)).pixels[:, :, 3].max(), 128)


def test_keep_background_fills_the_subject_with_the_colour() -> None:
    pixels = photo(80, 80)
    mask = disc(80, 80, 40, 40, 20)
    out = apply(pixels, mask, Framing(background=(0, 255, 0)), invert=True).pixels
    assert (out[mask == 255][:, :3] == (0, 255, 0)).all()
    np.testing.assert_array_equal(out[mask == 0][:, :3], pixels[mask == 0])
    with pytest.raises(InvalidOptionError, match="shadow"):
        apply(pixels, mask, Framing(shadow=True), invert=True)


def test_size_cap_scales_pixels_and_mask_together() -> None:
    pixels = photo(300, 400)
    mask = disc(300, 400, 150, 200, 80)
    framed = apply(pixels, mask, Framing(max_size=100))
    assert framed.pixels.shape == (75, 100, 4) and framed.mask.shape == (75, 100)
    fm, geo = frame_mask(mask, Framing(max_size=100))
    np.testing.assert_array_equal(fm, framed.mask)
    assert geo.scale == 0.25


def test_blend_is_exact() -> None:
    # Compositing runs through cv2.blendLinear with float32 weights a and 255 − a; it must
    # give pipeline.flatten's integer round((fg·a + bg·(255 − a)) / 255) for every
    # (fg, alpha, bg) triple, and round(x · a / 255) with black.
    from cleancut.framing.compose import blend

    # Rows: every (fg, alpha) pair; the 86 columns × 3 channels: every bg value (17 MB).
    fg = np.repeat(np.arange(256, dtype=np.uint8), 256)
    alpha = np.ascontiguousarray(
        np.broadcast_to(np.tile(np.arange(256, dtype=np.uint8), 256)[:, None], (65536, 86))
    )
    fg3 = np.ascontiguousarray(np.broadcast_to(fg[:, None, None], (65536, 86, 3)))
    bg3 = np.ascontiguousarray(
        np.broadcast_to((np.arange(258).reshape(86, 3) % 256).astype(np.uint8), (65536, 86, 3))
    )
    w = alpha[:, :, None].astype(np.uint16)
    v = fg3 * w + bg3 * (255 - w) + 128
    expected = ((v + (v >> 8)) >> 8).astype(np.uint8)
    np.testing.assert_array_equal(blend(fg3, alpha, bg3, None), expected)
    v = fg3 * w + 128
    np.testing.assert_array_equal(blend(fg3, alpha, None, None), ((v + (v >> 8)) >> 8).astype(np.uint8))
    flat = blend(fg3, alpha, (7, 128, 255), None, opaque=True)
    assert (flat[:, :, 3] == 255).all()
    np.testing.assert_array_equal(
        flat[:, :, :3], pipeline.flatten(np.dstack([fg3, alpha[:, :, None]]), (7, 128, 255))
    )
    # With a shadow the background is first darkened to round(bg · (255 − s) / 255), exactly.
    shade = np.ascontiguousarray(alpha[::-1])
    s = shade[:, :, None].astype(np.uint16)
    v = bg3 * (255 - s) + 128
    dark = ((v + (v >> 8)) >> 8).astype(np.uint8)
    v = fg3 * w + dark * (255 - w) + 128
    np.testing.assert_array_equal(
        blend(fg3, alpha, bg3, None, shade=shade), ((v + (v >> 8)) >> 8).astype(np.uint8)
    )


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"fit": "stretch"}, "fit must be one of fill, fit"),
        ({"blur": 0}, "blur must be a number in (0, 0.25]"),
        ({"blur": float("nan")}, "blur"),
        ({"margin": -0.1}, "margin must be a number in [0, 10]"),
        ({"padding": 0.5}, "padding must be a number in [0, 0.5)"),
        ({"max_size": 0}, "max_size must be a positive number of pixels"),
        ({"max_size": 1.5}, "max_size"),
        ({"max_size": MAX_SIZE + 1}, "at most 65535"),
        ({"max_size": 10**5000}, "at most 65535, got an integer of 16610 bits"),
        ({"margin": 10**400}, "margin must be a number in [0, 10]"),
        ({"margin": float("inf")}, "margin"),
        ({"padding": 0.5 - 1e-17}, "padding"),  # rounds to 0.5
        ({"shadow_softness": 0}, "shadow_softness"),
        ({"shadow_offset": (0.0, float("nan"))}, "shadow_offset[1]"),
        ({"max_pixels": 0}, "max_pixels must be a positive integer"),
        ({"shadow_opacity": 2}, "shadow_opacity"),
        ({"shadow_offset": (0.1,)}, "shadow_offset must be a (right, down) pair"),
        ({"crop": "yes"}, "crop must be True or False"),
        ({"background": (1, 2)}, "three integers"),
        ({"background": np.zeros((4, 4), np.uint8)}, "uint8 [H, W, 3|4]"),
    ],
)
def test_validate_errors_are_actionable(fields: dict[str, object], fragment: str) -> None:
    with pytest.raises(InvalidOptionError) as info:
        Framing(**fields)  # type: ignore[arg-type]
    assert fragment in str(info.value)


def test_parse_background() -> None:
    assert parse_background("transparent") is None and parse_background("") is None
    assert parse_background("Blur") == "blur"
    assert parse_background("white") == WHITE and parse_background("10,20,30") == (10, 20, 30)
    assert parse_background("beach.jpg") == Path("beach.jpg")
    assert parse_background(bytearray(b"x")) == b"x"


def test_make_framing_maps_flat_options() -> None:
    assert make_framing() is None and make_framing(background="transparent") is None
    f = make_framing(margin=0.2)
    assert f is not None and f.crop and f.margin == 0.2  # a margin implies crop
    f = make_framing(padding=0.1)
    assert f is not None and f.square  # a padding implies a square canvas
    f = make_framing("ecommerce", max_size=800, background="blur")
    assert f is not None and f.square and f.crop and f.max_size == 800 and f.background == "blur"
    with pytest.raises(InvalidOptionError, match="unknown preset 'catalog'; choose one of: ecommerce"):
        make_framing("catalog")


def test_ecommerce_output_encodes_as_jpeg(real: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    from cleancut import Cutout

    pixels, mask = real["chelsea"]
    framed = apply(pixels, mask, Framing.ecommerce(max_size=300))
    data = Cutout(framed.pixels, framed.mask, "foreground").to_bytes("jpeg", quality=0.9)
    im = Image.open(io.BytesIO(data))
    assert im.format == "JPEG" and im.size == (300, 300)
    assert np.asarray(im.convert("RGB"))[:3, :3].min() >= 250  # white corner


# --------------------------------------------------------------------------- canvas bound (issue 12)


def test_a_padding_near_one_half_is_refused_with_the_limit_named() -> None:
    """padding=0.49999999 divided by 1 − 2·padding: a 16 px photo asked for a 8e8 px canvas
    (a 500 over HTTP). The canvas is computed in integers and refused before allocation."""
    mask = disc(16, 16, 8, 8, 4)
    for padding in (0.49999999, 0.49999999999999994):
        with pytest.raises(ImageTooLargeError, match=r"over the pixel limit of 100,000,000 \(max_pixels\)"):
            apply(photo(16, 16), mask, Framing(square=True, padding=padding))
        with pytest.raises(ImageTooLargeError, match="lower padding"):
            frame_mask(mask, Framing(square=True, padding=padding))


def test_the_canvas_obeys_the_configured_pixel_limit() -> None:
    """apply's ``max_pixels`` (and a limit carried by ``loaded``) bounds the output canvas:
    padding 0.4 makes a 100² photo a 500² canvas, over a 10,000-pixel limit."""
    mask = disc(100, 100, 50, 50, 30)
    framing = Framing(square=True, padding=0.4)
    with pytest.raises(ImageTooLargeError, match="500×500 px, over the pixel limit of 10,000"):
        apply(photo(100, 100), mask, framing, max_pixels=10_000)
    with pytest.raises(ImageTooLargeError, match="limit of 10,000"):
        frame_mask(mask, framing.loaded(max_pixels=10_000))
    # the smaller limit wins, and a size cap that brings the canvas under it is enough
    assert framing.loaded(max_pixels=10_000).loaded(max_pixels=10**8).canvas_limit == 10_000
    capped = Framing(square=True, padding=0.4, max_size=100).loaded(max_pixels=10_000)
    assert apply(photo(100, 100), mask, capped).pixels.shape == (100, 100, 4)
    # crop + margin + square: the canvas is 21× the subject's side at margin 10
    with pytest.raises(ImageTooLargeError, match=r"lower padding 0\.0 or margin 10, "):
        apply(photo(100, 100), mask, Framing(crop=True, margin=10, square=True), max_pixels=100_000)


def test_a_capped_canvas_is_never_made_at_the_source_scale() -> None:
    """padding 0.49 with max_size: the canvas is 50× the photo's side at the source scale
    (here 10000² = 100 MP, 400 MB of RGBA) but 200² in the output; only the output size is
    ever allocated, and the subject still sits in the middle with its 2 % share."""
    import tracemalloc

    pixels, mask = photo(200, 200), disc(200, 200, 100, 100, 90, soft=1)
    framing = Framing(background="blur", square=True, padding=0.49, max_size=200)
    tracemalloc.start()
    try:
        framed = apply(pixels, mask, framing)
        fm, _ = frame_mask(mask, Framing(square=True, padding=0.49, max_size=200))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20, f"peak {peak / 2**20:.0f} MB"
    assert framed.pixels.shape == (200, 200, 4) and framed.geometry.size == (200, 200)
    assert fm.shape == (200, 200) and fm[100, 100] == 255 and fm[0, 0] == 0 and fm[:, :95].max() == 0


def test_a_capped_canvas_matches_the_uncapped_one_scaled() -> None:
    """Placing the photo at the output scale gives what scaling the full canvas gave."""
    pixels, mask = photo(120, 200), disc(120, 200, 60, 130, 40)
    framing = Framing(background=(0, 0, 255), crop=True, margin=0.2, square=True, padding=0.1)
    full = apply(pixels, mask, framing).pixels
    capped = apply(pixels, mask, dataclasses.replace(framing, max_size=40)).pixels
    import cv2

    ref = cv2.resize(full, capped.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(ref.astype(int) - capped).mean() < 6


def test_a_fill_background_of_extreme_aspect_is_not_scaled_whole() -> None:
    """fill scaled the whole background to cover the canvas: a 1×2000 px strip behind a
    100² canvas became 100×200000 first. Only the covering part is scaled now."""
    import tracemalloc

    strip = np.zeros((2000, 1, 3), np.uint8)
    strip[:1000] = (255, 0, 0)
    strip[1000:] = (0, 255, 0)
    empty = np.zeros((100, 100), np.uint8)
    tracemalloc.start()
    try:
        out = apply(photo(100, 100), empty, Framing(background=strip, fit="fill")).pixels
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20, f"peak {peak / 2**20:.0f} MB"
    assert out.shape == (100, 100, 4)
    # the centre of the strip, 100× up: its red row fading into its green row
    assert (out[:3, :, 0] > 240).all() and (out[-3:, :, 1] > 240).all()
    assert (np.diff(out[:, 0, 1].astype(int)) >= 0).all()


def test_a_tiny_blur_and_shadow_do_not_divide_by_zero() -> None:
    mask = disc(64, 64, 32, 32, 16)
    out = apply(photo(64, 64), mask, Framing(background="blur", blur=5e-324, shadow=True, max_size=1))
    assert out.pixels.shape == (1, 1, 4)
    soft = Framing(shadow=True, shadow_softness=5e-324, max_size=3)
    assert apply(photo(64, 64), mask, soft).pixels.shape == (3, 3, 4)


# --------------------------------------------------------------------------- issue 24, item 11


@pytest.mark.parametrize(
    ("framing", "fragment"),
    [
        (Framing(square=True, padding=0.49999999), "lower padding 0.49999999, set max_size, or raise"),
        (Framing(square=True, padding=0.4999999999999), "lower padding 0.4999999999999, set max_size"),
        (Framing(square=True, padding=0.49, max_size=60000), "lower max_size (now 60000), or raise"),
        (Framing(crop=True, margin=9.99999999, square=True), "lower padding 0.0 or margin 9.99999999, set"),
    ],
)
def test_the_canvas_refusal_quotes_values_exactly(framing: Framing, fragment: str) -> None:
    """``--padding 0.49999999`` said "lower padding 0.5" and "max_size (now None)"."""
    with pytest.raises(ImageTooLargeError) as info:
        frame_mask(disc(300, 300, 150, 150, 100), framing.loaded(max_pixels=1_000_000))
    assert fragment in str(info.value), str(info.value)
    assert "now None" not in str(info.value)


def test_check_canvas_refuses_from_the_size_alone() -> None:
    """The canvas of a framing without crop follows from the photo's size: refused before
    any inference, with the same message as after it; with crop it waits for the mask."""
    from cleancut.framing import check_canvas

    framing = Framing(square=True, padding=0.4)  # 100² → 500²
    with pytest.raises(ImageTooLargeError, match="500×500 px, over the pixel limit of 10,000"):
        check_canvas(100, 100, framing, max_pixels=10_000)
    with pytest.raises(ImageTooLargeError, match="limit of 5,000"):  # the smaller limit wins
        check_canvas(100, 100, framing.loaded(max_pixels=5_000), max_pixels=10_000)
    check_canvas(100, 100, framing, max_pixels=250_000)  # fits
    check_canvas(100, 100, Framing(square=True, padding=0.4, max_size=100), max_pixels=10_000)
    check_canvas(100, 100, Framing(crop=True, square=True, padding=0.4), max_pixels=10_000)  # later
    check_canvas(100, 100, None, max_pixels=1)


def test_the_batch_refuses_the_canvas_before_the_inference(
    remover: Remover, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The folder batch (and so the CLI and, through the same stages, Ray) fails the job
    after the decode: the network never runs for it."""
    from cleancut.batch import Job, run_jobs
    from cleancut.options import CutOptions

    def no_inference(*_a: object, **_k: object) -> None:
        raise AssertionError("inferred")

    monkeypatch.setattr(remover, "infer", no_inference)
    monkeypatch.setattr(remover, "predict", no_inference)
    src = tmp_path / "p.png"
    Image.fromarray(photo(64, 64)).save(src)
    options = CutOptions(framing=Framing(square=True, padding=0.4999999))
    (result,) = run_jobs([Job(src, tmp_path / "o.png", "p.png")], remover, options)
    assert result.status == "failed" and "lower padding 0.4999999," in (result.error or ""), result.error
    assert not (tmp_path / "o.png").exists()
