"""Shared fixtures: the real model, fetched once into a cache folder every test run reuses.

The cache lives in ``.cache/cleancut`` at the repository root (override with
``CLEANCUT_TEST_CACHE``). The first run fetches IS-Net the way a user would: from the
default base URL, or, where that cannot be reached (as in CI), through ``npm pack``. The
chunk mirror (``mirror_dir``) is checked against the *published* ``resources.json`` of the
data package, fetched the same way once and kept beside it.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cleancut import Remover, Settings, pipeline
from cleancut.errors import DownloadError
from cleancut.models import DATA_PACKAGE, DATA_VERSION, MODELS
from cleancut.models.download import _UrlSource, npm_pack
from cleancut.models.families.isnet_imgly import published_recipe
from cleancut.models.store import fetch_model

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
TEST_CACHE = Path(os.environ.get("CLEANCUT_TEST_CACHE", REPO / ".cache" / "cleancut"))


def png_claiming(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR for a huge image, with (almost) no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


#: IMG.LY's IS-Net recipe (its published float graphs), for tests that feed the network directly
IMGLY = published_recipe()


def imgly_preprocess(pixels: np.ndarray, size: int = 1024, *, exact: bool = True) -> np.ndarray:
    """The network input of IMG.LY's IS-Net for ``pixels`` at ``size``² (``exact``: the exact
    port of their resize, as the quantised model is fed; else OpenCV on their grid)."""
    return pipeline.preprocess(pixels, size, norm=IMGLY.norm, down="imgly-exact" if exact else "imgly")


def model_settings_for(cache_dir: Path, **overrides: object) -> Settings:
    """Settings that ignore the caller's environment (tests must not depend on it)."""
    return Settings.from_env(environ={}, cache_dir=cache_dir, **overrides)


@pytest.fixture(scope="session")
def model_settings() -> Settings:
    settings = model_settings_for(TEST_CACHE)
    fetch_model("isnet_fp16", settings)
    return settings


@pytest.fixture(scope="session")
def remover(model_settings: Settings) -> Remover:
    """One loaded fp16 session shared by every test that needs real inference."""
    return Remover("isnet_fp16", settings=model_settings).load()


def published_resources(settings: Settings) -> bytes:
    """``dist/resources.json`` of the pinned data package exactly as published: from the
    base URL, else from the package that ``npm pack`` delivers (out of npm's own cache after
    the model's first fetch). Kept in the test cache once read; never derived from the local
    model, so that checks against it compare the model with the publisher's hashes."""
    kept = TEST_CACHE / f"published-{DATA_VERSION}" / "resources.json"
    if kept.is_file():
        return kept.read_bytes()
    errors: list[str] = []
    data: bytes | None = None
    try:
        data = json.dumps(_UrlSource(settings.model_base_url, 10.0).read_json("resources.json")).encode()
    except DownloadError as exc:
        errors.append(f"{settings.model_base_url}: {exc}")
    if data is None and settings.npm:
        try:
            with tempfile.TemporaryDirectory() as tmp:
                tarball = npm_pack(settings.npm, f"{DATA_PACKAGE}@{DATA_VERSION}", Path(tmp), 600.0)
                with tarfile.open(tarball, "r:gz") as tar:
                    for member in tar:
                        if member.name == "package/dist/resources.json":
                            stream = tar.extractfile(member)
                            data = stream.read() if stream is not None else None
                            break
            if data is None:
                errors.append("npm: the package has no dist/resources.json")
        except (DownloadError, tarfile.TarError, OSError) as exc:
            errors.append(f"npm: {exc}")
    if data is None:
        pytest.skip(f"the published resources.json of {DATA_PACKAGE}@{DATA_VERSION} is unavailable: {errors}")
    kept.parent.mkdir(parents=True, exist_ok=True)
    tmp_file = kept.with_suffix(".tmp")
    tmp_file.write_bytes(data)
    tmp_file.rename(kept)
    return data


@pytest.fixture(scope="session")
def published_entry(model_settings: Settings) -> dict[str, Any]:
    """The published ``resources.json`` entry of ``/models/medium`` (isnet_fp16)."""
    resource = MODELS["isnet_fp16"].resource
    assert resource is not None
    entry: dict[str, Any] = json.loads(published_resources(model_settings))[resource]
    return entry


@pytest.fixture(scope="session")
def mirror_dir(model_settings: Settings, published_entry: dict[str, Any]) -> Path:
    """A folder laid out like the data package's ``dist/``: the published ``resources.json``
    plus the 4 MiB chunk files of ``/models/medium``, named by their SHA-256. The chunks are
    cut from the verified local model at the published offsets, and each must hash to the
    published value: the mirror holds the publisher's chunks, not the local model's idea
    of them."""
    target = TEST_CACHE / "mirror"
    resources = target / "resources.json"
    published = published_resources(model_settings)
    chunks = published_entry["chunks"]
    if (
        resources.is_file()
        and resources.read_bytes() == published
        and all((target / c["hash"]).is_file() for c in chunks)
    ):
        return target
    target.mkdir(parents=True, exist_ok=True)
    data = (model_settings.models_dir / MODELS["isnet_fp16"].filename).read_bytes()
    assert published_entry["size"] == len(data)
    for c in chunks:
        start, end = c["offsets"]
        piece = data[start:end]
        assert hashlib.sha256(piece).hexdigest() == c["hash"], (
            f"local chunk {start}:{end} is not the published one"
        )
        (target / c["hash"]).write_bytes(piece)
    tmp = resources.with_suffix(".tmp")
    tmp.write_bytes(published)
    tmp.rename(resources)
    return target


@pytest.fixture
def photo_paths() -> list[Path]:
    return sorted(EXAMPLES.glob("*.jpg"))


@pytest.fixture
def astronaut() -> Path:
    return EXAMPLES / "astronaut.jpg"


@pytest.fixture
def rng() -> Iterator[np.random.Generator]:
    yield np.random.default_rng(1234)
