"""The page's smaller network (``fast`` and ``best`` run 768² passes) as a delta on the model
it already holds.

A graph for another input size differs from the published file only where
:func:`cleancut.models.graph.with_input_size` rewrites it: the Resize targets among the nodes
and the input and output shapes. Protobuf writes a graph's fields in number order — nodes,
then the initializers (every weight), then inputs, outputs and shape hints — so the new file
is a new *head* (the nodes), the published file's initializer block (the weights; in the
quantised graph, where the Resize targets are initializers, with a few bytes rewritten in
place), and a new *tail*: for fp16, 104 KB to download instead of 88 MB. The page downloads
the new pieces (served as SHA-256-named chunks, like the model's), puts the bytes it already
has between them, checks the SHA-256 of the whole against :attr:`SizedDelta.sha256`, and
loads it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from ..errors import ModelError
from ..models.graph import with_input_size

__all__ = ["SizedDelta", "build_sized_delta"]


#: Differences closer than this are sent as one literal piece rather than two.
_MERGE_GAP = 64


@dataclass(frozen=True)
class SizedDelta:
    """The model for a ``size``² input, as ``parts``: ``("delta", start, end)`` ranges of
    :attr:`blob` (what the page downloads) and ``("base", start, end)`` ranges of the
    published file, concatenated in order."""

    size: int
    total: int
    sha256: str
    blob: bytes
    parts: tuple[tuple[str, int, int], ...]

    def recipe(self, base_key: str) -> dict[str, Any]:
        """How the page assembles the file and what its SHA-256 must be."""
        return {"base": base_key, "input_size": self.size, "size": self.total, "sha256": self.sha256,
                "parts": [list(p) for p in self.parts]}  # fmt: skip

    def assemble(self, base: bytes) -> bytes:
        """The file the page builds (for tests and checks)."""
        return b"".join((self.blob if src == "delta" else base)[a:b] for src, a, b in self.parts)


class _Builder:
    def __init__(self) -> None:
        self.blob = bytearray()
        self.parts: list[tuple[str, int, int]] = []

    def literal(self, data: bytes) -> None:
        if data:
            self.parts.append(("delta", len(self.blob), len(self.blob) + len(data)))
            self.blob += data

    def copy(self, start: int, end: int) -> None:
        if end > start:
            self.parts.append(("base", start, end))


def build_sized_delta(base: bytes, size: int) -> SizedDelta:
    """The delta that turns ``base`` (a published model's bytes) into its ``size``² graph.

    The initializer block is found in both files by its first and last tensor; where it kept
    its length (constants rewritten in place, as the quantised graph's folded Resize targets
    are), only its differing bytes are sent. Where the block cannot be matched (a graph
    written another way), the whole new file is the delta: correct, just not small."""
    import numpy as np
    import onnx

    try:
        model = onnx.load_from_string(base)
    except Exception as exc:
        raise ModelError(f"cannot read the browser model: {exc}") from exc
    inits = model.graph.initializer
    first = inits[0].SerializeToString() if len(inits) else b""
    last = inits[-1].SerializeToString() if len(inits) else b""
    new = with_input_size(model, size).SerializeToString()
    digest = hashlib.sha256(new).hexdigest()
    out = _Builder()
    old_span, new_span = _block(base, first, last), _block(new, first, last)
    if old_span is None or new_span is None or old_span[1] - old_span[0] != new_span[1] - new_span[0]:
        out.literal(new)
        return SizedDelta(size, len(new), digest, bytes(out.blob), tuple(out.parts))
    (o0, o1), (n0, n1) = old_span, new_span
    out.literal(new[:n0])
    a = np.frombuffer(base, np.uint8, o1 - o0, o0)
    b = np.frombuffer(new, np.uint8, n1 - n0, n0)
    at = 0
    for lo, hi in _runs(np.flatnonzero(a != b)):
        out.copy(o0 + at, o0 + lo)
        out.literal(new[n0 + lo : n0 + hi])
        at = hi
    out.copy(o0 + at, o1)
    out.literal(new[n1:])
    return SizedDelta(size, len(new), digest, bytes(out.blob), tuple(out.parts))


def _block(data: bytes, first: bytes, last: bytes) -> tuple[int, int] | None:
    """Where the initializers are in ``data``: from the first tensor to the end of the last."""
    if not first:
        return None
    start, end = data.find(first), data.rfind(last)
    if start < 0 or end < start:
        return None
    return start, end + len(last)


def _runs(diff: Any) -> list[tuple[int, int]]:
    """Differing positions as ``[lo, hi)`` runs, neighbours closer than the gap merged."""
    runs: list[tuple[int, int]] = []
    for i in diff.tolist():
        if runs and i - runs[-1][1] < _MERGE_GAP:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    return runs
