"""The seed's 2008 design and the bug that removed it (kernel commit 869833f2c5c6).

One mbind() across an anonymous VMA and a shared-memory VMA stored one
policy object in both VMAs and in the shared tree, and sp_alloc marked it
MPOL_F_SHARED; each fault on the anonymous VMA then dropped, with
mpol_cond_put, a reference its lookup never took, until the policy was freed
while still stored.  The current protocol (a copy per owner) passes the same
scenario.
"""

from __future__ import annotations

from mempolicy.check.cli import main
from mempolicy.check.explore import explore
from mempolicy.check.scenarios import CATALOGUE
from mempolicy.check.timeline import explain, report

SC = CATALOGUE["mbind-anon-and-shmem"]


def test_current_protocol_passes_the_scenario():
    r = explore(SC, "current", bound=2)
    assert r.failure is None and r.complete


def test_2008_protocol_frees_early():
    r = explore(SC, "2008", bound=2)
    assert r.failure is not None
    f = r.failure.finding
    assert f.kind == "use after free"
    assert "freed at mpol_cond_put<-vma_alloc_folio" in f.message


def test_2008_explanation_tells_the_story():
    run = explore(SC, "2008", bound=2).failure
    why = "\n".join(explain(run))
    assert "one object is stored in 3 places" in why
    assert "VMA A of T1" in why and "VMA S of T1" in why and "shared tree of memfd m" in why
    assert "MPOL_F_SHARED" in why
    assert "no lookup of its own had taken" in why
    text = report(run)
    assert "flags |= MPOL_F_SHARED" in text
    assert "refcnt 1 -> 0, freed" in text


def test_cli_protocol_2008_fails_only_on_that_scenario(tmp_path, capsys):
    rc = main(["--protocol", "2008", "--save", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 1
    fails = [line for line in out.splitlines() if " FAIL " in line]
    assert len(fails) == 1 and fails[0].startswith("mbind-anon-and-shmem")
    assert (tmp_path / "mbind-anon-and-shmem-2008.json").exists()
