"""Shared policies: the per-inode range tree of shmem/tmpfs (mm/mempolicy.c, mm/shmem.c).

A ``SharedPolicy`` maps half-open page-offset ranges ``[start, end)`` to
policies; each ``SpNode`` owns its own copy, marked MPOL_F_SHARED.  Lookups
take a reference under the tree's read lock (the extra reference of the seed
document), which the user drops with ``mpol_cond_put``.  Ranges are never
coalesced, as in the kernel.

The kernel keeps an rbtree; the model keeps the nodes sorted by start in a
``RangeList`` (blocks of sorted lists): O(log n) lookups, and inserts and
erases that move at most a block of pointers.
"""

from __future__ import annotations

import threading

from mempolicy.core import sched_points as _chk
from mempolicy.core.mempolicy import (
    Mempolicy,
    mpol_dup,
    mpol_get,
    mpol_put,
)
from mempolicy.core.rangelist import RangeList
from mempolicy.scopes.pagecache import PageCache
from mempolicy.core.slab import PolicyCache
from mempolicy.uapi import MPOL_F_SHARED

MAX_LFS_FILESIZE_PAGES = (1 << 63) >> 12


class RWLock:
    """A reader-writer lock (``rwlock_t`` / ``mmap_lock``) that counts its holders.

    Readers take the fast path of ``down_read``: one entry appended to
    ``_fast`` is the kernel's atomic add of a reader bias (``list.append`` and
    ``pop`` are atomic in CPython), then a look at ``writer``; a writer sets
    ``writer`` first and then waits for ``_fast`` to drain, so one of the two
    always sees the other.  A reader that finds a writer backs its entry out
    and sleeps on the slow path (``_slow``).  Under the checker
    (``sched_points.sched`` set) acquire and release go to the controlled
    scheduler, which keeps ``readers`` and ``writer`` and blocks a task by
    running another one instead of blocking the thread.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._slow = 0                           # slow-path readers (and the checker's count)
        self.writer = False
        self._fast: list[None] = []              # fast-path readers: one entry each
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._waiters = 0                        # threads sleeping in _cond.wait()

    @property
    def readers(self) -> int:
        """How many readers hold the lock."""
        return self._slow + len(self._fast)

    @readers.setter
    def readers(self, n: int) -> None:
        self._slow = n - len(self._fast)

    def _wait(self) -> None:
        self._waiters += 1
        self._cond.wait()
        self._waiters -= 1

    def read_lock(self) -> None:
        """``down_read``."""
        if _chk.sched is not None:
            return _chk.sched.lock_acquire(self, "read")
        fast = self._fast
        fast.append(None)
        if not self.writer:
            return None
        fast.pop()                               # rwsem_down_read_slowpath
        with self._lock:
            self._cond.notify_all()              # the writer may wait for our entry to go
            while self.writer:
                self._wait()
            self._slow += 1
        return None

    def read_unlock(self) -> None:
        """``up_read``: a writer waiting for the readers to drain is woken."""
        if _chk.sched is not None:
            return _chk.sched.lock_release(self, "read")
        try:
            self._fast.pop()                     # readers are interchangeable: any entry
        except IndexError:
            with self._lock:
                if self._slow <= 0:
                    raise RuntimeError(f"{self.name}: read_unlock without read_lock") from None
                self._slow -= 1
                if self._waiters and not self._slow:
                    self._cond.notify_all()
            return None
        if self.writer:
            with self._lock:
                self._cond.notify_all()
        return None

    def write_lock(self) -> None:
        """``down_write``: wait for the writer and the slow readers, claim the lock,
        then wait for the fast readers already inside to leave."""
        if _chk.sched is not None:
            return _chk.sched.lock_acquire(self, "write")
        with self._lock:
            while self.writer or self._slow:
                self._wait()
            self.writer = True
            while self._fast:
                self._wait()
        return None

    def write_unlock(self) -> None:
        if _chk.sched is not None:
            return _chk.sched.lock_release(self, "write")
        with self._lock:
            if not self.writer:
                raise RuntimeError(f"{self.name}: write_unlock without write_lock")
            self.writer = False
            if self._waiters:
                self._cond.notify_all()


class SpinLock:
    """A ``spinlock_t`` (``task_lock()``'s alloc_lock), usable with ``with``.

    Under the checker acquire and release go to the controlled scheduler.
    """

    __slots__ = ("name", "locked", "_lock")

    def __init__(self, name: str) -> None:
        self.name = name
        self.locked = False
        self._lock = threading.Lock()

    def lock(self) -> None:
        if _chk.sched is not None:
            return _chk.sched.lock_acquire(self, "spin")
        self._lock.acquire()
        self.locked = True

    def unlock(self) -> None:
        if _chk.sched is not None:
            return _chk.sched.lock_release(self, "spin")
        if not self.locked:
            raise RuntimeError(f"{self.name}: unlock without lock")
        self.locked = False
        self._lock.release()

    def __enter__(self) -> "SpinLock":
        self.lock()
        return self

    def __exit__(self, *exc) -> None:
        self.unlock()


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
        self.nodes = RangeList()                 # SpNodes by start (the rbtree)
        self.lock = RWLock("sp->lock")
        self.cache = cache
        self.protocol = protocol

    @property
    def _starts(self) -> list[int]:
        """The starts of the ranges, in order (for checks)."""
        return [n.start for n in self.nodes]

    # -- tree primitives (caller holds the lock) -----------------------------
    def _lookup(self, start: int, end: int) -> SpNode | None:
        """The first node intersecting [start, end), or None (``sp_lookup``)."""
        n = self.nodes.floor(start)
        if n is not None and n.end > start:
            return n
        n = self.nodes.after(start)
        if n is not None and n.start < end:
            return n
        return None

    def sp_lookup(self, start: int, end: int) -> int | None:
        """Index of the first node intersecting [start, end), or None."""
        n = self._lookup(start, end)
        return None if n is None else self.nodes.index(n)

    def sp_insert(self, new: SpNode) -> None:
        _chk.lockdep_assert_held(self.lock, "write")
        self.nodes.add(new)
        if _chk.sched is not None:
            _chk.sched.store("shared", self, new.policy, new)

    def sp_delete(self, i: int) -> None:
        sp_free(self.nodes.pop(i))

    def _sp_delete_node(self, n: SpNode) -> None:
        _chk.lockdep_assert_held(self.lock, "write")
        self.nodes.remove(n)
        sp_free(n)

    def _set_start(self, n: SpNode, start: int) -> None:
        self.nodes.rekey(n, start)

    # -- the kernel's operations ---------------------------------------------
    def mpol_shared_policy_lookup(self, idx: int) -> Mempolicy | None:
        """The policy at page ``idx`` with an extra reference, or None."""
        if not self.nodes:
            return None
        self.lock.read_lock()
        try:
            n = self._lookup(idx, idx + 1)
            pol = None
            if n is not None:
                pol = n.policy
                if _chk.sched is not None:
                    _chk.sched.load("shared", self, pol, n)
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
        if _chk.sched is not None:
            _chk.sched.modify(newpol, "flags |= MPOL_F_SHARED")
        newpol.flags |= MPOL_F_SHARED
        return SpNode(start, end, newpol)

    def shared_policy_replace(self, start: int, end: int, new: SpNode | None) -> None:
        """Replace [start, end) by ``new`` (None: clear), trimming and splitting old ranges."""
        self.lock.write_lock()
        try:
            n = self._lookup(start, end)
            while n is not None and n.start < end:
                nxt = self.nodes.next(n)
                if n.start >= start:
                    if n.end <= end:
                        self._sp_delete_node(n)
                        n = nxt
                        continue
                    self._set_start(n, end)
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
                n = nxt
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
        self.pages = PageCache(self)             # index -> Folio (compact, see pagecache)
        self.policy = SharedPolicy(kernel.policy_cache, kernel.protocol)
        self.users = 0                           # open files and mappings
        self.i_pages_lock = threading.Lock()     # the page cache's xa_lock

    def get(self) -> None:
        with self.i_pages_lock:                  # an atomic count (i_count, f_count)
            self.users += 1

    def put(self) -> None:
        """Drop a user; the last one evicts the inode (memfds are unlinked)."""
        with self.i_pages_lock:
            self.users -= 1
            last = self.users == 0
        if last:
            pages = self.kernel.pages
            for nid, cnt in self.pages.node_counts().items():
                if hasattr(pages, "free_pages"):
                    pages.free_pages(nid, cnt)
                else:
                    for _ in range(cnt):
                        pages.free_page(nid)
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
