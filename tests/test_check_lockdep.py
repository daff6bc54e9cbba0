"""Lock discipline as the kernel asserts it: model functions state what they need held
(lockdep_assert_held, mmap_assert_write_locked, vma_assert_write_locked) and the checker
fails a schedule that breaks it, with no refcount error needed."""

from __future__ import annotations

from mempolicy.check.explore import explore
from mempolicy.check.mutate import by_name
from mempolicy.check.scenarios import CATALOGUE
from mempolicy.core import sched_points


def _first(scenario, mutant, **kw):
    assert mutant in by_name()
    return explore(CATALOGUE[scenario], "current", (mutant,), bound=2, **kw).failure


def test_rebind_under_read_lock_is_caught_by_the_assertion():
    run = _first("rebind-vs-set-mempolicy", "scopes.mm:mpol_rebind_mm:read:write_lock(mm.mmap_lock)")
    assert run is not None
    assert run.finding.kind == "lock misuse"
    assert "mpol_rebind_mm" in run.finding.message and "for writing" in run.finding.message
    assert run.preemptions == 0                  # no race needed: the assertion fails at once


def test_rebind_under_read_lock_is_invisible_without_lockdep():
    run = _first("rebind-vs-set-mempolicy", "scopes.mm:mpol_rebind_mm:read:write_lock(mm.mmap_lock)",
                 lockdep=False)
    assert run is None


def test_task_rebind_without_task_lock_names_the_function():
    run = _first("rebind-vs-set-mempolicy",
                 "cgroup.cpuset:cpuset_change_task_nodemask:unlocked:lock(tsk.alloc_lock)")
    assert run.finding.kind == "lock misuse"
    assert "mpol_rebind_task" in run.finding.message and "task_lock(T1)" in run.finding.message


def test_assertions_cost_nothing_outside_the_checker():
    class Lock:
        name = "x"
    assert sched_points.sched is None
    sched_points.lockdep_assert_held(Lock())        # no scheduler: no check, no error
