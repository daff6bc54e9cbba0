"""What hwloc describes, before it becomes a model :class:`Topology`.

Both hwloc inputs (synthetic strings, :mod:`mempolicy.linux.hwloc_synthetic`;
XML, :mod:`mempolicy.linux.hwloc_xml`) first produce an :class:`HwlocMachine`:
the NUMA nodes exactly as hwloc reports them (OS index, ``local_memory``,
cpuset), the PUs and the ``NUMALatency`` matrix if any.  Tests compare this
object with what hwloc's own ``lstopo`` writes; :meth:`HwlocMachine.to_topology`
is the one documented step from hwloc's meaning to the model's:

* node ids are the NUMA OS indexes, and must be 0..N-1 (as
  :func:`~mempolicy.linux.topology.topology_from_sysfs` requires);
* CPU ids are the PU OS indexes, and must be 0..P-1;
* hwloc may attach several NUMA nodes to the same CPUs (a package with DRAM
  and HBM); Linux gives each CPU one node, so each PU goes to the node with
  the smallest cpuset that contains it (the lowest OS index on a tie) and the
  other nodes are CPU-less, as Linux shows such memory;
* no distance matrix (synthetic strings have none): 10 local, 20 remote.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from mempolicy.alloc.topology import LOCAL_DISTANCE, REMOTE_DISTANCE, Node, Topology

__all__ = ["HwlocNode", "HwlocMachine", "TopologyError", "MAX_NODES", "MAX_CPUS", "MAX_NODE_MEM",
           "check_limits", "cpu_range", "shown"]

MAX_NODES = 64                 # the model's limit (the trace format's too)
MAX_CPUS = 8192                # CONFIG_NR_CPUS of Debian's x86-64 kernels
MAX_NODE_MEM = 1 << 52         # MAX_PHYSMEM_BITS of x86-64 with 5-level paging: 4 PiB


class TopologyError(ValueError):
    """A topology spec that cannot be read; the message is one line for the user."""


def shown(spec: str, width: int = 60) -> str:
    """A spec quoted for a message, cut to ``width`` characters.

    >>> shown("4x512M"), shown("x" * 100, 10)
    ("'4x512M'", "'xxxxxxx...'")
    """
    return repr(spec if len(spec) <= width else spec[:width - 3] + "...")


def check_limits(nodes: int, cpus: int, what: str = "") -> None:
    """Refuse a machine the model cannot hold, before anything is built.

    >>> check_limits(4, 8)
    """
    where = f"{what}: " if what else ""
    if not 1 <= nodes <= MAX_NODES:
        raise TopologyError(f"{where}{nodes} NUMA nodes: the model takes 1 to {MAX_NODES}")
    if cpus > MAX_CPUS:
        raise TopologyError(f"{where}{cpus} CPUs: the model takes at most {MAX_CPUS}")


def cpu_range(cpus: Iterable[int]) -> range | tuple[int, ...]:
    """CPU ids as a range when contiguous (what :class:`Node` prefers), else a sorted tuple.

    >>> cpu_range([3, 2]), cpu_range([0, 2])
    (range(2, 4), (0, 2))
    """
    ids = sorted(cpus)
    if not ids:
        return range(0)
    if ids == list(range(ids[0], ids[-1] + 1)):
        return range(ids[0], ids[-1] + 1)
    return tuple(ids)


@dataclass(frozen=True)
class HwlocNode:
    """One hwloc ``NUMANode`` object: ``os_index``, ``local_memory`` (bytes) and its cpuset."""

    os_index: int
    memory: int
    cpuset: frozenset[int]


@dataclass
class HwlocMachine:
    """The NUMA nodes and PUs of an hwloc topology, and its NUMA latency matrix.

    ``distances`` maps (os_index, os_index) to the ``NUMALatency`` value.
    """

    nodes: list[HwlocNode]
    pus: list[int]
    distances: dict[tuple[int, int], int] = field(default_factory=dict)

    def summary(self) -> list[tuple[int, int, tuple[int, ...]]]:
        """(os_index, memory, sorted cpuset) per node, by os_index: what tests compare."""
        return sorted((n.os_index, n.memory, tuple(sorted(n.cpuset))) for n in self.nodes)

    def to_topology(self, what: str = "hwloc") -> Topology:
        """The model machine (see the module docstring for the rules).

        >>> HwlocMachine([HwlocNode(0, 1 << 30, frozenset({0, 1}))], [0, 1]).to_topology().nr_cpus
        2
        """
        check_limits(len(self.nodes), len(self.pus), what)
        ids = sorted(n.os_index for n in self.nodes)
        if ids != list(range(len(ids))):
            raise TopologyError(f"{what}: NUMA node indexes {_short(ids)}: the model numbers nodes 0..N-1")
        pus = sorted(self.pus)
        if pus != list(range(len(pus))):
            raise TopologyError(f"{what}: PU indexes {_short(pus)}: the model numbers CPUs 0..N-1")
        for n in self.nodes:
            if n.memory > MAX_NODE_MEM:
                raise TopologyError(f"{what}: node {n.os_index} has {n.memory} bytes, more than "
                                    f"the model's {MAX_NODE_MEM} (4 PiB) per node")
        by_id = sorted(self.nodes, key=lambda n: n.os_index)
        owner: dict[int, int] = {}
        for pu in pus:
            best = None
            for n in by_id:
                if pu in n.cpuset and (best is None or len(n.cpuset) < len(best.cpuset)):
                    best = n
            if best is not None:
                owner[pu] = best.os_index
        nodes = [Node(n.os_index, n.memory, cpu_range(c for c, o in owner.items() if o == n.os_index))
                 for n in by_id]
        if not any(n.mem_bytes for n in nodes):
            raise TopologyError(f"{what}: no NUMA node has memory")
        if not any(len(n.cpus) for n in nodes):
            raise TopologyError(f"{what}: no NUMA node has a CPU")
        k = len(nodes)
        dist = [[LOCAL_DISTANCE if a == b else REMOTE_DISTANCE for b in range(k)] for a in range(k)]
        if self.distances:
            for a in range(k):
                for b in range(k):
                    v = self.distances.get((a, b))
                    if v is None:
                        raise TopologyError(f"{what}: the NUMALatency matrix has no value for nodes {a} and {b}")
                    dist[a][b] = v
            _check_distances(dist, what)
        return Topology(nodes, dist)


def _check_distances(dist: list[list[int]], what: str) -> None:
    """The kernel's SLIT rules (drivers/acpi/numa/srat.c, slit_valid): 10 on the diagonal, >10 off it."""
    for a, row in enumerate(dist):
        for b, v in enumerate(row):
            if a == b and v != LOCAL_DISTANCE:
                raise TopologyError(f"{what}: distance from node {a} to itself is {v}, not {LOCAL_DISTANCE}")
            if a != b and not LOCAL_DISTANCE < v <= 255:
                raise TopologyError(f"{what}: distance {v} between nodes {a} and {b} is not in 11..255")


def _short(ids: list[int]) -> str:
    text = ",".join(map(str, ids[:8]))
    return text + (",..." if len(ids) > 8 else "")
