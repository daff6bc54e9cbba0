"""The bulk fault path: many pages of private anonymous memory faulted in one step.

``touch_range`` faults a range in ascending order and ends exactly as
``do_user_addr_fault`` called page by page would: the same node for every
page, the same page-table pages (one per fresh 2 MiB, 1 GiB and 512 GiB
region, allocated before the data page of the first fault there, under the
task policy with no interleave index, so they move the task's interleave
round robin), the same free pages per node, ``il_prev``/``il_weight``, dirty
bits and fault counts, and the same signal at the same page.

How: every allocation of the range (page-table pages and data pages, in
fault order) asks for a *preferred node* that does not depend on free
memory: the VMA policy gives a periodic pattern (interleave by VMA index,
weighted interleave, or one node for local, preferred, bind, preferred-many
and home node), the task's round robin gives another for the page tables.
The page allocator then walks a fixed candidate list for that preferred node
(its zonelist cut to the policy nodemask and the cpuset; preferred-many
appends the second pass).  While no node runs out, each candidate list maps
to one node, so placement is a table lookup on the pattern; the only events
are the allocations that take a node's last free page, found by counting
(prefix sums over one period plus a binary search), after which the lookup
table is rebuilt.  A run costs O(events x (period + page tables)) plus
writing one code byte per page.  NumPy is imported only here; without it
(or under the concurrency checker, with mutants, or with a page allocator
wrapped for statistics) every page goes through the per-page path.

What stays per page: shared memory and file mappings, pages that are
objects (shared after fork, copies of file pages), runs shorter than
``BULK_MIN_PAGES``.  Set ``MEMPOLICY_BULK=0`` to fault everything page by
page.
"""

from __future__ import annotations

import os
from bisect import bisect_left, bisect_right
from types import SimpleNamespace

from mempolicy.alloc.fault import (
    FaultSignal,
    OutOfMemory,
    do_fault_around,
    do_user_addr_fault,
    handle_mm_fault,
)
from mempolicy.alloc.huge_bulk import thp_touch_path, touch_range_thp
from mempolicy.alloc.huge_memory import thp_note_write
from mempolicy.alloc.mpol_alloc import (
    interleave_nodes,
    offset_il_index,
    policy_nodemask,
    weighted_interleave_nodes,
)
from mempolicy.alloc.page_alloc import PageAllocator
from mempolicy.alloc.swap import lru_batches
from mempolicy.core import sched_points as _chk
from mempolicy.core.mempolicy import mpol_cond_put
from mempolicy.scopes.mm import PGDIR_SHIFT, PMD_SHIFT, PUD_SHIFT, VM_WRITE, get_vma_policy
from mempolicy.scopes.pagecache import DIRTY as CDIRTY
from mempolicy.scopes.pagecache import MAPPED as CMAPPED
from mempolicy.scopes.pagecache import MAX_CACHE_NID
from mempolicy.scopes.pagetable import (
    ABSENT,
    ANON0,
    DIRTY,
    FILE,
    KIND_ANON,
    KIND_FILE,
    KIND_ZERO,
    MAX_COMPACT_NID,
    ZERO,
    _numpy,
)
from mempolicy.uapi import (
    MPOL_INTERLEAVE,
    MPOL_PREFERRED_MANY,
    MPOL_WEIGHTED_INTERLEAVE,
    NO_INTERLEAVE_INDEX,
    PAGE_SHIFT,
)

U64 = (1 << 64) - 1
BULK_MIN_PAGES = 64          # runs shorter than this go page by page
NONE = 255                   # "no node left" in a lookup table
LEVELS = (PGDIR_SHIFT, PUD_SHIFT, PMD_SHIFT)   # pgtable_alloc's order
INF = 1 << 62
IL_MODES = (MPOL_INTERLEAVE, MPOL_WEIGHTED_INTERLEAVE)
RUNS_WINDOW = 1 << 22        # pages of a shmem mapping looked at in one step (16 GiB)
BULK_PIECE = 1 << 24         # pages placed in one step (64 GiB): arrays stay small


def bulk_available(kernel) -> bool:
    """Whether the bulk path may run: NumPy present, no checker, a plain allocator."""
    if os.environ.get("MEMPOLICY_BULK", "1").lower() in ("0", "off", "no", "false"):
        return False
    if _chk.sched is not None or _chk.mutated:
        return False
    if type(kernel.pages) is not PageAllocator and not hasattr(kernel.pages, "add_bulk"):
        return False
    if kernel.topo.nr_node_ids > MAX_COMPACT_NID + 1:
        return False
    return _numpy() is not None


SLOW_WARN_PAGES = 1 << 20    # touches this large without NumPy say why they are slow
_warned = False


def _warn_no_numpy(npages: int) -> None:
    """One line on stderr, once: NumPy is missing, so a large touch goes page by page."""
    global _warned
    if _warned:
        return
    _warned = True
    import sys
    print(f"mempolicy: NumPy is not installed: faulting {npages} pages one by one "
          f"(about 100,000 a second); install numpy for the bulk path", file=sys.stderr)


def touch_range(kernel, task, addr: int, npages: int, write: bool, bulk: bool | None = None,
                min_run: int | None = None, progress=None) -> None:
    """Fault ``npages`` pages from ``addr`` (page aligned) in ascending order, each as
    ``do_user_addr_fault`` would; raises FaultSignal or OutOfMemory where the
    per-page path would, after faulting every page before it.

    ``bulk`` None: use the bulk path when available; False: page by page.
    ``progress`` is called with the number of pages done so far.
    """
    use_bulk = bulk_available(kernel) if bulk is None else (bulk and bulk_available(kernel))
    if kernel.thp is not None and thp_touch_path(kernel, task.mm):   # huge pages (huge_memory.py)
        touch_range_thp(kernel, task, addr, npages, write, progress,
                        bulk=use_bulk and _chk.sched is None)
        return
    if not use_bulk and bulk is not False and npages >= SLOW_WARN_PAGES and _numpy() is None:
        _warn_no_numpy(npages)
    if min_run is None:
        min_run = BULK_MIN_PAGES
    vpn = addr >> PAGE_SHIFT
    end = vpn + npages
    done_at = vpn
    if not use_bulk or npages < min_run:
        for i in range(npages):
            do_user_addr_fault(kernel, task, (addr + (i << PAGE_SHIFT)) & U64, write)
            if progress is not None and not i & 0x3FFF:
                progress(i)
        if progress is not None:
            progress(npages)
        return
    mm = task.mm
    while vpn < end:
        a = (vpn << PAGE_SHIFT) & U64
        mm.mmap_lock.read_lock()
        try:
            vma = mm.vma_lookup(a)
            if vma is None or (write and not vma.flags & VM_WRITE) or a != vpn << PAGE_SHIFT \
                    or (vma.vm_file is not None and not file_bulk_ok(kernel, vma, write)):
                handle_mm_fault(kernel, task, a, write)
                vpn += 1
                continue
            hi = min(end, vma.end >> PAGE_SHIFT)
            if vma.vm_file is not None:
                touch_file(kernel, task, vma, vpn, hi, write, min_run,
                           None if progress is None else (lambda v: progress(v - done_at)))
                vpn = hi
                continue
            for ra, rb, kind in _merge_alloc_runs(mm.ptes.runs(vpn, hi), write):
                if kind == ABSENT:                     # (or zero pages, for a write)
                    if rb - ra >= min_run:
                        for pa in range(ra, rb, BULK_PIECE):   # bounded arrays, same result
                            _bulk_anon(kernel, task, vma, pa, min(rb, pa + BULK_PIECE), write,
                                       None if progress is None else
                                       (lambda k, base=pa - done_at: progress(base + k)))
                    else:
                        for v in range(ra, rb):
                            handle_mm_fault(kernel, task, v << PAGE_SHIFT, write)
                elif kind == KIND_ANON:
                    if write:                          # exclusive pages: do_wp_page reuses them
                        mm.ptes.set_dirty_range(ra, rb)
                        thp_note_write(mm, ra, rb)
                elif kind == KIND_ZERO:
                    pass                               # a read of the zero page: nothing to do
                else:
                    for v in range(ra, rb):
                        handle_mm_fault(kernel, task, v << PAGE_SHIFT, write)
                if progress is not None:
                    progress(rb - done_at)
            vpn = hi
        finally:
            mm.mmap_lock.read_unlock()


def _merge_alloc_runs(runs, write: bool):
    """For a write, absent and zero-page runs both allocate: join them."""
    out: list[list[int]] = []
    for a, b, k in runs:
        if write and k == KIND_ZERO:
            k = ABSENT
        if out and out[-1][2] == k == ABSENT and out[-1][1] == a:
            out[-1][1] = b
        else:
            out.append([a, b, k])
    return out


# ---------------------------------------------------------------------------
# Inputs: patterns of preferred nodes and candidate lists
# ---------------------------------------------------------------------------

def _candidates(kernel, task, nid: int, nodemask, many: bool) -> list[int]:
    """The nodes ``__alloc_pages`` tries, in order, for a preferred node (both passes
    of preferred-many)."""
    zl = kernel.topo.zonelists[nid]
    mems = task.mems_allowed
    first = [x for x in zl if (nodemask is None or x in nodemask) and x in mems]
    if many:
        return first + [x for x in zl if x in mems]
    return first


def _data_pattern(kernel, task, pol, ilx0: int) -> tuple[list[int], int, object, bool, bool]:
    """(preferred node per position of one period, phase of the first page, nodemask,
    preferred-many, interleave) for the data pages of a VMA range under ``pol``."""
    local = task.numa_node_id()
    mode = pol.mode
    nodemask = None
    if mode == MPOL_INTERLEAVE:                        # interleave_nid
        pattern = list(pol.nodes) or [local]
        ilx0 = offset_il_index(kernel, ilx0)           # (a range never crosses 2^32 pages)
    elif mode == MPOL_WEIGHTED_INTERLEAVE:             # weighted_interleave_nid
        wi = kernel.wi_state
        pattern = [n for n in pol.nodes for _ in range(wi.get_il_weight(n))] or [local]
    else:
        nid, nodemask = policy_nodemask(task, pol, ilx0, local, kernel.wi_state)
        pattern = [nid]
    many = mode == MPOL_PREFERRED_MANY
    if not many:
        nr = kernel.topo.nr_node_ids
        pattern = [local if p >= nr else p for p in pattern]
    return pattern, ilx0 % len(pattern), nodemask, many, mode in IL_MODES


class _RoundRobin:
    """The preferred nodes of ``count`` allocations under the task policy with no
    interleave index (page tables), and the task's interleave state after k of them.

    The real ``interleave_nodes``/``weighted_interleave_nodes`` run on a copy of
    the state for one period (after the rest of the current weight); the
    sequence repeats from there.
    """

    def __init__(self, kernel, task, pol, count: int) -> None:
        np = _numpy()
        local = task.numa_node_id()
        self.mode = mode = pol.mode
        self.nodemask = None
        self.many = mode == MPOL_PREFERRED_MANY
        nr = kernel.topo.nr_node_ids
        if mode in (MPOL_INTERLEAVE, MPOL_WEIGHTED_INTERLEAVE):
            scratch = SimpleNamespace(il_prev=task.il_prev, il_weight=task.il_weight)
            wi = kernel.wi_state
            if mode == MPOL_INTERLEAVE:
                period, prefix = max(1, pol.nodes.weight()), 0

                def step() -> int:
                    return interleave_nodes(scratch, pol)
            else:
                period = max(1, sum(wi.get_il_weight(n) for n in pol.nodes))
                prefix = task.il_weight

                def step() -> int:
                    return weighted_interleave_nodes(scratch, pol, wi)
            s = min(count, prefix + period)
            seq, states = [], []
            for _ in range(s):
                seq.append(step())
                states.append((scratch.il_prev, scratch.il_weight))
            self.states, self.prefix, self.period = states, prefix, period
            seq = [local if n >= nr else n for n in seq]
            if count <= s:
                self.pref = np.array(seq, dtype=np.int64)
            else:
                k = np.arange(count, dtype=np.int64)
                k = np.where(k < prefix, k, prefix + (k - prefix) % period)
                self.pref = np.array(seq, dtype=np.int64)[k]
        else:
            nid, self.nodemask = policy_nodemask(task, pol, NO_INTERLEAVE_INDEX, local, kernel.wi_state)
            if not self.many and nid >= nr:
                nid = local
            self.pref = np.full(count, nid, dtype=np.int64)
            self.states = None

    def state_after(self, task, k: int) -> None:
        """Set the task's il_prev/il_weight as after k allocations."""
        if self.states is None or k == 0:
            return
        i = k - 1
        if i >= len(self.states):
            i = self.prefix + (i - self.prefix) % self.period
        task.il_prev, task.il_weight = self.states[i]


def _table_events(mm, v0: int, v1: int):
    """The page-table pages faulting [v0, v1) allocates: (page offset, level, index)
    arrays in allocation order (by page, then PGD, PUD, PMD level)."""
    np = _numpy()
    pages, levels, idxs = [], [], []
    for lvl, shift in enumerate(LEVELS):
        s = shift - PAGE_SHIFT
        i0, i1 = v0 >> s, (v1 - 1) >> s
        idx = np.arange(i0, i1 + 1, dtype=np.int64)
        tables = mm.pgtables[shift]
        if tables:
            if len(tables) < len(idx):
                have = [k for k in list(tables) if i0 <= k <= i1]
            else:
                have = [k for k in range(i0, i1 + 1) if k in tables]
            if have:
                idx = idx[~np.isin(idx, np.array(have, dtype=np.int64))]
        pages.append(np.maximum(idx << s, v0) - v0)
        levels.append(np.full(len(idx), lvl, dtype=np.int64))
        idxs.append(idx)
    page = np.concatenate(pages)
    level = np.concatenate(levels)
    idx = np.concatenate(idxs)
    order = np.argsort(page * 4 + level, kind="stable")
    return page[order], level[order], idx[order]


# ---------------------------------------------------------------------------
# The placement engine
# ---------------------------------------------------------------------------

def place(n: int, dcls, phase: int, tpage, tcls, tlevel, cands: list[list[int]],
          free: list[int], by_class: dict | None = None) -> dict:
    """Simulate the allocations of faulting ``n`` pages in order.

    Page i first allocates its page tables (``tpage == i``, in level order),
    then, when ``dcls`` is given, its data page of class
    ``dcls[(phase + i) % len(dcls)]``.  An allocation of class c takes the first
    node of ``cands[c]`` with a free page.  ``free`` is updated in place.

    Returns ``segs`` (page ranges with the node of each pattern position),
    ``tnodes`` (node of each page table done), ``pages`` (pages whose fault
    completed), ``tables`` (page tables done), ``data`` (data pages allocated)
    and ``oom`` (None, ("table", j) or ("data", i)).  With ``by_class`` (a dict),
    it also counts there the allocations per (class, node).
    """
    np = _numpy()
    T = len(tpage)
    tkey = tpage * 4 + tlevel
    has_data = dcls is not None
    P = len(dcls) if has_data else 1
    cur_page, cur_tab = 0, 0
    segs: list[tuple[int, int, object]] = []
    tnodes = np.empty(T, dtype=np.uint8)
    ndata = 0
    oom = None
    nc = len(cands)
    class_pre = {}
    if by_class is not None and has_data:          # allocations per (class, node), for numastat
        for c in np.unique(dcls).tolist():
            class_pre[c] = ([0, *np.cumsum(dcls == c).tolist()], int((dcls == c).sum()))
    while True:
        red = np.full(nc, NONE, dtype=np.int64)
        for c, lst in enumerate(cands):
            for x in lst:
                if free[x] > 0:
                    red[c] = x
                    break
        m = red[dcls] if has_data else None
        tr = red[tcls[cur_tab:]]
        # the first allocation that finds no node
        oom_key = INF
        if has_data and cur_page < n:
            bad = np.flatnonzero(m == NONE)
            if bad.size:
                d = int(((bad - (phase + cur_page)) % P).min())
                if cur_page + d < n:
                    oom_key = 4 * (cur_page + d) + 3
        badt = np.flatnonzero(tr == NONE)
        if badt.size:
            oom_key = min(oom_key, int(tkey[cur_tab + badt[0]]))
        # the first allocation that takes a node's last free page
        ex_key = INF
        targets = set(red.tolist()) - {NONE}
        counts_of = {}
        for x in targets:
            if has_data:
                mx = (m == x)
                pre = [0, *np.cumsum(mx).tolist()]
                cx = pre[-1]
            else:
                pre, cx = [0] * (P + 1), 0

            def data_x(a: int, b: int, pre=pre, cx=cx) -> int:
                ga, gb = phase + a, phase + b
                return (gb // P - ga // P) * cx + pre[gb % P] - pre[ga % P]
            tpos = tpage[cur_tab:][tr == x].tolist()
            counts_of[x] = data_x
            f = free[x]
            if data_x(cur_page, n) + len(tpos) <= f:
                continue
            lo, hi = cur_page, n - 1
            while lo < hi:
                mid = (lo + hi) // 2
                if data_x(cur_page, mid + 1) + bisect_right(tpos, mid) >= f:
                    hi = mid
                else:
                    lo = mid + 1
            t = lo
            need = f - (data_x(cur_page, t) + bisect_left(tpos, t))
            j0 = max(cur_tab, int(np.searchsorted(tpage, t, "left")))
            j1 = int(np.searchsorted(tpage, t, "right"))
            js = [j for j in range(j0, j1) if red[tcls[j]] == x]
            key = int(tkey[js[need - 1]]) if need <= len(js) else 4 * t + 3
            ex_key = min(ex_key, key)
        stop = min(oom_key, ex_key)
        if stop >= INF:
            end_key = 4 * n
        elif ex_key < oom_key:
            end_key = ex_key                     # that allocation succeeds
        else:
            end_key = oom_key - 1                # that one fails
        p_end = min(n, max(cur_page, (end_key - 3) // 4 + 1))
        t_end = int(np.searchsorted(tkey, end_key, "right"))
        # commit
        if has_data and p_end > cur_page:
            for x, data_x in counts_of.items():
                free[x] -= data_x(cur_page, p_end)
            segs.append((cur_page, p_end, m))
            ndata += p_end - cur_page
            if by_class is not None:
                ga, gb = phase + cur_page, phase + p_end
                for c, (pre, tot) in class_pre.items():
                    k = (gb // P - ga // P) * tot + pre[gb % P] - pre[ga % P]
                    if k:
                        by_class[(c, int(red[c]))] = by_class.get((c, int(red[c])), 0) + k
        elif p_end > cur_page:
            segs.append((cur_page, p_end, None))
        if t_end > cur_tab:
            tn = red[tcls[cur_tab:t_end]]
            tnodes[cur_tab:t_end] = tn
            for x, k in enumerate(np.bincount(tn).tolist()):
                free[x] -= k
            if by_class is not None:
                for c, k in enumerate(np.bincount(tcls[cur_tab:t_end]).tolist()):
                    if k:
                        by_class[(c, int(red[c]))] = by_class.get((c, int(red[c])), 0) + k
        cur_page, cur_tab = p_end, t_end
        if stop >= INF:
            break
        if oom_key < ex_key:
            oom = ("data", oom_key // 4) if oom_key % 4 == 3 else ("table", cur_tab)
            break
    return {"segs": segs, "tnodes": tnodes[:cur_tab], "pages": cur_page, "tables": cur_tab,
            "data": ndata, "oom": oom}


# ---------------------------------------------------------------------------
# A run of private anonymous pages
# ---------------------------------------------------------------------------

def _place_run(kernel, task, v0: int, v1: int, data):
    """Place the allocations of faulting [v0, v1) in order: page tables, and with
    ``data`` = (pattern, phase, nodemask, preferred-many) a data page per page.
    Commits the free pages, the page tables and the task's round robin; returns
    ``place``'s result (caller holds mmap_lock for reading)."""
    np = _numpy()
    mm = task.mm
    n = v1 - v0
    tpage, tlevel, tidx = _table_events(mm, v0, v1)
    cands: list[list[int]] = []
    class_of: dict[tuple, int] = {}

    info: list[tuple] = []

    def cls(kind: str, nid: int, nodemask, many: bool, il: bool = False) -> int:
        key = (kind, nid)
        c = class_of.get(key)
        if c is None:
            c = class_of[key] = len(cands)
            cands.append(_candidates(kernel, task, nid, nodemask, many))
            info.append((nid, nodemask, many, il))
        return c

    dcls, phase = None, 0
    if data is not None:
        pattern, phase, dmask, dmany, dil = data
        dcls = np.array([cls("d", p, dmask, dmany, dil) for p in pattern], dtype=np.int64)
    rr = _RoundRobin(kernel, task, task.get_task_policy(), len(tpage))
    uniq = np.unique(rr.pref) if len(tpage) else []
    lut = {int(p): cls("t", int(p), rr.nodemask, rr.many, rr.mode in IL_MODES) for p in uniq}
    tcls = np.zeros(len(tpage), dtype=np.int64)
    for p, c in lut.items():
        tcls[rr.pref == p] = c
    pages = kernel.pages
    with pages.lock:
        free = list(pages.free)
        by_class = {} if hasattr(pages, "add_bulk") else None
        res = place(n, dcls, phase, tpage, tcls, tlevel, cands, free, by_class)
        pages.free[:] = free
    if by_class:
        _numastat(kernel, task, pages, info, by_class)
    k = res["tables"]
    for lvl, shift in enumerate(LEVELS):
        sel = tlevel[:k] == lvl
        if sel.any():
            mm.pgtables[shift].update(zip(tidx[:k][sel].tolist(), res["tnodes"][sel].tolist()))
    oom = res["oom"]
    rr.state_after(task, k + (1 if oom and oom[0] == "table" else 0))
    res["phase"] = phase
    if oom is not None and oom[0] == "table":
        res["oom_page"] = int(tpage[k])
    elif oom is not None:
        res["oom_page"] = oom[1]
    return res


def _numastat(kernel, task, pages, info, by_class: dict) -> None:
    """Count the allocations of a run in numastat's counters as the per-page path
    does (``_NumaStatCounter``): hit or miss against the first node of the zonelist
    in the nodemask (preferred-many: of the pass that succeeded), local or other,
    and interleave_hit when an interleave allocation got its node."""
    zls = kernel.topo.zonelists
    local = task.numa_node_id()
    for (c, nid), k in by_class.items():
        p, nodemask, many, il = info[c]
        zl = zls[p]
        if many and not (nodemask is None or nid in nodemask):
            nodemask = None                                  # the second pass
        pref = next((x for x in zl if nodemask is None or x in nodemask), nid)
        pages.add_bulk(nid, pref, local, k, k if il and nid == p and not many else 0)


def _bulk_anon(kernel, task, vma, v0: int, v1: int, write: bool, progress=None) -> None:
    """Fault [v0, v1) of a private anonymous VMA (every pte absent, or for a write
    absent or the zero page), caller holding mmap_lock for reading."""
    np = _numpy()
    mm = task.mm
    pol = None
    data = None
    if write:
        pol, ilx0 = get_vma_policy(task, vma, v0 << PAGE_SHIFT)
    try:
        if write:
            data = _data_pattern(kernel, task, pol, ilx0)
            if data[3] and kernel.version.preferred_many_below_low:
                # place() knows no pages below the low watermark: page by page
                for v in range(v0, v1):
                    handle_mm_fault(kernel, task, v << PAGE_SHIFT, write)
                    if progress is not None and not (v - v0) & 0x3FFF:
                        progress(v - v0)
                return
        res = _place_run(kernel, task, v0, v1, data)
        phase = res["phase"]
        oom = res["oom"]
        pt = mm.ptes
        for a, b, m in res["segs"]:
            if m is None:
                code = np.array([ZERO], dtype=np.uint8)
                pt.fill_pattern(v0 + a, v0 + b, code, 0)
            else:
                code = ((m + ANON0) | DIRTY).astype(np.uint8)
                pt.fill_pattern(v0 + a, v0 + b, code, (phase + a) % len(code))
            if progress is not None:
                progress(b)
        if write:
            lru_batches(kernel).add_range(task.cpu, mm, [(v0 + a, v0 + b) for a, b, m in res["segs"]
                                                         if m is not None])
            if res["data"] or (oom and oom[0] == "data"):
                mm.anon_vma_prepare(vma)
            kernel.fault_stats["faults"] += res["data"]
            if pol.flags & 1:
                kernel.fault_stats["shared"] += res["data"]
        if oom is not None:
            raise OutOfMemory()
    finally:
        if pol is not None:
            mpol_cond_put(pol)


# ---------------------------------------------------------------------------
# A run of shared memory (shmem, memfd) or a read of a file mapping
# ---------------------------------------------------------------------------

def file_bulk_ok(kernel, vma, write: bool) -> bool:
    """Whether faults on ``vma`` (a shmem file mapping) may go in bulk: shared
    mappings, and reads of private ones (a private write copies each page to an
    anonymous page at the file offset: page by page)."""
    return (vma.is_shared or not write) and kernel.topo.nr_node_ids <= MAX_CACHE_NID + 1


def _shared_pieces(inode, lo: int, hi: int) -> list[int]:
    """The page indexes in (lo, hi) where the shared policy changes."""
    cuts = []
    sp = inode.policy
    if not sp.nodes:
        return cuts
    for node in sp.nodes.iter_from(lo):
        if node.start >= hi:
            break
        for x in (node.start, node.end):
            if lo < x < hi:
                cuts.append(x)
    return sorted(set(cuts))


def touch_file(kernel, task, vma, vpn: int, hi: int, write: bool, min_run: int,
               progress=None) -> int:
    """Fault [vpn, hi) of a shmem mapping, in bulk where it can; returns ``hi``.
    Pages past the end of the file get the per-page path (SIGBUS)."""
    inode = vma.inode
    mm = task.mm
    lim = (vma.start >> PAGE_SHIFT) + max(0, inode.size_pages - vma.pgoff)
    top = min(hi, max(vpn, lim))
    shared_write = write and vma.is_shared
    while vpn < top:
        ra, rb, kind = mm.ptes.runs(vpn, min(top, vpn + RUNS_WINDOW))[0]
        if kind == ABSENT and rb - ra >= min_run:
            stop = _bulk_shmem(kernel, task, vma, ra, rb, write, progress)
            if stop < rb:                          # a page the bulk path leaves alone
                handle_mm_fault(kernel, task, stop << PAGE_SHIFT, write)
                stop += 1
            vpn = stop
        elif kind == KIND_FILE and not write:      # already mapped: nothing to do
            vpn = rb
        elif kind == KIND_FILE and shared_write:   # no fault: the MMU dirties the ptes
            mm.ptes.set_dirty_range(ra, rb)
            vpn = rb
        else:
            for v in range(ra, rb):
                handle_mm_fault(kernel, task, v << PAGE_SHIFT, write)
            vpn = rb
        if progress is not None:
            progress(vpn)
    for v in range(top, hi):
        handle_mm_fault(kernel, task, v << PAGE_SHIFT, write)
    return hi


def _bulk_shmem(kernel, task, vma, v0: int, v1: int, write: bool, progress=None) -> int:
    """Fault a prefix of [v0, v1) (every pte absent, every index inside the file) of a
    shmem mapping; returns where it stopped: v1, or the first page whose page-cache
    page is already mapped or an object (the per-page path takes it).

    Each page allocates its page tables, then, when the page cache has no page
    there, a page under the shared policy at that index (else the task policy)
    with ilx = inode bias + index (``shmem_alloc_folio``); a read first maps the
    cached neighbours of its 16-page block (``do_fault_around``), which in an
    ascending run only shows at the two ends.
    """
    np = _numpy()
    mm = task.mm
    inode = vma.inode
    cache = inode.pages
    i0 = vma.linear_page_index(v0 << PAGE_SHIFT)
    n = v1 - v0
    stop, cuts = cache.busy_and_absent(i0, i0 + n)
    if stop == 0:
        return v0
    cuts = set(cuts)
    cuts.update(x - i0 for x in _shared_pieces(inode, i0, i0 + stop))
    edges = [0, *sorted(x for x in cuts if 0 < x < stop), stop]
    pte_code = np.array([FILE | (DIRTY if write else 0)], dtype=np.uint8)
    flags = CMAPPED | (CDIRTY if write else 0)
    first_fault = None
    last_fault = None
    try:
        for a, b in zip(edges, edges[1:]):
            pol = None
            data = None
            if not cache.code(i0 + a):
                pol = inode.policy.mpol_shared_policy_lookup(i0 + a)
                if pol is None:
                    pol = task.get_task_policy()
                data = _data_pattern(kernel, task, pol, inode.i_ino + i0 + a)
                if data[3] and kernel.version.preferred_many_below_low:
                    mpol_cond_put(pol)          # place() knows no pages below the low
                    return v0 + a               # watermark: the per-page path goes on
            try:
                res = _place_run(kernel, task, v0 + a, v0 + b, data)
                done = res["pages"]
                mm.ptes.fill_pattern(v0 + a, v0 + a + done, pte_code, 0) if done else None
                if data is None:
                    if done:
                        cache.or_flags(i0 + a, i0 + a + done, flags)
                else:
                    phase = res["phase"]
                    for sa, sb, m in res["segs"]:
                        code = ((m.astype(np.int64) + 1) | flags).astype(np.uint8)
                        cache.fill(i0 + a + sa, i0 + a + sb, code, (phase + sa) % len(code))
                    kernel.fault_stats["faults"] += res["data"]
                    if pol.flags & 1:
                        kernel.fault_stats["shared"] += res["data"]
                    lru_batches(kernel).add_others(task.cpu, res["data"])
            finally:
                if pol is not None:
                    mpol_cond_put(pol)
            oom = res["oom"]
            reached = done if oom is None or oom[0] == "table" else done + 1
            if reached:
                if first_fault is None:
                    first_fault = v0 + a
                last_fault = v0 + a + reached - 1
            if progress is not None:
                progress(v0 + a + done)
            if oom is not None:
                raise OutOfMemory()
    finally:
        if not write and first_fault is not None:   # the ends of the fault-around
            do_fault_around(mm, vma, first_fault << PAGE_SHIFT)
            do_fault_around(mm, vma, last_fault << PAGE_SHIFT)
    return v0 + stop


__all__ = ["touch_range", "bulk_available", "place", "BULK_MIN_PAGES", "FaultSignal", "OutOfMemory"]
