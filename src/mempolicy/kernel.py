"""The model kernel: one NUMA machine with its global memory-policy state.

``Kernel`` holds what the real kernel keeps globally: the topology and its
zonelists, free pages per node, the policy kmem cache, ``default_policy``
and ``preferred_node_policy[]``, the weighted-interleave weights, the shmem
inode numbers and the tasks.  ``Kernel.boot()`` returns it with one process
(pid 1) pinned to CPU 0, as the trace format's machine starts.

``version`` (a ``KernelVersion`` or its text: "6.1", "6.12", "7.3", the
default) says which Linux the model behaves as (``mempolicy.core.version``).

``protocol`` selects the reference-counting protocol: ``"current"`` (every
owner holds its own copy; Linux since 3.7) or ``"2008"`` (the seed's
design: one object stored in several places with a reference each).
"""

from __future__ import annotations

import threading

from mempolicy.alloc.weights import WeightedInterleaveState
from mempolicy.alloc.page_alloc import PageAllocator
from mempolicy.alloc.swap import LruBatches
from mempolicy.alloc.topology import Topology
from mempolicy.core.mempolicy import default_policy, make_preferred_node_policy
from mempolicy.core.slab import PolicyCache
from mempolicy.core.version import KernelVersion

PROTOCOLS = ("current", "2008")


class Kernel:
    def __init__(self, topo: Topology, protocol: str = "current", track_sites: bool = True,
                 version: KernelVersion | str = "7.3") -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r} (one of {', '.join(PROTOCOLS)})")
        self.version = KernelVersion.parse(version)
        self.topo = topo
        self.protocol = protocol
        self.pages = PageAllocator(topo)
        self.policy_cache = PolicyCache(track_sites=track_sites, version=self.version)
        self.default_policy = default_policy
        self.preferred_node_policy = make_preferred_node_policy(topo.nr_node_ids)
        self.wi_state = WeightedInterleaveState(topo.nr_node_ids, topo.n_memory, self.version)
        self.tasks: dict[int, object] = {}
        self._next_pid = 1
        self._pidmap_lock = threading.Lock()
        self._shm_objects_per_cpu: dict[int, int] = {}
        self.fault_stats = {"faults": 0, "shared": 0}
        self.lru_batches = LruBatches()             # cpu_fbatches.lru_add of every CPU
        self.thp = None           # TransparentHugepage once a THP setting is written (huge_memory.py)

    @classmethod
    def boot(cls, topo: Topology, protocol: str = "current", track_sites: bool = True,
             version: KernelVersion | str = "7.3"):
        """A kernel with its first process; returns (kernel, task).

        Example: ``Kernel.boot(Topology.simple(2), version="6.12")``."""
        from mempolicy.scopes.mm import MM
        from mempolicy.scopes.task import Task

        k = cls(topo, protocol, track_sites, version)
        t = Task(k, k.alloc_pid(), MM(k), cpu=0)
        k.tasks[t.pid] = t
        return k, t

    def alloc_pid(self) -> int:
        with self._pidmap_lock:
            pid = self._next_pid
            self._next_pid += 1
        return pid

    def next_shmem_ino(self, cpu: int) -> int:
        """Inode number of a new shmem object made on ``cpu`` (aligned: k-th object has bias k)."""
        k = self._shm_objects_per_cpu.get(cpu, 0)
        self._shm_objects_per_cpu[cpu] = k + 1
        return k

    def stat_fault(self, pol) -> None:
        self.fault_stats["faults"] += 1
        if pol.flags & 1:
            self.fault_stats["shared"] += 1
