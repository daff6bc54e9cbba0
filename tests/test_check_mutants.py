"""Each protocol mistake of the mutant catalogue is caught, and only when switched on.

Mutants marked ``concurrent`` go wrong only when another task runs at the
wrong moment: the search must preempt at least once to catch them (with a
bound of 0 they pass), which shows the exploration is what finds them.
"""

from __future__ import annotations

import pytest

from mempolicy.check.explore import explore
from mempolicy.check.mutants import MUTANTS, switches
from mempolicy.check.scenarios import CATALOGUE

NAMES = list(MUTANTS)


def _explore(m, **kw):
    return explore(CATALOGUE[m.scenarios[0]], m.protocol, switches(m), **kw)


@pytest.mark.parametrize("name", NAMES)
def test_mutant_is_caught(name):
    m = MUTANTS[name]
    r = _explore(m, bound=2, pct_runs=200)
    assert r.failure is not None, f"{name} not caught"
    f = r.failure.finding
    assert f.kind in ("use after free", "leak", "lock misuse", "double put",
                      "refcount below zero", "missing reference")
    if f.kind != "lock misuse":
        assert "#" in f.message                  # names the policy


@pytest.mark.parametrize("name", [n for n in NAMES if MUTANTS[n].concurrent])
def test_concurrent_mutant_needs_a_preemption(name):
    m = MUTANTS[name]
    assert _explore(m, bound=0, lockdep=False).failure is None
    r = _explore(m, bound=2, lockdep=False)
    assert r.failure is not None
    assert r.failure.preemptions >= 1


@pytest.mark.parametrize("name", NAMES)
def test_scenario_is_clean_without_the_mutant(name):
    m = MUTANTS[name]
    r = explore(CATALOGUE[m.scenarios[0]], "current", (), bound=2)
    assert r.failure is None


def test_mbind_under_read_lock_is_lock_misuse_with_lockdep_and_a_race_without():
    m = MUTANTS["mbind-mmap-read-lock"]
    with_lockdep = _explore(m, bound=2).failure.finding
    assert with_lockdep.kind == "lock misuse"
    # the first assertion on the way to the store fails: vma_modify's or vma_replace_policy's
    msg = with_lockdep.message
    assert ("vma_modify" in msg or "vma_replace_policy" in msg) and "read-held" in msg
    race = _explore(m, bound=2, lockdep=False).failure.finding
    assert race.kind == "use after free"


def test_reports_name_allocation_and_free_sites():
    f = _explore(MUTANTS["shared-noref-nocondput"], bound=2).failure.finding
    assert "allocated at" in f.message and "freed at" in f.message
    assert "sp_alloc" in f.message and "shared_policy_replace" in f.message


def test_leak_names_the_policy_and_its_allocation():
    f = _explore(MUTANTS["sp-split-copies-refcnt"], bound=2).failure.finding
    assert f.kind == "leak"
    assert "refcnt 2 but 1 owner" in f.message and "allocated at" in f.message


def test_cli_mutants_reports_all_caught(capsys):
    from mempolicy.check.cli import main

    argv = [a for n in NAMES for a in ("--mutant", n)]     # the named section of --mutants
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"mutants caught: {len(NAMES)}/{len(NAMES)}" in out
    assert "NOT CAUGHT" not in out
