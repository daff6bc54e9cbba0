"""Process life cycle as it touches memory policy: fork, threads, exit, sched_setaffinity (kernel/fork.c).

fork gives the child a deep copy of the task policy (``mpol_dup``) and of
every VMA policy (``vma_dup_policy``), copies the parent's interleave state,
and copies the ptes of VMAs that have an anon_vma; the child's page-table
pages are allocated by the parent, under the parent's task policy.
"""

from __future__ import annotations

import errno

from mempolicy.alloc.fault import map_page, unmap_page
from mempolicy.alloc.huge_memory import copy_huge_pmds
from mempolicy.alloc.mpol_alloc import alloc_pages
from mempolicy.alloc.page_alloc import Folio
from mempolicy.alloc.swap import lru_batches
from mempolicy.core.mempolicy import KernelError, mpol_dup
from mempolicy.scopes.mm import MM, PGDIR_SHIFT, PMD_SHIFT, PUD_SHIFT, VMA, AnonVma, vma_dup_policy
from mempolicy.scopes.task import Task, mpol_put_task_policy
from mempolicy.syscalls.mman import free_pgtables, unmap_region
from mempolicy.uapi import PAGE_SHIFT

# Kernel allocations a fork makes under the parent's task policy besides the
# page tables of the trace's own mappings: the child's pgd and the page tables
# of the oracle runner's own text, data and stack, measured per kernel
# (KernelVersion.runner_fork_allocs; runner.c calls them RUNNER_FORK_PGTABLES).
# On 7.3 a fork made by a grandchild costs 12 or 13 from run to run
# (trace-format.md, section 4: such traces are not repeatable; the model takes
# the child's count).

# Kernel allocations a thread's clone() makes under the creator's task policy,
# (before, after) dup_task_struct copies the interleave state: the process's
# first thread (2 in all), and every later one.  Measured once on Linux 7.3 with
# the oracle; another run took one fewer (slab state decides), so traces do not
# read the round robin across a thread's creation (trace-format.md, section 5.7).
RUNNER_THREAD_ALLOCS = ((1, 1), (0, 1))


def sched_setaffinity(kernel, task: Task, cpu: int) -> int:
    """Pin ``task`` to one CPU."""
    if not kernel.topo.cpu_online(cpu) or cpu not in task.cpuset_cpus:
        raise KernelError(errno.EINVAL)           # no CPU left once the cpuset's are applied
    task.cpu = cpu
    return 0


def copy_process(kernel, parent: Task) -> Task:
    """fork(): a new process sharing nothing with the parent but page frames."""
    mm = MM(kernel)
    child = Task(kernel, kernel.alloc_pid(), mm, cpu=parent.cpu)
    depth = getattr(parent, "fork_depth", 0)
    child.fork_depth = depth + 1
    child.il_prev, child.il_weight = parent.il_prev, parent.il_weight
    child.mems_allowed = parent.mems_allowed
    child.cpus_allowed = parent.cpus_allowed
    child.cpuset_cpus = parent.cpuset_cpus
    child.cred = parent.cred                          # copy_creds: shared until changed
    mm.dumpable = parent.mm.dumpable                  # dup_mm keeps MMF_DUMPABLE
    with parent.alloc_lock:
        child.mempolicy = mpol_dup(parent.mempolicy, kernel.policy_cache)
    # dup_mm(): page tables of the runner's own memory, then of each copied VMA
    by_process, by_child = kernel.version.runner_fork_allocs
    for _ in range(by_child if depth else by_process):
        nid = alloc_pages(kernel, parent)
        child.runner_pgtables.append(nid)
    pmm = parent.mm
    pmm.mmap_lock.write_lock()                        # dup_mmap: mmap_write_lock(oldmm)
    mm.mmap_lock.write_lock()                         # mmap_write_lock_nested(mm, SINGLE_DEPTH_NESTING)
    try:
        _dup_mmap(kernel, parent, pmm, mm)
    finally:
        mm.mmap_lock.write_unlock()
        pmm.mmap_lock.write_unlock()
    lru_batches(kernel).runner_fork(parent.cpu, parent.pid, child.pid, depth > 0)
    kernel.tasks[child.pid] = child
    return child


def copy_thread(kernel, parent: Task) -> Task:
    """clone(CLONE_VM | CLONE_THREAD | ...): a new thread of ``parent``'s process.

    copy_process gives it the parent's mm (no copy, no page tables), a deep
    copy of the task policy (``mpol_dup``), and, as dup_task_struct copies the
    whole task_struct, the parent's ``il_prev``/``il_weight``, ``mems_allowed``,
    affinity and CPU.  The kernel allocates for the new task under the
    parent's task policy (RUNNER_THREAD_ALLOCS); the first thread of the
    process makes one allocation before dup_task_struct copies the
    interleave state, so the new thread's round robin is one step ahead.
    """
    first = not getattr(parent.mm, "threads_created", 0)
    parent.mm.threads_created = getattr(parent.mm, "threads_created", 0) + 1
    before, after = RUNNER_THREAD_ALLOCS[0] if first else RUNNER_THREAD_ALLOCS[1]
    pages = [alloc_pages(kernel, parent) for _ in range(before)]
    child = Task(kernel, kernel.alloc_pid(), parent.mm, cpu=parent.cpu)
    child.fork_depth = getattr(parent, "fork_depth", 0)
    child.il_prev, child.il_weight = parent.il_prev, parent.il_weight
    pages += [alloc_pages(kernel, parent) for _ in range(after)]
    child.runner_pgtables = pages
    child.mems_allowed = parent.mems_allowed
    child.cpus_allowed = parent.cpus_allowed
    child.cpuset_cpus = parent.cpuset_cpus
    child.cred = parent.cred
    with parent.alloc_lock:
        child.mempolicy = mpol_dup(parent.mempolicy, kernel.policy_cache)
    kernel.tasks[child.pid] = child
    return child


def exit_thread(kernel, task: Task) -> None:
    """What every exit() does for the task itself: the allocations made for it go
    and the task policy is put (``mpol_put_task_policy``).  A thread's exit stops
    here, the address space staying with the other threads; ``do_exit`` of a
    process ends with it."""
    for nid in task.runner_pgtables:
        if nid is not None:
            kernel.pages.free_page(nid)
    task.runner_pgtables.clear()
    mpol_put_task_policy(task)
    task.exited = True
    kernel.tasks.pop(task.pid, None)


def _dup_mmap(kernel, parent: Task, pmm: MM, mm: MM) -> None:
    """Copy each VMA with its own policy, and the ptes of VMAs with an anon_vma."""
    batches = lru_batches(kernel)
    for vma in pmm.vmas:
        new = VMA(mm, vma.start, vma.end, vma.pgoff, vma.flags, vma.vm_file)
        vma_dup_policy(kernel, vma, new)
        if vma.vm_file is not None:
            vma.vm_file.inode.get()
        mm.insert_vma(new)
        if vma.anon_vma is None:
            continue
        new.anon_vma = AnonVma()                      # anon_vma_fork: the parent's chain, then its own
        new.anon_vma_chain = vma.anon_vma_chain + (new.anon_vma,)
        for shift in (PGDIR_SHIFT, PUD_SHIFT, PMD_SHIFT):
            for idx in range(vma.start >> shift, ((vma.end - 1) >> shift) + 1):
                if idx in pmm.pgtables[shift] and idx not in mm.pgtables[shift]:
                    mm.pgtables[shift][idx] = alloc_pages(kernel, parent)
        lo, hi = vma.start >> PAGE_SHIFT, vma.end >> PAGE_SHIFT
        batched = batches.vpns_of(pmm, lo, hi)
        for vpn in list(pmm.ptes.present(lo, hi)):
            page = pmm.ptes[vpn]
            if isinstance(page, Folio) and page.anon:
                page.anon_exclusive = False             # folio_try_dup_anon_rmap_pte
                if vpn in batched:
                    batches.adopt(pmm, vpn, page)
            map_page(mm, vpn, page, pmm.ptes.is_dirty(vpn))
        if getattr(pmm, "thp_folios", None):
            copy_huge_pmds(pmm, mm, lo, hi)


def do_exit(kernel, task: Task) -> None:
    """exit(): drop the address space, the page tables and the task policy.

    exit_mmap unmaps under mmap_read_lock, then frees page tables and VMAs
    (and their policies) under mmap_write_lock.
    """
    mm = task.mm
    if kernel.version.lru_drain_on_unmap:
        lru_batches(kernel).lru_add_drain(task.cpu)     # exit_mmap: lru_add_drain()
    mm.mmap_lock.read_lock()
    try:
        for vma in list(mm.vmas):
            unmap_region(kernel, mm, vma.start, vma.end)
        lru_batches(kernel).forget(mm, 0, 1 << 52)
    finally:
        mm.mmap_lock.read_unlock()
    mm.mmap_lock.write_lock()
    try:
        for vma in list(mm.vmas):
            mm.remove_vma(vma)
        for shift in (PMD_SHIFT, PUD_SHIFT, PGDIR_SHIFT):
            for nid in mm.pgtables[shift].values():
                if nid is not None:
                    kernel.pages.free_page(nid)
            mm.pgtables[shift].clear()
    finally:
        mm.mmap_lock.write_unlock()
    exit_thread(kernel, task)


__all__ = ["sched_setaffinity", "copy_process", "copy_thread", "exit_thread", "do_exit", "free_pgtables", "unmap_page"]
