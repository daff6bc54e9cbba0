"""Standard output as a C program has it: writes that fail are lost, quietly.

numactl and numastat write through C stdio and never check the result: with
stdout closed (``>&-``), full (``>/dev/full``) or a pipe whose reader left,
their output is lost, nothing is said on stderr and the exit status is the
one they would have had.  :func:`guard` gives every ``mempolicy`` subcommand
that behaviour; without it Python raises at the first write or at exit.

A closed descriptor 0, 1 or 2 is reserved with ``/dev/null`` opened
close-on-exec, so that no file the program opens later lands on it (and
receives what ``print`` writes), while a command numactl execs still finds
it closed, as it would under the real numactl.
"""

from __future__ import annotations

import errno
import io
import os
import sys
from typing import Any, TextIO, cast

__all__ = ["guard"]

_LOST = (errno.EPIPE, errno.ENOSPC, errno.EBADF, errno.EIO, errno.EDQUOT, errno.EFBIG,
         errno.EINVAL)


class _LossyFd(io.RawIOBase):
    """A write-only descriptor whose failed writes are dropped, as C stdio drops them."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        self.lost = False

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        try:
            return os.isatty(self._fd)
        except OSError:
            return False

    def write(self, b: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        n = len(b)
        if self.lost:
            return n
        try:
            view = memoryview(b)
            while view:
                k = os.write(self._fd, view)
                view = view[k:]
        except OSError as e:
            if e.errno not in _LOST:
                raise
            self.lost = True
        return n


def _reserve(fd: int) -> bool:
    """Occupy FD with /dev/null (close-on-exec) when it is closed; True when it was."""
    try:
        os.fstat(fd)
        return False
    except OSError:
        pass
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    if null != fd:                       # a lower descriptor was free as well
        os.dup2(null, fd, inheritable=False)
        os.close(null)
    return True


def _wrap(fd: int, old: TextIO | None) -> io.TextIOWrapper:
    line = bool(old is not None and old.line_buffering)
    enc = old.encoding if old is not None else "utf-8"
    errs = old.errors if old is not None and old.errors else "strict"
    raw = _LossyFd(fd)
    return io.TextIOWrapper(io.BufferedWriter(cast(Any, raw)), encoding=enc, errors=errs,
                            line_buffering=line or raw.isatty(), write_through=False)


def guard() -> None:
    """Make ``sys.stdout`` and ``sys.stderr`` lose failed writes instead of raising.

    Streams already redirected inside the process (``contextlib.redirect_stdout``,
    a test's capture) are left as they are.

    Example::

        guard()
        print("gone if stdout is closed or full")   # never raises
    """
    for fd in (0, 1, 2):
        _reserve(fd)
    for name, fd in (("stdout", 1), ("stderr", 2)):
        old = getattr(sys, name)
        if old is not None and old is not getattr(sys, f"__{name}__"):
            continue                     # redirected in-process (a test's capture): leave it
        if isinstance(old, io.TextIOWrapper) and isinstance(old.buffer, io.BufferedWriter) \
                and isinstance(old.buffer.raw, _LossyFd):
            continue
        if old is not None:
            try:
                old.flush()
            except (OSError, ValueError):
                pass
        new = _wrap(fd, old)
        if fd == 2:
            new.reconfigure(line_buffering=True, errors="backslashreplace")
        setattr(sys, name, new)
