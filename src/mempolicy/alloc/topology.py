"""The NUMA machine: nodes, CPUs, distances, node states and zonelists.

``build_zonelists`` follows mm/page_alloc.c: each node's fallback list is
made by repeated ``find_next_best_node`` (distance, a penalty for nodes
below the local one, a penalty for nodes with CPUs, and the ``node_load``
tie-break that spreads equal-distance nodes round robin), over the nodes
with memory.  A memoryless node's list starts at its nearest memory node.

A topology comes from a trace header (``from_machine``) or from a TOML file
(``from_toml``)::

    [[node]]
    mem = "512M"
    cpus = 2
    [distance]
    "0-1" = 21
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mempolicy.core.nodemask import Nodemask
from mempolicy.uapi import MAX_NUMNODES, PAGE_SIZE

PENALTY_FOR_NODE_WITH_CPUS = 1
LOCAL_DISTANCE = 10
REMOTE_DISTANCE = 20


@dataclass
class Node:
    """One ``pglist_data``: its id, memory and CPUs."""

    id: int
    mem_bytes: int
    cpus: range | tuple[int, ...]

    @property
    def present_pages(self) -> int:
        return self.mem_bytes // PAGE_SIZE


@dataclass
class Topology:
    nodes: list[Node]
    dist: list[list[int]]
    zonelists: list[list[int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.nodes)
        self.nr_node_ids = n
        self.possible = Nodemask.range(0, n - 1)
        self.online = self.possible
        self.n_memory = Nodemask([x.id for x in self.nodes if x.mem_bytes > 0])
        self.n_cpu = Nodemask([x.id for x in self.nodes if len(x.cpus) > 0])
        self._cpu_node = {}
        for x in self.nodes:
            for c in x.cpus:
                self._cpu_node[c] = x.id
        self.nr_cpus = len(self._cpu_node)
        self.zonelists = build_all_zonelists(self)

    # -- constructors -------------------------------------------------------
    @classmethod
    def from_machine(cls, machine) -> "Topology":
        """From a parsed trace header (``mempolicy.trace.parser.Machine``)."""
        ranges = machine.cpu_ranges()
        nodes = [Node(s.id, s.mem, ranges[i]) for i, s in enumerate(machine.nodes)]
        n = len(nodes)
        dist = [[machine.distance(a, b) for b in range(n)] for a in range(n)]
        return cls(nodes, dist)

    @classmethod
    def simple(cls, nr_nodes: int, mem_bytes: int = 512 << 20, cpus_per_node: int = 1) -> "Topology":
        """``nr_nodes`` equal nodes, remote distance 20."""
        nodes = [Node(i, mem_bytes, range(i * cpus_per_node, (i + 1) * cpus_per_node))
                 for i in range(nr_nodes)]
        dist = [[LOCAL_DISTANCE if a == b else REMOTE_DISTANCE for b in range(nr_nodes)]
                for a in range(nr_nodes)]
        return cls(nodes, dist)

    @classmethod
    def from_toml(cls, path) -> "Topology":
        """From a TOML file with ``[[node]]`` tables (mem, cpus) and a ``[distance]`` table."""
        import tomllib

        from mempolicy.trace.parser import Machine, NodeSpec, _size

        with open(path, "rb") as f:
            data = tomllib.load(f)
        specs = []
        for i, nd in enumerate(data.get("node", [])):
            mem = nd.get("mem", "512M")
            specs.append(NodeSpec(i, _size(mem) if isinstance(mem, str) else int(mem),
                                  int(nd.get("cpus", 1))))
        if not specs:
            raise ValueError(f"{path}: no [[node]] table")
        distances = {}
        for key, v in data.get("distance", {}).items():
            a, _, b = key.partition("-")
            a, b = int(a), int(b)
            distances[(min(a, b), max(a, b))] = int(v)
        return cls.from_machine(Machine(specs, distances))

    # -- queries ------------------------------------------------------------
    def distance(self, a: int, b: int) -> int:
        """node_distance()."""
        return self.dist[a][b]

    def cpu_to_node(self, cpu: int) -> int:
        """cpu_to_node(): the node a CPU belongs to."""
        return self._cpu_node[cpu]

    def cpu_online(self, cpu: int) -> bool:
        return cpu in self._cpu_node

    def numa_mem_id(self, node: int) -> int:
        """The nearest node with memory for ``node`` (the first entry of its zonelist)."""
        zl = self.zonelists[node]
        return zl[0] if zl else node

    def cpulist(self, node: int) -> str:
        r = self.nodes[node].cpus
        if not len(r):
            return ""
        return str(r.start) if len(r) == 1 else f"{r.start}-{r.stop - 1}"


def find_next_best_node(topo: Topology, node: int, used: set[int], node_load: list[int],
                        cpus_visible: bool) -> int:
    """The next node for ``node``'s fallback list, or -1 when none is left."""
    if node not in used and node in topo.n_memory:
        used.add(node)
        return node
    best, min_val = -1, None
    for n in topo.n_memory:
        if n in used:
            continue
        val = topo.distance(node, n)
        val += 1 if n < node else 0
        if cpus_visible and len(topo.nodes[n].cpus):
            val += PENALTY_FOR_NODE_WITH_CPUS
        val = val * MAX_NUMNODES + node_load[n]
        if min_val is None or val < min_val:
            min_val, best = val, n
    if best >= 0:
        used.add(best)
    return best


def build_all_zonelists(topo: Topology, cpus_visible: bool = False) -> list[list[int]]:
    """Each node's fallback order, as ``__build_all_zonelists`` makes them at boot.

    The kernel builds them before the secondary CPUs are up, so no node has
    CPUs yet and PENALTY_FOR_NODE_WITH_CPUS never applies (``cpus_visible``
    False, as measured on Linux 7.3).
    """
    node_load = [0] * topo.nr_node_ids
    out = []
    for local in range(topo.nr_node_ids):
        used: set[int] = set()
        order = []
        prev = local
        while (n := find_next_best_node(topo, local, used, node_load, cpus_visible)) >= 0:
            if topo.distance(local, n) != topo.distance(local, prev):
                node_load[n] += 1
            order.append(n)
            prev = n
        out.append(order)
    return out
