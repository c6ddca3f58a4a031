"""The model files the web page runs in the browser, served as ``resources.json`` + chunks.

The layout is IMG.LY's (``@imgly/background-removal-data``): each file cut into 4 MiB chunks
``[i·4 MiB, min((i+1)·4 MiB, size))`` named by their SHA-256, listed in ``resources.json`` as
``{key: {chunks: [{hash, offsets: [start, end]}], size, mime}}``. The chunks are cut from the
installed model file, whose whole SHA-256 is checked here against the value pinned in
:mod:`cleancut.models` in the same single read that hashes the chunks: so the browser gets
exactly the published bytes, and can check every chunk itself with SubtleCrypto.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ..config import Settings
from ..errors import ChecksumMismatchError
from ..models import MODELS, ModelSpec, resolve_model
from ..models.store import fetch_model

__all__ = ["CHUNK_SIZE", "BrowserModel", "ModelChunks", "browser_model_for", "build_chunks"]

log = logging.getLogger(__name__)

#: The published chunk size of the data package.
CHUNK_SIZE: Final = 4 * 1024 * 1024


@dataclass(frozen=True)
class ChunkRef:
    sha256: str
    start: int
    end: int


@dataclass(frozen=True)
class BrowserModel:
    """One model file ready to be served to the page."""

    spec: ModelSpec
    path: Path
    chunks: tuple[ChunkRef, ...]

    @property
    def key(self) -> str:
        assert self.spec.resource is not None
        return self.spec.resource

    @property
    def size(self) -> int:
        return self.chunks[-1].end if self.chunks else 0

    def resource_entry(self) -> dict[str, Any]:
        return {
            "chunks": [{"hash": c.sha256, "offsets": [c.start, c.end]} for c in self.chunks],
            "size": self.size,
            "mime": "application/octet-stream",
            # Not in IMG.LY's format (extra keys are harmless there): lets the page name it.
            "name": self.spec.name,
        }


def browser_model_for(name: str) -> ModelSpec:
    """The published file the browser runs for a server model (``isnet`` → ``isnet_fp16``:
    the fp32 copy exists only on the server, derived locally)."""
    spec = resolve_model(name)
    while spec.derived_from is not None:
        spec = MODELS[spec.derived_from]
    return spec


def build_chunks(spec: ModelSpec, path: Path) -> BrowserModel:
    """Hash the file once: every chunk, and the whole against the pinned SHA-256."""
    whole = hashlib.sha256()
    chunks: list[ChunkRef] = []
    start = 0
    with open(path, "rb") as f:
        while block := f.read(CHUNK_SIZE):
            whole.update(block)
            chunks.append(ChunkRef(hashlib.sha256(block).hexdigest(), start, start + len(block)))
            start += len(block)
    if spec.sha256 is not None and (whole.hexdigest() != spec.sha256 or start != spec.size):
        raise ChecksumMismatchError(
            f"{path} does not match the pinned size/SHA-256 of {spec.name}; "
            f"run `cleancut models fetch --force {spec.name}`"
        )
    return BrowserModel(spec, path, tuple(chunks))


class ModelChunks:
    """Every browser model, and a lookup from chunk hash to the bytes that make it."""

    def __init__(self, models: list[BrowserModel]) -> None:
        self.models = {m.spec.name: m for m in models}
        self._index: dict[str, tuple[Path, int, int]] = {
            c.sha256: (m.path, c.start, c.end) for m in models for c in m.chunks
        }

    @classmethod
    def prepare(cls, names: tuple[str, ...], settings: Settings) -> ModelChunks:
        """Fetch (if needed) and hash the published files behind ``names``."""
        specs = list(dict.fromkeys(browser_model_for(n) for n in names))
        return cls([build_chunks(spec, fetch_model(spec, settings)) for spec in specs])

    def resources(self) -> dict[str, Any]:
        return {m.key: m.resource_entry() for m in self.models.values()}

    def read_chunk(self, sha256: str) -> bytes | None:
        """The chunk's bytes, or ``None`` for a hash no served model has."""
        where = self._index.get(sha256)
        if where is None:
            return None
        path, start, end = where
        with open(path, "rb") as f:
            f.seek(start)
            return f.read(end - start)
