"""Zonelists and node selection (mempolicy.alloc.topology, mpol_alloc, page_alloc).

Expected zonelists are worked by hand from Linux 7.3 mm/page_alloc.c
find_next_best_node / build_zonelists / __build_all_zonelists:
val = (distance + (n < node) + PENALTY_FOR_NODE_WITH_CPUS if n has CPUs) *
MAX_NUMNODES + node_load[n], strict minimum, node_load reset once and
bumped for the first node of each new distance group.  Interleave values
follow mm/mempolicy.c interleave_nid, weighted_interleave_nid,
interleave_nodes, weighted_interleave_nodes, policy_nodemask and the
examples of kernel-spec.md sections 4.5 and 4.6.
"""

from __future__ import annotations

import errno

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mempolicy.alloc.fault import handle_mm_fault
from mempolicy.alloc.mpol_alloc import (
    WeightedInterleaveState,
    alloc_pages,
    alloc_pages_mpol,
    interleave_nid,
    interleave_nodes,
    policy_nodemask,
    weighted_interleave_nid,
    weighted_interleave_nodes,
)
from mempolicy.alloc.topology import Node, Topology, build_all_zonelists
from mempolicy.core.mempolicy import mpol_new, mpol_set_nodemask
from mempolicy.core.nodemask import Nodemask
from mempolicy.core.slab import PolicyCache
from mempolicy.kernel import Kernel
from mempolicy.syscalls import mman, process
from mempolicy.syscalls.mempolicy import (
    kernel_get_mempolicy,
    kernel_mbind,
    kernel_set_mempolicy,
    sys_set_mempolicy_home_node,
)
from mempolicy.syscalls.migrate import kernel_move_pages
from mempolicy.uapi import (
    MAX_NUMNODES,
    MPOL_BIND,
    MPOL_F_NODE,
    MPOL_INTERLEAVE,
    MPOL_LOCAL,
    MPOL_PREFERRED,
    MPOL_PREFERRED_MANY,
    MPOL_WEIGHTED_INTERLEAVE,
    NO_INTERLEAVE_INDEX,
    PAGE_SIZE,
)

MAXNODE = 1025
M = 512 << 20


def topo(mem, cpus, dist):
    """Nodes with ``mem[i]`` bytes and ``cpus[i]`` CPUs (numbered node by node)."""
    nodes, first = [], 0
    for i, (m, c) in enumerate(zip(mem, cpus)):
        nodes.append(Node(i, m, range(first, first + c)))
        first += c
    return Topology(nodes, dist)


def sym(n, remote=20):
    return [[10 if a == b else remote for b in range(n)] for a in range(n)]


def pol(mode, *nodes, flags=0):
    p = mpol_new(PolicyCache(), mode, flags, Nodemask(nodes))
    mpol_set_nodemask(p, Nodemask(nodes), Nodemask.range(0, 15), Nodemask.range(0, 15))
    return p


# ---------------------------------------------------------------------------
# Zonelists
# ---------------------------------------------------------------------------

# Topology.zonelists are the boot-time lists: mm_core_init() calls build_all_zonelists(NULL)
# (mm/mm_init.c:2650) before the CPUs are added to node_to_cpumask_map (x86 numa_add_cpu),
# so cpumask_of_node() is empty and PENALTY_FOR_NODE_WITH_CPUS never applies there.
# build_all_zonelists(topo, cpus_visible=True) runs the same algorithm with the CPUs seen.

def test_symmetric_four_nodes_round_robin():
    # node_load spreads the equal-distance nodes: each list starts after its own node
    expected = [[0, 1, 2, 3], [1, 2, 3, 0], [2, 3, 0, 1], [3, 0, 1, 2]]
    t = Topology.simple(4)
    assert t.zonelists == expected
    assert build_all_zonelists(t, cpus_visible=True) == expected


def test_asymmetric_ring():
    # ring 0-1-2-3-0 at distance 20, diagonals 30; every node has CPUs, so the CPU
    # penalty is the same for every candidate and both builds agree
    d = [[10, 20, 30, 20],
         [20, 10, 20, 30],
         [30, 20, 10, 20],
         [20, 30, 20, 10]]
    t = topo([M] * 4, [1] * 4, d)
    expected = [[0, 1, 3, 2], [1, 2, 0, 3], [2, 3, 1, 0], [3, 0, 2, 1]]
    assert t.zonelists == expected
    assert build_all_zonelists(t, cpus_visible=True) == expected


def test_nodes_without_cpus_are_preferred_when_cpus_are_visible():
    # PENALTY_FOR_NODE_WITH_CPUS: node 2 (memory only) comes before node 1 for node 0
    t = topo([M, M, M], [1, 1, 0], sym(3))
    assert build_all_zonelists(t, cpus_visible=True) == [[0, 2, 1], [1, 2, 0], [2, 0, 1]]
    # at boot no node has CPUs yet: plain round robin
    assert t.zonelists == [[0, 1, 2], [1, 2, 0], [2, 0, 1]]


def test_memoryless_node_is_skipped():
    # node 2 has CPUs but no memory: it is in nobody's list and its own list starts at
    # a memory node.  Node 2's candidates tie at 21 (20 + 1 for n < node) at boot, so
    # node 0 wins; with CPUs visible node 0 pays the penalty and node 1 wins.
    t = topo([M, M, 0], [1, 0, 1], sym(3))
    assert t.zonelists == [[0, 1], [1, 0], [0, 1]]
    assert build_all_zonelists(t, cpus_visible=True) == [[0, 1], [1, 0], [1, 0]]
    assert t.n_memory == Nodemask([0, 1])
    assert t.n_cpu == Nodemask([0, 2])
    assert t.numa_mem_id(2) == 0
    assert t.cpu_to_node(1) == 2


def test_distance_dominates_load():
    # a nearer node always wins over a less loaded one
    d = [[10, 30, 15], [30, 10, 30], [15, 30, 10]]
    t = topo([M] * 3, [1] * 3, d)
    assert t.zonelists[0] == [0, 2, 1]
    # node 1: 0 -> 30+1=31, 2 -> 30+0=30, so 2 first
    assert t.zonelists[1] == [1, 2, 0]
    assert t.zonelists[2] == [2, 0, 1]


@given(st.integers(2, 6), st.data())
def test_every_zonelist_is_a_permutation_of_memory_nodes(n, data):
    mem = data.draw(st.lists(st.sampled_from([0, M]), min_size=n, max_size=n).filter(any))
    cpus = data.draw(st.lists(st.integers(0, 2), min_size=n, max_size=n).filter(any))
    dist = [[10] * n for _ in range(n)]
    for a in range(n):
        for b in range(a + 1, n):
            # tens apart, so the +1/+1 penalties cannot reorder distance groups
            dist[a][b] = dist[b][a] = data.draw(st.sampled_from([20, 30, 40]))
    t = topo(mem, cpus, dist)
    for node, zl in enumerate(t.zonelists):
        assert sorted(zl) == list(t.n_memory)
        if node in t.n_memory:
            assert zl[0] == node
        # non-decreasing distance from the node along its list
        ds = [dist[node][m] for m in zl if m != node]
        assert ds == sorted(ds)


def test_from_toml(tmp_path):
    p = tmp_path / "m.toml"
    p.write_text('[[node]]\nmem = "1G"\ncpus = 2\n[[node]]\nmem = "256M"\ncpus = 0\n'
                 '[distance]\n"0-1" = 31\n')
    t = Topology.from_toml(p)
    assert t.nr_node_ids == 2 and t.nr_cpus == 2
    assert t.distance(0, 1) == t.distance(1, 0) == 31
    assert t.nodes[1].present_pages == (256 << 20) // PAGE_SIZE
    assert t.cpulist(0) == "0-1" and t.cpulist(1) == ""


# ---------------------------------------------------------------------------
# The page allocator walk
# ---------------------------------------------------------------------------

def test_local_allocation_on_a_memoryless_node_uses_its_zonelist():
    # node 2 (CPU 1, no memory) is nearest to node 1 (15 against 25): preferred_node_policy[2]
    # starts the walk at node 2's zonelist, whose head is node 1 with or without the penalty
    d = [[10, 20, 25], [20, 10, 15], [25, 15, 10]]
    t0 = topo([M, M, 0], [1, 0, 1], d)
    assert t0.zonelists[2] == build_all_zonelists(t0, cpus_visible=True)[2] == [1, 0]
    k, t = Kernel.boot(t0)
    process.sched_setaffinity(k, t, 1)          # CPU 1 is node 2's
    assert t.numa_node_id() == 2
    assert t.numa_mem_id() == 1
    assert alloc_pages(k, t) == 1


def test_full_node_falls_back_along_the_preferred_nodes_zonelist():
    k, t = Kernel.boot(Topology.simple(4))
    p = pol(MPOL_PREFERRED, 2)
    assert alloc_pages_mpol(k, t, p, 0, 0) == 2
    k.pages.free[2] = 0
    assert alloc_pages_mpol(k, t, p, 0, 0) == 3     # zonelist of node 2: 2 3 0 1
    k.pages.free[3] = 0
    assert alloc_pages_mpol(k, t, p, 0, 0) == 0


def test_bind_never_leaves_its_nodes():
    k, t = Kernel.boot(Topology.simple(4))
    p = pol(MPOL_BIND, 1, 3)
    assert alloc_pages_mpol(k, t, p, 0, 0) == 1      # zonelist of node 0: 0 1 2 3
    k.pages.free[1] = 0
    assert alloc_pages_mpol(k, t, p, 0, 0) == 3
    k.pages.free[3] = 0
    assert alloc_pages_mpol(k, t, p, 0, 0) is None   # OOM, no fallback outside the mask


def test_preferred_many_falls_back_to_any_node():
    # alloc_pages_preferred_many: first the mask without reclaim, then any node
    k, t = Kernel.boot(Topology.simple(4))
    p = pol(MPOL_PREFERRED_MANY, 2, 3)
    assert alloc_pages_mpol(k, t, p, 0, 0) == 2
    k.pages.free[2] = k.pages.free[3] = 0
    assert alloc_pages_mpol(k, t, p, 0, 0) == 0


def test_cpuset_wins_over_policy():
    k, t = Kernel.boot(Topology.simple(4))
    t.mems_allowed = Nodemask([0, 1])
    assert alloc_pages_mpol(k, t, pol(MPOL_PREFERRED, 3), 0, 0) == 0
    # BIND that does not intersect mems_allowed: the mask is ignored (cpuset only)
    assert policy_nodemask(t, pol(MPOL_BIND, 3), 0, 0, k.wi_state) == (0, None)
    assert alloc_pages_mpol(k, t, pol(MPOL_BIND, 3), 0, 0) == 0


# ---------------------------------------------------------------------------
# policy_nodemask (kernel-spec.md 4.2)
# ---------------------------------------------------------------------------

def test_policy_nodemask_table():
    k, t = Kernel.boot(Topology.simple(4))
    wi = k.wi_state
    assert policy_nodemask(t, pol(MPOL_LOCAL), 0, 1, wi) == (1, None)
    assert policy_nodemask(t, pol(MPOL_PREFERRED, 3), 0, 1, wi) == (3, None)
    assert policy_nodemask(t, pol(MPOL_PREFERRED_MANY, 2, 3), 0, 1, wi) == (1, Nodemask([2, 3]))
    assert policy_nodemask(t, pol(MPOL_BIND, 0, 2), 0, 1, wi) == (1, Nodemask([0, 2]))
    b = pol(MPOL_BIND, 0, 2)
    b.home_node = 2
    assert policy_nodemask(t, b, 0, 1, wi) == (2, Nodemask([0, 2]))
    pm = pol(MPOL_PREFERRED_MANY, 0, 2)
    pm.home_node = 0
    assert policy_nodemask(t, pm, 0, 1, wi) == (0, Nodemask([0, 2]))
    # home_node is ignored by other modes
    p = pol(MPOL_PREFERRED, 3)
    p.home_node = 0
    assert policy_nodemask(t, p, 0, 1, wi) == (3, None)
    assert policy_nodemask(t, pol(MPOL_INTERLEAVE, 1, 2), 5, 0, wi) == (2, None)


def test_home_node_picks_the_start_of_the_walk():
    # set_mempolicy_home_node: allocation walks the home node's zonelist inside the mask
    k, t = Kernel.boot(Topology.simple(4))
    base = 0x10000000
    mman.sys_mmap(k, t, base, 2 * PAGE_SIZE, False, None)
    kernel_mbind(k, t, base, 2 * PAGE_SIZE, MPOL_BIND, 0b1110, MAXNODE, 0)
    sys_set_mempolicy_home_node(k, t, base, 2 * PAGE_SIZE, 3, 0)
    handle_mm_fault(k, t, base, write=True)
    assert kernel_move_pages(k, t, 0, [base], None, 0)[1] == [3]


# ---------------------------------------------------------------------------
# Interleave (kernel-spec.md 4.5 and 4.6)
# ---------------------------------------------------------------------------

def test_interleave_nid_spec_example():
    # nodes {0,2,5}, anonymous page at 0x7f0000003000: vpn 34091302915 % 3 = 1 -> node 2
    assert 0x7f0000003000 >> 12 == 34091302915
    assert interleave_nid(pol(MPOL_INTERLEAVE, 0, 2, 5), 34091302915, 0) == 2


def test_interleave_nid_spec_example_through_a_fault():
    k, t = Kernel.boot(Topology.simple(6))
    addr = 0x7f0000003000
    mman.sys_mmap(k, t, addr, PAGE_SIZE, False, None)
    kernel_mbind(k, t, addr, PAGE_SIZE, MPOL_INTERLEAVE, 0b100101, MAXNODE, 0)
    handle_mm_fault(k, t, addr, write=True)
    assert kernel_move_pages(k, t, 0, [addr], None, 0)[1] == [2]


@given(st.sets(st.integers(0, 15), min_size=1), st.integers(0, 1 << 64))
def test_interleave_nid_is_the_ilx_mod_n_th_node(nodes, ilx):
    assert interleave_nid(pol(MPOL_INTERLEAVE, *nodes), ilx, 0) == sorted(nodes)[ilx % len(nodes)]


def test_interleave_nid_of_empty_mask_is_local():
    p = pol(MPOL_INTERLEAVE, 1)
    p.nodes = Nodemask()
    assert interleave_nid(p, 7, 3) == 3
    assert weighted_interleave_nid(p, 7, WeightedInterleaveState(4), 3) == 3


def test_weighted_interleave_nid_two_to_one():
    # kernel-spec.md 4.6: nodes {0,1}, weights {2,1}: ilx 0,1,2,... gives 0,0,1,0,0,1
    k, _ = Kernel.boot(Topology.simple(2))
    k.wi_state.set_weight(0, 2)
    p = pol(MPOL_WEIGHTED_INTERLEAVE, 0, 1)
    assert [weighted_interleave_nid(p, i, k.wi_state, 0) for i in range(6)] == [0, 0, 1, 0, 0, 1]


def test_weighted_interleave_nid_man_page_example():
    # nodes {0,2,5}, weights {4,7,9}: blocks of 4, 7 and 9 in a period of 20
    k, _ = Kernel.boot(Topology.simple(6))
    for n, w in ((0, 4), (2, 7), (5, 9)):
        k.wi_state.set_weight(n, w)
    p = pol(MPOL_WEIGHTED_INTERLEAVE, 0, 2, 5)
    got = [weighted_interleave_nid(p, i, k.wi_state, 0) for i in range(40)]
    assert got == ([0] * 4 + [2] * 7 + [5] * 9) * 2


def test_weighted_interleave_without_weights_is_plain_interleave():
    # wi_state NULL: every weight is 1
    wi = WeightedInterleaveState(4)
    p = pol(MPOL_WEIGHTED_INTERLEAVE, 1, 3)
    assert [weighted_interleave_nid(p, i, wi, 0) for i in range(4)] == [1, 3, 1, 3]
    assert wi.get_il_weight(2) == 1


@pytest.mark.parametrize("w", [0, 256, -1])
def test_weight_must_be_1_to_255(w):
    # 6.16+ node_store: 0, empty or invalid input is EINVAL; kstrtou8 rejects > 255
    wi = WeightedInterleaveState(2)
    with pytest.raises(ValueError):
        wi.set_weight(0, w)
    assert wi.iw_table is None


def test_setting_one_weight_sets_the_others_to_one():
    # node_store: a new table starts with every entry 1
    wi = WeightedInterleaveState(3)
    wi.set_weight(1, 5)
    assert wi.iw_table == [1, 5, 1] and wi.mode_auto is False


def test_interleave_nodes_round_robin_after_set_mempolicy(kernel4):
    k, t = kernel4
    t.il_prev = 2
    kernel_set_mempolicy(k, t, MPOL_INTERLEAVE, 0b1010, MAXNODE)
    assert t.il_prev == MAX_NUMNODES - 1 and t.il_weight == 0
    got = [interleave_nodes(t, t.mempolicy) for _ in range(5)]
    assert got == [1, 3, 1, 3, 1]
    assert t.il_prev == 1


def test_get_mempolicy_node_reports_next_interleave_node(kernel4):
    k, t = kernel4
    kernel_set_mempolicy(k, t, MPOL_INTERLEAVE, 0b1010, MAXNODE)
    assert kernel_get_mempolicy(k, t, None, 0, 0, MPOL_F_NODE)[0] == 1
    assert alloc_pages(k, t) == 1                  # task round robin: no interleave index
    assert kernel_get_mempolicy(k, t, None, 0, 0, MPOL_F_NODE)[0] == 3


def test_bind_does_not_reset_il_prev(kernel4):
    k, t = kernel4
    t.il_prev = 2
    kernel_set_mempolicy(k, t, MPOL_BIND, 0b1, MAXNODE)
    assert t.il_prev == 2


def test_weighted_interleave_nodes_two_to_one():
    # kernel-spec.md 4.6: after set_mempolicy with weights {0:2, 1:1}: 0,0,1,0,0,1
    k, t = Kernel.boot(Topology.simple(2))
    k.wi_state.set_weight(0, 2)
    kernel_set_mempolicy(k, t, MPOL_WEIGHTED_INTERLEAVE, 0b11, MAXNODE)
    got = [weighted_interleave_nodes(t, t.mempolicy, k.wi_state) for _ in range(6)]
    assert got == [0, 0, 1, 0, 0, 1]


def test_get_mempolicy_node_for_weighted_interleave():
    # do_get_mempolicy: il_prev while il_weight is left, else next_node_in(il_prev)
    k, t = Kernel.boot(Topology.simple(2))
    k.wi_state.set_weight(0, 2)
    kernel_set_mempolicy(k, t, MPOL_WEIGHTED_INTERLEAVE, 0b11, MAXNODE)
    node = lambda: kernel_get_mempolicy(k, t, None, 0, 0, MPOL_F_NODE)[0]
    assert node() == 0
    weighted_interleave_nodes(t, t.mempolicy, k.wi_state)   # 0, weight 1 left
    assert node() == 0
    weighted_interleave_nodes(t, t.mempolicy, k.wi_state)   # 0, weight 0 left
    assert node() == 1


def test_weighted_interleave_nodes_restarts_when_il_prev_left_the_mask():
    k, t = Kernel.boot(Topology.simple(4))
    k.wi_state.set_weight(2, 3)
    p = pol(MPOL_WEIGHTED_INTERLEAVE, 2, 3)
    t.il_prev, t.il_weight = 1, 5           # weight left on a node not in the policy
    assert weighted_interleave_nodes(t, p, k.wi_state) == 2
    assert t.il_weight == 2


def test_interleave_through_policy_nodemask_uses_index_or_round_robin():
    k, t = Kernel.boot(Topology.simple(4))
    p = pol(MPOL_INTERLEAVE, 0, 1, 2)
    t.il_prev = MAX_NUMNODES - 1
    assert policy_nodemask(t, p, 4, 3, k.wi_state) == (1, None)
    assert t.il_prev == MAX_NUMNODES - 1            # an index does not touch il_prev
    assert policy_nodemask(t, p, NO_INTERLEAVE_INDEX, 3, k.wi_state) == (0, None)
    assert t.il_prev == 0


def test_page_table_pages_advance_the_task_round_robin(kernel4):
    # trace-format.md: the first write to a fresh 512 GiB region allocates three
    # page-table pages, each a task-policy allocation without interleave index
    k, t = kernel4
    base = 0x10000000
    mman.sys_mmap(k, t, base, PAGE_SIZE, False, None)
    kernel_set_mempolicy(k, t, MPOL_INTERLEAVE, 0b11, MAXNODE)
    node = lambda: kernel_get_mempolicy(k, t, None, 0, 0, MPOL_F_NODE)[0]
    assert node() == 0
    handle_mm_fault(k, t, base, write=True)        # 3 table pages: 0, 1, 0
    assert node() == 1
    # the data page itself used the VMA index (vpn), not the round robin
    assert kernel_move_pages(k, t, 0, [base], None, 0)[1] == [(base >> 12) % 2]


def test_anonymous_interleave_follows_virtual_page_number():
    k, t = Kernel.boot(Topology.simple(3))
    base = 0x10001000                               # vpn 0x10001 = 65537, 65537 % 3 = 2
    mman.sys_mmap(k, t, base, 3 * PAGE_SIZE, False, None)
    kernel_mbind(k, t, base, 3 * PAGE_SIZE, MPOL_INTERLEAVE, 0b111, MAXNODE, 0)
    for i in range(3):
        handle_mm_fault(k, t, base + i * PAGE_SIZE, write=True)
    status = kernel_move_pages(k, t, 0, [base + i * PAGE_SIZE for i in range(3)], None, 0)[1]
    assert status == [2, 0, 1]


def test_sched_setaffinity_rejects_offline_cpu(kernel4):
    k, t = kernel4
    from mempolicy.core.mempolicy import KernelError
    with pytest.raises(KernelError) as ei:
        process.sched_setaffinity(k, t, 99)
    assert ei.value.errno == errno.EINVAL
