"""NumPy arrays placed by memory policy, and a task policy for a block of code.

    from mempolicy.api import Policy
    from mempolicy.linux import arrays

    a = arrays.zeros((1024, 1024), policy=Policy.interleave("0-3"))
    arrays.page_nodes(a)                      # node of each page: 0 1 2 3 0 1 ...
    arrays.move_array(a, 1)                   # every page to node 1

    with arrays.thread_policy(Policy.bind([1])):
        b = numpy.ones(10**6)                 # allocated (first touched) on node 1

An array gets its own anonymous private mapping; the policy is applied with
mbind *before* the first touch, so each page is allocated where the policy
says when it is first written (``zeros`` writes every page at once).  NumPy
is imported only when these functions run.

The task policy set by ``thread_policy`` belongs to the calling thread, as
in the kernel; the previous policy (read with get_mempolicy) is restored on
exit.
"""

from __future__ import annotations

import ctypes
import mmap as _mmap
import threading
from contextlib import contextmanager

__all__ = ["empty", "zeros", "page_nodes", "move_array", "array_address", "thread_policy",
           "array_trace", "free"]

PAGE_SIZE = _mmap.PAGESIZE


def _system(system):
    if system is None:
        from mempolicy.linux import default_system

        return default_system()
    return system


def _np():
    try:
        import numpy
    except ImportError as e:            # pragma: no cover - numpy is optional
        raise ImportError("mempolicy.linux.arrays needs NumPy (pip install 'mempolicy[numpy]')") from e
    return numpy


def _address(buf) -> int:
    c = ctypes.c_char.from_buffer(buf)
    try:
        return ctypes.addressof(c)
    finally:
        del c


def empty(shape, dtype=float, policy=None, *, flags: int = 0, system=None):
    """An uninitialised array in a new anonymous mapping that has ``policy`` (mbind).

    ``flags`` are mbind's (``MbindFlag.STRICT``...).  Pages are allocated on first
    touch; use :func:`zeros` to place them all at once.
    """
    np = _np()
    dt = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64)) if np.ndim(shape) else int(shape)
    length = max(PAGE_SIZE, -(-count * dt.itemsize // PAGE_SIZE) * PAGE_SIZE)
    m = _mmap.mmap(-1, length, flags=_mmap.MAP_PRIVATE | _mmap.MAP_ANONYMOUS,
                   prot=_mmap.PROT_READ | _mmap.PROT_WRITE)
    if policy is not None:
        _system(system).mbind(_address(m), length, policy, flags)
    return np.frombuffer(m, dtype=dt, count=count).reshape(shape)


def zeros(shape, dtype=float, policy=None, *, flags: int = 0, system=None):
    """Like :func:`empty`, then every page is written once (first touch), so the
    whole array is placed now, by the policy."""
    a = empty(shape, dtype, policy, flags=flags, system=system)
    _bytes(a)[::PAGE_SIZE] = 0
    return a


def _mapping(a):
    base = a
    while getattr(base, "base", None) is not None and not isinstance(base, _mmap.mmap):
        base = base.base
    return base


def _bytes(a):
    np = _np()
    m = _mapping(a)
    if isinstance(m, _mmap.mmap):
        return np.frombuffer(m, dtype=np.uint8)
    return a.reshape(-1).view(np.uint8)


def array_address(a) -> tuple[int, int]:
    """(first byte, length in bytes) of the memory behind an array."""
    return a.__array_interface__["data"][0], a.nbytes


def _pages(a) -> list[int]:
    addr, n = array_address(a)
    first = addr - addr % PAGE_SIZE
    return list(range(first, addr + max(n, 1), PAGE_SIZE))


def page_nodes(a, system=None):
    """The node of each page of the array (move_pages query); -ENOENT for pages not
    yet touched, -EFAULT for pages still mapping the zero page."""
    np = _np()
    return np.array(_system(system).move_pages(_pages(a), None), dtype=np.int32)


def move_array(a, nodes, *, move_all: bool = False, system=None):
    """Move the array's pages to ``nodes`` (one node, or one per page); returns the
    status of each page (its node now, or -errno)."""
    from mempolicy.api import MbindFlag

    np = _np()
    pages = _pages(a)
    if isinstance(nodes, int):
        nodes = [nodes] * len(pages)
    nodes = [int(n) for n in nodes]
    flags = MbindFlag.MOVE_ALL if move_all else MbindFlag.MOVE
    return np.array(_system(system).move_pages(pages, nodes, flags), dtype=np.int32)


def free(a) -> None:
    """Unmap the array's memory now (the array must not be used afterwards)."""
    m = _mapping(a)
    if isinstance(m, _mmap.mmap):
        try:
            m.close()
        except BufferError:
            raise BufferError("other arrays still use this memory") from None


@contextmanager
def thread_policy(policy, system=None):
    """Set the calling thread's task policy for a block; restore the previous one after.

    The previous policy is read with get_mempolicy (mode, flags, nodes as the
    kernel reports them) and set back on exit, on the same thread.
    """
    s = _system(system)
    tid = threading.get_ident()
    old = s.get_mempolicy()
    s.set_mempolicy(policy)
    try:
        yield old
    finally:
        if threading.get_ident() != tid:        # pragma: no cover - misuse
            raise RuntimeError("thread_policy exited on another thread than it was entered")
        s.set_mempolicy(old)


def array_trace(nbytes: int, policy, topology) -> str:
    """The trace that replays what ``zeros(nbytes bytes, policy)`` then ``page_nodes``
    do (mmap, mbind before first touch, write every page, ask where each page is),
    for the model (``mempolicy trace run``) or real Linux under QEMU (``mempolicy trace oracle``)."""
    from mempolicy.api import Mode

    pages = max(1, -(-nbytes // PAGE_SIZE))
    lines = []
    for n in topology.nodes:
        lines.append(f"node {n.id} mem={n.mem_bytes >> 20}M cpus={len(n.cpus)}")
    for a in range(len(topology.nodes)):
        for b in range(a + 1, len(topology.nodes)):
            if topology.dist[a][b] != 20:
                lines.append(f"distance {a} {b} {topology.dist[a][b]}")
    lines.append(f"mmap A {pages}")
    if policy is not None and policy.mode != Mode.DEFAULT:
        name = policy.mode.name.lower()
        flags = "".join(f" {f}" for f, bit in (("static", 1 << 15), ("relative", 1 << 14),
                                               ("balancing", 1 << 13)) if policy.flags & bit)
        nodes = str(policy.nodes) or "-"
        lines.append(f"mbind A 0 {pages} {name} {nodes}{flags}")
    lines.append(f"touch A 0 {pages}")
    lines.append(f"where A 0 {pages}")
    return "\n".join(lines) + "\n"
