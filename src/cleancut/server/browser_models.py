"""The model files the web page runs in the browser, served as ``resources.json`` + chunks.

The layout is IMG.LY's (``@imgly/background-removal-data``): each file cut into 4 MiB chunks
``[i·4 MiB, min((i+1)·4 MiB, size))`` named by their SHA-256, listed in ``resources.json`` as
``{key: {chunks: [{hash, offsets: [start, end]}], size, mime}}``. The chunks are cut from the
installed model file, whose whole SHA-256 is checked here against the value pinned in
:mod:`cleancut.models` in the same single read that hashes the chunks: so the browser gets
exactly the published bytes, and can check every chunk itself with SubtleCrypto.

The quality modes ``fast`` and ``best`` also need the network at 768²: each model's entry has a
sibling ``<key>@768`` whose one chunk is a delta on the published file (:mod:`.browser_sizes`)
and whose ``derived`` field says how to assemble it and what its SHA-256 must be.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ..config import Settings
from ..errors import ChecksumMismatchError, CleancutError
from ..models import MODELS, ModelSpec, resolve_model
from ..models.store import fetch_model
from .browser_sizes import SizedDelta, build_sized_delta

__all__ = [
    "BROWSER_MAX_BYTES",
    "BROWSER_SIZES",
    "CHUNK_SIZE",
    "BrowserModel",
    "ModelChunks",
    "browser_model_for",
    "build_chunks",
    "sized_key",
]

log = logging.getLogger(__name__)

#: The published chunk size of the data package.
CHUNK_SIZE: Final = 4 * 1024 * 1024
#: The largest model file the page runs itself: 200 MB. A tab holds the file, the session's
#: copy of its weights and the activations in WebAssembly's 4 GB at once; measured in headless
#: Chromium (benchmarks/birefnet.py web): IS-Net's 176 MB fp32 graph runs at 0.98 GB, BiRefNet
#: lite's 224 MB session is created but its pass fails with bad_alloc at 4.16 GB. A larger
#: model is server-only.
BROWSER_MAX_BYTES: Final = 200_000_000
#: The input sizes IMG.LY's IS-Net quality modes need besides 1024² (served as deltas:
#: browser_sizes), read from its family's recipe for its published graph.
def _imgly_sizes() -> tuple[int, ...]:
    from ..models.families.isnet_imgly import published_recipe

    recipe = published_recipe()
    return tuple(sorted({w for h, w in recipe.pass_sizes()} - {recipe.width}))


BROWSER_SIZES: Final[tuple[int, ...]] = _imgly_sizes()


def sized_key(key: str, size: int) -> str:
    """The resources.json key of a model's ``size``² delta (``/models/medium@768``)."""
    return f"{key}@{size}"


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
    sized: tuple[SizedDelta, ...] = ()
    #: the resources.json key of a single-file model (IMG.LY's keep their published one)
    resource: str | None = None

    @property
    def key(self) -> str:
        key = self.spec.resource or self.resource
        assert key is not None
        return key

    @property
    def size(self) -> int:
        return self.chunks[-1].end if self.chunks else 0

    def resource_entry(self) -> dict[str, Any]:
        return _entry(self.chunks, self.spec.name)


def _entry(chunks: tuple[ChunkRef, ...], name: str) -> dict[str, Any]:
    """A resources.json entry for a file cut into ``chunks``."""
    return {
        "chunks": [{"hash": c.sha256, "offsets": [c.start, c.end]} for c in chunks],
        "size": chunks[-1].end if chunks else 0,
        "mime": "application/octet-stream",
        # Not in IMG.LY's format (extra keys are harmless there): lets the page name it.
        "name": name,
    }


def browser_model_for(name: str | ModelSpec) -> ModelSpec:
    """The published file the browser runs for a server model (``isnet`` → ``isnet_fp16``:
    the fp32 copy exists only on the server, derived locally)."""
    spec = resolve_model(name)
    while spec.derived_from is not None:
        spec = MODELS[spec.derived_from]
    return spec


def resource_key(server_key: str, spec: ModelSpec) -> str:
    """The resources.json key the page fetches a model by: IMG.LY's own key for their files,
    ``/models/<server key>`` for any other single file."""
    return spec.resource or f"/models/{server_key}"


def build_chunks(spec: ModelSpec, path: Path, resource: str | None = None) -> BrowserModel:
    """Hash the file once: every chunk, and the whole against the pinned SHA-256 (and size,
    where it is pinned)."""
    whole = hashlib.sha256()
    chunks: list[ChunkRef] = []
    start = 0
    with open(path, "rb") as f:
        while block := f.read(CHUNK_SIZE):
            whole.update(block)
            chunks.append(ChunkRef(hashlib.sha256(block).hexdigest(), start, start + len(block)))
            start += len(block)
    if spec.sha256 is not None and (
        whole.hexdigest() != spec.sha256 or (spec.size is not None and start != spec.size)
    ):
        raise ChecksumMismatchError(
            f"{path} does not match the pinned size/SHA-256 of {spec.name}; "
            f"run `cleancut models fetch --force {spec.name}`"
        )
    return BrowserModel(spec, path, tuple(chunks), resource=resource)


def build_sized(model: BrowserModel, sizes: tuple[int, ...] = BROWSER_SIZES) -> BrowserModel:
    """``model`` with its deltas for ``sizes`` (the file is parsed once: ~0.5 s for fp16).
    The page checks the SHA-256 of every file it assembles, so a file changed since
    :func:`build_chunks` read it cannot slip through."""
    stat = model.path.stat()
    deltas = _deltas(str(model.path), stat.st_size, stat.st_mtime_ns, sizes)
    return BrowserModel(model.spec, model.path, model.chunks, deltas, model.resource)


@functools.lru_cache(maxsize=4)
def _deltas(path: str, nbytes: int, mtime_ns: int, sizes: tuple[int, ...]) -> tuple[SizedDelta, ...]:
    """Built once per file version in a process (servers restarted in one process, tests)."""
    base = Path(path).read_bytes()
    return tuple(build_sized_delta(base, s) for s in sizes)


class ModelChunks:
    """Every browser model (and its deltas for the other input sizes), and a lookup from
    chunk hash to the bytes that make it."""

    def __init__(self, models: list[BrowserModel]) -> None:
        self.models = {m.key: m for m in models}
        self._index: dict[str, tuple[Path, int, int]] = {
            c.sha256: (m.path, c.start, c.end) for m in models for c in m.chunks
        }
        self._blobs: dict[str, bytes] = {}
        self._sized: dict[str, dict[str, Any]] = {}
        for m in models:
            for d in m.sized:
                chunks = []
                for i in range(0, len(d.blob), CHUNK_SIZE):
                    piece = d.blob[i : i + CHUNK_SIZE]
                    ref = ChunkRef(hashlib.sha256(piece).hexdigest(), i, i + len(piece))
                    self._blobs[ref.sha256] = piece
                    chunks.append(ref)
                entry = _entry(tuple(chunks), f"{m.spec.name} at {d.size}px")
                self._sized[sized_key(m.key, d.size)] = {**entry, "derived": d.recipe(m.key)}

    @classmethod
    def prepare(cls, models: dict[str, ModelSpec], settings: Settings) -> ModelChunks:
        """Fetch (if needed) and hash the files the page runs for ``models`` (server key →
        spec): IMG.LY's published files with their 768² deltas, any other file as it is."""
        out: dict[str, BrowserModel] = {}
        for key, server_spec in models.items():
            spec = browser_model_for(server_spec) if server_spec.published else server_spec
            resource = resource_key(key, spec)
            if resource in out:
                continue
            m = build_chunks(spec, fetch_model(spec, settings), resource)
            if spec.family == "isnet-imgly" and spec.resource is not None:
                try:
                    m = build_sized(m)
                except CleancutError as exc:  # the page still runs the default mode
                    log.warning("the in-browser engine has no %s graphs: %s", BROWSER_SIZES, exc)
            out[resource] = m
        return cls(list(out.values()))

    def resources(self) -> dict[str, Any]:
        return {**{m.key: m.resource_entry() for m in self.models.values()}, **self._sized}

    def read_chunk(self, sha256: str) -> bytes | None:
        """The chunk's bytes, or ``None`` for a hash no served model has."""
        where = self._index.get(sha256)
        if where is None:
            return self._blobs.get(sha256)
        path, start, end = where
        with open(path, "rb") as f:
            f.seek(start)
            return f.read(end - start)
