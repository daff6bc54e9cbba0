"""What the seed's refcounting costs per page fault: atomics and cache-line transfers.

The seed avoids atomic operations on task and VMA policies because every
atomic on a policy's refcount needs the cache line holding it in exclusive
state on the CPU doing it, and tasks on other CPUs (worse: other nodes)
then pull it back.  Shared policies cannot avoid it: the lookup takes a
reference under ``sp->lock`` (itself an atomic on the lock word) and the
fault drops it.

``CostTracer`` stands in for the scheduler at the model's schedule points
(nothing is interleaved: faults run one after the other, round robin over
the tasks) and follows each policy's line and each lock's line through a
small MSI protocol per CPU: a read needs the line valid here, an atomic
needs it exclusive here; a line coming from another CPU's cache is a
transfer, and a cross-node transfer when that CPU is on another node.

Where the model differs: one line per policy (``struct mempolicy``'s
refcount, mode and flags share its first line) and per lock; no hardware
prefetch, no line eviction, memory fetches are not counted.  ``mmap_lock``
atomics are counted apart: they are the same for every policy type (the
kernel's per-VMA locks remove most of them).
"""

from __future__ import annotations

from dataclasses import dataclass

from mempolicy.core import sched_points as hooks
from mempolicy.core import mempolicy as _core
from mempolicy.uapi import MPOL_BIND

from .world import World


class _Line:
    __slots__ = ("owner", "sharers")

    def __init__(self) -> None:
        self.owner = None           # CPU holding it modified
        self.sharers: set[int] = set()


class CostTracer:
    """The schedule-point API of ``Scheduler`` that counts instead of switching."""

    def __init__(self, topo) -> None:
        self.topo = topo
        self.cpu = 0
        self.lines: dict[int, _Line] = {}
        self.kind: dict[int, str] = {}
        self.counting = False
        self.reset()

    def reset(self) -> None:
        self.n = {"ref": 0, "sp_lock": 0, "mmap_lock": 0, "ref_moves": 0, "ref_xnode": 0,
                  "lock_moves": 0, "lock_xnode": 0}

    def _node(self, cpu: int) -> int:
        return self.topo.cpu_to_node(cpu)

    def _pull(self, line: _Line, cpu: int, what: str) -> None:
        """Bring ``line`` into ``cpu``'s cache from another CPU's, if one has it."""
        src = line.owner if line.owner is not None else None
        if src is None:
            others = line.sharers - {cpu}
            if not others or cpu in line.sharers:
                return
            same = [c for c in others if self._node(c) == self._node(cpu)]
            src = same[0] if same else next(iter(others))
        if src == cpu or not self.counting:
            return
        self.n[what + "_moves"] += 1
        if self._node(src) != self._node(cpu):
            self.n[what + "_xnode"] += 1

    def _read(self, obj, what: str) -> None:
        line = self.lines.setdefault(id(obj), _Line())
        cpu = self.cpu
        if cpu in line.sharers or line.owner == cpu:
            return
        self._pull(line, cpu, what)
        if line.owner is not None:
            line.sharers = {line.owner}
            line.owner = None
        line.sharers.add(cpu)

    def _write(self, obj, what: str) -> None:
        line = self.lines.setdefault(id(obj), _Line())
        cpu = self.cpu
        if line.owner == cpu:
            return
        if line.owner is not None or cpu not in line.sharers:
            self._pull(line, cpu, what)
        line.owner = cpu
        line.sharers = set()

    # -- the hooks the model calls ------------------------------------------
    def refcount(self, op: str, pol) -> None:
        if self.counting:
            self.n["ref"] += 1
        self._write(pol, "ref")

    def load(self, kind, owner, pol, node=None) -> None:
        if pol is not None:
            self._read(pol, "ref")

    def store(self, kind, owner, pol, node=None) -> None:
        pass

    def modify(self, pol, what) -> None:
        self._write(pol, "ref")

    def might_sleep(self, pol, why) -> None:
        pass

    def slab_event(self, what, obj) -> None:
        if what == "alloc":
            line = self.lines[id(obj)] = _Line()
            line.owner = self.cpu
        else:
            self.lines.pop(id(obj), None)

    def assert_held(self, lock, mode, where) -> None:
        pass

    def _lock_atomic(self, lock) -> None:
        if lock.name == "sp->lock":
            if self.counting:
                self.n["sp_lock"] += 1
            self._write(lock, "lock")
        elif lock.name == "mmap_lock" and self.counting:
            self.n["mmap_lock"] += 1

    def lock_acquire(self, lock, mode) -> None:
        self._lock_atomic(lock)
        if mode == "spin":
            lock.locked = True
        elif mode == "read":
            lock.readers += 1
        else:
            lock.writer = True

    def lock_release(self, lock, mode) -> None:
        self._lock_atomic(lock)
        if mode == "spin":
            lock.locked = False
        elif mode == "read":
            lock.readers -= 1
        else:
            lock.writer = False


@dataclass
class Row:
    policy: str
    placement: str
    faults: int
    ref: float
    sp_lock: float
    ref_moves: float
    ref_xnode: float
    lock_xnode: float
    mmap_lock: float


ROWS = [
    ("task policy", "task"),
    ("VMA policy", "vma"),
    ("shared policy", "shared"),
    ("remedy 1: shared region, task policy", "fallback"),
    ("remedy 2: shared policy, prefaulted+locked", "prefault"),
]


def measure(kind: str, cpus: list[int], pages: int = 64, nodes: int = 2, cpus_per_node: int = 4) -> Row:
    """Faults of ``len(cpus)`` tasks (one per CPU), ``pages`` each, round robin."""
    w = World("current", nodes=nodes, cpus_per_node=cpus_per_node)
    ntask = len(cpus)
    names = [f"T{i}" for i in range(ntask)]
    allnodes = list(range(nodes))
    if kind in ("task", "vma"):                   # threads of one process, one anonymous mapping
        w.process(names[0], cpu=cpus[0])
        for i in range(1, ntask):
            w.thread(names[i], of=names[0], cpu=cpus[i])
        w.mmap(names[0], "A", ntask * pages)
        maps = ["A"] * ntask
        if kind == "vma":
            w.do(names[0], ("mbind", "A", 0, ntask * pages, MPOL_BIND, allnodes))
    else:                                         # processes sharing one memfd
        w.memfd("m", ntask * pages)
        for i in range(ntask):
            w.process(names[i], cpu=cpus[i])
            w.mmap(names[i], f"S{i}", ntask * pages, memfd="m")
        maps = [f"S{i}" for i in range(ntask)]
        if kind != "fallback":
            w.do(names[0], ("mbind", "S0", 0, ntask * pages, MPOL_BIND, allnodes))
    if kind in ("task", "fallback"):
        for n in names:
            w.do(n, ("set_mempolicy", MPOL_BIND, allnodes))
    if kind == "prefault":                        # MAP_POPULATE + mlock by the first task
        for p in range(ntask * pages):
            w.do(names[0], ("fault", "S0", p, True))
    tracer = CostTracer(w.kernel.topo)
    saved = hooks.sched, _core.refcount_hook
    hooks.sched = tracer
    _core.refcount_hook = tracer.refcount
    try:
        # the start state's lines are where setup left them; count from here
        tracer.counting = True
        before = w.kernel.fault_stats["faults"]
        accesses = 0
        for p in range(pages):
            for i, n in enumerate(names):
                tracer.cpu = cpus[i]
                w.do(n, ("fault", maps[i], i * pages + p, True))
                accesses += 1
        faults = w.kernel.fault_stats["faults"] - before
    finally:
        hooks.sched, _core.refcount_hook = saved
    denom = max(faults, 1) if kind != "prefault" else accesses
    c = tracer.n
    placement = "one node" if len({w.kernel.topo.cpu_to_node(x) for x in cpus}) == 1 else "two nodes"
    w.teardown()
    return Row(dict((k, v) for v, k in ROWS)[kind], placement,
               faults if kind != "prefault" else 0,
               c["ref"] / denom, c["sp_lock"] / denom, c["ref_moves"] / denom,
               c["ref_xnode"] / denom, c["lock_xnode"] / denom, c["mmap_lock"] / denom)


def overhead_table(pages: int = 64) -> list[Row]:
    """Every policy kind with four tasks on one node, then on two nodes."""
    one = [0, 1, 2, 3]
    two = [0, 4, 1, 5]
    rows = []
    for _label, kind in ROWS:
        for cpus in (one, two):
            rows.append(measure(kind, cpus, pages))
    return rows


def format_table(rows: list[Row]) -> str:
    head = (f"{'policy':<44} {'tasks on':<9} {'faults':>6} {'refcount':>9} {'sp->lock':>9}"
            f" {'refcnt line':>12} {'cross-node':>11} {'lock line':>10}")
    sub = (f"{'':<44} {'':<9} {'':>6} {'atomics':>9} {'atomics':>9}"
           f" {'transfers':>12} {'refcnt line':>11} {'cross-node':>10}")
    lines = [head, sub, "-" * len(head)]
    for r in rows:
        faults = str(r.faults) if r.faults else "0*"
        lines.append(f"{r.policy:<44} {r.placement:<9} {faults:>6} {r.ref:>9.2f} {r.sp_lock:>9.2f}"
                     f" {r.ref_moves:>12.2f} {r.ref_xnode:>11.2f} {r.lock_xnode:>10.2f}")
    lines.append("")
    lines.append("per fault; four tasks faulting their own pages in turn (CPUs 0-3 on node 0,"
                 " or 0,4,1,5 on nodes 0 and 1).")
    lines.append("* prefaulted: no fault allocates, figures are per access.  Every fault also"
                 f" takes mmap_lock for reading: {rows[0].mmap_lock:.0f} atomics on a line shared"
                 " by the threads of a process, whatever the policy.")
    return "\n".join(lines)
