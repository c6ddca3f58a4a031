"""Where the page's onnxruntime-web comes from: bundled → cache → registry download → npm pack.

Every source serves the real pinned tarball (from a local registry, see ``ort_registry``), or
deliberately altered bytes, and every folder used is checked file by file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import shutil
import socket
from pathlib import Path

import pytest

from cleancut import Settings
from cleancut.errors import ChecksumMismatchError, DownloadError
from cleancut.server import ort_release
from cleancut.server.ort_assets import ORT_FILES, provision_ort
from ort_registry import TARBALL_PATH, local_registry, real_ort_tarball


@pytest.fixture(scope="module")
def tarball() -> bytes:
    return real_ort_tarball()


@pytest.fixture(scope="module")
def release_files(tarball: bytes) -> dict[str, bytes]:
    return ort_release.extract_files(tarball)


def dead_url() -> str:
    """An http URL on which nothing listens (connection refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/"


def settings_for(cache: Path, npm: str | None, **overrides: object) -> Settings:
    """Settings that ignore the caller's environment; ``npm=None`` turns the client off."""
    return dataclasses.replace(Settings.from_env(environ={}, cache_dir=cache, **overrides), npm=npm)


def cache_folder(cache: Path) -> Path:
    return cache / "web" / f"{ort_release.PACKAGE}-{ort_release.VERSION}"


def leftovers(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("*") if p.name.startswith(".")]


def test_the_tarball_url_follows_the_registry_layout() -> None:
    want = "https://npm.mirror.example/repo/onnxruntime-web/-/onnxruntime-web-1.30.0.tgz"
    assert ort_release.tarball_url("https://npm.mirror.example/repo/") == want
    assert ort_release.tarball_url(" https://npm.mirror.example/repo ") == want
    with pytest.raises(ort_release.ReleaseError, match="http:// or https://"):
        ort_release.tarball_url("file:///srv/npm/")


def test_the_registry_setting_comes_from_the_environment() -> None:
    env = {"CLEANCUT_NPM_REGISTRY": " https://npm.mirror.example/ "}
    assert Settings.from_env(environ=env, cache_dir="/tmp/x").npm_registry == "https://npm.mirror.example/"
    assert Settings.from_env(environ={"CLEANCUT_NPM_REGISTRY": ""}, cache_dir="/tmp/x").npm_registry is None


def test_a_registry_download_fills_the_cache_once(tmp_path: Path, tarball: bytes) -> None:
    with local_registry(tarball) as registry:
        settings = settings_for(tmp_path, npm_registry=registry.url, npm=None)
        first = provision_ort(settings, bundled=tmp_path / "no-bundle")
        assert first.source == "registry download" and first.folder == cache_folder(tmp_path)
        assert registry.hits == [TARBALL_PATH]
        for name, digest in ORT_FILES.items():
            assert hashlib.sha256((first.folder / name).read_bytes()).hexdigest() == digest
        again = provision_ort(settings, bundled=tmp_path / "no-bundle")
        assert again.source == "cache" and again.folder == first.folder
        assert registry.hits == [TARBALL_PATH]  # later starts only re-hash the cache
    assert not leftovers(tmp_path)


def test_a_damaged_cache_is_replaced_from_the_registry(tmp_path: Path, tarball: bytes) -> None:
    with local_registry(tarball) as registry:
        settings = settings_for(tmp_path, npm_registry=registry.url, npm=None)
        folder = provision_ort(settings, bundled=tmp_path / "no-bundle").folder
        wasm = folder / "ort-wasm-simd-threaded.wasm"
        wasm.write_bytes(wasm.read_bytes()[:1000])  # a truncated copy
        (folder / "ort.wasm.min.mjs").unlink()
        assert provision_ort(settings, bundled=tmp_path / "no-bundle").source == "registry download"
        assert len(registry.hits) == 2
    assert not ort_release.file_problems(folder)


@pytest.mark.parametrize("damage", ["flipped", "longer", "truncated"])
def test_a_registry_serving_other_bytes_is_refused(tmp_path: Path, tarball: bytes, damage: str) -> None:
    bad = {
        "flipped": tarball[:5000] + bytes([tarball[5000] ^ 1]) + tarball[5001:],
        "longer": tarball + b"\0" * 4096,
        "truncated": tarball[: len(tarball) // 2],
    }[damage]
    with local_registry(bad) as registry:
        settings = settings_for(tmp_path, npm_registry=registry.url, npm=None)
        with pytest.raises(ChecksumMismatchError, match="pinned") as info:
            provision_ort(settings, bundled=tmp_path / "no-bundle")
    assert "--ort-dir" in str(info.value) and "CLEANCUT_NPM_REGISTRY" in str(info.value)
    assert not cache_folder(tmp_path).exists() or not any(cache_folder(tmp_path).iterdir())


def test_bundled_files_come_first(tmp_path: Path, release_files: dict[str, bytes]) -> None:
    bundled = tmp_path / "ort_web"
    bundled.mkdir()
    for name, data in release_files.items():
        (bundled / name).write_bytes(data)
    # No registry, no npm: the bundled folder is all there is, and it is enough.
    settings = settings_for(tmp_path / "cache", npm_registry=dead_url(), npm=None)
    assets = provision_ort(settings, bundled=bundled)
    assert assets.source == "bundled with the package" and assets.folder == bundled
    assert not (tmp_path / "cache").exists()  # nothing fetched, nothing written


def test_damaged_bundled_files_are_passed_over(
    tmp_path: Path, tarball: bytes, release_files: dict[str, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    bundled = tmp_path / "ort_web"
    bundled.mkdir()
    for name, data in release_files.items():
        (bundled / name).write_bytes(data)
    (bundled / "ort.webgpu.min.mjs").write_bytes(b"export default 1;\n")
    with local_registry(tarball) as registry, caplog.at_level(logging.WARNING):
        settings = settings_for(tmp_path / "cache", npm_registry=registry.url, npm=None)
        assets = provision_ort(settings, bundled=bundled)
    assert assets.source == "registry download" and assets.folder == cache_folder(tmp_path / "cache")
    assert "ort.webgpu.min.mjs does not match its pinned SHA-256" in caplog.text


def test_npm_pack_is_the_last_resort(tmp_path: Path, tarball: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry download fails (nothing listens there); the real npm client, pointed at a
    local registry holding the real tarball, delivers it."""
    if shutil.which("npm") is None:
        pytest.skip("the npm client is not installed")
    with local_registry(tarball) as registry:
        monkeypatch.setenv("npm_config_registry", registry.url)
        monkeypatch.setenv("npm_config_cache", str(tmp_path / "npm-cache"))  # npm must ask the registry
        settings = settings_for(tmp_path / "cache", npm_registry=dead_url(), npm="npm")
        assets = provision_ort(settings, bundled=tmp_path / "no-bundle")
        assert TARBALL_PATH in registry.hits
    assert assets.source == "npm pack" and not ort_release.file_problems(assets.folder)
    assert not leftovers(tmp_path / "cache")


def test_without_any_source_the_error_says_what_to_do(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, npm_registry=dead_url(), npm="no-such-npm-client")
    with pytest.raises(DownloadError) as info:
        provision_ort(settings, bundled=tmp_path / "no-bundle")
    message = str(info.value)
    assert "registry download: GET http://127.0.0.1:" in message and "not installed" in message
    assert "--ort-dir" in message and "wheel" in message
    with pytest.raises(DownloadError, match="offline mode is on"):
        provision_ort(settings.with_(offline=True), bundled=tmp_path / "no-bundle")
    with pytest.raises(DownloadError, match="http:// or https://"):
        provision_ort(settings.with_(npm_registry="ftp://npm.mirror.example/"), bundled=tmp_path / "none")


def test_an_ort_dir_is_checked(tmp_path: Path, release_files: dict[str, bytes]) -> None:
    for name, data in release_files.items():
        (tmp_path / name).write_bytes(data)
    settings = settings_for(tmp_path / "cache", npm_registry=dead_url(), npm=None)
    assert provision_ort(settings, tmp_path).source == "--ort-dir"
    (tmp_path / "ort-wasm-simd-threaded.mjs").unlink()
    with pytest.raises(DownloadError, match=r"--ort-dir .*ort-wasm-simd-threaded.mjs is missing"):
        provision_ort(settings, tmp_path)
