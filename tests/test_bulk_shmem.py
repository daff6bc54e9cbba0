"""The bulk fault path on shared memory against the per-page path, as test_bulk.py does
for private anonymous memory.

A hypothesis property builds the same random machine twice: topology and free
memory (nodes that run out part-way), cpuset, task policy and interleave
state, weights, a memfd (its interleave bias depends on how many objects the
CPU made before) or a MAP_SHARED|MAP_ANONYMOUS mapping, shared-policy ranges
set through the mapping, a second mapping of the same file (shared or
private, at another offset), earlier read and write touches of either, and a
mapping that may run past the end of the file.  Then it touches a range of
the first mapping (read or write, crossing 2 MiB / 1 GiB boundaries, maybe
past the file's end: SIGBUS, or the mapping's end: SIGSEGV) once with
``touch_range`` in bulk (every run, however short), once page by page.  The
outcome, numa_maps (read while pages are still compact), every pte (node,
dirty bit, mapcount), the page cache (node, dirty flag, mapcount of every
page), page tables, free pages, ``il_prev``/``il_weight`` and fault counts
must agree, and again after the first mapping is unmapped.
"""

from __future__ import annotations

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from mempolicy.alloc import bulk  # noqa: E402
from mempolicy.alloc.fault import FaultSignal, OutOfMemory, do_user_addr_fault  # noqa: E402
from mempolicy.alloc.mpol_alloc import alloc_pages  # noqa: E402
from mempolicy.alloc.topology import Node, Topology  # noqa: E402
from mempolicy.core.mempolicy import KernelError  # noqa: E402
from mempolicy.core.nodemask import Nodemask  # noqa: E402
from mempolicy.kernel import Kernel  # noqa: E402
from mempolicy.proc.task_mmu import numa_maps  # noqa: E402
from mempolicy.scopes.pagetable import FILE, KIND_FILE  # noqa: E402
from mempolicy.syscalls import mempolicy as sp  # noqa: E402
from mempolicy.syscalls import mman  # noqa: E402
from mempolicy.uapi import MPOL_F_RELATIVE_NODES, MPOL_F_STATIC_NODES, PAGE_SIZE  # noqa: E402

MODES = [0, 1, 2, 3, 4, 5, 6]


def policies(n):
    return st.tuples(st.sampled_from(MODES), st.integers(0, (1 << n) - 1),
                     st.sampled_from([0, 0, MPOL_F_STATIC_NODES, MPOL_F_RELATIVE_NODES]))


@st.composite
def scenarios(draw):
    n = draw(st.integers(1, 5))
    mems = draw(st.lists(st.sampled_from([0, 64 << 20, 256 << 20]), min_size=n, max_size=n))
    if not any(mems):
        mems[draw(st.integers(0, n - 1))] = 256 << 20
    cpus = draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    if not any(cpus):
        cpus[draw(st.integers(0, n - 1))] = 1
    pages = draw(st.integers(1, 1500))
    size = draw(st.one_of(st.just(pages + 200), st.integers(1, pages + 300)))
    off2 = draw(st.one_of(st.just(0), st.integers(0, size)))
    return {
        "mems": mems, "cpus": cpus, "weights": draw(st.lists(st.integers(1, 4), min_size=n, max_size=n)),
        "free": [draw(st.one_of(st.integers(0, 2 * pages // n + 40), st.integers(0, 5000)))
                 for _ in range(n)],
        "cpu_pick": draw(st.integers(0, 64)),
        "mems_allowed": draw(st.integers(0, (1 << n) - 1)),
        "task_pol": draw(policies(n)),
        "rr_allocs": draw(st.integers(0, 9)),
        "earlier_objects": draw(st.integers(0, 3)),
        "anon_shared": draw(st.booleans()),
        "size": size, "pages": pages,
        "base": draw(st.sampled_from([1 << 45, (1 << 45) + (5 << 30), (1 << 45) + (7 << 21)]))
        - draw(st.integers(0, 600)) * PAGE_SIZE,
        "off": draw(st.integers(0, 40)),
        "sp": draw(st.lists(st.tuples(policies(n), st.integers(0, pages - 1), st.integers(1, pages)),
                            max_size=3)),
        "second": draw(st.one_of(st.none(), st.tuples(st.booleans(), st.integers(0, max(0, size - off2)),
                                                      st.just(off2)))),
        "pre": draw(st.lists(st.tuples(st.booleans(), st.integers(0, pages + 40), st.integers(1, 40),
                                       st.booleans()), max_size=4)),
        "drop_second": draw(st.booleans()),
        "touch": (draw(st.integers(0, pages - 1)), draw(st.integers(1, pages + 5)), draw(st.booleans())),
    }


BASE2 = 3 << 44


def build(sc):
    n = len(sc["mems"])
    nodes, first = [], 0
    for i in range(n):
        nodes.append(Node(i, sc["mems"][i], range(first, first + sc["cpus"][i])))
        first += sc["cpus"][i]
    k, t = Kernel.boot(Topology(nodes, [[10 if a == b else 20 for b in range(n)] for a in range(n)]))
    for i in range(n):
        if sc["mems"][i]:                       # sysfs has weights for nodes with memory
            k.pages.free[i] = sc["free"][i]
            k.wi_state.set_weight(i, sc["weights"][i])
    t.cpu = sc["cpu_pick"] % k.topo.nr_cpus
    allowed = Nodemask(sc["mems_allowed"]) & k.topo.n_memory
    if allowed:
        t.mems_allowed = allowed
    mode, mask, flags = sc["task_pol"]
    try:
        sp.kernel_set_mempolicy(k, t, mode | flags, mask, 65)
    except KernelError:
        pass
    for _ in range(sc["rr_allocs"]):
        nid = alloc_pages(k, t)
        if nid is not None:
            k.pages.free_page(nid)
    for _ in range(sc["earlier_objects"]):
        mman.memfd_create(k, t, "x", 1)
    base, pages = sc["base"], sc["pages"]
    if sc["anon_shared"]:
        mman.sys_mmap(k, t, base, pages * PAGE_SIZE, True, None)
        f = t.mm.vma_lookup(base).vm_file
    else:
        f = mman.memfd_create(k, t, "F", sc["size"])
        mman.sys_mmap(k, t, base, pages * PAGE_SIZE, True, f, sc["off"])
    for (mode, mask, flags), off, ln in sc["sp"]:
        ln = min(ln, pages - off)
        try:
            sp.kernel_mbind(k, t, base + off * PAGE_SIZE, ln * PAGE_SIZE, mode | flags, mask, 65, 0)
        except KernelError:
            pass
    if sc["second"] is not None:
        shared, ln, off2 = sc["second"]
        mman.sys_mmap(k, t, BASE2, max(1, ln) * PAGE_SIZE, shared, f, off2)
    for i, (second, off, ln, write) in enumerate(sc["pre"]):
        a = (BASE2 if second else base) + off * PAGE_SIZE
        # alternately page by page (objects) and in bulk (compact pages), the same on both sides
        outcome(lambda: bulk.touch_range(k, t, a, ln, write, bulk=bool(i % 2), min_run=1))
    if sc["second"] is not None and sc["drop_second"]:    # its pages stay cached, unmapped
        mman.sys_munmap(k, t, BASE2, max(1, sc["second"][1]) * PAGE_SIZE)
    return k, t, f


def outcome(fn) -> str:
    try:
        fn()
    except FaultSignal as s:
        return s.signame
    except OutOfMemory:
        return "SIGKILL"
    return "ok"


def snapshot(k, t, f):
    mm = t.mm
    state = {"numa_maps": numa_maps(k, t, t), "free": list(k.pages.free), "il": (t.il_prev, t.il_weight),
             "pgtables": {s: dict(d) for s, d in mm.pgtables.items()}, "stats": dict(k.fault_stats)}
    ptes = []
    for v in mm.ptes:
        kind = mm.ptes.kind(v)
        ptes.append((v, "obj" if kind in (3, KIND_FILE) else kind, mm.ptes.nid(v), mm.ptes.is_dirty(v)))
    cache = f.inode.pages
    idx = sorted(i for i in range(f.inode.size_pages + 50) if i in cache)
    state["cache_nodes"] = [(i, cache.nid(i)) for i in idx]
    # objects from here on
    state["pte_maps"] = [(v, getattr(mm.ptes.get(v), "mapcount", None)) for v in list(mm.ptes)]
    state["cache"] = [(i, cache[i].nid, cache[i].dirty, cache[i].mapcount) for i in idx]
    state["ptes"] = ptes
    return state


def run_both(sc):
    off, ln, write = sc["touch"]
    addr = sc["base"] + off * PAGE_SIZE
    sides = []
    for use_bulk in (True, False):
        k, t, f = build(sc)
        if use_bulk:
            r = outcome(lambda: bulk.touch_range(k, t, addr, ln, write, bulk=True, min_run=1))
        else:
            def per_page():
                for i in range(ln):
                    do_user_addr_fault(k, t, addr + i * PAGE_SIZE, write)
            r = outcome(per_page)
        s1 = snapshot(k, t, f)
        mman.sys_munmap(k, t, sc["base"], sc["pages"] * PAGE_SIZE)
        s2 = {"free": list(k.pages.free), "cache": snapshot(k, t, f)["cache"]}
        sides.append((r, s1, s2))
    return sides


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_bulk_shmem_matches_per_page(sc):
    (rb, b1, b2), (rp, p1, p2) = run_both(sc)
    assert rb == rp
    for key in p1:
        assert b1[key] == p1[key], key
    assert b2 == p2


def _fixed(**kw):
    sc = {"mems": [256 << 20] * 3, "cpus": [1] * 3, "weights": [1] * 3, "free": [20000] * 3,
          "cpu_pick": 0, "mems_allowed": 0, "task_pol": (0, 0, 0), "rr_allocs": 0,
          "earlier_objects": 0, "anon_shared": False, "size": 3000, "pages": 3000,
          "base": 1 << 45, "off": 0, "sp": [], "second": None, "pre": [], "drop_second": False,
          "touch": (0, 3000, True)}
    sc.update(kw)
    return sc


def test_memfd_interleave_is_compact_and_matches():
    sc = _fixed(sp=[((3, 0b111, 0), 0, 3000)], earlier_objects=2)
    (rb, b1, b2), (rp, p1, p2) = run_both(sc)
    assert rb == rp == "ok" and b1 == p1 and b2 == p2
    k, t, f = build(sc)
    bulk.touch_range(k, t, sc["base"], 3000, True, bulk=True)
    assert t.mm.ptes.code(sc["base"] >> 12) & 0x7F == FILE        # no objects were made
    assert not f.inode.pages._chunks[0].objs


def test_read_fault_around_maps_cached_neighbours_at_both_ends():
    # the second mapping caches pages 0-99 in bulk and goes away; the touch of 20-81
    # maps 16..95 by fault-around
    sc = _fixed(second=(True, 100, 0), pre=[(True, 0, 40, True), (True, 40, 60, False)],
                drop_second=True, touch=(20, 62, False))
    (rb, b1, b2), (rp, p1, p2) = run_both(sc)
    assert b1 == p1 and b2 == p2
    assert "mapped=80" in b1["numa_maps"][0]


def test_sigbus_past_the_end_of_the_file():
    sc = _fixed(size=500, touch=(0, 900, True))
    (rb, b1, b2), (rp, p1, p2) = run_both(sc)
    assert rb == rp == "SIGBUS" and b1 == p1 and b2 == p2


def test_a_node_running_out_under_bind_kills_at_the_same_page():
    sc = _fixed(free=[300, 300, 300], sp=[((2, 0b001, 0), 0, 3000)])
    (rb, b1, b2), (rp, p1, p2) = run_both(sc)
    assert rb == rp == "SIGKILL" and b1 == p1 and b2 == p2
