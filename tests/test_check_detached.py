"""The detached run: each scenario once with no checker attached, then the end-of-run checks.

The model takes fast paths only when no checker is attached (the anonymous
write fault of ``alloc.fault``), so no explored schedule runs them; a
mistake there is seen only by the detached run.
"""

from __future__ import annotations

import pytest

from mempolicy.check.explore import detached, explore
from mempolicy.check.mutate import by_name
from mempolicy.check.scenarios import CATALOGUE
from mempolicy.check.score import run_mutant
from mempolicy.core import sched_points

# mpol_put instead of mpol_cond_put in the fast path: a put of a reference never taken
FAST_PUT = "alloc.fault:do_anonymous_page:put:mpol_cond_put"
SCENARIO = "anon-fault-vs-mbind"


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_current_protocol_is_clean_detached(name):
    f = detached(CATALOGUE[name], "current")
    assert f is None, str(f)


def test_2008_design_fails_detached_too():
    f = detached(CATALOGUE["mbind-anon-and-shmem"], "2008")
    assert f is not None and f.kind in ("use after free", "double put", "refcount below zero")


def test_fast_path_mutant_is_caught_only_detached():
    sc = CATALOGUE[SCENARIO]
    # every schedule within bound 2 runs the checker's path: the mutant is invisible there
    r = explore(sc, "current", (FAST_PUT,), bound=2)
    assert r.failure is None and r.complete and r.schedules > 10
    f = detached(sc, "current", (FAST_PUT,))
    assert f is not None
    assert f.kind in ("use after free", "double put")
    assert f.message.startswith(f"detached run of {SCENARIO}: ")
    assert "allocated at" in f.message and "freed at mpol_put<-do_anonymous_page" in f.message
    assert sched_points.mutated is False and sched_points.sched is None   # restored


def test_score_runner_catches_the_fast_path_mutant():
    m = by_name()[FAST_PUT]
    o = run_mutant(m, [SCENARIO], budget=30.0)
    assert o.caught and o.error is None
    assert o.finding.endswith("(detached run)") and o.scenario == SCENARIO


def test_a_lost_unlock_is_a_deadlock_not_a_hang():
    # without a scheduler a task waits on the real lock: the run gives up after the timeout
    mut = "syscalls.mempolicy:do_mbind:drop:write_unlock(mm.mmap_lock)"
    f = detached(CATALOGUE[SCENARIO], "current", (mut,), timeout=1.0)
    assert f is not None and f.kind == "deadlock", str(f)
    assert detached(CATALOGUE[SCENARIO], "current") is None     # the mutant is off again
