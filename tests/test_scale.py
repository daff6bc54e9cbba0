"""The structures that keep the model flat at scale: RangeList (VMAs, shared-policy
ranges), the compact PageTable, and whole runs at terabyte and 65,530-VMA sizes.
Nothing here is timed (benchmarks/ does that); these check results and state."""

from __future__ import annotations

import random

import pytest

from mempolicy.alloc.fault import do_user_addr_fault
from mempolicy.alloc.page_alloc import Folio
from mempolicy.alloc.topology import Topology
from mempolicy.core import rangelist
from mempolicy.core.rangelist import RangeList
from mempolicy.kernel import Kernel
from mempolicy.proc.task_mmu import numa_maps
from mempolicy.scopes import pagetable
from mempolicy.scopes.pagetable import KIND_ANON, KIND_OBJ, KIND_ZERO, PageTable
from mempolicy.syscalls import mempolicy as sp
from mempolicy.syscalls import mman, process
from mempolicy.trace.run import run_trace_text
from mempolicy.uapi import MPOL_BIND, PAGE_SIZE

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


class R:
    def __init__(self, start):
        self.start = start

    def __repr__(self):
        return f"R({self.start})"


# -- RangeList ----------------------------------------------------------------------

@settings(max_examples=200)
@given(st.lists(st.tuples(st.sampled_from("aarkp"), st.integers(0, 400)), max_size=300))
def test_rangelist_behaves_like_a_sorted_list(ops):
    old = rangelist.BLOCK
    rangelist.BLOCK = 3                       # tiny blocks: splits and empty blocks often
    try:
        rl, model = RangeList(), []
        for op, key in ops:
            starts = [x.start for x in model]
            if op == "a" and key not in starts:
                it = R(key)
                rl.add(it)
                model.append(it)
                model.sort(key=lambda x: x.start)
            elif op == "r" and model:
                it = model.pop(key % len(model))
                rl.remove(it)
            elif op == "k" and model:
                i = key % len(model)
                lo = model[i - 1].start + 1 if i else 0
                hi = model[i + 1].start - 1 if i + 1 < len(model) else 10_000
                if lo <= hi:
                    rl.rekey(model[i], random.Random(key).randint(lo, hi))
            elif op == "p" and model:
                i = key % len(model)
                assert rl.pop(i) is model.pop(i)
            assert list(rl) == model and len(rl) == len(model)
            assert list(reversed(rl)) == model[::-1]
            for q in (key - 1, key, key + 1):
                below = [x for x in model if x.start <= q]
                above = [x for x in model if x.start > q]
                assert rl.floor(q) is (below[-1] if below else None)
                assert rl.after(q) is (above[0] if above else None)
                assert rl.bisect_right(q) == len(below)
            for i, x in enumerate(model):
                assert rl[i] is x and rl.index(x) == i
                assert rl.prev(x) is (model[i - 1] if i else None)
                assert rl.next(x) is (model[i + 1] if i + 1 < len(model) else None)
    finally:
        rangelist.BLOCK = old


def test_shared_tree_of_100000_ranges_in_random_order():
    k, t = Kernel.boot(Topology.simple(2, 1 << 30))
    f = mman.memfd_create(k, t, "m", 400_000)
    order = list(range(0, 200_000, 2))
    random.Random(1).shuffle(order)
    sh = f.inode.policy
    for i in order:
        sh.mpol_set_shared_policy(i, 1, k.preferred_node_policy[i % 2])
    assert len(sh.nodes) == 100_000
    assert [n.start for n in sh.nodes] == list(range(0, 200_000, 2))
    for idx in random.Random(2).sample(range(200_000), 2000):
        pol = sh.mpol_shared_policy_lookup(idx)
        if idx % 2:
            assert pol is None
        else:
            assert pol.nodes.first() == idx % 2
            sp.mpol_cond_put(pol)
    f.inode.put()
    assert not sh.nodes and k.policy_cache.stats.active == 0


def test_65530_vmas_numa_maps_and_exit():
    k, t = Kernel.boot(Topology.simple(2, 1 << 30))
    free0 = list(k.pages.free)
    n = 65530
    base = 0x200000000000
    mman.sys_mmap(k, t, base, n * PAGE_SIZE, False, None)
    order = list(range(0, n, 2))
    random.Random(3).shuffle(order)
    for i in order:
        sp.kernel_mbind(k, t, base + i * PAGE_SIZE, PAGE_SIZE, MPOL_BIND, 0b10, 65, 0)
    assert len(t.mm.vmas) == n
    for i in range(0, n, 5):
        do_user_addr_fault(k, t, base + i * PAGE_SIZE, True)
    lines = numa_maps(k, t, t)
    assert len(lines) == n
    assert sum("anon=1" in ln for ln in lines) == len(range(0, n, 5))
    assert all(ln.startswith(f"{base + i * PAGE_SIZE:08x} ") for i, ln in enumerate(lines))
    process.do_exit(k, t)
    assert k.pages.free == free0 and k.policy_cache.stats.active == 0


# -- PageTable ------------------------------------------------------------------------

@settings(max_examples=150)
@given(st.lists(st.tuples(st.sampled_from(["map", "zero", "obj", "unmap", "get", "dirty", "range"]),
                          st.integers(0, 300), st.integers(0, 3), st.integers(1, 90)),
                max_size=120))
def test_pagetable_behaves_like_a_dict(ops):
    k, _ = Kernel.boot(Topology.simple(4))
    saved = (pagetable.CHUNK_SHIFT, pagetable.CHUNK_PAGES, pagetable.CHUNK_MASK)
    pagetable.CHUNK_SHIFT, pagetable.CHUNK_PAGES, pagetable.CHUNK_MASK = 5, 32, 31
    try:
        pt = PageTable(k)
        model: dict[int, list] = {}                # vpn -> [nid, kind, dirty, folio]
        free = list(k.pages.free)
        base = 1000
        for op, off, nid, ln in ops:
            v = base + off
            if op in ("map", "zero", "obj") and v not in model:
                if op == "zero":
                    pt.map(v, k.pages.zero_page, False)
                    model[v] = [k.pages.zero_page.nid, KIND_ZERO, False, None]
                elif op == "map":
                    pt.map(v, Folio(nid, anon=True, index=v), nid % 2 == 0)
                    model[v] = [nid, KIND_ANON, nid % 2 == 0, None]
                else:
                    f = Folio(nid, anon=True, index=v + 1)      # not its own vpn: an object
                    pt.map(v, f, True)
                    model[v] = [nid, KIND_OBJ, True, f]
                free[nid] -= op != "zero"
                k.pages.free[nid] -= op != "zero"
            elif op == "unmap" and v in model:
                pt.unmap(k, v)
                m = model.pop(v)
                if m[1] != KIND_ZERO:
                    free[m[0]] += 1
            elif op == "get" and v in model:
                page = pt.get(v)
                assert page.nid == model[v][0]
                if model[v][1] == KIND_ANON:
                    model[v][1], model[v][3] = KIND_OBJ, page
                assert model[v][3] is None or page is model[v][3]
            elif op == "dirty" and v in model:
                pt.set_dirty(v, not model[v][2])
                model[v][2] = not model[v][2]
            elif op == "range":
                n = pt.unmap_range(k, v, v + ln)
                gone = [u for u in model if v <= u < v + ln]
                assert n == sum(model[u][1] != KIND_ZERO for u in gone)
                for u in gone:
                    m = model.pop(u)
                    if m[1] != KIND_ZERO:
                        free[m[0]] += 1
            assert list(pt) == sorted(model) and len(pt) == len(model)
            assert k.pages.free == free
            for u, (mn, kind, dirty, _) in model.items():
                assert pt.kind(u) == kind and pt.nid(u) == mn and pt.is_dirty(u) == dirty
            lo, hi = base + off // 2, base + off + ln
            inr = {u: m for u, m in model.items() if lo <= u < hi and m[1] != KIND_ZERO}
            pages, anon, dirty, mapmax, nodes = pt.stats(lo, hi, k.topo.n_memory)
            assert pages == anon == len(inr)
            assert dirty == sum(m[2] for m in inr.values())
            assert mapmax == (1 if inr else 0)
            want: dict[int, int] = {}
            for m in inr.values():
                want[m[0]] = want.get(m[0], 0) + 1
            assert nodes == want
            assert list(pt.present(lo, hi)) == sorted(u for u in model if lo <= u < hi)
            runs = pt.runs(lo, hi)
            assert runs[0][0] == lo and runs[-1][1] == hi
            for a, b, kind in runs:
                assert all(model.get(u, [0, 0])[1] == kind for u in range(a, b))
    finally:
        pagetable.CHUNK_SHIFT, pagetable.CHUNK_PAGES, pagetable.CHUNK_MASK = saved


def test_a_private_page_costs_one_byte_and_becomes_an_object_when_asked():
    k, t = Kernel.boot(Topology.simple(2))
    mman.sys_mmap(k, t, 0x200000000000, 64 * PAGE_SIZE, False, None)
    for i in range(64):
        do_user_addr_fault(k, t, 0x200000000000 + i * PAGE_SIZE, True)
    pt = t.mm.ptes
    vpn = 0x200000000000 >> 12
    assert pt.kind(vpn) == KIND_ANON and pt.memory_bytes() <= 128
    f = pt[vpn]
    assert pt.kind(vpn) == KIND_OBJ and pt[vpn] is f and f.mapcount == 1 and f.index == vpn
    child = process.copy_process(k, t)
    assert f.mapcount == 2 and child.mm.ptes[vpn] is f


# -- terabyte runs ----------------------------------------------------------------------

TIB_HEADER = "".join(f"node {i} mem=256G cpus={2 if i < 4 else 0}\n" for i in range(8))


@pytest.mark.skipif(not pagetable._numpy(), reason="needs numpy")
def test_a_trace_touching_a_terabyte():
    pages = 1 << 28
    out = run_trace_text(TIB_HEADER + f"""mmap A {pages} @0x100000000000
mbind A 0 {pages} interleave 0-7
touch A 0 {pages}
numa_maps A
where A {pages - 8} 8
munmap A 0 {pages}
numa_maps A
""").splitlines()
    assert out[2] == "11 touch: ok"
    q = pages // 8
    assert out[3] == (f"12 numa_maps: A+0 interleave:0-7 anon={pages} dirty={pages} "
                      + " ".join(f"N{i}={q}" for i in range(8)) + " kernelpagesize_kB=4")
    assert out[4] == "13 where: 0 1 2 3 4 5 6 7"
    assert out[5:] == ["14 munmap: ok", "15 numa_maps:"]


@pytest.mark.skipif(not pagetable._numpy(), reason="needs numpy")
def test_terabyte_bind_with_fallback_frees_everything_on_munmap():
    k, t = Kernel.boot(Topology.simple(8, 256 << 30, 2))
    free0 = list(k.pages.free)
    base, pages = 0x100000000000, 1 << 28
    mman.sys_mmap(k, t, base, pages * PAGE_SIZE, False, None)
    sp.kernel_mbind(k, t, base, pages * PAGE_SIZE, MPOL_BIND, 0b00111111, 65, 0)
    from mempolicy.alloc.bulk import touch_range
    touch_range(k, t, base, pages, True)
    counts = t.mm.ptes.node_counts(base >> 12, (base >> 12) + pages)
    assert sum(counts.values()) == pages and set(counts) <= set(range(6))
    tables0 = sum(nid == 0 for d in t.mm.pgtables.values() for nid in d.values())
    assert k.pages.free[0] == 0 and counts[0] + tables0 == free0[0]   # node 0 filled, then fallback
    assert sum(len(d) for d in t.mm.pgtables.values()) == (pages >> 9) + 1024 + 2
    assert t.mm.ptes.memory_bytes() <= pages + (1 << 16)
    mman.sys_munmap(k, t, base, pages * PAGE_SIZE)
    assert k.pages.free == free0 and len(t.mm.ptes) == 0
    assert not any(t.mm.pgtables.values())


def test_interleave_trace_of_a_few_gigabytes_page_by_page_and_bulk_agree():
    text = TIB_HEADER + """mmap A 600000
set_mempolicy weighted_interleave 0-7
mbind A 1000 500000 interleave 1,3,5
touch A 0 600000
numa_maps A
get_mempolicy node
munmap A 200000 1000
numa_maps A
get_mempolicy node
"""
    from mempolicy.trace.parser import parse_trace
    from mempolicy.trace.run import run_trace

    tr = parse_trace(text)
    assert run_trace(tr, bulk=True) == run_trace(tr, bulk=False)
