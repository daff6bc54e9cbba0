"""Topologies for the model: from the live machine, from short specs, to hwloc XML.

* :func:`topology_from_sysfs` -- the machine this runs on (``/sys/devices/system/node``);
* :func:`topology_from_shorthand` -- ``4x512M``, ``2x1G/2+2x512M/0:21``
  (groups of ``COUNTxSIZE[/CPUS]`` joined by ``+``, optional ``:REMOTE_DISTANCE``);
* :func:`topology_from_synthetic` -- hwloc synthetic strings as hwloc 2.x reads them
  (:mod:`mempolicy.linux.hwloc_synthetic`): ``pack:2 numa:2 core:4 pu:2``;
* :func:`topology_from_hwloc_xml` -- what ``lstopo --of xml`` writes (:mod:`mempolicy.linux.hwloc_xml`);
* :func:`load_topology` -- any of these, a TOML file (:mod:`mempolicy.linux.topology_toml`)
  or a trace file by its header;
* :func:`to_hwloc_xml` -- hwloc XML (version 2.0) with the NUMALatency matrix, so
  ``lstopo --input FILE.xml`` (hwloc 2 or 3) draws a simulated machine.

docs/topology.md describes every form.  Each is checked against the model's
limits (:mod:`mempolicy.linux.hwloc`: 64 nodes, 8192 CPUs, 4 PiB per node)
before anything is built; every mistake is a one-line TopologyError.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from mempolicy.alloc.topology import LOCAL_DISTANCE, REMOTE_DISTANCE, Node, Topology
from mempolicy.core.units import decimal
from mempolicy.core.units import parse_size as _parse_size
from mempolicy.linux import sysfs
from mempolicy.linux.hwloc import (MAX_CPUS, MAX_NODE_MEM, MAX_NODES, TopologyError, check_limits,
                                   cpu_range, shown)
from mempolicy.linux.hwloc_xml import read_hwloc_xml, to_hwloc_xml
from mempolicy.linux.sysfs import StrPath

if TYPE_CHECKING:
    from mempolicy.trace.parser import Machine

__all__ = ["topology_from_sysfs", "topology_from_shorthand", "topology_from_synthetic",
           "topology_from_hwloc_xml", "load_topology", "to_hwloc_xml", "TopologyError", "parse_size"]


def parse_size(tok: str) -> int:
    """``512M``, ``1G``, ``4096``, ``16MiB`` -> bytes (the ``model`` grammar of
    :func:`mempolicy.core.units.parse_size`), TopologyError if malformed.

    >>> parse_size("512M")
    536870912
    """
    try:
        return _parse_size(tok, "model")
    except ValueError as e:
        raise TopologyError(str(e)) from None


def topology_from_sysfs(root: StrPath = "/") -> Topology:
    """The live machine: online nodes, their CPUs, MemTotal and SLIT distances.

    The model numbers nodes 0..N-1; a machine with holes in its node ids
    raises TopologyError.
    """
    states = sysfs.node_states(root)
    ids = list(states.get("online") or sysfs.node_ids(root))
    if not ids:
        raise TopologyError("no NUMA nodes in sysfs (is /sys mounted?)")
    if ids != list(range(len(ids))):
        raise TopologyError(f"node ids {sysfs.format_list(ids)} have holes; the model numbers nodes 0..N-1")
    nodes = []
    for n in ids:
        try:
            cpus = sysfs.node_cpus(n, root)
        except OSError:
            cpus = []
        try:
            mem = sysfs.node_meminfo(n, root).get("MemTotal", 0)
        except OSError:
            mem = 0
        if "has_memory" in states and n not in states["has_memory"]:
            mem = 0
        nodes.append(Node(n, mem, cpu_range(cpus)))
    dist = []
    for n in ids:
        try:
            row = sysfs.node_distance(n, root)
        except OSError:
            row = []
        if len(row) != len(ids):
            row = [LOCAL_DISTANCE if a == n else REMOTE_DISTANCE for a in ids]
        dist.append(row)
    return Topology(nodes, dist)


_SHORT = re.compile(r"(\d+)x([^/]+)(?:/(\d+))?")


def topology_from_shorthand(spec: str) -> Topology:
    """``4x512M`` (4 nodes of 512 MiB, one CPU each, distance 20), ``2x1G/2+2x512M/0:21``.

    Counts and sizes are checked against the model's limits before any node is made.

    >>> len(topology_from_shorthand("2x1G/2+2x512M/0:21").nodes)
    4
    """
    body, _, dist = spec.strip().partition(":")
    remote = REMOTE_DISTANCE
    if dist:
        if not (dist.isascii() and dist.isdigit()) or len(dist) > 3 or not 10 < int(dist) <= 255:
            raise TopologyError(f"bad remote distance {dist!r} in {shown(spec)} (11..255)")
        remote = int(dist)
    groups = []
    total_nodes = total_cpus = 0
    for group in body.split("+"):
        m = _SHORT.fullmatch(group.strip())
        if not m or not m.group(1).isascii() or (m.group(3) and not m.group(3).isascii()):
            raise TopologyError(f"bad topology {shown(spec)}: expected COUNTxSIZE[/CPUS] groups, e.g. 4x512M")
        try:
            count, ncpu = decimal(m.group(1)), decimal(m.group(3) or "1")
        except ValueError as e:
            raise TopologyError(f"bad topology {shown(spec)}: {e}") from None
        size = parse_size(m.group(2))
        if count == 0:
            raise TopologyError(f"bad topology {shown(spec)}: a group of 0 nodes")
        if size > MAX_NODE_MEM:
            raise TopologyError(f"{shown(m.group(2), 20)} per node in {shown(spec)}: the model takes at most 4P per node")
        total_nodes += count
        total_cpus += count * ncpu
        if total_nodes > MAX_NODES or total_cpus > MAX_CPUS:
            check_limits(total_nodes, total_cpus, shown(spec))
        groups.append((count, size, ncpu))
    check_limits(total_nodes, total_cpus, shown(spec))
    nodes: list[Node] = []
    cpu = 0
    for count, size, ncpu in groups:
        for _ in range(count):
            nodes.append(Node(len(nodes), size, range(cpu, cpu + ncpu)))
            cpu += ncpu
    return _checked(nodes, remote)


def _checked(nodes: list[Node], remote: int) -> Topology:
    if not any(n.mem_bytes for n in nodes):
        raise TopologyError("no node has memory")
    if not any(len(n.cpus) for n in nodes):
        raise TopologyError("no node has a CPU")
    n = len(nodes)
    dist = [[LOCAL_DISTANCE if a == b else remote for b in range(n)] for a in range(n)]
    return Topology(nodes, dist)


def topology_from_synthetic(spec: str) -> Topology:
    """An hwloc synthetic string, read as hwloc 2.x reads it (``1GB`` is 10**9 bytes).

    >>> [len(n.cpus) for n in topology_from_synthetic("pack:2 numa:2 core:4 pu:2").nodes]
    [8, 8, 8, 8]
    """
    from mempolicy.linux.hwloc_synthetic import parse_synthetic

    return parse_synthetic(spec).to_topology(f"hwloc synthetic string {shown(spec)}")


def topology_from_hwloc_xml(path: StrPath) -> Topology:
    """The machine an hwloc XML file describes (``lstopo --of xml > FILE``).

    Example: ``topology_from_hwloc_xml("box.xml")`` (TopologyError ``FILE:LINE: message``).
    """
    return read_hwloc_xml(path).to_topology(str(path))


def _trace_topology(p: Path, machine: Machine) -> Topology:
    """A trace header as a model machine, within the model's limits (the line of a node too big)."""
    for n in machine.nodes:
        if n.mem > MAX_NODE_MEM:
            text = p.read_text(errors="replace").split("\n")
            line = next((i + 1 for i, ln in enumerate(text) if re.match(rf"\s*node\s+0*{n.id}\s", ln)), 1)
            raise TopologyError(f"{p}:{line}: node {n.id} has {n.mem} bytes, more than the model's "
                                f"{MAX_NODE_MEM} (4P) per node")
    check_limits(len(machine.nodes), machine.nr_cpus, str(p))
    return Topology.from_machine(machine)


def _is_file(p: Path) -> bool:
    """Path.is_file without the OSError of a name too long for a path (a long synthetic string)."""
    try:
        return p.is_file()
    except (OSError, ValueError):
        return False


def _looks_like_xml(p: Path) -> bool:
    try:
        with open(p, "rb") as f:
            head = f.read(256).lstrip()
    except OSError:
        return False
    return head.startswith(b"<")


def load_topology(spec: str) -> Topology:
    """A TOML file, an hwloc XML file, a trace file (its header), ``sysfs``, a shorthand
    (``4x512M``) or an hwloc synthetic string; TopologyError (one line) otherwise.

    >>> len(load_topology("pack:2 numa:2 core:4 pu:2").nodes)
    4
    """
    spec = spec.strip()
    if spec == "sysfs":
        return topology_from_sysfs()
    if "\0" in spec:
        raise TopologyError("a topology spec cannot contain a NUL byte")
    p = Path(spec)
    if p.suffix in (".toml", ".trace", ".xml") or _is_file(p):
        if not _is_file(p):
            raise TopologyError(f"{spec}: no such file")
        if p.suffix == ".trace":
            from mempolicy.trace.parser import TraceError, load_trace

            try:
                return _trace_topology(p, load_trace(str(p)).machine)
            except TraceError as e:
                raise TopologyError(str(e)) from None
            except UnicodeDecodeError:
                raise TopologyError(f"{spec}: not UTF-8 text") from None
            except OSError as e:
                raise TopologyError(f"{spec}: {e.strerror}") from None
        if p.suffix == ".xml" or (p.suffix != ".toml" and _looks_like_xml(p)):
            return topology_from_hwloc_xml(p)
        from mempolicy.linux.topology_toml import read_topology_toml

        return read_topology_toml(p)
    if re.match(r"\d+x", spec):
        return topology_from_shorthand(spec)
    if re.match(r"[-+]\d", spec):
        raise TopologyError(f"bad topology {shown(spec)}: counts and sizes are not signed")
    if ":" in spec or re.fullmatch(r"[\d ]+", spec) or spec.startswith("("):
        return topology_from_synthetic(spec)
    raise TopologyError(f"cannot read topology {shown(spec)}: give a TOML or hwloc XML file, NxSIZE (4x512M) "
                        "or a hwloc synthetic string (numa:4 core:2 pu:1)")
