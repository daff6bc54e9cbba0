"""Topologies for the model: from the live machine, from short specs, to hwloc XML.

* :func:`topology_from_sysfs` -- the machine this runs on (``/sys/devices/system/node``);
* :func:`topology_from_shorthand` -- ``4x512M``, ``2x1G/2+2x512M/0:21``
  (groups of ``COUNTxSIZE[/CPUS]`` joined by ``+``, optional ``:REMOTE_DISTANCE``);
* :func:`topology_from_synthetic` -- a subset of hwloc's synthetic strings:
  ``node:4(memory=1GB) core:2 pu:1``, ``pack:2 node:2 core:4 pu:2``;
* :func:`load_topology` -- any of these, a TOML file or a trace file by its header;
* :func:`to_hwloc_xml` -- hwloc XML v3 with a ``distances2`` latency matrix, so
  ``lstopo -i FILE.xml`` (hwloc 3) can draw a simulated machine.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable
from xml.sax.saxutils import quoteattr

from mempolicy.alloc.topology import LOCAL_DISTANCE, REMOTE_DISTANCE, Node, Topology
from mempolicy.linux import sysfs
from mempolicy.linux.sysfs import StrPath

__all__ = ["topology_from_sysfs", "topology_from_shorthand", "topology_from_synthetic",
           "load_topology", "to_hwloc_xml", "TopologyError", "parse_size"]


class TopologyError(ValueError):
    """A topology spec that cannot be read; the message is one line for the user."""


def parse_size(tok: str) -> int:
    """``512M``, ``1G``, ``4096``, ``1GB``, ``16MiB`` -> bytes (binary multiples)."""
    m = re.fullmatch(r"(\d+)\s*([kKmMgGtT]?)(i?[bB])?", tok.strip())
    if not m:
        raise TopologyError(f"bad size {tok!r}")
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m.group(2).lower()]
    return int(m.group(1)) * mult


def _cpus(cpus: Iterable[int]) -> range | tuple[int, ...]:
    ids = sorted(cpus)
    if ids and ids == list(range(ids[0], ids[-1] + 1)):
        return range(ids[0], ids[-1] + 1)
    return tuple(ids) if ids else range(0)


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
        nodes.append(Node(n, mem, _cpus(cpus)))
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


_SHORT = re.compile(r"(\d+)x(\d+[kKmMgGtT]?)(?:/(\d+))?")


def topology_from_shorthand(spec: str) -> Topology:
    """``4x512M`` (4 nodes of 512 MiB, one CPU each, distance 20), ``2x1G/2+2x512M/0:21``."""
    body, _, dist = spec.strip().partition(":")
    remote = REMOTE_DISTANCE
    if dist:
        if not dist.isdigit() or not 10 < int(dist) <= 255:
            raise TopologyError(f"bad remote distance {dist!r} in {spec!r} (11..255)")
        remote = int(dist)
    nodes: list[Node] = []
    cpu = 0
    for group in body.split("+"):
        m = _SHORT.fullmatch(group.strip())
        if not m:
            raise TopologyError(f"bad topology {spec!r}: expected COUNTxSIZE[/CPUS] groups, e.g. 4x512M")
        count, size, ncpu = int(m.group(1)), parse_size(m.group(2)), int(m.group(3) or 1)
        for _ in range(count):
            nodes.append(Node(len(nodes), size, range(cpu, cpu + ncpu)))
            cpu += ncpu
    return _checked(nodes, remote)


def _checked(nodes: list[Node], remote: int, dist: list[list[int]] | None = None) -> Topology:
    if not 1 <= len(nodes) <= 64:
        raise TopologyError(f"{len(nodes)} nodes: the model takes 1 to 64")
    if not any(n.mem_bytes for n in nodes):
        raise TopologyError("no node has memory")
    if not any(len(n.cpus) for n in nodes):
        raise TopologyError("no node has a CPU")
    n = len(nodes)
    dist = dist or [[LOCAL_DISTANCE if a == b else remote for b in range(n)] for a in range(n)]
    return Topology(nodes, dist)


_TYPES = {
    "machine": "machine", "package": "package", "pack": "package", "socket": "package",
    "numanode": "node", "numa": "node", "node": "node", "group": "group",
    "die": "group", "l1": "cache", "l2": "cache", "l3": "cache", "l4": "cache", "l5": "cache",
    "l1cache": "cache", "l2cache": "cache", "l3cache": "cache", "l1d": "cache", "l1i": "cache",
    "core": "core", "pu": "pu",
}


def topology_from_synthetic(spec: str) -> Topology:
    """A subset of hwloc synthetic strings: levels ``type:arity[(attrs)]`` from the top down.

    ``node:N`` makes N NUMA nodes (each under its own group, as hwloc does);
    ``memory=SIZE`` on a node level sets each node's memory (default 1 GiB);
    everything below the node level multiplies into the CPUs of each node.
    """
    levels = re.findall(r"(\S+?)(?::(\d+))?(?:\(([^)]*)\))?(?=\s|$)", spec.strip())
    if not levels:
        raise TopologyError(f"bad hwloc synthetic string {spec!r}")
    above = 1            # objects above and at the node level
    per_node_pus = 1
    node_seen = False
    memory = 1 << 30
    for name, arity, attrs in levels:
        kind = _TYPES.get(name.lower().rstrip("s")) or _TYPES.get(name.lower())
        if name.isdigit():                       # "2 3 4": arities only
            kind, arity = "group", name
        if kind is None:
            raise TopologyError(f"unknown hwloc object type {name!r} in {spec!r}")
        if not arity:
            raise TopologyError(f"{name!r} needs an arity (type:N) in {spec!r}")
        a = int(arity)
        if a < 1:
            raise TopologyError(f"arity 0 in {spec!r}")
        for attr in filter(None, (attrs or "").split(",")):
            key, _, val = attr.partition("=")
            if key.strip() == "memory":
                if kind != "node":
                    raise TopologyError("memory= is only read on the node level")
                memory = parse_size(val)
            elif key.strip() not in ("size", "indexes"):
                raise TopologyError(f"unsupported attribute {key.strip()!r} in {spec!r}")
        if node_seen:
            per_node_pus *= a
        else:
            above *= a
            node_seen = kind == "node"
    if not node_seen:                            # one NUMA node with every PU
        per_node_pus, above = above, 1
    nodes = [Node(i, memory, range(i * per_node_pus, (i + 1) * per_node_pus)) for i in range(above)]
    return _checked(nodes, REMOTE_DISTANCE)


def load_topology(spec: str) -> Topology:
    """A TOML file, a trace file (its header), ``sysfs``, a shorthand or a synthetic string."""
    spec = spec.strip()
    if spec == "sysfs":
        return topology_from_sysfs()
    p = Path(spec)
    if p.suffix in (".toml", ".trace") or p.is_file():
        if not p.is_file():
            raise TopologyError(f"{spec}: no such file")
        if p.suffix == ".trace":
            from mempolicy.trace.parser import TraceError, load_trace

            try:
                return Topology.from_machine(load_trace(str(p)).machine)
            except TraceError as e:
                raise TopologyError(str(e)) from None
        try:
            return Topology.from_toml(str(p))
        except (ValueError, KeyError, TypeError) as e:
            raise TopologyError(f"{spec}: {e}") from None
        except OSError as e:
            raise TopologyError(f"{spec}: {e.strerror}") from None
    if _SHORT.match(spec):
        return topology_from_shorthand(spec)
    if ":" in spec or re.fullmatch(r"[\d ]+", spec):
        return topology_from_synthetic(spec)
    raise TopologyError(f"cannot read topology {spec!r}: give a TOML file, NxSIZE (4x512M) "
                        "or a hwloc synthetic string (node:4 core:2 pu:1)")


# ---------------------------------------------------------------------------
# hwloc XML v3
# ---------------------------------------------------------------------------

def _bitmap(ids: Iterable[int]) -> str:
    """hwloc's bitmap text: 32-bit hex words, most significant first."""
    bits = 0
    for i in ids:
        bits |= 1 << i
    words = []
    while True:
        words.append(bits & 0xFFFFFFFF)
        bits >>= 32
        if not bits:
            break
    return ",".join(f"0x{w:08x}" for w in reversed(words))


def to_hwloc_xml(topo: Topology) -> str:
    """hwloc XML v3: Machine, a Package per node with CPUs (its NUMANode, Cores, PUs),
    CPU-less nodes attached to the Machine, and the distance matrix."""
    gp = [0]
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<!DOCTYPE topology SYSTEM "hwloc2.dtd">',
             '<topology version="3.0">']

    def obj(indent: int, typ: str, os_index: int | None, cpus: Iterable[int], nodes: Iterable[int],
            extra: str = "",
            close: bool = True) -> None:
        gp[0] += 1
        attrs = f'type="{typ}"'
        if os_index is not None:
            attrs += f' os_index="{os_index}"'
        cs, ns = _bitmap(cpus), _bitmap(nodes)
        attrs += f' cpuset="{cs}" complete_cpuset="{cs}"'
        if typ == "Machine":
            attrs += f' allowed_cpuset="{cs}"'
        attrs += f' nodeset="{ns}" complete_nodeset="{ns}"'
        if typ == "Machine":
            attrs += f' allowed_nodeset="{ns}"'
        attrs += f' gp_index="{gp[0]}" id="obj{gp[0]}"{extra}'
        lines.append("  " * indent + f"<object {attrs}{'/' if close else ''}>")

    all_cpus = [c for n in topo.nodes for c in n.cpus]
    all_nodes = [n.id for n in topo.nodes]
    obj(1, "Machine", 0, all_cpus, all_nodes, close=False)
    for n in topo.nodes:
        if len(n.cpus):
            continue
        obj(2, "NUMANode", n.id, all_cpus, [n.id], f' local_memory="{n.mem_bytes}"')
    pkg = 0
    for n in topo.nodes:
        if not len(n.cpus):
            continue
        obj(2, "Package", pkg, n.cpus, [n.id], close=False)
        pkg += 1
        obj(3, "NUMANode", n.id, n.cpus, [n.id], f' local_memory="{n.mem_bytes}"')
        for c in n.cpus:
            obj(3, "Core", c, [c], [n.id], close=False)
            obj(4, "PU", c, [c], [n.id])
            lines.append("      </object>")
        lines.append("    </object>")
    lines.append("  </object>")
    ids = " ".join(str(i) for i in all_nodes) + " "
    vals = " ".join(str(topo.dist[a][b]) for a in range(len(all_nodes)) for b in range(len(all_nodes))) + " "
    lines.append(f'  <distances2 type="NUMANode" nbobjs="{len(all_nodes)}" kind="5" '
                 f'name={quoteattr("NUMALatency")} indexing="os">')
    lines.append(f'    <indexes length="{len(ids)}">{ids}</indexes>')
    lines.append(f'    <u64values length="{len(vals)}">{vals}</u64values>')
    lines.append("  </distances2>")
    lines.append("</topology>")
    return "\n".join(lines) + "\n"
