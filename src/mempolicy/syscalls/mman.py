"""Address-space system calls the traces use: mmap, munmap, mprotect, memfd_create.

Only what placement depends on is modelled: VMAs with their flags, files and
offsets (mm/mmap.c, mm/vma.c, mm/mprotect.c), the merging of a new mapping
with compatible neighbours, and the freeing of pages and page-table pages
on munmap.
"""

from __future__ import annotations

import errno

from mempolicy.alloc.fault import unmap_page
from mempolicy.alloc.huge_memory import VM_HUGEPAGE, VM_NOHUGEPAGE, thp_unmap_range
from mempolicy.alloc.mmu_gather import MmuGather
from mempolicy.alloc.swap import lru_batches
from mempolicy.core.mempolicy import KernelError
from mempolicy.scopes.mm import (
    MM,
    PGDIR_SHIFT,
    PMD_SHIFT,
    PUD_SHIFT,
    TASK_SIZE,
    VM_MAYREAD,
    VM_MAYSHARE,
    VM_MAYWRITE,
    VM_READ,
    VM_SHARED,
    VM_WRITE,
    VMA,
)
from mempolicy.scopes.pagetable import KIND_ZERO
from mempolicy.scopes.shmem import ShmemFile, ShmemInode
from mempolicy.uapi import PAGE_SHIFT, PAGE_SIZE, ULONG_MASK

PAGE_MASK = ~(PAGE_SIZE - 1) & ULONG_MASK
MAX_LFS_FILESIZE = (1 << 63) - 1
VM_ACCOUNT = 0x00100000          # charged to the commit limit: private writable mappings


def _err(e: int):
    raise KernelError(e)


def memfd_create(kernel, task, name: str, size_pages: int) -> ShmemFile:
    """memfd_create(name) then ftruncate to ``size_pages`` pages; returns the open file.

    The inode (and so an inode number, the interleave bias) exists before
    ftruncate runs: a failed ftruncate raises ``MemfdSizeError`` carrying the
    file, which stays open with size 0.
    """
    inode = ShmemInode(kernel, kernel.next_shmem_ino(task.cpu), 0, f"/memfd:{name} (deleted)")
    file = ShmemFile(inode)
    length = size_pages * PAGE_SIZE
    if length > MAX_LFS_FILESIZE:          # a negative loff_t
        raise MemfdSizeError(errno.EINVAL, file)
    inode.size_pages = size_pages
    return file


class MemfdSizeError(KernelError):
    """ftruncate of a new memfd failed; ``file`` is the memfd, still open."""

    def __init__(self, err: int, file: ShmemFile) -> None:
        super().__init__(err)
        self.file = file


# The process's own stack (ASLR off) sits below TASK_SIZE; the model keeps no VMA
# for it but a fixed mapping over it fails as on Linux.
RUNNER_STACK_START = 0x7FFFFFFDE000


def file_mmap_ok(pgoff: int, length: int) -> bool:
    """Whether [pgoff, pgoff + length) fits in a file's maximum size (MAX_LFS_FILESIZE)."""
    maxsize = MAX_LFS_FILESIZE
    if length > maxsize:
        return False
    maxsize -= length
    return pgoff <= maxsize >> PAGE_SHIFT


def sys_mmap(kernel, task, addr: int, length: int, shared: bool, file: ShmemFile | None,
             off_pages: int = 0) -> int:
    """mmap(addr, length, PROT_READ|PROT_WRITE, MAP_FIXED_NOREPLACE | ..., fd, off)."""
    mm: MM = task.mm
    if length == 0:
        _err(errno.EINVAL)
    length = (length + PAGE_SIZE - 1) & PAGE_MASK
    if length == 0:
        _err(errno.ENOMEM)
    if file is not None and off_pages + (length >> PAGE_SHIFT) > ULONG_MASK:
        _err(errno.EOVERFLOW)
    if addr & ~PAGE_MASK:
        _err(errno.EINVAL)
    if length > TASK_SIZE or addr > TASK_SIZE - length:
        _err(errno.ENOMEM)
    end = addr + length
    if mm.vmas_in(addr, end) or end > RUNNER_STACK_START:
        _err(errno.EEXIST)
    if file is not None and not file_mmap_ok(off_pages, length):
        _err(errno.EOVERFLOW)
    flags = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE
    if shared:
        flags |= VM_SHARED | VM_MAYSHARE
    else:                                               # accountable_mapping()
        flags |= VM_ACCOUNT
    mm.mmap_lock.write_lock()
    try:
        if file is None and shared:                     # shmem_zero_setup
            inode = ShmemInode(kernel, kernel.next_shmem_ino(task.cpu), length >> PAGE_SHIFT,
                               "/dev/zero (deleted)")
            mm.insert_vma(VMA(mm, addr, end, 0, flags, ShmemFile(inode)))
            return addr
        pgoff = off_pages if file is not None else addr >> PAGE_SHIFT
        vma = VMA(mm, addr, end, pgoff, flags, file)
        if file is not None:
            file.inode.get()
        _insert_and_merge(mm, vma)
    finally:
        mm.mmap_lock.write_unlock()
    return addr


def _insert_and_merge(mm: MM, vma: VMA) -> None:
    """vma_merge_new_range: join a compatible neighbour instead of inserting."""
    prev = mm.find_vma(vma.start - 1) if vma.start else None
    if prev is not None and prev.end != vma.start:
        prev = None
    nxt = mm.find_vma(vma.end)
    if nxt is not None and nxt.start != vma.end:
        nxt = None
    can_prev = prev is not None and mm.can_merge(prev, vma, None, vma.flags)
    can_next = nxt is not None and mm._can_merge_next(vma, nxt, None, vma.flags)
    if can_prev and can_next and (prev.anon_vma is None or nxt.anon_vma is None
                                  or prev.anon_vma is nxt.anon_vma):
        prev.end = nxt.end
        if prev.anon_vma is None:
            prev.set_anon_vma(nxt)
        mm.remove_vma(nxt)
        _drop_file(vma)
    elif can_prev:
        prev.end = vma.end
        _drop_file(vma)
    elif can_next:
        nxt.pgoff = vma.pgoff
        mm._restart(nxt, vma.start)
        _drop_file(vma)
    else:
        mm.insert_vma(vma)


def _drop_file(vma: VMA) -> None:
    if vma.vm_file is not None:
        vma.vm_file.inode.put()


def free_pgtables(kernel, mm: MM, start: int, end: int, tlb: MmuGather | None = None) -> None:
    """Free page-table pages over [start, end) that no VMA uses any more."""
    for shift in (PMD_SHIFT, PUD_SHIFT, PGDIR_SHIFT):
        tables = mm.pgtables[shift]
        size = 1 << shift
        for idx in range(start >> shift, ((end - 1) >> shift) + 1):
            if idx in tables and not mm.vmas_in(idx * size, (idx + 1) * size):
                if tlb is not None:
                    tlb.remove_table()
                kernel.pages.free_page(tables.pop(idx))


def unmap_region(kernel, mm: MM, start: int, end: int, tlb: MmuGather | None = None) -> None:
    """Drop the ptes of [start, end), gathering the freed pages in ``tlb``.

    Page by page while the gather may still need a batch page (an allocation
    that moves the task's interleave round robin), then the rest at once.
    """
    lo, hi = start >> PAGE_SHIFT, end >> PAGE_SHIFT
    pt = mm.ptes
    if tlb is not None and tlb.may_alloc():
        done = lo
        for vpn in pt.present(lo, hi):
            if not tlb.may_alloc():
                break
            if pt.kind(vpn) != KIND_ZERO:
                tlb.remove_page()
            unmap_page(kernel, mm, vpn)
            done = vpn + 1
        lo = done
    n = pt.unmap_range(kernel, lo, hi)
    if tlb is not None:
        tlb.remove_pages(n)


def do_vmi_munmap(kernel, task, mm: MM, start: int, end: int) -> None:
    tlb = MmuGather(kernel, task)
    vmas = []
    for vma in mm.vmas_in(start, end):
        if vma.start < start:
            vma = mm.split_vma(vma, start)
        if vma.end > end:
            mm.split_vma(vma, end)
        vmas.append(vma)
    if vmas and kernel.version.lru_drain_on_unmap:
        lru_batches(kernel).lru_add_drain(task.cpu)     # unmap_region: lru_add_drain()
    for vma in vmas:
        unmap_region(kernel, mm, vma.start, vma.end, tlb)
    lru_batches(kernel).forget(mm, start >> PAGE_SHIFT, end >> PAGE_SHIFT)
    for vma in vmas:
        mm.remove_vma(vma)
    if getattr(mm, "thp_folios", None):
        thp_unmap_range(mm, start, end)
    free_pgtables(kernel, mm, start, end, tlb)
    tlb.finish()


def sys_munmap(kernel, task, addr: int, length: int) -> int:
    mm = task.mm
    if addr & ~PAGE_MASK or length == 0:
        _err(errno.EINVAL)
    length = (length + PAGE_SIZE - 1) & PAGE_MASK
    if length == 0 or length > TASK_SIZE or addr > TASK_SIZE - length:
        _err(errno.EINVAL)
    mm.mmap_lock.write_lock()
    try:
        do_vmi_munmap(kernel, task, mm, addr, addr + length)
    finally:
        mm.mmap_lock.write_unlock()
    return 0


def sys_mprotect(kernel, task, start: int, length: int, writable: bool) -> int:
    """mprotect(start, length, PROT_READ [| PROT_WRITE])."""
    mm = task.mm
    if start & ~PAGE_MASK:
        _err(errno.EINVAL)
    if not length:
        return 0
    length = (length + PAGE_SIZE - 1) & PAGE_MASK
    end = start + length
    if end <= start or end > (1 << 64):
        _err(errno.ENOMEM)
    mm.mmap_lock.write_lock()
    try:
        vma = mm.find_vma(start)
        if vma is None or vma.start > start:
            _err(errno.ENOMEM)
        tmp = vma.start
        while vma is not None and vma.start < end:
            if vma.start != tmp:
                _err(errno.ENOMEM)
            newflags = (vma.flags & ~VM_WRITE) | (VM_WRITE if writable else 0)
            # mprotect_fixup: charge a private mapping made writable; uncharge an
            # anonymous one made read-only before any page gave it an anon_vma
            if newflags & VM_WRITE:
                if not vma.flags & (VM_ACCOUNT | VM_WRITE | VM_SHARED):
                    newflags |= VM_ACCOUNT
            elif vma.flags & VM_ACCOUNT and vma.vm_file is None and vma.anon_vma is None:
                newflags &= ~VM_ACCOUNT
            if newflags & VM_WRITE and not newflags & VM_MAYWRITE:
                _err(errno.EACCES)
            nstart = max(start, vma.start)
            vmend = min(end, vma.end)
            if newflags != vma.flags:
                vma = mm.vma_modify(vma, nstart, vmend, vma.vm_policy, newflags)
                vma.flags = newflags
            tmp = vma.end
            if tmp >= end:
                break
            vma = mm.find_vma(tmp)
        if tmp < end:
            _err(errno.ENOMEM)
    finally:
        mm.mmap_lock.write_unlock()
    return 0


MADV_HUGEPAGE = 14
MADV_NOHUGEPAGE = 15


def sys_madvise(kernel, task, start: int, length: int, advice: int) -> int:
    """madvise(start, length, MADV_HUGEPAGE | MADV_NOHUGEPAGE) (mm/madvise.c, hugepage_madvise):
    set one flag and clear the other on every VMA of the range, splitting and merging
    VMAs as mprotect does.  A hole in the range is ENOMEM after the VMAs around it
    are changed."""
    mm = task.mm
    if advice not in (MADV_HUGEPAGE, MADV_NOHUGEPAGE):
        _err(errno.EINVAL)
    if start & ~PAGE_MASK:
        _err(errno.EINVAL)
    length = (length + PAGE_SIZE - 1) & PAGE_MASK
    end = start + length
    if end < start or end > (1 << 64):
        _err(errno.EINVAL)
    if end == start:
        return 0
    unmapped = False
    mm.mmap_lock.write_lock()
    try:
        vma = mm.find_vma(start)
        if vma is None:
            _err(errno.ENOMEM)
        if vma.start > start:
            unmapped = True
        while vma is not None and vma.start < end:
            if advice == MADV_HUGEPAGE:
                newflags = (vma.flags & ~VM_NOHUGEPAGE) | VM_HUGEPAGE
            else:
                newflags = (vma.flags & ~VM_HUGEPAGE) | VM_NOHUGEPAGE
            nstart = max(start, vma.start)
            vmend = min(end, vma.end)
            if newflags != vma.flags:
                vma = mm.vma_modify(vma, nstart, vmend, vma.vm_policy, newflags)
                vma.flags = newflags
            tmp = vma.end
            if tmp >= end:
                break
            vma = mm.find_vma(tmp)
            if vma is not None and vma.start > tmp:
                unmapped = True
            if vma is None or vma.start >= end:
                unmapped = True
    finally:
        mm.mmap_lock.write_unlock()
    if unmapped:
        _err(errno.ENOMEM)
    return 0
