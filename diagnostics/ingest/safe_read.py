"""Opening the files of a run directory that may come from a stranger: the one place every reader
opens its input.

A reader calls :func:`open_input` instead of ``open(path, "rb")`` and gets a buffered binary file
that:

* **is a regular file.**  FIFOs, sockets, devices and links to them are refused before a byte is
  read (the open itself never blocks: ``O_NONBLOCK``, then ``fstat`` on the opened descriptor), with
  the reason: "a FIFO (named pipe)", "a character device (a link to /dev/zero)".
* **fits the size budget.**  A file larger than ``Budget.max_bytes`` is refused up front, and reading
  past the budget (a file that grows while read) stops with :class:`BudgetExceeded`.
* **fits the time budget.**  Every refill of the read buffer checks the deadline (``max_seconds``
  after the open); loops that work without reading call :func:`tick`.  Past the deadline reading
  raises :class:`BudgetExceeded` (``kind == "time"``).  A streaming reader (text, tables) then stops
  and keeps the points read so far, with a one-line note (:func:`partial_note`); any other reader's
  file is skipped with that reason.
* **yields bounded lines.**  Iterating it (``for line in fh``) yields lines of at most
  ``Budget.max_line`` bytes; a longer line (a progress bar that only ever writes ``\\r``) comes in
  pieces, cut after its last ``\\r`` when it has one, so memory stays bounded by the budget.

The budget in force is a context variable set by whoever dispatches files (``with budget(b):``), so
readers keep their signatures.  Defaults: 2 GiB, 60 s, 1 MiB lines; ``[tool.trainfix.ingest]``
(``max_file_mb``, ``max_file_seconds``) or the ``TRAINFIX_MAX_FILE_MB`` / ``TRAINFIX_MAX_FILE_SECONDS``
environment variables change them.

:func:`tracking_reads` records every file opened here (and every file :func:`note_read` is told
about) while a command runs, so that the one writer (``trainfix.outputs``) can refuse to write over
an input: :func:`was_read` compares paths and the files they resolve to (links included).

:func:`describe_failure` turns whatever a reader raised into the one-line reason a skipped file
carries (integer overflow, recursion depth, huge numbers, budget, ...), and :func:`check_tree`
bounds the size and depth of a parsed config (YAML alias bombs expand by reference).
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import os
import stat
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Iterator

MIB = 1 << 20


@dataclass(frozen=True)
class Budget:
    """What reading one input file may cost."""

    max_bytes: int = 2 << 30
    max_seconds: float = 60.0
    max_line: int = 1 * MIB
    buffer: int = 64 << 10  # read-buffer size: the deadline is checked at each refill

    @classmethod
    def from_env(cls, base: "Budget | None" = None) -> "Budget":
        """``base`` (default: the defaults) with the environment's overrides applied."""
        b = base or cls()
        mb = os.environ.get("TRAINFIX_MAX_FILE_MB")
        secs = os.environ.get("TRAINFIX_MAX_FILE_SECONDS")
        with contextlib.suppress(ValueError):
            if mb:
                b = replace(b, max_bytes=int(float(mb) * MIB))
        with contextlib.suppress(ValueError):
            if secs:
                b = replace(b, max_seconds=float(secs))
        return b


from trainfix.outputs import note_read, tracking_reads, was_read  # noqa: E402,F401 (the record of what a command read)


class NotRegularFile(OSError):
    """The path is not a regular file (or a link to one): nothing was read."""


class BudgetExceeded(OSError):
    """Reading the file passed its size or time budget.  ``kind`` says which ("size", "time");
    ``read_bytes`` how far the file had been read."""

    def __init__(self, message: str, kind: str = "size", read_bytes: int = 0):
        super().__init__(message)
        self.kind = kind
        self.read_bytes = read_bytes


def until_spent(items: Iterable[Any], path: str | os.PathLike, notes: list[str]) -> Iterator[Any]:
    """``items`` (the lines or blocks of an open input) until the file's time budget is spent; then
    a one-line note in ``notes`` and the end, so that a streaming reader keeps the points read so
    far (a 60 s budget on a huge log diagnoses its first part rather than none of it).  A spent
    size budget still raises: that file is skipped."""
    try:
        yield from items
    except BudgetExceeded as exc:
        if exc.kind != "time":
            raise
        try:
            size = os.stat(path).st_size
        except OSError:
            size = exc.read_bytes
        notes.append(partial_note(exc, size))


def partial_note(exc: BudgetExceeded, size: int) -> str:
    """The one-line warning of a streaming reader that stopped at its time budget and kept the
    points before it: how much of the file that was, and how to read all of it."""
    part = human_size(exc.read_bytes) if exc.read_bytes else "part"
    return (f"read only the first {part} of {human_size(size)}: {exc}; the rest of the file is not in "
            "the diagnosis")


_BUDGET: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("trainfix_read_budget", default=None)
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("trainfix_read_deadline", default=None)


def current_budget() -> Budget:
    b = _BUDGET.get()
    return b if b is not None else Budget.from_env()


@contextlib.contextmanager
def budget(b: Budget | None):
    """Use ``b`` (None: defaults and environment) for the files opened inside the block."""
    token = _BUDGET.set(b if b is not None else Budget.from_env())
    try:
        yield
    finally:
        _BUDGET.reset(token)


@contextlib.contextmanager
def deadline(seconds: float | None = None):
    """One time budget for everything read inside the block (the dispatcher wraps each file in it,
    so a reader that opens several files, or none, shares one deadline)."""
    secs = current_budget().max_seconds if seconds is None else seconds
    token = _DEADLINE.set(time.monotonic() + secs)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _overtime(seconds: float, read_bytes: int = 0) -> BudgetExceeded:
    return BudgetExceeded(f"reading took more than its {seconds:g} s budget "
                          "(raise it with TRAINFIX_MAX_FILE_SECONDS or [tool.trainfix.ingest] max_file_seconds)",
                          "time", read_bytes)


def tick() -> None:
    """Raise :class:`BudgetExceeded` when the current file's time budget is spent (for loops that
    work without reading)."""
    d = _DEADLINE.get()
    if d is not None and time.monotonic() > d:
        raise _overtime(current_budget().max_seconds)


_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a directory"))


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def _link_note(path: Path) -> str:
    try:
        if path.is_symlink():
            return f" (a link to {os.readlink(path)})"
    except OSError:
        pass
    return ""


def file_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` must not be read (not a regular file, a dangling link), or None.  Uses ``stat``
    only: nothing is opened."""
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        return "a dangling link" if p.is_symlink() else "no longer exists"
    except OSError as exc:
        return f"cannot stat it: {exc.strerror or exc}"
    if not stat.S_ISREG(st.st_mode):
        return f"not read: {_kind(st.st_mode)}{_link_note(p)}"
    return None


def human_size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} GiB"  # pragma: no cover


def _too_large(size: int, b: Budget) -> str:
    return (f"{human_size(size)} is above the {human_size(b.max_bytes)} per-file budget "
            "(raise it with TRAINFIX_MAX_FILE_MB or [tool.trainfix.ingest] max_file_mb)")


class _BudgetRaw(io.RawIOBase):
    """A read-only raw file over a descriptor that enforces the byte budget and the deadline."""

    def __init__(self, fd: int, name: str, b: Budget, deadline_at: float):
        self._fd = fd
        self.name = name
        self._budget = b
        self._deadline = deadline_at
        self._read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return os.lseek(self._fd, offset, whence)

    def tell(self) -> int:
        return os.lseek(self._fd, 0, os.SEEK_CUR)

    def fileno(self) -> int:
        return self._fd

    def readinto(self, buf: Any) -> int:
        if time.monotonic() > self._deadline:
            raise _overtime(self._budget.max_seconds, self._read)
        n = os.readv(self._fd, [buf])
        self._read += n
        if self._read > self._budget.max_bytes:
            raise BudgetExceeded(_too_large(self._read, self._budget) + " (it grew while read)", "size", self._read)
        return n

    def close(self) -> None:
        if not self.closed:
            try:
                os.close(self._fd)
            finally:
                super().close()


class InputFile(io.BufferedReader):
    """A buffered, budgeted input file; iterating it yields lines of bounded length.

    Lines end at ``\n``, ``\r\n`` or a lone ``\r`` (``bytes.splitlines``: a progress bar's redraws
    are lines of their own) and keep their ending; the last line may have none (a file still being
    written).  A line longer than ``max_line`` comes in pieces of about that size.
    """

    def __init__(self, raw: _BudgetRaw, b: Budget):
        super().__init__(raw, buffer_size=b.buffer)
        self._max_line = b.max_line
        self._chunk = min(b.max_line, 32 << 10)  # small: a 1 MB log is read in well under 1 MB of memory
        self._pending: Iterator[bytes] | None = None

    def __iter__(self) -> Iterator[bytes]:  # type: ignore[override]
        return self._lines()

    def __next__(self) -> bytes:  # next(fh) continues the same bounded iteration
        if self._pending is None:
            self._pending = self._lines()
        return next(self._pending)

    def _lines(self) -> Iterator[bytes]:
        read, size, limit = self.read, self._chunk, self._max_line
        carry = b""
        while True:
            chunk = read(size)
            if not chunk:
                if carry:
                    yield carry
                return
            if carry:
                chunk = carry + chunk
            parts = chunk.splitlines(True)  # C speed: one split per chunk, not one call per line
            carry = b"" if parts[-1].endswith((b"\n", b"\r")) else parts.pop()
            if len(carry) >= limit:  # no line break in a whole budget's worth: emit it as a piece
                parts.append(carry)
                carry = b""
            yield from parts

    def blocks(self) -> Iterator[bytes]:
        """The same lines as iterating the file, joined into blocks of whole lines (a reader splits
        a block at C speed instead of taking the lines one call at a time).  A block ends at a line
        end, except a piece of an over-long line and an unterminated last line, which come as
        blocks of their own.  Blocks are bytes-like (``str(block, "utf-8", "replace")``)."""
        read, size, limit = self.read, self._chunk, self._max_line  # the pieces _lines makes
        carry = b""
        while True:
            chunk = read(size)
            if not chunk:
                if carry:
                    yield carry
                return
            if carry:
                chunk = carry + chunk
            cut = max(chunk.rfind(b"\n"), chunk.rfind(b"\r")) + 1  # after the last line end
            if cut:
                yield memoryview(chunk)[:cut]  # no copy
                carry = chunk[cut:]
            else:
                carry = chunk
            if len(carry) >= limit:  # no line break in a whole budget's worth: emit it as a piece
                yield carry
                carry = b""


def open_input(path: str | os.PathLike) -> InputFile:
    """Open ``path`` for reading under the current budget (see the module docstring).

    Raises :class:`NotRegularFile` or :class:`BudgetExceeded` (both ``OSError``) with the reason.
    """
    p = Path(path)
    b = current_budget()
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(p, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(f"not read: {_kind(st.st_mode)}{_link_note(p)}")
        note_read(p, st)
        if st.st_size > b.max_bytes:
            raise BudgetExceeded(_too_large(st.st_size, b))
        if hasattr(os, "O_NONBLOCK"):
            import fcntl

            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        d = _DEADLINE.get()
        raw = _BudgetRaw(fd, str(p), b, d if d is not None else time.monotonic() + b.max_seconds)
    except BaseException:
        os.close(fd)
        raise
    return InputFile(raw, b)


def read_bytes(path: str | os.PathLike, max_bytes: int | None = None) -> bytes:
    """The whole of a small file (a config), under the budget and at most ``max_bytes``."""
    with open_input(path) as fh:
        limit = current_budget().max_bytes if max_bytes is None else min(max_bytes, current_budget().max_bytes)
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise BudgetExceeded(f"too large: more than {human_size(limit)}")
    return data


def head(path: str | os.PathLike, n: int) -> bytes:
    """The first ``n`` bytes of a regular file; b"" for anything that cannot be read safely."""
    try:
        with open_input(path) as fh:
            return fh.read(n)
    except OSError:
        return b""


# --- what went wrong, in one line ------------------------------------------------------------------


def describe_failure(exc: BaseException) -> str:
    """The reason a skipped file carries, for any exception a reader or loader raised."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, (NotRegularFile, BudgetExceeded)):
        return text
    if isinstance(exc, RecursionError):
        return "nested too deeply to read (recursion limit)"
    if isinstance(exc, OverflowError):
        return f"a number too large for its field (integer overflow: {text or 'OverflowError'})"
    if isinstance(exc, MemoryError):
        return "needs more memory than is available to read"
    if isinstance(exc, ValueError) and "digits" in text and "integer" in text.lower():
        return f"a number with too many digits ({text})"
    if isinstance(exc, UnicodeError):
        return f"not text in a known encoding ({type(exc).__name__})"
    if isinstance(exc, ValueError) and text:  # our own readers' reasons ("expands to more than ...")
        return text
    if isinstance(exc, OSError):
        return exc.strerror or text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def check_tree(obj: Any, *, max_nodes: int = 1_000_000, max_depth: int = 200) -> None:
    """Raise ValueError when a parsed config has more than ``max_nodes`` nodes counted as expanded
    (YAML aliases share objects: a billion-laughs file is small in memory and huge when walked) or
    nests deeper than ``max_depth``.  Stops at the first bound: the walk itself is bounded."""
    count = 1
    stack: list[tuple[Any, int]] = [(obj, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
            count += 2 * len(node)  # keys and values
        elif isinstance(node, (list, tuple)):
            children = node
            count += len(node)
        else:
            continue
        if count > max_nodes:
            raise ValueError(f"expands to more than {max_nodes:,} values (YAML aliases repeated: an alias bomb?)")
        if depth >= max_depth:
            raise ValueError(f"nested more than {max_depth} levels deep")
        stack.extend((v, depth + 1) for v in children if isinstance(v, (dict, list, tuple)))
