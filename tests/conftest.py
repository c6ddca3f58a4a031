"""Shared fixtures: the real model, fetched once into a cache folder every test run reuses.

The cache lives in ``.cache/cleancut`` at the repository root (override with
``CLEANCUT_TEST_CACHE``). The first run fetches IS-Net the way a user would: from the
default base URL, or, where that cannot be reached (as in CI), through ``npm pack``.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from cleancut import Remover, Settings
from cleancut.download import fetch_model
from cleancut.models import MODELS

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
TEST_CACHE = Path(os.environ.get("CLEANCUT_TEST_CACHE", REPO / ".cache" / "cleancut"))
CHUNK = 4 * 1024 * 1024


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


@pytest.fixture(scope="session")
def mirror_dir(model_settings: Settings) -> Path:
    """A folder laid out like the data package's ``dist/``: ``resources.json`` plus the real
    4 MiB chunk files of ``/models/medium``, named by their SHA-256 (cut from the verified
    model at the published offsets, so byte-identical to the published chunks)."""
    spec = MODELS["isnet_fp16"]
    target = TEST_CACHE / "mirror"
    resources = target / "resources.json"
    if resources.is_file():
        return target
    target.mkdir(parents=True, exist_ok=True)
    data = (model_settings.models_dir / spec.filename).read_bytes()
    chunks = []
    for start in range(0, len(data), CHUNK):
        piece = data[start : start + CHUNK]
        digest = hashlib.sha256(piece).hexdigest()
        (target / digest).write_bytes(piece)
        chunks.append({"hash": digest, "offsets": [start, start + len(piece)]})
    entry = {"chunks": chunks, "size": len(data), "mime": "application/octet-steam"}
    tmp = resources.with_suffix(".tmp")
    tmp.write_text(json.dumps({spec.resource: entry}))
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
