"""/proc/<pid>/numa_maps (fs/proc/task_mmu.c): one line per VMA.

``show_numa_map`` prints the VMA's policy (the shared policy at the VMA's
first page for shmem, else ``vm_policy``, else the task policy captured when
the file was opened), the file, and counts of the resident pages found in
the page table: anon, dirty, mapped, mapmax, active and the per-node N<n>=.
The zero page is not counted.

Where the model differs: every resident page is on the active LRU list, so
``active=`` never appears; the trace format drops that field anyway.
"""

from __future__ import annotations

from mempolicy.alloc.mpol_alloc import alloc_pages
from mempolicy.core.sched_points import mmap_assert_locked
from mempolicy.core.mempolicy import mpol_cond_put, mpol_get, mpol_put, mpol_to_str
from mempolicy.scopes.mm import VMA, __get_vma_policy as _get_vma_policy_noref
from mempolicy.uapi import PAGE_SHIFT


def seq_path_escape(path: str, esc: str = "\n\t= \\") -> str:
    """seq_path(): escape the given characters as backslash and three octal digits."""
    return "".join(f"\\{ord(c):03o}" if c in esc else c for c in path)


def show_numa_map(kernel, task, vma: VMA, task_mempolicy) -> str:
    mmap_assert_locked(vma.mm)
    pol, _ = _get_vma_policy_noref(vma, vma.start)
    if pol is not None:
        buf = mpol_to_str(pol)
        mpol_cond_put(pol)
    else:
        buf = mpol_to_str(task_mempolicy)
    line = f"{vma.start:08x} {buf}"
    if vma.vm_file is not None:
        line += " file=" + seq_path_escape(vma.vm_file.path, "\n\t= ")
    pages, anon, dirty, mapmax, nodes = vma.mm.ptes.stats(
        vma.start >> PAGE_SHIFT, vma.end >> PAGE_SHIFT, kernel.topo.n_memory)
    if not pages:
        return line
    if anon:
        line += f" anon={anon}"
    if dirty:
        line += f" dirty={dirty}"
    if pages != anon and pages != dirty:
        line += f" mapped={pages}"
    if mapmax > 1:
        line += f" mapmax={mapmax}"
    for nid in kernel.topo.n_memory:
        if nodes.get(nid):
            line += f" N{nid}={nodes[nid]}"
    line += " kernelpagesize_kB=4"
    return line


def numa_maps(kernel, reader, task) -> list[str]:
    """The whole file as ``reader`` reads it for ``task``: m_start takes mmap_lock for
    reading and a reference on the task policy (hold_task_mempolicy)."""
    # proc_maps_open(): the numa_maps_private (8 KiB of per-node counters and
    # more) is a large kmalloc, i.e. an order-2 page allocation by the reader,
    # under its task policy unless the kernel takes the local node
    # (KernelVersion.kmalloc_large_mempolicy)
    if kernel.version.kmalloc_large_mempolicy:
        priv = alloc_pages(kernel, reader)
    else:
        priv = kernel.pages.alloc_pages(reader.numa_mem_id(), None, reader.mems_allowed)
    try:
        return _numa_maps(kernel, task)
    finally:
        if priv is not None:
            kernel.pages.free_page(priv)


def _numa_maps(kernel, task) -> list[str]:
    mm = task.mm
    mm.mmap_lock.read_lock()
    with task.alloc_lock:                       # hold_task_mempolicy
        task_mempolicy = task.get_task_policy()
        mpol_get(task_mempolicy)
    try:
        return [show_numa_map(kernel, task, vma, task_mempolicy) for vma in list(mm.vmas)]
    finally:
        mpol_put(task_mempolicy)                # release_task_mempolicy
        mm.mmap_lock.read_unlock()
