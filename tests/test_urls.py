"""URL fetching (:mod:`cleancut.urls`) against real HTTP servers on 127.0.0.1, and the HTTP
API's ``url`` field end to end.

No traffic may leave 127.0.0.1 here: every socket the fetcher opens goes through
``socket.create_connection``, which a fixture wraps to record the target and to refuse any
address other than 127.0.0.1 (so a policy bug fails the test instead of sending a packet).
Refusals of other addresses (169.254.169.254, 10.0.0.1, ::1) are therefore checked to
happen *before* any connection is attempted.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from cleancut import Settings, UrlFetchError, UrlRefusedError
from cleancut import urls as urls_module
from cleancut.errors import InvalidOptionError
from cleancut.urls import UrlPolicy, fetch_url
from conftest import EXAMPLES
from slowpeers import TrickleSource, live_server, post

LOCAL = UrlPolicy(allowed_networks=("127.0.0.1/32",), timeout=10.0)

Route = Callable[[BaseHTTPRequestHandler], None]


class LocalServer:
    """A threaded HTTP server on 127.0.0.1 with per-path handlers; counts connections
    (accepted sockets, whether or not a request followed) and requests."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[str] = []
        self.connections = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                with outer.lock:
                    outer.requests.append(self.path)
                route = outer.routes.get(self.path.split("?", 1)[0])
                if route is None:
                    self.send_error(404)
                    return
                try:
                    route(self)
                except OSError:  # the client hung up (a cap or a timeout did its job)
                    pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self) -> tuple[socket.socket, Any]:
                conn = super().get_request()
                with outer.lock:
                    outer.connections += 1
                return conn

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def body(self, path: str, data: bytes, content_type: str = "image/jpeg") -> None:
        def route(h: BaseHTTPRequestHandler) -> None:
            h.send_response(200)
            h.send_header("Content-Type", content_type)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)

        self.routes[path] = route

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        def route(h: BaseHTTPRequestHandler) -> None:
            h.send_response(status)
            h.send_header("Location", location)
            h.send_header("Content-Length", "0")
            h.end_headers()

        self.routes[path] = route

    def __enter__(self) -> LocalServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer() as s:
        yield s


@pytest.fixture(autouse=True)
def only_loopback(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Record every connection the fetcher opens; refuse any target but 127.0.0.1."""
    seen: list[tuple[str, int]] = []
    real = socket.create_connection

    def guarded(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        seen.append((str(address[0]), int(address[1])))
        if address[0] != "127.0.0.1":
            raise AssertionError(f"the fetcher tried to connect to {address[0]}")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(urls_module.socket, "create_connection", guarded)
    return seen


@pytest.fixture(scope="module")
def photo() -> bytes:
    return (EXAMPLES / "astronaut.jpg").read_bytes()


# --------------------------------------------------------------------------- addresses


def test_loopback_is_refused_by_default_and_nothing_connects(
    server: LocalServer, photo: bytes, only_loopback: list[tuple[str, int]]
) -> None:
    server.body("/a.jpg", photo)
    for url in (f"{server.base}/a.jpg", f"http://localhost:{server.port}/a.jpg"):
        with pytest.raises(UrlRefusedError, match="loopback"):
            fetch_url(url, UrlPolicy())
    assert only_loopback == []
    time.sleep(0.1)
    assert server.connections == 0 and server.requests == []


def test_allowed_with_the_setting(server: LocalServer, photo: bytes) -> None:
    server.body("/a.jpg", photo)
    assert fetch_url(f"{server.base}/a.jpg", UrlPolicy(allow_private=True)) == photo
    assert fetch_url(f"{server.base}/a.jpg?x=1", LOCAL) == photo
    assert server.requests == ["/a.jpg", "/a.jpg?x=1"]


def test_setting_from_the_environment() -> None:
    assert not UrlPolicy.from_env({}).allow_private
    assert UrlPolicy.from_env({"CLEANCUT_URL_ALLOW_PRIVATE": "1"}).allow_private
    policy = UrlPolicy.from_env({"CLEANCUT_URL_ALLOW_NETWORKS": "127.0.0.1/32, 10.1.0.0/16"})
    assert policy.allowed_networks == ("127.0.0.1/32", " 10.1.0.0/16")
    with pytest.raises(InvalidOptionError):
        UrlPolicy.from_env({"CLEANCUT_URL_ALLOW_PRIVATE": "maybe"})
    with pytest.raises(InvalidOptionError):
        UrlPolicy(allowed_networks=("not a network",))


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.2",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "[::1]",
        "[::]",
        "[fe80::1]",
        "[fc00::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:8.8.8.8]",
        "[2002:a00:1::]",  # 6to4 wrapping 10.0.0.1
        "[64:ff9b::a00:1]",  # NAT64 of 10.0.0.1
        "[ff02::1]",
    ],
)
def test_non_public_addresses_are_refused_before_connecting(
    address: str, only_loopback: list[tuple[str, int]]
) -> None:
    with pytest.raises(UrlRefusedError):
        fetch_url(f"http://{address}/x.jpg", LOCAL)
    assert only_loopback == []


@pytest.mark.parametrize(
    "location",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/x.jpg",
        "http://[::1]:{port}/a.jpg",
        "http://[::ffff:127.0.0.1]:{port}/a.jpg",
        "ftp://127.0.0.1/x.jpg",
        "file:///etc/passwd",
    ],
)
def test_every_redirect_hop_is_checked(
    server: LocalServer, photo: bytes, location: str, only_loopback: list[tuple[str, int]]
) -> None:
    server.body("/a.jpg", photo)
    server.redirect("/go", location.format(port=server.port))
    with pytest.raises(UrlRefusedError):
        fetch_url(f"{server.base}/go", LOCAL)
    # one connection: to the allowed server; none to the redirect's target
    assert only_loopback == [("127.0.0.1", server.port)]
    assert server.requests == ["/go"]


def test_allowed_redirects_are_followed_and_counted(server: LocalServer, photo: bytes) -> None:
    server.body("/a.jpg", photo)
    server.redirect("/r1", "/r2", 301)
    server.redirect("/r2", f"{server.base}/a.jpg", 307)
    assert fetch_url(f"{server.base}/r1", LOCAL) == photo
    server.redirect("/loop", "/loop")
    with pytest.raises(UrlRefusedError, match="more than 3 redirects"):
        fetch_url(f"{server.base}/loop", LOCAL.with_(max_redirects=3))
    assert server.requests.count("/loop") == 4


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://127.0.0.1/a.jpg", "only http:// and https://"),
        ("file:///etc/passwd", "only http:// and https://"),
        ("gopher://127.0.0.1:70/", "only http:// and https://"),
        ("javascript:alert(1)", "only http:// and https://"),
        ("//127.0.0.1/a.jpg", "no scheme"),
        ("http:///a.jpg", "no host"),
        ("http://user:pw@127.0.0.1/a.jpg", "credentials"),
        ("http://127.0.0.1:99999/", "not a valid URL"),
        ("http://[::1/", "not a valid URL"),
        ("http://127.0.0.1/a b", "whitespace"),
        ("http://127.0.0.1/" + "a" * 9000, "characters long"),
    ],
)
def test_other_schemes_and_malformed_urls_are_refused(
    url: str, fragment: str, only_loopback: list[tuple[str, int]]
) -> None:
    with pytest.raises(UrlRefusedError, match=fragment):
        fetch_url(url, UrlPolicy(allow_private=True))
    assert only_loopback == []


# --------------------------------------------------------------------------- size and time


def test_declared_size_over_the_cap_is_refused_before_reading(server: LocalServer) -> None:
    server.body("/big", b"x" * 5000)
    with pytest.raises(UrlRefusedError, match="declares 5,000 bytes"):
        fetch_url(f"{server.base}/big", LOCAL.with_(max_bytes=4999))
    assert fetch_url(f"{server.base}/big", LOCAL.with_(max_bytes=5000)) == b"x" * 5000


def test_streamed_size_is_counted_without_a_content_length(server: LocalServer) -> None:
    sent: list[int] = []

    def endless(h: BaseHTTPRequestHandler) -> None:  # chunked, never ends on its own
        h.send_response(200)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        block = b"y" * 4096
        for _ in range(10_000):
            h.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
            sent.append(len(block))

    server.routes["/endless"] = endless
    started = time.monotonic()
    with pytest.raises(UrlRefusedError, match="over the limit of 100,000 bytes"):
        fetch_url(f"{server.base}/endless", LOCAL.with_(max_bytes=100_000))
    assert time.monotonic() - started < 5
    # the fetcher stopped reading at the cap: the server could not push much past it
    time.sleep(0.2)
    assert sum(sent) < 100_000 + 4 * 2**20


def test_a_trickling_server_is_cut_off_at_the_deadline(server: LocalServer) -> None:
    def trickle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "1000")
        h.end_headers()
        for _ in range(1000):  # one byte every 50 ms: each read succeeds, the whole never ends
            h.wfile.write(b"z")
            h.wfile.flush()
            time.sleep(0.05)

    def slow_headers(h: BaseHTTPRequestHandler) -> None:
        for _ in range(1000):
            h.wfile.write(b"H")
            h.wfile.flush()
            time.sleep(0.05)

    server.routes["/trickle"] = trickle
    server.routes["/headers"] = slow_headers
    for path in ("/trickle", "/headers"):
        started = time.monotonic()
        with pytest.raises(UrlFetchError, match="within 1 s"):
            fetch_url(f"{server.base}{path}", LOCAL.with_(timeout=1.0))
        assert 0.9 < time.monotonic() - started < 3.0


_HTTP10 = b"HTTP/1.0 200 OK\r\nContent-Type: image/jpeg\r\n\r\n"
_CLOSE_SIZED = (
    b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nConnection: close\r\nContent-Length: 100000\r\n\r\n"
)
_CLOSE_UNSIZED = b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nConnection: close\r\n\r\n"


@pytest.mark.parametrize(
    "head", [_HTTP10, _CLOSE_SIZED, _CLOSE_UNSIZED], ids=["http1.0", "close-sized", "close-unsized"]
)
def test_a_trickling_source_that_closes_its_connection_is_cut_off_at_the_deadline(head: bytes) -> None:
    # HTTP/1.0 and `Connection: close` answers make http.client drop its socket reference
    # once the headers are read (the body is read through the response alone): the deadline
    # must still end the fetch. The source sends a byte every 0.2 s for up to 8 s.
    with TrickleSource(head, interval=0.2, limit=40) as source:
        started = time.monotonic()
        with pytest.raises(UrlFetchError, match="within 1 s"):
            fetch_url(source.url, LOCAL.with_(timeout=1.0))
        assert time.monotonic() - started < 2.0
        # and the fetcher hung up: the source's trickle ends at once, not after its 40 bytes
        deadline = time.monotonic() + 2
        while source.open and time.monotonic() < deadline:
            time.sleep(0.02)
        assert source.open == 0


def test_fetch_failures_are_url_fetch_errors(server: LocalServer) -> None:
    with pytest.raises(UrlFetchError, match="HTTP 404"):
        fetch_url(f"{server.base}/missing", LOCAL)

    def short(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "100")
        h.end_headers()
        h.wfile.write(b"only ten b")
        h.close_connection = True

    server.routes["/short"] = short
    with pytest.raises(UrlFetchError, match="ended before"):
        fetch_url(f"{server.base}/short", LOCAL)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    with pytest.raises(UrlFetchError, match="cannot connect"):
        fetch_url(f"http://127.0.0.1:{port}/", LOCAL)


# --------------------------------------------------------------------------- the HTTP API


@pytest.fixture(scope="module")
def api_clients(model_settings: Settings) -> Iterator[tuple[Any, Any]]:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from cleancut.server import ServerSettings, create_app

    strict = ServerSettings(core=model_settings, load_in_background=False, url_policy=UrlPolicy())
    local = ServerSettings(core=model_settings, load_in_background=False, url_policy=LOCAL)
    with TestClient(create_app(strict)) as a, TestClient(create_app(local)) as b:
        yield a, b


def test_api_url_field_end_to_end(
    api_clients: tuple[Any, Any], server: LocalServer, photo: bytes, tmp_path: Path
) -> None:
    strict, local = api_clients
    server.body("/photos/astronaut.jpg", photo)
    url = f"{server.base}/photos/astronaut.jpg"

    refused = strict.post("/api/remove", params={"url": url})
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "url_refused"
    assert "loopback" in refused.json()["detail"]
    assert server.requests == []

    ok = local.post("/api/remove", params={"url": url, "format": "png"})
    assert ok.status_code == 200, ok.text
    assert ok.headers["content-type"] == "image/png"
    assert 'filename="astronaut.cutout.png"' in ok.headers["content-disposition"]
    img = Image.open(io.BytesIO(ok.content))
    assert img.mode == "RGBA" and img.size == Image.open(io.BytesIO(photo)).size

    form = local.post("/api/remove", data={"url": url, "type": "mask"})
    assert form.status_code == 200, form.text
    assert Image.open(io.BytesIO(form.content)).mode == "L"
    assert server.requests == ["/photos/astronaut.jpg"] * 2


def test_api_url_errors(api_clients: tuple[Any, Any], server: LocalServer, photo: bytes) -> None:
    _, local = api_clients
    server.body("/notes.txt", b"not an image at all", "text/plain")
    server.redirect("/meta", "http://169.254.169.254/latest/meta-data/")

    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"params": {"url": "ftp://127.0.0.1/a.jpg"}}, 400, "url_refused"),
        ({"params": {"url": "file:///etc/passwd"}}, 400, "url_refused"),
        ({"params": {"url": "http://[::1"}}, 400, "url_refused"),
        ({"params": {"url": f"{server.base}/meta"}}, 400, "url_refused"),
        ({"params": {"url": f"{server.base}/missing.jpg"}}, 502, "url_fetch_failed"),
        ({"params": {"url": f"{server.base}/notes.txt"}}, 400, "unreadable_image"),
        ({"params": {"url": f"{server.base}/notes.txt", "bogus": "1"}}, 422, "invalid_option"),
        (
            {"data": {"url": f"{server.base}/notes.txt"}, "files": {"file": ("a.jpg", photo)}},
            422,
            "invalid_option",
        ),
    ]
    for kwargs, status, code in cases:
        r = local.post("/api/remove", **kwargs)
        assert r.status_code == status, (kwargs, r.text)
        assert r.json()["error"] == code, (kwargs, r.text)
    ready = local.get("/readyz").json()["queue"]
    assert ready["admitted"] == 0 and ready["running"] == 0


def test_api_trickling_url_sources_free_their_places(model_settings: Settings, photo: bytes) -> None:
    # The scenario on a real server: five url= requests to a source that answers
    # HTTP/1.0 and then sends a byte every 0.2 s (for up to 8 s). Each fetch ends at its
    # 1.5 s deadline, every place is free afterwards, and an ordinary upload works.
    pytest.importorskip("uvicorn")
    from cleancut.server import ServerSettings, create_app

    settings = ServerSettings(
        core=model_settings,
        load_in_background=False,
        browser=False,
        backend="onnxruntime",
        url_policy=LOCAL.with_(timeout=1.5),
    )
    head = b"HTTP/1.0 200 OK\r\nContent-Type: image/jpeg\r\n\r\n"
    with TrickleSource(head, interval=0.2, limit=40) as source, live_server(create_app(settings)) as live:
        answers: list[tuple[int, bytes, float]] = []
        lock = threading.Lock()

        def fetch_through_the_server() -> None:
            started = time.monotonic()
            status, _headers, body = post(live.port, b"", path=f"/api/remove?url={source.url}", timeout=30)
            with lock:
                answers.append((status, body, time.monotonic() - started))

        clients = [threading.Thread(target=fetch_through_the_server, daemon=True) for _ in range(5)]
        for t in clients:
            t.start()
        for t in clients:
            t.join(30)
        assert len(answers) == 5
        for status, body, took in answers:
            assert status == 502 and b"url_fetch_failed" in body and b"within 1.5 s" in body, body
            assert took < 4.0, took
        ready = live.get_json("/readyz")
        assert ready["queue"]["admitted"] == 0 and ready["uploads"]["active"] == 0, ready
        deadline = time.monotonic() + 2
        while source.open and time.monotonic() < deadline:  # it notices at its next byte
            time.sleep(0.02)
        assert source.open == 0  # every connection to the source was hung up
        status, _headers, body = post(live.port, photo, content_type="image/jpeg")
        assert status == 200, body
