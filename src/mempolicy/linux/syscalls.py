"""The six memory-policy system calls of the running kernel, through ctypes ``syscall()``.

No libnuma: the arguments go to the kernel exactly as given.  Each function
here takes *raw* arguments (the mode word with its flag bits, a nodemask as a
Python int or ``None`` for a NULL pointer, ``maxnode`` as the kernel reads
it) and raises ``OSError(errno, strerror)`` when the call returns -1, as the
functions of the :mod:`os` module do.

``maxnode``: the kernel reads only ``maxnode - 1`` bits of a user nodemask
(mm/mempolicy.c ``get_nodes`` decrements it first), so a mask that holds
node N must be passed with ``maxnode >= N + 2``.  :func:`maxnode_for` gives
the value the high-level calls use.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import platform
from typing import Iterable

__all__ = [
    "SYSCALL_NUMBERS", "syscall_numbers", "maxnode_for", "mask_words",
    "set_mempolicy", "get_mempolicy", "mbind", "set_mempolicy_home_node",
    "migrate_pages", "move_pages", "syscall", "mmap", "munmap", "mprotect",
    "sched_getaffinity", "sched_setaffinity",
]

U64 = (1 << 64) - 1
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

# System call numbers of the 64-bit architectures (arch/*/kernel/syscalls/syscall.tbl,
# include/uapi/asm-generic/unistd.h), in the order
# mbind, set_mempolicy, get_mempolicy, migrate_pages, move_pages, set_mempolicy_home_node.
_GENERIC = (235, 237, 236, 238, 239, 450)
SYSCALL_NUMBERS = {
    "x86_64": (237, 238, 239, 256, 279, 450),
    "aarch64": _GENERIC,
    "arm64": _GENERIC,
    "riscv64": _GENERIC,
    "loongarch64": _GENERIC,
    "ppc64le": (259, 261, 260, 258, 301, 450),
    "ppc64": (259, 261, 260, 258, 301, 450),
    "s390x": (268, 270, 269, 287, 310, 450),
}
_NAMES = ("mbind", "set_mempolicy", "get_mempolicy", "migrate_pages", "move_pages",
          "set_mempolicy_home_node")


def syscall_numbers(machine: str | None = None) -> dict[str, int] | None:
    """The call numbers for ``machine`` (default: this one), or None if unknown."""
    machine = machine or platform.machine()
    nums = SYSCALL_NUMBERS.get(machine)
    if nums is None or ctypes.sizeof(ctypes.c_long) != 8:
        return None
    return dict(zip(_NAMES, nums))


_libc: ctypes.CDLL | None = None
_nr: dict[str, int] | None = None


def _lib() -> ctypes.CDLL:
    global _libc, _nr
    if _libc is None:
        _nr = syscall_numbers()
        lib = ctypes.CDLL(None, use_errno=True)
        lib.syscall.restype = ctypes.c_long
        _libc = lib
    return _libc


def _call(name: str, *args: int | ctypes.c_void_p) -> int:
    lib = _lib()
    if _nr is None:
        raise OSError(_errno.ENOSYS, f"{os.strerror(_errno.ENOSYS)} (no {name} on {platform.machine()})")
    cargs = [a if isinstance(a, ctypes.c_void_p) else ctypes.c_ulong(a & U64) for a in args]
    ctypes.set_errno(0)
    r = lib.syscall(ctypes.c_long(_nr[name]), *cargs)
    if r == -1:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return int(r)


# ---------------------------------------------------------------------------
# nodemask buffers
# ---------------------------------------------------------------------------

# get_nodes() refuses maxnode - 1 > PAGE_SIZE * 8 before reading, so it never reads
# more than this many words.
_MAX_READ_WORDS = PAGE_SIZE * 8 // 64 + 1


def mask_words(nbits: int) -> int:
    return (nbits + 63) // 64


def maxnode_for(nbits: int) -> int:
    """The ``maxnode`` that makes the kernel read ``nbits`` bits: one more."""
    return nbits + 1


def _mask_in(mask: int | None, maxnode: int) -> tuple["ctypes.Array[ctypes.c_ulong] | None", ctypes.c_void_p]:
    """A user buffer holding ``mask``, large enough for everything get_nodes() may read."""
    if mask is None:
        return None, ctypes.c_void_p(0)
    if mask < 0:
        raise ValueError("a nodemask cannot be negative")
    nwords = max(mask_words(mask.bit_length()), min(mask_words(max(maxnode - 1, 0) & U64), _MAX_READ_WORDS), 1)
    buf = (ctypes.c_ulong * nwords)(*[(mask >> (64 * i)) & U64 for i in range(nwords)])
    return buf, ctypes.c_void_p(ctypes.addressof(buf))


def _words_to_int(buf: Iterable[int]) -> int:
    v = 0
    for i, w in enumerate(buf):
        v |= w << (64 * i)
    return v


# ---------------------------------------------------------------------------
# the calls
# ---------------------------------------------------------------------------

def set_mempolicy(mode: int, mask: int | None, maxnode: int) -> None:
    """set_mempolicy(mode, nmask, maxnode) for the calling thread."""
    buf, ptr = _mask_in(mask, maxnode)
    _call("set_mempolicy", mode, ptr, maxnode)
    del buf


def get_mempolicy(mask_bits: int | None, maxnode: int, addr: int = 0, flags: int = 0,
                  want_mode: bool = True) -> tuple[int | None, int | None]:
    """get_mempolicy(&mode, nmask, maxnode, addr, flags).

    ``mask_bits``: size of the nodemask buffer in bits (rounded up to whole
    longs), or None for a NULL pointer.  Returns (the int written to
    ``*mode`` or None when ``want_mode`` is false, the buffer's contents).
    """
    mode = ctypes.c_int(0)
    mptr = ctypes.c_void_p(ctypes.addressof(mode)) if want_mode else ctypes.c_void_p(0)
    if mask_bits is None:
        buf, bptr = None, ctypes.c_void_p(0)
    else:
        buf = (ctypes.c_ulong * max(mask_words(mask_bits), 1))()
        bptr = ctypes.c_void_p(ctypes.addressof(buf))
    _call("get_mempolicy", mptr, bptr, maxnode, addr, flags)
    return (mode.value if want_mode else None), (None if buf is None else _words_to_int(buf))


def mbind(addr: int, length: int, mode: int, mask: int | None, maxnode: int, flags: int) -> None:
    """mbind(addr, len, mode, nmask, maxnode, flags)."""
    buf, ptr = _mask_in(mask, maxnode)
    _call("mbind", addr, length, mode, ptr, maxnode, flags)
    del buf


def set_mempolicy_home_node(start: int, length: int, home_node: int, flags: int = 0) -> None:
    """set_mempolicy_home_node(start, len, home_node, flags) (Linux 5.17+)."""
    _call("set_mempolicy_home_node", start, length, home_node, flags)


def migrate_pages(pid: int, maxnode: int, old: int | None, new: int | None) -> int:
    """migrate_pages(pid, maxnode, old_nodes, new_nodes): the number of pages not moved."""
    b1, p1 = _mask_in(old, maxnode)
    b2, p2 = _mask_in(new, maxnode)
    r = _call("migrate_pages", pid, maxnode, p1, p2)
    del b1, b2
    return r


def move_pages(pid: int, pages: list[int], nodes: list[int] | None, flags: int,
               status_fill: int = -(1 << 31)) -> tuple[int, list[int]]:
    """move_pages(pid, count, pages, nodes, status, flags): (result, status array).

    Entries of ``status`` the kernel did not write keep ``status_fill``.
    """
    n = len(pages)
    parr = (ctypes.c_void_p * max(n, 1))(*[p & U64 for p in pages])
    if nodes is not None:
        if len(nodes) != n:
            raise ValueError("pages and nodes differ in length")
        narr = (ctypes.c_int * max(n, 1))(*nodes)
        nptr = ctypes.c_void_p(ctypes.addressof(narr))
    else:
        narr, nptr = None, ctypes.c_void_p(0)
    sarr = (ctypes.c_int * max(n, 1))(*([status_fill] * max(n, 1)))
    r = _call("move_pages", pid, n, ctypes.c_void_p(ctypes.addressof(parr)), nptr,
              ctypes.c_void_p(ctypes.addressof(sarr)), flags)
    del narr
    return r, list(sarr)[:n]


def syscall(name: str, *args: int) -> int:
    """Any of the six calls by name with raw integer arguments (pointers as addresses)."""
    return _call(name, *args)


# ---------------------------------------------------------------------------
# address space (libc): mmap, munmap, mprotect, memfd_create
# ---------------------------------------------------------------------------

PROT_NONE, PROT_READ, PROT_WRITE = 0, 1, 2
MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS = 0x01, 0x02, 0x10, 0x20
MAP_FIXED_NOREPLACE = 0x100000
MAP_FAILED = U64


def mmap(addr: int, length: int, prot: int, flags: int, fd: int = -1, offset: int = 0) -> int:
    lib = _lib()
    lib.mmap.restype = ctypes.c_void_p
    lib.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                         ctypes.c_int, ctypes.c_long]
    ctypes.set_errno(0)
    r = lib.mmap(addr or None, length, prot, flags, fd, offset)
    if r is None and addr == 0 and flags & MAP_FIXED:
        return 0
    if r is None or r == MAP_FAILED:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return int(r)


def munmap(addr: int, length: int) -> None:
    lib = _lib()
    lib.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    ctypes.set_errno(0)
    if lib.munmap(addr or None, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def mprotect(addr: int, length: int, prot: int) -> None:
    lib = _lib()
    lib.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    ctypes.set_errno(0)
    if lib.mprotect(addr or None, length, prot) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def sched_getaffinity(pid: int = 0) -> set[int]:
    return set(os.sched_getaffinity(pid))


def sched_setaffinity(cpus: Iterable[int], pid: int = 0) -> None:
    os.sched_setaffinity(pid, cpus)
