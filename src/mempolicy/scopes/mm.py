"""The VMA scope: ``struct mm_struct`` and ``struct vm_area_struct`` (mm/vma.c, mm/mmap.c).

An address space is a sorted sequence of VMAs under ``mmap_lock`` (a
``RangeList``: O(log n) lookups, cheap inserts, where the kernel has a maple
tree), a page table (virtual page number -> resident page; a compact
``PageTable``, one byte per private page, see ``scopes.pagetable``) and the
page-table pages that hold it.  VMAs split when a call covers part of one (``split_vma``, each piece
getting its own copy of the policy through ``vma_dup_policy``) and merge
with a neighbour that has the same flags, file, contiguous offset,
compatible ``anon_vma`` and an equal policy (``mpol_equal``), as mm/vma.c
does.

``__get_vma_policy`` and ``get_vma_policy`` (mm/mempolicy.c) live here since
they read a VMA: a shmem VMA asks its inode's shared tree (taking a
reference); any other VMA returns ``vm_policy`` with no reference.
"""

from __future__ import annotations

import threading

from mempolicy.core import sched_points as _chk
from mempolicy.core.mempolicy import Mempolicy, mpol_dup, mpol_equal, mpol_put, mpol_rebind_policy
from mempolicy.core.rangelist import RangeList
from mempolicy.scopes.pagetable import DirtyView, PageTable
from mempolicy.scopes.shmem import RWLock, ShmemFile
from mempolicy.uapi import (
    MPOL_INTERLEAVE,
    MPOL_WEIGHTED_INTERLEAVE,
    PAGE_SHIFT,
)

VM_READ = 0x1
VM_WRITE = 0x2
VM_EXEC = 0x4
VM_SHARED = 0x8
VM_MAYREAD = 0x10
VM_MAYWRITE = 0x20
VM_MAYSHARE = 0x80

TASK_SIZE = 0x7FFFFFFFF000
PGDIR_SHIFT = 39
PUD_SHIFT = 30
PMD_SHIFT = 21


class AnonVma:
    """``struct anon_vma``: identity only, for the merge rules."""

    __slots__ = ()


class VMA:
    """``struct vm_area_struct``."""

    __slots__ = ("mm", "start", "end", "pgoff", "flags", "vm_file", "vm_policy", "anon_vma",
                 "anon_vma_chain")

    def __init__(self, mm, start: int, end: int, pgoff: int, flags: int,
                 vm_file: ShmemFile | None = None) -> None:
        self.mm = mm
        self.start = start
        self.end = end
        self.pgoff = pgoff
        self.flags = flags
        self.vm_file = vm_file
        self.vm_policy: Mempolicy | None = None
        self.anon_vma: AnonVma | None = None
        # the anon_vmas this VMA's anon_vma_chain links it to: its own last, those of
        # the VMAs it was forked from (anon_vma_fork) before it
        self.anon_vma_chain: tuple[AnonVma, ...] = ()

    def set_anon_vma(self, src: "VMA") -> None:
        """Take ``src``'s anon_vma and a copy of its chain (anon_vma_clone, dup_anon_vma)."""
        self.anon_vma = src.anon_vma
        self.anon_vma_chain = src.anon_vma_chain

    @property
    def pages(self) -> int:
        return (self.end - self.start) >> PAGE_SHIFT

    @property
    def inode(self):
        """The shmem inode behind the VMA (its vm_ops has get_policy/set_policy), or None."""
        return self.vm_file.inode if self.vm_file is not None else None

    @property
    def is_shared(self) -> bool:
        return bool(self.flags & VM_SHARED)

    def linear_page_index(self, addr: int) -> int:
        return self.pgoff + ((addr - self.start) >> PAGE_SHIFT)

    def __repr__(self) -> str:
        return f"<vma {self.start:#x}-{self.end:#x} pgoff={self.pgoff} pol={self.vm_policy!r}>"


def __get_vma_policy(vma: VMA, addr: int) -> tuple[Mempolicy | None, int]:
    """(policy, ilx) without fallback; a shared policy comes with a reference."""
    inode = vma.inode
    if inode is not None:                               # shmem_get_policy
        index = vma.linear_page_index(addr)
        return inode.policy.mpol_shared_policy_lookup(index), inode.i_ino
    pol = vma.vm_policy
    if _chk.sched is not None:
        _chk.sched.load("vma", vma, pol)
    return pol, 0


def get_vma_policy(task, vma: VMA, addr: int, order: int = 0) -> tuple[Mempolicy, int]:
    """The effective policy at ``addr`` and its interleave index; caller mpol_cond_put()s."""
    pol, ilx = __get_vma_policy(vma, addr)
    if not task.kernel.version.vma_ilx_inode_bias:
        ilx = 0                                 # interleave_nid(): vm_pgoff + offset only
    if pol is None:
        pol = task.get_task_policy()
    if pol.mode in (MPOL_INTERLEAVE, MPOL_WEIGHTED_INTERLEAVE):
        ilx += vma.pgoff >> order
        ilx += (addr - vma.start) >> (PAGE_SHIFT + order)
    return pol, ilx


def vma_dup_policy(kernel, src: VMA, dst: VMA) -> None:
    """Give ``dst`` its own copy of ``src``'s policy (split, fork)."""
    _chk.mmap_assert_write_locked(src.mm)
    pol = src.vm_policy
    if _chk.sched is not None:
        _chk.sched.load("vma", src, pol)
    dst.vm_policy = mpol_dup(pol, kernel.policy_cache)


def vma_is_fork_child(vma: VMA | None) -> bool:
    """Whether ``vma`` came from a parent by fork and may hold its CoW pages (mm/vma.c).

    Such a VMA's anon_vma_chain links more than its own anon_vma.

    >>> vma_is_fork_child(None)
    False
    """
    return vma is not None and vma.anon_vma is not None and len(vma.anon_vma_chain) != 1


def is_mergeable_anon_vma(src: VMA, tgt: VMA) -> bool:
    """mm/vma.c ``is_mergeable_anon_vma``: may range ``src`` join neighbour ``tgt``?

    One side without an anon_vma takes the other's (dup_anon_vma), unless the
    side that has one is a fork child; two anon_vmas must be the same one.
    Before v6.16 the neighbour's chain is the one tested (``list_is_singular(
    &tgt->anon_vma_chain)``), so a range with an anon_vma never joins a
    neighbour without one (``KernelVersion.merge_into_vma_without_anon_vma``).
    """
    if tgt.anon_vma is None and src.anon_vma is not None:
        if not tgt.mm.kernel.version.merge_into_vma_without_anon_vma:
            return False
        return not vma_is_fork_child(src)
    if tgt.anon_vma is not None and src.anon_vma is None:
        return not vma_is_fork_child(tgt)
    return src.anon_vma is tgt.anon_vma


def anon_vma_compatible(a: VMA, b: VMA) -> bool:
    """Whether ``b`` (just above ``a``) may share ``a``'s anon_vma."""
    return (a.end == b.start and mpol_equal(a.vm_policy, b.vm_policy)
            and a.vm_file is b.vm_file and (a.flags ^ b.flags) & ~(VM_READ | VM_WRITE | VM_EXEC) == 0
            and b.pgoff == a.pgoff + ((b.start - a.start) >> PAGE_SHIFT))


class MM:
    """``struct mm_struct``: VMAs, page table, page-table pages and mmap_lock."""

    def __init__(self, kernel) -> None:
        self.kernel = kernel
        self.vmas = RangeList()                    # the maple tree: VMAs by start
        self._last_vma: VMA | None = None          # vma_lookup's cache
        self.ptes = PageTable(kernel)              # vpn -> Folio | ZeroPage (compact, see pagetable)
        self.ptes.owner = self
        # page-table pages: level shift -> {index: node}
        self.pgtables: dict[int, dict[int, int]] = {PGDIR_SHIFT: {}, PUD_SHIFT: {}, PMD_SHIFT: {}}
        self.mmap_lock = RWLock("mmap_lock")
        self.page_table_lock = threading.Lock()    # populating page-table pages
        self.dumpable = 1                          # SUID_DUMP_USER; see scopes.cred.commit_creds

    @property
    def dirty_ptes(self) -> DirtyView:
        """The vpns whose pte is dirty, as a set-like view of the page table's dirty bits."""
        return self.ptes.dirty

    @property
    def _starts(self) -> list[int]:
        """The starts of the VMAs, in order (for checks)."""
        return [v.start for v in self.vmas]

    # -- lookup ----------------------------------------------------------------
    def find_vma(self, addr: int) -> VMA | None:
        """The first VMA ending above ``addr``."""
        vma = self.vmas.floor(addr)
        if vma is not None and vma.end > addr:
            return vma
        return self.vmas.after(addr)

    def vma_lookup(self, addr: int) -> VMA | None:
        """The VMA containing ``addr`` (the last one found is tried first, as the
        kernel's per-thread vmacache once did; every tree update forgets it)."""
        vma = self._last_vma
        if vma is not None and vma.start <= addr < vma.end:
            return vma
        vma = self.vmas.floor(addr)
        if vma is not None and vma.end > addr:
            self._last_vma = vma
            return vma
        return None

    def vmas_in(self, start: int, end: int) -> list[VMA]:
        """VMAs intersecting [start, end), in address order."""
        out = []
        for vma in self.vmas.iter_from(start):
            if vma.start >= end:
                break
            if vma.end > start:
                out.append(vma)
        return out

    def index_of(self, vma: VMA) -> int:
        return self.vmas.index(vma)

    def prev_vma(self, vma: VMA) -> VMA | None:
        return self.vmas.prev(vma)

    def next_vma(self, vma: VMA) -> VMA | None:
        return self.vmas.next(vma)

    # -- tree updates ----------------------------------------------------------
    def insert_vma(self, vma: VMA) -> None:
        _chk.mmap_assert_write_locked(self)
        self._last_vma = None
        self.vmas.add(vma)

    def unlink_vma(self, vma: VMA) -> None:
        _chk.mmap_assert_write_locked(self)
        self._last_vma = None
        self.vmas.remove(vma)

    def _restart(self, vma: VMA, start: int) -> None:
        _chk.mmap_assert_write_locked(self)
        self._last_vma = None
        self.vmas.rekey(vma, start)

    def remove_vma(self, vma: VMA) -> None:
        """Unlink and drop the VMA's policy and file."""
        self.unlink_vma(vma)
        mpol_put(vma.vm_policy)
        vma.vm_policy = None
        if vma.vm_file is not None:
            vma.vm_file.inode.put()

    def split_vma(self, vma: VMA, addr: int) -> VMA:
        """``__split_vma``: cut at ``addr``; returns the new upper piece."""
        _chk.vma_assert_write_locked(vma)
        if getattr(self, "thp_folios", None):          # vma_adjust_trans_huge
            from mempolicy.alloc.huge_memory import split_huge_pmd_address
            split_huge_pmd_address(self, addr)
        new = VMA(self, addr, vma.end, vma.pgoff + ((addr - vma.start) >> PAGE_SHIFT),
                  vma.flags, vma.vm_file)
        new.set_anon_vma(vma)
        vma_dup_policy(self.kernel, vma, new)
        if vma.vm_file is not None:
            vma.vm_file.inode.get()
        vma.end = addr
        self.insert_vma(new)
        return new

    @staticmethod
    def _mergeable(lower: VMA, upper: VMA, neighbour: VMA, policy: Mempolicy | None,
                   flags: int) -> bool:
        """is_mergeable_vma plus the anon_vma and offset rules: may ``lower`` and
        ``upper`` (adjacent) become one VMA, the range joining ``neighbour`` taking
        ``policy`` and ``flags``?"""
        if lower.end != upper.start or neighbour.flags != flags or upper.vm_file is not lower.vm_file:
            return False
        if not mpol_equal(neighbour.vm_policy, policy):
            return False
        if not is_mergeable_anon_vma(upper if neighbour is lower else lower, neighbour):
            return False
        return upper.pgoff == lower.pgoff + lower.pages

    def can_merge(self, a: VMA, b: VMA, policy: Mempolicy | None, flags: int) -> bool:
        """Whether ``b``'s range may join ``a`` just below, taking ``policy`` and ``flags``."""
        return self._mergeable(a, b, a, policy, flags)

    def merge_into_prev(self, prev: VMA, vma: VMA) -> None:
        """``prev`` absorbs the whole of ``vma``."""
        prev.end = vma.end
        if prev.anon_vma is None:
            prev.set_anon_vma(vma)
        self.remove_vma(vma)

    def vma_modify(self, vma: VMA, start: int, end: int, policy: Mempolicy | None,
                   flags: int) -> VMA:
        """Make [start, end) of ``vma`` one VMA with ``policy``/``flags``: merge with a
        neighbour when possible, else split (mm/vma.c vma_modify)."""
        _chk.vma_assert_write_locked(vma)
        if getattr(self, "thp_folios", None):          # vma_adjust_trans_huge
            from mempolicy.alloc.huge_memory import split_huge_pmd_address
            split_huge_pmd_address(self, start)
            split_huge_pmd_address(self, end)
        prev = self.prev_vma(vma)
        nxt = self.next_vma(vma)
        probe = VMA(self, start, end, vma.pgoff + ((start - vma.start) >> PAGE_SHIFT),
                    flags, vma.vm_file)
        probe.set_anon_vma(vma)
        merge_prev = start == vma.start and prev is not None and self.can_merge(prev, probe, policy, flags)
        merge_next = end == vma.end and nxt is not None and self._can_merge_next(probe, nxt, policy, flags)
        if merge_prev and merge_next and (prev.anon_vma is None or nxt.anon_vma is None
                                          or prev.anon_vma is nxt.anon_vma):
            self.merge_into_prev(prev, vma)
            self.merge_into_prev(prev, nxt)
            return prev
        if merge_prev:
            if end == vma.end:
                self.merge_into_prev(prev, vma)
            else:
                prev.end = end
                if prev.anon_vma is None:
                    prev.set_anon_vma(vma)
                vma.pgoff += (end - vma.start) >> PAGE_SHIFT
                self._restart(vma, end)
            return prev
        if merge_next:
            if start == vma.start:
                nxt_start_pgoff = vma.pgoff
                self.remove_vma(vma)
                nxt.pgoff = nxt_start_pgoff
                self._restart(nxt, start)
            else:
                vma.end = start
                nxt.pgoff -= (nxt.start - start) >> PAGE_SHIFT
                self._restart(nxt, start)
            if nxt.anon_vma is None:
                nxt.set_anon_vma(vma)
            return nxt
        if start > vma.start:
            vma = self.split_vma(vma, start)
        if end < vma.end:
            self.split_vma(vma, end)
        return vma

    def _can_merge_next(self, a: VMA, nxt: VMA, policy, flags: int) -> bool:
        """Whether range ``a`` (taking ``policy``/``flags``) may join ``nxt`` just above."""
        return self._mergeable(a, nxt, nxt, policy, flags)

    def find_mergeable_anon_vma(self, vma: VMA) -> AnonVma | None:
        """mm/rmap.c: an anon_vma a neighbour can lend (anon_vma_prepare), next first.

        ``reusable_anon_vma``: the neighbour must be compatible and its own chain
        singular; a parent's VMA still lends after a fork, a child's never does.
        """
        nxt = self.next_vma(vma)
        if nxt is not None and nxt.anon_vma is not None and len(nxt.anon_vma_chain) == 1 \
                and anon_vma_compatible(vma, nxt):
            return nxt.anon_vma
        prev = self.prev_vma(vma)
        if prev is not None and prev.anon_vma is not None and len(prev.anon_vma_chain) == 1 \
                and anon_vma_compatible(prev, vma):
            return prev.anon_vma
        return None

    def anon_vma_prepare(self, vma: VMA) -> None:
        """``__anon_vma_prepare``: a borrowed or new anon_vma, one chain link."""
        if vma.anon_vma is None:
            vma.anon_vma = self.find_mergeable_anon_vma(vma) or AnonVma()
            vma.anon_vma_chain = (vma.anon_vma,)


def mpol_rebind_mm(mm: MM, new) -> None:
    """Rebind every VMA policy of ``mm`` to a new cpuset, under mmap_write_lock."""
    mm.mmap_lock.write_lock()
    try:
        for vma in mm.vmas:
            _chk.vma_assert_write_locked(vma)           # vma_start_write()
            pol = vma.vm_policy
            if pol is not None and _chk.sched is not None:
                _chk.sched.modify(pol, "mpol_rebind_policy")
            mpol_rebind_policy(pol, new)
    finally:
        mm.mmap_lock.write_unlock()
