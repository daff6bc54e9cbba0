"""Partial-order reduction (check/dpor.py): one schedule per class of equivalent
interleavings, and nothing the unreduced search sees is lost.

The counts of the small hand-built programs are known by hand: steps of tasks
that share nothing commute (one class), n tasks that each take one lock once
give n! orders, read locks commute with each other, reference increments
commute but a decrement does not (it decides the free).  On catalogue
scenarios, every outcome the bounded search without reduction reaches (what
each task's numa_maps and get_mempolicy calls returned, then numa_maps of
every process, every task policy, every error) is also reached by the
reduced search (with ``World.op_keys`` emptied, ``shared-fault-vs-mbind``
fails this), and every named protocol mistake is still caught.
"""

from __future__ import annotations

import pytest

from mempolicy.check.dpor import SourceDPOR
from mempolicy.check.explore import explore
from mempolicy.check.mutants import MUTANTS, switches
from mempolicy.check.scenarios import CATALOGUE
from mempolicy.check.sched import Scheduler
from mempolicy.check.strategy import BoundedDFS
from mempolicy.core.mempolicy import KernelError, mpol_get, mpol_put, mpol_to_str
from mempolicy.core import sched_points as hooks
from mempolicy.scopes.shmem import RWLock, SpinLock


def _all(make, strategy):
    """Run every schedule the strategy picks; (schedules, distinct, set of logs)."""
    n = distinct = 0
    logs = set()
    while True:
        s = Scheduler(strategy, lockdep=False)
        strategy.begin()
        log: list = []
        for name, prog in make(log):
            s.spawn(name, prog)
        assert s.run() is None
        n += 1
        if not s.redundant:
            distinct += 1
            logs.add(tuple(log))
        if not strategy.next_schedule():
            return n, distinct, logs


def _locked(lock_of, steps=1):
    """Task programs: each takes its lock ``steps`` times and logs its name inside."""
    def make(log):
        locks: dict = {}
        progs = []
        for name, lname in lock_of:
            lk = locks.setdefault(lname, SpinLock(lname))

            def run(st, lk=lk, name=name):
                for _ in range(steps):
                    with lk:
                        log.append(name)
            progs.append((name, run))
        return progs
    return make


def test_tasks_that_share_nothing_are_one_class():
    make = _locked([("T1", "a"), ("T2", "b")], steps=3)
    n, distinct, _ = _all(make, SourceDPOR())
    assert (n, distinct) == (1, 1)
    assert _all(make, BoundedDFS(10))[0] > 1           # the unreduced search runs many


def test_two_tasks_one_lock_is_two_classes():
    n, distinct, logs = _all(_locked([("T1", "a"), ("T2", "a")]), SourceDPOR())
    assert (n, distinct) == (2, 2)
    assert logs == {("T1", "T2"), ("T2", "T1")}


def test_three_tasks_one_lock_is_every_order_once():
    n, distinct, logs = _all(_locked([("A", "l"), ("B", "l"), ("C", "l")]), SourceDPOR())
    assert n == distinct == 6 and len(logs) == 6


def test_read_locks_commute_a_writer_does_not():
    def make(writer):
        def progs(log):
            lk = RWLock("l")

            def reader(st):
                lk.read_lock()
                lk.read_unlock()

            def other(st):
                (lk.write_lock if writer else lk.read_lock)()
                (lk.write_unlock if writer else lk.read_unlock)()
            return [("R", reader), ("W", other)]
        return progs
    assert _all(make(False), SourceDPOR())[:2] == (1, 1)
    assert _all(make(True), SourceDPOR())[:2] == (2, 2)


def _policy_world():
    from mempolicy.check.world import World
    w = World()
    w.process("T")
    w.do("T", ("set_mempolicy", 3, [0, 1]))       # MPOL_INTERLEAVE 0-1: refcnt 1
    return w, w.tasks["T"].mempolicy


def test_reference_increments_commute_a_decrement_does_not():
    def make(second):
        def progs(log):
            w, pol = _policy_world()
            mpol_get(pol)                         # refcnt 2: the put frees nothing

            def get(st):
                mpol_get(pol)

            def other(st):
                (mpol_get if second == "get" else mpol_put)(pol)
            return [("A", get), ("B", other)]
        return progs
    assert _all(make("get"), SourceDPOR())[:2] == (1, 1)
    assert _all(make("put"), SourceDPOR())[:2] == (2, 2)


def test_a_preemption_bound_cuts_the_reduced_search():
    make = _locked([("A", "l"), ("B", "l"), ("C", "l")], steps=2)
    full = _all(make, SourceDPOR())[1]
    assert _all(make, SourceDPOR(bound=0))[1] < _all(make, SourceDPOR(bound=1))[1] <= full


def _outcome(world, sched, seen: dict) -> tuple:
    """What a user could see: what each task's numa_maps and get_mempolicy calls returned,
    and at the end numa_maps of every live process, every task policy, every error."""
    from mempolicy.proc.task_mmu import numa_maps

    saved = hooks.sched
    hooks.sched = None
    try:
        maps = []
        pols = []
        for name, t in sorted(world.tasks.items()):
            if t.exited:
                continue
            pols.append((name, mpol_to_str(t.mempolicy) if t.mempolicy is not None else "-"))
            try:
                out = numa_maps(world.kernel, t, t)
                maps.append((name, tuple(out) if isinstance(out, list) else out))
            except KernelError as e:
                maps.append((name, e.errno))
    finally:
        hooks.sched = saved
    errors = tuple(sorted((sched.tasks[e[1]].name, str(e[4])) for e in sched.events
                          if e[3] == "error"))
    return tuple(sorted(seen.items())), tuple(maps), tuple(pols), errors


def _outcomes(sc, strategy, monkeypatch) -> tuple[set, int]:
    """Every outcome the strategy's schedules reach; the results of the reading calls are
    recorded per task as they return."""
    from mempolicy.check import world as world_mod

    seen: dict = {}

    def recording(fn):
        def call(*a, **kw):
            out = fn(*a, **kw)
            me = hooks.sched.current.name if hooks.sched is not None else "-"
            seen.setdefault(me, []).append(repr(out))
            return out
        return call

    for name in ("numa_maps", "kernel_get_mempolicy"):
        monkeypatch.setattr(world_mod, name, recording(getattr(world_mod, name)))
    got = set()
    n = 0
    while True:
        world = sc.build("current")
        seen.clear()
        s = Scheduler(strategy, world)
        strategy.begin()
        for name, ops in world.programs:
            s.spawn(name, world.runner(name, ops))
        assert s.run() is None
        n += 1
        if not s.redundant:
            got.add(_outcome(world, s, {k: tuple(v) for k, v in seen.items()}))
        if not strategy.next_schedule():
            return got, n


@pytest.mark.parametrize("name,bound", [
    ("anon-fault-vs-mbind", 2), ("numa-maps-vs-set-mempolicy", 2), ("exit-vs-numa-maps", 2),
    ("rebind-vs-set-mempolicy", 2), ("migrate-vs-mbind", 2), ("shared-split-vs-fault", 2),
    ("shared-fault-vs-mbind", 1), ("mbind-flags-vs-fault", 1), ("fork-vs-numa-maps", 1),
    ("get-mempolicy-vs-mbind", 2), ("vma-split-merge-vs-fault", 1),
])
def test_the_reduced_search_reaches_every_outcome_of_the_bounded_one(name, bound, monkeypatch):
    sc = CATALOGUE[name]
    want, n_naive = _outcomes(sc, BoundedDFS(bound), monkeypatch)
    got, n_dpor = _outcomes(sc, SourceDPOR(), monkeypatch)
    assert want <= got, f"{name}: outcomes the reduced search missed: {want - got}"


@pytest.mark.parametrize("name", list(MUTANTS))
def test_every_named_mistake_is_caught_by_the_reduced_search_alone(name):
    m = MUTANTS[name]
    sc = CATALOGUE[m.scenarios[0]]
    r = explore(sc, m.protocol, switches(m), bound=None if sc.small else 1, reduction="dpor")
    assert r.failure is not None, f"{name} not caught without PCT"


def test_small_catalogue_scenarios_are_explored_to_the_end_without_a_bound():
    for name, sc in CATALOGUE.items():
        if sc.small and name in ("anon-fault-vs-mbind", "fork-vs-mbind", "shared-split-vs-fault",
                                 "numa-maps-vs-set-mempolicy"):
            r = explore(sc, bound=None, reduction="dpor")
            assert r.complete and r.failure is None
            naive = explore(sc, bound=2)
            assert r.distinct == r.schedules < naive.schedules


def test_the_command_reduces_by_default_and_keeps_the_old_explorer(capsys):
    from mempolicy.check.cli import main

    assert main(["--scenario", "numa-maps-vs-set-mempolicy"]) == 0
    out = capsys.readouterr().out
    assert " DPOR " in out and "distinct interleavings" in out and "all clean" in out
    assert main(["--scenario", "numa-maps-vs-set-mempolicy", "--reduction", "none"]) == 0
    out = capsys.readouterr().out
    assert "DFS, bound 2" in out and "distinct" not in out
    assert main(["--reduction", "sometimes"]) == 2


@pytest.mark.parametrize("mutant", ["alloc.fault:vma_alloc_folio:put:mpol_cond_put",
                                    "alloc.fault:shmem_alloc_folio:put:mpol_cond_put"])
def test_the_unlocked_shared_tree_check_is_in_the_footprint(mutant):
    # mpol_shared_policy_lookup tests sp->root with no lock and sp_delete has no store point:
    # without their keys the reduced search took the fault and the mbind as independent
    # and never ran the fault while the tree was empty (naive bound 1 finds it)
    r = explore(CATALOGUE["private-file-fault-vs-mbind"], "current", (mutant,), bound=None,
                reduction="dpor")
    assert r.failure is not None and r.failure.finding.kind == "static policy freed"


def test_both_carriers_run_the_same_reduced_search():
    pytest.importorskip("greenlet")
    from mempolicy.check import sched

    seen = {}
    try:
        for carrier in ("thread", "greenlet"):
            sched._DEFAULT = carrier
            r = explore(CATALOGUE["mbind-flags-vs-fault"], bound=None, reduction="dpor",
                        collect=True)
            seen[carrier] = r.seen
    finally:
        sched._DEFAULT = None
    assert seen["thread"] == seen["greenlet"] and len(seen["thread"]) > 1


def test_a_failure_the_reduced_search_finds_replays():
    from mempolicy.check.explore import check_schedule, replay

    m = MUTANTS["numa-maps-no-task-lock"]
    r = explore(CATALOGUE[m.scenarios[0]], m.protocol, switches(m), bound=None, reduction="dpor",
                lockdep=False)
    assert r.failure is not None
    data = check_schedule(r.failure.schedule_json())
    run, followed = replay(data)
    assert followed and run.finding is not None and run.finding.kind == r.failure.finding.kind
