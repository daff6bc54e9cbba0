"""Scenario files: the catalogue ships as files, users write their own, mistakes are one line."""

from __future__ import annotations

import json

import pytest

from mempolicy.alloc.huge_memory import VM_HUGEPAGE
from mempolicy.check.cli import main
from mempolicy.check.explore import load_schedule, replay
from mempolicy.check.scenario_file import ScenarioError, parse
from mempolicy.check.scenarios import CATALOGUE

SMALL = """\
about Two threads: one faults while the other mbind()s the mapping.
process T1 cpu=0
thread  T2 of=T1 cpu=1

setup T1
    mmap A 4
    mbind A 0 4 bind 0

task T1
    touch A 0 2
task T2
    mbind A 0 4 bind 1
"""


def test_the_catalogue_is_files_and_covers_the_kernel_paths():
    names = set(CATALOGUE)
    assert {"anon-fault-vs-mbind", "mbind-anon-and-shmem", "error-paths", "fork-policies",
            "vma-split-merge-vs-fault", "mbind-flags-vs-fault", "migrate-vs-mbind",
            "rebind-vs-set-mempolicy", "exit-vs-numa-maps"} <= names
    for sc in CATALOGUE.values():
        assert sc.text and sc.doc
        w = sc.build()
        assert len(w.programs) >= 2


def test_a_file_becomes_the_same_programs_as_written():
    sc = parse(SMALL, "x.scenario")
    assert sc.name == "x" and sc.small
    w = sc.build()
    assert [t for t, _ in w.programs] == ["T1", "T2"]
    assert w.programs[0][1] == [("fault", "A", 0, True), ("fault", "A", 1, True)]
    assert w.programs[1][1][0][:6] == ("mbind", "A", 0, 4, 2, [1])
    assert w.tasks["T2"].mm is w.tasks["T1"].mm
    assert w.tasks["T1"].mm.vma_lookup(w.addr("A")).vm_policy is not None   # the setup ran


def test_thread_and_madvise_in_a_task_block():
    """`thread NAME` in a task block creates a thread of the task's process at that point
    (its program is the later `task NAME` block); madvise names the advice."""
    sc = parse("process T1\nsetup T1\n    mmap A 4\n    set_mempolicy bind 1\n"
               "task T1\n    thread T2\n    madvise A 1 2 hugepage\n"
               "task T2\n    madvise A 0 1 nohugepage\n", "t.scenario")
    w = sc.build()
    assert [t for t, _ in w.programs] == ["T1"]
    assert w.programs[0][1] == [("thread", "T2", [("madvise", "A", 0, 1, False)]),
                                ("madvise", "A", 1, 2, True)]
    assert "T2" not in w.tasks                   # created when T1 runs the operation
    w.do("T1", w.programs[0][1][0])
    t1, t2 = w.tasks["T1"], w.tasks["T2"]
    assert t2.mm is t1.mm and t2.mempolicy is not t1.mempolicy
    assert t2.mempolicy.refcnt == 1 and t2.mempolicy.nodes == t1.mempolicy.nodes
    w.do("T1", w.programs[0][1][1])
    huge = [bool(t1.mm.vma_lookup(w.addr("A", i)).flags & VM_HUGEPAGE) for i in range(4)]
    assert huge == [False, True, True, False]     # the VMA split around the advised range
    assert w.teardown() is None


def test_cli_runs_a_file(tmp_path, capsys):
    p = tmp_path / "mine.scenario"
    p.write_text(SMALL)
    assert main([str(p)]) == 0
    out = capsys.readouterr().out
    assert "mine" in out and "all clean" in out


@pytest.mark.parametrize("text, line, needle", [
    ("process T1\ntask T1\n    touch Z 0 1\n", 3, "unknown mapping 'Z'"),
    ("process T1\ntask T2\n", 2, "unknown task 'T2'"),
    ("process T1\nthread T2 of=X\n", 2, "of=PROCESS"),
    ("process T1\ntask T1\n    mbind\n", 3, "missing arguments"),
    ("process T1\nsetup T1\n    fork C\ntask T1\n", 3, "fork in a setup block"),
    ("process T1\nsetup T1\n    thread C\ntask T1\n", 3, "thread in a setup block"),
    ("process T1\ntask T1\n    thread T1\n", 3, "thread takes the new thread's task name"),
    ("process T1\nsetup T1\n    mmap A 2\ntask T1\n    madvise A 0 2 huge\n", 5,
     "madvise takes hugepage or nohugepage"),
    ("process T1\n", 1, "no task block"),
    ("process T1\ntask T1\n    frobnicate\n", 3, "unknown command"),
])
def test_mistakes_are_file_line_message(tmp_path, capsys, text, line, needle):
    with pytest.raises(ScenarioError) as e:
        parse(text, "bad.scenario")
    assert str(e.value).startswith(f"bad.scenario:{line}: ") and needle in str(e.value)
    p = tmp_path / "bad.scenario"
    p.write_text(text)
    assert main([str(p)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"bad.scenario:{line}: " in err and "Traceback" not in err


def test_a_failing_file_scenario_replays_from_its_json_alone(tmp_path, capsys):
    text = CATALOGUE["mbind-anon-and-shmem"].text.replace("about One", "scenario mine\nabout One")
    p = tmp_path / "mine.scenario"
    p.write_text(text)
    assert main([str(p), "--protocol", "2008", "--save", str(tmp_path / "cf")]) == 1
    saved = tmp_path / "cf" / "mine-2008.json"
    p.unlink()                                          # the JSON carries the scenario
    data = load_schedule(str(saved))
    assert json.loads(saved.read_text())["scenario_text"] == text
    run, followed = replay(data)
    assert followed and run.finding is not None and run.finding.kind == "use after free"
