"""Video (cleancut.video): tiny clips made here with PyAV, cut by a stand-in network (a
colour key, so results are exact and fast) where a test checks the container side (alpha,
timing, audio), and by the real model (the suite's shared session) where it checks what the
cut itself does (smoothing on and off, options reaching the frames)."""

from __future__ import annotations

import itertools
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

av = pytest.importorskip("av")

from cleancut import EdgeOptions, Framing, Remover, Settings  # noqa: E402
from cleancut.errors import ImageError, InvalidOptionError, OutputExistsError  # noqa: E402
from cleancut.models.families.isnet_imgly import published_recipe  # noqa: E402
from cleancut.video import (  # noqa: E402
    NoVideoStreamError,
    TemporalSmoother,
    TruncatedVideoError,
    UnreadableVideoError,
    UnsupportedVideoError,
    VideoError,
    cut_frames,
    iter_frames,
    probe,
    remove_video,
)

W, H, N, RATE = 96, 64, 8, 12
RED = (220, 40, 40)


def make_clip(
    path: Path,
    *,
    n: int = N,
    audio: bool = True,
    rotate: int = 0,
    vfr: bool = False,
    seed: int = 0,
) -> list[np.ndarray]:
    """A red disc moving right over a textured background (light noise per frame), H.264 in
    MP4, with a 440 Hz mono AAC track; ``vfr``: frames 100 ms and 60 ms apart in turn.
    Returns the disc's masks (as stored, before any rotation)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W]
    shade = np.sin(xx / 3.0) * 40 + np.cos(yy / 4.0) * 40 + 120
    bg = (shade[..., None] * np.array([0.6, 0.8, 1.0])).astype(np.uint8)
    c = av.open(str(path), "w", format="mp4")
    s = c.add_stream("libx264", rate=RATE)
    s.width, s.height, s.pix_fmt = W, H, "yuv420p"
    tb = Fraction(1, 1000) if vfr else Fraction(1, RATE)
    s.time_base = s.codec_context.time_base = tb
    if rotate:
        s.set_display_rotation(rotate)
    a = None
    if audio:
        a = c.add_stream("aac", rate=16000)
        a.layout = "mono"
    masks, t = [], 0
    for i in range(n):
        m = (xx - (24 + 5 * i)) ** 2 + (yy - H // 2) ** 2 < (H // 4) ** 2
        img = bg.copy()
        img[m] = RED
        img = np.clip(img + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8)
        f = av.VideoFrame.from_ndarray(img, format="rgb24")
        f.pts, f.time_base = (t if vfr else i), tb
        t += 60 if i % 2 else 100
        for p in s.encode(f):
            c.mux(p)
        masks.append(m)
    for p in s.encode():
        c.mux(p)
    if a is not None:
        samples = int(16000 * n / RATE)
        sig = (np.sin(np.arange(samples) * 2 * np.pi * 440 / 16000) * 0.3).astype(np.float32)
        for k in range(0, samples, 1024):
            af = av.AudioFrame.from_ndarray(sig[None, k : k + 1024], format="fltp", layout="mono")
            af.sample_rate, af.pts = 16000, k
            for p in a.encode(af):
                c.mux(p)
        for p in a.encode():
            c.mux(p)
    c.close()
    return masks


class KeyRemover:
    """Stands in for :class:`Remover` in the video path: the 'network output' is the red
    disc, keyed out and shrunk to a 32² grid like the real output's 1024²."""

    recipe = published_recipe()

    class session:  # noqa: N801 - Remover.session's one attribute the video path reads
        max_batch = 1  # frames one at a time, as on a CPU

    def __init__(self, tmp: Path) -> None:
        self.settings = Settings.from_env(environ={}, cache_dir=tmp / "cache")
        self.calls = 0

    def predict(self, pixels: np.ndarray, *, mode: str = "default", **_: Any) -> np.ndarray:
        import cv2

        self.calls += 1
        px = pixels.astype(np.int16)
        key = ((px[..., 0] - px[..., 1]) > 100).astype(np.float32)
        return cv2.resize(key, (32, 32), interpolation=cv2.INTER_AREA)[None, None]


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "clip.mp4"
    make_clip(path)
    return path


@pytest.fixture
def key(tmp_path: Path) -> Any:
    return KeyRemover(tmp_path)


def decode_all(path: Path, *, alpha_decoder: bool = False) -> tuple[list[Any], Any]:
    """Every video frame of ``path`` (VP9 through libvpx-vp9, the decoder that reads the
    alpha channel), and the opened container's streams."""
    c = av.open(str(path))
    s = c.streams.video[0]
    frames: list[Any] = []
    if alpha_decoder:
        ctx = av.codec.CodecContext.create("libvpx-vp9", "r")
        for p in c.demux(s):
            if p.size:
                frames.extend(ctx.decode(p))
        frames.extend(ctx.decode(None))
    else:
        frames = list(c.decode(s))
    streams = [(st.type, st.codec_context.name) for st in c.streams]
    pts = [f.pts * f.time_base if f.time_base else None for f in frames]
    c.close()
    return frames, (streams, pts)


def video_pts_seconds(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return sorted(float(p.pts * p.time_base) for p in c.demux(s) if p.pts is not None)


def inner(m: np.ndarray, by: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Pixels surely inside and surely outside a mask (``by`` pixels from its edge)."""
    import cv2

    k = np.ones((2 * by + 1, 2 * by + 1), np.uint8)
    u = m.astype(np.uint8)
    return cv2.erode(u, k) > 0, cv2.dilate(u, k) == 0


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --------------------------------------------------------------------------- outputs


def test_webm_has_alpha_on_the_subject_and_keeps_frames_timing_and_audio(
    tmp_path: Path, clip: Path, key: Any
) -> None:
    out = tmp_path / "out.webm"
    result = remove_video(clip, out, remover=key)
    assert result.path == out and result.frames == N and key.calls == N
    frames, (streams, _) = decode_all(out, alpha_decoder=True)
    assert ("video", "vp9") in streams and ("audio", "opus") in streams
    assert len(frames) == N
    assert frames[0].format.name == "yuva420p"
    masks = make_clip(tmp_path / "again.mp4", audio=False)
    for frame, m in zip(frames, masks, strict=True):
        alpha = frame.to_ndarray(format="rgba")[..., 3].astype(int)
        inside, outside = inner(m)
        assert alpha[inside].min() > 170
        assert alpha[outside].max() < 50
    assert video_pts_seconds(out) == pytest.approx([i / RATE for i in range(N)], abs=0.002)
    assert leftovers(tmp_path) == []


def test_mov_is_prores_4444_with_alpha_and_keeps_variable_frame_timing(tmp_path: Path, key: Any) -> None:
    src = tmp_path / "vfr.mp4"
    make_clip(src, vfr=True)
    out = tmp_path / "out.mov"
    remove_video(src, out, remover=key)
    frames, (streams, _) = decode_all(out)
    assert ("video", "prores") in streams and ("audio", "aac") in streams
    assert len(frames) == N
    assert "yuva444" in frames[0].format.name
    assert frames[0].to_ndarray(format="rgba")[..., 3].min() == 0
    assert video_pts_seconds(out) == pytest.approx(video_pts_seconds(src), abs=0.002)
    gaps = np.diff(video_pts_seconds(out))
    assert set(np.round(gaps, 2)) == {0.06, 0.1}


def test_mp4_is_h264_flattened_on_the_background_colour(tmp_path: Path, clip: Path, key: Any) -> None:
    out = tmp_path / "out.mp4"
    remove_video(clip, out, remover=key, bg_color="#00ff00")
    frames, (streams, _) = decode_all(out)
    assert ("video", "h264") in streams and ("audio", "aac") in streams
    assert len(frames) == N
    rgb = frames[0].to_ndarray(format="rgb24").astype(int)
    assert rgb.shape == (H, W, 3)
    assert abs(rgb[2, 90] - np.array([0, 255, 0])).max() < 20  # a corner: background → green
    assert rgb[H // 2, 24, 0] > 180  # the disc keeps its red


def test_frames_folder_holds_one_rgba_png_per_frame_and_their_timing(
    tmp_path: Path, clip: Path, key: Any
) -> None:
    from PIL import Image

    out = tmp_path / "frames"
    remove_video(clip, f"{out}/", remover=key)
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"{i:06d}.png" for i in range(N)] + ["timestamps.json"]
    with Image.open(out / names[3]) as im:
        assert im.mode == "RGBA" and im.size == (W, H)
    timing = json.loads((out / "timestamps.json").read_text())
    assert timing["frame_rate"] == f"{RATE}/1" and timing["fps"] == RATE
    assert [f["file"] for f in timing["frames"]] == names[:-1]
    assert [f["time"] for f in timing["frames"]] == pytest.approx([i / RATE for i in range(N)], abs=1e-3)
    assert leftovers(tmp_path) == []


def test_frames_folder_keeps_a_variable_frame_rate(tmp_path: Path, key: Any) -> None:
    src = tmp_path / "vfr.mp4"
    make_clip(src, vfr=True, audio=False)
    out = tmp_path / "frames"
    remove_video(src, out, remover=key)
    timing = json.loads((out / "timestamps.json").read_text())
    times = [f["time"] for f in timing["frames"]]
    assert times == pytest.approx(video_pts_seconds(src), abs=1e-3)
    assert set(np.round(np.diff(times), 2)) == {0.06, 0.1}
    tb = Fraction(timing["time_base"])
    assert [float(f["pts"] * tb) for f in timing["frames"]] == pytest.approx(times, abs=1e-6)


def test_frames_folder_replaces_only_a_frames_folder(tmp_path: Path, clip: Path, key: Any) -> None:
    """``overwrite`` replaces a folder of frames written before, never a folder of other
    files (that would delete them), and never one holding the input clip."""
    frames = tmp_path / "frames"
    remove_video(clip, frames, remover=key)
    (frames / "000000.png").write_bytes(b"stale")
    with pytest.raises(OutputExistsError):
        remove_video(clip, frames, remover=key)
    remove_video(clip, frames, remover=key, overwrite=True)
    assert (frames / "000000.png").read_bytes()[:4] == b"\x89PNG"
    other = tmp_path / "holiday"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(OutputExistsError, match="not a folder of frames"):
        remove_video(clip, other, remover=key, overwrite=True)
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]
    with pytest.raises(InvalidOptionError, match="holds the input"):
        remove_video(clip, tmp_path, remover=key, overwrite=True)
    assert clip.is_file()
    assert leftovers(tmp_path) == []


def test_output_that_is_the_input_is_refused(tmp_path: Path, key: Any) -> None:
    src = tmp_path / "clip.webm"
    remove_video(make_clip_path(tmp_path), src, remover=key)
    before = src.read_bytes()
    with pytest.raises(InvalidOptionError, match="input"):
        remove_video(src, src, remover=key, overwrite=True)
    link = tmp_path / "link.webm"
    link.symlink_to(src)
    with pytest.raises(InvalidOptionError, match="input"):
        remove_video(src, link, remover=key, overwrite=True)
    assert src.read_bytes() == before
    assert key.calls == N  # the first cut only


def test_mask_type_is_a_gray_video(tmp_path: Path, clip: Path, key: Any) -> None:
    out = tmp_path / "mask.webm"
    remove_video(clip, out, remover=key, type="mask", audio=False)
    frames, (streams, _) = decode_all(out)
    assert [s for s in streams if s[0] == "audio"] == []
    gray = frames[0].to_ndarray(format="gray")
    assert gray[H // 2, 24] > 240 and gray[2, 90] < 15


def test_rotation_metadata_is_applied_to_the_pixels(tmp_path: Path, key: Any) -> None:
    src = tmp_path / "rot.mp4"
    make_clip(src, rotate=90, audio=False, n=4)
    info = probe(src)
    assert info.rotation == 90 and (info.width, info.height) == (H, W)
    first = next(iter(iter_frames(src)))
    assert first.pixels.shape == (W, H, 3)
    out = tmp_path / "frames"
    remove_video(src, out, remover=key)
    from PIL import Image

    with Image.open(out / "000000.png") as im:
        assert im.size == (H, W)


def test_cut_frames_takes_plain_arrays(tmp_path: Path, key: Any) -> None:
    frames = [f.pixels for f in iter_frames(make_clip_path(tmp_path))]
    cuts = list(cut_frames(frames, remover=key, smooth=False))
    assert len(cuts) == N and cuts[0].pixels.shape == (H, W, 4)


def make_clip_path(tmp_path: Path) -> Path:
    path = tmp_path / "plain.mp4"
    make_clip(path, audio=False)
    return path


# --------------------------------------------------------------------------- refusals


def test_existing_output_is_kept_without_overwrite(tmp_path: Path, clip: Path, key: Any) -> None:
    out = tmp_path / "out.webm"
    out.write_bytes(b"keep")
    with pytest.raises(OutputExistsError):
        remove_video(clip, out, remover=key)
    assert out.read_bytes() == b"keep"
    remove_video(clip, out, remover=key, overwrite=True)
    assert out.stat().st_size > 100


def test_unknown_output_suffix_is_refused(tmp_path: Path, clip: Path, key: Any) -> None:
    with pytest.raises(InvalidOptionError, match="webm"):
        remove_video(clip, tmp_path / "out.gif", remover=key)


@pytest.mark.parametrize("case", ["truncated", "audio_only", "not_video", "empty"])
def test_bad_inputs_raise_clear_errors_and_leave_nothing(
    tmp_path: Path, clip: Path, key: Any, case: str
) -> None:
    bad = tmp_path / "in" / "bad.mp4"
    bad.parent.mkdir()
    if case == "truncated":
        bad.write_bytes(clip.read_bytes()[: clip.stat().st_size // 3])
    elif case == "audio_only":
        with av.open(str(bad), "w", format="mp4") as c:
            a = c.add_stream("aac", rate=16000)
            a.layout = "mono"
            af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            af.sample_rate, af.pts = 16000, 0
            for p in [*a.encode(af), *a.encode()]:
                c.mux(p)
    elif case == "not_video":
        bad.write_text("just some text, not a clip\n" * 20)
    else:
        bad.write_bytes(b"")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    for dst in (out_dir / "o.webm", out_dir / "frames"):
        with pytest.raises(VideoError) as info:
            remove_video(bad, dst, remover=key)
        assert isinstance(info.value, ImageError)
        assert list(out_dir.iterdir()) == []
    expected = {
        "truncated": (TruncatedVideoError, UnreadableVideoError),
        "audio_only": (NoVideoStreamError,),
        "not_video": (UnreadableVideoError,),
        "empty": (UnreadableVideoError,),
    }[case]
    assert isinstance(info.value, expected)


@pytest.mark.parametrize("dst", ["out.mov", "new/deeper/frames/", "new/out.webm"])
def test_failure_mid_clip_leaves_nothing(tmp_path: Path, clip: Path, key: Any, dst: str) -> None:
    """A run stopped after a few frames leaves neither its output nor its temporary, nor
    the folders it made for them."""
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    from cleancut.errors import CancelledError

    with pytest.raises(CancelledError):
        remove_video(clip, tmp_path / dst, remover=key, cancel=cancel)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def unknown_codec_clip(path: Path) -> None:
    """A Matroska clip whose video track names a codec no FFmpeg knows (``V_QQQQQ/ISO/ASP``:
    an MPEG-4 track with its codec id changed), so the stream has no decoder."""
    good = path.with_name("good.mkv")
    with av.open(str(good), "w", format="matroska") as c:
        s = c.add_stream("mpeg4", rate=RATE)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        for i in range(3):
            f = av.VideoFrame.from_ndarray(np.full((H, W, 3), 40 * i, np.uint8), format="rgb24")
            f.pts = i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    data = good.read_bytes()
    assert data.count(b"V_MPEG4/ISO/ASP") == 1
    path.write_bytes(data.replace(b"V_MPEG4/ISO/ASP", b"V_QQQQQ/ISO/ASP"))
    good.unlink()


def test_unsupported_codec_is_a_clear_error_and_leaves_nothing(tmp_path: Path, remover: Remover) -> None:
    src = tmp_path / "in" / "odd.mkv"
    src.parent.mkdir()
    unknown_codec_clip(src)
    with pytest.raises(UnsupportedVideoError, match="cannot decode") as info:
        probe(src)
    assert isinstance(info.value, ImageError)
    for dst in ("out/o.webm", "out/frames/", "o.mov"):
        with pytest.raises(UnsupportedVideoError, match="convert"):
            remove_video(src, tmp_path / dst, remover=remover)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_crop_is_refused_for_a_clip(tmp_path: Path, clip: Path, key: Any) -> None:
    with pytest.raises(InvalidOptionError, match="crop"):
        remove_video(clip, tmp_path / "o.webm", remover=key, framing=Framing(crop=True))
    assert key.calls == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


# --------------------------------------------------------------------------- steady edges


def test_smoother_steadies_still_parts_and_follows_motion() -> None:
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    sm = TemporalSmoother()
    outs = []
    for _ in range(10):
        noisy = np.clip(frame + rng.normal(0, 2, frame.shape), 0, 255).astype(np.uint8)
        y = np.clip(0.5 + rng.normal(0, 0.05, (1, 1, 16, 16)), 0, 1).astype(np.float32)
        outs.append(sm.step(noisy, y))
    raw_flicker = 0.05 * np.sqrt(2) * np.sqrt(2 / np.pi)
    flicker = np.mean([np.abs(b - a).mean() for a, b in itertools.pairwise(outs[3:])])
    assert flicker < raw_flicker / 2
    moved = np.roll(frame, 16, axis=1)  # everything changes: the output is taken as it is
    y = np.full((1, 1, 16, 16), 0.9, np.float32)
    assert np.allclose(sm.step(moved, y), y)


def still_frames(n: int, seed: int = 3) -> list[np.ndarray]:
    """One frame of the test clip, repeated with fresh sensor noise: nothing moves."""
    rng = np.random.default_rng(seed)
    base = next(iter(iter_frames_of_clip())).astype(np.int16)
    return [np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8) for _ in range(n)]


def iter_frames_of_clip() -> list[np.ndarray]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.mp4"
        make_clip(path, n=1, audio=False)
        return [f.pixels for f in iter_frames(path)]


def test_smooth_off_cuts_every_frame_as_a_photo_and_on_steadies_a_still_clip(remover: Remover) -> None:
    frames = still_frames(4)
    alone = [remover.remove(f, mode="fast").mask for f in frames]
    off = [c.mask for c in cut_frames(frames, remover=remover, mode="fast", smooth=False)]
    on = [c.mask for c in cut_frames(frames, remover=remover, mode="fast")]
    for a, b in zip(alone, off, strict=True):
        assert np.array_equal(a, b)
    assert np.array_equal(on[0], alone[0])  # the first frame has no past
    flicker_on = np.mean([np.abs(b.astype(int) - a).mean() for a, b in itertools.pairwise(on)])
    flicker_off = np.mean([np.abs(b.astype(int) - a).mean() for a, b in itertools.pairwise(off)])
    assert flicker_on < flicker_off


def test_photo_options_reach_the_frames(tmp_path: Path, remover: Remover) -> None:
    """Edges (a hard threshold), framing (a blurred background, a square canvas) and the
    quality mode are the photos' on every frame."""
    src = tmp_path / "clip.mp4"
    make_clip(src, n=2, audio=False)
    frames = [f.pixels for f in iter_frames(src)]
    hard = list(cut_frames(frames, remover=remover, mode="fast", edges=EdgeOptions(threshold=128)))
    assert set(np.unique(hard[1].pixels[..., 3])) <= {0, 255}
    assert np.array_equal(
        hard[0].mask, remover.remove(frames[0], mode="fast", edges=EdgeOptions(threshold=128)).mask
    )
    out = tmp_path / "blur.mp4"
    remove_video(src, out, remover=remover, mode="fast", framing=Framing(background="blur", square=True))
    decoded, (streams, _) = decode_all(out)
    assert ("video", "h264") in streams and len(decoded) == 2
    assert (decoded[0].width, decoded[0].height) == (W, W)  # square: the longer side


def test_real_model_cuts_a_few_frames(tmp_path: Path, remover: Remover) -> None:
    src = tmp_path / "clip.mp4"
    masks = make_clip(src, n=3, audio=False)
    cuts = list(cut_frames(iter_frames(src), remover=remover, mode="fast"))
    assert len(cuts) == 3
    for cut, m in zip(cuts, masks, strict=True):
        assert cut.pixels.shape == (H, W, 4)
        alpha = cut.pixels[..., 3].astype(int)
        assert alpha[m].mean() > alpha[~m].mean()


def test_frames_over_the_pixel_limit_are_refused_before_any_output(tmp_path: Path, clip: Path) -> None:
    from dataclasses import replace

    from cleancut.video import VideoTooLargeError

    small = KeyRemover(tmp_path)
    small.settings = replace(small.settings, max_pixels=W * H - 1)
    out_dir = tmp_path / "out"
    with pytest.raises(VideoTooLargeError, match="limit"):
        remove_video(clip, out_dir / "o.webm", remover=small)
    assert small.calls == 0
    assert not out_dir.exists()


def test_package_exports_the_video_calls_without_importing_pyav() -> None:
    import subprocess
    import sys

    code = (
        "import sys, cleancut\n"
        "assert 'av' not in sys.modules and 'cleancut.video' not in sys.modules\n"
        "from cleancut import cut_frames, remove_video\n"
        "import cleancut.video as v\n"
        "assert remove_video is v.remove_video and cut_frames is v.cut_frames\n"
        "assert 'remove_video' in dir(cleancut)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def noisy_clip(path: Path, fmt: str, codec: str, *, n: int = 12, audio_seconds: float = 0.0) -> None:
    """``n`` frames of noise (so each frame is many bytes and a cut file keeps a few), in
    ``fmt``; with ``audio_seconds`` an AAC/Opus track of that length beside them."""
    rng = np.random.default_rng(3)
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream(codec, rate=RATE)
        s.width, s.height, s.pix_fmt = 160, 120, "yuv420p"
        a = None
        if audio_seconds:
            a = c.add_stream("libopus" if fmt == "webm" else "aac", rate=48000)
            a.layout = "mono"
        for i in range(n):
            f = av.VideoFrame.from_ndarray(rng.integers(0, 255, (120, 160, 3), np.uint8), format="rgb24")
            f.pts = i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
        if a is not None:
            samples = int(48000 * audio_seconds)
            for k in range(0, samples, 960):
                af = av.AudioFrame.from_ndarray(np.zeros((1, 960), np.float32), format="fltp", layout="mono")
                af.sample_rate, af.pts = 48000, k
                for p in a.encode(af):
                    c.mux(p)
            for p in a.encode():
                c.mux(p)


@pytest.mark.parametrize(
    ("fmt", "codec", "ext"),
    [("matroska", "libx264", "mkv"), ("webm", "libvpx-vp9", "webm"), ("avi", "libx264", "avi")],
)
def test_a_truncated_clip_of_any_container_is_one_error_and_leaves_nothing(
    tmp_path: Path, key: Any, fmt: str, codec: str, ext: str
) -> None:
    """A 12-frame clip cut to 60 %: Matroska and WebM state no frame count, so the decoded
    extent is compared with the duration their header states (issue 24: an MKV cut so was
    written with 5 frames and reported as success); AVI states its frame count. One
    TruncatedVideoError, from the local path and the Ray path's chunk plan, and nothing left
    behind; the whole clip still cuts. (An MP4 cut so loses its index at the end: unreadable,
    tested above; MPEG-TS states nothing, its duration is read off the file's own end.)"""
    from cleancut.video.chunks import plan_chunks

    whole = tmp_path / f"whole.{ext}"
    noisy_clip(whole, fmt, codec)
    assert len(list(iter_frames(whole))) == 12
    cut = tmp_path / "in" / f"cut.{ext}"
    cut.parent.mkdir()
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) * 6 // 10])
    out = tmp_path / "out"
    out.mkdir()
    for dst in (out / "o.webm", out / "frames"):
        with pytest.raises(TruncatedVideoError, match="truncated"):
            remove_video(cut, dst, remover=key)
        assert list(out.iterdir()) == []
    decoded: list[int] = []
    with pytest.raises(TruncatedVideoError, match="truncated"):
        decoded.extend(f.index for f in iter_frames(cut))
    assert 0 < len(decoded) < 12  # some frames decode: the check is on the extent, not on none
    with pytest.raises(TruncatedVideoError, match="truncated"):
        plan_chunks(cut)
    assert remove_video(whole, out / "whole.webm", remover=key).frames == 12


@pytest.mark.parametrize(
    ("fmt", "codec", "ext"),
    [("matroska", "libx264", "mkv"), ("webm", "libvpx-vp9", "webm"), ("mp4", "libx264", "mp4")],
)
def test_audio_longer_than_the_video_is_not_truncation(
    tmp_path: Path, key: Any, fmt: str, codec: str, ext: str
) -> None:
    """The header's duration covers every stream: a 1 s clip with 3 s of audio is whole."""
    from cleancut.video.chunks import plan_chunks

    src = tmp_path / f"long_audio.{ext}"
    noisy_clip(src, fmt, codec, audio_seconds=3.0)
    assert len(list(iter_frames(src))) == 12
    assert plan_chunks(src).frames == 12
    assert remove_video(src, tmp_path / "o.webm", remover=key).frames == 12
