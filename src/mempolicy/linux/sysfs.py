"""Readers for the NUMA files of sysfs and procfs.

* ``/sys/devices/system/node``: node states (``possible``, ``online``,
  ``has_cpu``, ``has_memory``, ...), and per node ``cpulist``, ``meminfo``,
  ``distance``, ``numastat``;
* ``/sys/kernel/mm/mempolicy/weighted_interleave``: the weight of each node
  and the ``auto`` switch (Linux 6.16+; some kernels name the file
  ``__auto_type``);
* ``/sys/devices/virtual/memory_tiering``: memory tiers and their nodes;
* ``/proc/<pid>/status``: ``Mems_allowed_list`` and ``Cpus_allowed_list``.

Every reader takes ``root`` (default ``/``) so that a copy of these trees
can be read as well as the live one.  Node and CPU lists use the kernel's
list format (``0-3,5``).
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path
from typing import Iterable, Union

#: A root directory: a str or a path-like object.
StrPath = Union[str, "os.PathLike[str]"]

from mempolicy.core import units
from mempolicy.core.nodemask import Nodemask

__all__ = [
    "parse_list", "format_list", "node_ids", "node_states", "node_cpus", "node_meminfo",
    "node_distance", "node_numastat", "weighted_interleave_weights",
    "weighted_interleave_auto", "set_weighted_interleave_weight", "set_weighted_interleave_auto",
    "memory_tiers",
    "proc_status_lists", "NODE_STATES",
]

NODE_DIR = "sys/devices/system/node"
WI_DIR = "sys/kernel/mm/mempolicy/weighted_interleave"
TIER_DIR = "sys/devices/virtual/memory_tiering"
NODE_STATES = ("possible", "online", "has_normal_memory", "has_high_memory", "has_memory",
               "has_cpu", "has_generic_initiator")


def _p(root: StrPath, *parts: str) -> Path:
    return Path(root, *parts)


def _read(path: Path) -> str:
    with open(path, encoding="ascii", errors="replace") as f:
        return f.read()


def parse_list(text: str) -> list[int]:
    """``0-3,5`` -> [0, 1, 2, 3, 5] (the kernel's ``%*pbl`` list format; see
    :func:`mempolicy.core.units.parse_list`, which this is)."""
    return units.parse_list(text.strip())


def format_list(ids: Iterable[int]) -> str:
    """[0, 1, 2, 5] -> ``0-2,5``."""
    return str(Nodemask(sorted(set(ids))))


def node_ids(root: StrPath = "/") -> list[int]:
    """The ``nodeN`` directories present, ascending."""
    try:
        names = os.listdir(_p(root, NODE_DIR))
    except OSError:
        return []
    return sorted(int(n[4:]) for n in names if re.fullmatch(r"node\d+", n))


def node_states(root: StrPath = "/") -> dict[str, Nodemask]:
    """Each node state file present (``possible``, ``online``, ``has_cpu``...) as a Nodemask."""
    out = {}
    for name in NODE_STATES:
        try:
            out[name] = Nodemask(parse_list(_read(_p(root, NODE_DIR, name))))
        except OSError:
            continue
    return out


def node_cpus(node: int, root: StrPath = "/") -> list[int]:
    """The CPUs of a node (``nodeN/cpulist``)."""
    return parse_list(_read(_p(root, NODE_DIR, f"node{node}", "cpulist")))


_MEMINFO = re.compile(r"Node\s+\d+\s+(\S+):\s+(\d+)(\s+kB)?")


def node_meminfo(node: int, root: StrPath = "/") -> dict[str, int]:
    """``nodeN/meminfo``: sizes in bytes (``kB`` lines), plain counts otherwise."""
    out = {}
    for line in _read(_p(root, NODE_DIR, f"node{node}", "meminfo")).splitlines():
        m = _MEMINFO.match(line.strip())
        if m:
            v = int(m.group(2))
            out[m.group(1)] = v * 1024 if m.group(3) else v
    return out


def node_distance(node: int, root: StrPath = "/") -> list[int]:
    """``nodeN/distance``: the distances to each online node, in node order."""
    return [int(x) for x in _read(_p(root, NODE_DIR, f"node{node}", "distance")).split()]


def node_numastat(node: int, root: StrPath = "/") -> dict[str, int]:
    """``nodeN/numastat``: numa_hit, numa_miss, ... in pages."""
    out = {}
    for line in _read(_p(root, NODE_DIR, f"node{node}", "numastat")).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


def weighted_interleave_weights(root: StrPath = "/") -> dict[int, int]:
    """Node -> weight from ``weighted_interleave/nodeN`` ({} when the kernel has none)."""
    d = _p(root, WI_DIR)
    out: dict[int, int] = {}
    try:
        names = os.listdir(d)
    except OSError:
        return out
    for name in names:
        if re.fullmatch(r"node\d+", name):
            try:
                out[int(name[4:])] = int(_read(d / name).strip())
            except (OSError, ValueError):
                continue
    return dict(sorted(out.items()))


_AUTO_NAMES = ("auto", "__auto_type")


def weighted_interleave_auto(root: StrPath = "/") -> bool | None:
    """The ``auto`` switch (``true``: weights from firmware bandwidth data).

    Some kernels name the file ``__auto_type`` (a C23 ``auto`` macro leaking
    into the attribute name); both are read.  None when neither exists.
    """
    for name in _AUTO_NAMES:
        try:
            v = _read(_p(root, WI_DIR, name)).strip()
        except OSError:
            continue
        return v in ("true", "1", "Y", "y")
    return None


def set_weighted_interleave_auto(value: bool, root: StrPath = "/") -> None:
    """Write the ``auto`` switch (needs root); OSError ENOENT when the kernel has none."""
    for name in _AUTO_NAMES:
        path = _p(root, WI_DIR, name)
        if path.exists():
            with open(path, "w") as f:
                f.write("1\n" if value else "0\n")
            return
    raise OSError(errno.ENOENT, "no weighted_interleave/auto file", str(_p(root, WI_DIR, "auto")))


def set_weighted_interleave_weight(node: int, weight: int, root: StrPath = "/") -> None:
    """Write a weight (1..255; needs root).  The kernel switches to manual mode."""
    if not 1 <= weight <= 255:
        raise ValueError("a weight is 1..255")
    with open(_p(root, WI_DIR, f"node{node}"), "w") as f:
        f.write(f"{weight}\n")


def memory_tiers(root: StrPath = "/") -> dict[int, Nodemask]:
    """Tier id -> its nodes (``memory_tierN/nodelist``; the ABI document says ``nodes``)."""
    d = _p(root, TIER_DIR)
    out: dict[int, Nodemask] = {}
    try:
        names = os.listdir(d)
    except OSError:
        return out
    for name in names:
        m = re.fullmatch(r"memory_tier(\d+)", name)
        if not m:
            continue
        for f in ("nodelist", "nodes"):
            try:
                out[int(m.group(1))] = Nodemask(parse_list(_read(d / name / f)))
                break
            except (OSError, ValueError):
                continue
    return dict(sorted(out.items()))


def proc_status_lists(pid: int | str = "self", root: StrPath = "/") -> dict[str, list[int]]:
    """``Mems_allowed_list`` and ``Cpus_allowed_list`` of /proc/<pid>/status."""
    out = {}
    for line in _read(_p(root, "proc", str(pid), "status")).splitlines():
        key, _, val = line.partition(":")
        if key in ("Mems_allowed_list", "Cpus_allowed_list"):
            out[key] = parse_list(val)
    return out
