"""The HTTP API, in-process (``TestClient(create_app(...))``) with the real model.

Real inferences are few (each is a full IS-Net pass): the option combinations that change
the output run end to end once each; validation, limits and errors are all answered before
the model runs, so they cost nothing. The overload and time-limit paths use the real job
queue; only the engine's stages are replaced where a test needs a job that blocks.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the server extra is not installed: pip install 'cleancut[server]'")

from click.testing import CliRunner
from fastapi.testclient import TestClient
from PIL import Image

from cleancut import Remover, Settings, UnreadableImageError
from cleancut.server import ServerSettings, create_app
from cleancut.server.browser_models import CHUNK_SIZE
from cleancut.server.command import serve
from cleancut.server.engine import Engine
from cleancut.server.ort_assets import ORT_FILES, ORT_WEB_VERSION, provision_ort
from cleancut.server.state import AppState
from conftest import EXAMPLES, TEST_CACHE
from slowpeers import TrickleUpload, free_port, live_server, post

ISOLATION = {
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-embedder-policy": "require-corp",
    "cross-origin-resource-policy": "same-origin",
}


def png_bytes(width: int = 32, height: int = 24, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (width, height), (200, 80, 40)).save(buf, "PNG")
    return buf.getvalue()


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == code, body
    assert isinstance(body["detail"], str) and body["detail"]
    for name, value in ISOLATION.items():
        assert response.headers[name] == value
    return body


def make_client(settings: ServerSettings) -> TestClient:
    return TestClient(create_app(settings))


@pytest.fixture(scope="module")
def settings(model_settings: Settings) -> ServerSettings:
    return ServerSettings(core=model_settings, load_in_background=False)


@pytest.fixture(scope="module")
def client(settings: ServerSettings) -> Iterator[TestClient]:
    with make_client(settings) as c:
        yield c


@pytest.fixture(scope="module")
def photo() -> bytes:
    return (EXAMPLES / "astronaut.jpg").read_bytes()


@pytest.fixture(scope="module")
def reference_mask(remover: Remover, photo: bytes) -> np.ndarray:
    """The library's mask for the photo: what every server answer must agree with."""
    return remover.remove(photo).mask


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


# --------------------------------------------------------------------------- real cut-outs


def test_deadline_terminates_a_real_inference(settings: ServerSettings) -> None:
    # First in the file on purpose: the cut-outs below run on the same (process-wide) ONNX
    # Runtime session afterwards, which shows that a terminated run leaves it usable.
    # ONNX Runtime: the backend whose runs can be terminated mid-way (RunOptions.terminate).
    plain = settings.with_(browser=False, backend="onnxruntime")
    with make_client(plain) as c:
        # One uninterrupted pass of the server's own session, to size the deadline by.
        remover = c.app.state.cleancut.engine.removers["isnet_fp16"]  # type: ignore[attr-defined]
        x = np.zeros((1, 3, 1024, 1024), np.float32)
        full = time.monotonic()
        remover.session.run(x)
        full = time.monotonic() - full
    if full < 0.5:
        pytest.skip(f"one pass takes {full:.2f} s here: too quick to cut short measurably")
    # 40 % of a pass: decoding a small PNG takes milliseconds, so the inference has started.
    with make_client(plain.with_(timeout=0.4 * full)) as c:
        queue = c.app.state.cleancut.queue  # type: ignore[attr-defined]
        request, answer = in_thread(
            lambda: c.post("/api/remove", content=png_bytes(64, 64), headers={"Content-Type": "image/png"})
        )
        # The inference really started (a 503 would mean the job never reached a worker) ...
        wait_for(lambda: queue.stats().running == 1 or not request.is_alive(), timeout=10)
        started = time.monotonic()
        assert queue.stats().running == 1, "the inference never started"
        request.join(30)
        body = assert_error(answer[0], 504, "timeout")
        assert "during inference" in body["detail"]
        # ... and was ended by the deadline, not run to its end: the worker is free well
        # before one uninterrupted pass would have ended.
        wait_for(lambda: queue.stats().admitted == 0 and queue.stats().running == 0, timeout=30)
        cut_short = time.monotonic() - started
        assert cut_short < 0.8 * full, (cut_short, full)
        stats = c.get("/readyz").json()["queue"]
        assert stats["timed_out"] == 1 and stats["mean_inference_s"] is None  # not a service time


def test_raw_body_png_matches_the_library(
    client: TestClient, photo: bytes, reference_mask: np.ndarray
) -> None:
    r = client.post("/api/remove", content=photo, headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert r.headers["content-disposition"] == 'inline; filename="image.cutout.png"'
    assert r.headers["x-image-width"] == "512" and r.headers["x-image-height"] == "512"
    timing = r.headers["server-timing"]
    for stage in ("decode", "queue", "inference", "encode"):
        assert f"{stage};dur=" in timing
    img = decode(r.content)
    assert img.mode == "RGBA" and img.size == (512, 512)
    alpha = np.asarray(img)[:, :, 3]
    # Same pipeline, same session: the server's cut-out is the library's.
    assert int(np.abs(alpha.astype(int) - reference_mask.astype(int)).max()) <= 1
    rgb = np.asarray(img)[:, :, :3]
    source = np.asarray(Image.open(EXAMPLES / "astronaut.jpg").convert("RGB"))
    hard = (alpha == 0) | (alpha == 255)  # soft edge pixels are decontaminated (the default)
    assert np.array_equal(rgb[hard], source[hard])


def test_multipart_background_lossless_webp(
    client: TestClient, photo: bytes, reference_mask: np.ndarray
) -> None:
    r = client.post(
        "/api/remove",
        files={"file": ("my photo.jpg", photo, "image/jpeg")},
        data={"type": "background", "format": "webp", "quality": "1", "model": "medium"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/webp"
    assert 'filename="my_photo.cutout.webp"' in r.headers["content-disposition"]
    img = decode(r.content)
    assert img.format == "WEBP" and img.mode == "RGBA"
    alpha = np.asarray(img)[:, :, 3].astype(int)
    assert int(np.abs(alpha - (255 - reference_mask.astype(int))).max()) <= 1


def test_mask_as_raw_alpha8(client: TestClient, photo: bytes, reference_mask: np.ndarray) -> None:
    r = client.post(
        "/api/remove?type=mask&format=alpha8", content=photo, headers={"Content-Type": "image/jpeg"}
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/x-alpha8;width=512;height=512"
    assert 'filename="image.cutout.alpha"' in r.headers["content-disposition"]
    mask = np.frombuffer(r.content, np.uint8).reshape(512, 512)
    assert int(np.abs(mask.astype(int) - reference_mask.astype(int)).max()) <= 1


def test_foreground_as_raw_rgba8(client: TestClient, photo: bytes, reference_mask: np.ndarray) -> None:
    r = client.post(
        "/api/remove",
        params={"format": "rgba8", "type": "fg"},
        content=photo,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/x-rgba8;width=512;height=512"
    px = np.frombuffer(r.content, np.uint8).reshape(512, 512, 4)
    assert int(np.abs(px[:, :, 3].astype(int) - reference_mask.astype(int)).max()) <= 1


def test_jpeg_on_a_colour(client: TestClient, photo: bytes, reference_mask: np.ndarray) -> None:
    r = client.post(
        "/api/remove?format=jpeg&quality=0.9&bg_color=%23ff0000",
        files={"file": ("a.jpg", photo, "image/jpeg")},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/jpeg"
    img = decode(r.content)
    assert img.mode == "RGB"
    px = np.asarray(img).astype(int)
    background = reference_mask < 10
    assert background.sum() > 1000
    mean = px[background].mean(axis=0)
    assert mean[0] > 230 and mean[1] < 30 and mean[2] < 30  # red where the mask is empty


def test_ecommerce_preset(client: TestClient, photo: bytes, reference_mask: np.ndarray) -> None:
    from cleancut.framing import Framing, frame_mask

    r = client.post(
        "/api/remove?preset=ecommerce&max_size=256", content=photo, headers={"Content-Type": "image/jpeg"}
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-image-width"] == r.headers["x-image-height"] == "256"
    img = decode(r.content)
    assert img.format == "PNG" and img.size == (256, 256)
    px = np.asarray(img.convert("RGBA"))
    assert (px[:, :, 3] == 255).all()
    # The library's mask framed the same way: white wherever it is empty, and the same box.
    framed, geo = frame_mask(reference_mask, Framing.ecommerce(max_size=256))
    assert (px[framed == 0][:, :3] == 255).all()
    assert r.headers["x-crop-box"] == ",".join(map(str, geo.box))


def test_background_image_upload_crop_and_edges(
    client: TestClient, photo: bytes, reference_mask: np.ndarray
) -> None:
    blue = io.BytesIO()
    Image.new("RGB", (40, 30), (0, 0, 255)).save(blue, "PNG")
    r = client.post(
        "/api/remove",
        files={
            "file": ("a.jpg", photo, "image/jpeg"),
            "background": ("bg.png", blue.getvalue(), "image/png"),
        },
        data={
            "crop": "true",
            "margin": "0.02",
            "refine": "guided",
            "decontaminate": "none",
            "format": "webp",
            "quality": "1",
        },
    )
    assert r.status_code == 200, r.text
    left, top, right, bottom = map(int, r.headers["x-crop-box"].split(","))
    img = decode(r.content)
    assert (
        img.size
        == (right - left, bottom - top)
        == (int(r.headers["x-image-width"]), int(r.headers["x-image-height"]))
    )
    px = np.asarray(img.convert("RGBA")).astype(int)
    assert (px[:, :, 3] == 255).all()
    empty = reference_mask[top:bottom, left:right] == 0
    assert empty.sum() > 1000
    assert (np.abs(px[empty][:, :3] - (0, 0, 255)).max(axis=1) <= 2).mean() > 0.97  # the blue image
    face = np.asarray(decode(photo).convert("RGB"))[60:120, 190:270].astype(int)
    assert np.abs(px[60 - top : 120 - top, 190 - left : 270 - left, :3] - face).mean() < 2


def test_unreadable_background_image_is_400(client: TestClient) -> None:
    r = client.post(
        "/api/remove",
        files={
            "file": ("a.png", png_bytes(), "image/png"),
            "background": ("bg.png", b"not an image", "image/png"),
        },
    )
    body = assert_error(r, 400, "unreadable_image")
    assert "background image" in body["detail"]


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("type=portrait", "output type"),
        ("format=gif", "output format"),
        ("quality=2", "quality"),
        ("quality=abc", "quality"),
        ("quality=nan", "quality"),
        ("bg_color=notacolour", "colour"),
        ("model=nope", "unknown model"),
        ("model=isnet_quint8", "not loaded"),
        ("bgcolor=white", "unknown option"),
        ("format=alpha8&bg_color=white", "alpha8"),
        ("format=alpha8&background=white", "alpha8"),
        ("background=/etc/passwd", "not a colour"),
        ("shadow=maybe", "shadow must be true or false"),
        ("padding=0.6", "padding must be a number in [0, 0.5)"),
        ("margin=-1", "margin"),
        ("blur=0", "blur"),
        ("fit=stretch", "fit must be one of"),
        ("preset=catalog", "unknown preset"),
        ("type=mask&background=white", "needs a cut-out"),
        ("type=background&shadow=1", "a shadow needs a subject"),
        ("refine=fancy", "unknown refine method"),
        ("decontaminate=all", "unknown decontaminate method"),
        ("threshold=300", "threshold"),
        ("feather=-2", "feather"),
        ("min_island=1", "min_island"),
        ("max_size=abc", "max_size must be a whole number"),
        ("max_size=0", "max_size"),
        ("bg_color=red&background=blue", "give one"),
    ],
)
def test_bad_options_are_422_before_anything_runs(client: TestClient, query: str, fragment: str) -> None:
    r = client.post(f"/api/remove?{query}", content=png_bytes(), headers={"Content-Type": "image/png"})
    body = assert_error(r, 422, "invalid_option")
    assert fragment in body["detail"].lower()


def test_bad_form_option_is_422(client: TestClient) -> None:
    r = client.post("/api/remove", files={"file": ("a.png", png_bytes(), "image/png")}, data={"type": "x"})
    assert_error(r, 422, "invalid_option")


def test_unreadable_and_truncated_images_are_400(client: TestClient, photo: bytes) -> None:
    r = client.post("/api/remove", content=b"certainly not a JPEG", headers={"Content-Type": "image/jpeg"})
    assert_error(r, 400, "unreadable_image")
    r = client.post("/api/remove", content=photo[: len(photo) // 3], headers={"Content-Type": "image/jpeg"})
    assert_error(r, 400, "truncated_image")


def test_empty_body_and_missing_file_are_400(client: TestClient) -> None:
    assert_error(
        client.post("/api/remove", content=b"", headers={"Content-Type": "image/png"}), 400, "empty_body"
    )
    r = client.post(
        "/api/remove", data={"type": "mask"}, files={"other": ("a.png", png_bytes(), "image/png")}
    )
    assert_error(r, 400, "missing_file")
    r = client.post(
        "/api/remove",
        content=b"--xyz\r\nnot really multipart",
        headers={"Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert_error(r, 400, "bad_multipart")


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", None])
def test_non_image_bodies_are_415(client: TestClient, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    r = client.post("/api/remove", content=b"hello", headers=headers)
    body = assert_error(r, 415, "unsupported_media_type")
    assert "multipart" in body["detail"]


def test_heic_without_its_plugin_is_415(client: TestClient) -> None:
    try:
        import pillow_heif  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("pillow-heif is installed: HEIC is supported here")
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    r = client.post("/api/remove", content=heic, headers={"Content-Type": "image/heic"})
    body = assert_error(r, 415, "unsupported_image")
    assert "heif" in body["detail"].lower()


def test_unknown_routes_and_methods_answer_json(client: TestClient) -> None:
    assert_error(client.get("/nothing-here"), 404, "not_found")
    assert_error(client.get("/api/remove"), 405, "method_not_allowed")


def test_a_bug_is_a_json_500_with_the_headers(
    settings: ServerSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Engine, remover: Remover, data: bytes) -> Any:
        raise RuntimeError("a bug, not bad input")

    monkeypatch.setattr(Engine, "_decode", broken)
    with make_client(settings) as c:
        r = c.post("/api/remove", content=png_bytes(), headers={"Content-Type": "image/png"})
    body = assert_error(r, 500, "internal_error")
    assert "a bug" not in body["detail"]  # no internals in the answer; they are in the log


# --------------------------------------------------------------------------- limits


@pytest.fixture(scope="module")
def small_client(settings: ServerSettings) -> Iterator[TestClient]:
    limited = settings.with_(max_upload_bytes=2000, max_pixels=1000, browser=False)
    with make_client(limited) as c:
        yield c


def test_declared_upload_size_over_the_limit_is_413(small_client: TestClient) -> None:
    r = small_client.post("/api/remove", content=b"\xff" * 5000, headers={"Content-Type": "image/jpeg"})
    body = assert_error(r, 413, "upload_too_large")
    assert "2,000 bytes" in body["detail"]


def test_streamed_upload_is_counted_and_cut_off(small_client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer
        for _ in range(10):
            yield b"\xff" * 700

    r = small_client.post("/api/remove", content=chunks(), headers={"Content-Type": "image/jpeg"})
    assert_error(r, 413, "upload_too_large")


def test_too_many_pixels_is_413(small_client: TestClient) -> None:
    r = small_client.post("/api/remove", content=png_bytes(40, 40), headers={"Content-Type": "image/png"})
    body = assert_error(r, 413, "image_too_large")
    assert "1,600" in body["detail"] and "1,000" in body["detail"]


def test_decompression_bomb_header_is_413(small_client: TestClient) -> None:
    # A tiny PNG that claims 100000 x 100000 pixels: refused from its header alone.
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
    bomb += chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b"")
    r = small_client.post("/api/remove", content=bomb, headers={"Content-Type": "image/png"})
    assert_error(r, 413, "image_too_large")


class Gate:
    """Replaces one engine stage with a job that blocks until released (the queue is real)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def stage(self, result: Callable[[], Any]) -> Callable[..., Any]:
        def blocked(*_args: Any) -> Any:
            self.entered.set()
            assert self.release.wait(30), "the test never released the gate"
            return result()

        return blocked


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    t.start()
    return t, out


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def test_over_capacity_is_503_with_retry_after_at_once(
    settings: ServerSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate()

    def unreadable() -> Any:
        raise UnreadableImageError("released by the test")

    monkeypatch.setattr(Engine, "_decode", gate.stage(unreadable))
    with make_client(settings.with_(workers=1, queue_size=0, browser=False)) as c:
        queue = c.app.state.cleancut.queue  # type: ignore[attr-defined]
        first, result = in_thread(
            lambda: c.post("/api/remove", content=png_bytes(), headers={"Content-Type": "image/png"})
        )
        assert gate.entered.wait(10)
        assert queue.stats().admitted == 1
        started = time.monotonic()
        r = c.post("/api/remove", content=png_bytes(), headers={"Content-Type": "image/png"})
        assert time.monotonic() - started < 2.0  # refused at once, not queued
        body = assert_error(r, 503, "overloaded")
        # No inference has finished yet, so nothing predicts the running one's end but its
        # deadline (--timeout 60 s): the hint says that, not a made-up constant.
        retry = int(r.headers["retry-after"])
        assert 50 <= retry <= 60, retry
        assert "capacity" in body["detail"] and f"{retry} s" in body["detail"]
        assert "1 in progress" in body["detail"]
        gate.release.set()
        first.join(10)
        assert_error(result[0], 400, "unreadable_image")
        stats = queue.stats()
        assert (stats.admitted, stats.accepted, stats.rejected) == (0, 1, 1)


def test_deadline_while_queued_is_503_and_the_slot_waits_for_the_worker(
    settings: ServerSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate()
    monkeypatch.setattr(Engine, "_infer", gate.stage(lambda: np.zeros((1, 1, 1024, 1024), np.float32)))
    with make_client(settings.with_(workers=1, queue_size=1, timeout=1.0, browser=False)) as c:
        queue = c.app.state.cleancut.queue  # type: ignore[attr-defined]
        first, first_result = in_thread(
            lambda: c.post("/api/remove", content=png_bytes(), headers={"Content-Type": "image/png"})
        )
        assert gate.entered.wait(10)  # the only worker is busy with the first request
        r = c.post("/api/remove", content=png_bytes(), headers={"Content-Type": "image/png"})
        body = assert_error(r, 503, "queue_timeout")
        assert "waiting for a free worker" in body["detail"]
        assert int(r.headers["retry-after"]) >= 1
        first.join(10)
        body = assert_error(first_result[0], 504, "timeout")
        assert "during inference" in body["detail"]
        # The first job still runs (its stage ignores cancellation): its slot stays counted,
        # so the server never admits more work than it has workers and room for.
        assert queue.stats().admitted == 1
        gate.release.set()
        wait_for(lambda: queue.stats().admitted == 0)
        assert queue.stats().timed_out == 2


def test_retry_after_follows_the_queue_state() -> None:
    # The real job queue and executors; the jobs are plain sleeps and waits.
    from cleancut.server.jobqueue import JobQueue

    async def scenario() -> None:
        queue = JobQueue(workers=1, queue_size=1)
        try:
            release = threading.Event()
            async with queue.slot(20.0) as first, queue.slot(20.0):
                job = asyncio.ensure_future(first.inference(release.wait, 10))
                while queue.stats().running == 0:
                    await asyncio.sleep(0.01)
                # Nothing has finished: the first place frees at the latest at the deadline.
                assert 18 <= queue.reject().retry_after <= 20
                release.set()
                await job
            assert queue.stats().mean_inference_s is not None  # a short job has finished
            release.clear()
            async with queue.slot(20.0) as first, queue.slot(20.0):
                job = asyncio.ensure_future(first.inference(release.wait, 10))
                while queue.stats().running == 0:
                    await asyncio.sleep(0.01)
                # Recent inferences took milliseconds: a place is expected within a second.
                error = queue.reject()
                assert error.retry_after == 1
                assert "recent inferences took" in str(error)
                release.set()
                await job
        finally:
            queue.shutdown()

    asyncio.run(scenario())


# --------------------------------------------------------------------------- the upload stage


def test_trickling_uploads_do_not_take_the_worker_slots(settings: ServerSettings) -> None:
    # A real server (uvicorn) and raw sockets: five clients send their headers, then one
    # byte every 0.2 s (no minimum rate here, so that they last). Two places for jobs only,
    # yet an ordinary upload still gets its 200.
    fast_enough = settings.with_(
        browser=False, workers=1, queue_size=1, backend="onnxruntime", min_upload_rate=0.0
    )
    app = create_app(fast_enough)
    with live_server(app) as live:
        slow = [TrickleUpload(live.port, size=100_000, interval=0.2, limit=300) for _ in range(5)]
        try:
            wait_for(lambda: all(t.sent >= 2 for t in slow))
            status, _headers, body = post(live.port, png_bytes(64, 64))
            assert status == 200, body
            assert all(t.status is None for t in slow)  # still uploading all along
            ready = live.get_json("/readyz")
            assert ready["uploads"]["active"] == 5, ready
            assert ready["queue"]["admitted"] == 0 and ready["queue"]["accepted"] == 1, ready
        finally:
            for t in slow:
                t.close()  # the clients hang up: their places are given back
        wait_for(lambda: live.get_json("/readyz")["uploads"]["active"] == 0)


def test_slow_uploads_get_408_and_busy_upload_places_a_truthful_503(settings: ServerSettings) -> None:
    # Two upload places, 2 s for a body, at least 200 B/s after the first 0.5 s.
    limited = settings.with_(
        browser=False,
        backend="onnxruntime",
        max_uploads=2,
        upload_timeout=2.0,
        min_upload_rate=200.0,
        upload_grace=0.5,
    )
    with live_server(create_app(limited)) as live:
        # 5 B/s: far below the minimum rate, cut off soon after the grace period.
        crawl = TrickleUpload(live.port, interval=0.2, limit=100)
        try:
            assert crawl.wait(10) == 408
            assert crawl.answered_after is not None and crawl.answered_after < 1.8
            assert b'"upload_too_slow"' in crawl.answer and b"200 B/s" in crawl.answer
            assert crawl.closed_by_server  # the unfinished body is not waited for
        finally:
            crawl.close()
        # 500 B/s: fast enough for the rate, too slow to finish 100 kB in 2 s.
        steady = [TrickleUpload(live.port, interval=0.1, chunk=50, limit=100) for _ in range(2)]
        try:
            wait_for(lambda: all(t.sent >= 100 for t in steady))
            status, headers, body = post(live.port, png_bytes(64, 64))
            assert status == 503, body
            assert b'"uploads_busy"' in body
            # The hint is when the first upload place frees at the latest: its deadline.
            assert 1 <= int(headers["retry-after"]) <= 2
            for t in steady:
                assert t.wait(10) == 408
                assert b'"upload_timeout"' in t.answer and t.closed_by_server
                assert t.answered_after is not None and 1.8 < t.answered_after < 3.5
        finally:
            for t in steady:
                t.close()
        ready = live.get_json("/readyz")["uploads"]
        assert ready["active"] == 0
        assert (ready["too_slow"], ready["timed_out"], ready["rejected"]) == (1, 2, 1), ready
        status, _headers, body = post(live.port, png_bytes(64, 64))
        assert status == 200, body


# --------------------------------------------------------------------------- probes, models, docs


def test_health_and_ready(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ready"
    assert body["models"]["isnet_fp16"]["provider"]
    assert body["queue"]["capacity"] == 5 and body["queue"]["workers"] == 1


def test_not_ready_until_the_model_is_loaded(
    settings: ServerSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    original = Engine.load

    def slow_load(self: Engine) -> None:
        assert gate.wait(30)
        original(self)

    monkeypatch.setattr(Engine, "load", slow_load)
    with make_client(settings.with_(load_in_background=True, browser=False)) as c:
        assert c.get("/healthz").status_code == 200
        assert_error(c.get("/readyz"), 503, "not_ready")
        r = c.post("/api/remove", content=png_bytes(), headers={"Content-Type": "image/png"})
        assert_error(r, 503, "not_ready")
        assert int(r.headers["retry-after"]) >= 1
        gate.set()
        wait_for(lambda: c.get("/readyz").status_code == 200, timeout=60)


def test_a_model_that_cannot_load_is_reported(tmp_path: Path) -> None:
    core = Settings.from_env(environ={}, cache_dir=tmp_path, offline=True)
    with make_client(ServerSettings(core=core, load_in_background=False)) as c:
        body = assert_error(c.get("/readyz"), 503, "model_unavailable")
        assert "offline" in body["detail"]
        r = c.post("/api/remove", content=png_bytes(), headers={"Content-Type": "image/png"})
        assert_error(r, 503, "model_unavailable")
        config = c.get("/api/config").json()
        assert config["browser"]["state"] == "unavailable"
        assert c.get("/healthz").status_code == 200


def test_models_listing(client: TestClient) -> None:
    body = client.get("/api/models").json()
    assert body["default"] == "isnet_fp16"
    by_name = {m["name"]: m for m in body["models"]}
    from cleancut.models import MODELS

    assert set(by_name) == set(MODELS)  # every published model, loaded or not
    assert by_name["isnet_fp16"]["loaded"] and by_name["isnet_fp16"]["ready"]
    assert by_name["isnet_fp16"]["family"] == "isnet-imgly" and by_name["isnet_fp16"]["browser"]
    assert by_name["isnet_fp16"]["input_size"] == {"height": 1024, "width": 1024}
    assert by_name["isnet_fp16"]["aliases"] == ["medium"]
    assert not by_name["isnet_quint8"]["loaded"]


def test_openapi_documents_the_endpoint(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/api/remove"]["post"]
    names = {p["name"] for p in op["parameters"]}
    assert {"model", "type", "format", "quality", "bg_color"} <= names
    assert {"refine", "decontaminate", "threshold", "feather", "min_island", "min_hole"} <= names
    assert {"background", "fit", "blur", "shadow", "crop", "margin", "square", "padding"} <= names
    assert {"max_size", "preset"} <= names
    assert set(op["requestBody"]["content"]) == {"image/*", "multipart/form-data"}
    assert {"200", "400", "413", "415", "422", "503", "504"} <= set(op["responses"])
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    # Swagger UI comes from a CDN: its page alone is credentialless, not require-corp.
    assert docs.headers["cross-origin-embedder-policy"] == "credentialless"
    assert docs.headers["cross-origin-opener-policy"] == "same-origin"


# --------------------------------------------------------------------------- the page's assets


def test_page_and_static_files_with_isolation_headers(client: TestClient) -> None:
    for path, content_type in [
        ("/", "text/html"),
        ("/static/js/app.js", "text/javascript"),
        ("/static/js/engine-worker.js", "text/javascript"),
        ("/static/app.css", "text/css"),
        ("/sw.js", "text/javascript"),
        ("/api/config", "application/json"),
    ]:
        r = client.get(path)
        assert r.status_code == 200, path
        assert r.headers["content-type"].split(";")[0] == content_type, path
        for name, value in ISOLATION.items():
            assert r.headers[name] == value, (path, name)
    assert '<input type="file"' in client.get("/").text


def test_config_tells_the_page_what_runs(client: TestClient) -> None:
    config = client.get("/api/config").json()
    assert config["browser"]["state"] == "ready", config["browser"]["detail"]
    assert config["browser"]["model"] == {
        "name": "isnet_fp16",
        "resource": "/models/medium",
        "size": 88_188_479,
    }
    ort = config["browser"]["ort"]
    assert ort["version"] == ORT_WEB_VERSION and ort["base"] == f"/ort/{ORT_WEB_VERSION}/"
    assert config["limits"]["max_upload_bytes"] == 50 * 2**20


def test_onnxruntime_web_files(client: TestClient) -> None:
    base = f"/ort/{ORT_WEB_VERSION}/"
    r = client.get(base + "ort-wasm-simd-threaded.wasm")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/wasm"
    assert hashlib.sha256(r.content).hexdigest() == ORT_FILES["ort-wasm-simd-threaded.wasm"]
    assert "immutable" in r.headers["cache-control"]
    for name, value in ISOLATION.items():
        assert r.headers[name] == value
    r = client.get(base + "ort.wasm.min.mjs")
    assert r.headers["content-type"].split(";")[0] == "text/javascript"
    assert_error(client.get(base + "package.json"), 404, "not_found")
    assert_error(client.get("/ort/0.0.1/ort.wasm.min.mjs"), 404, "not_found")


def test_model_chunks_are_the_published_layout(client: TestClient, model_settings: Settings) -> None:
    resources = client.get("/models/resources.json").json()
    entry = resources["/models/medium"]
    assert entry["size"] == 88_188_479
    model = (model_settings.models_dir / "isnet_fp16.onnx").read_bytes()
    pos = 0
    for i, c in enumerate(entry["chunks"]):
        assert c["offsets"] == [pos, min(pos + CHUNK_SIZE, len(model))]
        assert c["hash"] == hashlib.sha256(model[pos : c["offsets"][1]]).hexdigest()
        pos = c["offsets"][1]
        if i in (0, len(entry["chunks"]) - 1):  # fetch the first and the short last one
            r = client.get(f"/models/chunks/{c['hash']}")
            assert r.status_code == 200
            assert hashlib.sha256(r.content).hexdigest() == c["hash"]
            assert "immutable" in r.headers["cache-control"]
            assert r.headers["cross-origin-resource-policy"] == "same-origin"
    assert pos == len(model)
    # The same hashes as the published package's resources.json (the test mirror holds them).
    mirror = TEST_CACHE / "mirror" / "resources.json"
    if mirror.is_file():
        import json

        assert json.loads(mirror.read_text())["/models/medium"]["chunks"] == entry["chunks"]
    assert_error(client.get("/models/chunks/" + "0" * 64), 404, "not_found")
    assert_error(client.get("/models/chunks/../../etc/passwd"), 404, "not_found")


def test_the_768_network_is_a_small_delta_on_the_model(
    client: TestClient, model_settings: Settings, remover: Remover
) -> None:
    """fast and best need the 768² graph in the browser: resources.json offers it as a delta
    on the published file whose assembled bytes are exactly with_input_size's graph, load in
    onnxruntime at 768² and give the server's 768² output."""
    import onnx
    import onnxruntime as ort

    from cleancut.models.graph import with_input_size

    entry = client.get("/models/resources.json").json()["/models/medium@768"]
    recipe = entry["derived"]
    assert recipe["base"] == "/models/medium" and recipe["input_size"] == 768
    blob = b"".join(client.get(f"/models/chunks/{c['hash']}").content for c in entry["chunks"])
    assert len(blob) == entry["size"] < 200_000  # not a second 88 MB
    base = (model_settings.models_dir / "isnet_fp16.onnx").read_bytes()
    built = b"".join((blob if src == "delta" else base)[a:b] for src, a, b in recipe["parts"])
    assert len(built) == recipe["size"] and hashlib.sha256(built).hexdigest() == recipe["sha256"]
    assert built == with_input_size(onnx.load_from_string(base), 768).SerializeToString()
    session = ort.InferenceSession(built, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(2).random((1, 3, 768, 768), dtype=np.float32) - 0.5
    y = session.run(["output"], {"input": x})[0]
    server = remover.session_for(768, None, None).run(x)
    assert y.shape == (1, 1, 768, 768) and float(np.abs(y - server).max()) < 0.02


def test_a_quantised_model_delta_rewrites_its_constants_in_place(model_settings: Settings) -> None:
    """The quantised graph's Resize targets are initializers among the weights: its delta
    sends the rewritten bytes (a few hundred KB), not the 44 MB file."""
    import onnx

    from cleancut.models.graph import with_input_size
    from cleancut.models.store import fetch_model
    from cleancut.server.browser_sizes import build_sized_delta

    base = fetch_model("isnet_quint8", model_settings).read_bytes()
    delta = build_sized_delta(base, 768)
    assert len(delta.blob) < 500_000 and any(src == "base" for src, _, _ in delta.parts)
    built = delta.assemble(base)
    assert built == with_input_size(onnx.load_from_string(base), 768).SerializeToString()
    assert hashlib.sha256(built).hexdigest() == delta.sha256 and len(built) == delta.total


def test_without_npm_the_page_falls_back_to_server_mode(tmp_path: Path, model_settings: Settings) -> None:
    # A cache with the model (linked) but without onnxruntime-web, a registry that does not
    # answer (nothing listens on the port) and no npm client; a source checkout bundles none.
    (tmp_path / "models").symlink_to(model_settings.models_dir)
    (tmp_path / "graphs").symlink_to(model_settings.cache_dir / "graphs")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/"
    core = Settings.from_env(environ={}, cache_dir=tmp_path, npm="no-such-npm-client", npm_registry=dead)
    with pytest.raises(Exception, match="not installed"):
        provision_ort(core, bundled=tmp_path / "no-bundle")
    state = AppState(ServerSettings(core=core, load_in_background=False))
    state._prepare_ort()
    browser_state, detail = state.browser_status()
    assert browser_state == "unavailable" and "npm" in detail


# --------------------------------------------------------------------------- the command


def test_serve_command_help_and_lazy_imports() -> None:
    result = CliRunner().invoke(serve, ["--help"])
    assert result.exit_code == 0
    for option in (
        "--host",
        "--port",
        "--workers",
        "--model",
        "--max-upload-mb",
        "--max-pixels",
        "--timeout",
        "--queue-size",
        "--max-uploads",
        "--upload-timeout",
        "--min-upload-rate",
    ):
        assert option in result.output
    code = (
        "import sys, cleancut.server.command; "
        "bad = [m for m in ('fastapi', 'uvicorn', 'starlette') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": "src"})


def test_serve_command_rejects_a_bad_model() -> None:
    result = CliRunner().invoke(serve, ["--model", "nope", "--offline"])
    assert result.exit_code == 2
    assert "unknown model" in result.output


# --------------------------------------------------------------------------- Host, CSP, shapes


def test_a_foreign_host_is_421_and_ours_are_answered(settings: ServerSettings) -> None:
    # DNS rebinding: a page on evil.example points its name at 127.0.0.1; its requests
    # then name evil.example. No model is needed to be refused (nor to answer /healthz).
    plain = settings.with_(browser=False, load_in_background=True)
    with make_client(plain) as c:
        for host in ("evil.example", "evil.example:8000", "localhost.evil.example", "127.0.0.1.nip.io"):
            body = assert_error(c.get("/healthz", headers={"Host": host}), 421, "host_not_allowed")
            assert "--allowed-host" in body["detail"] and "DNS rebinding" in body["detail"]
            assert_error(
                c.post(
                    "/api/remove", content=png_bytes(), headers={"Host": host, "Content-Type": "image/png"}
                ),
                421,
                "host_not_allowed",
            )
        for host in ("localhost", "localhost:8000", "127.0.0.1", "127.0.0.1:8000", "[::1]:8000", "[::1]",
                     "10.1.2.3:80", "app.localhost", "LocalHost.", "testserver"):  # fmt: skip
            assert c.get("/healthz", headers={"Host": host}).status_code == 200, host
    allowed = plain.with_(allowed_hosts=("Photos.Example.com", "*.lan"))
    assert allowed.allowed_hosts == ("photos.example.com", "*.lan")
    with make_client(allowed) as c:
        for host in ("photos.example.com", "photos.example.com:443", "printer.lan", "a.b.lan"):
            assert c.get("/healthz", headers={"Host": host}).status_code == 200, host
        for host in ("lan", "example.com", "evil.example", "photos.example.com.evil"):
            assert_error(c.get("/healthz", headers={"Host": host}), 421, "host_not_allowed")
    with make_client(plain.with_(allowed_hosts=("*",))) as c:
        assert c.get("/healthz", headers={"Host": "anything.example"}).status_code == 200


def test_bound_to_every_interface_this_machines_name_is_accepted(settings: ServerSettings) -> None:
    import socket

    name = socket.gethostname().lower()
    wild = settings.with_(browser=False, load_in_background=True, host="0.0.0.0")
    with make_client(wild) as c:
        for host in (name, f"{name.split('.')[0]}.local:8000"):
            assert c.get("/healthz", headers={"Host": host}).status_code == 200, host
        assert_error(c.get("/healthz", headers={"Host": "evil.example"}), 421, "host_not_allowed")
    # Named hosts given: those (and addresses, localhost) only.
    with make_client(wild.with_(allowed_hosts=("photos.example.com",))) as c:
        assert c.get("/healthz", headers={"Host": "photos.example.com"}).status_code == 200
        assert_error(c.get("/healthz", headers={"Host": name}), 421, "host_not_allowed")
    # Bound to a name: that name is ours.
    with make_client(settings.with_(browser=False, load_in_background=True, host="box.internal")) as c:
        assert c.get("/healthz", headers={"Host": "box.internal:8000"}).status_code == 200


def test_allowed_hosts_from_the_environment_and_the_command_line(
    monkeypatch: pytest.MonkeyPatch, model_settings: Settings
) -> None:
    from cleancut.errors import InvalidOptionError

    monkeypatch.setenv("CLEANCUT_ALLOWED_HOSTS", " photos.example.com, *.lan ,")
    assert ServerSettings(core=model_settings).allowed_hosts == ("photos.example.com", "*.lan")
    monkeypatch.delenv("CLEANCUT_ALLOWED_HOSTS")
    assert ServerSettings(core=model_settings).allowed_hosts == ()
    for bad in ("http://photos.example.com", "photos.example.com/path", "a b", "*x.com", ""):
        with pytest.raises(InvalidOptionError, match="allowed host"):
            ServerSettings(core=model_settings, allowed_hosts=(bad,))
    result = CliRunner().invoke(serve, ["--allowed-host", "http://x.example", "--offline"])
    assert result.exit_code == 2 and "not a URL" in result.output
    help_text = CliRunner().invoke(serve, ["--help"]).output
    assert "--allowed-host" in help_text and "CLEANCUT_ALLOWED_HOSTS" in help_text


def test_the_host_check_under_uvicorn(settings: ServerSettings) -> None:
    # The real server: what a browser sends over a socket, the bound address in the Host.
    with live_server(create_app(settings.with_(browser=False, load_in_background=True))) as live:
        for host, status in ((f"127.0.0.1:{live.port}", 200), (f"localhost:{live.port}", 200),
                             (f"rebind.evil.example:{live.port}", 421)):  # fmt: skip
            with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
                sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
                answer = b""
                while chunk := sock.recv(65536):
                    answer += chunk
            assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:200]
            if status == 421:
                assert b'"host_not_allowed"' in answer and b"application/json" in answer


def test_csp_and_frame_protection_on_the_page_and_its_files(client: TestClient) -> None:
    from cleancut.server.middleware import PAGE_CSP

    for path in ("/", "/static/js/app.js", "/static/js/engine-worker.js", "/static/app.css", "/sw.js",
                 f"/ort/{ORT_WEB_VERSION}/ort-wasm-simd-threaded.wasm", "/api/config", "/nope"):  # fmt: skip
        r = client.get(path)
        assert r.headers["content-security-policy"] == PAGE_CSP, path
        assert r.headers["x-frame-options"] == "DENY", path
    directives = dict(d.strip().split(" ", 1) for d in PAGE_CSP.split(";"))
    assert directives["frame-ancestors"] == "'none'"
    assert "'wasm-unsafe-eval'" in directives["script-src"] and "'unsafe-inline'" not in PAGE_CSP
    assert "blob:" in directives["worker-src"] and directives["connect-src"].startswith("'self'")
    # The page has no inline script or style for the policy to refuse.
    html = client.get("/").text
    assert " style=" not in html and "<script>" not in html and "<style" not in html


def test_docs_pages_get_a_policy_for_what_they_load(client: TestClient) -> None:
    import base64
    import re

    for path in ("/docs", "/redoc"):
        r = client.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        csp = r.headers["content-security-policy"]
        assert r.headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in csp
        assert r.headers["cross-origin-embedder-policy"] == "credentialless"
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        script_src = directives["script-src"].split()
        assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
        for src in re.findall(r'<script src="([^"]+)"', r.text):  # every script it loads ...
            assert any(src.startswith(s) for s in script_src), (path, src)
        for inline in re.findall(r"<script>(.*?)</script>", r.text, re.S):  # ... and runs inline
            digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
            assert f"'sha256-{digest}'" in script_src, path
        for tag in re.findall(r"<link[^>]*>", r.text):
            if 'rel="stylesheet"' in tag:
                url = re.findall(r'href="([^"]+)"', tag)[0]
                assert any(url.startswith(s) for s in directives["style-src"].split()), (path, url)
        assert directives["connect-src"] == "'self'"
    assert "/openapi.json" in client.get("/docs").text


def test_a_long_query_is_json_414_and_past_the_parser_json_400(
    client: TestClient, settings: ServerSettings
) -> None:
    import uvicorn

    from cleancut.server.protocols import JsonH11Protocol, http_protocol

    body = assert_error(client.get("/api/config?x=" + "a" * 20_000), 414, "query_too_long")
    assert "16,384" in body["detail"]
    r = client.post(
        "/api/remove?format=" + "w" * 20_000, content=png_bytes(), headers={"Content-Type": "image/png"}
    )
    assert_error(r, 414, "query_too_long")
    # 100 KB: past what httptools (what `serve` runs) parses at all, so its own answer; h11
    # (uvicorn's fallback) parses it and the application answers; both in our shape.
    app = create_app(settings.with_(browser=False, load_in_background=True))
    assert http_protocol().__name__ == "JsonHttpToolsProtocol"
    seen: set[str] = set()
    for protocol in (http_protocol(), JsonH11Protocol):
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=port, log_level="critical", lifespan="off", http=protocol
            )
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            wait_for(lambda s=server: bool(s.started), timeout=30)
            for size in (100_000, 60_000):  # over and under httptools' 64 KiB URL limit
                with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                    try:
                        sock.sendall(
                            b"GET /api/config?q=" + b"a" * size + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                        )
                    except OSError:
                        pass  # closed once the server had answered
                    answer = b""
                    while chunk := sock.recv(65536):
                        answer += chunk
                head, _, content = answer.partition(b"\r\n\r\n")
                assert b"content-type: application/json" in head.lower(), (protocol, size, answer[:300])
                assert b"cross-origin-resource-policy: same-origin" in head.lower(), head
                parsed = json.loads(content)
                # Refused by the parser (400), or parsed and refused by the application (414):
                # the same JSON shape either way, never uvicorn's plain text.
                if head.startswith(b"HTTP/1.1 400"):
                    assert parsed["error"] == "bad_http_request" and "64 KiB" in parsed["detail"]
                else:
                    assert head.startswith(b"HTTP/1.1 414") and parsed["error"] == "query_too_long", head
                seen.add(parsed["error"])
        finally:
            server.should_exit = True
            thread.join(30)
    assert seen == {"bad_http_request", "query_too_long"}


def multipart(*parts: tuple[str, str | None, bytes], close: bool = True) -> tuple[bytes, dict[str, str]]:
    """A multipart body of (name, filename, content) parts; ``close``: with its closing boundary."""
    body = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--XYZ\r\nContent-Disposition: {disposition}\r\n".encode()
        body += b"Content-Type: image/png\r\n" if filename else b""
        body += b"\r\n" + content + b"\r\n"
    body += b"--XYZ--\r\n" if close else b""
    return body, {"Content-Type": "multipart/form-data; boundary=XYZ"}


def test_form_mistakes_are_named_for_what_they_are(client: TestClient, photo: bytes) -> None:
    # Cut short before its closing boundary: the form is incomplete, not missing its file.
    content, headers = multipart(("file", "a.png", png_bytes()), close=False)
    body = assert_error(client.post("/api/remove", content=content, headers=headers), 400, "bad_multipart")
    assert "closing boundary" in body["detail"]
    # The same without its file's end (the body stops inside the photo).
    content, headers = multipart(("format", None, b"webp"), ("file", "a.png", png_bytes()), close=False)
    assert_error(client.post("/api/remove", content=content[:-40], headers=headers), 400, "bad_multipart")
    # Two photos in one request: refused, not one of them picked.
    content, headers = multipart(("file", "a.png", png_bytes()), ("file", "b.png", png_bytes(8, 8)))
    body = assert_error(client.post("/api/remove", content=content, headers=headers), 400, "bad_multipart")
    assert "'file' 2 times" in body["detail"] and "one photo per request" in body["detail"]
    # An option twice is ambiguous too.
    content, headers = multipart(
        ("format", None, b"webp"), ("format", None, b"png"), ("file", "a.png", png_bytes())
    )
    body = assert_error(client.post("/api/remove", content=content, headers=headers), 400, "bad_multipart")
    assert "'format' 2 times" in body["detail"]
    # curl --data-binary @photo.jpg without -H: image bytes labelled as a URL-encoded form.
    r = client.post(
        "/api/remove", content=photo, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    body = assert_error(r, 415, "unsupported_media_type")
    assert "x-www-form-urlencoded" in body["detail"] and "Content-Type: image/jpeg" in body["detail"]
    assert "Too many fields" not in body["detail"]
    # A real URL-encoded form still reaches its checks (here: its option, before any fetch).
    r = client.post("/api/remove", content=b"url=http%3A%2F%2F127.0.0.1%2Fa.png&format=nope",
                    headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert_error(r, 422, "invalid_option")
    # A well-formed form still works (and is answered from one photo).
    content, headers = multipart(("format", None, b"webp"), ("file", "a.png", png_bytes()))
    r = client.post("/api/remove", content=content, headers=headers)
    assert r.status_code == 200 and r.headers["content-type"] == "image/webp"


def test_clients_that_leave_have_their_queued_work_dropped(
    settings: ServerSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One worker, held by a first request (its client waits); three more clients send a
    # whole photo and hang up 0.2 s later, while their jobs wait for the worker. Their slots
    # free at once, and no inference runs for them: the network runs once in all.
    gate = Gate()
    calls: list[int] = []
    blocked = gate.stage(lambda: np.zeros((1, 1, 1024, 1024), np.float32))

    def infer(*args: Any) -> Any:
        calls.append(1)
        return blocked(*args)

    monkeypatch.setattr(Engine, "_infer", infer)
    with live_server(create_app(settings.with_(browser=False, workers=1, queue_size=4))) as live:
        first, answer = in_thread(lambda: post(live.port, png_bytes(64, 64)))
        assert gate.entered.wait(30)
        photo = png_bytes(64, 64)
        leavers = []
        for _ in range(3):
            sock = socket.create_connection(("127.0.0.1", live.port), timeout=10)
            sock.sendall(
                b"POST /api/remove HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                + f"Content-Length: {len(photo)}\r\n\r\n".encode()
                + photo
            )
            leavers.append(sock)
        queue = live.state.queue
        wait_for(lambda: queue.stats().admitted == 4 or queue.stats().accepted == 4)
        time.sleep(0.2)
        for sock in leavers:
            sock.close()
        wait_for(lambda: queue.stats().admitted == 1, timeout=5)  # only the one still waiting
        assert queue.stats().abandoned == 3
        gate.release.set()
        first.join(30)
        status, _headers, _body = answer[0]
        assert status == 200
        wait_for(lambda: queue.stats().admitted == 0)
        assert len(calls) == 1, "an inference ran for a client that had left"
        ready = live.get_json("/readyz")
        assert ready["queue"]["abandoned"] == 3 and ready["queue"]["accepted"] == 4


# --------------------------------------------------------------------------- the access log


def _access_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "cleancut.access"]


def _logfmt_fields(line: str) -> dict[str, str]:
    """A logfmt line back into its fields (bare values, or JSON-quoted ones)."""
    import json
    import re

    fields: dict[str, str] = {}
    for m in re.finditer(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', line):
        value = m.group(2)
        fields[m.group(1)] = json.loads(value) if value.startswith('"') else value
    return fields


def test_one_structured_access_line_per_request_with_its_timings(
    client: TestClient, photo: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """Each request is one logfmt line on ``cleancut.access``: method, path, status, bytes
    sent, duration and the cut-out's stage timings (the Server-Timing entries); a refused
    request is logged too, an odd path stays on its line, and probes only at debug level."""
    caplog.set_level(logging.INFO, logger="cleancut.access")
    r = client.post("/api/remove", content=photo, headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 200, r.text
    lines = _access_lines(caplog)
    assert len(lines) == 1, lines
    fields = _logfmt_fields(lines[0])
    assert (fields["method"], fields["path"], fields["status"]) == ("POST", "/api/remove", "200")
    assert int(fields["bytes"]) == len(r.content)
    assert float(fields["duration_ms"]) > 0 and fields["client"]
    for stage in ("queue", "decode", "inference", "encode"):
        assert float(fields[f"{stage}_ms"]) >= 0, stage
    assert float(fields["inference_ms"]) <= float(fields["duration_ms"])

    caplog.clear()
    client.get("/healthz")
    assert _access_lines(caplog) == []  # a probe: debug level
    r = client.get("/no%20such%0Apage")  # the path as the app sees it: "/no such\npage"
    assert r.status_code == 404
    (line,) = _access_lines(caplog)
    assert "\n" not in line and _logfmt_fields(line)["path"] == "/no such\npage"
    caplog.clear()
    r = client.get("/api/models", headers={"Host": "evil.example"})
    assert r.status_code == 421
    assert _logfmt_fields(_access_lines(caplog)[0])["status"] == "421"
    caplog.clear()
    caplog.set_level(logging.DEBUG, logger="cleancut.access")
    client.get("/healthz")
    assert [_logfmt_fields(x)["path"] for x in _access_lines(caplog)] == ["/healthz"]


def test_server_timing_and_logfmt_helpers() -> None:
    from cleancut.server.access_log import logfmt, parse_server_timing

    assert parse_server_timing("queue;dur=0.1, decode;dur=9.8,inference;dur=571.2, x;desc=y") == {
        "queue": 0.1,
        "decode": 9.8,
        "inference": 571.2,
    }
    assert parse_server_timing("") == {}
    assert logfmt({"a": 1, "b": 2.25, "c": 'say "hi"', "d": "", "e": None, "f": "k=v"}) == (
        'a=1 b=2.2 c="say \\"hi\\"" d="" f="k=v"'
    )
