"""What the explorer does to be fast must not change what it finds.

* The race analysis of ``SourceDPOR`` keeps the happens-before of the replayed
  prefix from one schedule to the next; the same search with that kept state
  thrown away before every analysis (the analysis from scratch) must run the
  same schedules in the same order.
* A search keeps no timeline; a failure it finds is run again with one, so
  the failure reported has its events and the allocation sites.
"""

from __future__ import annotations

import pytest

from mempolicy.check.dpor import SourceDPOR
from mempolicy.check.explore import _run_once, explore
from mempolicy.check.scenarios import CATALOGUE
from mempolicy.check.sched import Scheduler


class _FromScratch(SourceDPOR):
    """SourceDPOR analysing every schedule from its first step."""

    def _races(self) -> None:
        self._hb, self._last, self._by_key, self._undo = [], {}, {}, []
        super()._races()


def _schedules(scenario, strategy) -> list[tuple]:
    out = []
    while True:
        run = _run_once(scenario, strategy, "current", (), True, {}, verbose=False)
        assert run.finding is None
        out.append((tuple(run.choices), run.redundant))
        if not strategy.next_schedule():
            return out


@pytest.mark.parametrize("name,bound", [("shared-split-vs-fault", None),
                                        ("rebind-vs-set-mempolicy", None),
                                        ("exit-vs-numa-maps", None),
                                        ("shared-mix", 1)])
def test_the_kept_prefix_analysis_runs_what_a_fresh_one_runs(name, bound):
    sc = CATALOGUE[name]
    kept = _schedules(sc, SourceDPOR(bound))
    fresh = _schedules(sc, _FromScratch(bound))
    assert kept == fresh
    assert len(kept) > 1


def test_a_search_keeps_no_timeline():
    sc = CATALOGUE["numa-maps-vs-set-mempolicy"]
    run = _run_once(sc, SourceDPOR(None), "current", (), True, {}, verbose=False)
    assert run.finding is None and run.events == [] and run.names == {}
    assert run.world.kernel.policy_cache.track_sites is False
    loud = _run_once(sc, SourceDPOR(None), "current", (), True, {}, verbose=True)
    assert any(e[3] == "load" for e in loud.events)


def test_a_failure_the_quiet_search_finds_comes_with_its_timeline():
    res = explore(CATALOGUE["numa-maps-vs-set-mempolicy"], mutants=("numa-maps-no-task-lock",),
                  bound=None, reduction="dpor")
    f = res.failure
    assert f is not None and f.finding.kind == "use after free"
    assert "allocated at mpol_new<-do_set_mempolicy" in f.finding.message
    kinds = {e[3] for e in f.events}
    assert {"op", "load", "ref", "finding"} <= kinds
    assert f.strategy.startswith("DPOR")


def test_a_quiet_scheduler_still_checks_locks():
    """The timeline is off, the oracle is not: a wrong-lock mutant still fails."""
    res = explore(CATALOGUE["rebind-vs-set-mempolicy"], mutants=("rebind-task-no-task-lock",),
                  bound=None, reduction="dpor")
    assert res.failure is not None and res.failure.finding.kind == "lock misuse"
    assert Scheduler(SourceDPOR(None), verbose=False).verbose is False
