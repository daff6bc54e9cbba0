"""Stress mode: real Python threads drive the model kernel at once, no scheduler.

Several processes of several threads each share one memfd; every thread runs
a seeded random program of faults, mbind, set_mempolicy, get_mempolicy,
set_mempolicy_home_node, reads of other tasks' numa_maps, fork (the child
faults and exits) and cpuset rebinds, then exits.  The model's locks are
real locks here (``sched_points.sched`` is None) and refcount operations are made
atomic (``mempolicy.core.mempolicy.atomic_lock``).  At the end every
refcount must equal its owners, and once the memfd is closed the policy
cache and the free page counts must be back where they started.

Each thread faults only its own pages: the model installs ptes under the
page-table lock but keeps no page lock, so two faults of one page in one
mm are outside what it models (and outside the refcount protocol).
"""

from __future__ import annotations

import random
import sys
import threading
import time
from dataclasses import dataclass, field

from mempolicy.alloc.fault import FaultSignal, OutOfMemory
from mempolicy.core import mempolicy as _core
from mempolicy.core.mempolicy import KernelError
from mempolicy.uapi import (
    MPOL_BIND,
    MPOL_DEFAULT,
    MPOL_INTERLEAVE,
    MPOL_LOCAL,
    MPOL_PREFERRED,
    MPOL_PREFERRED_MANY,
    MPOL_WEIGHTED_INTERLEAVE,
)

from .world import World

SLICE = 4             # pages each thread owns in each mapping
MODES = [MPOL_DEFAULT, MPOL_BIND, MPOL_INTERLEAVE, MPOL_PREFERRED, MPOL_LOCAL,
         MPOL_PREFERRED_MANY, MPOL_WEIGHTED_INTERLEAVE]


@dataclass
class StressResult:
    ops: int = 0
    errors: int = 0                     # -errno and signals the kernel returned (expected)
    forks: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    allocated: int = 0
    start_active: int = 0
    end_active: int = 0
    pages_balanced: bool = False

    @property
    def ok(self) -> bool:
        return not self.failures and self.end_active == self.start_active and self.pages_balanced


def _nodes(rng: random.Random, n: int) -> list[int]:
    k = rng.randrange(1, 1 << n)
    return [i for i in range(n) if k >> i & 1]


def stress(processes: int = 3, threads: int = 4, ops: int = 200_000, seed: int = 1,
           nodes: int = 2, switch_interval: float = 1e-4, protocol: str = "current") -> StressResult:
    """Run ``ops`` operations spread over ``processes * threads`` real threads."""
    res = StressResult()
    w = World(protocol, nodes=nodes, cpus_per_node=2)
    ncpu = nodes * 2
    free_at_boot = list(w.kernel.pages.free)
    res.start_active = w.kernel.policy_cache.stats.active
    ntask = processes * threads
    w.memfd("m", ntask * SLICE)
    names: list[str] = []
    home: dict[str, tuple[str, str, int, int]] = {}   # task -> (anon map, shm map, anon slice, shm slice)
    g = 0
    for p in range(processes):
        leader = f"P{p}"
        w.process(leader, cpu=p % ncpu)
        w.mmap(leader, f"A{p}", threads * SLICE)
        w.mmap(leader, f"S{p}", ntask * SLICE, memfd="m")
        for t in range(threads):
            name = leader if t == 0 else f"P{p}.{t}"
            if t:
                w.thread(name, of=leader, cpu=(p + t) % ncpu)
            names.append(name)
            home[name] = (f"A{p}", f"S{p}", t * SLICE, g * SLICE)
            g += 1
    per_thread = max(1, ops // ntask)
    stop = threading.Event()
    lock = threading.Lock()
    counts = {"ops": 0, "errors": 0, "forks": 0}

    def fail(msg: str) -> None:
        with lock:
            res.failures.append(msg)
        stop.set()

    def run_ops(name: str, task, rng: random.Random, n: int, child: bool = False) -> tuple[int, int]:
        amap, smap, aoff, soff = home[name]
        done = errs = 0
        for _ in range(n):
            if stop.is_set():
                break
            r = rng.random()
            try:
                if r < 0.22:
                    w._op(task, None, ("fault", amap, aoff + rng.randrange(SLICE), rng.random() < 0.9))
                elif r < 0.40:
                    w._op(task, None, ("fault", smap, soff + rng.randrange(SLICE), True))
                elif r < 0.50:
                    a = rng.randrange(threads * SLICE)
                    w._op(task, None, ("mbind", amap, a, rng.randrange(1, threads * SLICE - a + 1),
                                       rng.choice(MODES), _nodes(rng, nodes)))
                elif r < 0.58:
                    a = rng.randrange(ntask * SLICE)
                    w._op(task, None, ("mbind", smap, a, rng.randrange(1, min(8, ntask * SLICE - a) + 1),
                                       rng.choice(MODES), _nodes(rng, nodes)))
                elif r < 0.66:
                    w._op(task, None, ("set_mempolicy", rng.choice(MODES), _nodes(rng, nodes)))
                elif r < 0.74:
                    op = rng.choice([("get_mempolicy",), ("get_mempolicy", amap, aoff),
                                     ("get_node", amap, aoff), ("get_node", smap, soff)])
                    w._op(task, None, op)
                elif r < 0.82:
                    other = rng.choice(names)
                    w._op(task, None, ("numa_maps", other))
                elif r < 0.85:
                    w._op(task, None, ("home_node", amap, 0, threads * SLICE, rng.randrange(nodes)))
                elif r < 0.88 and not child:
                    with lock:
                        counts["forks"] += 1
                        cname = f"{name}.c{counts['forks']}"
                    w._op(task, None, ("fork", cname, []))
                    home[cname] = home[name]
                    c = w.tasks[cname]
                    try:
                        d, e = run_ops(cname, c, rng, rng.randrange(1, 6), child=True)
                        done += d
                        errs += e
                    finally:
                        w.exit(c)
                elif r < 0.90:
                    tasks = rng.sample(names, min(len(names), rng.randrange(1, 4)))
                    w._op(task, None, ("cpuset", tasks, _nodes(rng, nodes)))
                else:
                    w._op(task, None, ("fault", amap, aoff + rng.randrange(SLICE), False))
            except (KernelError, FaultSignal, OutOfMemory):
                errs += 1
            done += 1
        return done, errs

    def body(name: str, idx: int) -> None:
        task = w.tasks[name]
        rng = random.Random(seed * 7919 + idx)
        try:
            d, e = run_ops(name, task, rng, per_thread)
            with lock:
                counts["ops"] += d
                counts["errors"] += e
        except BaseException as exc:        # a sanitizer report or a model bug
            fail(f"{name}: {type(exc).__name__}: {exc}")
        finally:
            try:
                w.exit(task)
            except BaseException as exc:
                fail(f"{name} exit: {type(exc).__name__}: {exc}")

    old_interval = sys.getswitchinterval()
    _core.atomic_lock = threading.Lock()
    sys.setswitchinterval(switch_interval)
    t0 = time.perf_counter()
    try:
        ths = [threading.Thread(target=body, args=(n, i), name=f"stress-{n}") for i, n in enumerate(names)]
        for th in ths:
            th.start()
        for th in ths:
            th.join()
    finally:
        sys.setswitchinterval(old_interval)
        _core.atomic_lock = None
    res.seconds = time.perf_counter() - t0
    res.ops, res.errors, res.forks = counts["ops"], counts["errors"], counts["forks"]
    if not res.failures:
        f = w.check_invariants()
        if f is not None:
            res.failures.append(str(f))
    f = w.teardown()
    if f is not None:
        res.failures.append(str(f))
    res.allocated = w.kernel.policy_cache.stats.allocated
    res.end_active = w.kernel.policy_cache.stats.active
    res.pages_balanced = w.kernel.pages.free == free_at_boot
    if not res.pages_balanced and not res.failures:
        res.failures.append(f"free pages {w.kernel.pages.free} after teardown, {free_at_boot} at boot")
    return res
