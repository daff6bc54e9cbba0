"""Shared policies: the per-inode range tree of shmem/tmpfs (mm/mempolicy.c, mm/shmem.c).

A ``SharedPolicy`` maps half-open page-offset ranges ``[start, end)`` to
policies; each ``SpNode`` owns its own copy, marked MPOL_F_SHARED.  Lookups
take a reference under the tree's read lock (the extra reference of the seed
document), which the user drops with ``mpol_cond_put``.  Ranges are never
coalesced, as in the kernel.

The kernel keeps an rbtree; the model keeps the nodes sorted by start in a
list and finds them by bisection (O(log n) lookups).
"""

from __future__ import annotations

import threading
from bisect import bisect_right

from mempolicy.core.mempolicy import (
    Mempolicy,
    mpol_dup,
    mpol_get,
    mpol_put,
)
from mempolicy.core.slab import PolicyCache
from mempolicy.uapi import MPOL_F_SHARED

MAX_LFS_FILESIZE_PAGES = (1 << 63) >> 12


class RWLock:
    """A reader-writer lock (``rwlock_t`` / ``mmap_lock``) that counts its holders."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.readers = 0
        self.writer = False
        self._cond = threading.Condition(threading.Lock())

    def read_lock(self) -> None:
        with self._cond:
            while self.writer:
                self._cond.wait()
            self.readers += 1

    def read_unlock(self) -> None:
        with self._cond:
            if self.readers <= 0:
                raise RuntimeError(f"{self.name}: read_unlock without read_lock")
            self.readers -= 1
            self._cond.notify_all()

    def write_lock(self) -> None:
        with self._cond:
            while self.writer or self.readers:
                self._cond.wait()
            self.writer = True

    def write_unlock(self) -> None:
        with self._cond:
            if not self.writer:
                raise RuntimeError(f"{self.name}: write_unlock without write_lock")
            self.writer = False
            self._cond.notify_all()


class SpNode:
    """``struct sp_node``: one range of a shared policy."""

    __slots__ = ("start", "end", "policy")

    def __init__(self, start: int, end: int, policy: Mempolicy) -> None:
        self.start = start
        self.end = end
        self.policy = policy

    def __repr__(self) -> str:
        return f"[{self.start},{self.end})={self.policy!r}"


class SharedPolicy:
    """``struct shared_policy``: the range tree and its rwlock."""

    def __init__(self, cache: PolicyCache, protocol: str = "current") -> None:
        self.nodes: list[SpNode] = []
        self._starts: list[int] = []
        self.lock = RWLock("sp->lock")
        self.cache = cache
        self.protocol = protocol

    # -- tree primitives (caller holds the lock) -----------------------------
    def sp_lookup(self, start: int, end: int) -> int | None:
        """Index of the first node intersecting [start, end), or None."""
        i = bisect_right(self._starts, start) - 1
        if i >= 0 and self.nodes[i].end > start:
            return i
        i += 1
        if i < len(self.nodes) and self.nodes[i].start < end:
            return i
        return None

    def sp_insert(self, new: SpNode) -> None:
        i = bisect_right(self._starts, new.start)
        self.nodes.insert(i, new)
        self._starts.insert(i, new.start)

    def sp_delete(self, i: int) -> None:
        n = self.nodes.pop(i)
        self._starts.pop(i)
        sp_free(n)

    def _set_start(self, i: int, start: int) -> None:
        self.nodes[i].start = start
        self._starts[i] = start

    # -- the kernel's operations ---------------------------------------------
    def mpol_shared_policy_lookup(self, idx: int) -> Mempolicy | None:
        """The policy at page ``idx`` with an extra reference, or None."""
        if not self.nodes:
            return None
        self.lock.read_lock()
        try:
            i = self.sp_lookup(idx, idx + 1)
            pol = None
            if i is not None:
                pol = self.nodes[i].policy
                mpol_get(pol)
        finally:
            self.lock.read_unlock()
        return pol

    def sp_alloc(self, start: int, end: int, pol: Mempolicy) -> SpNode:
        """A new node owning a copy of ``pol`` marked shared.

        The 2008 protocol stores ``pol`` itself, with a reference, and marks
        that very object shared.
        """
        if self.protocol == "2008":
            mpol_get(pol)
            newpol = pol
        else:
            newpol = mpol_dup(pol, self.cache)
        newpol.flags |= MPOL_F_SHARED
        return SpNode(start, end, newpol)

    def shared_policy_replace(self, start: int, end: int, new: SpNode | None) -> None:
        """Replace [start, end) by ``new`` (None: clear), trimming and splitting old ranges."""
        self.lock.write_lock()
        try:
            i = self.sp_lookup(start, end)
            while i is not None and i < len(self.nodes) and self.nodes[i].start < end:
                n = self.nodes[i]
                if n.start >= start:
                    if n.end <= end:
                        self.sp_delete(i)
                        continue
                    self._set_start(i, end)
                else:
                    if n.end > end:
                        # split in three: the kernel struct-copies the policy with refcnt 1
                        if self.protocol == "2008":
                            mpol_get(n.policy)
                            copy = n.policy
                        else:
                            copy = mpol_dup(n.policy, self.cache)
                        tail = SpNode(end, n.end, copy)
                        n.end = start
                        self.sp_insert(tail)
                        break
                    n.end = start
                i += 1
            if new is not None:
                self.sp_insert(new)
        finally:
            self.lock.write_unlock()

    def mpol_set_shared_policy(self, pgoff: int, npages: int, pol: Mempolicy | None) -> None:
        """Set ``pol`` (None: default) on pages [pgoff, pgoff + npages)."""
        new = self.sp_alloc(pgoff, pgoff + npages, pol) if pol is not None else None
        self.shared_policy_replace(pgoff, pgoff + npages, new)

    def mpol_free_shared_policy(self) -> None:
        """Drop every range (inode eviction)."""
        if not self.nodes:
            return
        self.lock.write_lock()
        try:
            while self.nodes:
                self.sp_delete(len(self.nodes) - 1)
        finally:
            self.lock.write_unlock()

    def ranges(self) -> list[tuple[int, int, Mempolicy]]:
        return [(n.start, n.end, n.policy) for n in self.nodes]


def sp_free(n: SpNode) -> None:
    mpol_put(n.policy)


class ShmemInode:
    """A shmem/tmpfs inode: size, page cache and shared policy.

    ``i_ino`` is the interleave bias (the k-th object made on a CPU has bias
    k once inode numbers are aligned, as the oracle arranges).
    """

    def __init__(self, kernel, i_ino: int, size_pages: int, path: str) -> None:
        self.kernel = kernel
        self.i_ino = i_ino
        self.size_pages = size_pages
        self.path = path
        self.pages: dict[int, object] = {}       # index -> Folio
        self.policy = SharedPolicy(kernel.policy_cache, kernel.protocol)
        self.users = 0                           # open files and mappings

    def get(self) -> None:
        self.users += 1

    def put(self) -> None:
        """Drop a user; the last one evicts the inode (memfds are unlinked)."""
        self.users -= 1
        if self.users == 0:
            for folio in self.pages.values():
                self.kernel.pages.free_page(folio.nid)
            self.pages.clear()
            self.policy.mpol_free_shared_policy()


class ShmemFile:
    """An open ``struct file`` on a shmem inode (a memfd, or /dev/zero for MAP_SHARED|MAP_ANONYMOUS)."""

    def __init__(self, inode: ShmemInode) -> None:
        self.inode = inode
        inode.get()

    @property
    def path(self) -> str:
        return self.inode.path
