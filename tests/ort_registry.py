"""The real onnxruntime-web tarball, fetched once into the test cache, and a local npm registry.

``real_ort_tarball()`` gets the pinned tarball the way the server would (the registry npm is
configured for, else ``npm pack``), checks its integrity and keeps it in the test cache.
``local_registry()`` serves it over HTTP in the npm registry's layout (the package document
and ``/<name>/-/<name>-<version>.tgz``), so the download, ``npm pack`` and wheel-build paths
run against real bytes without the network, and a test can serve altered bytes instead.
"""

from __future__ import annotations

import json
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cleancut.errors import DownloadError
from cleancut.io.atomic import write_atomic
from cleancut.models.download import npm_pack
from cleancut.server import ort_release
from conftest import TEST_CACHE

ORT_TARBALL = TEST_CACHE / f"{ort_release.PACKAGE}-{ort_release.VERSION}.tgz"
TARBALL_PATH = f"/{ort_release.PACKAGE}/-/{ort_release.PACKAGE}-{ort_release.VERSION}.tgz"


def real_ort_tarball() -> bytes:
    """The pinned tarball, verified; skips the test with the reasons when it cannot be had."""
    if ORT_TARBALL.is_file():
        data = ORT_TARBALL.read_bytes()
        try:
            ort_release.check_tarball(data)
            return data
        except ort_release.IntegrityError:
            pass
    errors = []
    registry = ort_release.registry_from_npm("npm") or ort_release.DEFAULT_REGISTRY
    try:
        data = ort_release.fetch_tarball(
            ort_release.tarball_url(registry), timeout=120, user_agent="cleancut-tests"
        )
    except ort_release.ReleaseError as exc:
        errors.append(f"{registry}: {exc}")
        try:
            with tempfile.TemporaryDirectory() as tmp:
                data = npm_pack(
                    "npm", f"{ort_release.PACKAGE}@{ort_release.VERSION}", Path(tmp), 600
                ).read_bytes()
            ort_release.check_tarball(data)
        except (DownloadError, ort_release.ReleaseError) as exc2:
            errors.append(f"npm: {exc2}")
            pytest.skip(f"the {ort_release.PACKAGE} tarball is unavailable: {errors}")
    write_atomic(ORT_TARBALL, data, overwrite=True)
    return data


@dataclass
class Registry:
    url: str
    #: Paths asked for, in order.
    hits: list[str] = field(default_factory=list)


@contextmanager
def local_registry(tarball: bytes) -> Iterator[Registry]:
    """An npm registry on 127.0.0.1 holding the pinned version with ``tarball`` as its bytes
    (the package document lists the pinned integrity, as the real registry does)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    registry = Registry(f"http://127.0.0.1:{server.server_address[1]}/")
    document = json.dumps(
        {
            "name": ort_release.PACKAGE,
            "dist-tags": {"latest": ort_release.VERSION},
            "versions": {
                ort_release.VERSION: {
                    "name": ort_release.PACKAGE,
                    "version": ort_release.VERSION,
                    "dist": {
                        "tarball": registry.url.rstrip("/") + TARBALL_PATH,
                        "integrity": ort_release.INTEGRITY,
                    },
                }
            },
        }
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            registry.hits.append(self.path)
            body = {TARBALL_PATH: tarball, f"/{ort_release.PACKAGE}": document}.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            kind = "application/json" if body is document else "application/octet-stream"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server.RequestHandlerClass = Handler
    thread = threading.Thread(target=server.serve_forever, name="test-npm-registry", daemon=True)
    thread.start()
    try:
        yield registry
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
