"""Threads and greenlets carry the tasks through the same schedules to the same findings."""

from __future__ import annotations

import pytest

from mempolicy.check import sched
from mempolicy.check.explore import explore
from mempolicy.check.scenarios import CATALOGUE

pytest.importorskip("greenlet")


@pytest.mark.parametrize("scenario, mutants", [
    ("fork-vs-mbind", ()),
    ("numa-maps-vs-set-mempolicy", ("numa-maps-no-task-lock",)),
    ("exit-vs-numa-maps", ("exit-no-task-lock",)),
])
def test_same_schedules_with_either_carrier(monkeypatch, scenario, mutants):
    out = {}
    for carrier in ("thread", "greenlet"):
        monkeypatch.setattr(sched, "_DEFAULT", carrier)
        r = explore(CATALOGUE[scenario], "current", mutants, bound=2, lockdep=False)
        f = r.failure
        out[carrier] = (r.schedules, f and f.choices, f and (f.finding.kind, f.finding.message))
    assert out["thread"] == out["greenlet"]
    assert bool(mutants) == (out["thread"][1] is not None)
