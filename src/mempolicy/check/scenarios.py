"""The scenario catalogue: short concurrent programs on a small NUMA machine.

Each scenario builds its start state with the correct kernel, then gives
two to four model tasks a program each.  Threads of one process share an
mm (and its mmap_lock); processes share a memfd (and its shared policy,
whose tree lock is the only lock they have in common).  ``small``
scenarios are explored exhaustively within the preemption bound; the
larger ones also get seeded PCT runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from mempolicy.uapi import MPOL_BIND, MPOL_INTERLEAVE, MPOL_PREFERRED

from .world import World


@dataclass(frozen=True)
class Scenario:
    name: str
    doc: str
    build_fn: Callable[[World], None]
    small: bool = True
    nodes: int = 2

    def build(self, protocol: str = "current") -> World:
        w = World(protocol, nodes=self.nodes)
        self.build_fn(w)
        w.started()
        return w


def anon_fault_vs_mbind(w: World) -> None:
    """Two threads of one process: one faults pages of an anonymous mapping under its VMA
    policy while the other mbind()s the mapping, replacing (and freeing) that policy.
    The fault holds mmap_lock for reading, mbind for writing."""
    w.process("T1", cpu=0)
    w.thread("T2", of="T1", cpu=1)
    w.mmap("T1", "A", 4)
    w.do("T1", ("mbind", "A", 0, 4, MPOL_BIND, [0]))
    w.program("T1", [("fault", "A", 0, True), ("fault", "A", 1, True)])
    w.program("T2", [("mbind", "A", 0, 4, MPOL_BIND, [1])])


def shared_fault_vs_mbind(w: World) -> None:
    """Two processes map one memfd.  P1 faults pages under the shared policy while P2
    mbind()s its own mapping of the file, replacing the policy in the shared tree.  The
    only lock in common is sp->lock: P1's lookup must take its extra reference under it
    and drop it with mpol_cond_put."""
    w.process("P1", cpu=0)
    w.process("P2", cpu=1)
    w.memfd("m", 4)
    w.mmap("P1", "S1", 4, memfd="m")
    w.mmap("P2", "S2", 4, memfd="m")
    w.do("P1", ("mbind", "S1", 0, 4, MPOL_BIND, [0]))
    w.program("P1", [("fault", "S1", 0, True), ("fault", "S1", 1, True)])
    w.program("P2", [("mbind", "S2", 0, 4, MPOL_INTERLEAVE, [0, 1])])


def shared_split_vs_fault(w: World) -> None:
    """P2 mbind()s the middle of a shared range, which splits the old tree node in three
    (the tail gets a copy of the policy with refcount 1), while P1 faults a page of that
    range holding a lookup reference across a BIND allocation that may sleep."""
    w.process("P1", cpu=0)
    w.process("P2", cpu=1)
    w.memfd("m", 8)
    w.mmap("P1", "S1", 8, memfd="m")
    w.mmap("P2", "S2", 8, memfd="m")
    w.do("P1", ("mbind", "S1", 0, 8, MPOL_BIND, [0]))
    w.program("P1", [("fault", "S1", 5, True)])
    w.program("P2", [("mbind", "S2", 2, 2, MPOL_PREFERRED, [1])])


def numa_maps_vs_set_mempolicy(w: World) -> None:
    """R (another process) reads /proc/T1/numa_maps, which prints T1's task policy for a
    VMA without a policy of its own, while T1 replaces its task policy.  The reader holds
    T1's task policy by a reference taken under task_lock(T1)."""
    w.process("T1", cpu=0)
    w.process("R", cpu=1)
    w.mmap("T1", "A", 2)
    w.do("T1", ("set_mempolicy", MPOL_INTERLEAVE, [0, 1]))
    w.program("T1", [("set_mempolicy", MPOL_BIND, [1])])
    w.program("R", [("numa_maps", "T1")])


def get_mempolicy_vs_mbind(w: World) -> None:
    """get_mempolicy(MPOL_F_NODE|MPOL_F_ADDR) drops mmap_lock to fault the page in and reads
    the VMA policy afterwards, so it holds a reference; meanwhile a second thread mbind()s
    the range, replacing the policy."""
    w.process("T1", cpu=0)
    w.thread("T2", of="T1", cpu=1)
    w.mmap("T1", "A", 2)
    w.do("T1", ("mbind", "A", 0, 2, MPOL_BIND, [0]))
    w.program("T1", [("get_node", "A", 0)])
    w.program("T2", [("mbind", "A", 0, 2, MPOL_BIND, [1])])


def rebind_vs_set_mempolicy(w: World) -> None:
    """A cpuset mems change rebinds T1's task policy under task_lock(T1) and its VMA
    policies under mmap_write_lock, while T1 replaces its task policy and faults."""
    w.process("T1", cpu=0)
    w.process("W", cpu=1)
    w.mmap("T1", "A", 2)
    w.do("T1", ("set_mempolicy", MPOL_INTERLEAVE, [0, 1]))
    w.do("T1", ("mbind", "A", 0, 2, MPOL_INTERLEAVE, [0, 1]))
    w.program("T1", [("set_mempolicy", MPOL_PREFERRED, [1]), ("fault", "A", 0, True)])
    w.program("W", [("cpuset", ["T1"], [1])])


def exit_vs_numa_maps(w: World) -> None:
    """R reads /proc/T2/numa_maps while thread T2 exits: the exit detaches T2's task policy
    under task_lock(T2) and drops it (the mm lives on with T1, so exit takes no mmap_lock);
    the reader takes its reference under the same task_lock."""
    w.process("T1", cpu=0)
    w.thread("T2", of="T1", cpu=0)
    w.process("R", cpu=1)
    w.mmap("T1", "A", 2)
    w.do("T2", ("set_mempolicy", MPOL_PREFERRED, [1]))
    w.program("T2", [("exit",)])
    w.program("R", [("numa_maps", "T2")])


def fork_vs_mbind(w: World) -> None:
    """T1 forks (dup_mmap copies every VMA policy under the parent's mmap_write_lock) while
    its sibling thread mbind()s a mapping; the child exits."""
    w.process("T1", cpu=0)
    w.thread("T2", of="T1", cpu=1)
    w.mmap("T1", "A", 2)
    w.do("T1", ("mbind", "A", 0, 2, MPOL_BIND, [0]))
    w.program("T1", [("fork", "C", [("exit",)])])
    w.program("T2", [("mbind", "A", 0, 2, MPOL_BIND, [1])])


def mbind_anon_and_shmem(w: World) -> None:
    """One mbind() across an anonymous VMA and the shared-memory VMA right after it, while
    a second thread faults the anonymous pages.  In the 2008 design both VMAs and the
    shared tree stored the same object, which sp_alloc marked MPOL_F_SHARED; every fault
    on the anonymous VMA then dropped a reference it never took (kernel commit
    869833f2c5c6, "mempolicy: remove mempolicy sharing")."""
    w.process("T1", cpu=0)
    w.thread("T2", of="T1", cpu=1)
    w.memfd("m", 4)
    w.mmap("T1", "A", 4)
    w.mmap_at("T1", "S", after="A", pages=4, memfd="m")
    w.program("T1", [("mbind", "A", 0, 8, MPOL_BIND, [1])])
    w.program("T2", [("fault", "A", i, True) for i in range(4)])


def shared_mix(w: World) -> None:
    """Three tasks around one memfd: a fault, a numa_maps reader and two mbinds of the
    shared range from different processes, plus a cpuset rebind."""
    w.process("P1", cpu=0)
    w.thread("T2", of="P1", cpu=1)
    w.process("P2", cpu=1)
    w.memfd("m", 4)
    w.mmap("P1", "S1", 4, memfd="m")
    w.mmap("P2", "S2", 4, memfd="m")
    w.mmap("P1", "A", 2)
    w.do("P1", ("mbind", "S1", 0, 4, MPOL_BIND, [0]))
    w.do("P1", ("set_mempolicy", MPOL_INTERLEAVE, [0, 1]))
    w.program("P1", [("fault", "S1", 0, True), ("numa_maps", "P2"), ("fault", "A", 0, True)])
    w.program("T2", [("mbind", "S1", 1, 2, MPOL_PREFERRED, [1]), ("get_node", "S1", 1)])
    w.program("P2", [("fault", "S2", 2, True), ("mbind", "S2", 0, 4, MPOL_INTERLEAVE, [0, 1]),
                     ("cpuset", ["P1", "T2"], [0, 1])])


def process_life(w: World) -> None:
    """Fork, exit and policy changes together: a parent forks a child that faults and
    exits, a sibling thread sets its task policy and mbind()s, another process reads
    the parent's numa_maps and moves everyone to another cpuset."""
    w.process("P1", cpu=0)
    w.thread("T2", of="P1", cpu=1)
    w.process("R", cpu=1)
    w.memfd("m", 4)
    w.mmap("P1", "A", 4)
    w.mmap("P1", "S", 4, memfd="m")
    w.do("P1", ("mbind", "A", 0, 4, MPOL_BIND, [0, 1]))
    w.do("P1", ("mbind", "S", 0, 4, MPOL_INTERLEAVE, [0, 1]))
    w.program("P1", [("fork", "C", [("fault", "A", 1, True), ("fault", "S", 1, True), ("exit",)]),
                     ("fault", "A", 0, True)])
    w.program("T2", [("set_mempolicy", MPOL_BIND, [1]), ("mbind", "A", 2, 2, MPOL_PREFERRED, [1]),
                     ("home_node", "A", 0, 2, 1)])
    w.program("R", [("numa_maps", "P1"), ("cpuset", ["P1", "T2"], [0, 1]), ("numa_maps", "T2")])


CATALOGUE: dict[str, Scenario] = {s.name: s for s in [
    Scenario("anon-fault-vs-mbind", anon_fault_vs_mbind.__doc__, anon_fault_vs_mbind),
    Scenario("shared-fault-vs-mbind", shared_fault_vs_mbind.__doc__, shared_fault_vs_mbind),
    Scenario("shared-split-vs-fault", shared_split_vs_fault.__doc__, shared_split_vs_fault),
    Scenario("numa-maps-vs-set-mempolicy", numa_maps_vs_set_mempolicy.__doc__,
             numa_maps_vs_set_mempolicy),
    Scenario("get-mempolicy-vs-mbind", get_mempolicy_vs_mbind.__doc__, get_mempolicy_vs_mbind),
    Scenario("rebind-vs-set-mempolicy", rebind_vs_set_mempolicy.__doc__, rebind_vs_set_mempolicy),
    Scenario("exit-vs-numa-maps", exit_vs_numa_maps.__doc__, exit_vs_numa_maps),
    Scenario("fork-vs-mbind", fork_vs_mbind.__doc__, fork_vs_mbind),
    Scenario("mbind-anon-and-shmem", mbind_anon_and_shmem.__doc__, mbind_anon_and_shmem),
    Scenario("shared-mix", shared_mix.__doc__, shared_mix, small=False),
    Scenario("process-life", process_life.__doc__, process_life, small=False),
]}
