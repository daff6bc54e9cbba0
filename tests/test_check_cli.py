"""``mempolicy check``: the catalogue table, the other modes, and usage mistakes."""

from __future__ import annotations

import pytest

from mempolicy.check.cli import main
from mempolicy.cli import main as top


def test_catalogue_runs_clean(capsys):
    assert main(["--scenario", "anon-fault-vs-mbind", "--scenario", "exit-vs-numa-maps"]) == 0
    out = capsys.readouterr().out
    assert "anon-fault-vs-mbind" in out and "exit-vs-numa-maps" in out
    assert "schedules/s" in out and "all clean" in out


def test_dispatch_from_the_top_level_command(capsys):
    assert top(["check", "--list"]) == 0
    out = capsys.readouterr().out
    assert "scenarios:" in out and "mutants:" in out


def test_a_mutant_run_can_fail(capsys):
    # one mutant on a scenario that cannot trigger it: not caught, exit 1
    from mempolicy.check import mutants

    m = mutants.MUTANTS["exit-no-task-lock"]
    saved = m.scenarios
    object.__setattr__(m, "scenarios", ("anon-fault-vs-mbind",))
    try:
        assert main(["--mutant", "exit-no-task-lock"]) == 1
    finally:
        object.__setattr__(m, "scenarios", saved)
    assert "mutants caught: 0/1" in capsys.readouterr().out


def test_overhead(capsys):
    assert main(["--overhead", "--pages", "4"]) == 0
    assert "shared policy" in capsys.readouterr().out


def test_stress_small(capsys):
    assert main(["--stress", "--processes", "2", "--threads", "2", "--ops", "800"]) == 0
    assert "every refcount balanced" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [
    ["--scenario", "nope"], ["--mutant", "nope"], ["--bound", "-1"], ["--ops", "0"],
    ["--protocol", "1999"], ["--mutants", "--overhead"], ["--bogus"], ["--bound", "x"],
])
def test_usage_mistakes_are_one_line_and_exit_2(capsys, argv):
    assert main(argv) == 2
    cap = capsys.readouterr()
    assert cap.err.count("\n") == 1 and cap.err.startswith("mempolicy check: ")
    assert "Traceback" not in cap.err


def test_failures_are_written_only_when_asked(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["--protocol", "2008", "--scenario", "mbind-anon-and-shmem"]) == 1
    assert list(tmp_path.iterdir()) == []
    assert "not saved: --save DIR" in capsys.readouterr().out
    assert main(["--protocol", "2008", "--scenario", "mbind-anon-and-shmem", "--save", "cf"]) == 1
    files = sorted(p.name for p in (tmp_path / "cf").iterdir())
    assert files == ["mbind-anon-and-shmem-2008.json"]          # no temporary file left behind
    assert "schedule saved to cf/mbind-anon-and-shmem-2008.json" in capsys.readouterr().out


def test_generated_mutant_from_the_cli(capsys):
    assert main(["--mutant", "scopes.mm:mpol_rebind_mm:read:write_lock(mm.mmap_lock)", "-j", "1"]) == 0
    out = capsys.readouterr().out
    assert "mutation score: 1/1 caught" in out


def test_a_surviving_generated_mutant_fails_the_run(capsys):
    # an equivalent mutant (reviewed in equivalent.txt) survives when run explicitly
    assert main(["--mutant", "scopes.mm:MM.remove_vma:drop:vma.vm_policy=", "-j", "1",
                 "--budget", "1"]) == 1
    out = capsys.readouterr().out
    assert "SURVIVED" in out and "mutation score: 0/1 caught" in out
