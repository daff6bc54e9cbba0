"""Failing schedules are saved as small JSON files and replay to the same finding."""

from __future__ import annotations

import json

import pytest

from mempolicy.check.cli import main
from mempolicy.check.explore import explore, load_schedule, replay
from mempolicy.check.mutants import MUTANTS, switches
from mempolicy.check.scenarios import CATALOGUE


def _failing(name, lockdep=True):
    m = MUTANTS[name]
    return explore(CATALOGUE[m.scenarios[0]], m.protocol, switches(m), bound=2,
                   lockdep=lockdep).failure


@pytest.mark.parametrize("name", ["numa-maps-no-task-lock", "rebind-task-no-task-lock",
                                  "shared-tree-no-lock", "sp-split-copies-refcnt"])
def test_replay_reproduces_a_preempting_failure(tmp_path, name):
    run = _failing(name, lockdep=False)      # lockdep would catch some without a preemption
    assert run.preemptions >= 1
    path = tmp_path / "s.json"
    path.write_text(json.dumps(run.schedule_json()))
    again, followed = replay(load_schedule(str(path)))
    assert followed
    assert again.finding is not None
    assert (again.finding.kind, again.finding.message) == (run.finding.kind, run.finding.message)
    assert again.choices == run.choices


def test_replay_without_the_mutant_runs_clean(tmp_path):
    data = _failing("exit-no-task-lock").schedule_json()
    data["mutants"] = []
    run, _ = replay(data)
    assert run.finding is None


def test_cli_replay(tmp_path, capsys):
    run = _failing("set-mempolicy-put-before-publish")
    path = tmp_path / "s.json"
    path.write_text(json.dumps(run.schedule_json()))
    assert main(["--replay", str(path)]) == 1
    out = capsys.readouterr().out
    assert "reproduced the recorded finding" in out
    assert "FOUND use after free" in out
    assert "history of policy #" in out


def test_schedule_file_is_small():
    data = _failing("numa-maps-no-task-lock").schedule_json()
    assert len(json.dumps(data)) < 2000
    assert set(data) >= {"version", "scenario", "protocol", "mutants", "schedule"}


@pytest.mark.parametrize("content, needle", [
    ("not json", "not a schedule file"),
    ('{"version": 9}', "unsupported schedule version"),
    ('{"version": 1, "scenario": "nope", "protocol": "current", "schedule": []}', "unknown scenario"),
    ('{"version": 1, "scenario": "fork-vs-mbind", "protocol": "current", "mutants": ["x"],'
     ' "schedule": []}', "unknown mutant"),
    ('{"version": 1, "scenario": "fork-vs-mbind", "protocol": "current", "schedule": [-1]}',
     "list of task indices"),
])
def test_bad_schedule_file_is_a_one_line_error(tmp_path, capsys, content, needle):
    path = tmp_path / "bad.json"
    path.write_text(content)
    assert main(["--replay", str(path)]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1


def test_missing_schedule_file(tmp_path, capsys):
    assert main(["--replay", str(tmp_path / "none.json")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
