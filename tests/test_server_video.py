"""``POST /api/remove-video`` and the clip jobs, in-process (``TestClient``) with the real model.

Clips are made here with PyAV from the bundled astronaut photo (a window sliding over it, so
the real network finds a subject in every frame). Real inferences are few: a handful of
small frames per finished job. Every refusal (limits, bad clips, bad options, capacity) is
answered before any inference, and the tests check that from the job queue's own counters;
capacity is exercised with a real clip job holding the slot, then cancelled.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the server extra is not installed: pip install 'cleancut[server]'")
av = pytest.importorskip("av", reason="the video extra is not installed: pip install 'cleancut[video]'")

from click.testing import CliRunner  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402

from cleancut import Remover, Settings  # noqa: E402
from cleancut.errors import InvalidOptionError  # noqa: E402
from cleancut.server import ServerSettings, create_app  # noqa: E402
from cleancut.server.command import serve  # noqa: E402
from cleancut.video import cut_frames, iter_frames  # noqa: E402
from conftest import EXAMPLES, REPO  # noqa: E402

W, H, RATE = 128, 96, 12
ISOLATION = {
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-embedder-policy": "require-corp",
}
#: A bound on waiting for a job so that a broken server fails the test instead of hanging it
#: (never a measurement: nothing here asserts how long anything took).
WAIT_S = 600.0


# --------------------------------------------------------------------------- clips


def astronaut_frames(n: int, w: int = W, h: int = H) -> list[np.ndarray]:
    """``n`` RGB frames: a window moving 3 px a frame over the astronaut photo, to and fro."""
    photo = Image.open(EXAMPLES / "astronaut.jpg").convert("RGB")
    side = max(w, h) + 40
    big = np.asarray(photo.resize((side, side), Image.Resampling.BILINEAR))
    span = (side - w) // 3  # steps before the window reaches the edge
    out = []
    for i in range(n):
        k = i % (2 * span)
        x = 3 * (k if k <= span else 2 * span - k)
        out.append(np.ascontiguousarray(big[20 : 20 + h, x : x + w]))
    return out


def write_clip(
    path: Path,
    frames: list[np.ndarray],
    *,
    container: str = "mp4",
    codec: str = "libx264",
    audio: bool = True,
    vfr: bool = False,
    faststart: bool = False,
) -> list[float]:
    """Encode ``frames`` (H.264 in MP4 by default, with a mono AAC tone); ``vfr``: frames
    100 ms and 60 ms apart in turn; ``faststart``: the MP4 index (with the frame count) at
    the front. Returns each frame's time in seconds."""
    c = av.open(str(path), "w", format=container, options={"movflags": "faststart"} if faststart else {})
    s = c.add_stream(codec, rate=RATE)
    s.height, s.width = frames[0].shape[:2]
    s.pix_fmt = "yuv420p"
    tb = Fraction(1, 1000) if vfr else Fraction(1, RATE)
    s.time_base = s.codec_context.time_base = tb
    a = None
    if audio:
        a = c.add_stream("aac", rate=16000)
        a.layout = "mono"
    times, t = [], 0
    for i, px in enumerate(frames):
        f = av.VideoFrame.from_ndarray(px, format="rgb24")
        f.pts, f.time_base = (t if vfr else i), tb
        times.append(float(f.pts * tb))
        t += 60 if i % 2 else 100
        for p in s.encode(f):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    if a is not None:
        samples = int(16000 * (times[-1] + 0.2))
        sig = (np.sin(np.arange(samples) * 2 * np.pi * 440 / 16000) * 0.3).astype(np.float32)
        for k in range(0, samples, 1024):
            af = av.AudioFrame.from_ndarray(sig[None, k : k + 1024], format="fltp", layout="mono")
            af.sample_rate, af.pts = 16000, k
            for p in a.encode(af):
                c.mux(p)
        for p in a.encode():
            c.mux(p)
    c.close()
    return times


def audio_only(path: Path) -> None:
    with av.open(str(path), "w", format="mp4") as c:
        a = c.add_stream("aac", rate=16000)
        a.layout = "mono"
        af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        af.sample_rate, af.pts = 16000, 0
        for p in [*a.encode(af), *a.encode()]:
            c.mux(p)


def decode_result(data: bytes, *, alpha: bool) -> tuple[list[np.ndarray], list[float], list[tuple[str, str]]]:
    """Every frame of an encoded result (RGBA through libvpx-vp9 for VP9, which reads the
    alpha channel; RGB or gray otherwise), each frame's time, and the streams."""
    c = av.open(io.BytesIO(data))
    s = c.streams.video[0]
    streams = [(st.type, st.codec_context.name) for st in c.streams]
    frames: list[Any] = []
    if alpha:
        ctx = av.codec.CodecContext.create("libvpx-vp9", "r")
        for p in c.demux(s):
            if p.size:
                frames.extend(ctx.decode(p))
        frames.extend(ctx.decode(None))
        pixels = [f.to_ndarray(format="rgba") for f in frames]
    else:
        frames = list(c.decode(s))
        pixels = [f.to_ndarray(format="rgb24") for f in frames]
    times = [float(f.pts * s.time_base) for f in frames]
    c.close()
    return pixels, times, streams


# --------------------------------------------------------------------------- server


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body["error"] == code, body
    assert isinstance(body["detail"], str) and body["detail"]
    for name, value in ISOLATION.items():
        assert response.headers[name] == value
    return body


def leftovers(root: Path) -> list[str]:
    """Every file under the server's clip folder (folders themselves do not count)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())


def wait_done(client: TestClient, status_url: str) -> tuple[dict[str, Any], list[int]]:
    """Poll the job until it ends; its last status and the frames-done counts seen."""
    seen: list[int] = []
    deadline = time.monotonic() + WAIT_S
    while True:
        r = client.get(status_url)
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == "no-store"
        job: dict[str, Any] = r.json()
        seen.append(job["frames"]["done"])
        if job["state"] not in ("queued", "running"):
            return job, seen
        assert time.monotonic() < deadline, f"the job did not end: {job}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def video_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server-video")


@pytest.fixture(scope="module")
def settings(model_settings: Settings, video_root: Path) -> ServerSettings:
    return ServerSettings(core=model_settings, load_in_background=False, browser=False, video_dir=video_root)


@pytest.fixture(scope="module")
def client(settings: ServerSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return astronaut_frames(5)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, frames: list[np.ndarray]) -> tuple[bytes, list[float]]:
    path = tmp_path_factory.mktemp("clips") / "walk.mp4"
    times = write_clip(path, frames, vfr=True)
    return path.read_bytes(), times


def queue_stats(client: TestClient) -> Any:
    return client.app.state.cleancut.queue.stats()  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- real clips


def test_clip_becomes_a_webm_with_alpha_frame_for_frame(
    client: TestClient,
    clip: tuple[bytes, list[float]],
    frames: list[np.ndarray],
    remover: Remover,
    video_root: Path,
    tmp_path: Path,
) -> None:
    data, times = clip
    before = queue_stats(client)
    r = client.post("/api/remove-video", files={"file": ("walk.mp4", data, "video/mp4")})
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == job["status_url"] == f"/api/jobs/{job['id']}"
    assert job["state"] in ("queued", "running")
    assert job["frames"] == {"done": 0, "total": len(frames)}
    assert job["result"] is None and job["error"] is None
    final, seen = wait_done(client, job["status_url"])
    assert final["state"] == "done", final
    assert seen == sorted(seen) and seen[-1] == len(frames)  # progress only moves forward
    assert final["progress"] == 1.0 and final["eta_s"] is None and final["expires_in"] > 0
    result = final["result"]
    assert result["media_type"] == "video/webm" and result["filename"] == "walk.cutout.webm"

    r = client.get(result["url"])
    assert r.status_code == 200
    assert r.headers["content-type"] == "video/webm"
    assert r.headers["content-disposition"] == 'attachment; filename="walk.cutout.webm"'
    assert len(r.content) == result["size"]
    pixels, got_times, streams = decode_result(r.content, alpha=True)
    assert ("video", "vp9") in streams and ("audio", "opus") in streams  # the audio came along
    assert len(pixels) == len(frames)
    assert got_times == pytest.approx(times, abs=1e-3)  # variable frame timing kept
    assert all(p.shape == (H, W, 4) for p in pixels)
    # The library's cut-out of the same decoded frames (same smoothing): the server's clip
    # is it, up to VP9's loss on the alpha plane.
    source = tmp_path / "walk.mp4"
    source.write_bytes(data)
    want = [c.mask for c in cut_frames(iter_frames(source), remover=remover)]
    for got, mask in zip(pixels, want, strict=True):
        alpha = got[:, :, 3].astype(np.int16)
        assert alpha.min() < 30 and alpha.max() > 225  # a subject on a transparent background
        assert float(np.abs(alpha - mask).mean()) < 3.0

    # One inference per frame, each a job of its own on the inference pool (photos take
    # their turn between two frames), and the slot given back.
    after = queue_stats(client)
    assert after.accepted == before.accepted + 1 and after.admitted == 0
    # Downloaded once: then the job and every file are gone.
    assert_error(client.get(result["url"]), 404, "not_found")
    assert_error(client.get(job["status_url"]), 404, "not_found")
    assert leftovers(video_root) == []


def test_mp4_on_a_colour_mask_in_mov_and_a_raw_body(
    client: TestClient, clip: tuple[bytes, list[float]], frames: list[np.ndarray], video_root: Path
) -> None:
    data, _times = clip
    # mp4 has no alpha: without a colour it is flattened on white, as by the CLI and the
    # library (issue 24: the server answered 422 where the CLI wrote white)
    r = client.post(
        "/api/remove-video?format=mp4&smooth=false",
        content=data,
        headers={"Content-Type": "video/mp4"},
    )
    assert r.status_code == 202, r.text
    final, _ = wait_done(client, r.json()["status_url"])
    assert final["state"] == "done", final
    assert final["result"]["filename"] == "clip.cutout.mp4"  # a raw body has no name
    body = client.get(final["result"]["url"])
    assert body.headers["content-type"] == "video/mp4"
    pixels, _, streams = decode_result(body.content, alpha=False)
    assert ("video", "h264") in streams and len(pixels) == len(frames)
    corners = np.stack([p[:4, :4].reshape(-1, 3) for p in pixels])
    assert corners.min() > 200  # flattened on white where the background was

    r = client.post(
        "/api/remove-video",
        files={"file": ("walk.mp4", data, "video/mp4")},
        data={"type": "mask", "format": "mov"},
    )
    assert r.status_code == 202, r.text
    final, _ = wait_done(client, r.json()["status_url"])
    assert final["state"] == "done", final
    body = client.get(final["result"]["url"])
    assert body.headers["content-type"] == "video/quicktime"
    with av.open(io.BytesIO(body.content)) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "prores"
        decoded = [f.to_ndarray(format="gray") for f in c.decode(s)]
    assert len(decoded) == len(frames)
    assert all(m.min() < 30 and m.max() > 225 for m in decoded)  # a mask: subject white

    # A background image, uploaded beside the clip (as for photos), behind every frame.
    green = io.BytesIO()
    Image.new("RGB", (40, 30), (20, 200, 60)).save(green, "PNG")
    r = client.post(
        "/api/remove-video",
        files={
            "file": ("walk.mp4", data, "video/mp4"),
            "background": ("bg.png", green.getvalue(), "image/png"),
        },
        data={"format": "mp4"},
    )
    assert r.status_code == 202, r.text
    final, _ = wait_done(client, r.json()["status_url"])
    assert final["state"] == "done", final
    pixels, _, _ = decode_result(client.get(final["result"]["url"]).content, alpha=False)
    corner = np.stack([p[:4, :4].reshape(-1, 3) for p in pixels]).mean(axis=(0, 1))
    assert corner[1] > 150 and corner[0] < 80 and corner[2] < 110, corner  # green where the background was
    assert leftovers(video_root) == []


# --------------------------------------------------------------------------- refusals before inference


@pytest.fixture(scope="module")
def tight(
    model_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, Path]]:
    root = tmp_path_factory.mktemp("tight")
    settings = ServerSettings(
        core=model_settings,
        load_in_background=False,
        browser=False,
        video_dir=root,
        max_video_bytes=200_000,
        max_video_frames=4,
        max_video_seconds=1.0,
        max_video_pixels=W * H,
    )
    with TestClient(create_app(settings)) as c:
        yield c, root


def test_over_limit_clips_are_refused_before_any_inference(
    tight: tuple[TestClient, Path], tmp_path: Path, frames: list[np.ndarray]
) -> None:
    c, root = tight
    many = tmp_path / "many.mp4"
    write_clip(many, astronaut_frames(6), audio=False)  # 6 frames > 4
    long = tmp_path / "long.webm"  # 3 frames over 2 s > 1 s (VP9 in WebM: no frame count in the header)
    write_clip(long, astronaut_frames(3), container="webm", codec="libvpx-vp9", audio=False, vfr=False)
    slow = tmp_path / "slow.mp4"
    c_ = av.open(str(slow), "w", format="mp4")
    s = c_.add_stream("libx264", rate=1)
    s.width, s.height, s.pix_fmt = W, H, "yuv420p"
    s.time_base = s.codec_context.time_base = Fraction(1, 1)
    for i, px in enumerate(astronaut_frames(3)):  # 3 frames 1 s apart: 3 s
        f = av.VideoFrame.from_ndarray(px, format="rgb24")
        f.pts, f.time_base = i, Fraction(1, 1)
        for p in s.encode(f):
            c_.mux(p)
    for p in s.encode():
        c_.mux(p)
    c_.close()
    big = tmp_path / "big.mp4"
    write_clip(big, astronaut_frames(2, w=W + 16), audio=False)  # more pixels than W×H

    def post(path: Path) -> Any:
        return c.post("/api/remove-video", files={"file": (path.name, path.read_bytes(), "video/mp4")})

    body = assert_error(post(many), 413, "video_too_long")
    assert "frames" in body["detail"] and "--max-video-frames" in body["detail"]
    # Its header counts its 6 frames: it has 6, not "more than 6".
    assert "the clip has 6 frames, over the server's limit of 4" in body["detail"], body
    # No count in a WebM's header: counting stops past the limit, so "more than 4".
    many_webm = tmp_path / "many.webm"
    write_clip(many_webm, astronaut_frames(6), container="webm", codec="libvpx-vp9", audio=False)
    body = assert_error(post(many_webm), 413, "video_too_long")
    assert "the clip has more than 4 frames, over the server's limit of 4" in body["detail"], body
    assert str(root) not in body["detail"]  # the server's paths stay its own
    body = assert_error(post(slow), 413, "video_too_long")
    assert "--max-video-seconds" in body["detail"]
    body = assert_error(post(big), 413, "video_too_large")
    assert "--max-video-pixels" in body["detail"]
    # Over the byte limit: a declared length is refused before the body is read ...
    huge = b"\x00" * 300_000
    body = assert_error(
        c.post("/api/remove-video", content=huge, headers={"Content-Type": "video/mp4"}),
        413,
        "upload_too_large",
    )
    assert "--max-video-mb" in body["detail"]

    # ... and a streamed body without one is cut off at the limit.
    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"\x00" * 65536

    assert_error(
        c.post("/api/remove-video", content=chunks(), headers={"Content-Type": "video/mp4"}),
        413,
        "upload_too_large",
    )
    stats = c.app.state.cleancut.queue.stats()  # type: ignore[attr-defined]
    assert (stats.accepted, stats.admitted, stats.mean_inference_s) == (0, 0, None)  # no slot, no inference
    assert leftovers(root) == []


def test_bad_clips_and_options_are_clear_4xx_and_leave_nothing(
    client: TestClient, clip: tuple[bytes, list[float]], tmp_path: Path, video_root: Path
) -> None:
    data, _ = clip
    before = queue_stats(client)

    def post(payload: bytes, name: str = "x.mp4", **fields: str) -> Any:
        return client.post("/api/remove-video", files={"file": (name, payload, "video/mp4")}, data=fields)

    assert_error(post(b"GIF89a not a clip at all \x00\x01" * 40), 400, "unreadable_video")
    assert_error(post(bytes(range(256)) * 64), 400, "unreadable_video")
    body = assert_error(post(data[: len(data) // 2]), 400, "unreadable_video")  # the index is at the end
    assert "the clip" in body["detail"] and str(video_root) not in body["detail"]
    # Truncated where the index survives (at the front of the MP4, or WebM's header): the
    # frames run out before the end, found before any inference.
    front = tmp_path / "front.mp4"
    write_clip(front, astronaut_frames(8), audio=False, faststart=True)
    cut = front.read_bytes()
    body = assert_error(post(cut[: len(cut) * 2 // 3]), 400, "truncated_video")
    assert "of the 8 frames" in body["detail"]
    webm = tmp_path / "t.webm"
    write_clip(webm, astronaut_frames(5), container="webm", codec="libvpx-vp9", audio=False)
    cut = webm.read_bytes()
    assert_error(post(cut[: len(cut) * 2 // 3], "t.webm"), 400, "truncated_video")
    silent = tmp_path / "silent.mp4"
    audio_only(silent)
    body = assert_error(post(silent.read_bytes()), 400, "no_video_stream")
    assert "no video stream" in body["detail"]
    assert_error(post(b""), 400, "empty_body")
    assert_error(
        client.post("/api/remove-video", content=b"", headers={"Content-Type": "video/mp4"}),
        400,
        "empty_body",
    )
    assert_error(
        client.post("/api/remove-video", files={"clip": ("x.mp4", data, "video/mp4")}), 400, "missing_file"
    )
    assert_error(
        client.post("/api/remove-video", content=data, headers={"Content-Type": "text/plain"}),
        415,
        "unsupported_media_type",
    )
    # Options: the photos' table, less what has no meaning for a clip.
    for query, fragment in [
        ("format=png", "not a clip format"),
        ("quality=0.5", "applies to photos only"),
        ("bgcolor=white", "unknown option"),
        ("type=mask&background=blur", "mask"),
        ("smooth=maybe", "smooth must be true or false"),
        ("threshold=300", "threshold"),
        ("model=isnet_quint8", "not loaded"),
        ("crop=true", "crop is for photos"),
        ("margin=0.1", "crop is for photos"),
        ("preset=ecommerce", "crop is for photos"),
    ]:
        body = assert_error(
            client.post(f"/api/remove-video?{query}", content=data, headers={"Content-Type": "video/mp4"}),
            422,
            "invalid_option",
        )
        assert fragment in body["detail"], (query, body)
    body = assert_error(post(data, format="gif"), 422, "invalid_option")  # as a form field too
    # A background image that cannot be read: a 400 that says which image, before inference.
    r = client.post(
        "/api/remove-video",
        files={"file": ("x.mp4", data, "video/mp4"), "background": ("bg.png", b"not an image", "image/png")},
    )
    body = assert_error(r, 400, "unreadable_image")
    assert body["detail"].startswith("the background image:")
    after = queue_stats(client)
    assert after.accepted == before.accepted  # nothing took a slot
    assert leftovers(video_root) == []


# --------------------------------------------------------------------------- capacity


def test_a_running_clip_holds_one_slot_lets_photos_through_and_can_be_cancelled(
    model_settings: Settings, tmp_path: Path
) -> None:
    root = tmp_path / "videos"
    long = tmp_path / "long.mp4"
    write_clip(long, astronaut_frames(40, w=96, h=72), audio=False)
    photo = (EXAMPLES / "astronaut.jpg").read_bytes()
    settings = ServerSettings(
        core=model_settings, load_in_background=False, browser=False, video_dir=root, workers=1, queue_size=1
    )
    with TestClient(create_app(settings)) as c:
        queue = c.app.state.cleancut.queue  # type: ignore[attr-defined]
        r = c.post("/api/remove-video", content=long.read_bytes(), headers={"Content-Type": "video/mp4"})
        assert r.status_code == 202, r.text
        job = r.json()
        assert queue.stats().admitted == 1  # the clip holds one slot of two
        # A second clip: --max-video-jobs 1 is running, refused at once with Retry-After.
        r = c.post("/api/remove-video", content=long.read_bytes(), headers={"Content-Type": "video/mp4"})
        body = assert_error(r, 503, "videos_busy")
        assert int(r.headers["retry-after"]) >= 1 and "--max-video-jobs" in body["detail"]
        # A photo takes the other slot and runs between two of the clip's frames: it is
        # answered while the clip is still far from done (it does not wait for the clip).
        r = c.post("/api/remove", content=photo, headers={"Content-Type": "image/jpeg"})
        assert r.status_code == 200, r.text
        status = c.get(job["status_url"]).json()
        assert status["state"] == "running" and status["frames"]["done"] < status["frames"]["total"]
        r = c.delete(job["status_url"])
        assert r.status_code == 204
        assert_error(c.get(job["status_url"]), 404, "not_found")
        deadline = time.monotonic() + WAIT_S
        while queue.stats().admitted or leftovers(root):  # the run winds up: slot back, files gone
            assert time.monotonic() < deadline, (queue.stats(), leftovers(root))
            time.sleep(0.05)
    assert not root.exists() or leftovers(root) == []


def test_full_queue_is_503_with_retry_after_for_clips_and_photos(
    model_settings: Settings, tmp_path: Path
) -> None:
    root = tmp_path / "videos"
    long = tmp_path / "long.mp4"
    write_clip(long, astronaut_frames(40, w=96, h=72), audio=False)
    photo = (EXAMPLES / "astronaut.jpg").read_bytes()
    settings = ServerSettings(
        core=model_settings,
        load_in_background=False,
        browser=False,
        video_dir=root,
        workers=1,
        queue_size=0,
        max_video_jobs=2,
    )
    with TestClient(create_app(settings)) as c:
        queue = c.app.state.cleancut.queue  # type: ignore[attr-defined]
        r = c.post("/api/remove-video", content=long.read_bytes(), headers={"Content-Type": "video/mp4"})
        assert r.status_code == 202, r.text
        job = r.json()
        # The only slot is the clip's: photos and clips alike are refused at once, before
        # their body is read, with the queue's own Retry-After.
        r = c.post("/api/remove", content=photo, headers={"Content-Type": "image/jpeg"})
        assert_error(r, 503, "overloaded")
        assert int(r.headers["retry-after"]) >= 1
        r = c.post("/api/remove-video", content=long.read_bytes(), headers={"Content-Type": "video/mp4"})
        body = assert_error(r, 503, "overloaded")
        assert int(r.headers["retry-after"]) >= 1 and "capacity" in body["detail"]
        assert queue.stats().rejected == 2
        assert leftovers(root) != []  # the running clip's own files, until it ends
        assert c.get(job["status_url"]).json()["state"] == "running"
    # The server stops with the clip still running: it is stopped, and the server's clip
    # folder goes with the server.
    assert not any(root.iterdir())


def test_a_clip_past_its_deadline_fails_with_504_and_leaves_nothing(
    model_settings: Settings, tmp_path: Path, clip: tuple[bytes, list[float]]
) -> None:
    data, _ = clip
    root = tmp_path / "videos"
    # A deadline already past when the job's first stage is handed to the pool: deterministic.
    settings = ServerSettings(
        core=model_settings, load_in_background=False, browser=False, video_dir=root, video_timeout=1e-6
    )
    with TestClient(create_app(settings)) as c:
        queue = c.app.state.cleancut.queue  # type: ignore[attr-defined]
        r = c.post("/api/remove-video", content=data, headers={"Content-Type": "video/mp4"})
        assert r.status_code == 202, r.text
        final, _ = wait_done(c, r.json()["status_url"])
        assert final["state"] == "failed" and final["result"] is None
        assert final["error"]["status"] == 504 and final["error"]["error"] == "timeout"
        assert "--video-timeout" in final["error"]["detail"]
        assert_error(c.get(final["status_url"] + "/result"), 409, "not_done")
        deadline = time.monotonic() + WAIT_S
        while queue.stats().admitted:  # the slot comes back once the stage has stopped
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert leftovers(root) == []  # the failed job's clip is gone; its status stays a while
        assert c.delete(final["status_url"]).status_code == 204
        assert_error(c.get(final["status_url"]), 404, "not_found")


def test_kept_results_are_bounded_and_expire(
    model_settings: Settings, tmp_path: Path, clip: tuple[bytes, list[float]]
) -> None:
    data, _ = clip
    root = tmp_path / "videos"
    short = tmp_path / "short.mp4"
    write_clip(short, astronaut_frames(2, w=64, h=48), audio=False)
    settings = ServerSettings(
        core=model_settings,
        load_in_background=False,
        browser=False,
        video_dir=root,
        max_video_results=1,
        video_result_ttl=2.0,
    )
    with TestClient(create_app(settings)) as c:
        r = c.post("/api/remove-video", content=short.read_bytes(), headers={"Content-Type": "video/mp4"})
        assert r.status_code == 202, r.text
        final, _ = wait_done(c, r.json()["status_url"])
        assert final["state"] == "done"
        # Its result waits for its download: the one place for a result is taken.
        r = c.post("/api/remove-video", content=data, headers={"Content-Type": "video/mp4"})
        body = assert_error(r, 503, "video_results_full")
        assert 1 <= int(r.headers["retry-after"]) <= 2 and "--max-video-results" in body["detail"]
        # Not downloaded: deleted once its time is up, files and all.
        deadline = time.monotonic() + WAIT_S
        while c.get(final["status_url"]).status_code == 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert_error(c.get(final["result"]["url"]), 404, "not_found")
        assert leftovers(root) == []
        assert c.get("/readyz").json()["videos"]["expired"] == 1


def test_a_result_being_downloaded_is_gone_for_every_other_request(
    tight: tuple[TestClient, Path], tmp_path: Path
) -> None:
    # The first download has claimed the result and is still being answered: a second GET
    # (or the status, or DELETE) is told "gone" at once, as it is once that answer has ended,
    # never a transient 409 "downloading".
    c, root = tight
    short = tmp_path / "short.mp4"
    write_clip(short, astronaut_frames(2, w=64, h=48), audio=False)
    r = c.post("/api/remove-video", content=short.read_bytes(), headers={"Content-Type": "video/mp4"})
    assert r.status_code == 202, r.text
    final, _ = wait_done(c, r.json()["status_url"])
    assert final["state"] == "done", final
    videos = c.app.state.cleancut.videos  # type: ignore[attr-defined]
    assert c.portal is not None
    job, done = c.portal.call(lambda: videos.claim(final["id"]))  # the first download, under way
    assert job.result is not None and job.result.exists()
    for answer in (c.get(final["result"]["url"]), c.get(final["status_url"]), c.delete(final["status_url"])):
        body = assert_error(answer, 404, "not_found")
        assert "already downloaded" in body["detail"]
    assert job.result.exists()  # the first download's file is still there for it ...
    c.portal.call(done)  # ... until its answer ends
    assert leftovers(root) == []
    assert_error(c.get(final["result"]["url"]), 404, "not_found")


# --------------------------------------------------------------------------- documents and settings


def test_config_openapi_and_page_know_the_clip_route(client: TestClient, settings: ServerSettings) -> None:
    limits = client.get("/api/config").json()["limits"]
    assert limits["max_video_bytes"] == settings.max_video_bytes
    assert limits["max_video_seconds"] == settings.max_video_seconds
    assert limits["max_video_frames"] == settings.max_video_frames
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/api/remove-video"]["post"]
    params = {p["name"]: p for p in op["parameters"]}
    assert params["format"]["schema"]["enum"] == ["webm", "mov", "mp4"]
    assert params["smooth"]["schema"]["type"] == "boolean"
    assert "quality" not in params
    assert {"model", "mode", "type", "bg_color", "refine", "background", "square", "preset"} <= set(params)
    assert not {"crop", "margin"} & set(params)  # refused for clips (the library's rule)
    assert set(op["requestBody"]["content"]) == {"video/*", "multipart/form-data"}
    assert {"202", "400", "413", "415", "422", "503"} <= set(op["responses"])
    assert {"/api/jobs/{job_id}", "/api/jobs/{job_id}/result"} <= set(spec["paths"])
    assert "delete" in spec["paths"]["/api/jobs/{job_id}"]
    # The page: a clip is accepted in server mode, sent to the clip route, polled, shown.
    page = client.get("/").text
    assert 'accept="image/*,video/*"' in page
    js = client.get("/static/js/server-engine.js").text
    assert "/api/remove-video" in js and "/api/jobs/" in js
    app = client.get("/static/js/app.js").text
    assert "<video" in page or 'createElement("video")' in app


def test_serve_flags_and_settings_checks() -> None:
    result = CliRunner().invoke(serve, ["--help"])
    assert result.exit_code == 0
    for option in (
        "--max-video-mb",
        "--max-video-seconds",
        "--max-video-frames",
        "--max-video-pixels",
        "--video-timeout",
        "--max-video-jobs",
        "--max-video-results",
        "--video-result-ttl",
        "--video-dir",
    ):
        assert option in result.output
    for bad in (
        {"max_video_seconds": 0.0},
        {"max_video_frames": 0},
        {"max_video_jobs": 2, "max_video_results": 1},
        {"video_result_ttl": -1.0},
    ):
        with pytest.raises(InvalidOptionError):
            ServerSettings(**bad)  # type: ignore[arg-type]
    result = CliRunner().invoke(serve, ["--max-video-jobs", "3", "--max-video-results", "2", "--offline"])
    assert result.exit_code == 2 and "max_video_results" in result.output


# --------------------------------------------------------------------------- the page, in a browser

CHROMIUM = os.environ.get("CLEANCUT_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = REPO / "artifacts"  # git-ignored: screenshots
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
]


@pytest.fixture
def live_url(model_settings: Settings, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real uvicorn server (what ``cleancut serve`` runs) on a free port, and its clip folder."""
    uvicorn = pytest.importorskip("uvicorn", reason="the server extra is not installed")
    root = tmp_path / "videos"
    settings = ServerSettings(core=model_settings, load_in_background=False, video_dir=root)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="cleancut-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_S
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", root
    finally:
        server.should_exit = True
        thread.join(30)


def test_page_cuts_a_clip_out_in_server_mode_with_a_frame_progress_bar(
    live_url: tuple[str, Path], clip: tuple[bytes, list[float]], frames: list[np.ndarray], tmp_path: Path
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    url, root = live_url
    data, times = clip
    source = tmp_path / "walk.mp4"
    source.write_bytes(data)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1200, "height": 900}, accept_downloads=True)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url + "/")
            page.wait_for_function("() => document.querySelector('#engine-note').textContent.length > 0")
            assert "clips" in page.inner_text("#clip-help").lower()

            # In the browser (private) mode a clip is refused with a clear message, and nothing is sent.
            if page.is_enabled('input[name="mode"][value="browser"]'):
                page.check('input[name="mode"][value="browser"]')
                page.set_input_files("#file", str(source))
                failed = page.wait_for_selector(".job.failed .job-error")
                assert failed is not None and "on the server only" in failed.inner_text()
                page.click(".job.failed .job-remove")

            # On the server: uploaded, a progress bar by frames, then the clip plays and downloads.
            page.check('input[name="mode"][value="server"]')
            page.evaluate(
                """() => {
                    window.seenDetails = [];
                    const seen = () => {
                        for (const d of document.querySelectorAll('.stage-detail')) {
                            window.seenDetails.push(d.textContent);
                        }
                    };
                    const options = {subtree: true, childList: true, characterData: true};
                    new MutationObserver(seen).observe(document.querySelector('#jobs'), options);
                }"""
            )
            page.set_input_files("#file", str(source))
            page.wait_for_function(
                "() => document.querySelector('.job.done video') || document.querySelector('.job.failed')",
                timeout=WAIT_S * 1000,
            )
            failed = page.query_selector(".job.failed .job-error")
            assert failed is None, failed.inner_text()
            seen = page.evaluate("window.seenDetails")
            # The bar went by frames, up to all of them.
            assert any(f"/ {len(frames)} frames" in s for s in seen), seen
            assert any(s.startswith(f"{len(frames)} / {len(frames)} frames") for s in seen), seen
            assert page.get_attribute(".job.done progress", "value") == "1"
            # The browser plays it: its metadata loads, and it lasts as long as the clip (its
            # audio, carried over, runs a little past the last frame).
            page.wait_for_function("() => document.querySelector('.job.done video').readyState >= 1")
            duration = page.evaluate("document.querySelector('.job.done video').duration")
            assert times[-1] < duration < times[-1] + 0.5
            page.wait_for_function("() => document.querySelector('.job.done video').readyState >= 2")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "web-clip.png"), full_page=True)
            link = page.locator(".job.done a.download")
            assert link.inner_text() == "Download WebM"
            with page.expect_download() as info:
                link.click()
            out = tmp_path / "page.webm"
            info.value.save_as(out)
            assert info.value.suggested_filename == "walk.cutout.webm"
            assert not errors, errors
        finally:
            browser.close()
    pixels, _, _ = decode_result(out.read_bytes(), alpha=True)
    assert len(pixels) == len(frames) and all(p[:, :, 3].min() < 30 for p in pixels)
    # Downloaded by the page: the server kept nothing.
    deadline = time.monotonic() + WAIT_S
    while leftovers(root):
        assert time.monotonic() < deadline, leftovers(root)
        time.sleep(0.05)
