"""The web page in a real browser: Debian's Chromium driven by Python Playwright.

A real uvicorn server (what ``cleancut serve`` runs) listens on 127.0.0.1; every request it
receives is recorded with its body, so the privacy promise is checked on the server's side
as well as the browser's: in private mode no request carries the photo. The tests share one
browser context (one origin, one Cache API) and run in order: the JavaScript pipeline against
pipeline.py, private mode, server mode, then a second visit with the server stopped.

Screenshots land in ``artifacts/`` (git-ignored). Skipped when Playwright or Chromium is
missing (CI installs both: ``apt-get install chromium`` and ``pip install playwright``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the server extra is not installed: pip install 'cleancut[server]'")
pytest.importorskip("uvicorn", reason="the server extra is not installed")

import uvicorn
from PIL import Image

from cleancut import Remover, Settings, pipeline
from cleancut.server import ServerSettings, create_app
from conftest import EXAMPLES, REPO

CHROMIUM = os.environ.get("CLEANCUT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "artifacts"
PHOTO = EXAMPLES / "astronaut.jpg"
#: One in-browser IS-Net pass is ~10-20 s on 2 cores (design §3), several times that on a
#: busy machine; the first one also downloads 84 MiB and compiles the network.
RUN_TIMEOUT_MS = 480_000


# --------------------------------------------------------------------------- live server


@dataclass
class Recorded:
    method: str
    path: str
    body: bytearray = field(default_factory=bytearray)


class Recorder:
    """ASGI wrapper that keeps every request with its body: what the server really got."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: list[Recorded] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        record = Recorded(scope["method"], scope["path"])
        self.requests.append(record)

        async def recording_receive() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                record.body += message.get("body", b"")
            return message

        await self.app(scope, recording_receive, send)


@dataclass
class LiveServer:
    url: str
    port: int
    recorder: Recorder
    server: Any
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def live(model_settings: Settings) -> Iterator[LiveServer]:
    settings = ServerSettings(core=model_settings, load_in_background=False, max_upload_bytes=4 * 2**20)
    recorder = Recorder(create_app(settings))
    port = free_port()
    config = uvicorn.Config(recorder, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="cleancut-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    live = LiveServer(f"http://127.0.0.1:{port}", port, recorder, server, thread)
    yield live
    live.stop()


def test_streamed_upload_is_cut_off_at_the_limit(live: LiveServer) -> None:
    # A chunked upload without Content-Length, over a raw socket: the server answers 413 as
    # soon as the count passes the limit, long before the client would have finished.
    with socket.create_connection(("127.0.0.1", live.port), timeout=30) as sock:
        sock.sendall(
            b"POST /api/remove HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        piece = b"\xff" * 65536
        answer = b""
        sent = 0
        sock.settimeout(0.05)
        for _ in range(400):  # up to 25 MiB, far over the 4 MiB limit
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                sent += len(piece)
            except OSError:
                break
            try:
                answer += sock.recv(65536)
            except TimeoutError:
                continue
            if b"\r\n\r\n" in answer:
                break
        sock.settimeout(10)
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 10 * 2**20  # refused at the 4 MiB limit, not after the whole body


# --------------------------------------------------------------------------- browser


@pytest.fixture(scope="module")
def browser_context(live: LiveServer) -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1200, "height": 900}, accept_downloads=True)
        try:
            yield context
        finally:
            context.close()
            browser.close()


@dataclass
class Seen:
    """Every request the browser made (page, workers, service worker)."""

    requests: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@pytest.fixture
def page(browser_context: Any) -> Iterator[tuple[Any, Seen]]:
    seen = Seen()

    def on_request(request: Any) -> None:
        seen.requests.append(request)

    browser_context.on("request", on_request)
    page = browser_context.new_page()
    page.on("pageerror", lambda e: seen.errors.append(str(e)))
    page.on("console", lambda m: m.type == "error" and seen.errors.append(m.text))
    try:
        yield page, seen
    finally:
        browser_context.remove_listener("request", on_request)
        page.close()


#: The bundled photos: the browser's mask must be the server's on each (issue 11).
PHOTOS = (PHOTO, EXAMPLES / "chelsea.jpg", EXAMPLES / "coffee.jpg")


@pytest.fixture(scope="module")
def server_alpha(remover: Remover) -> np.ndarray:
    return remover.remove(PHOTO).mask


def open_page(page: Any, live: LiveServer) -> None:
    page.goto(live.url + "/")
    page.wait_for_function("() => document.querySelector('#engine-note').textContent.length > 0")


def cut_out(page: Any, out: Path, photo: Path = PHOTO) -> tuple[np.ndarray, str]:
    """Choose the photo, wait for the download link, save the PNG; its alpha and summary."""
    done = page.locator(".job.done a.download").count()
    page.set_input_files("#file", str(photo))
    page.wait_for_function(
        "(n) => document.querySelectorAll('.job.done a.download').length > n"
        " || document.querySelector('.job.failed')",
        arg=done,
        timeout=RUN_TIMEOUT_MS,
    )
    failed = page.query_selector(".job.failed .job-error")
    assert failed is None, failed.inner_text()
    link = page.locator(".job.done a.download").last
    assert (link.get_attribute("href") or "").startswith("blob:")
    with page.expect_download() as info:
        link.click()
    info.value.save_as(out)
    img = Image.open(out)
    assert img.format == "PNG" and img.mode == "RGBA" and img.size == Image.open(photo).size
    summary = page.locator(".job.done .job-done").last.inner_text()
    return np.asarray(img)[:, :, 3], summary


def iou(a: np.ndarray, b: np.ndarray) -> float:
    fa, fb = a >= 128, b >= 128
    return float((fa & fb).sum() / max(1, (fa | fb).sum()))


def photo_in(body: bytes | bytearray, photo: bytes) -> bool:
    return any(photo[i : i + 256] in body for i in (0, len(photo) // 2, len(photo) - 256))


def test_javascript_pipeline_matches_pipeline_py(page: tuple[Any, Seen], live: LiveServer) -> None:
    """imaging.js reproduces pipeline.py bit for bit: resize, preprocess, postprocess, alpha."""
    from cleancut.models.families.isnet_imgly import published_recipe

    pg, _ = page
    open_page(pg, live)
    rng = np.random.default_rng(7)
    rgba = rng.integers(0, 256, (23, 37, 4), dtype=np.uint8)
    photo = rng.integers(0, 256, (200, 300, 4), dtype=np.uint8)
    out = rng.random((1024, 1024), dtype=np.float32)
    # Values at and next to every k/255 boundary, out of range, and NaN.
    edges = np.arange(256, dtype=np.float32) / np.float32(255)
    specials = np.concatenate(
        [edges, np.nextafter(edges, np.float32(0)), np.nextafter(edges, np.float32(2)), [-0.5, 1.5, np.nan]]
    ).astype(np.float32)
    out.reshape(-1)[: specials.size] = specials
    mask = rng.integers(0, 256, (23, 37), dtype=np.uint8)
    got = pg.evaluate(
        """async ({rgba, photo, out, mask}) => {
            const m = await import('/static/js/imaging.js');
            const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const hex = async (arr) => Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256',
                new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength))),
                (b) => b.toString(16).padStart(2, '0')).join('');
            const src = bytes(rgba);
            const outBytes = bytes(out);
            const config = await (await fetch('/api/config')).json();
            return {
                up: await hex(m.resizeBilinear(src, 37, 23, 4, 4, 64, 50)),
                down: await hex(m.resizeBilinear(src, 37, 23, 4, 3, 16, 11)),
                pre: await hex(m.preprocess(bytes(photo), 300, 200, config.browser.recipe)),
                post: await hex(m.postprocess(new Float32Array(outBytes.buffer), 517, 333, 1024,
                                              config.browser.recipe.upsample)),
                fg: await hex(m.compose(src, bytes(mask), 'foreground')),
                bg: await hex(m.compose(src, bytes(mask), 'background')),
            };
        }""",
        {
            "rgba": base64.b64encode(rgba.tobytes()).decode(),
            "photo": base64.b64encode(photo.tobytes()).decode(),
            "out": base64.b64encode(out.tobytes()).decode(),
            "mask": base64.b64encode(mask.tobytes()).decode(),
        },
    )

    def h(a: np.ndarray) -> str:
        return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()

    assert got["up"] == h(pipeline.resize_bilinear(rgba, 50, 64))
    assert got["down"] == h(pipeline.resize_bilinear(np.ascontiguousarray(rgba[:, :, :3]), 11, 16))
    # IS-Net's recipe from /api/config: IMG.LY's grid, which the page always runs as the exact port
    recipe = published_recipe()
    assert recipe.down == "imgly" and recipe.up == "imgly"
    assert got["pre"] == h(pipeline.preprocess(photo, 1024, norm=recipe.norm, down="imgly-exact"))
    assert got["post"] == h(pipeline.postprocess(out[None, None], 333, 517, up="imgly-exact"))
    assert got["fg"] == h(pipeline.apply_mask(rgba, mask))
    assert got["bg"] == h(pipeline.apply_mask(rgba, mask, invert=True))


def test_javascript_quality_modes_match_passes_py(page: tuple[Any, Seen], live: LiveServer) -> None:
    """imaging.js mirrors, resizes and combines passes as cleancut.passes does (doubles
    against numpy's float32: equal within float rounding), and the page is told the server's
    passes and gain."""
    import cv2

    from cleancut.models.families.isnet_imgly import published_recipe
    from cleancut.passes import QUALITY_MODES, combine

    recipe = published_recipe()
    average_gain = recipe.average_gain

    pg, _ = page
    open_page(pg, live)
    rng = np.random.default_rng(11)
    big = rng.random((64, 64), dtype=np.float32)
    small = rng.random((48, 48), dtype=np.float32)
    big.reshape(-1)[:4] = [0.0, 1.0, 0.5, np.nan]
    small.reshape(-1)[:2] = [0.0, 1.0]
    got = pg.evaluate(
        """async ({big, small, gain}) => {
            const m = await import('/static/js/imaging.js');
            const floats = (b64) =>
                new Float32Array(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)).buffer);
            const b = floats(big), s = floats(small);
            const one = m.combine([{size: 64, data: b}], gain);
            const mixed = m.combine([{size: 64, data: b}, {size: 48, data: s}], gain);
            const plain = m.combine([{size: 64, data: b}, {size: 48, data: s}], 1);
            const flip = m.mirror(m.mirror(b, 8, 64), 8, 64);
            const config = await (await fetch('/api/config')).json();
            return {one: one.data === b, size: mixed.size, mixed: Array.from(mixed.data),
                    plain: Array.from(plain.data), up: Array.from(m.resizePlane(s, 48, 64)),
                    mirrored: Array.from(m.mirror(s, 48)), same: flip.every((v, i) => Object.is(v, b[i])),
                    modes: config.browser.modes, gain: config.browser.gain, sizes: config.browser.sizes,
                    recipe: config.browser.recipe};
        }""",
        {
            "big": base64.b64encode(big.tobytes()).decode(),
            "small": base64.b64encode(small.tobytes()).decode(),
            "gain": average_gain,
        },
    )
    a, b = big[None, None], small[None, None]

    def close(js: list[float], py: np.ndarray) -> bool:
        want = np.nan_to_num(py).reshape(-1)
        return bool(np.allclose(np.nan_to_num(np.array(js, dtype=np.float32)), want, atol=2e-6))

    assert got["one"] and got["same"] and got["size"] == 64
    assert close(got["mixed"], combine([a, b], gain=average_gain)[0, 0])
    assert close(got["plain"], combine([a, b], gain=1.0)[0, 0])
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    up = cv2.warpAffine(small, np.array([[0.75, 0, 0], [0, 0.75, 0]]), (64, 64), flags=flags,
                        borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
    assert close(got["up"], up)
    assert close(got["mirrored"], small[:, ::-1])
    want_modes = {m: [{"size": p.size, "flip": p.flip} for p in recipe.passes(m)] for m in QUALITY_MODES}
    assert got["modes"] == want_modes and got["gain"] == average_gain
    assert got["sizes"] == {"768": "/models/medium@768"}
    assert got["recipe"] == recipe.to_json()  # what the worker runs: passes, gain, normalisation


def test_javascript_pillow_filters_and_activation_match_python(
    page: tuple[Any, Seen], live: LiveServer
) -> None:
    """imaging.js's port of Pillow's resize (anti-aliased bilinear and lanczos down, bicubic
    up) is Pillow's bit for bit, as pipeline.py uses it for BiRefNet and BEN2; the half-pixel
    bilinear is within a level of OpenCV's; a birefnet recipe's normalisation, sigmoid and a
    min-max rescale are pipeline.py's within float rounding."""
    import cv2

    from cleancut.models.families import get_family
    from cleancut.models.families.base import GraphInfo

    pg, _ = page
    open_page(pg, live)
    rng = np.random.default_rng(5)
    rgba = rng.integers(0, 256, (97, 131, 4), dtype=np.uint8)
    mask = rng.integers(0, 256, (40, 52), dtype=np.uint8)
    logits = rng.normal(0, 3, (32, 32)).astype(np.float32)

    info = GraphInfo("x", (1, 3, 64, 64), "float", (("y", (1, 1, 64, 64), "float"),))
    birefnet = get_family("birefnet").recipe(info)
    got = pg.evaluate(
        """async ({rgba, mask, logits, recipe}) => {
            const m = await import('/static/js/imaging.js');
            const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const src = bytes(rgba), msk = bytes(mask);
            const lg = new Float32Array(bytes(logits).buffer);
            return {
                bilinear: Array.from(m.resizePillow(src, 131, 97, 4, 3, 40, 29, 'bilinear')),
                lanczos: Array.from(m.resizePillow(src, 131, 97, 4, 3, 64, 45, 'lanczos')),
                wide: Array.from(m.resizePillow(src, 131, 97, 4, 3, 200, 97, 'lanczos')),
                bicubic: Array.from(m.resizePillow(msk, 52, 40, 1, 1, 173, 121, 'bicubic')),
                halfpixel: Array.from(m.resizeHalfPixel(src, 131, 97, 4, 3, 50, 37)),
                pre: Array.from(m.preprocess(src, 131, 97, recipe)),
                sig: Array.from(m.activate(Float32Array.from(lg), recipe)),
                minmax: Array.from(m.activate(Float32Array.from(lg), {...recipe, rescale: 'minmax'})),
            };
        }""",
        {
            "rgba": base64.b64encode(rgba.tobytes()).decode(),
            "mask": base64.b64encode(mask.tobytes()).decode(),
            "logits": base64.b64encode(logits.tobytes()).decode(),
            "recipe": birefnet.to_json(),
        },
    )
    rgb = Image.fromarray(np.ascontiguousarray(rgba[:, :, :3]), "RGB")

    def pil(img: Image.Image, size: tuple[int, int], f: Image.Resampling) -> list[int]:
        return list(np.asarray(img.resize(size, f)).reshape(-1))

    assert got["bilinear"] == pil(rgb, (40, 29), Image.Resampling.BILINEAR)
    assert got["lanczos"] == pil(rgb, (64, 45), Image.Resampling.LANCZOS)
    assert got["wide"] == pil(rgb, (200, 97), Image.Resampling.LANCZOS)
    assert got["bicubic"] == pil(Image.fromarray(mask, "L"), (173, 121), Image.Resampling.BICUBIC)
    cv = cv2.resize(np.ascontiguousarray(rgba[:, :, :3]), (50, 37), interpolation=cv2.INTER_LINEAR)
    assert np.abs(np.array(got["halfpixel"]) - cv.reshape(-1).astype(int)).max() <= 1
    want = pipeline.preprocess(rgba, 64, norm=birefnet.norm, down=birefnet.down).reshape(-1)
    assert np.allclose(np.array(got["pre"], dtype=np.float32), want, atol=1e-5)
    sig = 1 / (1 + np.exp(-logits.astype(np.float64)))
    assert np.allclose(got["sig"], sig.reshape(-1), atol=1e-6)
    assert np.allclose(got["minmax"], ((sig - sig.min()) / (sig.max() - sig.min())).reshape(-1), atol=1e-6)


def test_javascript_framing_matches_framing_py(page: tuple[Any, Seen], live: LiveServer) -> None:
    """framing.js puts the subject where cleancut.framing does (crop, square, padding, cap),
    and the e-commerce preset gives a white square."""
    from cleancut.framing import Framing, geometry

    pg, _ = page
    open_page(pg, live)
    yy, xx = np.mgrid[0:90, 0:140]
    mask = np.clip((25 - np.hypot(yy - 40, xx - 110)) * 60 + 128, 0, 255).astype(np.uint8)
    cases = [
        Framing(crop=True, margin=0.05),
        Framing(crop=True, margin=0.0, square=True, padding=0.075, max_size=50),
        Framing(square=True, padding=0.2),
        Framing.ecommerce(),
    ]
    got = pg.evaluate(
        """async ({mask, w, h, cases}) => {
            const f = await import('/static/js/framing.js');
            const alpha = Uint8Array.from(atob(mask), (c) => c.charCodeAt(0));
            const geos = cases.map((o) => f.geometry(alpha, w, h, o));
            const cut = document.createElement('canvas');
            cut.width = w; cut.height = h;
            const img = new ImageData(w, h);
            for (let i = 0; i < alpha.length; i++) { img.data[4 * i] = 200; img.data[4 * i + 3] = alpha[i]; }
            cut.getContext('2d').putImageData(img, 0, 0);
            const { canvas } = f.frame(cut, null, f.ECOMMERCE);
            const px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            return { geos, size: [canvas.width, canvas.height], corner: Array.from(px.slice(0, 4)) };
        }""",
        {
            "mask": base64.b64encode(mask.tobytes()).decode(),
            "w": 140,
            "h": 90,
            "cases": [
                {
                    "crop": c.crop,
                    "margin": c.margin,
                    "square": c.square,
                    "padding": c.padding,
                    "maxSize": c.max_size,
                }
                for c in cases
            ],
        },
    )
    for framing, js in zip(cases, got["geos"], strict=True):
        geo = geometry(mask, framing)
        assert tuple(js["box"]) == geo.box and tuple(js["window"]) == geo.window
        assert tuple(js["size"]) == geo.size
    eco = geometry(mask, Framing.ecommerce())
    assert tuple(got["size"]) == eco.size and got["size"][0] == got["size"][1]
    assert got["corner"] == [255, 255, 255, 255]


def test_private_mode_cuts_out_in_the_browser_and_uploads_nothing(
    page: tuple[Any, Seen], live: LiveServer, server_alpha: np.ndarray, remover: Remover, tmp_path: Path
) -> None:
    pg, seen = page
    open_page(pg, live)
    assert pg.evaluate("crossOriginIsolated"), "COOP/COEP did not make the page cross-origin isolated"
    assert pg.is_checked('input[name="mode"][value="browser"]')  # private is the default
    first_request = len(live.recorder.requests)
    started = time.monotonic()
    alpha, summary = cut_out(pg, tmp_path / "private.png")
    elapsed = time.monotonic() - started
    pg.screenshot(path=str(ARTIFACTS / "web-private.png"), full_page=True)
    pg.set_viewport_size({"width": 390, "height": 844})
    pg.screenshot(path=str(ARTIFACTS / "web-phone.png"), full_page=True)

    score = iou(alpha, server_alpha)
    diff = float(np.abs(alpha.astype(int) - server_alpha.astype(int)).mean())
    print(f"\nprivate mode: {elapsed:.1f} s in all; {summary}; IoU {score:.4f}, mean |Δα| {diff:.3f}")
    # "private" never means "worse": the browser's mask is the server's default mask
    assert score >= 0.99 and diff < 2.0
    assert "in your browser" in summary and "WebAssembly" in summary
    for other in PHOTOS[1:]:
        got, _ = cut_out(pg, tmp_path / f"private-{other.stem}.png", other)
        want = remover.remove(other).mask
        other_diff = float(np.abs(got.astype(int) - want.astype(int)).mean())
        print(f"{other.name}: IoU {iou(got, want):.4f}, mean |Δα| {other_diff:.3f}")
        assert iou(got, want) >= 0.99 and other_diff < 2.0, other.name

    # Privacy, as the browser saw it: nothing but GETs, none carrying a photo.
    photos = [p.read_bytes() for p in PHOTOS]
    for request in seen.requests:
        assert request.method in ("GET", "HEAD"), f"{request.method} {request.url}"
        body = request.post_data_buffer
        assert not body or not any(photo_in(body, photo) for photo in photos), request.url
    # ... and as the server saw it.
    received = live.recorder.requests[first_request:]
    assert not [r for r in received if r.path == "/api/remove"]
    assert not [r for r in received if any(photo_in(r.body, photo) for photo in photos)]
    assert len([r for r in received if r.path.startswith("/models/chunks/")]) == 22  # 84 MiB / 4 MiB
    assert not seen.errors, seen.errors


def test_server_mode_posts_the_photo(
    page: tuple[Any, Seen], live: LiveServer, server_alpha: np.ndarray, remover: Remover, tmp_path: Path
) -> None:
    pg, seen = page
    open_page(pg, live)
    pg.check('input[name="mode"][value="server"]')
    first_request = len(live.recorder.requests)
    alpha, summary = cut_out(pg, tmp_path / "server.png")
    pg.screenshot(path=str(ARTIFACTS / "web-server.png"), full_page=True)
    assert "on the server" in summary
    posts = [r for r in live.recorder.requests[first_request:] if r.method == "POST"]
    assert [r.path for r in posts] == ["/api/remove"]
    assert photo_in(posts[0].body, PHOTO.read_bytes())
    # Decoded by Pillow on the server vs the library on the same bytes: the same cut-out.
    assert iou(alpha, server_alpha) >= 0.99
    assert b'name="mode"\r\n\r\ndefault' in posts[0].body
    # The best quality mode is asked of the server, and it is the library's best mask.
    pg.select_option("#quality", "best")
    best, _ = cut_out(pg, tmp_path / "server-best.png")
    posts = [r for r in live.recorder.requests[first_request:] if r.method == "POST"]
    assert b'name="mode"\r\n\r\nbest' in posts[-1].body
    want = remover.remove(PHOTO, mode="best").mask
    assert iou(best, want) >= 0.99 and not np.array_equal(best, server_alpha)
    assert not seen.errors, seen.errors


def test_private_mode_runs_the_quality_modes(
    page: tuple[Any, Seen], live: LiveServer, server_alpha: np.ndarray, remover: Remover, tmp_path: Path
) -> None:
    """Fast and best run in the browser too, with the server's mask for each mode. Their
    768² network comes as a ~100 KB delta on the model the page already holds, not a second
    88 MB download; nothing is uploaded."""
    pg, seen = page
    open_page(pg, live)
    pg.check('input[name="mode"][value="browser"]')
    assert pg.is_enabled("#quality") and pg.is_disabled("#decontaminate")
    first_request = len(live.recorder.requests)
    got = {}
    for quality in ("fast", "best"):
        pg.select_option("#quality", quality)
        started = time.monotonic()
        got[quality], summary = cut_out(pg, tmp_path / f"private-{quality}.png")
        want = remover.remove(PHOTO, mode=quality).mask
        diff = float(np.abs(got[quality].astype(int) - want.astype(int)).mean())
        print(f"\n{quality} in the browser: {time.monotonic() - started:.1f} s; {summary}; "
              f"IoU {iou(got[quality], want):.4f}, mean |Δα| {diff:.3f}")  # fmt: skip
        assert iou(got[quality], want) >= 0.99 and diff < 2.0, quality
        assert f"{quality} quality" in summary and "in your browser" in summary
        assert not np.array_equal(got[quality], server_alpha)
    assert "in 4 passes" in summary
    received = live.recorder.requests[first_request:]
    assert not [r for r in received if r.method == "POST"]
    with urllib.request.urlopen(live.url + "/models/resources.json") as r:
        resources = json.load(r)
    delta, base = resources["/models/medium@768"], resources["/models/medium"]
    assert delta["size"] < 1_000_000 and delta["derived"]["base"] == "/models/medium"
    fetched = [r.path.rsplit("/", 1)[1] for r in received if r.path.startswith("/models/chunks/")]
    assert {c["hash"] for c in delta["chunks"]} <= set(fetched)  # downloaded once, for fast
    assert len(fetched) == len(set(fetched))
    assert set(fetched) <= {c["hash"] for c in delta["chunks"] + base["chunks"]}
    assert not seen.errors, seen.errors


# --------------------------------------------------------------------------- policies, start-up

#: Every Content-Security-Policy violation of a document, kept where the test can read it.
CSP_LISTENER = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', (e) =>
    window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


def swagger_ui_files() -> Path:
    """swagger-ui-dist 5 (what FastAPI's /docs loads from jsDelivr), from the npm registry
    once into the test cache; skips where npm cannot fetch it."""
    import tarfile
    import tempfile

    from cleancut.errors import CleancutError
    from cleancut.models.download import npm_pack
    from conftest import TEST_CACHE

    folder = TEST_CACHE / "web" / "swagger-ui-dist-5"
    names = ("swagger-ui-bundle.js", "swagger-ui.css")
    if not all((folder / n).is_file() for n in names):
        with tempfile.TemporaryDirectory() as tmp:
            try:
                tarball = npm_pack("npm", "swagger-ui-dist@5", Path(tmp), 300.0)
            except CleancutError as exc:
                pytest.skip(f"swagger-ui-dist is not available: {exc}")
            folder.mkdir(parents=True, exist_ok=True)
            with tarfile.open(tarball) as tar:
                for name in names:
                    member = tar.extractfile(f"package/{name}")
                    assert member is not None
                    (folder / (name + ".part")).write_bytes(member.read())
                    (folder / (name + ".part")).replace(folder / name)
    return folder


def test_the_page_and_the_docs_run_under_their_policies(browser_context: Any, live: LiveServer) -> None:
    """The page's CSP lets it do what it does (module scripts, a module worker, WebAssembly,
    blob: workers and URLs, its own fetches) and refuses the rest; /docs renders the real
    Swagger UI under its own policy (jsDelivr routed to the npm package of the same files)."""
    page = browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    try:
        page.add_init_script(CSP_LISTENER)
        page.goto(live.url + "/")
        page.wait_for_function("() => document.querySelector('#engine-note').textContent.length > 0")
        got = page.evaluate(
            """async () => {
                // A wasm module compiled here (what onnxruntime-web does) ...
                const wasm = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]);
                await WebAssembly.compile(wasm);
                // ... a blob: worker (threaded wasm's) and a module worker of our own ...
                const blob = new Blob(['postMessage(1)'], {type: 'text/javascript'});
                const fromBlob = await new Promise((ok, no) => {
                    const w = new Worker(URL.createObjectURL(blob));
                    w.onmessage = (e) => ok(e.data); w.onerror = () => no(new Error('blob worker refused'));
                });
                const config = await (await fetch('/api/config')).json();
                // ... and what it must not: an inline script, another origin.
                const s = document.createElement('script');
                s.textContent = 'window.__inline = true';
                document.head.append(s);
                let foreign = 'fetched';
                try { await fetch('http://192.0.2.1/'); } catch { foreign = 'refused'; }
                await new Promise((r) => setTimeout(r, 200));
                return {fromBlob, version: config.version, inline: window.__inline === true, foreign,
                        violations: window.__violations, framed: window.top === window};
            }"""
        )
        assert got["fromBlob"] == 1 and got["version"]
        assert not got["inline"] and got["foreign"] == "refused"
        assert sorted(v.split(" ")[0] for v in got["violations"]) == ["connect-src", "script-src-elem"], got
        errors.clear()  # the two refusals above are logged as errors; nothing else may be

        # /docs: Swagger UI's bundle and stylesheet as jsDelivr serves them, the favicon refused.
        files = swagger_ui_files()

        def cdn(route: Any) -> None:
            name = route.request.url.rsplit("/", 1)[-1]
            path = files / name
            if not path.is_file():
                route.abort()
                return
            kind = "text/javascript" if name.endswith(".js") else "text/css"
            route.fulfill(
                body=path.read_bytes(),
                headers={"Content-Type": kind, "Access-Control-Allow-Origin": "*",
                         "Cross-Origin-Resource-Policy": "cross-origin"},
            )  # fmt: skip

        page.route("https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/**", cdn)
        page.route("https://fastapi.tiangolo.com/**", lambda route: route.abort())
        page.goto(live.url + "/docs")
        page.wait_for_selector(".swagger-ui .info .title", timeout=60_000)
        assert "cleancut" in page.inner_text(".swagger-ui .info .title")
        page.wait_for_selector("#operations-default-remove_api_remove_post, .opblock", timeout=60_000)
        assert page.evaluate("window.__violations") == []
        assert not [e for e in errors if "Content Security Policy" in e], errors
    finally:
        page.close()


def start_server(app: Any) -> tuple[str, Any, threading.Thread]:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="cleancut-test-server-2", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, thread


def wait_done_or_failed(page: Any) -> None:
    page.wait_for_function(
        "() => document.querySelector('.job.done a.download') || document.querySelector('.job.failed')",
        timeout=RUN_TIMEOUT_MS,
    )
    failed = page.query_selector(".job.failed .job-error")
    assert failed is None, failed.inner_text()


def test_page_opened_while_the_model_loads_waits_for_it(
    browser_context: Any, model_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opened right after `cleancut serve` starts (the model loads in the background), the
    page says the model is loading and holds a photo dropped meanwhile until it is loaded;
    the photo is then cut out, not marked failed."""
    from cleancut.server.engine import Engine

    loaded = threading.Event()
    original = Engine.load

    def slow_load(self: Engine) -> None:  # a model that takes its time to load
        assert loaded.wait(300)
        original(self)

    monkeypatch.setattr(Engine, "load", slow_load)
    # No in-browser engine: the page falls back to server mode, as it does without npm.
    url, server, thread = start_server(create_app(ServerSettings(core=model_settings, browser=False)))
    page = browser_context.new_page()
    try:
        page.goto(url + "/")
        page.wait_for_function(
            "() => document.querySelector('#engine-note').textContent.includes('loading the model')"
        )
        assert page.get_attribute("#drop", "aria-busy") == "true"
        page.set_input_files("#file", str(PHOTO))
        page.wait_for_function(
            "() => document.querySelector('.job .stage-label').textContent === 'Waiting for the server'"
        )
        time.sleep(3)  # a while: the photo waits, it does not fail
        assert page.query_selector(".job.failed") is None
        loaded.set()
        wait_done_or_failed(page)
        assert page.is_checked('input[name="mode"][value="server"]')
        assert "on the server" in page.inner_text(".job.done .job-done")
        assert page.get_attribute("#drop", "aria-busy") is None
    finally:
        loaded.set()
        page.close()
        server.should_exit = True
        thread.join(30)


def test_page_honours_retry_after_when_the_server_is_busy(
    browser_context: Any, model_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 503 with Retry-After (every slot taken) is waited out and retried: the photo shows
    that the server is busy, then is cut out."""
    from cleancut import UnreadableImageError
    from cleancut.server.engine import Engine

    release = threading.Event()
    held = threading.Event()
    original = Engine._decode

    def decode(self: Engine, *args: Any) -> Any:
        if not held.is_set():  # the first request holds the only slot until released
            held.set()
            assert release.wait(120)
            raise UnreadableImageError("released by the test")
        return original(self, *args)

    monkeypatch.setattr(Engine, "_decode", decode)
    settings = ServerSettings(
        core=model_settings, browser=False, load_in_background=False, workers=1, queue_size=0, timeout=5.0
    )
    url, server, thread = start_server(create_app(settings))
    page = browser_context.new_page()
    holder = threading.Thread(target=_post_quietly, args=(url,), daemon=True)
    try:
        holder.start()
        assert held.wait(30)
        page.goto(url + "/")
        page.wait_for_function("() => document.querySelector('#engine-note').textContent.length > 0")
        page.set_input_files("#file", str(PHOTO))
        page.wait_for_function(
            "() => document.querySelector('.job .stage-label').textContent === 'The server is busy'",
            timeout=60_000,
        )
        assert "trying again in" in page.inner_text(".job .stage-detail")
        release.set()
        wait_done_or_failed(page)
        assert "on the server" in page.inner_text(".job.done .job-done")
    finally:
        release.set()
        holder.join(30)
        page.close()
        server.should_exit = True
        thread.join(30)


def _post_quietly(url: str) -> None:
    """POST a tiny body and ignore the (error) answer: it only holds the slot meanwhile."""
    request = urllib.request.Request(
        url + "/api/remove", data=b"\x89PNG....", headers={"Content-Type": "image/png"}
    )
    try:
        urllib.request.urlopen(request, timeout=120).close()
    except OSError:
        pass


def test_second_visit_works_offline(
    page: tuple[Any, Seen], live: LiveServer, server_alpha: np.ndarray, tmp_path: Path
) -> None:
    """With the server gone, the page (service worker), onnxruntime-web and the model (Cache
    API, checked again by SHA-256) are all still there, and a photo is cut out."""
    pg, _ = page
    live.stop()
    pg.goto(live.url + "/")
    pg.wait_for_function("() => document.querySelector('#engine-note').textContent.length > 0")
    assert pg.evaluate("crossOriginIsolated")
    assert pg.is_enabled('input[name="mode"][value="browser"]')
    alpha, summary = cut_out(pg, tmp_path / "offline.png")
    assert "in your browser" in summary
    assert iou(alpha, server_alpha) >= 0.95
    pg.screenshot(path=str(ARTIFACTS / "web-offline.png"), full_page=True)


def test_a_custom_birefnet_model_runs_in_the_browser(
    browser_context: Any, model_settings: Settings, tmp_path: Path
) -> None:
    """``-m tiny.onnx --model-family birefnet``: the page runs the file itself with the
    family's recipe (Pillow bilinear to 64², ImageNet normalisation, the last of three maps,
    a sigmoid, Pillow bicubic back), its alpha the server's within 1/255, and no request
    carries the photo."""
    from tinygraphs import REFERENCES, expected_value, flat_photo, make_graph

    graph = make_graph(tmp_path / "tiny-birefnet.onnx", height=64, extra_outputs=2)
    rgb = (250, 10, 60)
    photo = tmp_path / "flat.png"
    pixels = flat_photo(rgb, 90, 120)
    pixels[30:60, 40:80] = (20, 200, 90)  # a second colour: the resize and its edges count too
    Image.fromarray(pixels).save(photo)
    settings = ServerSettings(
        models=(str(graph),), model_family="birefnet", core=model_settings, load_in_background=False
    )
    recorder = Recorder(create_app(settings))
    url, server, thread = start_server(recorder)
    page = browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        with urllib.request.urlopen(url + "/api/config") as r:
            config = json.load(r)
        assert config["browser"]["state"] == "ready", config["browser"]["detail"]
        assert config["browser"]["model"]["resource"] == "/models/tiny-birefnet"
        assert config["browser"]["output"] == "z" and config["browser"]["recipe"]["activation"] == "sigmoid"
        request = urllib.request.Request(
            url + "/api/remove?format=alpha8", data=photo.read_bytes(), headers={"Content-Type": "image/png"}
        )
        with urllib.request.urlopen(request) as r:
            want = np.frombuffer(r.read(), np.uint8).reshape(90, 120)
        assert abs(int(want[5, 5]) - 255 * expected_value(REFERENCES["birefnet"], rgb, "logits")) <= 1.5
        first = len(recorder.requests)
        page.goto(url + "/")
        page.wait_for_function("() => document.querySelector('#engine-note').textContent.length > 0")
        assert page.is_checked('input[name="mode"][value="browser"]')
        alpha, summary = cut_out(page, tmp_path / "cut.png", photo)
        assert "in your browser" in summary
        diff = np.abs(alpha.astype(int) - want.astype(int))
        print(f"\ncustom birefnet in the browser: {summary}; max |Δα| {diff.max()}")
        assert diff.max() <= 1
        data = photo.read_bytes()
        received = recorder.requests[first:]
        assert not [r for r in received if r.method == "POST" or photo_in(r.body, data)]
        assert [r for r in received if r.path.startswith("/models/chunks/")]
        assert not errors, errors
    finally:
        page.close()
        server.should_exit = True
        thread.join(30)
