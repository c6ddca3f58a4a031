"""Installed model files: where they live in the cache, and whether they are intact (size and
SHA-256, with a stamp that spares re-hashing an unchanged file)."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from ..config import Settings
from ..io.atomic import write_atomic
from .registry import ModelSpec, resolve_model

__all__ = ["installed_path", "sha256_file", "verify_file", "verify_installed"]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def installed_path(spec: ModelSpec | str, settings: Settings) -> Path:
    """Where the model file lives (or will live) in the cache."""
    return settings.models_dir / resolve_model(spec).filename


def _stamp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.verified")


def _stat_key(path: Path) -> dict[str, int]:
    st = path.stat()
    # ctime too: unlike mtime it cannot be set back (os.utime moves it), so a byte flipped in
    # place and the mtime restored afterwards still changes the key.
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "ino": st.st_ino}


def verify_file(path: Path, expected_size: int | None, expected_sha: str, *, thorough: bool = False) -> bool:
    """Whether ``path`` has the expected size and SHA-256, sparing the hash when it can.

    Hashing 88-176 MB costs 0.1-0.2 s, so a successful check leaves a stamp
    (``.NAME.verified``) of the file's size, mtime, ctime and inode; while those are
    unchanged later checks trust the stamp (as git's index does) — any rewrite, truncation
    or replacement of the file changes them, and then the file is hashed again.
    ``thorough=True`` always hashes.
    """
    if not path.is_file():
        return False
    stamp = _stamp_path(path)
    try:
        stat_key = _stat_key(path)
    except OSError:
        return False
    key: dict[str, object] = {**stat_key, "sha256": expected_sha}
    if not thorough:
        try:
            if json.loads(stamp.read_text()) == key:
                return True
        except (OSError, ValueError):
            pass
    try:
        ok = (expected_size is None or path.stat().st_size == expected_size) and sha256_file(
            path
        ) == expected_sha
    except OSError:
        ok = False
    # A stamp is only trusted if the file was last changed well before it: a rewrite in the
    # same file-system timestamp tick as the stamp could otherwise keep the same times.
    changed = max(stat_key["mtime_ns"], stat_key["ctime_ns"])
    settled = time.time_ns() - changed > 2_000_000_000
    if ok and settled:
        try:
            write_atomic(stamp, json.dumps(key).encode(), overwrite=True)
        except OSError:  # a read-only cache still works, just without the shortcut
            pass
    else:
        stamp.unlink(missing_ok=True)
    return ok


def verify_installed(spec: ModelSpec, path: Path, *, thorough: bool = False) -> bool:
    """Check size and SHA-256 of an installed model (derived models: against their record).

    See :func:`verify_file` for the stamp that spares re-hashing an unchanged file.
    ``thorough=True`` always hashes (``cleancut models verify``).
    """
    if not path.is_file():
        return False
    if spec.sha256 is not None:
        return verify_file(path, spec.size, spec.sha256, thorough=thorough)
    try:
        meta = json.loads(path.with_name(path.name + ".json").read_text())
        expected_size, expected_sha = int(meta["size"]), str(meta["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return verify_file(path, expected_size, expected_sha, thorough=thorough)
