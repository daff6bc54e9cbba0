"""A scenario's search split by schedule prefix over processes explores the same schedules."""

from __future__ import annotations

from mempolicy.check.distribute import explore_distributed, prefixes
from mempolicy.check.explore import _run_once
from mempolicy.check.scenarios import CATALOGUE
from mempolicy.check.strategy import BoundedDFS


def _sequential(sc, bound):
    dfs = BoundedDFS(bound)
    seen = set()
    while True:
        run = _run_once(sc, dfs, "current", (), True)
        seen.add(tuple(run.choices))
        if not dfs.next_schedule():
            return seen


def test_prefix_split_covers_exactly_the_sequential_search():
    sc = CATALOGUE["fork-vs-mbind"]
    want = _sequential(sc, 1)
    pre = prefixes(sc, bound=1, depth=2)
    assert len(pre) > 1 and len({tuple(p) for p in pre}) == len(pre)
    r = explore_distributed(sc, bound=1, jobs=2, depth=2, collect=True)
    assert set(r.seen) == want
    assert r.failure is None and r.complete


def test_a_distributed_search_finds_and_replays_a_failure():
    sc = CATALOGUE["numa-maps-vs-set-mempolicy"]
    r = explore_distributed(sc, mutants=("numa-maps-no-task-lock",), bound=2, jobs=2,
                            lockdep=False)
    assert r.failure is not None and r.failure.finding.kind == "use after free"
    assert r.failure.preemptions >= 1
