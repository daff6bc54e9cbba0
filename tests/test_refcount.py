"""Reference counting of struct mempolicy and the policy-cache sanitizer.

Rules (include/linux/mempolicy.h, mm/mempolicy.c, kernel-spec.md section 7):
mpol_get/mpol_put are plain atomic inc/dec with a free at zero;
mpol_cond_put drops a reference only for MPOL_F_SHARED policies (the extra
reference a shared-tree lookup took); mpol_dup returns a fresh object with
refcnt 1; default_policy and preferred_node_policy[] are never freed.
Since 3.7 ("mempolicy: remove mempolicy sharing") every owner -- a task, a
VMA, an sp_node -- holds its own object, so every live policy's refcnt is
exactly the number of its owners; the 2008 design stored one object in
several owners with one reference each.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mempolicy.alloc.fault import FaultSignal, handle_mm_fault
from mempolicy.alloc.topology import Topology
from mempolicy.core.mempolicy import (
    FreedMempolicy,
    KernelError,
    Mempolicy,
    default_policy,
    make_preferred_node_policy,
    mpol_cond_put,
    mpol_dup,
    mpol_get,
    mpol_needs_cond_ref,
    mpol_new,
    mpol_put,
)
from mempolicy.core.nodemask import Nodemask
from mempolicy.core.slab import PolicyCache, SanitizerError
from mempolicy.kernel import Kernel
from mempolicy.proc.task_mmu import numa_maps
from mempolicy.syscalls import mman, process
from mempolicy.syscalls.mempolicy import (
    kernel_get_mempolicy,
    kernel_mbind,
    kernel_set_mempolicy,
    sys_set_mempolicy_home_node,
)
from mempolicy.uapi import (
    MPOL_BIND,
    MPOL_DEFAULT,
    MPOL_F_ADDR,
    MPOL_F_NODE,
    MPOL_F_NUMA_BALANCING,
    MPOL_F_RELATIVE_NODES,
    MPOL_F_SHARED,
    MPOL_F_STATIC_NODES,
    MPOL_INTERLEAVE,
    MPOL_LOCAL,
    MPOL_MF_MOVE,
    MPOL_MF_MOVE_ALL,
    MPOL_MF_STRICT,
    MPOL_PREFERRED,
    MPOL_PREFERRED_MANY,
    MPOL_WEIGHTED_INTERLEAVE,
    PAGE_SIZE,
)

MAXNODE = 1025
# examples per sequence property; MEMPOLICY_PROPERTY_EXAMPLES=2000 for a long run
PROPERTY_EXAMPLES = int(os.environ.get("MEMPOLICY_PROPERTY_EXAMPLES", "150"))


def bind(cache, *nodes):
    pol = mpol_new(cache, MPOL_BIND, 0, Nodemask(nodes))
    pol.nodes = Nodemask(nodes)
    return pol


# ---------------------------------------------------------------------------
# get / put / cond_put / dup
# ---------------------------------------------------------------------------

def test_get_put_count_and_free_at_zero():
    cache = PolicyCache()
    pol = bind(cache, 0)
    assert pol.refcnt == 1
    mpol_get(pol)
    mpol_get(pol)
    assert pol.refcnt == 3
    mpol_put(pol)
    mpol_put(pol)
    assert pol.refcnt == 1
    assert isinstance(pol, Mempolicy)
    assert cache.stats.freed == 0
    mpol_put(pol)
    assert type(pol) is FreedMempolicy
    assert cache.stats.allocated == 1 and cache.stats.freed == 1 and cache.stats.active == 0


def test_null_is_ignored():
    mpol_get(None)
    mpol_put(None)
    mpol_cond_put(None)
    assert not mpol_needs_cond_ref(None)


def test_cond_put_only_drops_shared():
    cache = PolicyCache()
    plain = bind(cache, 0)
    mpol_cond_put(plain)
    assert plain.refcnt == 1 and not mpol_needs_cond_ref(plain)
    shared = bind(cache, 1)
    shared.flags |= MPOL_F_SHARED
    mpol_get(shared)                       # the lookup's reference
    assert mpol_needs_cond_ref(shared)
    mpol_cond_put(shared)
    assert shared.refcnt == 1
    mpol_cond_put(shared)                  # one more drops the owner's reference
    assert type(shared) is FreedMempolicy


def test_dup_gives_an_independent_object():
    cache = PolicyCache()
    a = bind(cache, 0, 1)
    b = mpol_dup(a, cache)
    mpol_put(a)
    assert type(a) is FreedMempolicy
    assert b.refcnt == 1 and b.nodes == Nodemask([0, 1])
    mpol_put(b)
    assert cache.stats.active == 0


# ---------------------------------------------------------------------------
# The sanitizer
# ---------------------------------------------------------------------------

def _freed_by_set_mempolicy():
    """A policy allocated by one set_mempolicy and freed by the next."""
    k, t = Kernel.boot(Topology.simple(2))
    kernel_set_mempolicy(k, t, MPOL_BIND, 0b1, MAXNODE)
    pol = t.mempolicy
    kernel_set_mempolicy(k, t, MPOL_BIND, 0b10, MAXNODE)
    return k, pol


def test_free_records_alloc_and_free_sites():
    _, pol = _freed_by_set_mempolicy()
    assert type(pol) is FreedMempolicy
    assert "mpol_new" in pol._alloc_site
    assert "mpol_put" in pol._free_site and "do_set_mempolicy" in pol._free_site


def test_double_put_names_alloc_and_free_sites():
    k, pol = _freed_by_set_mempolicy()
    with pytest.raises(SanitizerError) as ei:
        mpol_put(pol)
    msg = str(ei.value)
    assert "double put" in msg
    assert pol._alloc_site in msg and pol._free_site in msg
    assert k.policy_cache.stats.freed == 1           # not counted twice


@pytest.mark.parametrize("field", ["mode", "flags", "nodes", "home_node", "w", "refcnt"])
def test_use_after_free_of_any_field_raises(field):
    _, pol = _freed_by_set_mempolicy()
    with pytest.raises(SanitizerError) as ei:
        getattr(pol, field)
    msg = str(ei.value)
    assert "use after free" in msg and pol._alloc_site in msg and pol._free_site in msg


@pytest.mark.parametrize("field", ["mode", "flags", "nodes", "home_node", "w"])
def test_write_after_free_raises(field):
    _, pol = _freed_by_set_mempolicy()
    with pytest.raises(SanitizerError) as ei:
        setattr(pol, field, 0)
    assert "after free" in str(ei.value)


def test_get_dup_and_cond_put_of_freed_raise():
    k, pol = _freed_by_set_mempolicy()
    with pytest.raises(SanitizerError):
        mpol_get(pol)
    with pytest.raises(SanitizerError):
        mpol_dup(pol, k.policy_cache)
    with pytest.raises(SanitizerError):
        mpol_cond_put(pol)


def test_refcount_never_below_zero():
    cache = PolicyCache()
    pol = bind(cache, 0)
    pol._refcnt = 0                      # simulate an earlier unbalanced decrement
    with pytest.raises(SanitizerError) as ei:
        mpol_put(pol)
    assert "below zero" in str(ei.value)


def test_static_policies_are_never_freed():
    statics = make_preferred_node_policy(2)
    p = statics[0]
    assert p.is_static and p.refcnt == 1
    mpol_get(p)
    mpol_put(p)
    assert p.refcnt == 1 and type(p) is Mempolicy
    with pytest.raises(SanitizerError) as ei:
        mpol_put(p)                      # would drop the static's own reference
    assert "static" in str(ei.value)
    assert type(p) is Mempolicy          # still usable, never returned to a cache


def test_unknown_protocol_is_rejected():
    with pytest.raises(ValueError):
        Kernel(Topology.simple(1), protocol="2012")


def test_default_policy_is_static():
    assert default_policy.is_static
    assert default_policy.refcnt == 1
    assert default_policy.mode == MPOL_LOCAL


# ---------------------------------------------------------------------------
# PolicyCache counts and leak check
# ---------------------------------------------------------------------------

def test_cache_counts_and_leak_list():
    cache = PolicyCache()
    a, b, c = bind(cache, 0), bind(cache, 1), bind(cache, 2)
    assert (cache.stats.allocated, cache.stats.freed, cache.stats.active) == (3, 0, 3)
    mpol_put(b)
    assert (cache.stats.allocated, cache.stats.freed, cache.stats.active) == (3, 1, 2)
    assert cache.leaks() == [a, c]                   # oldest first
    with pytest.raises(SanitizerError) as ei:
        cache.check_no_leaks()
    assert "2 policies leaked" in str(ei.value)
    mpol_put(a)
    mpol_put(c)
    cache.check_no_leaks()
    assert cache.leaks() == [] and cache.stats.active == 0


def test_cache_double_free_raises():
    cache = PolicyCache()
    a = bind(cache, 0)
    cache.free(a)
    with pytest.raises(SanitizerError):
        cache.free(a)


def test_policy_from_one_cache_is_counted_there_only():
    c1, c2 = PolicyCache(), PolicyCache()
    a = bind(c1, 0)
    b = mpol_dup(a, c2)
    assert c1.stats.active == 1 and c2.stats.active == 1
    mpol_put(b)
    assert c1.stats.active == 1 and c2.stats.active == 0
    mpol_put(a)


# ---------------------------------------------------------------------------
# The 2008 early-free bug (kernel-spec.md 7.3), deterministic
# ---------------------------------------------------------------------------

ANON_SHMEM_BASE = 0x10000000


def _anon_then_shmem(protocol):
    k, t = Kernel.boot(Topology.simple(2), protocol=protocol)
    f = mman.memfd_create(k, t, "m", 4)
    mman.sys_mmap(k, t, ANON_SHMEM_BASE, 4 * PAGE_SIZE, False, None)
    mman.sys_mmap(k, t, ANON_SHMEM_BASE + 4 * PAGE_SIZE, 4 * PAGE_SIZE, True, f)
    # one mbind spanning the anonymous VMA and the shmem VMA
    kernel_mbind(k, t, ANON_SHMEM_BASE, 8 * PAGE_SIZE, MPOL_BIND, 0b1, MAXNODE, 0)
    anon, shm = t.mm.vmas
    assert anon.vm_file is None and shm.vm_file is not None
    return k, t, f, anon, shm


def test_2008_mbind_across_anon_and_shmem_marks_anon_policy_shared():
    k, t, f, anon, shm = _anon_then_shmem("2008")
    assert anon.vm_policy is shm.vm_policy is shm.inode.policy.nodes[0].policy
    assert anon.vm_policy.flags & MPOL_F_SHARED
    assert anon.vm_policy.refcnt == 3                # three pointers, three references


def test_2008_early_free_is_caught_by_the_sanitizer():
    # alloc_page_vma's mpol_cond_put drops a reference the anonymous VMA lookup never took
    k, t, f, anon, shm = _anon_then_shmem("2008")
    with pytest.raises(SanitizerError):
        for i in range(4):
            handle_mm_fault(k, t, ANON_SHMEM_BASE + i * PAGE_SIZE, write=True)


def test_current_protocol_gives_each_owner_its_own_copy():
    k, t, f, anon, shm = _anon_then_shmem("current")
    tree_pol = shm.inode.policy.nodes[0].policy
    assert len({id(anon.vm_policy), id(shm.vm_policy), id(tree_pol)}) == 3
    assert not anon.vm_policy.flags & MPOL_F_SHARED
    assert not shm.vm_policy.flags & MPOL_F_SHARED
    assert tree_pol.flags & MPOL_F_SHARED
    for i in range(8):
        handle_mm_fault(k, t, ANON_SHMEM_BASE + i * PAGE_SIZE, write=True)
    for p in (anon.vm_policy, shm.vm_policy, tree_pol):
        assert p.refcnt == 1
    process.do_exit(k, t)
    f.inode.put()
    assert k.policy_cache.stats.active == 0
    k.policy_cache.check_no_leaks()


# ---------------------------------------------------------------------------
# Property: after any sequence of system calls, refcnt == number of owners
# ---------------------------------------------------------------------------

NR_NODES = 3
REGION = 0x40000000                 # the test maps inside [REGION, REGION + 24 pages)
REGION_PAGES = 24
MAX_DEPTH = 3

modes = st.sampled_from([MPOL_DEFAULT, MPOL_PREFERRED, MPOL_BIND, MPOL_INTERLEAVE, MPOL_LOCAL,
                         MPOL_PREFERRED_MANY, MPOL_WEIGHTED_INTERLEAVE])
mode_flags = st.sampled_from([0, 0, 0, 0, MPOL_F_STATIC_NODES, MPOL_F_RELATIVE_NODES,
                              MPOL_F_NUMA_BALANCING])
# mostly valid node sets; sometimes empty or naming node 3, which the machine lacks
masks = st.one_of(st.integers(1, 0b111), st.integers(1, 0b111), st.integers(0, 0b1111))
page = st.integers(0, REGION_PAGES - 1)
npages = st.integers(1, 8)
# a range given relative to an existing VMA: (VMA selector, page offset in it, pages,
# 0 meaning "to the end of that VMA", -1 "to the end of the next VMA"); the range may
# run on into the neighbours or into a hole
target = st.tuples(st.integers(0, 7), st.integers(0, 5), st.one_of(st.sampled_from([0, -1]), npages))
map_kinds = st.sampled_from(["private", "shared", "memfd", "memfd_private"])

mmap_op = st.one_of(
    st.tuples(st.just("mmap"), page, npages, map_kinds, st.integers(0, 7), st.integers(0, 4)),
    # right after an existing VMA (selector), so that VMAs of different kinds touch
    st.tuples(st.just("mmap_after"), st.integers(0, 7), npages, map_kinds, st.integers(0, 7),
              st.integers(0, 4)),
)
ops = st.one_of(
    st.tuples(st.just("set_mempolicy"), modes, mode_flags, masks),
    mmap_op,
    st.tuples(st.just("memfd"), st.integers(1, 12)),
    st.tuples(st.just("close"), st.integers(0, 7)),
    st.tuples(st.just("mbind"), target, modes, mode_flags, masks,
              st.sampled_from([0, 0, MPOL_MF_STRICT, MPOL_MF_MOVE, MPOL_MF_MOVE_ALL,
                               MPOL_MF_STRICT | MPOL_MF_MOVE])),
    st.tuples(st.just("mbind"), target, st.sampled_from([MPOL_BIND, MPOL_PREFERRED_MANY]),
              st.just(0), masks, st.just(0)),
    st.tuples(st.just("touch"), target, st.booleans()),
    st.tuples(st.just("munmap"), target),
    st.tuples(st.just("mprotect"), target, st.booleans()),
    st.tuples(st.just("home_node"), target, st.integers(0, NR_NODES)),
    st.tuples(st.just("numa_maps")),
    st.tuples(st.just("get_mempolicy"), target, st.booleans()),
    st.tuples(st.just("fork")),
    st.tuples(st.just("exit")),
    st.tuples(st.just("cpu"), st.integers(0, NR_NODES)),      # CPU 3 does not exist
    st.tuples(st.just("weight"), st.integers(0, NR_NODES - 1), st.integers(1, 4)),
)
# every sequence starts with a memfd and a few mappings, so that most calls find VMAs
sequences = st.builds(
    lambda maps, rest: [("memfd", 8)] + maps + rest,
    st.lists(mmap_op, min_size=1, max_size=5),
    st.lists(ops, min_size=8, max_size=40),
)


class World:
    """One booted kernel driven through the model's system calls."""

    def __init__(self, protocol: str) -> None:
        self.kernel, root = Kernel.boot(Topology.simple(NR_NODES), protocol=protocol)
        self.protocol = protocol
        self.stack = [root]
        self.memfds: list = []

    @property
    def task(self):
        return self.stack[-1]

    def addr(self, p: int) -> int:
        return REGION + p * PAGE_SIZE

    def resolve(self, tgt) -> tuple[int, int]:
        """(start address, length in bytes) of a VMA-relative range."""
        sel, off, n = tgt
        vmas = self.task.mm.vmas
        if not vmas:
            return self.addr(off), max(n, 1) * PAGE_SIZE
        i = sel % len(vmas)
        v = vmas[i]
        start = v.start + min(off, v.pages - 1) * PAGE_SIZE
        if n > 0:
            return start, n * PAGE_SIZE
        end = vmas[min(i + 1, len(vmas) - 1)].end if n < 0 else v.end
        return start, end - start

    # -- the operations --------------------------------------------------------
    def apply(self, op) -> bool:
        """Run one operation; False when the system call failed with an errno."""
        k, t = self.kernel, self.task
        name = op[0]
        try:
            if name == "set_mempolicy":
                _, mode, flags, mask = op
                kernel_set_mempolicy(k, t, mode | flags, mask, MAXNODE)
            elif name in ("mmap", "mmap_after"):
                _, p, n, kind, fd, off = op
                if name == "mmap_after":
                    vmas = t.mm.vmas
                    if not vmas:
                        return False
                    p = (vmas[p % len(vmas)].end - REGION) // PAGE_SIZE
                n = min(n, REGION_PAGES - p)
                if n <= 0:
                    return False
                file = None
                if kind.startswith("memfd"):
                    if not self.memfds:
                        return False
                    file = self.memfds[fd % len(self.memfds)]
                shared = kind in ("shared", "memfd")
                mman.sys_mmap(k, t, self.addr(p), n * PAGE_SIZE, shared, file, off)
            elif name == "memfd":
                self.memfds.append(mman.memfd_create(k, t, f"m{len(self.memfds)}", op[1]))
            elif name == "close":
                if self.memfds:
                    self.memfds.pop(op[1] % len(self.memfds)).inode.put()
            elif name == "mbind":
                _, tgt, mode, flags, mask, mflags = op
                start, length = self.resolve(tgt)
                kernel_mbind(k, t, start, length, mode | flags, mask, MAXNODE, mflags)
            elif name == "touch":
                _, tgt, write = op
                start, length = self.resolve(tgt)
                for a in range(start, start + length, PAGE_SIZE):
                    try:
                        handle_mm_fault(k, t, a, write)
                    except FaultSignal:
                        break
            elif name == "munmap":
                mman.sys_munmap(k, t, *self.resolve(op[1]))
            elif name == "mprotect":
                _, tgt, writable = op
                mman.sys_mprotect(k, t, *self.resolve(tgt), writable)
            elif name == "home_node":
                _, tgt, node = op
                sys_set_mempolicy_home_node(k, t, *self.resolve(tgt), node, 0)
            elif name == "numa_maps":
                numa_maps(k, t, t)
            elif name == "get_mempolicy":
                _, tgt, node = op
                flags = MPOL_F_ADDR | (MPOL_F_NODE if node else 0)
                kernel_get_mempolicy(k, t, 128, MAXNODE, self.resolve(tgt)[0], flags)
            elif name == "fork":
                if len(self.stack) < MAX_DEPTH:
                    self.stack.append(process.copy_process(k, t))
            elif name == "exit":
                if len(self.stack) > 1:
                    process.do_exit(k, self.stack.pop())
            elif name == "cpu":
                process.sched_setaffinity(k, t, op[1])
            elif name == "weight":
                k.wi_state.set_weight(op[1], op[2])
            else:  # pragma: no cover
                raise AssertionError(op)
        except KernelError:
            return False
        return True

    def teardown(self) -> None:
        while self.stack:
            process.do_exit(self.kernel, self.stack.pop())
        while self.memfds:
            self.memfds.pop().inode.put()

    # -- what the kernel holds ---------------------------------------------------
    def inodes(self) -> list:
        seen = {}
        for t in self.kernel.tasks.values():
            for vma in t.mm.vmas:
                if vma.vm_file is not None:
                    seen[id(vma.vm_file.inode)] = vma.vm_file.inode
        for f in self.memfds:
            seen[id(f.inode)] = f.inode
        return list(seen.values())

    def owners(self) -> list[tuple[str, object]]:
        """(kind, policy) for every stored policy pointer."""
        out = []
        for t in self.kernel.tasks.values():
            if t.mempolicy is not None:
                out.append(("task", t.mempolicy))
            for vma in t.mm.vmas:
                if vma.vm_policy is not None:
                    out.append(("vma-file" if vma.vm_file is not None else "vma-anon", vma.vm_policy))
        for inode in self.inodes():
            for n in inode.policy.nodes:
                out.append(("sp_node", n.policy))
        return out

    def hazard(self) -> bool:
        """2008 only: an anonymous VMA holds a policy marked MPOL_F_SHARED."""
        return any(kind == "vma-anon" and p.flags & MPOL_F_SHARED for kind, p in self.owners())

    def check(self) -> None:
        k = self.kernel
        owners = self.owners()
        count: dict[int, int] = {}
        kinds: dict[int, list[str]] = {}
        for kind, p in owners:
            assert type(p) is Mempolicy, f"{kind} points to a freed policy {p!r}"
            assert not p.is_static, f"{kind} stores a static policy"
            assert id(p) in k.policy_cache.live, f"{kind} points to a policy not in the cache"
            count[id(p)] = count.get(id(p), 0) + 1
            kinds.setdefault(id(p), []).append(kind)
        for key, p in k.policy_cache.live.items():
            assert p.refcnt == count.get(key, 0), \
                f"{p!r} has refcnt {p.refcnt} but {count.get(key, 0)} owners {kinds.get(key)}"
        assert k.policy_cache.stats.active == len(k.policy_cache.live) == len(count)
        if self.protocol == "current":
            for key, ks in kinds.items():
                assert len(ks) == 1, f"policy shared by {ks}"
                p = k.policy_cache.live[key]
                assert bool(p.flags & MPOL_F_SHARED) == (ks[0] == "sp_node"), (ks, p)
        # static policies keep their one reference
        assert default_policy.refcnt == 1
        assert all(p.refcnt == 1 for p in k.preferred_node_policy)
        # every shared tree is sorted, disjoint and without empty ranges
        for inode in self.inodes():
            prev_end = -1
            for n in inode.policy.nodes:
                assert n.start < n.end and n.start >= prev_end
                prev_end = n.end
        # each inode has one user per open memfd and per VMA mapping it
        users: dict[int, int] = {}
        for t in k.tasks.values():
            for vma in t.mm.vmas:
                if vma.vm_file is not None:
                    users[id(vma.vm_file.inode)] = users.get(id(vma.vm_file.inode), 0) + 1
        for f in self.memfds:
            users[id(f.inode)] = users.get(id(f.inode), 0) + 1
        for inode in self.inodes():
            assert inode.users == users[id(inode)], (inode.path, inode.users, users[id(inode)])

    def check_empty(self) -> None:
        assert self.kernel.tasks == {}
        assert self.kernel.policy_cache.stats.active == 0
        self.kernel.policy_cache.check_no_leaks()


def _spans_anon_and_file_default(world: World, op) -> tuple[bool, bool]:
    """For an mbind op: (range meets an anonymous and a file VMA, some anonymous VMA in
    range has no policy).  Evaluated before the call."""
    start, length = world.resolve(op[1])
    vmas = world.task.mm.vmas_in(start, start + length)
    anon = [v for v in vmas if v.vm_file is None]
    filed = [v for v in vmas if v.vm_file is not None]
    return bool(anon and filed), any(v.vm_policy is None for v in anon)


@settings(max_examples=PROPERTY_EXAMPLES)
@given(sequences)
def test_refcounts_balance_current_protocol(seq):
    w = World("current")
    w.check()
    for op in seq:
        w.apply(op)
        w.check()
    w.teardown()
    w.check_empty()


@settings(max_examples=PROPERTY_EXAMPLES)
@given(sequences)
def test_refcounts_balance_2008_protocol(seq):
    """The 2008 protocol (one object, one reference per pointer) balances too, except
    for its known early free: when one mbind stores one object in an anonymous VMA
    and a shmem VMA, sp_alloc marks that object MPOL_F_SHARED and the anonymous
    VMA's users (fault, numa_maps, get_mempolicy) mpol_cond_put a reference they
    never took.  The property checks that this state arises exactly after such an
    mbind, that the sanitizer then reports the early free, and that without it
    every policy's refcnt is its pointer count and teardown frees everything."""
    w = World("2008")
    w.check()
    for op in seq:
        spans = anon_default = False
        if op[0] == "mbind":
            spans, anon_default = _spans_anon_and_file_default(w, op)
        ok = w.apply(op)
        if w.hazard():
            assert op[0] == "mbind" and spans, f"2008 hazard after {op}"
            owners = w.owners()
            bad = [p for kind, p in owners if kind == "vma-anon" and p.flags & MPOL_F_SHARED]
            assert all(any(q is p for kind, q in owners if kind == "sp_node") for p in bad)
            with pytest.raises(SanitizerError):
                for _ in range(64):
                    numa_maps(w.kernel, w.task, w.task)
            return
        assert not (op[0] == "mbind" and ok and spans and anon_default
                    and op[2] != MPOL_DEFAULT), f"no 2008 hazard after {op}"
        w.check()
    w.teardown()
    w.check_empty()


def test_2008_property_sees_the_hazard_on_a_known_sequence():
    """The example the 2008 property must classify as the early-free case."""
    w = World("2008")
    for op in [("memfd", 4), ("mmap", 0, 2, "private", 0, 0), ("mmap", 2, 2, "memfd", 0, 0)]:
        w.apply(op)
    w.check()
    assert not w.hazard()
    w.apply(("mbind", (0, 0, 4), MPOL_INTERLEAVE, 0, 0b11, 0))
    assert w.hazard()
    with pytest.raises(SanitizerError):
        for _ in range(8):
            numa_maps(w.kernel, w.task, w.task)


def test_world_check_detects_an_extra_reference():
    """The invariant checker itself can fail: an unowned reference is reported."""
    w = World("current")
    w.apply(("set_mempolicy", MPOL_BIND, 0, 0b1))
    w.check()
    mpol_get(w.task.mempolicy)
    with pytest.raises(AssertionError):
        w.check()
    mpol_put(w.task.mempolicy)
    w.check()


def test_teardown_after_fork_and_shared_mappings_frees_everything():
    w = World("current")
    seq = [
        ("set_mempolicy", MPOL_INTERLEAVE, 0, 0b111),
        ("memfd", 8),
        ("mmap", 0, 4, "private", 0, 0),
        ("mmap", 4, 4, "memfd", 0, 0),
        ("mmap", 8, 4, "shared", 0, 0),
        ("mbind", (0, 0, 12), MPOL_BIND, 0, 0b11, 0),
        ("touch", (0, 0, 12), True),
        ("fork",),
        ("mbind", (0, 2, 6), MPOL_PREFERRED, 0, 0b100, MPOL_MF_MOVE),
        ("home_node", (0, 0, 4), 1),
        ("touch", (0, 0, 12), True),
        ("numa_maps",),
        ("get_mempolicy", (1, 1, 1), True),
        ("exit",),
        ("munmap", (0, 3, 6)),
    ]
    for op in seq:
        w.apply(op)
        w.check()
    assert w.kernel.policy_cache.stats.active > 0
    w.teardown()
    w.check_empty()
    assert w.kernel.policy_cache.stats.allocated > 10
