"""struct mempolicy and its life cycle (include/linux/mempolicy.h, mm/mempolicy.c).

This module holds the policy object itself and everything that works on one
policy without knowing about tasks' address spaces: flag sanitising,
``mpol_new``, contextualisation against a cpuset (``mpol_set_nodemask``),
rebinding (``mpol_rebind_policy``), ``mpol_equal``, ``mpol_to_str`` and the
reference counting of the seed document (``mpol_get``, ``mpol_put``,
``mpol_cond_put``, ``mpol_needs_cond_ref``, ``mpol_dup``).

MPOL_DEFAULT is never stored: it is ``None`` in every scope, as the kernel's
NULL pointer.  The system ``default_policy`` and ``preferred_node_policy[]``
are static objects that are never refcounted nor freed.
"""

from __future__ import annotations

import errno

from mempolicy.core.nodemask import (
    NODE_MASK_NONE,
    Nodemask,
    bitmap_remap,
    mpol_relative_nodemask,
)
from mempolicy.core.slab import PolicyCache, SanitizerError
from mempolicy.core.version import DEFAULT, KernelVersion
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
    MPOL_MODE_FLAGS,
    MPOL_PREFERRED,
    MPOL_PREFERRED_MANY,
    MPOL_USER_NODEMASK_FLAGS,
    MPOL_WEIGHTED_INTERLEAVE,
    NUMA_NO_NODE,
)


class KernelError(Exception):
    """A negative errno returned inside the model kernel (the ERR_PTR / -E... convention)."""

    def __init__(self, err: int) -> None:
        super().__init__(err, errno.errorcode.get(err, str(err)))
        self.errno = err


# Hook for the concurrency checker: called at each atomic refcount operation.
# None in ordinary runs, so the hot path costs one global load.
refcount_hook = None

# atomic_t for real threads: ``mempolicy check --stress`` sets a lock here so that
# inc and dec-and-test are indivisible; None (one thread at a time) otherwise.
atomic_lock = None


class _MempolicyFields:
    __slots__ = ("_refcnt", "mode", "flags", "nodes", "home_node", "w",
                 "_cache", "_serial", "_alloc_site", "_free_site", "__weakref__")


class Mempolicy(_MempolicyFields):
    """One ``struct mempolicy``.

    ``w`` is the kernel's union: it holds ``user_nodemask`` when
    ``mpol_store_user_nodemask()`` is true and ``cpuset_mems_allowed``
    otherwise; one field, as in the kernel, so writes to one meaning are seen
    through the other.
    """

    __slots__ = ()

    def __init__(self, mode: int, flags: int, cache: PolicyCache | None = None) -> None:
        self._refcnt = 1
        self.mode = mode
        self.flags = flags
        self.nodes = NODE_MASK_NONE
        self.home_node = NUMA_NO_NODE
        self.w = NODE_MASK_NONE
        self._cache = cache
        self._serial = 0
        self._alloc_site = "static"
        self._free_site = None
        if cache is not None:
            cache.alloc(self)

    @property
    def refcnt(self) -> int:
        return self._refcnt

    @property
    def is_static(self) -> bool:
        return self._cache is None

    def __repr__(self) -> str:
        return f"<mempolicy #{self._serial} {mpol_to_str(self)} refcnt={self._refcnt}>"


class FreedMempolicy(_MempolicyFields):
    """What a policy becomes when it goes back to the cache: any use raises."""

    __slots__ = ()
    _diag = frozenset({"_serial", "_alloc_site", "_free_site", "_refcnt", "_cache",
                       "__class__", "__repr__", "describe"})

    def __getattribute__(self, name):
        if name in FreedMempolicy._diag:
            return object.__getattribute__(self, name)
        raise SanitizerError(
            f"use after free: {name} of policy #{object.__getattribute__(self, '_serial')}"
            f" allocated at {object.__getattribute__(self, '_alloc_site')},"
            f" freed at {object.__getattribute__(self, '_free_site')}")

    def __setattr__(self, name, value):
        raise SanitizerError(
            f"write after free: {name} of policy #{self._serial}"
            f" allocated at {self._alloc_site}, freed at {self._free_site}")

    def describe(self) -> str:
        return f"policy #{self._serial} allocated at {self._alloc_site}, freed at {self._free_site}"

    def __repr__(self) -> str:
        return f"<freed mempolicy #{self._serial}>"


# ---------------------------------------------------------------------------
# Static policies
# ---------------------------------------------------------------------------

def _static(mode: int, flags: int = 0, nodes: Nodemask = NODE_MASK_NONE) -> Mempolicy:
    p = Mempolicy(mode, flags, None)
    p.nodes = nodes
    return p


#: ``default_policy``: local allocation, never freed, never refcounted.
default_policy = _static(MPOL_LOCAL)


def make_preferred_node_policy(nr_node_ids: int) -> list[Mempolicy]:
    """``preferred_node_policy[]`` as numa_policy_init() builds it: one per possible node."""
    return [_static(MPOL_PREFERRED, MPOL_F_MOF | MPOL_F_MORON, Nodemask([n]))
            for n in range(nr_node_ids)]


# ---------------------------------------------------------------------------
# Reference counting (the seed document)
# ---------------------------------------------------------------------------

def mpol_get(pol: Mempolicy | None) -> None:
    """Take a reference: ``atomic_inc(&pol->refcnt)``."""
    if pol is None:
        return
    if type(pol) is FreedMempolicy:
        raise SanitizerError(f"mpol_get on a freed policy: {pol.describe()}")
    if refcount_hook is not None:
        refcount_hook("inc", pol)
    if atomic_lock is None:
        pol._refcnt += 1
    else:
        with atomic_lock:
            pol._refcnt += 1


def __mpol_put(pol: Mempolicy) -> None:
    """Drop a reference; free to the cache when it reaches zero."""
    if type(pol) is FreedMempolicy:
        raise SanitizerError(f"mpol_put on a freed policy (double put): {pol.describe()}")
    if refcount_hook is not None:
        refcount_hook("dec", pol)
    if atomic_lock is None:
        pol._refcnt -= 1
        refcnt = pol._refcnt
    else:
        with atomic_lock:                     # atomic_dec_and_test
            pol._refcnt -= 1
            refcnt = pol._refcnt
    if refcnt > 0:
        return
    if refcnt < 0:
        raise SanitizerError(f"refcount below zero: {pol!r} allocated at {pol._alloc_site}")
    if pol._cache is None:
        raise SanitizerError(f"static policy {mpol_to_str(pol)} dropped to refcount 0")
    pol._cache.free(pol)
    object.__setattr__(pol, "__class__", FreedMempolicy)


def mpol_put(pol: Mempolicy | None) -> None:
    """``mpol_put()``: NULL-safe put."""
    if pol is not None:
        __mpol_put(pol)


def mpol_needs_cond_ref(pol: Mempolicy | None) -> bool:
    """True for policies marked MPOL_F_SHARED: their lookup took a reference."""
    return pol is not None and bool(pol.flags & MPOL_F_SHARED)


def mpol_cond_put(pol: Mempolicy | None) -> None:
    """Drop the extra reference a shared-policy lookup took, and only that."""
    if mpol_needs_cond_ref(pol):
        __mpol_put(pol)


def __mpol_dup(old: Mempolicy, cache: PolicyCache, rebind_to: Nodemask | None = None) -> Mempolicy:
    """Deep copy with refcnt 1 (copies every flag, MPOL_F_SHARED included).

    ``rebind_to`` plays ``current_cpuset_is_being_rebound()``: when given the
    copy is rebound to it.
    """
    if type(old) is FreedMempolicy:
        raise SanitizerError(f"mpol_dup of a freed policy: {old.describe()}")
    new = Mempolicy(old.mode, old.flags, cache)
    new.nodes = old.nodes
    new.home_node = old.home_node
    new.w = old.w
    if rebind_to is not None:
        mpol_rebind_policy(new, rebind_to)
    return new


def mpol_dup(pol: Mempolicy | None, cache: PolicyCache, rebind_to: Nodemask | None = None):
    """``mpol_dup()``: None stays None."""
    if pol is None:
        return None
    return __mpol_dup(pol, cache, rebind_to)


# ---------------------------------------------------------------------------
# Creation
# ---------------------------------------------------------------------------

def sanitize_mpol_flags(mode: int, version: KernelVersion = DEFAULT) -> tuple[int, int]:
    """Split the user's ``int mode`` into (mode, flags); EINVAL on a bad combination.

    The modes a ``version`` knows and those it lets take MPOL_F_NUMA_BALANCING
    depend on it (``has_weighted_interleave``, ``numa_balancing_preferred_many``).
    """
    mode &= 0xFFFFFFFF                      # the syscall's int
    flags = mode & MPOL_MODE_FLAGS
    mode &= ~MPOL_MODE_FLAGS & 0xFFFFFFFF
    if mode >= (MPOL_MAX if version.has_weighted_interleave else MPOL_WEIGHTED_INTERLEAVE):
        raise KernelError(errno.EINVAL)
    if (flags & MPOL_F_STATIC_NODES) and (flags & MPOL_F_RELATIVE_NODES):
        raise KernelError(errno.EINVAL)
    if flags & MPOL_F_NUMA_BALANCING:
        if mode == MPOL_BIND or (mode == MPOL_PREFERRED_MANY
                                 and version.numa_balancing_preferred_many):
            flags |= MPOL_F_MOF | MPOL_F_MORON
        else:
            raise KernelError(errno.EINVAL)
    return mode, flags


def mpol_new(cache: PolicyCache, mode: int, flags: int, nodes: Nodemask) -> Mempolicy | None:
    """Check mode/flags/nodes and allocate; None for MPOL_DEFAULT (EINVAL if nodes given)."""
    if mode == MPOL_DEFAULT:
        if nodes:
            raise KernelError(errno.EINVAL)
        return None
    if mode == MPOL_PREFERRED:
        if not nodes:
            if flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES):
                raise KernelError(errno.EINVAL)
            mode = MPOL_LOCAL
    elif mode == MPOL_LOCAL:
        if nodes or flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES):
            raise KernelError(errno.EINVAL)
    elif not nodes:
        raise KernelError(errno.EINVAL)
    return Mempolicy(mode, flags, cache)


def mpol_store_user_nodemask(pol: Mempolicy) -> bool:
    """Whether ``w`` holds the user's nodemask: STATIC or RELATIVE, and on a kernel
    where ``user_nodemask_on_numa_balancing`` holds also NUMA_BALANCING (the
    policy's kernel is that of its cache; a static policy has no mode flags)."""
    if pol.flags & MPOL_USER_NODEMASK_FLAGS:
        return True
    cache = pol._cache
    return bool(pol.flags & MPOL_F_NUMA_BALANCING) and cache is not None \
        and cache.version.user_nodemask_on_numa_balancing


def mpol_set_nodemask(pol: Mempolicy | None, nodes: Nodemask, mems_allowed: Nodemask,
                      n_memory: Nodemask) -> None:
    """Contextualise a new policy's nodes in the caller's cpuset; EINVAL if none is left.

    ``mems_allowed`` is the current task's cpuset; ``n_memory`` is
    node_states[N_MEMORY].
    """
    if pol is None or pol.mode == MPOL_LOCAL:
        return
    allowed = mems_allowed & n_memory
    if pol.flags & MPOL_F_RELATIVE_NODES:
        eff = mpol_relative_nodemask(nodes, allowed)
    else:
        eff = nodes & allowed
    if mpol_store_user_nodemask(pol):
        pol.w = nodes
    else:
        pol.w = mems_allowed
    if not eff:
        raise KernelError(errno.EINVAL)
    if pol.mode == MPOL_PREFERRED:            # mpol_new_preferred
        pol.nodes = Nodemask([eff.first()])
    else:                                      # mpol_new_nodemask
        pol.nodes = eff


# ---------------------------------------------------------------------------
# Rebinding on a cpuset change
# ---------------------------------------------------------------------------

def mpol_rebind_nodemask(pol: Mempolicy, new: Nodemask) -> None:
    if pol.flags & MPOL_F_STATIC_NODES:
        tmp = pol.w & new
    elif pol.flags & MPOL_F_RELATIVE_NODES:
        tmp = mpol_relative_nodemask(pol.w, new)
    else:
        tmp = bitmap_remap(pol.nodes, pol.w, new)
        pol.w = new
    if not tmp:
        tmp = new
    pol.nodes = tmp


def mpol_rebind_preferred(pol: Mempolicy, new: Nodemask) -> None:
    # Writes the union's cpuset member even when it holds the user mask.
    pol.w = new


def mpol_rebind_policy(pol: Mempolicy | None, new: Nodemask) -> None:
    """Migrate a policy to a new cpuset (mpol_rebind_task / mpol_rebind_mm use this)."""
    if pol is None or pol.mode == MPOL_LOCAL:
        return
    if not mpol_store_user_nodemask(pol) and pol.w == new:
        return
    if pol.mode in (MPOL_INTERLEAVE, MPOL_BIND, MPOL_WEIGHTED_INTERLEAVE):
        mpol_rebind_nodemask(pol, new)
    elif pol.mode in (MPOL_PREFERRED, MPOL_PREFERRED_MANY):
        mpol_rebind_preferred(pol, new)


# ---------------------------------------------------------------------------
# Comparison and text
# ---------------------------------------------------------------------------

def mpol_equal(a: Mempolicy | None, b: Mempolicy | None) -> bool:
    """``mpol_equal()``: identical pointers, or same mode, flags, home node and nodes."""
    if a is b:
        return True
    if a is None or b is None:
        return False
    if a.mode != b.mode or a.flags != b.flags or a.home_node != b.home_node:
        return False
    if mpol_store_user_nodemask(a) and a.w != b.w:
        return False
    if a.mode == MPOL_LOCAL:
        return True
    return a.nodes == b.nodes


POLICY_TYPES = {
    MPOL_DEFAULT: "default",
    MPOL_PREFERRED: "prefer",
    MPOL_BIND: "bind",
    MPOL_INTERLEAVE: "interleave",
    MPOL_WEIGHTED_INTERLEAVE: "weighted interleave",
    MPOL_LOCAL: "local",
    MPOL_PREFERRED_MANY: "prefer (many)",
}


def mpol_to_str(pol: Mempolicy | None, maxlen: int = 64, is_static: bool | None = None) -> str:
    """The policy as numa_maps and /proc/mounts show it, cut to ``maxlen - 1`` chars.

    Static policies (``default_policy``, ``preferred_node_policy[]``) print as
    ``default``.
    """
    mode, flags = MPOL_DEFAULT, 0
    if pol is not None and not pol.is_static:
        mode, flags = pol.mode, pol.flags
    nodes = NODE_MASK_NONE
    if mode in (MPOL_PREFERRED, MPOL_PREFERRED_MANY, MPOL_BIND, MPOL_INTERLEAVE,
                MPOL_WEIGHTED_INTERLEAVE):
        nodes = pol.nodes
    s = POLICY_TYPES.get(mode, "unknown")
    if flags & MPOL_MODE_FLAGS:
        s += "="
        if flags & MPOL_F_STATIC_NODES:
            s += "static"
        elif flags & MPOL_F_RELATIVE_NODES:
            s += "relative"
        if flags & MPOL_F_NUMA_BALANCING:
            if (flags & MPOL_MODE_FLAGS).bit_count() > 1:
                s += "|"
            s += "balancing"
    if nodes:
        s += ":" + str(nodes)
    return s[: maxlen - 1]
