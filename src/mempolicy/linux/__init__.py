"""The live Linux kernel: memory-policy calls, NUMA sysfs/procfs readers, placed arrays.

The six calls go through ctypes ``syscall()`` (no libnuma) and take and
return the types of :mod:`mempolicy.api` (:class:`~mempolicy.api.Policy`,
:class:`~mempolicy.core.nodemask.Nodemask`), raising ``OSError`` with the
kernel's errno::

    from mempolicy import linux
    from mempolicy.api import Policy

    if linux.available():
        linux.set_mempolicy(Policy.interleave("0-1"))   # this thread
        print(linux.get_mempolicy())
        with linux.thread_policy(Policy.bind([0])):
            ...                                          # allocations bound to node 0

Modules: :mod:`.syscalls` (raw calls), :mod:`.sysfs` (node files, weights,
tiers), :mod:`.procfs` (numa_maps), :mod:`.topology` (a model Topology from
sysfs, shorthands, hwloc), :mod:`.system` (:class:`LinuxSystem`, the probe),
:mod:`.arrays` (NumPy arrays placed by policy, :func:`thread_policy`).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any, Iterable, Sequence

if TYPE_CHECKING:
    from mempolicy.api import Policy, PolicyLike
    from mempolicy.core.nodemask import Nodemask
    from mempolicy.linux.system import LinuxSystem

_LAZY = {
    "LinuxSystem": "system", "LinuxFile": "system", "Probe": "system", "probe": "system",
    "available": "system",
    "read_numa_maps": "procfs", "parse_numa_maps": "procfs", "NumaMapsRecord": "procfs",
    "topology_from_sysfs": "topology", "topology_from_synthetic": "topology",
    "topology_from_shorthand": "topology", "load_topology": "topology", "to_hwloc_xml": "topology",
    "node_states": "sysfs", "node_ids": "sysfs", "node_cpus": "sysfs", "node_meminfo": "sysfs",
    "node_distance": "sysfs", "node_numastat": "sysfs", "weighted_interleave_weights": "sysfs",
    "weighted_interleave_auto": "sysfs", "memory_tiers": "sysfs",
    "thread_policy": "arrays", "empty": "arrays", "zeros": "arrays", "page_nodes": "arrays",
    "move_array": "arrays", "free": "arrays",
}

__all__ = sorted(_LAZY) + ["set_mempolicy", "get_mempolicy", "mbind", "set_mempolicy_home_node",
                           "migrate_pages", "move_pages", "default_system"]

_system: LinuxSystem | None = None


def default_system() -> LinuxSystem:
    """The shared :class:`LinuxSystem` the module-level calls use.

    Example: ``default_system().weights()``.
    """
    global _system
    if _system is None:
        from mempolicy.linux.system import LinuxSystem

        _system = LinuxSystem()
    return _system


def set_mempolicy(policy: PolicyLike | None = None) -> None:
    """Set the calling thread's task policy (None: default).

    Example: ``set_mempolicy("interleave:0-1")`` or ``set_mempolicy(Policy.bind([0]))``.
    """
    default_system().set_mempolicy(policy)


def get_mempolicy(addr: int | None = None) -> Policy:
    """The calling thread's policy, or the policy at ``addr``.

    Example: ``str(get_mempolicy())`` -> ``'default'``.
    """
    return default_system().get_mempolicy(addr)


def mbind(addr: int, length: int, policy: PolicyLike, flags: int = 0) -> None:
    """Set the policy of [addr, addr+length) of this process.

    Example: ``mbind(addr, 1 << 20, "bind:0")``.
    """
    default_system().mbind(addr, length, policy, flags)


def set_mempolicy_home_node(addr: int, length: int, home_node: int) -> None:
    """The home node of the bind/preferred-many policy of a range.

    Example: ``set_mempolicy_home_node(addr, 1 << 20, 1)``.
    """
    default_system().set_mempolicy_home_node(addr, length, home_node)


def migrate_pages(old: Nodemask | Iterable[int] | int | str,
                  new: Nodemask | Iterable[int] | int | str, pid: int = 0) -> int:
    """Move process ``pid``'s pages from ``old`` to ``new`` nodes; the pages not moved.

    Example: ``migrate_pages("0", "1")``.
    """
    return default_system().migrate_pages(old, new, pid)


def move_pages(pages: Sequence[int], nodes: Sequence[int] | None = None, flags: int = 2,
               pid: int = 0) -> list[int]:
    """Move each page to its node, or with ``nodes=None`` ask where each page is.

    Example: ``move_pages([addr], None)`` -> ``[0]``.
    """
    return default_system().move_pages(pages, nodes, flags, pid)


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'mempolicy.linux' has no attribute {name!r}")
    return getattr(import_module(f"mempolicy.linux.{mod}"), name)
