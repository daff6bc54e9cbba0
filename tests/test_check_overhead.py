"""The seed's cost argument, measured: atomics and refcount-line transfers per fault."""

from __future__ import annotations

import pytest

from mempolicy.check.cost import format_table, measure

ONE = [0, 1, 2, 3]          # CPUs of node 0
TWO = [0, 4, 1, 5]          # alternating nodes 0 and 1


@pytest.mark.parametrize("kind", ["task", "vma", "fallback"])
@pytest.mark.parametrize("cpus", [ONE, TWO])
def test_task_and_vma_policies_take_no_reference(kind, cpus):
    r = measure(kind, cpus, pages=8)
    assert r.faults == 32
    assert r.ref == 0 and r.sp_lock == 0
    # at most the compulsory first read of a shared VMA policy by each CPU
    assert r.ref_moves * r.faults <= len(cpus) - 1


def test_shared_policy_costs_two_atomics_and_moves_its_line():
    one = measure("shared", ONE, pages=8)
    two = measure("shared", TWO, pages=8)
    for r in (one, two):
        assert r.ref == pytest.approx(2.0)          # mpol_get in the lookup, mpol_cond_put after
        assert r.sp_lock == pytest.approx(2.0)      # read_lock + read_unlock of sp->lock
        assert r.ref_moves > 0.9                    # the line follows the faulting CPU
    assert one.ref_xnode == 0 and one.lock_xnode == 0
    assert two.ref_xnode > 0.9 and two.lock_xnode > 0.9


def test_prefaulted_region_needs_no_policy():
    r = measure("prefault", TWO, pages=8)
    assert r.ref == 0 and r.ref_moves == 0


def test_table_has_every_row():
    from mempolicy.check.cost import overhead_table

    text = format_table(overhead_table(pages=4))
    lines = text.splitlines()
    for label in ("task policy", "VMA policy", "shared policy", "remedy 1", "remedy 2"):
        assert sum(line.startswith(label) for line in lines) == 2
