"""The shmem shared-policy range tree (mempolicy.scopes.shmem).

Kernel rules (mm/mempolicy.c sp_lookup, sp_alloc, shared_policy_replace,
mpol_shared_policy_lookup, mpol_set_shared_policy, mpol_free_shared_policy;
mm/shmem.c shmem_get_policy; kernel-spec.md section 2.5): ranges are
half-open page offsets, each sp_node owns its own copy of the policy marked
MPOL_F_SHARED (refcnt 1), a split copies the policy, ranges are never
coalesced, a lookup takes a reference that mpol_cond_put drops.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mempolicy.alloc.fault import handle_mm_fault
from mempolicy.alloc.topology import Topology
from mempolicy.core.mempolicy import FreedMempolicy, mpol_cond_put, mpol_new, mpol_put
from mempolicy.core.nodemask import Nodemask
from mempolicy.core.slab import PolicyCache
from mempolicy.kernel import Kernel
from mempolicy.proc.task_mmu import numa_maps
from mempolicy.scopes.shmem import SharedPolicy, SpNode
from mempolicy.syscalls import mman, process
from mempolicy.syscalls.mempolicy import kernel_get_mempolicy, kernel_mbind
from mempolicy.syscalls.migrate import kernel_move_pages
from mempolicy.uapi import (
    MPOL_BIND,
    MPOL_DEFAULT,
    MPOL_F_ADDR,
    MPOL_F_SHARED,
    MPOL_INTERLEAVE,
    MPOL_PREFERRED,
    PAGE_SIZE,
)

MAXNODE = 1025
# examples per sequence property; MEMPOLICY_PROPERTY_EXAMPLES=2000 for a long run
PROPERTY_EXAMPLES = int(os.environ.get("MEMPOLICY_PROPERTY_EXAMPLES", "150"))


def policy(cache, *nodes, mode=MPOL_BIND):
    pol = mpol_new(cache, mode, 0, Nodemask(nodes))
    pol.nodes = Nodemask(nodes)
    return pol


def ranges(sp):
    return [(n.start, n.end, n.policy) for n in sp.nodes]


def lookup_nodes(sp, idx):
    """The nodes of the policy at ``idx`` (None when none), dropping the lookup's reference."""
    pol = sp.mpol_shared_policy_lookup(idx)
    if pol is None:
        return None
    assert pol.flags & MPOL_F_SHARED
    nodes = pol.nodes
    mpol_cond_put(pol)
    return nodes


# ---------------------------------------------------------------------------
# kernel-spec.md 2.5 worked example
# ---------------------------------------------------------------------------

def test_spec_example_split_and_clear():
    cache = PolicyCache()
    sp = SharedPolicy(cache)
    P = policy(cache, 0)
    Q = policy(cache, 1)
    sp.mpol_set_shared_policy(0, 100, P)
    [(s, e, p_node)] = ranges(sp)
    assert (s, e) == (0, 100)
    assert p_node is not P                     # sp_alloc stores mpol_dup(pol)
    assert p_node.flags & MPOL_F_SHARED and p_node.refcnt == 1
    assert not P.flags & MPOL_F_SHARED and P.refcnt == 1

    # [10,20) Q gives [0,10) P, [10,20) Q', [20,100) P''
    sp.mpol_set_shared_policy(10, 10, Q)
    r = ranges(sp)
    assert [(s, e) for s, e, _ in r] == [(0, 10), (10, 20), (20, 100)]
    assert r[0][2] is p_node                   # the old node, trimmed (n->end = start)
    assert r[1][2].nodes == Nodemask([1]) and r[1][2] is not Q
    assert r[2][2] is not p_node               # the split tail owns a copy ...
    assert r[2][2].nodes == Nodemask([0])
    assert r[2][2].flags & MPOL_F_SHARED       # ... a struct copy, SHARED kept
    assert all(p.refcnt == 1 for _, _, p in r)

    # MPOL_DEFAULT on [5,25) gives [0,5) P, [25,100) P''
    tail = r[2][2]
    q_node = r[1][2]
    sp.mpol_set_shared_policy(5, 20, None)
    r2 = ranges(sp)
    assert [(s, e) for s, e, _ in r2] == [(0, 5), (25, 100)]
    assert r2[0][2] is p_node and r2[1][2] is tail
    assert type(q_node) is FreedMempolicy      # the fully covered node was sp_delete'd

    mpol_put(P)
    mpol_put(Q)
    sp.mpol_free_shared_policy()
    assert sp.nodes == []
    assert cache.stats.active == 0


def test_lookups_in_the_spec_example():
    cache = PolicyCache()
    sp = SharedPolicy(cache)
    P, Q = policy(cache, 0), policy(cache, 1)
    sp.mpol_set_shared_policy(0, 100, P)
    sp.mpol_set_shared_policy(10, 10, Q)
    expect = {0: [0], 9: [0], 10: [1], 19: [1], 20: [0], 99: [0]}
    for idx, nodes in expect.items():
        assert lookup_nodes(sp, idx) == Nodemask(nodes)
    assert lookup_nodes(sp, 100) is None
    assert all(n.policy.refcnt == 1 for n in sp.nodes)


def test_lookup_takes_a_reference():
    cache = PolicyCache()
    sp = SharedPolicy(cache)
    P = policy(cache, 2)
    sp.mpol_set_shared_policy(3, 2, P)
    node_pol = sp.nodes[0].policy
    got = sp.mpol_shared_policy_lookup(4)
    assert got is node_pol and got.refcnt == 2
    mpol_cond_put(got)
    assert node_pol.refcnt == 1
    assert sp.lock.readers == 0 and not sp.lock.writer


def test_lookup_in_an_empty_tree():
    sp = SharedPolicy(PolicyCache())
    assert sp.mpol_shared_policy_lookup(0) is None


def test_ranges_are_never_coalesced():
    cache = PolicyCache()
    sp = SharedPolicy(cache)
    P = policy(cache, 0)
    sp.mpol_set_shared_policy(0, 10, P)
    sp.mpol_set_shared_policy(10, 10, P)
    assert [(s, e) for s, e, _ in ranges(sp)] == [(0, 10), (10, 20)]
    assert sp.nodes[0].policy is not sp.nodes[1].policy


def test_replace_trims_head_and_tail():
    cache = PolicyCache()
    sp = SharedPolicy(cache)
    A, B, C = policy(cache, 0), policy(cache, 1), policy(cache, 2)
    sp.mpol_set_shared_policy(0, 10, A)
    sp.mpol_set_shared_policy(20, 10, B)
    sp.mpol_set_shared_policy(5, 20, C)       # trims A's tail and B's head
    r = ranges(sp)
    assert [(s, e) for s, e, _ in r] == [(0, 5), (5, 25), (25, 30)]
    assert [p.nodes for _, _, p in r] == [Nodemask([0]), Nodemask([2]), Nodemask([1])]


def test_sp_lookup_returns_first_intersecting_node():
    cache = PolicyCache()
    sp = SharedPolicy(cache)
    for i, start in enumerate((0, 5, 10)):
        sp.mpol_set_shared_policy(start, 5, policy(cache, i))
    assert sp.sp_lookup(3, 12) == 0
    assert sp.sp_lookup(5, 6) == 1
    assert sp.sp_lookup(7, 100) == 1
    assert sp.sp_lookup(15, 20) is None
    sp.mpol_set_shared_policy(5, 5, None)
    assert sp.sp_lookup(5, 10) is None
    assert sp.sp_lookup(6, 11) == 1           # now the [10,15) node


def test_free_shared_policy_puts_every_node():
    cache = PolicyCache()
    sp = SharedPolicy(cache)
    P = policy(cache, 0)
    for start in range(0, 40, 10):
        sp.mpol_set_shared_policy(start, 5, P)
    assert cache.stats.active == 5
    sp.mpol_free_shared_policy()
    assert cache.stats.active == 1 and sp.nodes == []
    mpol_put(P)
    cache.check_no_leaks()


def test_2008_protocol_shares_the_callers_object():
    # 2.6.26 sp_alloc: mpol_get(pol); pol->flags |= MPOL_F_SHARED (no copy)
    cache = PolicyCache()
    sp = SharedPolicy(cache, protocol="2008")
    P = policy(cache, 0)
    sp.mpol_set_shared_policy(0, 100, P)
    assert sp.nodes[0].policy is P
    assert P.refcnt == 2 and P.flags & MPOL_F_SHARED
    sp.mpol_set_shared_policy(10, 10, None)     # split: the tail shares P too
    assert [n.policy for n in sp.nodes] == [P, P]
    assert P.refcnt == 3
    sp.mpol_free_shared_policy()
    assert P.refcnt == 1
    mpol_put(P)
    assert cache.stats.active == 0


# ---------------------------------------------------------------------------
# Property: any sequence of set/clear
# ---------------------------------------------------------------------------

SIZE = 48
set_ops = st.lists(
    st.tuples(st.integers(0, SIZE - 1), st.integers(1, SIZE), st.booleans()),
    max_size=25,
)


@settings(max_examples=PROPERTY_EXAMPLES)
@given(set_ops)
def test_any_sequence_of_set_and_clear(seq):
    cache = PolicyCache()
    sp = SharedPolicy(cache)
    owner = [None] * (SIZE + SIZE)               # op index of the last set, None after a clear
    callers = []
    for i, (start, length, is_set) in enumerate(seq):
        pol = None
        if is_set:
            pol = policy(cache, i)               # nodes {i} tags the operation
            callers.append(pol)
        sp.mpol_set_shared_policy(start, length, pol)
        for idx in range(start, start + length):
            owner[idx] = i if is_set else None

        nodes = sp.nodes
        # sorted, disjoint, never empty
        for a, b in zip(nodes, nodes[1:]):
            assert a.end <= b.start
        assert all(n.start < n.end for n in nodes)
        assert sp._starts == [n.start for n in nodes]
        # one private, SHARED-marked object with refcnt 1 per node
        assert len({id(n.policy) for n in nodes}) == len(nodes)
        for n in nodes:
            assert n.policy.refcnt == 1 and n.policy.flags & MPOL_F_SHARED
        # every page reports the last operation that covered it
        for idx in range(len(owner)):
            got = lookup_nodes(sp, idx)
            want = None if owner[idx] is None else Nodemask([owner[idx]])
            assert got == want, (idx, got, want)
        for n in nodes:
            assert n.policy.refcnt == 1         # lookups' references were dropped
        # the callers' objects are untouched
        assert all(p.refcnt == 1 and not p.flags & MPOL_F_SHARED for p in callers)
        assert cache.stats.active == len(nodes) + len(callers)

    sp.mpol_free_shared_policy()
    for p in callers:
        mpol_put(p)
    assert cache.stats.active == 0


# ---------------------------------------------------------------------------
# Through the system calls: the policy belongs to the object
# ---------------------------------------------------------------------------

A = 0x10000000
B = 0x20000000


def test_mbind_sets_policy_at_the_file_offset():
    k, t = Kernel.boot(Topology.simple(2))
    f = mman.memfd_create(k, t, "f", 16)
    mman.sys_mmap(k, t, A, 4 * PAGE_SIZE, True, f, off_pages=6)
    kernel_mbind(k, t, A + PAGE_SIZE, 2 * PAGE_SIZE, MPOL_BIND, 0b10, MAXNODE, 0)
    # vma_replace_policy on the split middle VMA: [pgoff 7, 9)
    assert [(n.start, n.end) for n in f.inode.policy.nodes] == [(7, 9)]


def test_policy_seen_by_another_mapping_of_the_same_file():
    k, t = Kernel.boot(Topology.simple(2))
    f = mman.memfd_create(k, t, "f", 4)
    mman.sys_mmap(k, t, A, 4 * PAGE_SIZE, True, f)
    mman.sys_mmap(k, t, B, 4 * PAGE_SIZE, True, f)
    kernel_mbind(k, t, A, 4 * PAGE_SIZE, MPOL_BIND, 0b10, MAXNODE, 0)
    # get_mempolicy(MPOL_F_ADDR) at the other mapping reports the shared policy
    assert kernel_get_mempolicy(k, t, 128, MAXNODE, B, MPOL_F_ADDR) == (MPOL_BIND, 0b10)
    handle_mm_fault(k, t, B, write=True)
    assert kernel_move_pages(k, t, 0, [B], None, 0)[1] == [1]
    assert numa_maps(k, t, t)[1].split()[1] == "bind:1"


def test_private_mapping_of_memfd_sets_the_shared_policy():
    # kernel-spec.md 2.2: mbind on a MAP_PRIVATE shmem mapping changes the file's shared policy
    k, t = Kernel.boot(Topology.simple(2))
    f = mman.memfd_create(k, t, "f", 4)
    mman.sys_mmap(k, t, A, 4 * PAGE_SIZE, False, f)
    kernel_mbind(k, t, A, 4 * PAGE_SIZE, MPOL_PREFERRED, 0b10, MAXNODE, 0)
    assert len(f.inode.policy.nodes) == 1
    mman.sys_mmap(k, t, B, 4 * PAGE_SIZE, True, f)
    handle_mm_fault(k, t, B + PAGE_SIZE, write=True)
    assert kernel_move_pages(k, t, 0, [B + PAGE_SIZE], None, 0)[1] == [1]


def test_no_fallback_to_vm_policy_when_the_tree_is_empty():
    # __get_vma_policy: a VMA with get_policy never falls back to vma->vm_policy
    k, t = Kernel.boot(Topology.simple(2))
    f = mman.memfd_create(k, t, "f", 4)
    mman.sys_mmap(k, t, A, 4 * PAGE_SIZE, True, f)
    mman.sys_mmap(k, t, B, 4 * PAGE_SIZE, True, f)
    kernel_mbind(k, t, A, 4 * PAGE_SIZE, MPOL_BIND, 0b10, MAXNODE, 0)
    kernel_mbind(k, t, B, 4 * PAGE_SIZE, MPOL_BIND, 0b1, MAXNODE, 0)
    kernel_mbind(k, t, B, 4 * PAGE_SIZE, MPOL_DEFAULT, None, MAXNODE, 0)   # clears the tree
    vma_a = t.mm.vma_lookup(A)
    assert vma_a.vm_policy is not None and f.inode.policy.nodes == []
    assert kernel_get_mempolicy(k, t, 128, MAXNODE, A, MPOL_F_ADDR) == (MPOL_DEFAULT, 0)
    assert numa_maps(k, t, t)[0].split()[1] == "default"


def test_default_mbind_through_a_vma_without_policy_keeps_the_tree():
    # mbind_range: mpol_equal(vma->vm_policy, new) is true for NULL == NULL (pointer
    # identity in include/linux/mempolicy.h mpol_equal), so vma_replace_policy and
    # shmem_set_policy never run: the object's policy stays
    k, t = Kernel.boot(Topology.simple(2))
    f = mman.memfd_create(k, t, "f", 4)
    mman.sys_mmap(k, t, A, 4 * PAGE_SIZE, True, f)
    mman.sys_mmap(k, t, B, 4 * PAGE_SIZE, True, f)
    kernel_mbind(k, t, A, 4 * PAGE_SIZE, MPOL_BIND, 0b10, MAXNODE, 0)
    kernel_mbind(k, t, B, 4 * PAGE_SIZE, MPOL_DEFAULT, None, MAXNODE, 0)
    assert [(n.start, n.end) for n in f.inode.policy.nodes] == [(0, 4)]
    assert kernel_get_mempolicy(k, t, 128, MAXNODE, B, MPOL_F_ADDR) == (MPOL_BIND, 0b10)


def test_shmem_interleave_is_biased_by_inode_number():
    # trace-format.md: the k-th shared object made on a CPU has bias k; page i of it goes
    # to the ((k + i) mod n)-th node; shmem_get_pgoff_policy: ilx = i_ino + index
    k, t = Kernel.boot(Topology.simple(3))
    f0 = mman.memfd_create(k, t, "a", 3)
    f1 = mman.memfd_create(k, t, "b", 3)
    mman.sys_mmap(k, t, A, 3 * PAGE_SIZE, True, f0)
    mman.sys_mmap(k, t, B, 3 * PAGE_SIZE, True, f1)
    for base in (A, B):
        kernel_mbind(k, t, base, 3 * PAGE_SIZE, MPOL_INTERLEAVE, 0b111, MAXNODE, 0)
        for i in range(3):
            handle_mm_fault(k, t, base + i * PAGE_SIZE, write=True)
    where = lambda base: kernel_move_pages(k, t, 0, [base + i * PAGE_SIZE for i in range(3)], None, 0)[1]
    assert where(A) == [0, 1, 2]
    assert where(B) == [1, 2, 0]


def test_last_unmap_and_close_evicts_the_tree():
    k, t = Kernel.boot(Topology.simple(2))
    f = mman.memfd_create(k, t, "f", 4)
    mman.sys_mmap(k, t, A, 4 * PAGE_SIZE, True, f)
    kernel_mbind(k, t, A, 4 * PAGE_SIZE, MPOL_BIND, 0b1, MAXNODE, 0)
    mman.sys_munmap(k, t, A, 4 * PAGE_SIZE)
    assert len(f.inode.policy.nodes) == 1          # the policy lives with the inode
    mman.sys_mmap(k, t, B, 4 * PAGE_SIZE, True, f)
    assert kernel_get_mempolicy(k, t, 128, MAXNODE, B, MPOL_F_ADDR) == (MPOL_BIND, 0b1)
    process.do_exit(k, t)
    assert len(f.inode.policy.nodes) == 1
    f.inode.put()
    assert f.inode.policy.nodes == []
    assert k.policy_cache.stats.active == 0


def test_spnode_repr_mentions_range():
    cache = PolicyCache()
    n = SpNode(3, 7, policy(cache, 0))
    assert repr(n).startswith("[3,7)=")


@pytest.mark.parametrize("protocol", ["current", "2008"])
def test_lock_released_after_every_operation(protocol):
    cache = PolicyCache()
    sp = SharedPolicy(cache, protocol=protocol)
    P = policy(cache, 0)
    sp.mpol_set_shared_policy(0, 10, P)
    sp.mpol_set_shared_policy(2, 3, None)
    p = sp.mpol_shared_policy_lookup(1)
    mpol_cond_put(p)
    sp.mpol_free_shared_policy()
    assert sp.lock.readers == 0 and not sp.lock.writer
