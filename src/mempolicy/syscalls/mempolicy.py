"""The memory-policy system calls (mm/mempolicy.c): set_mempolicy, get_mempolicy,
mbind and set_mempolicy_home_node, with the kernel's argument decoding.

Each ``kernel_*`` function takes the raw arguments of the system call (user
nodemasks as Python ints, with ``None`` for a NULL pointer) and raises
``KernelError(errno)`` where the kernel returns ``-errno``, checking in the
kernel's order.  ``mempolicy.syscalls.api`` wraps them for Python users.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from mempolicy.alloc.fault import FaultSignal, do_user_addr_fault
from mempolicy.alloc.huge_memory import (
    HPAGE_PMD_ORDER,
    HugeFolio,
    alloc_huge_migration_target_by_mpol,
    folio_maybe_mapped_shared_huge,
    huge_folio_at,
    migrate_huge_folio_or_split,
)
from mempolicy.alloc.mpol_alloc import alloc_pages_mpol
from mempolicy.alloc.page_alloc import Folio
from mempolicy.alloc.swap import lru_batches
from mempolicy.core import sched_points as _chk
from mempolicy.core.mempolicy import (
    KernelError,
    Mempolicy,
    mpol_cond_put,
    mpol_dup,
    mpol_equal,
    mpol_get,
    mpol_new,
    mpol_put,
    mpol_set_nodemask,
    mpol_store_user_nodemask,
    sanitize_mpol_flags,
)
from mempolicy.core.nodemask import NODE_MASK_NONE, Nodemask
from mempolicy.scopes.cred import CAP_SYS_NICE, capable
from mempolicy.scopes.mm import VMA, __get_vma_policy as _get_vma_policy_noref, get_vma_policy
from mempolicy.scopes.pagetable import KIND_FILE, KIND_OBJ, KIND_ZERO
from mempolicy.uapi import (
    BITS_PER_LONG,
    MAX_NUMNODES,
    MPOL_BIND,
    MPOL_DEFAULT,
    MPOL_F_ADDR,
    MPOL_F_MEMS_ALLOWED,
    MPOL_F_NODE,
    MPOL_INTERLEAVE,
    MPOL_LOCAL,
    MPOL_MF_DISCONTIG_OK,
    MPOL_MF_INVERT,
    MPOL_MF_MOVE,
    MPOL_MF_MOVE_ALL,
    MPOL_MF_STRICT,
    MPOL_MF_VALID,
    MPOL_MODE_FLAGS,
    MPOL_PREFERRED_MANY,
    MPOL_WEIGHTED_INTERLEAVE,
    NO_INTERLEAVE_INDEX,
    PAGE_SHIFT,
    PAGE_SIZE,
    ULONG_MASK,
)

PAGE_MASK = ~(PAGE_SIZE - 1) & ULONG_MASK


def _err(e: int):
    raise KernelError(e)


# ---------------------------------------------------------------------------
# Nodemasks across the user boundary
# ---------------------------------------------------------------------------

def _word(mask: int, i: int) -> int:
    return (mask >> (64 * i)) & ULONG_MASK


def get_bitmap(mask: int, first_word: int, maxnode: int) -> int:
    """Read BITS_TO_LONGS(maxnode) words from word ``first_word`` and cut the last one."""
    nlongs = (maxnode + BITS_PER_LONG - 1) // BITS_PER_LONG
    v = (mask >> (64 * first_word)) & ((1 << (64 * nlongs)) - 1)
    if maxnode % BITS_PER_LONG:
        v &= (1 << (64 * (nlongs - 1) + maxnode % BITS_PER_LONG)) - 1
    return v


def get_nodes(nmask: int | None, maxnode: int) -> Nodemask:
    """Copy a user nodemask in: only ``maxnode - 1`` bits count; bits past MAX_NUMNODES must be 0."""
    maxnode = (maxnode - 1) & ULONG_MASK
    if maxnode == 0 or nmask is None:
        return NODE_MASK_NONE
    if maxnode > PAGE_SIZE * 8:
        _err(errno.EINVAL)
    while maxnode > MAX_NUMNODES:
        bits = min(maxnode, BITS_PER_LONG)
        t = get_bitmap(nmask, (maxnode - 1) // BITS_PER_LONG, bits)
        if maxnode - bits >= MAX_NUMNODES:
            maxnode -= bits
        else:
            maxnode = MAX_NUMNODES
            t &= ~((1 << (MAX_NUMNODES % BITS_PER_LONG)) - 1) & ULONG_MASK
        if t:
            _err(errno.EINVAL)
    return Nodemask(get_bitmap(nmask, 0, maxnode))


def copy_nodes_to_user(buf_bytes: int, maxnode: int, nodes: Nodemask, nr_node_ids: int) -> int:
    """Copy a nodemask out to a zeroed user buffer of ``buf_bytes`` bytes that ends at an
    unmapped page; returns the buffer's new contents (EFAULT past its end)."""
    copy = ((((maxnode - 1) & ULONG_MASK) + 63) & ULONG_MASK & ~63) // 8
    nbytes = (nr_node_ids + 63) // 64 * 8
    if copy > nbytes:
        if copy > PAGE_SIZE:
            _err(errno.EINVAL)
        if copy > buf_bytes:                         # clear_user runs into the unmapped page
            _err(errno.EFAULT)
        copy = nbytes
    if copy > buf_bytes:
        _err(errno.EFAULT)
    return nodes.bits & ((1 << (8 * copy)) - 1)


# ---------------------------------------------------------------------------
# set_mempolicy
# ---------------------------------------------------------------------------

def do_set_mempolicy(kernel, task, mode: int, flags: int, nodes: Nodemask) -> None:
    new = mpol_new(kernel.policy_cache, mode, flags, nodes)
    with task.alloc_lock:                               # task_lock(current)
        try:
            mpol_set_nodemask(new, nodes, task.mems_allowed, kernel.topo.n_memory)
        except KernelError:
            mpol_put(new)
            raise
        old = task.mempolicy
        task.mempolicy = new
        if _chk.sched is not None:
            _chk.sched.store("task", task, new)
        if new is not None and new.mode in (MPOL_INTERLEAVE, MPOL_WEIGHTED_INTERLEAVE):
            task.il_prev = MAX_NUMNODES - 1
            task.il_weight = 0
    mpol_put(old)


def kernel_set_mempolicy(kernel, task, mode: int, nmask: int | None, maxnode: int) -> int:
    mode, flags = sanitize_mpol_flags(mode, kernel.version)
    nodes = get_nodes(nmask, maxnode)
    do_set_mempolicy(kernel, task, mode, flags, nodes)
    return 0


# ---------------------------------------------------------------------------
# get_mempolicy
# ---------------------------------------------------------------------------

def get_policy_nodemask(kernel, pol: Mempolicy) -> Nodemask:
    if pol is kernel.default_policy or pol.mode == MPOL_LOCAL:
        return NODE_MASK_NONE
    return pol.nodes


def lookup_node(kernel, task, addr: int) -> int:
    """get_user_pages_fast() of one page for reading: faults it in, returns its node."""
    addr &= PAGE_MASK
    try:
        do_user_addr_fault(kernel, task, addr, write=False)
    except FaultSignal:
        return -errno.EFAULT
    return task.mm.ptes.nid(addr >> PAGE_SHIFT)


def do_get_mempolicy(kernel, task, addr: int, flags: int) -> tuple[int, Nodemask]:
    if flags & ~(MPOL_F_NODE | MPOL_F_ADDR | MPOL_F_MEMS_ALLOWED) & ULONG_MASK:
        _err(errno.EINVAL)
    if flags & MPOL_F_MEMS_ALLOWED:
        if flags & (MPOL_F_NODE | MPOL_F_ADDR):
            _err(errno.EINVAL)
        with task.alloc_lock:
            return 0, task.mems_allowed
    mm = task.mm
    pol = task.mempolicy
    if _chk.sched is not None:
        _chk.sched.load("task", task, pol)
    locked = False
    if flags & MPOL_F_ADDR:
        mm.mmap_lock.read_lock()
        locked = True
        vma = mm.vma_lookup(addr)
        if vma is None:
            mm.mmap_lock.read_unlock()
            _err(errno.EFAULT)
        pol, _ = _get_vma_policy_noref(vma, addr)
    elif addr:
        _err(errno.EINVAL)
    if pol is None:
        pol = kernel.default_policy
    pol_refcount = None
    try:
        if flags & MPOL_F_NODE:
            if flags & MPOL_F_ADDR:
                pol_refcount = pol
                mpol_get(pol)
                mm.mmap_lock.read_unlock()
                locked = False
                r = lookup_node(kernel, task, addr)
                if r < 0:
                    _err(-r)
                pval = r
            elif pol is task.mempolicy and pol.mode == MPOL_INTERLEAVE:
                pval = pol.nodes.next_in(task.il_prev)
            elif pol is task.mempolicy and pol.mode == MPOL_WEIGHTED_INTERLEAVE:
                pval = task.il_prev if task.il_weight else pol.nodes.next_in(task.il_prev)
            else:
                _err(errno.EINVAL)
        else:
            pval = MPOL_DEFAULT if pol is kernel.default_policy else pol.mode
            pval |= pol.flags & MPOL_MODE_FLAGS
        if mpol_store_user_nodemask(pol):
            nodes = pol.w
        else:
            nodes = get_policy_nodemask(kernel, pol)
        return pval, nodes
    finally:
        mpol_cond_put(pol)
        if locked:
            mm.mmap_lock.read_unlock()
        if pol_refcount is not None:
            mpol_put(pol_refcount)


def kernel_get_mempolicy(kernel, task, nmask_bytes: int | None, maxnode: int, addr: int,
                         flags: int) -> tuple[int, int | None]:
    """Returns (the int stored at ``*policy``, the mask buffer's contents or None).

    ``nmask_bytes`` is the size of the user's mask buffer (None: NULL).
    """
    if nmask_bytes is not None and maxnode < kernel.topo.nr_node_ids:
        _err(errno.EINVAL)
    pval, nodes = do_get_mempolicy(kernel, task, addr, flags)
    buf = None
    if nmask_bytes is not None:
        buf = copy_nodes_to_user(nmask_bytes, maxnode, nodes, kernel.topo.nr_node_ids)
    return pval, buf


# ---------------------------------------------------------------------------
# mbind
# ---------------------------------------------------------------------------

@dataclass
class QueuePages:
    nmask: Nodemask
    flags: int
    start: int
    end: int
    first: VMA | None = None
    nr_failed: int = 0


def user_range_end(start: int, length: int) -> int:
    """``end = start + PAGE_ALIGN(len)`` in unsigned long arithmetic; EINVAL if it wraps."""
    length = (length + PAGE_SIZE - 1) & PAGE_MASK
    end = (start + length) & ULONG_MASK
    if end < start:
        _err(errno.EINVAL)
    return end


def strictly_unmovable(flags: int) -> bool:
    return flags & (MPOL_MF_STRICT | MPOL_MF_MOVE | MPOL_MF_MOVE_ALL) == MPOL_MF_STRICT


def folio_maybe_mapped_shared(folio: Folio) -> bool:
    return folio.mapcount > 1


def queue_pages_range(kernel, mm, start: int, end: int, nmask: Nodemask, flags: int,
                      pagelist: list) -> int:
    """Walk [start, end): hole checks, then misplaced pages (node in ``nmask`` unless
    MPOL_MF_INVERT) queued on ``pagelist`` for migration.  Returns the number that
    could not be queued, or raises EFAULT (hole) / EIO (strict, misplaced)."""
    qp = QueuePages(nmask, flags, start, end)
    invert = bool(flags & MPOL_MF_INVERT)
    seen = set()
    for vma in mm.vmas_in(start, end):
        # queue_pages_test_walk
        if qp.first is None:
            qp.first = vma
            if not flags & MPOL_MF_DISCONTIG_OK and qp.start < vma.start:
                _err(errno.EFAULT)
        nxt = mm.find_vma(vma.end)
        if not flags & MPOL_MF_DISCONTIG_OK and vma.end < qp.end and (nxt is None or vma.end < nxt.start):
            _err(errno.EFAULT)
        if not flags & (MPOL_MF_STRICT | MPOL_MF_MOVE | MPOL_MF_MOVE_ALL):
            continue
        # queue_folios_pte_range
        lo = max(start, vma.start) >> PAGE_SHIFT
        hi = min(end, vma.end) >> PAGE_SHIFT
        pt = mm.ptes
        for vpn in _present_vpns(mm, lo, hi):
            if pt.kind(vpn) == KIND_ZERO:               # the zero page
                continue
            if (pt.nid(vpn) in nmask) == invert:
                continue
            if not flags & (MPOL_MF_MOVE | MPOL_MF_MOVE_ALL):
                qp.nr_failed += 1
                if strictly_unmovable(flags):
                    break
                continue
            huge = huge_folio_at(mm, vpn)
            if huge is not None:                        # queue_folios_pmd: the whole folio once
                if not flags & MPOL_MF_MOVE_ALL and folio_maybe_mapped_shared_huge(huge):
                    continue                            # migrate_folio_add: shared, not a failure
                if id(huge) not in seen:
                    seen.add(id(huge))
                    pagelist.append((huge, vma, huge.head << PAGE_SHIFT))
                continue
            folio = pt[vpn]
            if flags & MPOL_MF_MOVE_ALL or not folio_maybe_mapped_shared(folio):
                if id(folio) in seen:                   # already isolated: folio_isolate_lru fails
                    qp.nr_failed += 1
                    if strictly_unmovable(flags):
                        break
                    continue
                seen.add(id(folio))
                pagelist.append((folio, vma, vpn << PAGE_SHIFT))
        if qp.nr_failed and strictly_unmovable(flags):
            _err(errno.EIO)
    if qp.first is None:
        _err(errno.EFAULT)
    return qp.nr_failed


def _present_vpns(mm, lo: int, hi: int):
    """The vpns in [lo, hi) that have a pte, ascending (a page walk: mmap_lock held)."""
    _chk.mmap_assert_locked(mm)
    return list(mm.ptes.present(lo, hi))


def vma_replace_policy(kernel, vma: VMA, pol: Mempolicy | None) -> None:
    """Store a policy in a VMA: its own copy (or, in the 2008 protocol, ``pol`` itself
    with a reference), telling a shmem file through ``set_policy``."""
    _chk.vma_assert_write_locked(vma)
    if kernel.protocol == "2008":
        mpol_get(pol)
        new = pol
    else:
        new = mpol_dup(pol, kernel.policy_cache)
    inode = vma.inode
    if inode is not None:                                # shmem_set_policy
        inode.policy.mpol_set_shared_policy(vma.pgoff, vma.pages, new)
    old = vma.vm_policy
    vma.vm_policy = new
    if _chk.sched is not None:
        _chk.sched.store("vma", vma, new)
    mpol_put(old)


def mbind_range(kernel, mm, start: int, end: int, new: Mempolicy | None) -> None:
    """Apply ``new`` to every VMA in [start, end), splitting and merging as needed."""
    addr = start
    while True:
        vma = mm.find_vma(addr)
        if vma is None or vma.start >= end:
            return
        vmstart = max(start, vma.start)
        vmend = min(end, vma.end)
        if not mpol_equal(vma.vm_policy, new):
            vma = mm.vma_modify(vma, vmstart, vmend, new, vma.flags)
            vma_replace_policy(kernel, vma, new)
        addr = vma.end


def folio_pte_dirty(kernel, folio: Folio) -> bool:
    """Whether a pte that maps the page-cache ``folio`` is dirty: the rmap walk of
    try_to_migrate_one, which moves each pte's dirty bit to the folio (mm/rmap.c).

    :param folio: ``struct folio *`` of a shmem file (``folio.mapping`` its inode).
    """
    inode = folio.mapping
    for task in kernel.tasks.values():
        pt = task.mm.ptes
        for vma in task.mm.vmas:
            if vma.inode is not inode or not vma.pgoff <= folio.index < vma.pgoff + vma.pages:
                continue
            vpn = (vma.start >> PAGE_SHIFT) + folio.index - vma.pgoff
            if pt.kind(vpn) in (KIND_OBJ, KIND_FILE) and pt.is_dirty(vpn) and pt.get(vpn) is folio:
                return True
    return False


def migrate_folio_to(kernel, folio: Folio, nid: int | None) -> bool:
    """Move a page to node ``nid`` (None: the allocation failed)."""
    if nid is None:
        return False
    if folio.mapping is not None and not folio.dirty and folio_pte_dirty(kernel, folio):
        folio.dirty = True
    kernel.pages.free_page(folio.nid)
    folio.nid = nid
    return True


def do_mbind(kernel, task, start: int, length: int, mode: int, mode_flags: int,
             nmask: Nodemask, flags: int) -> int:
    mm = task.mm
    if flags & ~MPOL_MF_VALID & ULONG_MASK:
        _err(errno.EINVAL)
    if flags & MPOL_MF_MOVE_ALL and not capable(task, CAP_SYS_NICE):
        _err(errno.EPERM)
    if start & ~PAGE_MASK:
        _err(errno.EINVAL)
    if mode == MPOL_DEFAULT:
        flags &= ~MPOL_MF_STRICT
    end = user_range_end(start, length)
    if end == start:
        return 0
    new = mpol_new(kernel.policy_cache, mode, mode_flags, nmask)
    if new is None:
        flags |= MPOL_MF_DISCONTIG_OK
    if flags & (MPOL_MF_MOVE | MPOL_MF_MOVE_ALL):
        lru_batches(kernel).lru_add_drain_all()        # lru_cache_disable
    mm.mmap_lock.write_lock()
    pagelist: list = []
    err = 0
    nr_failed = 0
    try:
        try:
            mpol_set_nodemask(new, nmask, task.mems_allowed, kernel.topo.n_memory)
        except KernelError:
            mpol_put(new)
            raise
        try:
            nr_failed = queue_pages_range(kernel, mm, start, end, nmask,
                                          flags | MPOL_MF_INVERT, pagelist)
        except KernelError as e:
            err = e.errno
        else:
            mbind_range(kernel, mm, start, end, new)
        if not err and pagelist:
            target = new
            if target is None:
                target = task.get_task_policy()
                mpol_get(target)
                new = target
            base_ilx = 0
            if target.mode in (MPOL_INTERLEAVE, MPOL_WEIGHTED_INTERLEAVE):
                folio, vma, addr = pagelist[0]
                order = HPAGE_PMD_ORDER if isinstance(folio, HugeFolio) else 0
                vma = mm.vma_lookup(addr)
                if vma is not None and vma.end > start and vma.start < end:
                    pol, ilx = get_vma_policy(task, vma, addr, order)
                    mpol_cond_put(pol)
                    base_ilx = ilx - (folio.index >> order)
    finally:
        mm.mmap_lock.write_unlock()
    if not err and pagelist and not kernel.version.migration_matches_interleave:
        nr_failed |= migrate_by_new_page(kernel, task, mm, pagelist, start)
    elif not err and pagelist:
        failed = 0
        for folio, _vma, _addr in pagelist:
            if isinstance(folio, HugeFolio):          # alloc_migration_target_by_mpol, order 9
                ilx = base_ilx + (folio.index >> HPAGE_PMD_ORDER)
                if not migrate_huge_folio_or_split(
                        kernel, task, mm, folio,
                        alloc_huge_migration_target_by_mpol(kernel, task, new, ilx),
                        lambda: alloc_pages_mpol(kernel, task, new, ilx, task.numa_node_id())):
                    failed += 1
                continue
            nid = alloc_pages_mpol(kernel, task, new, base_ilx + folio.index, task.numa_node_id())
            if not migrate_folio_to(kernel, folio, nid):
                failed += 1
        nr_failed |= failed
    if nr_failed and flags & MPOL_MF_STRICT:
        err = errno.EIO
    mpol_put(new)
    if err:
        _err(err)
    return 0


def new_page_policy(task, mm, folio, order: int, start: int, qvma: VMA):
    """``new_page`` before 6.7: the VMA policy and interleave index where ``folio`` is
    mapped in the first VMA from ``start`` that maps it (``page_address_in_vma``:
    ``vma_address`` of its index, ``vm_start`` for a large folio that begins before the
    VMA); None when no VMA maps it (the kernel then takes the task policy)."""
    for vma in mm.vmas_in(start, 1 << 64):
        if vma.vm_file is not qvma.vm_file:           # another anon_vma or mapping
            continue
        if folio.index >= vma.pgoff:
            addr = vma.start + ((folio.index - vma.pgoff) << PAGE_SHIFT)
            if addr >= vma.end:
                continue
        elif order and folio.index + (1 << order) - 1 >= vma.pgoff:
            addr = vma.start
        else:
            continue
        return get_vma_policy(task, vma, addr, order)
    return None


def migrate_by_new_page(kernel, task, mm, pagelist: list, start: int) -> int:
    """``migrate_pages(&pagelist, new_page, ..., start)`` of mbind before 6.7
    (``migration_matches_interleave``): each folio goes where ``vma_alloc_folio``
    puts it at its address; returns how many failed."""
    failed = 0
    for folio, qvma, _addr in pagelist:
        order = HPAGE_PMD_ORDER if isinstance(folio, HugeFolio) else 0
        found = new_page_policy(task, mm, folio, order, start, qvma)
        if found is None:
            pol, ilx = task.get_task_policy(), NO_INTERLEAVE_INDEX
        else:
            pol, ilx = found
        if order:
            ok = migrate_huge_folio_or_split(
                kernel, task, mm, folio, alloc_huge_migration_target_by_mpol(kernel, task, pol, ilx),
                lambda: alloc_pages_mpol(kernel, task, pol, ilx, task.numa_node_id()))
        else:
            ok = migrate_folio_to(kernel, folio, alloc_pages_mpol(kernel, task, pol, ilx,
                                                                  task.numa_node_id()))
        mpol_cond_put(pol)
        failed += not ok
    return failed


def kernel_mbind(kernel, task, start: int, length: int, mode: int, nmask: int | None,
                 maxnode: int, flags: int) -> int:
    mode, mode_flags = sanitize_mpol_flags(mode, kernel.version)
    nodes = get_nodes(nmask, maxnode)
    return do_mbind(kernel, task, start, length, mode, mode_flags, nodes, flags & 0xFFFFFFFF)


# ---------------------------------------------------------------------------
# set_mempolicy_home_node
# ---------------------------------------------------------------------------

def sys_set_mempolicy_home_node(kernel, task, start: int, length: int, home_node: int,
                                flags: int) -> int:
    mm = task.mm
    if start & ~PAGE_MASK:
        _err(errno.EINVAL)
    if flags != 0:
        _err(errno.EINVAL)
    if home_node >= MAX_NUMNODES or home_node not in kernel.topo.online:
        _err(errno.EINVAL)
    end = user_range_end(start, length)
    if end == start:
        return 0
    err = errno.ENOENT
    mm.mmap_lock.write_lock()
    try:
        addr = start
        while True:
            vma = mm.find_vma(addr)
            if vma is None or vma.start >= end:
                break
            old = vma.vm_policy
            if old is None:
                addr = vma.end
                continue
            if old.mode not in (MPOL_BIND, MPOL_PREFERRED_MANY):
                err = errno.EOPNOTSUPP
                break
            new = mpol_dup(old, kernel.policy_cache)
            new.home_node = home_node
            vmstart = max(start, vma.start)
            vmend = min(end, vma.end)
            if not mpol_equal(vma.vm_policy, new):
                vma = mm.vma_modify(vma, vmstart, vmend, new, vma.flags)
                vma_replace_policy(kernel, vma, new)
            mpol_put(new)
            err = 0
            addr = vma.end
    finally:
        mm.mmap_lock.write_unlock()
    if err:
        _err(err)
    return 0
