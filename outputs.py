"""Writing files: the one atomic writer behind every file trainfix writes.

Reports (``-o``, ``--junit``), patched configs, repaired checkpoints, the trainer's checkpoints,
resolved configs and meta files, attribution images: all go through :func:`write_with` (or its
``write_text`` / ``write_bytes`` forms), which

* **writes atomically**: into a temporary file beside the target, then ``os.replace``; whatever
  fails, the temporary file is removed and the target is left as it was (no partial file);
* **gives the file the usual mode**: a new file gets ``0o666 & ~umask``, like ``open(path, "w")``
  would; a replaced file keeps its mode.  The umask is read without changing it
  (``/proc/self/status``), never at import time;
* **never writes over an input**: inside a command, every file the command read is recorded (see
  :func:`tracking_reads`, which every command runs inside; readers call :func:`note_read`); writing to one of them (same
  path, or the same file through a link) is refused with :class:`~trainfix.errors.UsageError`;
* **says what went wrong in one line**: a read-only folder, a full disk, a file over the size
  limit become :class:`~trainfix.errors.OutputError` naming the path and the cause (exit 2).
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import os
import tempfile
from pathlib import Path
from typing import Callable

from trainfix.errors import OutputError, UsageError

_CAUSES = {
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large (over the size limit for one file)",
    errno.ENOENT: "its folder does not exist",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.EISDIR: "it is a folder",
    errno.ENAMETOOLONG: "the name is too long",
}


def current_umask() -> int:
    """The process umask, read without changing it where the system allows (Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: the only portable way; restored at once
    os.umask(mask)
    return mask


# --- what the running command read (kept here, beside the writer that consults it, so that a
# command can track its reads without importing the readers) ---------------------------------
_READS: contextvars.ContextVar[set | None] = contextvars.ContextVar("trainfix_files_read", default=None)


@contextlib.contextmanager
def tracking_reads():
    """Record the files read inside the block (every command runs inside one)."""
    token = _READS.set(set())
    try:
        yield
    finally:
        _READS.reset(token)


def note_read(path: str | os.PathLike, st: os.stat_result | None = None) -> None:
    """Record ``path`` as an input of the running command (a no-op outside :func:`tracking_reads`)."""
    reads = _READS.get()
    if reads is None:
        return
    reads.add(os.path.realpath(path))
    try:
        st = st or os.stat(path)
        reads.add((st.st_dev, st.st_ino))
    except OSError:
        pass


def was_read(path: str | os.PathLike) -> bool:
    """Whether the running command read ``path`` (the same path, or the same file through a link)."""
    reads = _READS.get()
    if not reads:
        return False
    if os.path.realpath(path) in reads:
        return True
    try:
        st = os.stat(path)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) in reads


def refuse_input(path: str | os.PathLike) -> None:
    """Raise UsageError when ``path`` is a file the current command read."""
    if was_read(path):
        raise UsageError(f"refusing to write {path}: this command read it as an input",
                         "write the output somewhere else (-o/--output/--junit); inputs are never modified")


def _cause(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return _CAUSES.get(exc.errno or 0) or exc.strerror or str(exc) or type(exc).__name__
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "enforce fail" in text or "write" in text.lower():  # torch.save's writer wraps ENOSPC/EFBIG
        return "the write failed (disk full, or the file over the size limit for one file)"
    return text


def write_with(path: str | os.PathLike, write: Callable[[str], None], *, mode: int | None = None,
               parents: bool = False) -> Path:
    """Atomically create or replace ``path`` with what ``write(tmp_path)`` writes to a temporary
    file beside it (see the module docstring).  ``mode`` overrides the permissions; ``parents``
    creates missing folders (the trainer's run dir), else a missing folder is an OutputError."""
    path = Path(path)
    refuse_input(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parents and not parent.is_dir():
        raise OutputError(f"cannot write {path}: its folder {parent} does not exist", "create it first or pass another location")
    try:
        if parents:
            parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {_cause(exc)}", "pass a writable location") from None
    try:
        os.close(fd)
        write(tmp)
        if mode is None:
            try:
                mode = path.stat().st_mode & 0o7777
            except OSError:
                mode = 0o666 & ~current_umask()
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError) or (isinstance(exc, RuntimeError) and "enforce fail" in str(exc)):
            raise OutputError(f"cannot write {path}: {_cause(exc)}",
                              "free some space or pass another location; nothing was written") from None
        raise
    return path


def write_bytes(path: str | os.PathLike, data: bytes, *, mode: int | None = None, parents: bool = False) -> Path:
    """Atomically write ``data`` to ``path`` (flushed to the disk before it replaces the target)."""
    def _write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    return write_with(path, _write, mode=mode, parents=parents)


def write_text(path: str | os.PathLike, text: str, *, mode: int | None = None, parents: bool = False) -> Path:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    return write_bytes(path, text.encode("utf-8"), mode=mode, parents=parents)
