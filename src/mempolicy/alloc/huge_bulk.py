"""The bulk path of transparent huge pages: many 2 MiB ranges faulted by one touch.

``alloc/bulk.py`` places small pages in vectorised steps; this module does
the same for the PMD-sized folios of ``alloc/huge_memory.py`` (design and
invariant: docs/scale.md, "Huge pages").
"""

from __future__ import annotations

from mempolicy.alloc.huge_memory import (
    HPAGE_PMD_NR,
    HPAGE_PMD_ORDER,
    thp_folios,
    thp_vma_allowable_order,
)
from mempolicy.alloc.mpol_alloc import policy_nodemask
from mempolicy.alloc.page_alloc import PageAllocator
from mempolicy.alloc.swap import lru_batches
from mempolicy.core.mempolicy import mpol_cond_put
from mempolicy.scopes.mm import PGDIR_SHIFT, PMD_SHIFT, PUD_SHIFT, VM_WRITE, VMA, get_vma_policy
from mempolicy.uapi import (
    MPOL_INTERLEAVE,
    MPOL_PREFERRED_MANY,
    MPOL_WEIGHTED_INTERLEAVE,
    NO_INTERLEAVE_INDEX,
    PAGE_SHIFT,
)


def _bulk_pattern(kernel, task, pol, ilx0: int) -> tuple[list[list[int]], int] | None:
    """(candidate nodes of each huge page of one period, position of the first): the
    interleave target's zonelist, or the one node ``__GFP_THISNODE`` allows; None for
    the policies the bulk path leaves to the fault path (preferred-many)."""
    local = task.numa_node_id()
    zonelists = kernel.topo.zonelists
    mems = task.mems_allowed
    if pol.mode in (MPOL_INTERLEAVE, MPOL_WEIGHTED_INTERLEAVE):
        if pol.mode == MPOL_INTERLEAVE:
            pattern = list(pol.nodes)
        else:
            wi = kernel.wi_state
            pattern = [n for n in pol.nodes for _ in range(wi.get_il_weight(n))]
        if not pattern:
            return None
        cands = [[z for z in zonelists[n] if z in mems] for n in pattern]
    elif pol.mode == MPOL_PREFERRED_MANY:
        return None
    else:
        nid, nodemask = policy_nodemask(task, pol, ilx0, local, kernel.wi_state)
        if nid >= kernel.topo.nr_node_ids or (nodemask is not None and nid not in nodemask):
            return None
        cands = [[nid] if nid in kernel.topo.n_memory and nid in mems else []]
    return cands, ilx0 % len(cands)


def touch_huge_bulk(kernel, task, vma: VMA, c0: int, c1: int) -> int:
    """Write faults on the 2 MiB ranges ``c0`` .. ``c1 - 1`` (PMD indexes, all inside
    ``vma``, no page table below the PMD yet) in a few steps: the same huge pages,
    deposited tables, free pages and fault counts as ``do_huge_pmd_anonymous_page``
    range by range.  Returns how many ranges it placed, from ``c0``; the fault path
    does the rest.  Each step places huge pages while no node they go to runs out
    (a node that has run out sends its share down its zonelist in the next step);
    it stops where a huge page would fall back to small pages, and when the task
    policy would spread page tables (a round robin)."""
    from mempolicy.scopes.pagetable import ANON0, DIRTY, MAX_COMPACT_NID, _numpy

    np = _numpy()
    counter = kernel.pages
    pages = getattr(counter, "_inner", counter)
    if np is None or not isinstance(pages, PageAllocator) or c1 <= c0:
        return 0
    mm = task.mm
    lo, hi = c0 << HPAGE_PMD_ORDER, c1 << HPAGE_PMD_ORDER
    if any(True for _ in mm.ptes.present(lo, hi)):
        return 0
    deposits = mm.pgtables[PMD_SHIFT]
    if c1 - c0 <= len(deposits):
        taken = any(i in deposits for i in range(c0, c1))
    else:
        taken = any(c0 <= i < c1 for i in deposits)
    if taken:
        return 0
    tpol = task.get_task_policy()
    if tpol.mode in (MPOL_INTERLEAVE, MPOL_WEIGHTED_INTERLEAVE, MPOL_PREFERRED_MANY):
        return 0
    tnid, tmask = policy_nodemask(task, tpol, NO_INTERLEAVE_INDEX, task.numa_node_id(),
                                  kernel.wi_state)
    tnid = next((n for n in kernel.topo.zonelists[min(tnid, kernel.topo.nr_node_ids - 1)]
                 if (tmask is None or n in tmask) and n in task.mems_allowed), None)
    if tnid is None:
        return 0
    pol, ilx0 = get_vma_policy(task, vma, lo << PAGE_SHIFT, HPAGE_PMD_ORDER)
    try:
        got = _bulk_pattern(kernel, task, pol, ilx0)
        shared_pol = bool(pol.flags & 1)
    finally:
        mpol_cond_put(pol)
    if got is None:
        return 0
    cands, phase0 = got
    P = len(cands)
    free = pages.free
    c = c0
    while c < c1:
        actual = [next((z for z in cl if free[z] >= HPAGE_PMD_NR), None) for cl in cands]
        if None in actual or max(actual) > MAX_COMPACT_NID:
            break
        phase = (phase0 + c - c0) % P
        slots: dict[int, list[int]] = {}
        for k, n in enumerate(actual):
            slots.setdefault(n, []).append((k - phase) % P)   # offsets in the step, mod P
        first = c == c0
        a, b = c << HPAGE_PMD_ORDER << PAGE_SHIFT, c1 << HPAGE_PMD_ORDER << PAGE_SHIFT
        upper = [(shift, i) for shift in (PGDIR_SHIFT, PUD_SHIFT)
                 for i in range(a >> shift, ((b - 1) >> shift) + 1)
                 if i not in mm.pgtables[shift]] if first else []

        def need(n: int, k: int) -> int:
            """Pages node ``n`` gives for the first ``k`` ranges of this step."""
            full, rest = divmod(k, P)
            cnt = sum(full + (1 if off < rest else 0) for off in slots.get(n, ()))
            extra = k + len(upper) + 1 if n == tnid else 0       # deposited and upper tables
            return cnt * HPAGE_PMD_NR + extra

        with pages.lock:
            nodes = set(slots) | {tnid}
            lo_k, hi_k = 0, c1 - c                # the largest k with every node in budget
            while lo_k < hi_k:
                mid = (lo_k + hi_k + 1) // 2
                if all(need(n, mid) <= free[n] for n in nodes):
                    lo_k = mid
                else:
                    hi_k = mid - 1
            k = lo_k
            if k == 0:
                break
            taken = {n: need(n, k) - (k + len(upper) + 1 if n == tnid else 0) for n in slots}
            for n, cnt in taken.items():
                free[n] -= cnt
            free[tnid] -= k + len(upper)
        if vma.anon_vma is None:
            mm.anon_vma_prepare(vma)
        for shift, i in upper:
            mm.pgtables[shift][i] = tnid
        deposits.update(dict.fromkeys(range(c, c + k), tnid))
        codes = np.repeat(np.array([(ANON0 + n) | DIRTY for n in actual], dtype=np.uint8),
                          HPAGE_PMD_NR)
        s_lo = c << HPAGE_PMD_ORDER
        mm.ptes.fill_pattern(s_lo, s_lo + (k << HPAGE_PMD_ORDER), codes, phase * HPAGE_PMD_NR)
        nids = np.array(actual, dtype=np.int64)[(phase + np.arange(k, dtype=np.int64)) % P]
        thp_folios(mm, create=True).add_block(c, nids)   # HugeFolio objects when looked at
        kernel.fault_stats["faults"] += k
        if shared_pol:
            kernel.fault_stats["shared"] += k
        if counter is not pages and hasattr(counter, "add_bulk"):
            local = task.numa_node_id()
            prefs = np.array([cl[0] for cl in cands], dtype=np.int64)[
                (phase + np.arange(k, dtype=np.int64)) % P]
            pairs, cnts = np.unique(np.stack([nids, prefs]), axis=1, return_counts=True)
            for (n, pref), cnt in zip(pairs.T.tolist(), cnts.tolist()):
                counter.add_bulk(n, pref, local, cnt * HPAGE_PMD_NR, 0)
            counter.add_bulk(tnid, tnid, local, k + len(upper), 0)
        c += k
    if c > c0:
        lru_batches(kernel).lru_add_drain(task.cpu)
    return c - c0


def thp_touch_path(kernel, mm) -> bool:
    """Whether a touch must go through :func:`touch_range_thp`: THP on, or a huge zero
    PMD that a write would replace by a huge page."""
    thp = kernel.thp
    if thp is None:
        return False
    if thp.enabled != "never":
        return True
    folios = getattr(mm, "thp_folios", None)
    return bool(folios) and folios.has_huge_zero()


def touch_range_thp(kernel, task, addr: int, npages: int, write: bool, progress=None,
                    bulk: bool = True) -> None:
    """``touch_range`` while THP may apply: the 2 MiB ranges a write covers whole in an
    eligible VMA go through :func:`touch_huge_bulk` where it applies (``bulk``);
    every other page faults one by one, in ascending order (the same end state)."""
    from mempolicy.alloc.fault import do_user_addr_fault

    mm = task.mm
    vpn, end = addr >> PAGE_SHIFT, (addr >> PAGE_SHIFT) + npages
    done = 0
    while vpn < end:
        if bulk and write and not vpn & (HPAGE_PMD_NR - 1) and end - vpn >= 2 * HPAGE_PMD_NR:
            a = vpn << PAGE_SHIFT
            mm.mmap_lock.read_lock()
            try:
                vma = mm.vma_lookup(a)
                ok = (vma is not None and bool(vma.flags & VM_WRITE)
                      and thp_vma_allowable_order(kernel, vma, a))
                c1 = 0
                placed = 0
                if ok:
                    c1 = min(end, vma.end >> PAGE_SHIFT) >> HPAGE_PMD_ORDER
                    if c1 - (vpn >> HPAGE_PMD_ORDER) >= 2:
                        placed = touch_huge_bulk(kernel, task, vma, vpn >> HPAGE_PMD_ORDER, c1)
            finally:
                mm.mmap_lock.read_unlock()
            if ok and not placed:
                bulk = False                     # the rest faults range by range
            elif placed:
                done += placed << HPAGE_PMD_ORDER
                vpn += placed << HPAGE_PMD_ORDER
                if progress is not None:
                    progress(done)
                continue
        do_user_addr_fault(kernel, task, (vpn << PAGE_SHIFT) & ((1 << 64) - 1), write)
        vpn += 1
        done += 1
        if progress is not None and not done & 0x3FFF:
            progress(done)
    if progress is not None:
        progress(npages)
