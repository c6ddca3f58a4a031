"""``GET /metrics``: scraped after real requests (real inference, in-process ``TestClient``),
parsed with prometheus_client's own parser. The in-flight and queue-depth gauges are read
while the real job queue holds requests at a gated engine stage (as in test_server.py)."""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the server extra is not installed: pip install 'cleancut[server]'")
pytest.importorskip("prometheus_client", reason="the server extra is not installed")

from click.testing import CliRunner
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from cleancut import Settings
from cleancut.server import ServerSettings, create_app
from cleancut.server.engine import Engine
from conftest import EXAMPLES
from slowpeers import live_server, post
from test_server import Gate, in_thread, png_bytes, wait_for

MODEL = "isnet_fp16"


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient) -> Samples:
    """Every sample of ``/metrics``: (name, labels) -> value."""
    r = client.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(r.text)


def scrape_live(port: int) -> Samples:
    """``/metrics`` of a server listening on ``port``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        assert resp.status == 200
        return parse(resp.read().decode())
    finally:
        conn.close()


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name, frozenset(sample.labels.items())] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value; 0 for a labelled series never incremented (absent until then)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture(scope="module")
def settings(model_settings: Settings) -> ServerSettings:
    return ServerSettings(core=model_settings, load_in_background=False, browser=False)


@pytest.fixture(scope="module")
def client(settings: ServerSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def test_scrape_after_real_requests_counts_and_times_them(client: TestClient) -> None:
    photo = (EXAMPLES / "astronaut.jpg").read_bytes()
    ok = client.post("/api/remove", content=photo, headers={"Content-Type": "image/jpeg"})
    assert ok.status_code == 200, ok.text
    bad = client.post("/api/remove", content=b"not an image", headers={"Content-Type": "image/png"})
    assert bad.status_code == 400
    assert (
        client.post(
            "/api/remove?mode=nope", content=photo, headers={"Content-Type": "image/jpeg"}
        ).status_code
        == 422
    )
    assert client.get("/api/jobs/0123456789abcdef0123").status_code == 404
    assert client.get("/no/such/page").status_code == 404
    assert client.get("/healthz").status_code == 200

    m = scrape(client)
    remove = {"route": "/api/remove", "method": "POST"}
    assert value(m, "cleancut_requests_total", **remove, status="200") == 1
    assert value(m, "cleancut_requests_total", **remove, status="400") == 1
    assert value(m, "cleancut_requests_total", **remove, status="422") == 1
    # Route templates, never raw paths: a client cannot mint series.
    assert value(m, "cleancut_requests_total", route="/api/jobs/{job_id}", method="GET", status="404") == 1
    assert value(m, "cleancut_requests_total", route="unmatched", method="GET", status="404") == 1
    assert value(m, "cleancut_requests_total", route="/healthz", method="GET", status="200") == 1
    assert not any("/no/such" in str(labels) or "0123456789" in str(labels) for _, labels in m)
    # Cut-outs by outcome and model: the unreadable photo is one (400); the bad option never
    # named a model the server could run, so it is a request but no cut-out.
    assert value(m, "cleancut_cutouts_total", route="/api/remove", status="200", model=MODEL) == 1
    assert value(m, "cleancut_cutouts_total", route="/api/remove", status="400", model=MODEL) == 1
    assert sum(v for (name, _), v in m.items() if name == "cleancut_cutouts_total") == 2

    # Stage histograms: the one real cut-out's stages (the unreadable photo stopped in decode,
    # a stage cut short, which is not timed), agreeing with the answer's Server-Timing.
    timing = dict(
        (part.split(";dur=")[0], float(part.split(";dur=")[1]) / 1000)
        for part in ok.headers["server-timing"].split(", ")
    )
    for metric, stage in (
        ("cleancut_queue_wait_seconds", "queue"),
        ("cleancut_decode_seconds", "decode"),
        ("cleancut_inference_seconds", "inference"),
        ("cleancut_encode_seconds", "encode"),
    ):
        assert value(m, f"{metric}_count", kind="photo") == 1, metric
        assert value(m, f"{metric}_sum", kind="photo") == pytest.approx(timing[stage], abs=1e-3), metric
        assert value(m, f"{metric}_bucket", kind="photo", le="+Inf") == 1
    assert value(m, "cleancut_inference_seconds_sum", kind="photo") > 0.01  # a real network pass
    assert value(m, "cleancut_request_seconds_count", route="/api/remove") == 3

    # Live state: an idle queue, the model loaded (and how long that took), the scrape itself
    # the one request in flight.
    assert value(m, "cleancut_queue_capacity") == 5
    assert value(m, "cleancut_queue_admitted") == 0
    assert value(m, "cleancut_queue_depth") == 0
    assert value(m, "cleancut_inference_in_flight") == 0
    assert value(m, "cleancut_requests_in_flight") == 1
    assert value(m, "cleancut_model_state", state="ready") == 1
    assert value(m, "cleancut_model_state", state="loading") == 0
    assert value(m, "cleancut_model_load_seconds", model=MODEL) > 0
    engine = client.app.state.cleancut.engine  # type: ignore[attr-defined]
    assert value(m, "cleancut_model_load_seconds", model=MODEL) == engine.load_seconds[MODEL]
    info = [labels for (name, labels), v in m.items() if name == "cleancut_model_info" and v == 1]
    assert len(info) == 1 and ("model", MODEL) in info[0]


def test_metrics_answer_has_the_servers_headers_and_speaks_openmetrics(client: TestClient) -> None:
    r = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    assert r.text.rstrip().endswith("# EOF")
    assert r.headers["cache-control"] == "no-store"
    # The same middleware as every route: isolation headers (and whatever checks run there).
    assert r.headers["cross-origin-resource-policy"] == "same-origin"
    assert r.headers["x-content-type-options"] == "nosniff"


def test_metrics_are_behind_the_host_check(settings: ServerSettings) -> None:
    # A page on another site that rebinds its name to this server must not read them either.
    with TestClient(create_app(settings)) as c:
        r = c.get("/metrics", headers={"Host": "evil.example"})
        assert r.status_code == 421 and r.json()["error"] == "host_not_allowed"
        assert "cleancut_requests_total" not in r.text
        # The refusal is counted, under no route (it never reached one).
        m = scrape(c)
        assert value(m, "cleancut_requests_total", route="unmatched", method="GET", status="421") == 1


def test_queue_depth_and_in_flight_while_the_queue_holds_requests(
    settings: ServerSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate()
    monkeypatch.setattr(Engine, "_infer", gate.stage(lambda: np.zeros((1, 1, 1024, 1024), np.float32)))
    with TestClient(create_app(settings.with_(workers=1, queue_size=2))) as c:
        post = lambda: c.post("/api/remove", content=png_bytes(), headers={"Content-Type": "image/png"})  # noqa: E731
        first, first_answer = in_thread(post)
        assert gate.entered.wait(10)  # the only worker runs the first request's inference
        second, second_answer = in_thread(post)
        queue = c.app.state.cleancut.queue  # type: ignore[attr-defined]
        wait_for(lambda: queue.waiting == 1)  # the second waits for that worker
        m = scrape(c)
        assert value(m, "cleancut_queue_depth") == 1
        assert value(m, "cleancut_inference_in_flight") == 1
        assert value(m, "cleancut_queue_admitted") == 2
        assert value(m, "cleancut_requests_in_flight") == 3  # two cut-outs and this scrape
        gate.release.set()
        first.join(30)
        second.join(30)
        assert first_answer[0].status_code == 200 and second_answer[0].status_code == 200
        wait_for(lambda: queue.stats().admitted == 0)
        m = scrape(c)
        assert value(m, "cleancut_queue_depth") == 0
        assert value(m, "cleancut_inference_in_flight") == 0
        assert value(m, "cleancut_requests_in_flight") == 1
        assert value(m, "cleancut_queue_wait_seconds_count", kind="photo") == 2
        # The second request waited about as long as the first one's gated inference ran.
        assert value(m, "cleancut_queue_wait_seconds_sum", kind="photo") > 0
        assert value(m, "cleancut_cutouts_total", route="/api/remove", status="200", model=MODEL) == 2


def test_a_deadline_while_queued_is_timed_and_counted(
    settings: ServerSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate()
    monkeypatch.setattr(Engine, "_infer", gate.stage(lambda: np.zeros((1, 1, 1024, 1024), np.float32)))
    with TestClient(create_app(settings.with_(workers=1, queue_size=1, timeout=1.0))) as c:
        post = lambda: c.post("/api/remove", content=png_bytes(), headers={"Content-Type": "image/png"})  # noqa: E731
        first, first_answer = in_thread(post)
        assert gate.entered.wait(10)
        r = post()  # waits for the busy worker until its deadline
        assert r.status_code == 503 and r.json()["error"] == "queue_timeout"
        first.join(10)
        assert first_answer[0].status_code == 504
        queue = c.app.state.cleancut.queue  # type: ignore[attr-defined]
        assert queue.waiting == 0  # the dropped job left the line
        m = scrape(c)
        gate.release.set()
        # The queued request's wait is its whole deadline; the gated one's stage was cut short.
        assert value(m, "cleancut_queue_wait_seconds_count", kind="photo") == 2
        assert value(m, "cleancut_queue_wait_seconds_sum", kind="photo") >= 0.9
        assert value(m, "cleancut_inference_seconds_count", kind="photo") == 0
        assert value(m, "cleancut_queue_timeouts_total") == 2
        assert value(m, "cleancut_cutouts_total", route="/api/remove", status="503", model=MODEL) == 1
        assert value(m, "cleancut_cutouts_total", route="/api/remove", status="504", model=MODEL) == 1


def test_clients_that_leave_are_499_and_leave_the_line(
    settings: ServerSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As in test_server.py: one worker held by a first request; three clients send a photo
    # and hang up while their jobs wait for the worker. A real server (uvicorn), raw sockets.
    gate = Gate()
    monkeypatch.setattr(Engine, "_infer", gate.stage(lambda: np.zeros((1, 1, 1024, 1024), np.float32)))
    app = create_app(settings.with_(workers=1, queue_size=4))
    with live_server(app) as live:
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
        wait_for(lambda: queue.waiting == 3)
        assert value(scrape_live(live.port), "cleancut_queue_depth") == 3
        for sock in leavers:
            sock.close()
        wait_for(lambda: queue.stats().admitted == 1, timeout=5)
        m = scrape_live(live.port)
        # Their dropped jobs left the line; they count as requests and cut-outs answered 499.
        assert value(m, "cleancut_queue_depth") == 0
        assert value(m, "cleancut_queue_abandoned_total") == 3
        remove = {"route": "/api/remove", "method": "POST"}
        assert value(m, "cleancut_requests_total", **remove, status="499") == 3
        assert value(m, "cleancut_cutouts_total", route="/api/remove", status="499", model=MODEL) == 3
        gate.release.set()
        first.join(30)
        assert answer[0][0] == 200


def test_each_app_has_its_own_registry(settings: ServerSettings) -> None:
    with TestClient(create_app(settings)) as a, TestClient(create_app(settings)) as b:
        for _ in range(3):
            assert a.get("/healthz").status_code == 200
        assert b.get("/healthz").status_code == 200
        health = {"route": "/healthz", "method": "GET", "status": "200"}
        assert value(scrape(a), "cleancut_requests_total", **health) == 3
        assert value(scrape(b), "cleancut_requests_total", **health) == 1


def test_no_metrics_turns_the_route_and_counting_off(settings: ServerSettings) -> None:
    with TestClient(create_app(settings.with_(metrics=False))) as c:
        r = c.get("/metrics")
        assert r.status_code == 404 and r.json()["error"] == "not_found"
        assert c.app.state.cleancut.queue.observer is None  # type: ignore[attr-defined]
        assert "/metrics" not in c.get("/openapi.json").json()["paths"]
    assert "/metrics" in TestClient(create_app(settings)).get("/openapi.json").json()["paths"]


def test_serve_metrics_flag(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import uvicorn

    from cleancut.server.command import serve

    apps: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **_kw: apps.append(app))
    for flags, expected in (([], True), (["--no-metrics"], False), (["--metrics"], True)):
        result = CliRunner().invoke(serve, ["--offline", "--cache-dir", str(tmp_path), *flags])
        assert result.exit_code == 0, result.output
        assert apps[-1].state.cleancut.settings.metrics is expected
    help_text = CliRunner().invoke(serve, ["--help"]).output
    assert "--metrics / --no-metrics" in help_text and "/metrics" in help_text


def test_a_clip_counts_once_when_its_job_ends(model_settings: Settings, tmp_path: Path) -> None:
    pytest.importorskip("av", reason="the video extra is not installed: pip install 'cleancut[video]'")
    from test_server_video import astronaut_frames, wait_done, write_clip

    path = tmp_path / "walk.mp4"
    write_clip(path, astronaut_frames(3, 64, 48))
    settings = ServerSettings(
        core=model_settings, load_in_background=False, browser=False, video_dir=tmp_path / "jobs"
    )
    with TestClient(create_app(settings)) as c:
        r = c.post("/api/remove-video", content=path.read_bytes(), headers={"Content-Type": "video/mp4"})
        assert r.status_code == 202, r.text
        # Admitted, not done: the 202 is a request, not yet a cut-out.
        m = scrape(c)
        route = {"route": "/api/remove-video"}
        assert value(m, "cleancut_requests_total", **route, method="POST", status="202") == 1
        job, _seen = wait_done(c, r.json()["status_url"])
        assert job["state"] == "done", job
        deadline = time.monotonic() + 10
        while value(scrape(c), "cleancut_cutouts_total", **route, status="200", model=MODEL) != 1:
            assert time.monotonic() < deadline, "the finished clip was never counted"
            time.sleep(0.02)
        m = scrape(c)
        assert sum(v for (name, _), v in m.items() if name == "cleancut_cutouts_total") == 1
        # One inference per frame, timed as frames (photos' histograms untouched).
        assert value(m, "cleancut_inference_seconds_count", kind="frame") == job["frames"]["total"] == 3
        assert value(m, "cleancut_inference_seconds_count", kind="photo") == 0
        assert value(m, "cleancut_video_jobs_kept") == 1
        assert value(m, "cleancut_video_jobs_running") == 0
