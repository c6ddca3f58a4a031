"""Long clips on Ray (cleancut.distributed.run_ray_video), on a real local Ray (2 CPUs, two
actors of one thread) with the real fp16 model in ``fast`` mode.

Tiny clips with a keyframe every 4 frames are planned into chunks at keyframes (checked
without Ray, on H.264, VP9, rotated and variable-frame-rate clips: the chunks partition the
clip and decode, after a seek, to the very frames a straight decode gives). A still shot with
sensor noise and an AAC track, where the temporal step matters, is cut on Ray and compared
with ``remove_video`` on one machine: same frame count, timestamps and audio; alpha equal
wherever a chunk's warm-up reaches back to the clip's start, and within ``SEAM_TOLERANCE``
levels of 255 after a seam with 8 warm-up frames (``benchmarks/video_seams.py`` measures
≤ 1 level with the default 24 on real clips). A clip whose last chunk has frames over the
pixel limit fails on its worker with an error naming the chunk, and a truncated clip fails
before Ray starts; neither leaves anything behind. About 80 inferences.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cleancut import Remover, Settings
from cleancut.errors import InvalidOptionError, OutputExistsError
from cleancut.options import EngineOptions

av = pytest.importorskip("av")
ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'cleancut[ray]')")

from cleancut.distributed import run_ray_video  # noqa: E402
from cleancut.video import VideoError, VideoTooLargeError, iter_frames, remove_video  # noqa: E402
from cleancut.video.chunks import iter_chunk, plan_chunks  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

W, H, N, RATE, GOP = 96, 64, 24, 12, 4
#: 0.5 s = 6 frames: chunks start at the next keyframe, frames 0, 8 and 16
CHUNK_SECONDS = 0.5
WARMUP = 4
ENGINE = EngineOptions(model="isnet_fp16", threads=1)
#: alpha levels (of 255) allowed at a seam after 8 warm-up frames: 9 measured here
SEAM_TOLERANCE = 16


def make_clip(
    path: Path,
    *,
    n: int = N,
    audio: bool = True,
    big_from: int | None = None,
    rotate: int = 0,
    vfr: bool = False,
    noise: float = 2.0,
    photo: np.ndarray | None = None,
) -> None:
    """A red disc moving right over a textured, slightly noisy background, H.264 (VP9 for a
    ``.webm`` path) with a keyframe every ``GOP`` frames, and a mono AAC track. ``big_from``:
    frames from there on are twice the size (an MPEG-TS stream whose header states the first
    size). ``rotate``: display rotation metadata; ``vfr``: frames 100 and 60 ms apart in turn.
    ``photo``: every frame is this ``[H, W, 3]`` photo instead (a still shot), with the noise."""
    rng = np.random.default_rng(3)
    webm = path.suffix == ".webm"
    c = av.open(str(path), "w", format="mpegts" if big_from is not None else "webm" if webm else "mp4")
    tb = Fraction(1, 1000) if vfr or webm else Fraction(1, RATE)
    if webm:
        s = c.add_stream("libvpx-vp9", rate=RATE)
        s.options = {"g": str(GOP), "keyint_min": str(GOP), "deadline": "realtime", "cpu-used": "8"}
    else:
        s = c.add_stream("libx264", rate=RATE)
        s.options = {"x264-params": f"keyint={GOP}:min-keyint={GOP}:scenecut=0"}
    s.width, s.height, s.pix_fmt = W, H, "yuv420p"
    s.time_base = s.codec_context.time_base = tb
    if rotate:
        s.set_display_rotation(rotate)
    a = None
    if audio:
        a = c.add_stream("libopus" if webm else "aac", rate=48000 if webm else 16000)
        a.layout = "mono"
    big = None
    if big_from is not None:
        big = av.CodecContext.create("libx264", "w")
        big.width, big.height, big.pix_fmt, big.time_base = 2 * W, 2 * H, "yuv420p", tb
        big.options = {"x264-params": f"keyint={GOP}:min-keyint={GOP}:scenecut=0"}
    for i in range(n):
        scale = 2 if big_from is not None and i >= big_from else 1
        yy, xx = np.mgrid[0 : H * scale, 0 : W * scale] / scale
        shade = np.sin(xx / 3.0) * 40 + np.cos(yy / 4.0) * 40 + 120
        img = (shade[..., None] * np.array([0.6, 0.8, 1.0])).astype(np.uint8)
        img[(xx - (24 + 2 * i)) ** 2 + (yy - H // 2) ** 2 < (H // 4) ** 2] = (220, 40, 40)
        if photo is not None:
            img = photo
        img = np.clip(img + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)
        f = av.VideoFrame.from_ndarray(img, format="rgb24")
        f.pts = (i // 2) * 160 + (i % 2) * 100 if vfr else round(i / RATE / tb)
        f.time_base = tb
        packets = big.encode(f) if scale == 2 and big is not None else s.encode(f)
        if scale == 2 and i == big_from:
            packets = [*s.encode(None), *packets]  # the small encoder's last frames first
        for p in packets:
            p.stream = s
            c.mux(p)
    for p in big.encode(None) if big is not None else s.encode():
        p.stream = s
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


def decoded(path: Path) -> tuple[list[float], list[np.ndarray], int]:
    """Each video frame's time and alpha, and the number of audio packets."""
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
        times = [float(f.pts * f.time_base) for f in frames]
        alphas = [f.to_ndarray(format="rgba")[..., 3].astype(np.int16) for f in frames]
    with av.open(str(path)) as c:
        audio = sum(1 for p in c.demux(audio=0) if p.size) if c.streams.audio else 0
    return times, alphas, audio


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    make_clip(path)
    return path


@pytest.fixture(scope="module")
def still_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A still shot of a cat with light sensor noise: its fur edge keeps the network output
    uncertain, so the temporal step matters and a chunk started fresh would show a seam
    (33 of 255 at frame 8 without warm-up, 9 at frame 16 with 8 warm-up frames)."""
    from PIL import Image

    from conftest import EXAMPLES

    with Image.open(EXAMPLES / "chelsea.jpg") as im:
        photo = np.asarray(im.convert("RGB").resize((W, H), Image.Resampling.BILINEAR))
    path = tmp_path_factory.mktemp("still") / "still.mp4"
    make_clip(path, photo=photo, noise=3.0)
    return path


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    """One local Ray for the module; run_ray_video uses it as it is and leaves it running."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    try:
        yield ray
    finally:
        ray.shutdown()


# --------------------------------------------------------------------------- planning


@pytest.mark.parametrize("kind", ["mp4", "webm", "rotated", "vfr"])
def test_chunks_start_at_keyframes_and_decode_like_the_whole_clip(
    clip: Path, tmp_path: Path, kind: str
) -> None:
    if kind != "mp4":
        clip = tmp_path / ("clip.webm" if kind == "webm" else "clip.mp4")
        make_clip(clip, audio=False, rotate=90 if kind == "rotated" else 0, vfr=kind == "vfr")
    plan = plan_chunks(clip, chunk_seconds=CHUNK_SECONDS, warmup=WARMUP)
    assert plan.frames == N
    if kind != "vfr":  # at 80 ms a frame on average, 0.5 s is 7 frames: the next keyframe is 8 too
        assert [(c.first, c.frames, c.warmup) for c in plan.chunks] == [(0, 8, 0), (8, 8, 4), (16, 8, 4)]
    assert len(plan.chunks) > 1
    whole = {f.pts: f for f in iter_frames(clip)}
    order = sorted(whole)
    seen: list[int] = []
    for chunk in plan.chunks:
        got = list(iter_chunk(clip, chunk))
        warm = [f for f, w in got if w]
        own = [f for f, w in got if not w]
        assert len(warm) == chunk.warmup and len(own) == chunk.frames
        assert [f.pts for f in warm] == order[chunk.first - chunk.warmup : chunk.first]
        for f, _ in got:  # decoded after a seek: the same pixels (upright), the same index
            assert np.array_equal(f.pixels, whole[f.pts].pixels) and f.index == whole[f.pts].index
            assert f.pixels.shape == ((W, H, 3) if kind == "rotated" else (H, W, 3))
        seen += [f.pts for f in own]
    assert seen == order  # every frame in exactly one chunk, in order
    with pytest.raises(InvalidOptionError, match="chunk_seconds"):
        plan_chunks(clip, chunk_seconds=0)


def test_truncated_clip_fails_before_the_cluster_and_leaves_nothing(tmp_path: Path, clip: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(VideoError):
        run_ray_video(bad, out / "cut.mov", engine=ENGINE, chunk_seconds=CHUNK_SECONDS)
    assert list(out.iterdir()) == []


# --------------------------------------------------------------------------- on Ray


def test_ray_matches_the_single_machine_run(
    local_ray: Any, still_clip: Path, model_settings: Settings, tmp_path: Path
) -> None:
    """Chunks at frames 0, 8 and 16 with 8 warm-up frames: chunk 1's warm-up reaches back to
    the clip's start, so its smoother state, and every alpha value, must equal the single
    machine's; chunk 2's starts at frame 8 and must be within ``SEAM_TOLERANCE`` (what 8
    frames leave of a fresh start's difference; the default 24 leave ≤ 1 level)."""
    remover = Remover.from_options(ENGINE, settings=model_settings).load()
    one = remove_video(still_clip, tmp_path / "one.mov", remover=remover, mode="fast")
    done: list[int] = []
    many = run_ray_video(
        still_clip,
        tmp_path / "many.mov",
        mode="fast",
        engine=ENGINE,
        settings=model_settings,
        num_workers=2,
        chunk_seconds=CHUNK_SECONDS,
        warmup=8,
        progress=lambda d, t: done.append(d),
    )
    assert many.frames == one.frames == N and many.chunks == 3 and many.workers == 2
    assert done == list(range(1, N + 1))
    times1, alpha1, audio1 = decoded(one.path)
    times2, alpha2, audio2 = decoded(many.path)
    assert times2 == pytest.approx(times1, abs=1e-6)
    assert times2 == pytest.approx([i / RATE for i in range(N)], abs=0.002)
    assert audio2 == audio1 > 0
    diffs = [int(np.abs(a - b).max()) for a, b in zip(alpha1, alpha2, strict=True)]
    assert diffs[:16] == [0] * 16, diffs  # chunk 0, and chunk 1 warmed up from the start
    assert max(diffs[16:]) <= SEAM_TOLERANCE, diffs
    assert alpha2[12].max() > 200 and alpha2[12].min() < 30  # a real cut-out, not a blank
    assert leftovers(tmp_path) == []
    with pytest.raises(OutputExistsError):  # never replaced without overwrite
        run_ray_video(still_clip, tmp_path / "many.mov", engine=ENGINE, settings=model_settings)


def test_a_failing_chunk_names_itself_and_leaves_nothing(
    local_ray: Any, model_settings: Settings, tmp_path: Path
) -> None:
    src = tmp_path / "grows.ts"
    make_clip(src, n=12, audio=False, big_from=8)
    small = replace(model_settings, max_pixels=W * H)  # the header's size passes, the last chunk's not
    out = tmp_path / "out"
    with pytest.raises(VideoTooLargeError, match=r"chunk 2 \(frames 8–11") as info:
        run_ray_video(
            src,
            out / "cut.webm",
            mode="fast",
            engine=ENGINE,
            settings=small,
            num_workers=2,
            chunk_seconds=0.25,
            warmup=2,
        )
    assert "over the limit" in str(info.value)
    assert not out.exists() or list(out.iterdir()) == []


def test_chunks_come_back_in_order_within_the_window(local_ray: Any, clip: Path) -> None:
    from cleancut.distributed.video import _in_order

    # defined here, so that Ray sends the classes by value (workers cannot import tests)
    class Tracker:
        """Counts the chunks the actors were given."""

        def __init__(self) -> None:
            self.started = 0

        def start(self) -> None:
            self.started += 1

        def count(self) -> int:
            return self.started

    class Echo:
        """A chunk worker that only says which chunk it was given: the scheduling is under
        test here, not the cut."""

        def __init__(self, tracker: Any) -> None:
            self.tracker = tracker

        def cut(self, src: str, chunk: Any) -> Any:
            ray.get(self.tracker.start.remote())
            return chunk.index

    plan = plan_chunks(clip, chunk_seconds=0.25, warmup=0)
    chunks = plan.chunks * 4  # 12 chunk jobs
    tracker = ray.remote(Tracker).options(num_cpus=0).remote()
    actors = [ray.remote(Echo).options(num_cpus=0).remote(tracker) for _ in range(2)]
    window = 3
    got = []
    for i, index in enumerate(_in_order(ray, actors, str(clip), chunks, window)):
        got.append(index)
        assert ray.get(tracker.count.remote()) <= i + window  # never more than the window out
    assert got == [c.index for c in chunks]


# --------------------------------------------------------------------------- the command line


def test_cli_engine_ray_cuts_a_clip_like_one_machine(
    local_ray: Any, still_clip: Path, model_settings: Settings, tmp_path: Path
) -> None:
    """``cleancut clip.mp4 -o out.mov --engine ray``: the clip goes to run_ray_video (one
    chunk here: the default 10 s chunks), and its frames are the single machine's; a rerun
    skips the finished output; photos beside clips on Ray are a usage error (exit 2)."""
    from click.testing import CliRunner

    from cleancut.cli import cli

    settings = ["--cache-dir", str(model_settings.cache_dir), "--offline"]
    out = tmp_path / "out.mov"
    args = [str(still_clip), "-o", str(out), "--engine", "ray", "--num-workers", "1", "--threads", "1"]
    res = CliRunner().invoke(cli, [*args, "--mode", "fast", *settings])
    assert res.exit_code == 0, res.output
    assert f"wrote {out}" in res.output
    remover = Remover.from_options(ENGINE, settings=model_settings).load()
    one = remove_video(still_clip, tmp_path / "one.mov", remover=remover, mode="fast")
    times1, alpha1, audio1 = decoded(one.path)
    times2, alpha2, audio2 = decoded(out)
    assert times2 == pytest.approx(times1, abs=1e-6) and audio2 == audio1 > 0
    assert max(int(np.abs(a - b).max()) for a, b in zip(alpha1, alpha2, strict=True)) == 0
    res = CliRunner().invoke(cli, [*args, "--mode", "fast", *settings])
    assert res.exit_code == 0 and "skipped" in res.output, res.output

    photo = tmp_path / "photo.jpg"
    photo.write_bytes((Path(__file__).resolve().parents[1] / "examples" / "chelsea.jpg").read_bytes())
    res = CliRunner().invoke(
        cli, [str(still_clip), str(photo), "-o", str(tmp_path / "both"), "--engine", "ray", *settings]
    )
    assert res.exit_code == 2 and "photos or clips" in res.output, res.output
    assert not (tmp_path / "both").exists()
