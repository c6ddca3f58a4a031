"""Atomic files: bytes put on disk without ever exposing a partial file (:func:`write_atomic`
for bytes in memory, :func:`atomic_writer` for a stream, :func:`replace_into` for a file a
caller finished itself), and the sweep of temporary files an interrupted writer left behind
(one temp-name pattern for all, also used by the Ray engine's non-local writes)."""

from __future__ import annotations

import errno
import logging
import os
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Final

import psutil

from ..errors import (
    OutputExistsError,
    OutputWriteError,
)

__all__ = [
    "STALE_TEMP_AGE",
    "TEMP_SUFFIX",
    "atomic_writer",
    "check_writable",
    "pid_alive",
    "replace_into",
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


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs, on every OS: not ``os.kill(pid, 0)``, which on Windows
    sends a Ctrl-C (signal 0 is CTRL_C_EVENT there) instead of testing anything."""
    return pid > 0 and psutil.pid_exists(pid)


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
        if pid_alive(int(m["pid"])) and age < max_age:
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


def check_writable(folder: str | os.PathLike[str]) -> OutputWriteError | None:
    """Whether new files can be made in ``folder`` (made when missing, as writes make it):
    ``None``, or the :class:`~cleancut.errors.OutputWriteError` every write there would
    raise. A run checks its output folders once, before any work, rather than failing every
    file after its inference. An empty file is created and removed where the folder (or its
    nearest existing parent) is, so root, read-only mounts and ACLs are judged as writes are;
    nothing is left behind and no folder is made."""
    target = Path(folder)
    where = target
    while not where.exists() and where.parent != where:
        where = where.parent
    probe = where / temp_name_for("write-check")
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError as exc:
        return _write_error(target, exc)
    os.close(fd)
    try:
        probe.unlink()
    except OSError as exc:  # made but not removable (a sticky folder of another user): say so
        log.warning("could not remove the write check %s: %s", probe, exc)
    return None


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


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX; Windows cannot open a folder for this)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a folder: the rename still happened
        pass
    finally:
        os.close(fd)


def replace_into(src: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Move the finished file ``src`` (closed by its writer, in ``target``'s folder) over
    ``target`` in one step: its bytes are flushed to disk first, so a crash leaves either the
    old target or the complete new one, never a torn file. For files a caller fills and checks
    itself (a resumable download's kept partial); OS errors propagate unchanged."""
    source, dest = Path(src), Path(target)
    fd = os.open(source, os.O_RDWR)  # writable: Windows' fsync (_commit) needs it
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    source.replace(dest)
    _fsync_dir(dest.parent)
    return dest


@contextmanager
def atomic_writer(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Write ``path`` through a stream without ever exposing a partial file.

    Yields a file open on a fresh temporary name next to ``path`` (the pattern
    :func:`sweep_stale_temps` knows). When the block ends normally the file is flushed,
    synced and moved over ``path``; when it raises (a failed check, a broken source) the
    temporary file is removed and ``path`` is left as it was. OS errors propagate unchanged.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(target)
    try:
        with open(tmp, "xb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(target)
        _fsync_dir(target.parent)
    finally:
        try:
            tmp.unlink()
        except OSError:  # renamed into place, or the folder itself is gone
            pass
