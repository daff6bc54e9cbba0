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

from mempolicy.alloc.mpol_alloc import alloc_pages, alloc_pages_mpol
from mempolicy.alloc.page_alloc import Folio, ZeroPage
from mempolicy.core.mempolicy import mpol_cond_put
from mempolicy.scopes.mm import PGDIR_SHIFT, PMD_SHIFT, PUD_SHIFT, VM_WRITE, VMA, get_vma_policy
from mempolicy.uapi import PAGE_SHIFT

FAULT_AROUND_PAGES = 16
PTRS_PER_PTE = 512


class FaultSignal(Exception):
    """A fatal fault: ``SIGSEGV`` or ``SIGBUS``."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.signame = name


class OutOfMemory(Exception):
    """No node could supply a page: the kernel would OOM-kill the task."""


def pgtable_alloc(kernel, task, mm, addr: int) -> None:
    """Allocate the PUD, PMD and PTE table pages ``addr`` still lacks."""
    for shift in (PGDIR_SHIFT, PUD_SHIFT, PMD_SHIFT):
        idx = addr >> shift
        tables = mm.pgtables[shift]
        if idx not in tables:
            nid = alloc_pages(kernel, task)
            if nid is None:
                raise OutOfMemory()
            tables[idx] = nid


def vma_alloc_folio(kernel, task, vma: VMA, addr: int) -> Folio:
    """A new anonymous page for ``addr`` under the VMA's effective policy."""
    pol, ilx = get_vma_policy(task, vma, addr)
    try:
        nid = alloc_pages_mpol(kernel, task, pol, ilx, task.numa_node_id())
    finally:
        mpol_cond_put(pol)
    if nid is None:
        raise OutOfMemory()
    folio = Folio(nid, anon=True, index=vma.linear_page_index(addr))
    kernel.stat_fault(pol)
    return folio


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
    finally:
        mpol_cond_put(pol)
    if nid is None:
        raise OutOfMemory()
    folio = Folio(nid, anon=False, mapping=inode, index=index)
    inode.pages[index] = folio
    kernel.stat_fault(pol)
    return folio


def shmem_get_folio(kernel, task, inode, index: int) -> Folio:
    folio = inode.pages.get(index)
    if folio is None:
        folio = shmem_alloc_folio(kernel, task, inode, index)
    return folio


def map_page(mm, vpn: int, page, dirty: bool) -> None:
    """Install a pte; ``dirty`` plays pte_dirty (kept on the pte set, see ``ptes_dirty``)."""
    mm.ptes[vpn] = page
    if isinstance(page, Folio):
        page.mapcount += 1
        if dirty:
            mm.dirty_ptes.add(vpn)


def unmap_page(kernel, mm, vpn: int) -> None:
    """Remove a pte; free an anonymous page nobody maps any more."""
    page = mm.ptes.pop(vpn, None)
    mm.dirty_ptes.discard(vpn)
    if isinstance(page, Folio):
        page.mapcount -= 1
        if page.mapcount == 0 and page.anon:
            kernel.pages.free_page(page.nid)


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


def handle_mm_fault(kernel, task, addr: int, write: bool) -> None:
    """Fault in the page at ``addr`` for a read or a write; FaultSignal when fatal."""
    mm = task.mm
    vma = mm.vma_lookup(addr)
    if vma is None:
        raise FaultSignal("SIGSEGV")
    if write and not vma.flags & VM_WRITE:
        raise FaultSignal("SIGSEGV")
    vpn = addr >> PAGE_SHIFT
    page = mm.ptes.get(vpn)
    if page is not None:
        if write:
            do_wp_page(kernel, task, vma, addr, page)
        return

    pgtable_alloc(kernel, task, mm, addr)
    inode = vma.inode
    if inode is None:                                   # do_anonymous_page
        if not write:
            map_page(mm, vpn, kernel.pages.zero_page, False)
            return
        mm.anon_vma_prepare(vma)
        map_page(mm, vpn, vma_alloc_folio(kernel, task, vma, addr), True)
        return

    index = vma.linear_page_index(addr)
    if index >= inode.size_pages:
        raise FaultSignal("SIGBUS")
    if not write:                                       # do_read_fault
        do_fault_around(mm, vma, addr)
        if vpn in mm.ptes:
            return
        map_page(mm, vpn, shmem_get_folio(kernel, task, inode, index), False)
        return
    if vma.is_shared:                                   # do_shared_fault
        folio = shmem_get_folio(kernel, task, inode, index)
        folio.dirty = True
        map_page(mm, vpn, folio, True)
        return
    # do_cow_fault: read the cache page, copy it to a new anonymous page
    shmem_get_folio(kernel, task, inode, index)
    mm.anon_vma_prepare(vma)
    map_page(mm, vpn, vma_alloc_folio(kernel, task, vma, addr), True)


def do_wp_page(kernel, task, vma: VMA, addr: int, page) -> None:
    """A write to a present pte: reuse, or copy on write."""
    mm = task.mm
    vpn = addr >> PAGE_SHIFT
    if isinstance(page, ZeroPage) or (not vma.is_shared and (not page.anon or page.mapcount > 1)):
        mm.anon_vma_prepare(vma)
        new = vma_alloc_folio(kernel, task, vma, addr)
        unmap_page(kernel, mm, vpn)
        map_page(mm, vpn, new, True)
        return
    if vma.is_shared:
        page.dirty = True
    mm.dirty_ptes.add(vpn)
