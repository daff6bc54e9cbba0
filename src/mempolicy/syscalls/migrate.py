"""Page migration system calls: migrate_pages (mm/mempolicy.c) and move_pages (mm/migrate.c).

The model moves a page by changing the node of its ``Folio``: every pte and
page-cache slot that maps it sees the move, as after a real migration.
Destination pages come from the page allocator with ``__GFP_THISNODE``.
"""

from __future__ import annotations

import errno

from mempolicy.alloc.huge_memory import (
    HugeFolio,
    alloc_huge_migration_target,
    folio_maybe_mapped_shared_huge,
    huge_folio_at,
    migrate_huge_folio_or_split,
)
from mempolicy.alloc.swap import lru_batches
from mempolicy.core import sched_points as _chk
from mempolicy.core.mempolicy import KernelError
from mempolicy.core.nodemask import Nodemask, bitmap_bitremap
from mempolicy.scopes.cred import CAP_SYS_NICE, PTRACE_MODE_READ_REALCREDS, capable, ptrace_may_access
from mempolicy.scopes.pagetable import ABSENT, KIND_ZERO
from mempolicy.syscalls.mempolicy import (
    _present_vpns,
    folio_maybe_mapped_shared,
    get_nodes,
    migrate_folio_to,
)
from mempolicy.uapi import MAX_NUMNODES, MPOL_MF_MOVE, MPOL_MF_MOVE_ALL, PAGE_SHIFT

INT_MAX = (1 << 31) - 1


def pages_by_node(mm) -> dict[int, list[int]]:
    """The vpns of ``mm``'s present pages (not the zero page) by node, each list in
    address order: one walk of the page table (caller holds mmap_lock)."""
    by: dict[int, list[int]] = {}
    pt = mm.ptes
    for vma in list(mm.vmas):
        for vpn in _present_vpns(mm, vma.start >> PAGE_SHIFT, vma.end >> PAGE_SHIFT):
            if pt.kind(vpn) != KIND_ZERO:
                by.setdefault(pt.nid(vpn), []).append(vpn)
    return by


def migrate_to_node(kernel, task, mm, source: int, dest: int, flags: int,
                    walk: dict | None = None) -> int:
    """Move every page of ``mm`` on ``source`` to ``dest``; returns the number not moved,
    or ``-ENOMEM`` when a target page could not be allocated (``migrate_pages``: when
    memory is low it stops at the first such page and the rest stay put).

    ``walk`` (a dict shared by the calls of one ``do_migrate_pages``) keeps the pages
    by node from the first call's walk, kept up to date here: the pages of
    ``source`` in address order are the ones a fresh walk would find, so the calls
    together walk the address space once, not once per source node."""
    failed = 0
    seen = set()
    queued = []
    mm.mmap_lock.read_lock()
    try:
        if walk is None:
            walk = {}
        if "by_node" not in walk:
            walk["by_node"] = pages_by_node(mm)
        by_node = walk["by_node"]
        vpns = by_node.pop(source, [])
        pt = mm.ptes
        for vpn in vpns:
            if pt.kind(vpn) in (ABSENT, KIND_ZERO) or pt.nid(vpn) != source:
                continue                            # changed by another thread meanwhile
            huge = huge_folio_at(mm, vpn)
            if huge is not None:                    # a large folio is isolated once, no failure
                if not flags & MPOL_MF_MOVE_ALL and folio_maybe_mapped_shared_huge(huge):
                    continue                        # migrate_folio_add: shared, not a failure
                if id(huge) not in seen:
                    seen.add(id(huge))
                    queued.append(huge)
                continue
            folio = pt[vpn]
            if flags & MPOL_MF_MOVE_ALL or not folio_maybe_mapped_shared(folio):
                if id(folio) in seen:               # isolated already: counts as not moved
                    failed += 1
                    continue
                seen.add(id(folio))
                queued.append(folio)
    finally:
        mm.mmap_lock.read_unlock()
    try:
        def alloc_small():
            return kernel.pages.alloc_pages(dest, None, task.mems_allowed, thisnode=True)

        for folio in queued:
            if isinstance(folio, HugeFolio):
                if not migrate_huge_folio_or_split(kernel, task, mm, folio,
                                                   alloc_huge_migration_target(kernel, task, dest),
                                                   alloc_small):
                    return -errno.ENOMEM
                continue
            if not migrate_folio_to(kernel, folio, alloc_small()):
                return -errno.ENOMEM
    finally:
        moved: dict[int, list[int]] = {}
        for vpn in vpns:                            # where each page is now
            if pt.kind(vpn) not in (ABSENT, KIND_ZERO):
                moved.setdefault(pt.nid(vpn), []).append(vpn)
        for nid, lst in moved.items():
            if nid in by_node:
                lst = sorted(by_node[nid] + lst)
            by_node[nid] = lst
    return failed


def do_migrate_pages(kernel, task, mm, from_: Nodemask, to: Nodemask, flags: int,
                     walk_once: bool = True) -> int:
    """Move pages between node sets keeping their relative placement.  ``walk_once``
    False walks the address space per source node, as the model once did (for the
    benchmark's before-and-after)."""
    lru_batches(kernel).lru_add_drain_all()            # lru_cache_disable
    nr_failed = 0
    tmp = from_
    # the pages by node, from the first walk; under the checker every source walks
    # afresh, as other tasks may fault or unmap between two sources
    walk: dict | None = {} if _chk.sched is None and walk_once else None
    while tmp:
        source, dest = -1, 0
        for s in tmp:
            if from_.weight() != to.weight() and s in to:
                continue
            d = bitmap_bitremap(s, from_, to)
            if s == d:
                continue
            source, dest = s, d
            if dest not in tmp:
                break
        if source == -1:
            break
        tmp = tmp.without_node(source)
        err = migrate_to_node(kernel, task, mm, source, dest, flags, walk)
        if err < 0:
            raise KernelError(-err)
        nr_failed += err
    return min(nr_failed, INT_MAX)


def kernel_migrate_pages(kernel, task, pid: int, maxnode: int, old_nodes: int | None,
                         new_nodes: int | None) -> int:
    old = get_nodes(old_nodes, maxnode)
    new = get_nodes(new_nodes, maxnode)
    target = task if pid == 0 else kernel.tasks.get(pid)
    if target is None:
        raise KernelError(errno.ESRCH)
    if not ptrace_may_access(task, target, PTRACE_MODE_READ_REALCREDS):
        raise KernelError(errno.EPERM)
    # Is the user allowed to access the target nodes?
    if not new.issubset(target.mems_allowed) and not capable(task, CAP_SYS_NICE):
        raise KernelError(errno.EPERM)
    new = new & task.mems_allowed
    if not new:
        raise KernelError(errno.EINVAL)
    flags = MPOL_MF_MOVE_ALL if capable(task, CAP_SYS_NICE) else MPOL_MF_MOVE
    return do_migrate_pages(kernel, task, target.mm, old, new, flags)


def do_pages_stat(kernel, mm, addrs: list[int]) -> list[int]:
    """The node of each page, or -EFAULT (no VMA, zero page) / -ENOENT (not present;
    see ``absent_page_error`` for older kernels)."""
    out = []
    for addr in addrs:
        vma = mm.vma_lookup(addr)
        if vma is None:
            out.append(-errno.EFAULT)
            continue
        vpn = addr >> PAGE_SHIFT
        kind = mm.ptes.kind(vpn)
        if kind == ABSENT:
            out.append(-absent_page_error(kernel, vma))
        elif kind == KIND_ZERO:
            out.append(-errno.EFAULT)
        else:
            out.append(mm.ptes.nid(vpn))
    return out


def absent_page_error(kernel, vma) -> int:
    """move_pages' status for a page ``vma`` does not map: ENOENT (``folio_walk_start``
    finds nothing).  Before v6.12 the lookup was ``follow_page(FOLL_DUMP)``, whose
    ``no_page_table`` gives EFAULT for a VMA a fault would fill with zeroes (an
    anonymous one) and NULL, so ENOENT, for a file or shmem VMA
    (``KernelVersion.follow_page_dump``)."""
    if vma.vm_file is None and kernel.version.follow_page_dump:
        return errno.EFAULT
    return errno.ENOENT


def add_folio_for_migration(mm, addr: int, node: int, migrate_all: bool, pagelist: list,
                            isolated: set | None = None):
    """(status, folio): 1 queued, 0 already there, or -errno.  ``isolated``: the ids of
    the folios on ``pagelist`` (a set, so that the check costs O(1))."""
    vma = mm.vma_lookup(addr)
    if vma is None:
        return -errno.EFAULT, None
    vpn = addr >> PAGE_SHIFT
    kind = mm.ptes.kind(vpn)
    if kind == ABSENT:
        return -absent_page_error(mm.kernel, vma), None
    if kind == KIND_ZERO:
        return -errno.EFAULT, None
    if mm.ptes.nid(vpn) == node:
        return 0, None
    huge = huge_folio_at(mm, vpn)
    if huge is not None:                                # the whole folio is isolated
        if mm.kernel.version.move_pages_shared_by_page_mapcount:
            shared = huge.pages is not None and mm.ptes[vpn].mapcount > 1
        else:
            shared = folio_maybe_mapped_shared_huge(huge)
        if shared and not migrate_all:
            return -errno.EACCES, None
        if (id(huge) in isolated) if isolated is not None else any(f is huge for _, f in pagelist):
            return -errno.EBUSY, None
        return 1, huge
    page = mm.ptes[vpn]
    if folio_maybe_mapped_shared(page) and not migrate_all:
        return -errno.EACCES, None
    if (id(page) in isolated) if isolated is not None else any(f is page for _, f in pagelist):
        return -errno.EBUSY, None                       # isolated already
    return 1, page


def do_pages_move(kernel, task, mm, task_nodes: Nodemask, addrs: list[int], nodes: list[int],
                  flags: int, isolated_set: bool = True) -> tuple[int, list[int | None]]:
    """Move each page to its node; returns (call result, status per page).
    ``isolated_set`` False searches the page list for each page, as the model once
    did (quadratic; for the benchmark's before-and-after)."""
    lru_batches(kernel).lru_add_drain_all()            # lru_cache_disable
    status: list[int | None] = [None] * len(addrs)
    pagelist: list = []
    isolated: set[int] = set()
    current_node = -1
    start = 0

    def flush(node: int, upto: int) -> int:
        if not pagelist:
            return 0
        def alloc_small():
            return kernel.pages.alloc_pages(node, None, task.mems_allowed, thisnode=True)

        for idx, folio in pagelist:
            if isinstance(folio, HugeFolio):
                ok = migrate_huge_folio_or_split(kernel, task, mm, folio,
                                                 alloc_huge_migration_target(kernel, task, node),
                                                 alloc_small)
            else:
                ok = migrate_folio_to(kernel, folio, alloc_small())
            if not ok:
                # migrate_pages_batch: no target page is -ENOMEM for the whole call;
                # pages after it are not tried and no status of this chunk is stored
                pagelist.clear()
                isolated.clear()
                return -errno.ENOMEM
        pagelist.clear()
        isolated.clear()
        for i in range(start, upto):
            status[i] = node
        return 0

    err = 0
    i = 0
    for i, (addr, node) in enumerate(zip(addrs, nodes)):
        if node < 0 or node >= MAX_NUMNODES or node not in kernel.topo.n_memory:
            err = -errno.ENODEV
            break
        if node not in task_nodes:
            err = -errno.EACCES
            break
        if current_node == -1:
            current_node, start = node, i
        elif node != current_node:
            r = flush(current_node, i)
            if r:
                return r, status
            start, current_node = i, node
        r, folio = add_folio_for_migration(mm, addr, current_node, bool(flags & MPOL_MF_MOVE_ALL),
                                           pagelist, isolated if isolated_set else None)
        if r > 0:
            pagelist.append((i, folio))
            isolated.add(id(folio))
            continue
        status[i] = r if r else current_node
        r = flush(current_node, i)
        if r:
            return r, status
        current_node = -1
    else:
        i = len(addrs)
    r = flush(current_node, i)
    if err >= 0:
        err = r
    return err, status


def kernel_move_pages(kernel, task, pid: int, addrs: list[int], nodes: list[int] | None,
                      flags: int) -> tuple[int, list[int | None]]:
    if flags & ~(MPOL_MF_MOVE | MPOL_MF_MOVE_ALL):
        raise KernelError(errno.EINVAL)
    if flags & MPOL_MF_MOVE_ALL and not capable(task, CAP_SYS_NICE):
        raise KernelError(errno.EPERM)
    # find_mm_struct(): pid 0 is the caller, unchecked
    target = task if pid == 0 else kernel.tasks.get(pid)
    if target is None:
        raise KernelError(errno.ESRCH)
    if pid != 0 and not ptrace_may_access(task, target, PTRACE_MODE_READ_REALCREDS):
        raise KernelError(errno.EPERM)
    mm = target.mm
    if nodes is None:
        return 0, do_pages_stat(kernel, mm, addrs)
    err, status = do_pages_move(kernel, task, mm, target.mems_allowed, addrs, nodes, flags)
    if err < 0:
        raise KernelError(-err)
    return err, status
