"""Atomic files: bytes put on disk without ever exposing a partial file, and the sweep of
temporary files an interrupted writer left behind (one temp-name pattern for both, also used
by the Ray engine's non-local writes)."""

from __future__ import annotations

import errno
import logging
import os
import re
import time
import uuid
from pathlib import Path
from typing import Final

from ..errors import (
    OutputExistsError,
    OutputWriteError,
)

__all__ = [
    "STALE_TEMP_AGE",
    "TEMP_SUFFIX",
    "sweep_stale_temps",
    "temp_name_for",
    "write_atomic",
]

log = logging.getLogger(__name__)

#: Temporary files of :func:`write_atomic`: ``.NAME.<pid>.<12 hex>.cleancut-tmp``. The pid
#: says whose they are, so a later run can tell a file left by a killed writer (pid gone)
#: from one a live writer is still filling.
TEMP_SUFFIX: Final = ".cleancut-tmp"
_TEMP_RE: Final = re.compile(r"^\.(?P<name>.+)\.(?P<pid>[0-9]+)\.[0-9a-f]{12}" + re.escape(TEMP_SUFFIX) + "$")
#: A temp file this old is stale even if its pid is alive: the pid was reused (or the writer
#: hangs), since no single write takes hours.
STALE_TEMP_AGE: Final = 6 * 3600.0


def temp_name_for(name: str) -> str:
    """A fresh temporary file name for a file to be published as ``name`` (a bare name, no
    folder): ``.NAME.<pid>.<12 hex>.cleancut-tmp``, the pattern :func:`sweep_stale_temps`
    recognises. Every writer that publishes by rename uses it (also the Ray engine's writes
    to non-local file systems)."""
    return f".{name}.{os.getpid()}.{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}"


def _temp_name(target: Path) -> Path:
    return target.with_name(temp_name_for(target.name))


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    except OSError:
        return False
    return True


def sweep_stale_temps(folder: str | os.PathLike[str], *, max_age: float = STALE_TEMP_AGE) -> list[Path]:
    """Remove temporary files that :func:`write_atomic` left in ``folder`` (not recursive).

    A writer killed between creating its temp file and renaming it (SIGKILL, power loss)
    leaves ``.NAME.<pid>.<hex>.cleancut-tmp`` behind. Only files with exactly that name
    pattern are touched, and only when their pid no longer runs or they are older than
    ``max_age`` seconds; files of a live writer and anyone else's files are left alone.
    Returns what was removed. Missing or unreadable folders are not an error.
    """
    removed: list[Path] = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP_RE.match(entry.name)
        if m is None:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if _pid_alive(int(m["pid"])) and age < max_age:
            continue
        try:
            Path(entry.path).unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("could not remove the stale temporary file %s: %s", entry.path, exc)
            continue
        log.info("removed %s, left by an interrupted write", entry.path)
        removed.append(Path(entry.path))
    return removed


def _write_error(target: Path, exc: OSError) -> OutputWriteError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        reason = "no space left on the device (disk full or over quota)"
        hint = "free some space and run again: finished outputs are kept and skipped"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason = f"no permission to write there ({exc.strerror})"
        hint = "choose another -o folder or fix its permissions"
    else:
        reason = exc.strerror or str(exc)
        hint = "nothing partial was left behind"
    err = OutputWriteError(f"cannot write {target}: {reason}; {hint}")
    err.errno = exc.errno
    return err


def write_atomic(path: str | os.PathLike[str], data: bytes, *, overwrite: bool = False) -> Path:
    """Write ``data`` to ``path`` so that no partial file is ever visible there.

    The bytes go to a hidden temporary file next to the target (named with our pid, see
    :func:`sweep_stale_temps`), are flushed to disk, and are then moved into place. Without
    ``overwrite`` an existing file is never replaced, even if it appears between our check
    and our rename (hard-link publish). A failed write (disk full, no permission) raises
    :class:`~cleancut.errors.OutputWriteError` and leaves neither the target nor a temp file.
    """
    target = Path(path)
    if not overwrite and target.exists():
        raise OutputExistsError(f"{target} exists; pass overwrite=True (--overwrite) to replace it")
    tmp = _temp_name(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            tmp.replace(target)
        else:
            try:
                os.link(tmp, target)
            except FileExistsError:
                raise OutputExistsError(
                    f"{target} appeared while writing; pass overwrite=True to replace it"
                ) from None
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS):
                    raise
                # no hard links on this file system (vfat, some network mounts)
                if target.exists():
                    raise OutputExistsError(f"{target} exists") from None
                tmp.replace(target)
    except OutputExistsError:
        raise
    except OSError as exc:
        raise _write_error(target, exc) from exc
    finally:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        except OSError:  # the folder itself is gone or unwritable: nothing of ours is left
            pass
    return target
