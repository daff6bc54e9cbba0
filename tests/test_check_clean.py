"""The checker on the current protocol: every scenario clean, the search really searches.

The small scenarios are explored exhaustively within a preemption bound of
2 (CHESS/loom style); the large ones within a bound of 1 plus seeded PCT
runs.  A clean result only means something if the search explores many
schedules and can fail: the mutant tests show the latter, these show the
former.
"""

from __future__ import annotations

import pytest

from mempolicy.core import sched_points as hooks
from mempolicy.check.explore import explore, run_once
from mempolicy.check.scenarios import CATALOGUE
from mempolicy.check.strategy import PCT, BoundedDFS, Replay
from mempolicy.core import mempolicy as core

SMALL = [n for n, s in CATALOGUE.items() if s.small]
LARGE = [n for n, s in CATALOGUE.items() if not s.small]


@pytest.mark.parametrize("name", SMALL)
def test_small_scenario_is_clean_within_bound_2(name):
    r = explore(CATALOGUE[name], "current", bound=2)
    assert r.failure is None, str(r.failure.finding)
    assert r.complete                       # every schedule within the bound was run
    assert r.schedules > 10


@pytest.mark.parametrize("name", LARGE)
def test_large_scenario_is_clean_within_bound_1_and_pct(name):
    r = explore(CATALOGUE[name], "current", bound=1, pct_runs=30, seed=7)
    assert r.failure is None, str(r.failure.finding)
    assert r.schedules > 100


def test_larger_bound_explores_more_schedules():
    sc = CATALOGUE["shared-fault-vs-mbind"]
    counts = [explore(sc, bound=b).schedules for b in (0, 1, 2)]
    assert counts[0] < counts[1] < counts[2]


def test_schedules_are_distinct_and_respect_the_bound():
    sc = CATALOGUE["anon-fault-vs-mbind"]
    dfs = BoundedDFS(2)
    seen = set()
    while True:
        run = run_once(sc, dfs)
        assert run.finding is None
        assert run.preemptions <= 2
        key = tuple(run.choices)
        assert key not in seen
        seen.add(key)
        if not dfs.next_schedule():
            break
    assert len(seen) > 10


def test_same_schedule_same_timeline():
    sc = CATALOGUE["shared-mix"]
    first = run_once(sc, PCT(3, 3, 60))
    again = run_once(sc, Replay(first.choices))
    strip = [(e[0], e[1], e[2], e[3]) for e in first.events]
    assert strip == [(e[0], e[1], e[2], e[3]) for e in again.events]


def test_pct_seeds_give_different_schedules():
    sc = CATALOGUE["shared-mix"]
    schedules = {tuple(run_once(sc, PCT(seed, 3, 60)).choices) for seed in range(12)}
    assert len(schedules) > 3


def test_hooks_are_off_after_a_run():
    run_once(CATALOGUE["anon-fault-vs-mbind"], BoundedDFS(0), mutants=("cond-put-as-put",))
    assert hooks.sched is None
    assert hooks.mutated is False
    assert core.refcount_hook is None
