"""Stress mode: real threads drive the model; every refcount must balance at the end.

The operation count is small here; ``mempolicy check --stress`` runs
200,000.  A leak mutant shows the end-of-run checks can fail.
"""

from __future__ import annotations

from mempolicy.check.mutants import MUTANTS
from mempolicy.check.mutate import applied
from mempolicy.check.stress import stress
from mempolicy.core import mempolicy as core


def test_stress_balances():
    r = stress(processes=2, threads=3, ops=6000, seed=3)
    assert r.failures == []
    assert r.ops >= 5000
    assert r.allocated > 100
    assert r.end_active == r.start_active == 0
    assert r.pages_balanced
    assert r.ok
    assert core.atomic_lock is None


def test_stress_sees_a_leak_mutant():
    with applied(MUTANTS["missing-cond-put"].parts):
        r = stress(processes=2, threads=2, ops=3000, seed=3)
    assert not r.ok
    assert any("leak" in f for f in r.failures)
