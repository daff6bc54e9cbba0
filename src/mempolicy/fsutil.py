"""Files written whole or not at all.

Everything the project writes for a user to keep (a trace's ``.expected``, a
plot, the oracle's cached kernel, its ``kernel.json`` and its runner) is
first written to a temporary file in the destination's directory, under a
name of this process's own, and then renamed over the destination.  A crash,
a full disk or Ctrl-C part-way leaves the old file as it was, and two
processes writing the same file at once never mix their bytes: the last
rename wins.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    """The process's umask, read without changing it (other threads may be creating files)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, mode: int | None = None) -> Iterator[Path]:
    """A temporary path next to DEST; renamed to DEST when the block succeeds.

    The block writes the temporary file by name (for tools that take a file
    name, such as ``gcc -o`` or matplotlib's ``savefig``).  On an exception
    the temporary file is removed and DEST is left untouched.  MODE sets the
    permission bits (default: 0o666 less the umask, as ``open`` would).

    >>> with atomic_path("out.png") as tmp:   # doctest: +SKIP
    ...     fig.savefig(tmp, format="png")
    """
    dest = Path(dest)
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~_umask() if mode is None else mode)
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write(dest: str | os.PathLike, data: bytes | str, mode: int | None = None) -> None:
    """Write DATA (bytes, or str as UTF-8) to DEST whole or not at all.

    >>> atomic_write("foo.expected", "3 mmap: ok\\n")   # doctest: +SKIP
    """
    if isinstance(data, str):
        data = data.encode()
    with atomic_path(dest, mode) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


@contextlib.contextmanager
def locked(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive ``flock`` on PATH (created if needed) for the block.

    Processes that share a cache take it around filling one of its entries;
    the lock goes away with the process, so a killed holder never leaves it
    behind.

    >>> with locked(cache / "kernels" / "7.3.lock"):   # doctest: +SKIP
    ...     fetch_if_still_missing()
    """
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
