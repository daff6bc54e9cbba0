"""struct mempolicy without address spaces (mempolicy.core.mempolicy).

Expected values come from Linux 7.3 mm/mempolicy.c (sanitize_mpol_flags,
mpol_new, mpol_set_nodemask, mpol_rebind_nodemask/preferred/policy,
__mpol_equal, mpol_to_str, __mpol_dup) and the worked examples of
the research notes (kernel-spec.md) sections 3.4, 5.3 and 8.1.
"""

from __future__ import annotations

import errno

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mempolicy.core.mempolicy import (
    KernelError,
    Mempolicy,
    default_policy,
    make_preferred_node_policy,
    mpol_dup,
    mpol_equal,
    mpol_new,
    mpol_rebind_policy,
    mpol_set_nodemask,
    mpol_store_user_nodemask,
    mpol_to_str,
    sanitize_mpol_flags,
)
from mempolicy.core.nodemask import NODE_MASK_NONE, Nodemask
from mempolicy.core.slab import PolicyCache
from mempolicy.uapi import (
    MPOL_BIND,
    MPOL_DEFAULT,
    MPOL_F_MOF,
    MPOL_F_MORON,
    MPOL_F_NUMA_BALANCING,
    MPOL_F_RELATIVE_NODES,
    MPOL_F_SHARED,
    MPOL_F_STATIC_NODES,
    MPOL_INTERLEAVE,
    MPOL_LOCAL,
    MPOL_MAX,
    MPOL_PREFERRED,
    MPOL_PREFERRED_MANY,
    MPOL_WEIGHTED_INTERLEAVE,
    NUMA_NO_NODE,
)

STATIC = MPOL_F_STATIC_NODES
RELATIVE = MPOL_F_RELATIVE_NODES
BALANCING = MPOL_F_NUMA_BALANCING
ALL_MODES = [MPOL_DEFAULT, MPOL_PREFERRED, MPOL_BIND, MPOL_INTERLEAVE, MPOL_LOCAL,
             MPOL_PREFERRED_MANY, MPOL_WEIGHTED_INTERLEAVE]
NODEMASK_MODES = [MPOL_BIND, MPOL_INTERLEAVE, MPOL_PREFERRED_MANY, MPOL_WEIGHTED_INTERLEAVE]

ALL4 = Nodemask.range(0, 3)


def N(*nodes: int) -> Nodemask:
    return Nodemask(nodes)


def einval(fn, *args):
    with pytest.raises(KernelError) as ei:
        fn(*args)
    assert ei.value.errno == errno.EINVAL


def make(mode, flags, nodes, mems=ALL4, n_memory=ALL4, cache=None):
    """mpol_new + mpol_set_nodemask, as do_set_mempolicy does."""
    cache = cache if cache is not None else PolicyCache()
    pol = mpol_new(cache, mode, flags, nodes)
    mpol_set_nodemask(pol, nodes, mems, n_memory)
    return pol


# ---------------------------------------------------------------------------
# sanitize_mpol_flags (mm/mempolicy.c sanitize_mpol_flags)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ALL_MODES)
@pytest.mark.parametrize("flags", [0, STATIC, RELATIVE])
def test_sanitize_accepts_every_mode_with_one_nodemask_flag(mode, flags):
    assert sanitize_mpol_flags(mode | flags) == (mode, flags)


@pytest.mark.parametrize("mode", [MPOL_BIND, MPOL_PREFERRED_MANY])
@pytest.mark.parametrize("extra", [0, STATIC, RELATIVE])
def test_sanitize_balancing_adds_mof_and_moron(mode, extra):
    assert sanitize_mpol_flags(mode | BALANCING | extra) == (
        mode, BALANCING | extra | MPOL_F_MOF | MPOL_F_MORON)


@pytest.mark.parametrize("mode", [MPOL_DEFAULT, MPOL_PREFERRED, MPOL_INTERLEAVE, MPOL_LOCAL,
                                  MPOL_WEIGHTED_INTERLEAVE])
def test_sanitize_balancing_rejected_for_other_modes(mode):
    einval(sanitize_mpol_flags, mode | BALANCING)


@pytest.mark.parametrize("raw", [
    MPOL_MAX,                          # first invalid mode
    MPOL_MAX | STATIC,
    1 << 12,                           # stray bit below the flags
    MPOL_BIND | (1 << 16),             # stray bit above the flags
    -1,                                # (unsigned int)mode >= MPOL_MAX
    0x80000000 | MPOL_BIND,
    MPOL_BIND | STATIC | RELATIVE,     # mutually exclusive
    MPOL_DEFAULT | STATIC | RELATIVE,
])
def test_sanitize_rejects(raw):
    einval(sanitize_mpol_flags, raw)


def test_sanitize_uses_the_low_32_bits_only():
    # kernel_mbind: int lmode = mode (unsigned long truncated to int)
    assert sanitize_mpol_flags((1 << 32) | MPOL_BIND) == (MPOL_BIND, 0)


# ---------------------------------------------------------------------------
# mpol_new validity table (kernel-spec.md section 3.4 / mm/mempolicy.c mpol_new)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("flags", [0, STATIC, RELATIVE])
def test_default_with_empty_mask_is_null(flags):
    cache = PolicyCache()
    assert mpol_new(cache, MPOL_DEFAULT, flags, NODE_MASK_NONE) is None
    assert cache.stats.allocated == 0


@pytest.mark.parametrize("flags", [0, STATIC])
def test_default_with_nodes_is_einval(flags):
    einval(mpol_new, PolicyCache(), MPOL_DEFAULT, flags, N(0))


def test_local_ok_only_without_nodes_and_flags():
    pol = mpol_new(PolicyCache(), MPOL_LOCAL, 0, NODE_MASK_NONE)
    assert pol.mode == MPOL_LOCAL and pol.refcnt == 1 and pol.home_node == NUMA_NO_NODE
    einval(mpol_new, PolicyCache(), MPOL_LOCAL, 0, N(1))
    einval(mpol_new, PolicyCache(), MPOL_LOCAL, STATIC, NODE_MASK_NONE)
    einval(mpol_new, PolicyCache(), MPOL_LOCAL, RELATIVE, NODE_MASK_NONE)


def test_preferred_empty_becomes_local():
    pol = mpol_new(PolicyCache(), MPOL_PREFERRED, 0, NODE_MASK_NONE)
    assert pol.mode == MPOL_LOCAL
    assert pol.nodes == NODE_MASK_NONE


@pytest.mark.parametrize("flags", [STATIC, RELATIVE])
def test_preferred_empty_with_nodemask_flag_is_einval(flags):
    einval(mpol_new, PolicyCache(), MPOL_PREFERRED, flags, NODE_MASK_NONE)


@pytest.mark.parametrize("mode", NODEMASK_MODES)
def test_nodemask_modes_need_nodes(mode):
    einval(mpol_new, PolicyCache(), mode, 0, NODE_MASK_NONE)
    pol = mpol_new(PolicyCache(), mode, 0, N(1))
    assert pol.mode == mode and pol.flags == 0 and pol.refcnt == 1


def test_mpol_new_allocates_from_the_cache():
    cache = PolicyCache()
    pol = mpol_new(cache, MPOL_BIND, STATIC, N(0))
    assert cache.stats.allocated == 1 and cache.stats.active == 1
    assert not pol.is_static
    assert pol.flags == STATIC


# ---------------------------------------------------------------------------
# mpol_set_nodemask: contextualisation (kernel-spec.md 3.3 / 5.3)
# ---------------------------------------------------------------------------

def test_bind_is_intersected_with_cpuset():
    # kernel-spec.md 5.3: BIND {0,1} while mems_allowed = {1,2} gives {1}
    pol = make(MPOL_BIND, 0, N(0, 1), mems=N(1, 2))
    assert pol.nodes == N(1)


def test_bind_outside_cpuset_is_einval():
    # kernel-spec.md 5.3: BIND {0} with mems_allowed {1,2} is EINVAL
    pol = mpol_new(PolicyCache(), MPOL_BIND, 0, N(0))
    einval(mpol_set_nodemask, pol, N(0), N(1, 2), ALL4)


def test_relative_is_folded_onto_cpuset():
    # kernel-spec.md 5.3: RELATIVE {0} with allowed {1,2} gives {1}
    assert make(MPOL_BIND, RELATIVE, N(0), mems=N(1, 2)).nodes == N(1)
    # RELATIVE user {2,3,4,5} created in cpuset 2-5 gives 2-5
    pol = make(MPOL_INTERLEAVE, RELATIVE, N(2, 3, 4, 5), mems=Nodemask.range(2, 5),
               n_memory=Nodemask.range(0, 7))
    assert pol.nodes == Nodemask.range(2, 5)


def test_static_does_not_bypass_cpuset_at_creation():
    # kernel-spec.md 3.3: a STATIC mask with no allowed node is EINVAL
    pol = mpol_new(PolicyCache(), MPOL_BIND, STATIC, N(3))
    einval(mpol_set_nodemask, pol, N(3), N(0, 1), ALL4)


def test_nodes_without_memory_are_dropped():
    # allowed = mems_allowed & node_states[N_MEMORY]
    assert make(MPOL_BIND, 0, N(1, 2), n_memory=N(0, 1)).nodes == N(1)
    pol = mpol_new(PolicyCache(), MPOL_BIND, 0, N(2))
    einval(mpol_set_nodemask, pol, N(2), ALL4, N(0, 1))


def test_preferred_takes_first_effective_node():
    # mpol_new_preferred: nodes = { first_node(effective) }
    assert make(MPOL_PREFERRED, 0, N(1, 3)).nodes == N(1)
    assert make(MPOL_PREFERRED, 0, N(0, 2, 3), mems=N(2, 3)).nodes == N(2)


def test_w_holds_user_mask_or_cpuset():
    # STATIC/RELATIVE: w.user_nodemask = the raw user mask, un-intersected
    pol = make(MPOL_BIND, STATIC, N(1, 7), mems=N(0, 1))
    assert pol.nodes == N(1) and pol.w == N(1, 7)
    assert mpol_store_user_nodemask(pol)
    # otherwise: w.cpuset_mems_allowed = current mems_allowed (NOT & N_MEMORY)
    pol = make(MPOL_BIND, 0, N(0), mems=ALL4, n_memory=N(0, 1))
    assert pol.w == ALL4
    assert not mpol_store_user_nodemask(pol)


def test_balancing_alone_does_not_store_user_mask():
    # 7.3 mpol_store_user_nodemask: flags & MPOL_USER_NODEMASK_FLAGS (STATIC|RELATIVE only)
    mode, flags = sanitize_mpol_flags(MPOL_BIND | BALANCING)
    pol = make(mode, flags, N(0, 1, 9))
    assert not mpol_store_user_nodemask(pol)
    assert pol.w == ALL4
    assert pol.nodes == N(0, 1)


def test_local_and_null_are_not_contextualised():
    mpol_set_nodemask(None, N(5), N(0), N(0))           # no error for MPOL_DEFAULT
    pol = mpol_new(PolicyCache(), MPOL_LOCAL, 0, NODE_MASK_NONE)
    mpol_set_nodemask(pol, NODE_MASK_NONE, N(1), N(1))
    assert pol.nodes == NODE_MASK_NONE and pol.w == NODE_MASK_NONE


# ---------------------------------------------------------------------------
# Rebinding (kernel-spec.md 5.3 / mm/mempolicy.c mpol_rebind_*)
# ---------------------------------------------------------------------------

ALL8 = Nodemask.range(0, 7)
ALL12 = Nodemask.range(0, 11)


def test_rebind_relative_doc_example():
    pol = make(MPOL_INTERLEAVE, RELATIVE, N(2, 3, 4, 5), mems=Nodemask.range(2, 5), n_memory=ALL8)
    mpol_rebind_policy(pol, Nodemask.range(3, 7))
    assert str(pol.nodes) == "3,5-7"
    mpol_rebind_policy(pol, N(0, 2, 3, 5))
    assert str(pol.nodes) == "0,2-3,5"
    assert pol.w == N(2, 3, 4, 5)                  # user mask kept


def test_rebind_relative_fold():
    pol = make(MPOL_BIND, RELATIVE, N(0, 2, 4), mems=Nodemask.range(2, 6), n_memory=ALL12)
    assert pol.nodes == N(2, 4, 6)
    mpol_rebind_policy(pol, N(10, 11))
    assert pol.nodes == N(10)


def test_rebind_default_remap_loses_information():
    pol = make(MPOL_BIND, 0, N(1, 3), mems=Nodemask.range(0, 3), n_memory=ALL8)
    mpol_rebind_policy(pol, Nodemask.range(4, 7))
    assert pol.nodes == N(5, 7)
    assert pol.w == Nodemask.range(4, 7)           # cpuset_mems_allowed updated
    mpol_rebind_policy(pol, N(0, 1))
    assert pol.nodes == N(1)
    mpol_rebind_policy(pol, Nodemask.range(0, 3))
    assert pol.nodes == N(1)


def test_rebind_static_intersection_and_fallback_to_all():
    pol = make(MPOL_BIND, STATIC, N(1, 2, 3), n_memory=ALL8)
    mpol_rebind_policy(pol, Nodemask.range(3, 5))
    assert pol.nodes == N(3)
    # empty intersection: tmp = *nodes (all new mems), not "default"
    mpol_rebind_policy(pol, N(6, 7))
    assert pol.nodes == N(6, 7)
    assert pol.w == N(1, 2, 3)


@pytest.mark.parametrize("mode", [MPOL_PREFERRED, MPOL_PREFERRED_MANY])
def test_rebind_preferred_keeps_nodes_and_overwrites_the_union(mode):
    # mpol_rebind_preferred: pol->w.cpuset_mems_allowed = *nodes, nodes unchanged;
    # with STATIC this overwrites w.user_nodemask (the union quirk of section 5.2)
    pol = make(mode, STATIC, N(1, 2), n_memory=ALL8)
    before = pol.nodes
    mpol_rebind_policy(pol, N(5, 6))
    assert pol.nodes == before
    assert pol.w == N(5, 6)


def test_rebind_balancing_bind_remaps_like_default():
    # 7.3: BIND|NUMA_BALANCING stores cpuset_mems_allowed, so rebind goes through nodes_remap
    mode, flags = sanitize_mpol_flags(MPOL_BIND | BALANCING)
    pol = make(mode, flags, N(1, 3), mems=Nodemask.range(0, 3), n_memory=ALL8)
    mpol_rebind_policy(pol, Nodemask.range(4, 7))
    assert pol.nodes == N(5, 7)


def test_rebind_local_and_null_are_noops():
    mpol_rebind_policy(None, N(1))
    pol = make(MPOL_LOCAL, 0, NODE_MASK_NONE)
    mpol_rebind_policy(pol, N(3))
    assert pol.nodes == NODE_MASK_NONE and pol.w == NODE_MASK_NONE


@given(st.sets(st.integers(0, 7), min_size=1), st.sets(st.integers(0, 7), min_size=1),
       st.sampled_from([MPOL_BIND, MPOL_INTERLEAVE, MPOL_WEIGHTED_INTERLEAVE]),
       st.sampled_from([0, STATIC, RELATIVE]))
def test_rebind_result_is_never_empty_and_within_new_mems(user, new, mode, flags):
    try:
        pol = make(mode, flags, Nodemask(user), mems=ALL8, n_memory=ALL8)
    except KernelError:
        return
    mpol_rebind_policy(pol, Nodemask(new))
    assert pol.nodes
    assert pol.nodes.issubset(Nodemask(new))


# ---------------------------------------------------------------------------
# mpol_equal (mm/mempolicy.c __mpol_equal)
# ---------------------------------------------------------------------------

def test_equal_identity_and_null():
    a = make(MPOL_BIND, 0, N(0))
    assert mpol_equal(a, a)
    assert mpol_equal(None, None)
    assert not mpol_equal(a, None)
    assert not mpol_equal(None, a)


def test_equal_compares_mode_flags_home_and_nodes():
    a = make(MPOL_BIND, 0, N(0, 1))
    assert mpol_equal(a, make(MPOL_BIND, 0, N(0, 1)))
    assert not mpol_equal(a, make(MPOL_INTERLEAVE, 0, N(0, 1)))
    assert not mpol_equal(a, make(MPOL_BIND, 0, N(0)))
    assert not mpol_equal(a, make(MPOL_BIND, STATIC, N(0, 1)))
    b = make(MPOL_BIND, 0, N(0, 1))
    b.home_node = 1
    assert not mpol_equal(a, b)
    c = make(MPOL_BIND, 0, N(0, 1))
    c.flags |= MPOL_F_SHARED                   # internal flags count too
    assert not mpol_equal(a, c)


def test_equal_user_nodemask_only_for_static_relative():
    # same effective nodes, different user masks: unequal for STATIC ...
    a = make(MPOL_BIND, STATIC, N(0, 1, 5))
    b = make(MPOL_BIND, STATIC, N(0, 1, 6))
    assert a.nodes == b.nodes
    assert not mpol_equal(a, b)
    # ... but cpuset_mems_allowed is not compared for the others
    c = make(MPOL_BIND, 0, N(0, 1), mems=ALL4)
    d = make(MPOL_BIND, 0, N(0, 1), mems=N(0, 1))
    assert c.w != d.w
    assert mpol_equal(c, d)


def test_equal_local_ignores_nodes():
    a = make(MPOL_LOCAL, 0, NODE_MASK_NONE)
    b = make(MPOL_LOCAL, 0, NODE_MASK_NONE)
    b.nodes = N(3)
    assert mpol_equal(a, b)


# ---------------------------------------------------------------------------
# mpol_to_str (kernel-spec.md 8.1 / mm/mempolicy.c mpol_to_str)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode, flags, nodes, text", [
    (MPOL_LOCAL, 0, (), "local"),
    (MPOL_PREFERRED, 0, (1,), "prefer:1"),
    (MPOL_BIND, 0, (0, 1), "bind:0-1"),
    (MPOL_INTERLEAVE, 0, (0, 1, 2, 3), "interleave:0-3"),
    (MPOL_PREFERRED_MANY, 0, (0, 2), "prefer (many):0,2"),
    (MPOL_WEIGHTED_INTERLEAVE, 0, (0, 1), "weighted interleave:0-1"),
    (MPOL_BIND, STATIC, (0, 2), "bind=static:0,2"),
    (MPOL_INTERLEAVE, RELATIVE, (0, 1, 2, 3), "interleave=relative:0-3"),
    (MPOL_BIND, BALANCING, (0, 1), "bind=balancing:0-1"),
    (MPOL_BIND, STATIC | BALANCING, (0, 1), "bind=static|balancing:0-1"),
    (MPOL_PREFERRED_MANY, RELATIVE | BALANCING, (0, 1), "prefer (many)=relative|balancing:0-1"),
])
def test_to_str_spec_examples(mode, flags, nodes, text):
    m, f = sanitize_mpol_flags(mode | flags)
    pol = make(m, f, Nodemask(nodes))
    assert mpol_to_str(pol) == text


def test_to_str_default_and_static_policies():
    assert mpol_to_str(None) == "default"
    assert mpol_to_str(default_policy) == "default"
    # preferred_node_policy[] prints as default, though it is PREFERRED|MOF|MORON
    for p in make_preferred_node_policy(4):
        assert mpol_to_str(p) == "default"


def test_to_str_hides_internal_flags_and_shows_effective_nodes():
    pol = make(MPOL_BIND, STATIC, N(1, 2, 9), mems=N(1, 2))
    pol.flags |= MPOL_F_SHARED
    assert mpol_to_str(pol) == "bind=static:1-2"


def test_to_str_truncates_at_63_chars():
    # numa_maps uses a 64-byte buffer: scnprintf stops at maxlen - 1 characters
    nodes = Nodemask(range(0, 200, 2))
    full = "interleave:" + ",".join(str(n) for n in range(0, 200, 2))
    pol = make(MPOL_INTERLEAVE, 0, nodes, mems=Nodemask.range(0, 255), n_memory=Nodemask.range(0, 255))
    s = mpol_to_str(pol)
    assert len(full) > 63
    assert s == full[:63]
    assert len(mpol_to_str(pol, maxlen=16)) == 15


def test_to_str_exact_fit_is_not_truncated():
    pol = make(MPOL_BIND, 0, N(0, 1))
    assert mpol_to_str(pol, maxlen=len("bind:0-1") + 1) == "bind:0-1"
    assert mpol_to_str(pol, maxlen=len("bind:0-1")) == "bind:0-"


# ---------------------------------------------------------------------------
# mpol_dup (mm/mempolicy.c __mpol_dup)
# ---------------------------------------------------------------------------

def test_dup_is_a_deep_copy_with_refcnt_one():
    cache = PolicyCache()
    old = make(MPOL_INTERLEAVE, STATIC, N(0, 2), cache=cache)
    old.home_node = 2
    old.flags |= MPOL_F_SHARED
    old._refcnt = 3
    new = mpol_dup(old, cache)
    assert new is not old
    assert isinstance(new, Mempolicy)
    assert new.refcnt == 1 and old.refcnt == 3
    assert (new.mode, new.flags, new.nodes, new.home_node, new.w) == \
        (old.mode, old.flags, old.nodes, old.home_node, old.w)
    assert new.flags & MPOL_F_SHARED          # *new = *old copies every flag
    assert cache.stats.allocated == 2
    assert mpol_dup(None, cache) is None


def test_dup_rebinds_when_cpuset_is_being_rebound():
    cache = PolicyCache()
    old = make(MPOL_BIND, 0, N(1, 3), mems=Nodemask.range(0, 3), n_memory=ALL8, cache=cache)
    new = mpol_dup(old, cache, rebind_to=Nodemask.range(4, 7))
    assert new.nodes == N(5, 7)
    assert old.nodes == N(1, 3)
