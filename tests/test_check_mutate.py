"""The mutation engine: mutants generated from the model's code, applied from outside."""

from __future__ import annotations

import ast
import pathlib

import pytest

import mempolicy
from mempolicy.check import mutate
from mempolicy.check.score import coverage, equivalents, run_mutant
from mempolicy.core import sched_points

SRC = pathlib.Path(mempolicy.__file__).parent
MODEL = [p for p in SRC.rglob("*.py") if "check" not in p.relative_to(SRC).parts[:1]]


def test_no_model_module_imports_the_checker_or_names_a_mutant():
    for path in MODEL:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("mempolicy.check"), path
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("mempolicy.check") for a in node.names), path
            elif isinstance(node, ast.Attribute):
                assert node.attr != "mutants", f"{path}:{node.lineno}"


def test_every_kind_of_site_is_found():
    ops = {(m.op, m.site.split("(")[0].split("#")[0]) for m in mutate.generate()}
    for want in [("drop", "mpol_get"), ("drop", "mpol_put"), ("put", "mpol_cond_put"),
                 ("alias", "mpol_dup"), ("refcnt", "mpol_dup"), ("read", "write_lock"),
                 ("unlocked", "lock"), ("unlocked", "with"), ("drop", "read_unlock"),
                 ("early", "mpol_put"), ("late", "mpol_get"), ("drop", "vma.vm_policy=")]:
        assert want in ops, want
    assert len(mutate.generate()) > 100


def test_a_mutant_changes_the_function_and_is_undone():
    from mempolicy.scopes.mm import mpol_rebind_mm
    name = "scopes.mm:mpol_rebind_mm:read:write_lock(mm.mmap_lock)"
    before = mpol_rebind_mm.__code__
    with mutate.applied([name]):
        assert mpol_rebind_mm.__code__ is not before
        assert "read_lock" in mpol_rebind_mm.__code__.co_names
        assert "write_lock" not in mpol_rebind_mm.__code__.co_names
        assert sched_points.mutated
    assert mpol_rebind_mm.__code__ is before and not sched_points.mutated


def test_mutants_of_one_function_compose():
    from mempolicy.proc.task_mmu import _numa_maps
    with mutate.applied(["numa-maps-no-task-lock"]):
        names = _numa_maps.__code__.co_names
        assert "mpol_get" not in names and "mpol_put" not in names and "alloc_lock" not in names


# The five mistakes a user found the hand-written catalogue missed, now generated and caught.
USER_MISSES = [
    "syscalls.process:copy_process:alias:mpol_dup",                      # fork
    "scopes.mm:MM.remove_vma:drop:mpol_put",                             # VMA merging
    "syscalls.mempolicy:do_set_mempolicy:drop:mpol_put#1",               # error path
    "syscalls.mempolicy:do_mbind:put:mpol_cond_put",                     # mbind flags
    "scopes.mm:mpol_rebind_mm:read:write_lock(mm.mmap_lock)",            # wrong lock mode
]


@pytest.fixture(scope="module")
def cov():
    return coverage()


@pytest.mark.parametrize("name", USER_MISSES)
def test_the_users_misses_are_caught(cov, name):
    m = mutate.by_name()[name]
    where = cov.get((m.module, m.line), [])
    assert where, "no scenario reaches the site"
    o = run_mutant(m, where, budget=60.0)
    assert o.caught, o


def test_equivalents_are_reviewed_generated_mutants():
    eq = equivalents()
    table = mutate.by_name()
    for name, reason in eq.items():
        assert name in table, name
        assert len(reason) > 20, name
    assert set(eq).isdisjoint(USER_MISSES)
