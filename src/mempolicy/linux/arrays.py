"""NumPy arrays placed by memory policy, and a task policy for a block of code.

    from mempolicy.api import Policy
    from mempolicy.linux import arrays

    a = arrays.zeros((1024, 1024), policy=Policy.interleave("0-3"))
    arrays.page_nodes(a)                      # node of each page: 0 1 2 3 0 1 ...
    arrays.move_array(a, 1)                   # every page to node 1

    with arrays.thread_policy("bind:1"):     # a Policy or a numactl-style string
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
from typing import TYPE_CHECKING, Any, Iterator, Sequence

if TYPE_CHECKING:
    from mempolicy.alloc.topology import Topology
    from mempolicy.api import MemorySystem, Policy, PolicyLike

__all__ = ["empty", "zeros", "page_nodes", "move_array", "array_address", "thread_policy",
           "array_trace", "free"]

PAGE_SIZE = _mmap.PAGESIZE

# The arrays are NumPy's, which carries no annotations worth checking here.
NDArray = Any
Shape = int | Sequence[int]


def _system(system: MemorySystem | None) -> MemorySystem:
    if system is None:
        from mempolicy.linux import default_system

        return default_system()
    return system


def _np() -> Any:
    try:
        import numpy
    except ImportError as e:            # pragma: no cover - numpy is optional
        raise ImportError("mempolicy.linux.arrays needs NumPy (pip install 'mempolicy[numpy]')") from e
    return numpy


class _Mapping:
    """An anonymous private mapping behind one or more arrays.

    Unmapped by :func:`free` at once, else when the last array over it goes
    (a Python ``mmap`` object cannot be closed while arrays still export its
    buffer, which is why the arrays do not use one).
    """

    def __init__(self, length: int) -> None:
        from mempolicy.linux import syscalls as sc

        self.length = length
        self.addr = sc.mmap(0, length, sc.PROT_READ | sc.PROT_WRITE,
                            sc.MAP_PRIVATE | sc.MAP_ANONYMOUS)

    def unmap(self) -> None:
        from mempolicy.linux import syscalls as sc

        if self.addr:
            addr, self.addr = self.addr, 0
            sc.munmap(addr, self.length)

    def __del__(self) -> None:
        try:
            self.unmap()
        except (OSError, ImportError, AttributeError):     # pragma: no cover - at shutdown
            pass


def empty(shape: Shape, dtype: Any = float, policy: PolicyLike | None = None, *, flags: int = 0,
          system: MemorySystem | None = None) -> NDArray:
    """An uninitialised array in a new anonymous mapping that has ``policy`` (mbind).

    ``flags`` are mbind's (``MbindFlag.STRICT``...).  Pages are allocated on first
    touch; use :func:`zeros` to place them all at once.  Example:
    ``empty(4096, "u1", "bind:0")``.
    """
    np = _np()
    dt = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64))
    length = max(PAGE_SIZE, -(-count * dt.itemsize // PAGE_SIZE) * PAGE_SIZE)
    owner = _Mapping(length)
    buf = (ctypes.c_char * length).from_address(owner.addr)
    setattr(buf, "_mempolicy_mapping", owner)   # the array's base keeps the mapping alive
    if policy is not None:
        _system(system).mbind(owner.addr, length, policy, flags)
    return np.frombuffer(buf, dtype=dt, count=count).reshape(shape)


def zeros(shape: Shape, dtype: Any = float, policy: PolicyLike | None = None, *, flags: int = 0,
          system: MemorySystem | None = None) -> NDArray:
    """Like :func:`empty`, then every page is written once (first touch), so the
    whole array is placed now, by the policy.  Example: ``zeros((1024, 1024), policy="interleave:0-3")``."""
    a = empty(shape, dtype, policy, flags=flags, system=system)
    _bytes(a)[::PAGE_SIZE] = 0
    return a


def _mapping(a: NDArray) -> _Mapping | None:
    base = a
    while base is not None:
        owner = getattr(base, "_mempolicy_mapping", None)
        if isinstance(owner, _Mapping):
            return owner
        base = getattr(base, "base", None)
    return None


def _bytes(a: NDArray) -> NDArray:
    np = _np()
    m = _mapping(a)
    if m is not None and m.addr:
        return np.frombuffer((ctypes.c_char * m.length).from_address(m.addr), dtype=np.uint8)
    return a.reshape(-1).view(np.uint8)


def array_address(a: NDArray) -> tuple[int, int]:
    """(first byte, length in bytes) of the memory behind an array.

    Example: ``addr, n = array_address(zeros(10))``.
    """
    return int(a.__array_interface__["data"][0]), int(a.nbytes)


def _pages(a: NDArray) -> list[int]:
    addr, n = array_address(a)
    first = addr - addr % PAGE_SIZE
    return list(range(first, addr + max(n, 1), PAGE_SIZE))


def page_nodes(a: NDArray, system: MemorySystem | None = None) -> NDArray:
    """The node of each page of the array (move_pages query); -ENOENT for pages not
    yet touched, -EFAULT for pages still mapping the zero page.

    Example: ``page_nodes(zeros(8192, "u1", "interleave:0-1"))`` -> ``array([0, 1, 0])``.
    """
    np = _np()
    return np.array(_system(system).move_pages(_pages(a), None), dtype=np.int32)


def move_array(a: NDArray, nodes: int | Sequence[int], *, move_all: bool = False,
               system: MemorySystem | None = None) -> NDArray:
    """Move the array's pages to ``nodes`` (one node, or one per page); returns the
    status of each page (its node now, or -errno).  Example: ``move_array(a, 1)``."""
    from mempolicy.api import MbindFlag

    np = _np()
    pages = _pages(a)
    targets = [nodes] * len(pages) if isinstance(nodes, int) else [int(n) for n in nodes]
    flags = MbindFlag.MOVE_ALL if move_all else MbindFlag.MOVE
    return np.array(_system(system).move_pages(pages, targets, flags), dtype=np.int32)


def free(a: NDArray) -> None:
    """Unmap the array's memory now: the mapping leaves /proc/self/maps at once.

    The array, and every view of it, must not be used afterwards (touching it
    is a segmentation fault, as after munmap in C).  Example: ``free(a)``.
    A second ``free`` does nothing; an array these functions did not make
    raises ValueError.
    """
    m = _mapping(a)
    if m is None:
        raise ValueError("not an array of mempolicy.linux.arrays (empty, zeros)")
    m.unmap()


@contextmanager
def thread_policy(policy: PolicyLike | None,
                  system: MemorySystem | None = None) -> Iterator[Policy]:
    """Set the calling thread's task policy for a block; restore the previous one after.

    Example: ``with thread_policy("bind:1"): b = numpy.ones(10**6)``.

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


def array_trace(nbytes: int, policy: PolicyLike | None, topology: Topology) -> str:
    """The trace that replays what ``zeros(nbytes bytes, policy)`` then ``page_nodes``
    do (mmap, mbind before first touch, write every page, ask where each page is),
    for the model (``mempolicy trace run``) or real Linux under QEMU (``mempolicy trace oracle``)."""
    from mempolicy.api import Mode, as_policy

    policy = None if policy is None else as_policy(policy)
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
