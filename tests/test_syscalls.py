"""The system calls (mempolicy.syscalls): argument decoding, errno and its order.

Expected behaviour comes from Linux 7.3 mm/mempolicy.c (get_nodes,
get_bitmap, copy_nodes_to_user, kernel_get_mempolicy, do_get_mempolicy,
kernel_mbind, do_mbind, queue_pages_test_walk, queue_folios_pte_range,
migrate_folio_add, set_mempolicy_home_node, kernel_migrate_pages,
do_migrate_pages) and mm/migrate.c (kernel_move_pages, do_pages_move,
add_folio_for_migration, do_pages_stat_array), and kernel-spec.md
sections 6.1-6.8.
"""

from __future__ import annotations

import errno

import pytest

from mempolicy.alloc.fault import handle_mm_fault
from mempolicy.alloc.topology import Node, Topology
from mempolicy.core.mempolicy import KernelError
from mempolicy.core.nodemask import Nodemask
from mempolicy.kernel import Kernel
from mempolicy.syscalls import mman, process
from mempolicy.syscalls import migrate as mig
from mempolicy.syscalls.mempolicy import (
    copy_nodes_to_user,
    get_nodes,
    kernel_get_mempolicy,
    kernel_mbind,
    kernel_set_mempolicy,
    sys_set_mempolicy_home_node,
)
from mempolicy.syscalls.migrate import kernel_migrate_pages, kernel_move_pages
from mempolicy.uapi import (
    MAX_NUMNODES,
    MPOL_BIND,
    MPOL_DEFAULT,
    MPOL_F_ADDR,
    MPOL_F_MEMS_ALLOWED,
    MPOL_F_NODE,
    MPOL_F_NUMA_BALANCING,
    MPOL_F_RELATIVE_NODES,
    MPOL_F_STATIC_NODES,
    MPOL_INTERLEAVE,
    MPOL_LOCAL,
    MPOL_MF_LAZY,
    MPOL_MF_MOVE,
    MPOL_MF_MOVE_ALL,
    MPOL_MF_STRICT,
    MPOL_PREFERRED,
    MPOL_PREFERRED_MANY,
    PAGE_SIZE,
)

MAXNODE = 1025
BUF = 128                      # bytes of a 1024-bit user mask
A = 0x10000000
U64 = (1 << 64) - 1


def _id(v):
    """Short test ids for huge masks."""
    if isinstance(v, int) and v >= 1 << 64:
        return f"bit{v.bit_length() - 1}"
    return None


def fails(err, fn, *args, **kw):
    with pytest.raises(KernelError) as ei:
        fn(*args, **kw)
    assert ei.value.errno == err, errno.errorcode.get(ei.value.errno)


def mmap(k, t, addr, pages, shared=False, file=None, off=0):
    return mman.sys_mmap(k, t, addr, pages * PAGE_SIZE, shared, file, off)


def where(k, t, addrs):
    return kernel_move_pages(k, t, 0, list(addrs), None, 0)[1]


def pages(base, n):
    return [base + i * PAGE_SIZE for i in range(n)]


def getpol(k, t, addr=0, flags=0, nbytes=BUF, maxnode=MAXNODE):
    return kernel_get_mempolicy(k, t, nbytes, maxnode, addr, flags)


# ---------------------------------------------------------------------------
# get_nodes: the maxnode table (kernel-spec.md 6.1)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("mask, maxnode, expected", [
    (None, 0, ()),                         # --maxnode wraps, but NULL comes first
    (None, 1 << 40, ()),
    (0xFF, 1, ()),                         # maxnode 1: zero bits
    (0xFF, 2, (0,)),                       # k: bits 0..k-2
    (0xFF, 3, (0, 1)),
    (0xFF, 9, tuple(range(8))),
    ((1 << 64) - 1, 65, tuple(range(64))),
    (1 << 64, 65, ()),                     # bit 64 is beyond maxnode - 1 bits
    (1 << 64, 66, (64,)),
    ((1 << 1023) | (1 << 1024), 1025, (1023,)),   # bit 1024 is not read at all
    ((1 << 1023) | (1 << 1088), 1026, (1023,)),   # word 17 is not read with maxnode 1026
    (1, 32769, (0,)),                      # PAGE_SIZE * 8 bits is still allowed
], ids=_id)
def test_get_nodes_table(mask, maxnode, expected):
    assert get_nodes(mask, maxnode) == Nodemask(expected)


@pytest.mark.parametrize("mask, maxnode", [
    (0, 0),                                # maxnode 0 with a non-NULL mask: ULONG_MAX > 32768
    (1, 0),
    (0, 32770),                            # more than PAGE_SIZE * 8 bits
    (0, U64),
    (1 << 1024, 1026),                     # a set bit at or above MAX_NUMNODES
    (1 << 1087, 1026),                     # the whole top word is checked, past maxnode
    (1 << 1100, 1200),
    (1 << 32767, 32769),
], ids=_id)
def test_get_nodes_einval(mask, maxnode):
    fails(errno.EINVAL, get_nodes, mask, maxnode)


def test_set_mempolicy_needs_maxnode_one_above_the_node(kernel4):
    # to include node N, maxnode must be at least N + 2
    k, t = kernel4
    fails(errno.EINVAL, kernel_set_mempolicy, k, t, MPOL_BIND, 0b100, 3)
    kernel_set_mempolicy(k, t, MPOL_BIND, 0b100, 4)
    assert t.mempolicy.nodes == Nodemask([2])


def test_set_mempolicy_null_mask_ignores_maxnode(kernel4):
    # get_nodes: "if (maxnode == 0 || !nmask) return 0" comes before the size check
    k, t = kernel4
    assert kernel_set_mempolicy(k, t, MPOL_DEFAULT, None, U64) == 0
    assert kernel_set_mempolicy(k, t, MPOL_LOCAL, None, 0) == 0
    assert t.mempolicy.mode == MPOL_LOCAL
    fails(errno.EINVAL, kernel_set_mempolicy, k, t, MPOL_LOCAL, 0, 0)     # non-NULL: EINVAL


# ---------------------------------------------------------------------------
# copy_nodes_to_user sizes (kernel-spec.md 6.2) on a 4-node machine (nbytes = 8)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("buf_bytes, maxnode, result", [
    (8, 4, 0b1010),                        # copy = ALIGN(3, 64) / 8 = 8 bytes
    (8, 65, 0b1010),
    (16, 66, 0b1010),                      # copy 16 > nbytes: clear the tail, copy 8
    (4096, 32769, 0b1010),
    (0, U64, 0),                           # ALIGN(ULONG_MAX - 1, 64) wraps to 0: nothing copied
])
def test_copy_nodes_to_user_ok(buf_bytes, maxnode, result):
    assert copy_nodes_to_user(buf_bytes, maxnode, Nodemask([1, 3]), 4) == result


@pytest.mark.parametrize("buf_bytes, maxnode, err", [
    (8, 66, errno.EFAULT),                 # clear_user(mask + 8, 8) runs off the buffer
    (128, 32769, errno.EFAULT),
    (8192, 32770, errno.EINVAL),           # copy 4104 > PAGE_SIZE
    (0, 4, errno.EFAULT),
])
def test_copy_nodes_to_user_errors(buf_bytes, maxnode, err):
    fails(err, copy_nodes_to_user, buf_bytes, maxnode, Nodemask([1, 3]), 4)


def test_copy_nodes_to_user_uses_nr_node_ids():
    # 100 possible nodes: nbytes = BITS_TO_LONGS(100) * 8 = 16; maxnode 1025 asks for 128
    # bytes, so clear_user(mask + 16, 112) needs the whole 128-byte buffer
    nodes = Nodemask([0, 99])
    fails(errno.EFAULT, copy_nodes_to_user, 16, 1025, nodes, 100)
    assert copy_nodes_to_user(128, 1025, nodes, 100) == nodes.bits
    assert copy_nodes_to_user(16, 129, nodes, 100) == nodes.bits


# ---------------------------------------------------------------------------
# get_mempolicy (kernel-spec.md 6.4)
# ---------------------------------------------------------------------------

def test_get_mempolicy_errno_order(kernel4):
    k, t = kernel4
    hole = 0x50000000
    # 1. nmask != NULL and maxnode < nr_node_ids, before looking at flags or addr
    fails(errno.EINVAL, getpol, k, t, hole, MPOL_F_ADDR, nbytes=8, maxnode=3)
    # 2. unknown flags, before the VMA lookup
    fails(errno.EINVAL, getpol, k, t, hole, MPOL_F_ADDR | 8)
    # 3. MEMS_ALLOWED with NODE or ADDR, before the VMA lookup
    fails(errno.EINVAL, getpol, k, t, hole, MPOL_F_MEMS_ALLOWED | MPOL_F_ADDR)
    fails(errno.EINVAL, getpol, k, t, 0, MPOL_F_MEMS_ALLOWED | MPOL_F_NODE)
    # 4. no VMA at addr
    fails(errno.EFAULT, getpol, k, t, hole, MPOL_F_ADDR)
    fails(errno.EFAULT, getpol, k, t, hole, MPOL_F_ADDR | MPOL_F_NODE)
    # 5. addr without MPOL_F_ADDR
    fails(errno.EINVAL, getpol, k, t, A, 0)
    # 6. MPOL_F_NODE without a task interleave policy
    fails(errno.EINVAL, getpol, k, t, 0, MPOL_F_NODE)
    # 7. do_get_mempolicy's errors come before copy_nodes_to_user's
    fails(errno.EFAULT, getpol, k, t, hole, MPOL_F_ADDR, nbytes=8192, maxnode=32770)
    fails(errno.EINVAL, getpol, k, t, 0, 0, nbytes=8192, maxnode=32770)


def test_get_mempolicy_mems_allowed_ignores_addr(kernel4):
    k, t = kernel4
    t.mems_allowed = Nodemask([0, 2])
    assert getpol(k, t, 0x1234, MPOL_F_MEMS_ALLOWED) == (0, 0b101)


def test_get_mempolicy_null_mask_skips_maxnode_check(kernel4):
    k, t = kernel4
    assert kernel_get_mempolicy(k, t, None, 0, 0, 0) == (MPOL_DEFAULT, None)


@pytest.mark.parametrize("mode, mask, expected_mode, expected_mask", [
    (MPOL_DEFAULT, None, MPOL_DEFAULT, 0),
    (MPOL_PREFERRED, None, MPOL_LOCAL, 0),                 # 5.14+: stored as LOCAL
    (MPOL_PREFERRED, 0b1100, MPOL_PREFERRED, 0b100),       # one node: the first effective
    (MPOL_LOCAL, None, MPOL_LOCAL, 0),
    (MPOL_BIND, 0b1010, MPOL_BIND, 0b1010),
    (MPOL_BIND | MPOL_F_STATIC_NODES, 0b100010, MPOL_BIND | MPOL_F_STATIC_NODES, 0b100010),
    (MPOL_INTERLEAVE | MPOL_F_RELATIVE_NODES, 0b110000, MPOL_INTERLEAVE | MPOL_F_RELATIVE_NODES,
     0b110000),
    # 7.3: NUMA_BALANCING is reported, MOF/MORON are not; the mask is the effective one
    (MPOL_BIND | MPOL_F_NUMA_BALANCING, 0b100011, MPOL_BIND | MPOL_F_NUMA_BALANCING, 0b11),
    (MPOL_PREFERRED_MANY, 0b0110, MPOL_PREFERRED_MANY, 0b0110),
])
def test_get_mempolicy_reports_what_set_mempolicy_stored(kernel4, mode, mask, expected_mode,
                                                        expected_mask):
    k, t = kernel4
    kernel_set_mempolicy(k, t, mode, mask, MAXNODE)
    assert getpol(k, t) == (expected_mode, expected_mask)


def test_get_mempolicy_addr_does_not_fall_back_to_task_policy(kernel4):
    k, t = kernel4
    mmap(k, t, A, 2)
    kernel_set_mempolicy(k, t, MPOL_BIND, 0b1, MAXNODE)
    assert getpol(k, t, A + 5, MPOL_F_ADDR) == (MPOL_DEFAULT, 0)    # addr need not be aligned
    kernel_mbind(k, t, A, PAGE_SIZE, MPOL_INTERLEAVE, 0b110, MAXNODE, 0)
    assert getpol(k, t, A, MPOL_F_ADDR) == (MPOL_INTERLEAVE, 0b110)
    assert getpol(k, t, A + PAGE_SIZE, MPOL_F_ADDR) == (MPOL_DEFAULT, 0)


def test_get_mempolicy_addr_node_faults_the_page_in_as_a_read(kernel4):
    # lookup_node: get_user_pages_fast for reading; an untouched anonymous page is the
    # shared zero page, on node 0 (trace-format.md)
    k, t = kernel4
    mmap(k, t, A, 2)
    kernel_mbind(k, t, A, 2 * PAGE_SIZE, MPOL_BIND, 0b1000, MAXNODE, 0)
    assert getpol(k, t, A, MPOL_F_ADDR | MPOL_F_NODE)[0] == 0
    assert where(k, t, [A]) == [-errno.EFAULT]                       # now the zero page
    handle_mm_fault(k, t, A + PAGE_SIZE, write=True)
    assert getpol(k, t, A + PAGE_SIZE, MPOL_F_ADDR | MPOL_F_NODE)[0] == 3


def test_get_mempolicy_node_starts_at_the_first_interleave_node(kernel4):
    k, t = kernel4
    kernel_set_mempolicy(k, t, MPOL_INTERLEAVE, 0b1100, MAXNODE)
    assert getpol(k, t, 0, MPOL_F_NODE)[0] == 2


# ---------------------------------------------------------------------------
# mbind: order of checks (kernel-spec.md 6.5)
# ---------------------------------------------------------------------------

def test_mbind_errno_order(kernel4):
    k, t = kernel4
    hole = 0x50000000
    # sanitize_mpol_flags (kernel_mbind) comes first, even for len 0
    fails(errno.EINVAL, kernel_mbind, k, t, hole, 0,
          MPOL_BIND | MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES, 1, MAXNODE, 0)
    # flags outside MPOL_MF_VALID (MPOL_MF_LAZY is not valid), before the start check
    fails(errno.EINVAL, kernel_mbind, k, t, hole + 1, PAGE_SIZE, MPOL_BIND, 1, MAXNODE, MPOL_MF_LAZY)
    # unaligned start, before the length and the hole checks
    fails(errno.EINVAL, kernel_mbind, k, t, hole + 1, 0, MPOL_BIND, 1, MAXNODE, 0)
    fails(errno.EINVAL, kernel_mbind, k, t, hole + 1, PAGE_SIZE, MPOL_BIND, 1, MAXNODE, 0)
    # len 0 returns 0 before mpol_new: BIND with an empty mask is accepted
    assert kernel_mbind(k, t, hole, 0, MPOL_BIND, 0, MAXNODE, 0) == 0
    assert kernel_mbind(k, t, hole, 0, MPOL_LOCAL, 0b1, MAXNODE, MPOL_MF_STRICT) == 0
    # end < start after PAGE_ALIGN
    fails(errno.EINVAL, kernel_mbind, k, t, U64 + 1 - PAGE_SIZE, 2 * PAGE_SIZE, MPOL_BIND, 1,
          MAXNODE, 0)
    # mpol_new before the walk: an empty BIND mask over a hole is EINVAL, not EFAULT
    fails(errno.EINVAL, kernel_mbind, k, t, hole, PAGE_SIZE, MPOL_BIND, 0, MAXNODE, 0)
    fails(errno.EINVAL, kernel_mbind, k, t, hole, PAGE_SIZE, MPOL_DEFAULT, 0b1, MAXNODE, 0)
    # no VMA in the range: EFAULT, even for MPOL_DEFAULT (DISCONTIG_OK does not help)
    fails(errno.EFAULT, kernel_mbind, k, t, hole, PAGE_SIZE, MPOL_BIND, 1, MAXNODE, 0)
    fails(errno.EFAULT, kernel_mbind, k, t, hole, PAGE_SIZE, MPOL_DEFAULT, 0, MAXNODE, 0)


def test_mbind_set_nodemask_fails_before_the_walk():
    # node 3 has no memory: mpol_set_nodemask is EINVAL before queue_pages_range's EFAULT
    nodes = [Node(i, 512 << 20 if i < 3 else 0, range(i, i + 1)) for i in range(4)]
    k, t = Kernel.boot(Topology(nodes, [[10 if a == b else 20 for b in range(4)] for a in range(4)]))
    fails(errno.EINVAL, kernel_mbind, k, t, 0x50000000, PAGE_SIZE, MPOL_BIND, 0b1000, MAXNODE, 0)


def test_mbind_len_is_rounded_up(kernel4):
    k, t = kernel4
    mmap(k, t, A, 4)
    kernel_mbind(k, t, A, 1, MPOL_BIND, 0b10, MAXNODE, 0)
    vmas = t.mm.vmas
    assert [(v.start, v.end) for v in vmas] == [(A, A + PAGE_SIZE), (A + PAGE_SIZE, A + 4 * PAGE_SIZE)]
    assert vmas[0].vm_policy.nodes == Nodemask([1]) and vmas[1].vm_policy is None


@pytest.mark.parametrize("hole_at", ["head", "middle", "tail"])
def test_mbind_hole_is_efault_and_installs_nothing(kernel4, hole_at):
    k, t = kernel4
    mmap(k, t, A + PAGE_SIZE, 2)
    mmap(k, t, A + 4 * PAGE_SIZE, 2)
    start, end = {"head": (A, A + 3 * PAGE_SIZE),
                  "middle": (A + PAGE_SIZE, A + 6 * PAGE_SIZE),
                  "tail": (A + 4 * PAGE_SIZE, A + 7 * PAGE_SIZE)}[hole_at]
    fails(errno.EFAULT, kernel_mbind, k, t, start, end - start, MPOL_BIND, 0b1, MAXNODE, 0)
    assert all(v.vm_policy is None for v in t.mm.vmas)
    assert len(t.mm.vmas) == 2


def test_mbind_default_allows_holes(kernel4):
    k, t = kernel4
    mmap(k, t, A + PAGE_SIZE, 2)
    mmap(k, t, A + 4 * PAGE_SIZE, 2)
    for v in list(t.mm.vmas):
        kernel_mbind(k, t, v.start, v.end - v.start, MPOL_BIND, 0b1, MAXNODE, 0)
    assert all(v.vm_policy is not None for v in t.mm.vmas)
    assert kernel_mbind(k, t, A, 8 * PAGE_SIZE, MPOL_DEFAULT, 0, MAXNODE, 0) == 0
    assert all(v.vm_policy is None for v in t.mm.vmas)


def test_mbind_strict_finds_misplaced_page_and_installs_nothing(kernel4):
    k, t = kernel4
    mmap(k, t, A, 2)
    handle_mm_fault(k, t, A, write=True)                    # local: node 0
    fails(errno.EIO, kernel_mbind, k, t, A, 2 * PAGE_SIZE, MPOL_BIND, 0b10, MAXNODE, MPOL_MF_STRICT)
    assert t.mm.vmas[0].vm_policy is None
    # the zero page and untouched pages are never misplaced
    handle_mm_fault(k, t, A + PAGE_SIZE, write=False)
    assert kernel_mbind(k, t, A + PAGE_SIZE, PAGE_SIZE, MPOL_BIND, 0b10, MAXNODE, MPOL_MF_STRICT) == 0


def test_mbind_strict_is_cleared_for_default(kernel4):
    k, t = kernel4
    mmap(k, t, A, 1)
    handle_mm_fault(k, t, A, write=True)
    assert kernel_mbind(k, t, A, PAGE_SIZE, MPOL_DEFAULT, 0, MAXNODE, MPOL_MF_STRICT) == 0


def test_mbind_strict_uses_the_raw_user_mask(kernel4):
    # queue_pages_range gets the user nmask: for PREFERRED the whole mask is well placed
    k, t = kernel4
    mmap(k, t, A, 1)
    kernel_mbind(k, t, A, PAGE_SIZE, MPOL_BIND, 0b10, MAXNODE, 0)
    handle_mm_fault(k, t, A, write=True)                    # node 1
    assert kernel_mbind(k, t, A, PAGE_SIZE, MPOL_PREFERRED, 0b11, MAXNODE, MPOL_MF_STRICT) == 0
    assert t.mm.vmas[0].vm_policy.nodes == Nodemask([0])    # the policy says node 0


def test_mbind_move_migrates_misplaced_pages(kernel4):
    k, t = kernel4
    mmap(k, t, A, 2)
    for a in pages(A, 2):
        handle_mm_fault(k, t, a, write=True)
    assert where(k, t, pages(A, 2)) == [0, 0]
    assert kernel_mbind(k, t, A, 2 * PAGE_SIZE, MPOL_BIND, 0b100, MAXNODE,
                        MPOL_MF_MOVE | MPOL_MF_STRICT) == 0
    assert where(k, t, pages(A, 2)) == [2, 2]


def test_mbind_move_leaves_pages_already_in_the_interleave_set(kernel4):
    # set_mempolicy(2)/mbind(2): pages already on the specified nodes are not moved
    k, t = kernel4
    mmap(k, t, A, 4)
    for a in pages(A, 4):
        handle_mm_fault(k, t, a, write=True)
    kernel_mbind(k, t, A, 4 * PAGE_SIZE, MPOL_INTERLEAVE, 0b11, MAXNODE, MPOL_MF_MOVE)
    assert where(k, t, pages(A, 4)) == [0, 0, 0, 0]


def test_mbind_move_to_interleave_spreads_anonymous_pages(kernel4):
    # do_mbind: mmpol.ilx = ilx(first folio) - first->index; target ilx = base + folio->index.
    # For an anonymous VMA index is the vpn, so page i gets ilx vpn_i: nodes 1,2,1,2.
    k, t = kernel4
    mmap(k, t, A, 4)                                 # vpn of A is even
    for a in pages(A, 4):
        handle_mm_fault(k, t, a, write=True)
    assert where(k, t, pages(A, 4)) == [0, 0, 0, 0]
    kernel_mbind(k, t, A, 4 * PAGE_SIZE, MPOL_INTERLEAVE, 0b110, MAXNODE, MPOL_MF_MOVE)
    assert where(k, t, pages(A, 4)) == [1, 2, 1, 2]


def test_mbind_move_to_interleave_spreads_shmem_pages(kernel4):
    # shmem folios: base = i_ino + index(first) - index(first) = i_ino (0 for the first
    # object on CPU 0); page i goes to the (i mod 2)-th node
    k, t = kernel4
    f = mman.memfd_create(k, t, "f", 4)
    mmap(k, t, A, 4, shared=True, file=f)
    for a in pages(A, 4):
        handle_mm_fault(k, t, a, write=True)
    kernel_mbind(k, t, A, 4 * PAGE_SIZE, MPOL_INTERLEAVE, 0b110, MAXNODE, MPOL_MF_MOVE)
    assert where(k, t, pages(A, 4)) == [1, 2, 1, 2]


def test_mbind_local_move_brings_every_page_home(kernel4):
    # empty user mask: every present page is misplaced (queue_folio_required with INVERT)
    k, t = kernel4
    mmap(k, t, A, 2)
    kernel_mbind(k, t, A, 2 * PAGE_SIZE, MPOL_BIND, 0b100, MAXNODE, 0)
    for a in pages(A, 2):
        handle_mm_fault(k, t, a, write=True)
    assert where(k, t, pages(A, 2)) == [2, 2]
    kernel_mbind(k, t, A, 2 * PAGE_SIZE, MPOL_LOCAL, 0, MAXNODE, MPOL_MF_MOVE)
    assert where(k, t, pages(A, 2)) == [0, 0]              # CPU 0 is on node 0


def test_mbind_default_move_uses_the_task_policy(kernel4):
    # do_mbind: for MPOL_DEFAULT the migration target is get_task_policy(current)
    k, t = kernel4
    mmap(k, t, A, 2)
    kernel_mbind(k, t, A, 2 * PAGE_SIZE, MPOL_BIND, 0b10, MAXNODE, 0)
    for a in pages(A, 2):
        handle_mm_fault(k, t, a, write=True)
    kernel_set_mempolicy(k, t, MPOL_PREFERRED, 0b1000, MAXNODE)
    kernel_mbind(k, t, A, 2 * PAGE_SIZE, MPOL_DEFAULT, None, MAXNODE, MPOL_MF_MOVE)
    assert where(k, t, pages(A, 2)) == [3, 3]
    assert t.mm.vmas[0].vm_policy is None
    assert t.mempolicy.refcnt == 1                         # the extra reference was dropped


def test_mbind_len_ulong_max_is_a_noop(kernel4):
    # PAGE_ALIGN(ULONG_MAX) wraps to 0, so end == start and mbind returns 0 before mpol_new
    k, t = kernel4
    assert kernel_mbind(k, t, A, U64, MPOL_BIND, 0, MAXNODE, 0) == 0
    assert sys_set_mempolicy_home_node(k, t, A, U64, 0, 0) == 0


def test_mbind_move_skips_shared_pages_and_strict_does_not_fail(kernel4):
    # migrate_folio_add: a folio maybe mapped shared is skipped without MOVE_ALL and not
    # counted as a failure
    k, t = kernel4
    mmap(k, t, A, 1)
    handle_mm_fault(k, t, A, write=True)
    child = process.copy_process(k, t)
    assert kernel_mbind(k, t, A, PAGE_SIZE, MPOL_BIND, 0b10, MAXNODE,
                        MPOL_MF_MOVE | MPOL_MF_STRICT) == 0
    assert where(k, t, [A]) == [0]
    assert kernel_mbind(k, t, A, PAGE_SIZE, MPOL_BIND, 0b100, MAXNODE, MPOL_MF_MOVE_ALL) == 0
    assert where(k, t, [A]) == [2] and where(k, child, [A]) == [2]


def test_mbind_strict_without_move_fails_on_shared_misplaced_page(kernel4):
    # without MOVE*, every misplaced page counts (strictly_unmovable)
    k, t = kernel4
    mmap(k, t, A, 1)
    handle_mm_fault(k, t, A, write=True)
    process.copy_process(k, t)
    fails(errno.EIO, kernel_mbind, k, t, A, PAGE_SIZE, MPOL_BIND, 0b10, MAXNODE, MPOL_MF_STRICT)


def test_mbind_mode_is_truncated_to_int(kernel4):
    # kernel_mbind: int lmode = mode
    k, t = kernel4
    mmap(k, t, A, 1)
    kernel_mbind(k, t, A, PAGE_SIZE, (1 << 32) | MPOL_BIND, 0b1, MAXNODE, 0)
    assert t.mm.vmas[0].vm_policy.mode == MPOL_BIND


# ---------------------------------------------------------------------------
# set_mempolicy_home_node (kernel-spec.md 6.6)
# ---------------------------------------------------------------------------

def test_home_node_argument_checks(kernel4):
    k, t = kernel4
    mmap(k, t, A, 2)
    kernel_mbind(k, t, A, 2 * PAGE_SIZE, MPOL_BIND, 0b11, MAXNODE, 0)
    fails(errno.EINVAL, sys_set_mempolicy_home_node, k, t, A + 1, PAGE_SIZE, 0, 0)
    fails(errno.EINVAL, sys_set_mempolicy_home_node, k, t, A, PAGE_SIZE, 0, 1)     # flags
    fails(errno.EINVAL, sys_set_mempolicy_home_node, k, t, A, PAGE_SIZE, 4, 0)     # offline
    fails(errno.EINVAL, sys_set_mempolicy_home_node, k, t, A, PAGE_SIZE, MAX_NUMNODES, 0)
    fails(errno.EINVAL, sys_set_mempolicy_home_node, k, t, A, PAGE_SIZE, U64, 0)   # (unsigned)-1
    fails(errno.EINVAL, sys_set_mempolicy_home_node, k, t, U64 + 1 - PAGE_SIZE, 2 * PAGE_SIZE, 0, 0)
    assert sys_set_mempolicy_home_node(k, t, A, 0, 1, 0) == 0
    assert t.mm.vmas[0].vm_policy.home_node == -1


def test_home_node_enoent_without_vma_policy(kernel4):
    k, t = kernel4
    mmap(k, t, A, 2)
    fails(errno.ENOENT, sys_set_mempolicy_home_node, k, t, A, 2 * PAGE_SIZE, 1, 0)
    fails(errno.ENOENT, sys_set_mempolicy_home_node, k, t, 0x50000000, PAGE_SIZE, 1, 0)  # no VMA
    # the task policy is not a VMA policy
    kernel_set_mempolicy(k, t, MPOL_BIND, 0b11, MAXNODE)
    fails(errno.ENOENT, sys_set_mempolicy_home_node, k, t, A, 2 * PAGE_SIZE, 1, 0)
    assert t.mempolicy.home_node == -1


@pytest.mark.parametrize("mode", [MPOL_INTERLEAVE, MPOL_PREFERRED, MPOL_LOCAL])
def test_home_node_eopnotsupp(kernel4, mode):
    k, t = kernel4
    mmap(k, t, A, 1)
    kernel_mbind(k, t, A, PAGE_SIZE, mode, 0b1 if mode != MPOL_LOCAL else 0, MAXNODE, 0)
    fails(errno.EOPNOTSUPP, sys_set_mempolicy_home_node, k, t, A, PAGE_SIZE, 1, 0)


def test_home_node_updates_earlier_vmas_before_failing(kernel4):
    k, t = kernel4
    mmap(k, t, A, 4)
    kernel_mbind(k, t, A, PAGE_SIZE, MPOL_BIND, 0b11, MAXNODE, 0)
    kernel_mbind(k, t, A + 2 * PAGE_SIZE, PAGE_SIZE, MPOL_INTERLEAVE, 0b11, MAXNODE, 0)
    fails(errno.EOPNOTSUPP, sys_set_mempolicy_home_node, k, t, A, 4 * PAGE_SIZE, 1, 0)
    v0 = t.mm.vma_lookup(A)
    assert v0.vm_policy.home_node == 1
    assert t.mm.vma_lookup(A + PAGE_SIZE).vm_policy is None        # skipped silently


def test_home_node_splits_and_holes_are_ignored(kernel4):
    k, t = kernel4
    mmap(k, t, A, 4)
    mmap(k, t, A + 6 * PAGE_SIZE, 1)
    kernel_mbind(k, t, A, 4 * PAGE_SIZE, MPOL_PREFERRED_MANY, 0b110, MAXNODE, 0)
    kernel_mbind(k, t, A + 6 * PAGE_SIZE, PAGE_SIZE, MPOL_BIND, 0b1, MAXNODE, 0)
    assert sys_set_mempolicy_home_node(k, t, A + 2 * PAGE_SIZE, 5 * PAGE_SIZE, 2, 0) == 0
    got = [((v.start - A) // PAGE_SIZE, (v.end - A) // PAGE_SIZE, v.vm_policy.home_node)
           for v in t.mm.vmas]
    assert got == [(0, 2, -1), (2, 4, 2), (6, 7, 2)]


# ---------------------------------------------------------------------------
# migrate_pages (kernel-spec.md 6.7)
# ---------------------------------------------------------------------------

def _pairs(monkeypatch, k, t, frm, to):
    calls = []
    monkeypatch.setattr(mig, "migrate_to_node",
                        lambda kernel, task, mm, s, d, flags, walk=None: calls.append((s, d)) or 0)
    assert mig.do_migrate_pages(k, t, t.mm, Nodemask(frm), Nodemask(to), MPOL_MF_MOVE_ALL) == 0
    return calls


def test_do_migrate_pages_unequal_weights_moves_only_outside_nodes(monkeypatch):
    # "[0-7] -> [3,4,5] moves only 0,1,2,6,7", pairs in the order the scan picks them
    k, t = Kernel.boot(Topology.simple(8))
    calls = _pairs(monkeypatch, k, t, range(8), (3, 4, 5))
    assert calls == [(7, 4), (6, 3), (2, 5), (1, 4), (0, 3)]


def test_do_migrate_pages_equal_weights_moves_everything(monkeypatch):
    # "[2,3,4] -> [3,4,5] moves everything": a dest not still pending is preferred
    k, t = Kernel.boot(Topology.simple(8))
    assert _pairs(monkeypatch, k, t, (2, 3, 4), (3, 4, 5)) == [(4, 5), (3, 4), (2, 3)]


def test_migrate_pages_end_to_end():
    k, t = Kernel.boot(Topology.simple(8))
    mmap(k, t, A, 8)
    for i, a in enumerate(pages(A, 8)):
        kernel_mbind(k, t, a, PAGE_SIZE, MPOL_BIND, 1 << i, MAXNODE, 0)
        handle_mm_fault(k, t, a, write=True)
    assert where(k, t, pages(A, 8)) == list(range(8))
    assert kernel_migrate_pages(k, t, 0, MAXNODE, 0xFF, 0b111000) == 0
    assert where(k, t, pages(A, 8)) == [3, 4, 5, 3, 4, 5, 3, 4]


def test_migrate_pages_errors(kernel4):
    k, t = kernel4
    fails(errno.ESRCH, kernel_migrate_pages, k, t, 999, MAXNODE, 0b1, 0b10)
    t.mems_allowed = Nodemask([0, 1])
    fails(errno.EINVAL, kernel_migrate_pages, k, t, 0, MAXNODE, 0b1, 0b1100)   # new & cpuset empty
    fails(errno.EINVAL, kernel_migrate_pages, k, t, 0, 0, 0b1, 0b10)           # get_nodes


# ---------------------------------------------------------------------------
# move_pages (kernel-spec.md 6.8, mm/migrate.c)
# ---------------------------------------------------------------------------

def test_move_pages_query_statuses(kernel4):
    k, t = kernel4
    mmap(k, t, A, 3)
    kernel_mbind(k, t, A, PAGE_SIZE, MPOL_BIND, 0b100, MAXNODE, 0)
    handle_mm_fault(k, t, A, write=True)
    handle_mm_fault(k, t, A + PAGE_SIZE, write=False)
    assert where(k, t, pages(A, 4)) == [2, -errno.EFAULT, -errno.ENOENT, -errno.EFAULT]
    #                                   node  zero page      untouched    no VMA


def test_move_pages_moves_and_reports(kernel4):
    k, t = kernel4
    mmap(k, t, A, 3)
    handle_mm_fault(k, t, A, write=True)
    handle_mm_fault(k, t, A + PAGE_SIZE, write=False)
    addrs = pages(A, 4)
    rc, status = kernel_move_pages(k, t, 0, addrs, [1, 1, 1, 1], MPOL_MF_MOVE)
    assert rc == 0
    assert status == [1, -errno.EFAULT, -errno.ENOENT, -errno.EFAULT]
    assert where(k, t, [A]) == [1]
    rc, status = kernel_move_pages(k, t, 0, [A], [1], MPOL_MF_MOVE)          # already there
    assert (rc, status) == (0, [1])


def test_move_pages_shared_page_needs_move_all(kernel4):
    k, t = kernel4
    mmap(k, t, A, 1)
    handle_mm_fault(k, t, A, write=True)
    process.copy_process(k, t)
    assert kernel_move_pages(k, t, 0, [A], [2], MPOL_MF_MOVE)[1] == [-errno.EACCES]
    assert kernel_move_pages(k, t, 0, [A], [2], MPOL_MF_MOVE_ALL)[1] == [2]


@pytest.mark.parametrize("node", [-1, MAX_NUMNODES, 4])
def test_move_pages_bad_node_is_enodev(kernel4, node):
    k, t = kernel4
    mmap(k, t, A, 1)
    handle_mm_fault(k, t, A, write=True)
    fails(errno.ENODEV, kernel_move_pages, k, t, 0, [A], [node], MPOL_MF_MOVE)


def test_move_pages_call_errors(kernel4):
    k, t = kernel4
    mmap(k, t, A, 1)
    handle_mm_fault(k, t, A, write=True)
    fails(errno.EINVAL, kernel_move_pages, k, t, 0, [A], [1], 1 << 3)
    fails(errno.ESRCH, kernel_move_pages, k, t, 12345, [A], [1], MPOL_MF_MOVE)
    t.mems_allowed = Nodemask([0, 1])
    fails(errno.EACCES, kernel_move_pages, k, t, 0, [A], [3], MPOL_MF_MOVE)


def test_move_pages_of_another_process(kernel4):
    k, t = kernel4
    mmap(k, t, A, 1)
    child = process.copy_process(k, t)
    handle_mm_fault(k, child, A, write=True)
    assert kernel_move_pages(k, t, child.pid, [A], None, 0)[1] == [0]
    assert where(k, t, [A]) == [-errno.ENOENT]        # the parent never touched it


# ---------------------------------------------------------------------------
# set_mempolicy validity (kernel-spec.md 3.4) through the system call
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode, mask", [
    (MPOL_DEFAULT, 0b1),
    (MPOL_DEFAULT | MPOL_F_NUMA_BALANCING, 0),
    (MPOL_PREFERRED | MPOL_F_STATIC_NODES, 0),
    (MPOL_LOCAL, 0b1),
    (MPOL_LOCAL | MPOL_F_RELATIVE_NODES, 0),
    (MPOL_BIND, 0),
    (MPOL_INTERLEAVE | MPOL_F_NUMA_BALANCING, 0b1),
    (MPOL_BIND, 0b10000),                 # node 4 is not on the machine
    (MPOL_BIND | MPOL_F_STATIC_NODES, 0b10000),
    (7, 0b1),
])
def test_set_mempolicy_einval_table(kernel4, mode, mask):
    k, t = kernel4
    kernel_set_mempolicy(k, t, MPOL_BIND, 0b1, MAXNODE)
    old = t.mempolicy
    fails(errno.EINVAL, kernel_set_mempolicy, k, t, mode, mask, MAXNODE)
    assert t.mempolicy is old                       # unchanged
    assert k.policy_cache.stats.active == 1         # the failed new policy was put


def test_set_mempolicy_default_flags_ignored(kernel4):
    # mpol_new(MPOL_DEFAULT): flags silently ignored, e.g. DEFAULT|STATIC is accepted
    k, t = kernel4
    kernel_set_mempolicy(k, t, MPOL_BIND, 0b1, MAXNODE)
    kernel_set_mempolicy(k, t, MPOL_DEFAULT | MPOL_F_STATIC_NODES, 0, MAXNODE)
    assert t.mempolicy is None
    assert k.policy_cache.stats.active == 0
