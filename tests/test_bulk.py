"""The bulk fault path against the per-page path: same pages on the same nodes, same state.

A hypothesis property builds the same random machine twice (topology, free
memory per node, cpuset, task policy and interleave state, weights, a VMA
policy with flags and home node, earlier touches, a fork, a read-only or
unmapped hole), then touches a range crossing 2 MiB / 1 GiB / 512 GiB
boundaries: once with ``touch_range`` in bulk (every run, however short),
once page by page with ``do_user_addr_fault``.  The outcome, every pte (kind,
node, dirty bit, mapcount), the page tables, the free pages per node, the
task's ``il_prev``/``il_weight``, the fault counts and numa_maps must agree.
"""

from __future__ import annotations

import pytest

np = pytest.importorskip("numpy")
hypothesis = pytest.importorskip("hypothesis")
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
from mempolicy.scopes.pagetable import KIND_OBJ  # noqa: E402
from mempolicy.syscalls import mempolicy as sp  # noqa: E402
from mempolicy.syscalls import mman, process  # noqa: E402
from mempolicy.uapi import (  # noqa: E402
    MPOL_F_RELATIVE_NODES,
    MPOL_F_STATIC_NODES,
    PAGE_SIZE,
)

MODES = [0, 1, 2, 3, 4, 5, 6]        # default .. weighted_interleave


@st.composite
def machines(draw):
    n = draw(st.integers(1, 6))
    mems = draw(st.lists(st.sampled_from([0, 64 << 20, 256 << 20]), min_size=n, max_size=n))
    if not any(mems):
        mems[draw(st.integers(0, n - 1))] = 256 << 20
    cpus = draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    if not any(cpus):
        cpus[draw(st.integers(0, n - 1))] = 1
    dist = [[10 if a == b else 20 for b in range(n)] for a in range(n)]
    for a in range(n):
        for b in range(a + 1, n):
            if draw(st.booleans()):
                dist[a][b] = dist[b][a] = draw(st.integers(11, 40))
    free = draw(st.lists(st.one_of(st.integers(0, 40), st.integers(0, 900)), min_size=n, max_size=n))
    weights = draw(st.lists(st.integers(1, 4), min_size=n, max_size=n))
    return mems, cpus, dist, free, weights


def policies(n):
    return st.tuples(st.sampled_from(MODES),
                     st.integers(0, (1 << n) - 1),
                     st.sampled_from([0, 0, MPOL_F_STATIC_NODES, MPOL_F_RELATIVE_NODES]))


@st.composite
def scenarios(draw):
    mems, cpus, dist, free, weights = draw(machines())
    n = len(mems)
    boundary = draw(st.sampled_from([1 << 45, (1 << 45) + (3 << 39), (1 << 45) + (5 << 30),
                                     (1 << 45) + (7 << 21)]))
    pages = draw(st.integers(1, 2500))
    if draw(st.booleans()):             # nodes that fill up part-way through the range
        free = [draw(st.integers(0, 2 * pages // n + 2)) for _ in range(n)]
    base = boundary - draw(st.integers(0, 700)) * PAGE_SIZE
    return {
        "mems": mems, "cpus": cpus, "dist": dist, "free": free, "weights": weights,
        "cpu_pick": draw(st.integers(0, 64)),
        "mems_allowed": draw(st.integers(0, (1 << n) - 1)),
        "task_pol": draw(policies(n)),
        "rr_allocs": draw(st.integers(0, 9)),
        "base": base, "pages": pages,
        "vma_pol": draw(st.one_of(st.none(), st.tuples(policies(n), st.integers(0, pages - 1),
                                                        st.integers(1, pages)))),
        "home": draw(st.one_of(st.none(), st.integers(0, n - 1))),
        "pre": draw(st.lists(st.tuples(st.integers(0, pages - 1), st.integers(1, 40), st.booleans()),
                             max_size=4)),
        "fork": draw(st.booleans()),
        "hole": draw(st.one_of(st.none(), st.tuples(st.sampled_from(["ro", "unmap"]),
                                                    st.integers(0, pages - 1), st.integers(1, 50)))),
        "touch": (draw(st.integers(0, pages - 1)), draw(st.integers(1, pages)), draw(st.booleans())),
    }


def build(sc):
    """The scenario's machine and process, before the measured touch."""
    n = len(sc["mems"])
    first = 0
    nodes = []
    for i in range(n):
        nodes.append(Node(i, sc["mems"][i], range(first, first + sc["cpus"][i])))
        first += sc["cpus"][i]
    topo = Topology(nodes, sc["dist"])
    k, t = Kernel.boot(topo)
    for i in range(n):
        if sc["mems"][i]:                       # sysfs has weights for nodes with memory
            k.pages.free[i] = sc["free"][i]
            k.wi_state.set_weight(i, sc["weights"][i])
    t.cpu = sc["cpu_pick"] % topo.nr_cpus
    allowed = Nodemask(sc["mems_allowed"]) & topo.n_memory
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
    base, pages = sc["base"], sc["pages"]
    mman.sys_mmap(k, t, base, pages * PAGE_SIZE, False, None)
    if sc["vma_pol"] is not None:
        (mode, mask, flags), off, ln = sc["vma_pol"]
        ln = min(ln, pages - off)
        try:
            sp.kernel_mbind(k, t, base + off * PAGE_SIZE, ln * PAGE_SIZE, mode | flags, mask, 65, 0)
            if sc["home"] is not None:
                sp.sys_set_mempolicy_home_node(k, t, base + off * PAGE_SIZE, ln * PAGE_SIZE,
                                               sc["home"], 0)
        except KernelError:
            pass
    for off, ln, write in sc["pre"]:
        for p in range(off, min(pages, off + ln)):
            try:
                do_user_addr_fault(k, t, base + p * PAGE_SIZE, write)
            except (FaultSignal, OutOfMemory):
                break
    if sc["fork"]:
        process.copy_process(k, t)
    if sc["hole"] is not None:
        what, off, ln = sc["hole"]
        ln = min(ln, pages - off)
        if what == "ro":
            mman.sys_mprotect(k, t, base + off * PAGE_SIZE, ln * PAGE_SIZE, False)
        else:
            mman.sys_munmap(k, t, base + off * PAGE_SIZE, ln * PAGE_SIZE)
    return k, t


def outcome(fn) -> str:
    try:
        fn()
    except FaultSignal as s:
        return s.signame
    except OutOfMemory:
        return "SIGKILL"
    return "ok"


def snapshot(k, t):
    mm = t.mm
    ptes = []
    for v in mm.ptes:
        kind = mm.ptes.kind(v)
        mapcount = mm.ptes.get(v).mapcount if kind == KIND_OBJ else None
        ptes.append((v, kind, mm.ptes.nid(v), mm.ptes.is_dirty(v), mapcount))
    return {
        "free": list(k.pages.free),
        "il": (t.il_prev, t.il_weight),
        "pgtables": {s: dict(d) for s, d in mm.pgtables.items()},
        "ptes": ptes,
        "stats": dict(k.fault_stats),
        "vmas": [(v.start, v.end, v.anon_vma is not None) for v in mm.vmas],
        "numa_maps": numa_maps(k, t, t),
    }


def run_both(sc):
    off, ln, write = sc["touch"]
    ln = min(ln, sc["pages"] - off + 3)           # may run past the end: SIGSEGV there
    addr = sc["base"] + off * PAGE_SIZE
    k1, t1 = build(sc)
    r1 = outcome(lambda: bulk.touch_range(k1, t1, addr, ln, write, bulk=True, min_run=1))
    k2, t2 = build(sc)

    def per_page():
        for i in range(ln):
            do_user_addr_fault(k2, t2, addr + i * PAGE_SIZE, write)
    r2 = outcome(per_page)
    return (r1, snapshot(k1, t1)), (r2, snapshot(k2, t2))


@settings(max_examples=300)
@given(scenarios())
def test_bulk_matches_per_page(sc):
    bulk_side, page_side = run_both(sc)
    assert bulk_side[0] == page_side[0]
    for key in page_side[1]:
        assert bulk_side[1][key] == page_side[1][key], key


def _touch_twice_same(topo_nodes, free, setup, pages, write=True):
    sc = {"mems": [256 << 20] * topo_nodes, "cpus": [1] * topo_nodes,
          "dist": [[10 if a == b else 20 for b in range(topo_nodes)] for a in range(topo_nodes)],
          "free": free, "weights": [1] * topo_nodes, "cpu_pick": 0, "mems_allowed": 0,
          "task_pol": (0, 0, 0), "rr_allocs": 0, "base": 1 << 45, "pages": pages,
          "vma_pol": None, "home": None, "pre": [], "fork": False, "hole": None,
          "touch": (0, pages, write)}
    sc.update(setup)
    return run_both(sc)


def test_interleave_with_a_node_running_out_part_way():
    b, p = _touch_twice_same(3, [100, 5000, 5000], {"vma_pol": ((3, 0b111, 0), 0, 3000)}, 3000)
    assert b == p and b[0] == "ok"
    assert "N0=" in b[1]["numa_maps"][0]


def test_weighted_interleave_task_policy_moves_round_robin():
    b, p = _touch_twice_same(4, [4000] * 4, {"task_pol": (6, 0b1111, 0), "rr_allocs": 3}, 2500)
    assert b == p


def test_bind_out_of_memory_stops_at_the_same_page():
    b, p = _touch_twice_same(2, [300, 300], {"vma_pol": ((2, 0b01, 0), 0, 1000)}, 1000)
    assert b == p and b[0] == "SIGKILL"


def test_preferred_many_second_pass():
    b, p = _touch_twice_same(3, [50, 40, 3000], {"vma_pol": ((5, 0b011, 0), 0, 800)}, 800)
    assert b == p and b[0] == "ok"


def test_read_touch_maps_the_zero_page_and_tables_only():
    b, p = _touch_twice_same(2, [1000, 1000], {}, 1200, write=False)
    assert b == p
    assert b[1]["ptes"] and all(kind == 1 for _, kind, *_ in b[1]["ptes"])


def test_place_counts_a_fallback():
    """The engine alone: two nodes, node 0 has 3 pages, pattern all node 0."""
    res_free = [3, 10]
    res = bulk.place(6, np.array([0]), 0, np.array([], dtype=np.int64), np.array([], dtype=np.int64),
                     np.array([], dtype=np.int64), [[0, 1]], res_free)
    nodes = []
    for a, b_, m in res["segs"]:
        nodes += [int(m[0])] * (b_ - a)
    assert nodes == [0, 0, 0, 1, 1, 1]
    assert res_free == [0, 7] and res["oom"] is None


def test_bulk_path_is_off_under_the_checker(monkeypatch):
    from mempolicy.core import sched_points as hooks

    k, _ = Kernel.boot(Topology.simple(2))
    assert bulk.bulk_available(k)
    monkeypatch.setattr(hooks, "mutated", True)
    assert not bulk.bulk_available(k)
    monkeypatch.setattr(hooks, "mutated", False)
    monkeypatch.setenv("MEMPOLICY_BULK", "0")
    assert not bulk.bulk_available(k)
