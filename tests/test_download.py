"""Model delivery against a real HTTP mirror on 127.0.0.1.

The mirror serves the real ``resources.json`` and the real 4 MiB chunk files of
``/models/medium`` (the ``mirror_dir`` fixture) from a ``ThreadingHTTPServer`` whose handler
records every request and can inject faults: HTTP 500/404, a flipped byte, half a body then
a clean close, a connection reset, a garbage status line. Every test installs into its own
empty cache under ``tmp_path``; nothing here touches the shared test cache except to read
the verified model from it.

Note: ``model_settings_for(..., npm=None)`` does *not* turn npm off (``Settings.from_env``
drops ``None`` overrides), so the helpers below use :func:`dataclasses.replace`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import shutil
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cleancut import (
    CancelledError,
    ChecksumMismatchError,
    DownloadError,
    ModelNotFoundError,
    Settings,
)
from cleancut.models import MODELS
from cleancut.models.installed import installed_path, sha256_file, verify_installed
from cleancut.models.store import fetch_model
from conftest import model_settings_for
from mirror import Mirror, flip

SPEC = MODELS["isnet_fp16"]
assert SPEC.resource is not None and SPEC.size is not None and SPEC.sha256 is not None
RESOURCE: str = SPEC.resource
SIZE: int = SPEC.size
SHA256: str = SPEC.sha256
KEY = "fetch:/models/isnet_fp16"

Events = list[tuple[str, int, int]]


# --------------------------------------------------------------------------- the mirror


@pytest.fixture
def mirror(mirror_dir: Path) -> Iterator[Mirror]:
    with Mirror(mirror_dir) as m:
        yield m


@pytest.fixture(scope="module")
def chunks(mirror_dir: Path) -> list[dict[str, Any]]:
    """The chunk list of ``/models/medium``: ``{"hash", "offsets"}`` dicts, in order."""
    entry = json.loads((mirror_dir / "resources.json").read_text())[RESOURCE]
    assert len(entry["chunks"]) == 22 and entry["size"] == SIZE
    return list(entry["chunks"])


def test_mirror_holds_the_published_chunks(mirror_dir: Path, published_entry: dict[str, Any]) -> None:
    """The mirror every download test fetches from serves the publisher's resources.json,
    and every chunk file hashes to the value the *published* package lists (not a value
    computed from the local model); the chunks tile the file and make up the model pinned in
    models/registry.py."""
    served = json.loads((mirror_dir / "resources.json").read_text())[RESOURCE]
    assert served == published_entry
    whole, pos = hashlib.sha256(), 0
    for c in published_entry["chunks"]:
        start, end = c["offsets"]
        assert start == pos
        data = (mirror_dir / c["hash"]).read_bytes()
        assert len(data) == end - start and hashlib.sha256(data).hexdigest() == c["hash"]
        whole.update(data)
        pos = end
    assert pos == published_entry["size"] == SIZE
    assert whole.hexdigest() == SHA256


def settings_for(cache: Path, base_url: str, *, npm: str | None = None, **overrides: Any) -> Settings:
    overrides.setdefault("download_timeout", 5.0)
    settings = model_settings_for(cache, model_base_url=base_url, **overrides)
    return dataclasses.replace(settings, npm=npm)  # from_env ignores npm=None


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def fake_npm(tmp_path: Path) -> tuple[str, Path]:
    """An ``npm`` that records its arguments and fails like an unreachable registry."""
    if sys.platform == "win32":
        pytest.skip("the fake npm is a shell script")
    marker = tmp_path / "npm-calls.txt"
    script = tmp_path / "bin" / "npm"
    script.parent.mkdir()
    script.write_text(
        f'#!/bin/sh\necho "$@" >> "{marker}"\necho "npm ERR! code E503 fake registry down" >&2\nexit 1\n'
    )
    script.chmod(0o755)
    return str(script), marker


def recorder() -> tuple[Events, Callable[[str, int, int], None]]:
    events: Events = []
    lock = threading.Lock()

    def progress(key: str, current: int, total: int) -> None:
        with lock:
            events.append((key, current, total))

    return events, progress


def assert_progress(events: Events) -> None:
    """One key, a constant total equal to the pinned size, never backwards, ends at total."""
    assert events, "no progress reported"
    assert {k for k, _, _ in events} == {KEY}
    assert {t for _, _, t in events} == {SIZE}
    currents = [c for _, c, _ in events]
    assert currents[0] == 0
    assert all(b >= a for a, b in itertools.pairwise(currents)), "progress went backwards"
    assert currents[-1] == SIZE
    assert max(currents) <= SIZE


def assert_installed(settings: Settings) -> Path:
    path = settings.models_dir / "isnet_fp16.onnx"
    assert path.is_file()
    assert path.stat().st_size == SIZE
    assert sha256_file(path) == SHA256
    assert verify_installed(SPEC, path)
    assert sorted(p.name for p in settings.models_dir.iterdir()) == ["isnet_fp16.onnx"]  # no temp files
    assert list(settings.chunks_dir.iterdir()) == []  # chunks are dropped once installed
    return path


def assert_nothing_installed(settings: Settings) -> None:
    assert not installed_path(SPEC, settings).exists()
    if settings.models_dir.exists():
        assert list(settings.models_dir.iterdir()) == [], "temp files left in the models dir"
    if settings.chunks_dir.exists():
        assert not [p for p in settings.chunks_dir.iterdir() if p.name.startswith(".")], "partial chunks left"


def copy_model(model_settings: Settings, settings: Settings) -> Path:
    settings.models_dir.mkdir(parents=True)
    path = settings.models_dir / SPEC.filename
    shutil.copyfile(model_settings.models_dir / SPEC.filename, path)
    return path


# --------------------------------------------------------------------------- 1. parallel fetch


def test_parallel_fetch_installs_verified_model(
    mirror: Mirror, chunks: list[dict[str, Any]], tmp_path: Path
) -> None:
    mirror.delay = 0.2
    settings = settings_for(tmp_path, mirror.url)
    events, progress = recorder()
    t0 = time.perf_counter()
    path = fetch_model("isnet_fp16", settings, progress=progress)
    elapsed = time.perf_counter() - t0

    assert path == tmp_path / "models" / "isnet_fp16.onnx"
    assert_installed(settings)
    assert mirror.requests[0] == "resources.json"
    assert Counter(mirror.chunk_requests()) == Counter(c["hash"] for c in chunks)  # each once
    assert 1 < mirror.max_inflight <= settings.download_workers
    assert elapsed < 22 * 0.2, f"22 chunks x 0.2 s took {elapsed:.1f} s: not parallel"
    assert_progress(events)

    # Installed and verified: a second call answers from the cache, without a request.
    before = len(mirror.requests)
    assert fetch_model("medium", settings) == path
    assert len(mirror.requests) == before


# --------------------------------------------------------------------------- 2. bad chunks


def test_transient_chunk_faults_are_fetched_again(
    mirror: Mirror, chunks: list[dict[str, Any]], tmp_path: Path
) -> None:
    """A flipped byte, a short body, a garbage status line and an HTTP 500, each on the first
    attempt only: each chunk is requested twice, the model installs, progress stays monotonic."""
    faulty = {chunks[3]["hash"]: "flip", chunks[9]["hash"]: "half", chunks[12]["hash"]: "garbage"}
    faulty[chunks[21]["hash"]] = "500"
    for name, kind in faulty.items():
        mirror.fault(name, kind)
    settings = settings_for(tmp_path, mirror.url, download_retries=2)
    events, progress = recorder()
    fetch_model("isnet_fp16", settings, progress=progress)

    assert_installed(settings)
    counts = Counter(mirror.chunk_requests())
    for c in chunks:
        assert counts[c["hash"]] == (2 if c["hash"] in faulty else 1), c["hash"]
    assert_progress(events)  # a retried chunk does not rewind the count


def test_always_corrupt_chunk_fails_after_retries(
    mirror: Mirror, chunks: list[dict[str, Any]], tmp_path: Path
) -> None:
    bad = chunks[4]["hash"]
    mirror.always[bad] = "flip"
    settings = settings_for(tmp_path, mirror.url, download_retries=3)
    with pytest.raises(ChecksumMismatchError) as info:
        fetch_model("isnet_fp16", settings)
    assert bad[:12] in str(info.value)
    assert "CLEANCUT_MODEL_URL" in str(info.value)
    assert mirror.count(bad) == 3
    assert_nothing_installed(settings)
    assert not (settings.chunks_dir / bad).exists()


def test_broken_connection_is_a_download_error(
    mirror: Mirror, chunks: list[dict[str, Any]], tmp_path: Path
) -> None:
    """A TCP reset mid-body on every attempt ends as DownloadError (a ModelError, so the npm
    fallback gets its turn), not as a bare ConnectionResetError."""
    bad = chunks[0]["hash"]
    mirror.always[bad] = "reset"
    npm, marker = fake_npm(tmp_path)
    settings = settings_for(tmp_path / "cache", mirror.url, npm=npm, download_retries=2)
    with pytest.raises(DownloadError) as info:
        fetch_model("isnet_fp16", settings)
    assert mirror.count(bad) == 2
    assert marker.is_file(), "the npm fallback was not tried"
    assert "fake registry down" in str(info.value)
    assert_nothing_installed(settings)


def test_zero_retries_still_makes_one_attempt(
    mirror: Mirror, chunks: list[dict[str, Any]], tmp_path: Path
) -> None:
    bad = chunks[0]["hash"]
    mirror.always[bad] = "500"
    settings = settings_for(tmp_path, mirror.url, download_retries=0)
    with pytest.raises(DownloadError, match="HTTP 500"):
        fetch_model("isnet_fp16", settings)
    assert mirror.count(bad) == 1


# --------------------------------------------------------------------------- 3. resume


def test_interrupted_download_resumes_without_refetching(
    mirror: Mirror, chunks: list[dict[str, Any]], tmp_path: Path
) -> None:
    failed = {chunks[2]["hash"], chunks[5]["hash"]}
    mirror.fault(chunks[2]["hash"], "500")
    mirror.fault(chunks[5]["hash"], "half")  # full Content-Length, half the body, close
    settings = settings_for(tmp_path, mirror.url, download_retries=1)
    with pytest.raises(DownloadError, match="HTTP 500"):
        fetch_model("isnet_fp16", settings)
    assert_nothing_installed(settings)

    kept = {p.name for p in settings.chunks_dir.iterdir()}
    by_hash = {c["hash"]: c for c in chunks}
    assert kept, "no verified chunk was kept for the resume"
    assert not kept & failed
    for name in kept:  # every kept chunk is a whole, verified chunk
        start, end = by_hash[name]["offsets"]
        data = (settings.chunks_dir / name).read_bytes()
        assert len(data) == end - start and hashlib.sha256(data).hexdigest() == name

    mirror.requests.clear()
    events, progress = recorder()
    fetch_model("isnet_fp16", settings, progress=progress)
    assert_installed(settings)
    second = Counter(mirror.chunk_requests())
    assert set(second) == set(by_hash) - kept  # the kept chunks were not requested again
    assert set(second.values()) == {1}
    assert failed <= set(second)
    assert_progress(events)


def test_existing_chunks_are_reused_or_replaced(
    mirror: Mirror, mirror_dir: Path, chunks: list[dict[str, Any]], tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, mirror.url)
    settings.chunks_dir.mkdir(parents=True)
    good, flipped, short = (c["hash"] for c in chunks[:3])
    shutil.copyfile(mirror_dir / good, settings.chunks_dir / good)
    (settings.chunks_dir / flipped).write_bytes(flip((mirror_dir / flipped).read_bytes()))
    (settings.chunks_dir / short).write_bytes((mirror_dir / short).read_bytes()[:1000])

    fetch_model("isnet_fp16", settings)
    assert_installed(settings)
    assert mirror.count(good) == 0
    assert mirror.count(flipped) == 1
    assert mirror.count(short) == 1
    assert len(mirror.chunk_requests()) == 21


# --------------------------------------------------------------------------- 4. npm fallback


@pytest.mark.network
@pytest.mark.skipif(shutil.which("npm") is None, reason="no npm client")
def test_server_down_falls_back_to_real_npm(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, closed_port_url(), npm="npm", download_timeout=120.0)
    events, progress = recorder()
    path = fetch_model("isnet_fp16", settings, progress=progress)
    assert path == installed_path(SPEC, settings)
    assert_installed(settings)
    assert_progress(events)


def test_server_down_without_npm(tmp_path: Path) -> None:
    url = closed_port_url()
    settings = settings_for(tmp_path, url, npm=None)
    with pytest.raises(DownloadError) as info:
        fetch_model("isnet_fp16", settings)
    message = str(info.value)
    assert "CLEANCUT_MODEL_URL" in message
    assert url in message
    assert "npm fallback: turned off" in message
    assert_nothing_installed(settings)


def test_missing_npm_executable(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, closed_port_url(), npm=str(tmp_path / "no-such-npm"))
    with pytest.raises(DownloadError, match=r"npm client .* is not installed"):
        fetch_model("isnet_fp16", settings)
    assert_nothing_installed(settings)


def test_failing_npm_is_reported(tmp_path: Path) -> None:
    npm, marker = fake_npm(tmp_path)
    settings = settings_for(tmp_path / "cache", closed_port_url(), npm=npm)
    with pytest.raises(DownloadError, match="fake registry down") as info:
        fetch_model("isnet_fp16", settings)
    assert marker.read_text().split()[:2] == ["pack", "@imgly/background-removal-data@1.4.5"]
    assert "CLEANCUT_MODEL_URL" in str(info.value)
    assert_nothing_installed(settings)


# --------------------------------------------------------------------------- 5. offline


@pytest.mark.parametrize("name", ["isnet_fp16", "isnet"])
def test_offline_empty_cache(mirror: Mirror, tmp_path: Path, name: str) -> None:
    npm, marker = fake_npm(tmp_path)
    settings = settings_for(tmp_path / "cache", mirror.url, npm=npm, offline=True)
    with pytest.raises(ModelNotFoundError) as info:
        fetch_model(name, settings)
    assert isinstance(info.value, FileNotFoundError)
    assert "cleancut models fetch" in str(info.value)
    assert "offline" in str(info.value)
    assert mirror.requests == []
    assert not marker.exists()
    assert not (tmp_path / "cache" / "models").exists()


def test_offline_with_model_present(mirror: Mirror, model_settings: Settings, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, mirror.url, offline=True)
    path = copy_model(model_settings, settings)
    assert fetch_model("isnet_fp16", settings) == path
    assert mirror.requests == []


def test_offline_with_corrupt_model(mirror: Mirror, model_settings: Settings, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, mirror.url, offline=True)
    path = copy_model(model_settings, settings)
    with open(path, "r+b") as f:
        f.seek(1234)
        f.write(b"\x00\x01\x02")
    with pytest.raises(ModelNotFoundError, match="corrupt"):
        fetch_model("isnet_fp16", settings)
    assert mirror.requests == []


# --------------------------------------------------------------------------- 6. file://


def test_file_url(mirror_dir: Path, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, mirror_dir.as_uri())  # no trailing slash
    assert not settings.model_base_url.endswith("/")
    events, progress = recorder()
    fetch_model("isnet_fp16", settings, progress=progress)
    assert_installed(settings)
    assert_progress(events)


# --------------------------------------------------------------------------- 7. cached model


def test_verify_installed_on_good_file(model_settings: Settings, tmp_path: Path) -> None:
    assert verify_installed(SPEC, model_settings.models_dir / SPEC.filename)
    assert not verify_installed(SPEC, tmp_path / "missing.onnx")


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupt_cached_model_is_fetched_again(
    mirror: Mirror, model_settings: Settings, tmp_path: Path, damage: str
) -> None:
    settings = settings_for(tmp_path, mirror.url)
    path = copy_model(model_settings, settings)
    with open(path, "r+b") as f:
        if damage == "flip":
            f.seek(SIZE // 3)
            byte = f.read(1)
            f.seek(SIZE // 3)
            f.write(bytes([byte[0] ^ 0x01]))
        else:
            f.truncate(SIZE - 1)
    assert not verify_installed(SPEC, path)

    assert fetch_model("isnet_fp16", settings) == path
    assert_installed(settings)
    assert len(mirror.chunk_requests()) == 22


# --------------------------------------------------------------------------- 8. resources.json


def _resources(mirror_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((mirror_dir / "resources.json").read_text())
    return data


def test_resources_json_lying_about_size(mirror: Mirror, mirror_dir: Path, tmp_path: Path) -> None:
    resources = _resources(mirror_dir)
    resources[RESOURCE]["size"] += 4096
    resources[RESOURCE]["chunks"][-1]["offsets"][1] += 4096
    mirror.bodies["resources.json"] = json.dumps(resources).encode()
    settings = settings_for(tmp_path, mirror.url)
    with pytest.raises(ChecksumMismatchError, match=str(SIZE)):
        fetch_model("isnet_fp16", settings)
    assert mirror.chunk_requests() == []
    assert_nothing_installed(settings)


def test_tampered_mirror_with_consistent_chunks(mirror: Mirror, mirror_dir: Path, tmp_path: Path) -> None:
    """Chunks that match a rewritten resources.json still fail the pinned whole-file SHA-256."""
    resources = _resources(mirror_dir)
    first = resources[RESOURCE]["chunks"][0]
    evil = flip((mirror_dir / first["hash"]).read_bytes())
    first["hash"] = hashlib.sha256(evil).hexdigest()
    mirror.bodies[first["hash"]] = evil
    mirror.bodies["resources.json"] = json.dumps(resources).encode()
    settings = settings_for(tmp_path, mirror.url)
    with pytest.raises(ChecksumMismatchError, match="assembled isnet_fp16 has SHA-256"):
        fetch_model("isnet_fp16", settings)
    assert mirror.count(first["hash"]) == 1
    assert_nothing_installed(settings)


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"\xff\xfe garbage",
        b'{"/models/small": {"chunks": [], "size": 1}}',
        b'{"/models/medium": {"chunks": "nope", "size": 88188479}}',
        # a "hash" that would be used as a file name and URL path: rejected before any I/O
        json.dumps(
            {RESOURCE: {"size": SIZE, "chunks": [{"hash": "../" * 21 + "x", "offsets": [0, SIZE]}]}}
        ).encode(),
    ],
    ids=["not-json", "not-utf8", "no-entry", "chunks-not-a-list", "path-in-hash"],
)
def test_malformed_resources_json(mirror: Mirror, tmp_path: Path, body: bytes) -> None:
    mirror.bodies["resources.json"] = body
    settings = settings_for(tmp_path, mirror.url)
    with pytest.raises(DownloadError):
        fetch_model("isnet_fp16", settings)
    assert mirror.chunk_requests() == []
    assert not list(tmp_path.rglob("*x*.part"))
    assert_nothing_installed(settings)


@pytest.mark.parametrize("kind", ["404", "garbage"])
def test_resources_json_unavailable(mirror: Mirror, tmp_path: Path, kind: str) -> None:
    mirror.always["resources.json"] = kind
    settings = settings_for(tmp_path, mirror.url)
    with pytest.raises(DownloadError) as info:
        fetch_model("isnet_fp16", settings)
    assert f"{mirror.url}resources.json" in str(info.value)
    if kind == "404":
        assert "HTTP 404" in str(info.value)
    assert mirror.chunk_requests() == []


def test_bad_url_scheme(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, "ftp://example.invalid/dist/")
    with pytest.raises(DownloadError, match="http://, https:// or file://"):
        fetch_model("isnet_fp16", settings)


# --------------------------------------------------------------------------- 9. cancel


def test_cancel_after_first_chunk(mirror: Mirror, tmp_path: Path) -> None:
    npm, marker = fake_npm(tmp_path)
    settings = settings_for(tmp_path / "cache", mirror.url, npm=npm)
    with pytest.raises(CancelledError):
        fetch_model("isnet_fp16", settings, cancel=lambda: mirror.served_chunks() >= 1)
    assert mirror.served_chunks() >= 1
    assert len(mirror.chunk_requests()) < 22  # chunks not yet started are never requested
    assert not marker.exists(), "the npm fallback ran after a cancel"
    assert_nothing_installed(settings)


def test_cancel_before_start_makes_no_request(mirror: Mirror, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, mirror.url)
    with pytest.raises(CancelledError):
        fetch_model("isnet_fp16", settings, cancel=lambda: True)
    assert mirror.requests == []
    assert_nothing_installed(settings)


def test_verification_stamp_skips_rehashing_until_the_file_changes(
    model_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A verified, settled model leaves a stamp (size, mtime, ctime, inode): later checks trust it
    without hashing 88 MB; any rewrite of the file changes the stamp's key and re-hashes."""
    import os

    import cleancut.models.installed as installed

    spec = MODELS["isnet_fp16"]
    path = tmp_path / spec.filename
    shutil.copyfile(model_settings.models_dir / spec.filename, path)
    old = time.time() - 60
    os.utime(path, (old, old))  # settled: written well before the check
    time.sleep(2.1)  # and changed (ctime, which utime moves to now) well before it too
    assert verify_installed(spec, path)
    assert (tmp_path / f".{spec.filename}.verified").is_file()

    def no_hashing(_: Path) -> str:
        raise AssertionError("the stamp should have spared the hash")

    monkeypatch.setattr(installed, "sha256_file", no_hashing)
    assert verify_installed(spec, path)
    monkeypatch.undo()

    with open(path, "r+b") as f:  # flip one byte: the write moves mtime
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert not verify_installed(spec, path)
    assert not (tmp_path / f".{spec.filename}.verified").exists()
    assert verify_installed(spec, path, thorough=True) is False
