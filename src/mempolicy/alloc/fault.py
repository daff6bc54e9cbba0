"""The page-fault path (mm/memory.c, mm/shmem.c): where each touched page comes from.

``handle_mm_fault`` allocates missing page-table pages first (each one a
kernel allocation under the task policy with no interleave index, which is
what advances the task's interleave round robin), then the page:

* private anonymous memory: a read maps the shared zero page, a write
  allocates with the VMA policy (``vma_alloc_folio``, ilx = virtual page);
* shared memory: the inode's page cache; a missing page is allocated by
  ``shmem_alloc_folio`` with the shared policy at that index or else the
  task policy, ilx = inode bias + index;
* private file mappings: reads map the page-cache page, writes copy it to a
  new anonymous page under the VMA's (that is, the file's shared) policy.

Read faults on file mappings map up to 16 neighbouring pages that are
already cached (fault-around), as ``filemap_map_pages`` does.
"""

from __future__ import annotations

from mempolicy.alloc.huge_memory import (
    do_huge_pmd_anonymous_page,
    do_huge_zero_wp_pmd,
    thp_write_fault,
)
from mempolicy.alloc.mpol_alloc import alloc_pages, alloc_pages_mpol, offset_il_index
from mempolicy.alloc.page_alloc import Folio, PageAllocator
from mempolicy.alloc.swap import lru_batches
from mempolicy.core import sched_points as _chk
from mempolicy.core.mempolicy import mpol_cond_put
from mempolicy.scopes.mm import PGDIR_SHIFT, PMD_SHIFT, PUD_SHIFT, VM_WRITE, VMA, get_vma_policy
from mempolicy.scopes.pagetable import KIND_ANON, KIND_ZERO, kind_of
from mempolicy.uapi import MPOL_F_SHARED, MPOL_INTERLEAVE, MPOL_WEIGHTED_INTERLEAVE, PAGE_SHIFT

FAULT_AROUND_PAGES = 16
_IL_MODES = (MPOL_INTERLEAVE, MPOL_WEIGHTED_INTERLEAVE)
PTRS_PER_PTE = 512


class FaultSignal(Exception):
    """A fatal fault: ``SIGSEGV`` or ``SIGBUS``."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.signame = name


class OutOfMemory(Exception):
    """No node could supply a page: the kernel would OOM-kill the task."""


def do_anonymous_page(kernel, task, mm, vma: VMA, addr: int, vpn: int, write: bool) -> None:
    """A fault on a private anonymous page with no pte: a read maps the zero page, a
    write allocates with the VMA policy (``vma_alloc_folio``, ilx = virtual page).

    Without a checker the write takes the fast path: the allocation of
    ``vma_alloc_folio`` (the same policy, interleave index, node and counts) and
    the new page installed compactly with its LRU batch entry in one
    page-table call (``finish_fault`` and ``map_page`` would make a Folio only
    to store it as one byte).  The checker's path keeps every schedule point
    (``vma_alloc_folio``, ``finish_fault``).
    """
    if not write:
        finish_fault(kernel, mm, vpn, kernel.pages.zero_page, False)
        return
    if _chk.sched is not None or _chk.mutated or vma.pgoff != vma.start >> PAGE_SHIFT:
        mm.anon_vma_prepare(vma)
        finish_fault(kernel, mm, vpn, vma_alloc_folio(kernel, task, vma, addr), True)
        lru_batches(kernel).folio_add_lru(task.cpu, (mm, vpn))      # folio_add_lru_vma
        return
    if vma.anon_vma is None:
        mm.anon_vma_prepare(vma)
    pol = vma.vm_policy                                 # get_vma_policy, no reference
    if pol is None:
        pol = task.get_task_policy()
    pages = kernel.pages
    if pol.mode == MPOL_INTERLEAVE and type(pages) is PageAllocator:      # interleave_nid
        nodes = pol.nodes
        n = nodes.bits.bit_count()
        if n:
            nid = nodes.nth(offset_il_index(kernel, vma.pgoff + ((addr - vma.start) >> PAGE_SHIFT)) % n)
        else:                                           # interleave over no node
            nid = task.numa_node_id()
        nid = pages.alloc_pages(nid, None, task.mems_allowed)
    else:
        ilx = vma.pgoff + ((addr - vma.start) >> PAGE_SHIFT) if pol.mode in _IL_MODES else 0
        nid = alloc_pages_mpol(kernel, task, pol, ilx, task.numa_node_id())
    if nid is not None:
        stats = kernel.fault_stats                      # kernel.stat_fault
        stats["faults"] += 1
        if pol.flags & MPOL_F_SHARED:
            stats["shared"] += 1
    mpol_cond_put(pol)                                  # as vma_alloc_folio ends
    if nid is None:
        raise OutOfMemory()
    if not mm.ptes.map_new_anon(vpn, nid, kernel.lru_batches, task.cpu):     # another fault won
        pages.free_page(nid)


def pgtable_alloc(kernel, task, mm, addr: int) -> None:
    """Allocate the PUD, PMD and PTE table pages ``addr`` still lacks."""
    for shift in (PGDIR_SHIFT, PUD_SHIFT, PMD_SHIFT):
        idx = addr >> shift
        tables = mm.pgtables[shift]
        if idx not in tables:
            nid = alloc_pages(kernel, task)
            if nid is None:
                raise OutOfMemory()
            with mm.page_table_lock:            # __pte_alloc: another fault may have populated it
                if idx not in tables:
                    tables[idx] = nid
                    nid = None
            if nid is not None:
                kernel.pages.free_page(nid)


def vma_alloc_folio(kernel, task, vma: VMA, addr: int) -> Folio:
    """A new anonymous page for ``addr`` under the VMA's effective policy."""
    pol, ilx = get_vma_policy(task, vma, addr)
    try:
        nid = alloc_pages_mpol(kernel, task, pol, ilx, task.numa_node_id())
        if nid is not None:
            kernel.stat_fault(pol)
    finally:
        mpol_cond_put(pol)
    if nid is None:
        raise OutOfMemory()
    return Folio(nid, anon=True, index=vma.linear_page_index(addr))


def shmem_get_pgoff_policy(task, inode, index: int):
    """(policy, ilx) for page ``index`` of a shmem inode: shared policy else task policy."""
    pol = inode.policy.mpol_shared_policy_lookup(index)
    if pol is None:
        pol = task.get_task_policy()
    return pol, inode.i_ino + index


def shmem_alloc_folio(kernel, task, inode, index: int) -> Folio:
    """Allocate page ``index`` of a shmem inode into its page cache."""
    pol, ilx = shmem_get_pgoff_policy(task, inode, index)
    try:
        nid = alloc_pages_mpol(kernel, task, pol, ilx, task.numa_node_id())
        if nid is not None:
            kernel.stat_fault(pol)
    finally:
        mpol_cond_put(pol)
    if nid is None:
        raise OutOfMemory()
    folio = Folio(nid, anon=False, mapping=inode, index=index)
    with inode.i_pages_lock:                    # shmem_add_to_page_cache: -EEXIST if another fault won
        other = inode.pages.get(index)
        if other is None:
            inode.pages[index] = folio
    if other is not None:
        kernel.pages.free_page(nid)
        return other
    lru_batches(kernel).folio_add_lru(task.cpu, folio)
    return folio


def shmem_get_folio(kernel, task, inode, index: int) -> Folio:
    folio = inode.pages.get(index)
    if folio is None:
        folio = shmem_alloc_folio(kernel, task, inode, index)
    return folio


def finish_fault(kernel, mm, vpn: int, page, dirty: bool) -> None:
    """Install a faulted page's pte under the page-table lock, unless another fault of
    the same mm installed one first; then a new anonymous page goes back (the
    ``!pte_none()`` check of do_anonymous_page and finish_fault)."""
    with mm.page_table_lock:
        if vpn not in mm.ptes:
            map_page(mm, vpn, page, dirty)
            return
    if isinstance(page, Folio) and page.anon and page.mapcount == 0:
        kernel.pages.free_page(page.nid)


def map_page(mm, vpn: int, page, dirty: bool) -> None:
    """Install a pte; ``dirty`` plays pte_dirty (a bit of the page table's code byte).

    A new private anonymous page is kept compactly by the page table (see
    ``scopes.pagetable``); any other Folio gains a mapping.
    """
    mm.ptes.map(vpn, page, dirty)


def unmap_page(kernel, mm, vpn: int) -> bool:
    """Remove a pte; free an anonymous page nobody maps any more.  True if it mapped a Folio."""
    return mm.ptes.unmap(kernel, vpn)


def do_fault_around(mm, vma: VMA, addr: int) -> None:
    """Map the already-cached pages of the 16-page block around ``addr``."""
    inode = vma.inode
    pte_off = (addr >> PAGE_SHIFT) % PTRS_PER_PTE
    vma_off = (addr - vma.start) >> PAGE_SHIFT
    from_pte = max(pte_off - pte_off % FAULT_AROUND_PAGES, pte_off - min(pte_off, vma_off))
    to_pte = min(from_pte + FAULT_AROUND_PAGES, PTRS_PER_PTE, pte_off + vma.pages - vma_off) - 1
    base_vpn = (addr >> PAGE_SHIFT) - pte_off
    for p in range(from_pte, to_pte + 1):
        vpn = base_vpn + p
        if vpn in mm.ptes:
            continue
        index = vma.linear_page_index(vpn << PAGE_SHIFT)
        if index >= inode.size_pages:
            continue
        folio = inode.pages.get(index)
        if folio is not None:
            map_page(mm, vpn, folio, False)


def do_user_addr_fault(kernel, task, addr: int, write: bool) -> None:
    """A user page fault: handle_mm_fault under mmap_read_lock (lock_mm_and_find_vma).

    The kernel tries the per-VMA lock first; the model always takes mmap_lock
    for reading, which gives the same exclusion against mbind and exit.
    """
    mm = task.mm
    mm.mmap_lock.read_lock()
    try:
        handle_mm_fault(kernel, task, addr, write)
    finally:
        mm.mmap_lock.read_unlock()


def handle_mm_fault(kernel, task, addr: int, write: bool) -> None:
    """Fault in the page at ``addr`` for a read or a write; FaultSignal when fatal.

    The caller holds mmap_lock (do_user_addr_fault, get_user_pages).
    """
    mm = task.mm
    if _chk.sched is not None:                          # lockdep, with a checker only
        _chk.mmap_assert_locked(mm)
    vma = mm.vma_lookup(addr)
    if vma is None:
        raise FaultSignal("SIGSEGV")
    if write and not vma.flags & VM_WRITE:
        raise FaultSignal("SIGSEGV")
    vpn = addr >> PAGE_SHIFT
    code = mm.ptes.code(vpn)                            # ptes.kind(vpn) without a call when absent
    if code:
        kind = kind_of(code)
        if write:
            if getattr(mm, "thp_folios", None) and kind != KIND_ZERO:
                thp_write_fault(mm, vpn)
            if kind == KIND_ANON or vma.is_shared:
                # an exclusive private page is reused; a shared writable mapping's ptes
                # are all writable (no write notify for shmem), so the write does not
                # fault: the MMU dirties the pte, not the folio
                mm.ptes.set_dirty(vpn)
            elif not (kind == KIND_ZERO and kernel.thp is not None
                      and do_huge_zero_wp_pmd(kernel, task, vma, addr)):
                do_wp_page(kernel, task, vma, addr, mm.ptes.get(vpn))
        return

    if addr >> PMD_SHIFT not in mm.pgtables[PMD_SHIFT]:   # a PTE table implies its parents
        if kernel.thp is not None and do_huge_pmd_anonymous_page(kernel, task, vma, addr, write):
            return                                      # pmd_none: a huge page (huge_memory.py)
        pgtable_alloc(kernel, task, mm, addr)
    inode = vma.vm_file
    if inode is None:                                   # do_anonymous_page
        do_anonymous_page(kernel, task, mm, vma, addr, vpn, write)
        return

    inode = inode.inode
    index = vma.linear_page_index(addr)
    if index >= inode.size_pages:
        if not write:                                   # do_read_fault maps the cached pages
            do_fault_around(mm, vma, addr)              # around it, then shmem_fault fails
        elif not vma.is_shared:                         # do_cow_fault: vmf_anon_prepare comes
            mm.anon_vma_prepare(vma)                    # before __do_fault, so fork copies ptes
        raise FaultSignal("SIGBUS")
    if not write:                                       # do_read_fault
        do_fault_around(mm, vma, addr)
        if vpn in mm.ptes:
            return
        finish_fault(kernel, mm, vpn, shmem_get_folio(kernel, task, inode, index), False)
        return
    if vma.is_shared:                                   # do_shared_fault
        folio = shmem_get_folio(kernel, task, inode, index)
        folio.dirty = True                              # fault_dirty_shared_page
        finish_fault(kernel, mm, vpn, folio, True)
        return
    # do_cow_fault: read the cache page, copy it to a new anonymous page
    shmem_get_folio(kernel, task, inode, index)
    mm.anon_vma_prepare(vma)
    finish_fault(kernel, mm, vpn, vma_alloc_folio(kernel, task, vma, addr), True)
    lru_batches(kernel).folio_add_lru(task.cpu, (mm, vpn))


# References a page mapped by two processes has during a write fault besides its
# mappings and a batch's: measured on Linux 7.3, such a fault does not drain the
# local batch (the refcount test of wp_can_reuse_anon_folio already fails); the
# holder of the extra reference is not identified.
SHARED_FAULT_EXTRA_REFS = 1


def wp_can_reuse_anon_folio(kernel, task, folio: Folio) -> bool:
    """May a write reuse an anonymous page fork shared?  Only when its reference count
    is its mapcount; a per-CPU LRU batch holding it adds one, and for a page not on
    the LRU yet the local CPU's batch is drained first (mm/memory.c)."""
    batches = lru_batches(kernel)
    in_batch = batches.cpu_of(folio) is not None
    extra = SHARED_FAULT_EXTRA_REFS if folio.mapcount > 1 else 0
    if folio.mapcount + in_batch + extra > 3:
        return False
    if in_batch:
        batches.lru_add_drain(task.cpu)
        in_batch = batches.cpu_of(folio) is not None
    if folio.mapcount + in_batch != 1:
        return False
    folio.anon_exclusive = True                         # folio_move_anon_rmap
    return True


def do_wp_page(kernel, task, vma: VMA, addr: int, page) -> None:
    """A write to a present pte: reuse, or copy on write."""
    mm = task.mm
    vpn = addr >> PAGE_SHIFT
    if isinstance(page, Folio) and page.anon and (
            page.anon_exclusive or wp_can_reuse_anon_folio(kernel, task, page)):
        mm.dirty_ptes.add(vpn)                          # wp_page_reuse
        return
    if vma.is_shared:
        mm.dirty_ptes.add(vpn)
        return
    mm.anon_vma_prepare(vma)                            # wp_page_copy
    new = vma_alloc_folio(kernel, task, vma, addr)
    unmap_page(kernel, mm, vpn)
    map_page(mm, vpn, new, True)
    lru_batches(kernel).folio_add_lru(task.cpu, (mm, vpn))
