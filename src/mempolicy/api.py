"""The user-facing API: policy values and one interface over two backends.

:class:`Policy` is a memory policy as a value (mode, flags, nodes, home
node).  A *system* is something you can make memory-policy calls on:

* :class:`ModelSystem` -- a process on the model kernel (any topology),
* :class:`mempolicy.linux.LinuxSystem` -- the calling thread on the live kernel.

Both have the same methods with the same types, and both raise
``OSError(errno, strerror)`` with the kernel's errno, as the :mod:`os`
module does::

    >>> from mempolicy.api import ModelSystem, Policy
    >>> m = ModelSystem.from_spec("4x512M")
    >>> a = m.mmap(8 * 4096)
    >>> m.mbind(a, 8 * 4096, Policy.interleave("0-3"))
    >>> m.touch(a, 8 * 4096)
    >>> m.where(a, 8 * 4096)
    [0, 1, 2, 3, 0, 1, 2, 3]

Every high-level call is built on a ``raw_*`` method that takes the system
call's own arguments (mode word with flag bits, nodemask as an int or None
for NULL, ``maxnode`` as the kernel reads it); the differential tests drive
the two backends through those.
"""

from __future__ import annotations

import enum
import errno as _errno
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence, Union

from mempolicy.core.nodemask import Nodemask
from mempolicy.linux.procfs import NumaMapsRecord, parse_numa_maps

if TYPE_CHECKING:
    from mempolicy.alloc.topology import Topology
    from mempolicy.scopes.cred import Cred

#: Where a node set is taken: a Nodemask, a node, nodes, a list string ``"0-2,5"``, or None.
NodesLike = Union[Nodemask, int, Iterable[int], str, None]

__all__ = [
    "Mode", "ModeFlag", "MbindFlag", "GetFlag", "Policy", "PolicyLike", "as_nodemask", "as_policy",
    "MemorySystem", "ModelSystem", "ModelFile", "NumaMapsRecord", "MASK_BITS",
    "load_topology",
]

PAGE_SIZE = 4096
U64 = (1 << 64) - 1
#: Bits in the nodemasks the high-level calls pass (MAX_NUMNODES of common kernels).
MASK_BITS = 1024


class Mode(enum.IntEnum):
    DEFAULT = 0
    PREFERRED = 1
    BIND = 2
    INTERLEAVE = 3
    LOCAL = 4
    PREFERRED_MANY = 5
    WEIGHTED_INTERLEAVE = 6


class ModeFlag(enum.IntFlag):
    NONE = 0
    NUMA_BALANCING = 1 << 13
    RELATIVE_NODES = 1 << 14
    STATIC_NODES = 1 << 15


class MbindFlag(enum.IntFlag):
    NONE = 0
    STRICT = 1
    MOVE = 2
    MOVE_ALL = 4


class GetFlag(enum.IntFlag):
    NONE = 0
    NODE = 1
    ADDR = 2
    MEMS_ALLOWED = 4


_MODE_FLAG_BITS = int(ModeFlag.NUMA_BALANCING | ModeFlag.RELATIVE_NODES | ModeFlag.STATIC_NODES)

# Names accepted by Policy.parse: ours, the kernel's (numa_maps) and numactl's.
_MODE_NAMES = {
    "default": Mode.DEFAULT, "preferred": Mode.PREFERRED, "prefer": Mode.PREFERRED,
    "bind": Mode.BIND, "membind": Mode.BIND, "interleave": Mode.INTERLEAVE,
    "local": Mode.LOCAL, "localalloc": Mode.LOCAL,
    "preferred_many": Mode.PREFERRED_MANY, "preferred-many": Mode.PREFERRED_MANY,
    "prefer (many)": Mode.PREFERRED_MANY,
    "weighted_interleave": Mode.WEIGHTED_INTERLEAVE, "weighted-interleave": Mode.WEIGHTED_INTERLEAVE,
    "weighted interleave": Mode.WEIGHTED_INTERLEAVE,
}
_FLAG_NAMES = {"static": ModeFlag.STATIC_NODES, "relative": ModeFlag.RELATIVE_NODES,
               "balancing": ModeFlag.NUMA_BALANCING}


def as_nodemask(nodes: NodesLike) -> Nodemask:
    """A Nodemask from a Nodemask, an int node, an iterable of nodes or a list string ``0-2,5``.

    >>> str(as_nodemask("0-2,5"))
    '0-2,5'
    """
    if nodes is None:
        return Nodemask()
    if isinstance(nodes, Nodemask):
        return nodes
    if isinstance(nodes, bool):
        raise TypeError("a node set cannot be a bool")
    if isinstance(nodes, int):
        if nodes < 0:
            raise ValueError(f"negative node {nodes}")
        return Nodemask([nodes])
    if isinstance(nodes, str):
        from mempolicy.core.units import parse_list_bits
        from mempolicy.uapi import MAX_NUMNODES

        return Nodemask(parse_list_bits(nodes.strip(), MAX_NUMNODES))
    return Nodemask(list(nodes))


@dataclass(frozen=True)
class Policy:
    """A memory policy: ``mode``, mode ``flags``, ``nodes`` and an optional ``home_node``.

    ``Policy.bind("0-1")``, ``Policy.interleave([0, 2])``, ``Policy.preferred(1)``,
    ``Policy.local()``, ``Policy.parse("interleave=static:0-3")``...
    """

    mode: Mode = Mode.DEFAULT
    nodes: Nodemask = field(default_factory=Nodemask)
    flags: ModeFlag = ModeFlag.NONE
    home_node: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", Mode(self.mode))
        object.__setattr__(self, "flags", ModeFlag(self.flags))
        object.__setattr__(self, "nodes", as_nodemask(self.nodes))

    # -- constructors ---------------------------------------------------------
    @classmethod
    def _make(cls, mode: Mode, nodes: NodesLike, static: bool, relative: bool, balancing: bool,
              home_node: int | None = None) -> "Policy":
        flags = ModeFlag.NONE
        if static:
            flags |= ModeFlag.STATIC_NODES
        if relative:
            flags |= ModeFlag.RELATIVE_NODES
        if balancing:
            flags |= ModeFlag.NUMA_BALANCING
        return cls(mode, as_nodemask(nodes), flags, home_node)

    @classmethod
    def default(cls) -> "Policy":
        """MPOL_DEFAULT: ``Policy.default()``, as the string ``"default"``."""
        return cls(Mode.DEFAULT)

    @classmethod
    def local(cls) -> "Policy":
        """MPOL_LOCAL: ``Policy.local()``, as the string ``"local"``."""
        return cls(Mode.LOCAL)

    @classmethod
    def preferred(cls, node: NodesLike = None, *, static: bool = False,
                  relative: bool = False) -> "Policy":
        """MPOL_PREFERRED: ``Policy.preferred(0)``, as the string ``"preferred:0"``."""
        return cls._make(Mode.PREFERRED, node, static, relative, False)

    @classmethod
    def bind(cls, nodes: NodesLike, *, static: bool = False, relative: bool = False,
             balancing: bool = False, home_node: int | None = None) -> "Policy":
        """MPOL_BIND: ``Policy.bind("0-1")``, as the string ``"bind:0-1"``."""
        return cls._make(Mode.BIND, nodes, static, relative, balancing, home_node)

    @classmethod
    def interleave(cls, nodes: NodesLike, *, static: bool = False,
                   relative: bool = False) -> "Policy":
        """MPOL_INTERLEAVE: ``Policy.interleave([0, 2])``, as the string ``"interleave:0,2"``."""
        return cls._make(Mode.INTERLEAVE, nodes, static, relative, False)

    @classmethod
    def weighted_interleave(cls, nodes: NodesLike, *, static: bool = False,
                            relative: bool = False) -> "Policy":
        """MPOL_WEIGHTED_INTERLEAVE: ``Policy.weighted_interleave("0-1")``, as the string
        ``"weighted_interleave:0-1"``."""
        return cls._make(Mode.WEIGHTED_INTERLEAVE, nodes, static, relative, False)

    @classmethod
    def preferred_many(cls, nodes: NodesLike, *, static: bool = False, relative: bool = False,
                       balancing: bool = False, home_node: int | None = None) -> "Policy":
        """MPOL_PREFERRED_MANY: ``Policy.preferred_many("0-1")``, as ``"preferred_many:0-1"``."""
        return cls._make(Mode.PREFERRED_MANY, nodes, static, relative, balancing, home_node)

    @classmethod
    def from_kernel(cls, mode_word: int, mask: int | None = 0) -> "Policy":
        """From what get_mempolicy returns: the mode word (with flag bits) and the mask."""
        mode_word &= 0xFFFFFFFF
        return cls(Mode(mode_word & ~_MODE_FLAG_BITS), Nodemask(mask or 0),
                   ModeFlag(mode_word & _MODE_FLAG_BITS))

    @classmethod
    def parse(cls, text: str) -> "Policy":
        """``mode[=flag[|flag]][:nodes]``, with our, the kernel's or numactl's mode names.

        ``bind:0-1``, ``interleave=static:0,2``, ``prefer (many)=balancing:0``, ``local``.
        """
        if not isinstance(text, str):
            raise TypeError(f"a policy string is a str, not {type(text).__name__}")
        s = text.strip()
        head, colon, nodes = s.partition(":")
        name, eq, flagtext = head.partition("=")
        mode = _MODE_NAMES.get(name.strip().lower())
        if mode is None:
            raise ValueError(f"policy {text!r}: unknown mode {name.strip()!r} (modes: default, "
                             "local, preferred, bind, interleave, weighted_interleave, "
                             "preferred_many)")
        flags = ModeFlag.NONE
        if eq:
            for f in flagtext.split("|"):
                if f.strip() not in _FLAG_NAMES:
                    raise ValueError(f"policy {text!r}: unknown flag {f.strip()!r} "
                                     "(flags: static, relative, balancing)")
                flags |= _FLAG_NAMES[f.strip()]
        try:
            mask = as_nodemask(nodes) if colon else Nodemask()
        except ValueError as e:
            raise ValueError(f"policy {text!r}: nodes {nodes.strip()!r}: {e}") from None
        if colon and not mask and mode not in (Mode.DEFAULT, Mode.LOCAL, Mode.PREFERRED):
            raise ValueError(f"policy {text!r}: no nodes after ':'")
        return cls(mode, mask, flags)

    # -- queries ------------------------------------------------------------
    @property
    def mode_word(self) -> int:
        """The ``mode`` argument of set_mempolicy/mbind: the mode OR-ed with its flags."""
        return int(self.mode) | int(self.flags)

    def __str__(self) -> str:
        s = self.mode.name.lower()
        names = [n for n, f in _FLAG_NAMES.items() if self.flags & f]
        if names:
            s += "=" + "|".join(names)
        if self.nodes:
            s += ":" + str(self.nodes)
        if self.home_node is not None:
            s += f" home={self.home_node}"
        return s


#: Where a policy is taken: a :class:`Policy`, or a string :meth:`Policy.parse` reads.
PolicyLike = Policy | str


def as_policy(policy: PolicyLike | None) -> Policy:
    """A Policy from a Policy, a numactl-style string or None (the default policy).

    >>> as_policy("interleave:0-3") == Policy.interleave("0-3")
    True

    A string that does not parse raises ValueError naming the bad part.
    """
    if policy is None:
        return Policy.default()
    if isinstance(policy, Policy):
        return policy
    if isinstance(policy, str):
        return Policy.parse(policy)
    raise TypeError(f"a policy is a Policy or a string like 'bind:0', not {type(policy).__name__}")


def _oserror(e: int) -> OSError:
    return OSError(e, os.strerror(e))


# ---------------------------------------------------------------------------
# The common interface
# ---------------------------------------------------------------------------

class MemorySystem:
    """What both backends offer.  Subclasses implement the ``raw_*`` calls and the
    address-space helpers; the high-level calls here are built on them."""

    #: bits of the nodemasks passed by the high-level calls
    mask_bits = MASK_BITS

    # -- to implement -----------------------------------------------------------
    def raw_set_mempolicy(self, mode: int, mask: int | None, maxnode: int) -> int:
        raise NotImplementedError

    def raw_get_mempolicy(self, want_mode: bool, mask_bytes: int | None, maxnode: int,
                          addr: int, flags: int) -> tuple[int | None, int | None]:
        raise NotImplementedError

    def raw_mbind(self, addr: int, length: int, mode: int, mask: int | None, maxnode: int,
                  flags: int) -> int:
        raise NotImplementedError

    def raw_set_mempolicy_home_node(self, start: int, length: int, home_node: int, flags: int) -> int:
        raise NotImplementedError

    def raw_migrate_pages(self, pid: int, maxnode: int, old: int | None, new: int | None) -> int:
        raise NotImplementedError

    def raw_move_pages(self, pid: int, pages: Sequence[int], nodes: Sequence[int] | None,
                       flags: int) -> tuple[int, list[int | None]]:
        raise NotImplementedError

    def mmap(self, length: int, addr: int | None = None, *, shared: bool = False,
             writable: bool = True, file: Any = None, offset: int = 0) -> int:
        raise NotImplementedError

    def munmap(self, addr: int, length: int) -> None:
        raise NotImplementedError

    def mprotect(self, addr: int, length: int, writable: bool) -> None:
        raise NotImplementedError

    def touch(self, addr: int, length: int, write: bool = True) -> None:
        raise NotImplementedError

    def numa_maps(self, pid: int | None = None) -> list[NumaMapsRecord]:
        raise NotImplementedError

    # -- high level -------------------------------------------------------------
    @property
    def _maxnode(self) -> int:
        return self.mask_bits + 1

    def set_mempolicy(self, policy: PolicyLike | None = None) -> None:
        """Set the task policy of the calling thread (None: the default policy).

        Example: ``system.set_mempolicy("interleave:0-3")``.
        """
        policy = as_policy(policy)
        mask = policy.nodes.bits if (policy.nodes or policy.mode != Mode.DEFAULT) else None
        self._check_bits(policy.nodes)
        self.raw_set_mempolicy(policy.mode_word, mask, self._maxnode)

    def get_mempolicy(self, addr: int | None = None) -> Policy:
        """The task policy, or with ``addr`` the policy of the VMA there (F_ADDR)."""
        flags = GetFlag.ADDR if addr is not None else GetFlag.NONE
        mode, mask = self.raw_get_mempolicy(True, self.mask_bits // 8, self._maxnode,
                                            0 if addr is None else addr, int(flags))
        return Policy.from_kernel(mode or 0, mask)

    def next_interleave_node(self) -> int:
        """The node the task's interleave round robin gives next (F_NODE)."""
        mode, _ = self.raw_get_mempolicy(True, None, 0, 0, int(GetFlag.NODE))
        return mode or 0

    def node_of(self, addr: int) -> int:
        """The node of the page at ``addr``, faulting it in as a read does (F_NODE|F_ADDR)."""
        mode, _ = self.raw_get_mempolicy(True, None, 0, addr, int(GetFlag.NODE | GetFlag.ADDR))
        return mode or 0

    def mems_allowed(self) -> Nodemask:
        """The nodes the task's cpuset allows (F_MEMS_ALLOWED)."""
        _, mask = self.raw_get_mempolicy(False, self.mask_bits // 8, self._maxnode, 0,
                                         int(GetFlag.MEMS_ALLOWED))
        return Nodemask(mask or 0)

    def mbind(self, addr: int, length: int, policy: PolicyLike,
              flags: MbindFlag | int = 0) -> None:
        """Set the policy of [addr, addr+length); then its home node if the policy has one.

        Example: ``system.mbind(addr, 8 * 4096, "bind:1")``.
        """
        policy = as_policy(policy)
        self._check_bits(policy.nodes)
        mask = policy.nodes.bits if policy.nodes else None
        self.raw_mbind(addr, length, policy.mode_word, mask, self._maxnode if mask else 0, int(flags))
        if policy.home_node is not None:
            self.raw_set_mempolicy_home_node(addr, length, policy.home_node, 0)

    def set_mempolicy_home_node(self, addr: int, length: int, home_node: int) -> None:
        self.raw_set_mempolicy_home_node(addr, length, home_node, 0)

    def migrate_pages(self, old: NodesLike, new: NodesLike, pid: int = 0) -> int:
        """Move the pages of process ``pid`` (0: this one) from ``old`` to ``new`` nodes;
        returns the number of pages that could not be moved."""
        frm, to = as_nodemask(old), as_nodemask(new)
        self._check_bits(frm)
        self._check_bits(to)
        return self.raw_migrate_pages(pid, self._maxnode, frm.bits, to.bits)

    def move_pages(self, pages: Sequence[int], nodes: Sequence[int] | None = None,
                   flags: MbindFlag | int = MbindFlag.MOVE, pid: int = 0) -> list[int]:
        """Move each page to its node (``nodes``), or with ``nodes=None`` ask where each
        page is.  Returns the status of each page: a node, or ``-errno``."""
        if nodes is not None and len(nodes) != len(pages):
            raise ValueError("pages and nodes differ in length")
        _, status = self.raw_move_pages(pid, list(pages), None if nodes is None else list(nodes),
                                        int(flags) if nodes is not None else 0)
        return [s if s is not None else -_errno.EAGAIN for s in status]

    def where(self, addr: int, length: int) -> list[int]:
        """The node of each page of [addr, addr+length), or -errno (-ENOENT: not present)."""
        first = addr & ~(PAGE_SIZE - 1)
        pages = list(range(first, addr + length, PAGE_SIZE))
        return self.move_pages(pages, None)

    # -- machine ----------------------------------------------------------------
    def set_system_weight(self, node: int, weight: int) -> None:
        """Write the machine-wide weighted-interleave weight of ``node`` (1..255).

        This is sysfs ``/sys/kernel/mm/mempolicy/weighted_interleave/nodeN``: it
        changes the weights of every process on the machine that uses weighted
        interleave, not only this one, and needs root on Linux.  Example:
        ``system.set_system_weight(0, 3)``.
        """
        raise NotImplementedError

    def set_weight(self, node: int, weight: int) -> None:
        """Deprecated name of :meth:`set_system_weight` (the weight is machine-wide)."""
        import warnings

        warnings.warn("set_weight() is deprecated: use set_system_weight(), which says what it "
                      "does: it writes the machine-wide weight (sysfs), for every process",
                      DeprecationWarning, stacklevel=2)
        self.set_system_weight(node, weight)

    # -- transparent huge pages (docs/trace-format.md 5.9) -----------------------
    def set_thp(self, enabled: str | None = None, *, defrag: str | None = None,
                use_zero_page: bool | None = None) -> None:
        """Write the machine-wide THP settings under /sys/kernel/mm/transparent_hugepage:
        ``enabled`` (always, madvise, never), ``defrag`` (always, defer, defer+madvise,
        madvise, never), ``use_zero_page``.  Example: ``system.set_thp("always")``.
        """
        raise NotImplementedError

    def madvise_hugepage(self, addr: int, length: int, hugepage: bool = True) -> None:
        """``madvise(MADV_HUGEPAGE)`` (or ``MADV_NOHUGEPAGE`` with ``hugepage=False``)."""
        raise NotImplementedError

    def _check_bits(self, nodes: Nodemask) -> None:
        if nodes.bits.bit_length() > self.mask_bits:
            raise ValueError(f"node {nodes.last()} is beyond the {self.mask_bits}-bit nodemask")


# ---------------------------------------------------------------------------
# The model backend
# ---------------------------------------------------------------------------

class ModelFile:
    """A memfd of the model (shmem file), for :meth:`ModelSystem.mmap`."""

    def __init__(self, shmem_file: Any, name: str) -> None:
        self.file = shmem_file
        self.name = name


_MMAP_TOP = 0x7F0000000000


class _NumaStatCounter:
    """A page allocator that counts numa_hit, numa_miss... as zone_statistics() does."""

    KEYS = ("numa_hit", "numa_miss", "numa_foreign", "interleave_hit", "local_node", "other_node")

    def __init__(self, inner: Any, topo: Topology, local_node: Callable[[], int]) -> None:
        self._inner = inner
        self._topo = topo
        self._local_node = local_node
        self.stats = {n.id: dict.fromkeys(self.KEYS, 0) for n in topo.nodes}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def add_bulk(self, nid: int, pref: int, local: int, count: int, interleave_hits: int) -> None:
        """Count ``count`` allocations on ``nid`` preferring ``pref`` at once (the bulk
        fault path; the same counts as ``count`` calls of alloc_pages)."""
        st = self.stats
        if nid == pref:
            st[nid]["numa_hit"] += count
        else:
            st[nid]["numa_miss"] += count
            st[pref]["numa_foreign"] += count
        st[nid]["local_node" if nid == local else "other_node"] += count
        st[nid]["interleave_hit"] += interleave_hits

    def alloc_pages(self, preferred_nid: int, nodemask: Nodemask | None, mems_allowed: Nodemask,
                    thisnode: bool = False) -> int | None:
        nid: int | None = self._inner.alloc_pages(preferred_nid, nodemask, mems_allowed,
                                                  thisnode=thisnode)
        if nid is None:
            return nid
        if thisnode:
            pref = preferred_nid
        else:
            pref = next((n for n in self._topo.zonelists[preferred_nid]
                         if nodemask is None or n in nodemask), nid)
        st = self.stats
        if nid == pref:
            st[nid]["numa_hit"] += 1
        else:
            st[nid]["numa_miss"] += 1
            st[pref]["numa_foreign"] += 1
        st[nid]["local_node" if nid == self._local_node() else "other_node"] += 1
        # NUMA_INTERLEAVE_HIT is counted by alloc_pages_mpol for the interleave modes
        caller = sys._getframe(1)
        pol = caller.f_locals.get("pol") if caller.f_code.co_name == "alloc_pages_mpol" else None
        if pol is not None and pol.mode in (Mode.INTERLEAVE, Mode.WEIGHTED_INTERLEAVE) \
                and nid == caller.f_locals.get("nid"):
            st[nid]["interleave_hit"] += 1
        return nid


class ModelSystem(MemorySystem):
    """A process on the model kernel booted on ``topology``.

    ``ModelSystem(Topology.simple(4))``, ``ModelSystem.from_spec("4x512M")``,
    ``ModelSystem.from_spec("machine.toml")``.

    The process runs as root with every capability unless told otherwise:
    ``privileged=False`` makes it uid and gid 65534 without capabilities (then
    ``MPOL_MF_MOVE_ALL`` is ``EPERM`` and ``migrate_pages`` leaves shared pages
    alone), and ``cred`` gives any credentials, e.g. those of the real caller,
    ``ModelSystem(topo, cred=mempolicy.linux.read_cred())``.  ``version`` ("6.1",
    "6.12" or "7.3", the default) is the Linux the model behaves as; another is
    ValueError.
    """

    def __init__(self, topology: Topology, protocol: str = "current", *, privileged: bool = True,
                 cred: Cred | None = None, version: str = "7.3") -> None:
        from mempolicy.kernel import Kernel
        from mempolicy.scopes.cred import Cred

        self.kernel, self.task = Kernel.boot(topology, protocol, version=version)
        if cred is None:
            cred = Cred.root() if privileged else Cred.user()
        self.task.cred = cred
        self.topology = topology
        self.kernel.pages = _NumaStatCounter(self.kernel.pages, topology,
                                             lambda: self.task.numa_node_id())
        self.pid = self.task.pid

    @classmethod
    def from_spec(cls, spec: str, protocol: str = "current", *, privileged: bool = True,
                  cred: Cred | None = None, version: str = "7.3") -> "ModelSystem":
        """From a topology spec (docs/topology.md): a TOML or hwloc XML file, ``4x512M``,
        a hwloc synthetic string.  ValueError (``TopologyError``), one line, for a bad spec.

        >>> len(ModelSystem.from_spec("2x512M").topology.nodes)
        2
        """
        if not isinstance(spec, str):
            raise TypeError(f"a topology spec is a str, not {type(spec).__name__}")
        return cls(load_topology(spec), protocol, privileged=privileged, cred=cred, version=version)

    @property
    def privileged(self) -> bool:
        """The process has CAP_SYS_NICE in its effective set."""
        return bool(self.task.cred.privileged)

    # -- errors ---------------------------------------------------------------
    def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        from mempolicy.core.mempolicy import KernelError

        try:
            return fn(self.kernel, self.task, *args)
        except KernelError as e:
            raise _oserror(e.errno) from None

    # -- raw calls ------------------------------------------------------------
    def raw_set_mempolicy(self, mode: int, mask: int | None, maxnode: int) -> int:
        from mempolicy.syscalls.mempolicy import kernel_set_mempolicy

        return int(self._run(kernel_set_mempolicy, mode & U64, mask, maxnode & U64))

    def raw_get_mempolicy(self, want_mode: bool, mask_bytes: int | None, maxnode: int,
                          addr: int, flags: int) -> tuple[int | None, int | None]:
        from mempolicy.syscalls.mempolicy import kernel_get_mempolicy

        pval, buf = self._run(kernel_get_mempolicy, mask_bytes, maxnode & U64, addr & U64, flags & U64)
        if want_mode:
            pval &= 0xFFFFFFFF
            pval = pval - (1 << 32) if pval & 0x80000000 else pval
        return (pval if want_mode else None), buf

    def raw_mbind(self, addr: int, length: int, mode: int, mask: int | None, maxnode: int,
                  flags: int) -> int:
        from mempolicy.syscalls.mempolicy import kernel_mbind

        return int(self._run(kernel_mbind, addr & U64, length & U64, mode & U64, mask,
                             maxnode & U64, flags & U64))

    def raw_set_mempolicy_home_node(self, start: int, length: int, home_node: int,
                                    flags: int) -> int:
        from mempolicy.syscalls.mempolicy import sys_set_mempolicy_home_node

        return int(self._run(sys_set_mempolicy_home_node, start & U64, length & U64,
                             home_node & U64, flags & U64))

    def raw_migrate_pages(self, pid: int, maxnode: int, old: int | None, new: int | None) -> int:
        from mempolicy.syscalls.migrate import kernel_migrate_pages

        return int(self._run(kernel_migrate_pages, _pid(pid), maxnode & U64, old, new))

    def raw_move_pages(self, pid: int, pages: Sequence[int], nodes: Sequence[int] | None,
                       flags: int) -> tuple[int, list[int | None]]:
        from mempolicy.syscalls.migrate import kernel_move_pages

        nodes32 = None if nodes is None else [_int32(n) for n in nodes]
        r, status = self._run(kernel_move_pages, _pid(pid), [p & U64 for p in pages], nodes32,
                              flags & 0xFFFFFFFF)
        return r, list(status)

    # -- address space --------------------------------------------------------
    def _free_gap(self, length: int) -> int:
        """The highest free range of ``length`` bytes below the mmap base (top down)."""
        top = _MMAP_TOP
        for vma in reversed(self.task.mm.vmas):
            if vma.start >= top:
                continue
            if vma.end <= top - length:
                return top - length
            top = vma.start
        if top < length:
            raise _oserror(_errno.ENOMEM)
        return top - length

    def mmap(self, length: int, addr: int | None = None, *, shared: bool = False,
             writable: bool = True, file: Any = None, offset: int = 0) -> int:
        """An anonymous (or ``file``-backed, see :meth:`memfd_create`) mapping."""
        from mempolicy.syscalls import mman

        if length <= 0:
            raise _oserror(_errno.EINVAL)
        length = (length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
        if addr is None:
            addr = self._free_gap(length)
        if offset % PAGE_SIZE:
            raise _oserror(_errno.EINVAL)
        f = file.file if isinstance(file, ModelFile) else file
        self._run(mman.sys_mmap, addr, length, shared, f, offset // PAGE_SIZE)
        if not writable:
            self._run(mman.sys_mprotect, addr, length, False)
        return addr

    def memfd_create(self, name: str, size: int) -> ModelFile:
        """A memfd of ``size`` bytes (memfd_create then ftruncate)."""
        from mempolicy.syscalls import mman

        try:
            f = mman.memfd_create(self.kernel, self.task, name, (size + PAGE_SIZE - 1) // PAGE_SIZE)
        except mman.MemfdSizeError as e:
            raise _oserror(e.errno) from None
        return ModelFile(f, name)

    def munmap(self, addr: int, length: int) -> None:
        from mempolicy.syscalls import mman

        self._run(mman.sys_munmap, addr & U64, length & U64)

    def mprotect(self, addr: int, length: int, writable: bool) -> None:
        from mempolicy.syscalls import mman

        self._run(mman.sys_mprotect, addr & U64, length & U64, writable)

    def touch(self, addr: int, length: int, write: bool = True) -> None:
        """Fault in every page of the range as a write (or a read) by the process does,
        lowest page first; large ranges take the bulk fault path (the same result) and
        show progress on a terminal.  An access the process could not make raises
        EFAULT; running out of memory raises ENOMEM (the pages before stay touched).

        >>> m = ModelSystem.from_spec("2x1G")
        >>> a = m.mmap(1 << 30)
        >>> m.touch(a, 1 << 30)
        """
        from mempolicy.alloc.bulk import touch_range
        from mempolicy.alloc.fault import FaultSignal, OutOfMemory
        from mempolicy.progress import Progress

        first = addr & ~(PAGE_SIZE - 1)
        npages = max(0, (addr + length - first + PAGE_SIZE - 1) // PAGE_SIZE)
        bar = Progress(npages, "touch") if npages >= (1 << 16) else None
        try:
            touch_range(self.kernel, self.task, first & U64, npages, write,
                        progress=None if bar is None else bar.update)
        except FaultSignal:
            raise _oserror(_errno.EFAULT) from None
        except OutOfMemory:
            raise _oserror(_errno.ENOMEM) from None
        finally:
            if bar is not None:
                bar.close()

    def numa_maps(self, pid: int | None = None) -> list[NumaMapsRecord]:
        return parse_numa_maps(self.numa_maps_text(pid))

    def numa_maps_text(self, pid: int | None = None) -> str:
        """/proc/<pid>/numa_maps as the model prints it."""
        from mempolicy.proc.task_mmu import numa_maps

        # /proc/self is the thread-group leader's directory: its task policy is shown
        task = self._thread_table()["main"] if pid in (None, 0, self.pid) else self.kernel.tasks.get(pid)
        if task is None:
            raise _oserror(_errno.ESRCH)
        return "".join(line + "\n" for line in numa_maps(self.kernel, self.task, task))

    # -- machine --------------------------------------------------------------
    def set_system_weight(self, node: int, weight: int) -> None:
        """Write the model machine's weighted-interleave weight of ``node`` (its sysfs
        ``weighted_interleave/nodeN``): every task of the model sees it, and the
        weights turn manual.  A node without memory has no such file (ENOENT);
        a weight outside 1..255 is EINVAL."""
        if node not in self.kernel.wi_state.sysfs_nodes:
            raise _oserror(_errno.ENOENT)
        if not 1 <= weight <= 255:
            raise _oserror(_errno.EINVAL)
        self.kernel.wi_state.set_weight(node, weight)

    def weights(self) -> dict[int, int]:
        """Node -> weighted-interleave weight, for the nodes with memory (sysfs ``nodeN``)."""
        weights: dict[int, int] = self.kernel.wi_state.weights()
        return weights

    def set_node_bandwidth(self, node: int, mbps: int) -> None:
        """What firmware (an HMAT) says of ``node``'s memory bandwidth, in MB/s.

        As Linux's ``mempolicy_set_node_perf``: the bandwidth is kept, and in
        auto mode every weight is recomputed from all of them
        (``reduce_interleave_weights``: 32 * bw / sum, at least 1, divided by
        their gcd).  Example: bandwidths 30000 and 10000 give weights 3:1.
        """
        if node not in self.kernel.wi_state.n_memory or not 1 <= mbps < 1 << 27:
            raise _oserror(_errno.EINVAL)
        self.kernel.wi_state.mempolicy_set_node_perf(node, mbps)

    @property
    def weights_auto(self) -> bool:
        """The sysfs ``weighted_interleave/auto`` switch."""
        wi = self.kernel.wi_state
        return wi.iw_table is None or wi.mode_auto

    @weights_auto.setter
    def weights_auto(self, value: bool) -> None:
        e = self.kernel.wi_state.auto_store("1" if value else "0")
        if e:
            raise _oserror(e)     # ENODEV: no bandwidths to compute weights from

    # -- transparent huge pages -------------------------------------------------
    def set_thp(self, enabled: str | None = None, *, defrag: str | None = None,
                use_zero_page: bool | None = None) -> None:
        """The model machine's THP settings (``mempolicy.alloc.huge_memory``); ValueError
        for a value the sysfs file refuses (Linux: EINVAL).

        >>> m = ModelSystem.from_spec("2x1G")
        >>> m.set_thp("always")
        >>> a = m.mmap(4 << 20, 1 << 40)
        >>> m.touch(a, 4096)
        >>> m.where(a + (2 << 20) - 4096, 8192)
        [0, -2]
        """
        from mempolicy.alloc.huge_memory import DEFRAG, ENABLED, set_thp

        if enabled is not None and enabled not in ENABLED:
            raise ValueError(f"THP enabled is one of {', '.join(ENABLED)}, not {enabled!r}")
        if defrag is not None and defrag not in DEFRAG:
            raise ValueError(f"THP defrag is one of {', '.join(DEFRAG)}, not {defrag!r}")
        if enabled is not None:
            set_thp(self.kernel, "enabled", enabled)
        if defrag is not None:
            set_thp(self.kernel, "defrag", defrag)
        if use_zero_page is not None:
            set_thp(self.kernel, "use_zero_page", "1" if use_zero_page else "0")

    def madvise_hugepage(self, addr: int, length: int, hugepage: bool = True) -> None:
        from mempolicy.syscalls import mman

        advice = mman.MADV_HUGEPAGE if hugepage else mman.MADV_NOHUGEPAGE
        self._run(mman.sys_madvise, addr & U64, length & U64, advice)

    def numastat(self) -> dict[int, dict[str, int]]:
        """Per-node numa_hit, numa_miss, numa_foreign, interleave_hit, local_node, other_node."""
        return {n: dict(v) for n, v in self.kernel.pages.stats.items()}

    def meminfo(self, node: int) -> dict[str, int]:
        """MemTotal, MemFree, MemUsed of a node, in bytes."""
        total = self.topology.nodes[node].present_pages * PAGE_SIZE
        free = self.kernel.pages.free[node] * PAGE_SIZE
        return {"MemTotal": total, "MemFree": free, "MemUsed": total - free}

    def sched_setaffinity(self, cpus: Iterable[int]) -> None:
        """Restrict the process to ``cpus``; it moves to the first if its CPU is not among them."""
        cpus = sorted(set(cpus))
        if not cpus or any(not self.topology.cpu_online(c) for c in cpus):
            raise _oserror(_errno.EINVAL)
        self.task.cpus_allowed = frozenset(cpus)
        if self.task.cpu not in cpus:
            self.task.cpu = cpus[0]

    def sched_getaffinity(self) -> set[int]:
        return set(self.task.cpus_allowed)

    # -- threads and cpusets (trace format 1.3, section 5.7) -----------------
    def create_thread(self, name: str) -> None:
        """A new thread of the process (clone with CLONE_VM | CLONE_THREAD), created
        by the current one, whose task policy, CPU and allowed nodes it copies.
        The current thread stays current (``switch_thread``)."""
        from mempolicy.syscalls.process import copy_thread

        threads = self._thread_table()
        if name in threads:
            raise ValueError(f"thread {name!r} exists already")
        t = threads[name] = copy_thread(self.kernel, self.task)
        cs = self._cpuset_state()
        if cs is not None and cs.tasks:
            cs.tasks.append(t)

    def switch_thread(self, name: str) -> None:
        """Make thread ``name`` (``main``: the first) the one the calls act for."""
        threads = self._thread_table()
        if name not in threads:
            raise ValueError(f"no thread {name!r}")
        self.task = threads[name]

    def exit_thread(self, name: str) -> None:
        """End thread ``name`` (not ``main``, not the current one)."""
        from mempolicy.syscalls.process import exit_thread

        threads = self._thread_table()
        if name not in threads or name == "main" or threads[name] is self.task:
            raise ValueError(f"cannot end thread {name!r}")
        exit_thread(self.kernel, threads.pop(name))

    def threads(self) -> list[str]:
        return list(self._thread_table())

    def cpuset(self, mems: NodesLike = None, cpus: Iterable[int] | None = None) -> None:
        """Put the process (all its threads) into a cgroup v2 cpuset, or change it:
        ``cpuset.cpus`` then ``cpuset.mems`` as given, as the trace command ``cpuset``.
        Pages migrate and policies are rebound as Linux does (docs/trace-format.md 5.7);
        OSError with the errno of the write that failed."""
        from mempolicy.cgroup import cpuset as cg
        from mempolicy.core.mempolicy import KernelError

        cs = self._cpuset_state()
        if cs is None:
            cs = self._cpuset = cg.Cpuset(self.kernel)
        try:
            if cpus is not None:
                cg.update_cpumask(self.kernel, cs, frozenset(cpus))
            if mems is not None:
                cg.update_nodemask(self.kernel, cs, as_nodemask(mems))
        except KernelError as e:
            raise _oserror(e.errno) from None
        threads = self._thread_table()
        if not cs.tasks:
            cg.cpuset_attach(self.kernel, cs, [threads["main"]] +
                             [t for n, t in threads.items() if n != "main"])

    def _thread_table(self) -> dict[str, Any]:
        threads: dict[str, Any] | None = getattr(self, "_threads", None)
        if threads is None:
            threads = self._threads = {"main": self.task}
        return threads

    def _cpuset_state(self) -> Any:
        return getattr(self, "_cpuset", None)


def _pid(pid: int) -> int:
    pid &= 0xFFFFFFFF
    return pid - (1 << 32) if pid & 0x80000000 else pid


def _int32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def load_topology(spec: str) -> Topology:
    """A Topology from a spec: a TOML or hwloc XML file, a trace file's header, ``NxSIZE``
    (``4x512M``, ``2x1G:21``), ``numa:4(memory=1GiB) core:2 pu:1`` (hwloc synthetic, as hwloc
    reads it) or ``sysfs`` (docs/topology.md)."""
    from mempolicy.linux.topology import load_topology as _load

    return _load(spec)
