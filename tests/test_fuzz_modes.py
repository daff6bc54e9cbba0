"""The directed fuzz modes: valid traces, aimed where they should be, nothing unrepeatable."""

from __future__ import annotations

import re

import pytest

from mempolicy.cli import main
from mempolicy.trace.fuzz import DIRECTED_MODES, FUZZ_MODES, generate, parse_modes, plan, trace_name
from mempolicy.trace.parser import parse_trace

SEEDS = range(0, 48)


@pytest.mark.parametrize("mode", FUZZ_MODES)
def test_every_trace_parses(mode):
    for seed in SEEDS:
        parse_trace(generate(seed, mode), f"{mode}-{seed}")


@pytest.mark.parametrize("mode", DIRECTED_MODES)
def test_same_seed_same_trace_and_shared_machines(mode):
    assert generate(3, mode) == generate(3, mode)
    heads = {parse_trace(generate(s, mode)).machine.key() for s in range(24)}
    assert len(heads) == 1                 # one block of seeds, one machine, one boot
    others = {parse_trace(generate(s, mode)).machine.key() for s in range(0, 24 * 8, 24)}
    assert len(others) > 1


def _commands(mode):
    for seed in SEEDS:
        yield [line.split() for line in generate(seed, mode).splitlines()
               if line and line.split()[0] not in ("node", "distance")]


def _counter_reads_after_fork(cmds) -> bool:
    """Does the trace read the interleave round-robin after a fork or a CPU change
    while a task policy that may interleave is set?"""
    may, moved = False, False
    for w in cmds:
        if w[0] == "set_mempolicy":
            may = may or w[1] in ("interleave", "weighted_interleave")
            if w[1] in ("interleave", "weighted_interleave"):
                moved = False
        elif w[:2] == ["raw", "set_mempolicy"] and int(w[2], 0) & 0xFF in (3, 6):
            may = True
        elif w[0] in ("fork", "cpu"):
            moved = True
        elif w[0] == "get_mempolicy" and "node" in w and not any(x.startswith("at=") for x in w):
            if may and moved:
                return True
        elif w[:2] == ["raw", "get_mempolicy"] and int(w[5], 0) & 3 == 1 and may and moved:
            return True
    return False


@pytest.mark.parametrize("mode", FUZZ_MODES)
def test_no_unrepeatable_counter_reads(mode):
    assert not any(_counter_reads_after_fork(c) for c in _commands(mode))


def test_the_checker_of_that_rule_can_fail():
    assert _counter_reads_after_fork([["set_mempolicy", "interleave", "0-1"], ["fork"],
                                      ["get_mempolicy", "node"]])


def test_modes_aim_where_they_say():
    def share(mode, pred):
        traces = list(_commands(mode))
        return sum(1 for t in traces if any(pred(w) for w in t)) / len(traces)

    assert share("fork", lambda w: w[0] == "fork") > 0.8
    assert share("fork", lambda w: w[0] in ("mprotect", "munmap")) > 0.5
    assert share("shared", lambda w: w[0] == "mmap" and any(x.startswith("file=") for x in w)) > 0.8
    assert share("migrate", lambda w: w[0] in ("move_pages", "migrate_pages")) > 0.8
    assert share("raw", lambda w: w[0] == "raw") == 1.0
    assert min(len(t) for t in _commands("long")) >= 100
    # fill: a mapping larger than the node it fills, touched whole
    fills = 0
    for seed in SEEDS:
        t = parse_trace(generate(seed, "fill"))
        mem = {n.id: n.mem // 4096 for n in t.machine.nodes}
        big = [c.args["pages"] for c in t.commands if c.name == "mmap"]
        fills += any(p > min(v for v in mem.values() if v) for p in big)
    assert fills > len(SEEDS) * 0.8


def test_long_mode_machines_have_odd_nodes():
    machines = [parse_trace(generate(s, "long")).machine for s in range(0, 24 * 30, 24)]
    assert any(any(n.cpus == 0 for n in m.nodes) for m in machines)
    assert any(any(n.mem == 0 for n in m.nodes) for m in machines)
    assert {len(m.nodes) for m in machines} >= {2, 4, 8}


def test_plan_names_and_modes():
    assert plan(0, 4, ["fork", "raw"]) == [(0, "fork"), (1, "raw"), (2, "fork"), (3, "raw")]
    assert trace_name(7, "fill") == "fill-00007"
    assert trace_name(7) == "f0007"
    assert parse_modes("fork,all")[0] == "fork"
    with pytest.raises(ValueError):
        parse_modes("forks")


def test_cli_writes_mode_traces(tmp_path, capsys):
    assert main(["trace", "fuzz", "--mode", "shared,raw", "--count", "4", "--out", str(tmp_path)]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["raw-00001.trace", "raw-00003.trace", "shared-00000.trace", "shared-00002.trace"]


def test_cli_unknown_mode_is_one_line(tmp_path, capsys):
    assert main(["trace", "fuzz", "--mode", "nope", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(r"mempolicy trace fuzz: unknown mode 'nope' .*\n", err)


def test_migrate_full_is_in_no_group_and_shares_machines():
    assert "migrate-full" in FUZZ_MODES
    assert "migrate-full" not in parse_modes("all") + parse_modes("envelope")
    heads = {parse_trace(generate(s, "migrate-full")).machine.key() for s in range(24)}
    assert len(heads) == 1
    assert generate(5, "migrate-full") == generate(5, "migrate-full")


def test_migrate_full_fills_a_node_then_migrates_into_it():
    aimed = 0
    for seed in SEEDS:
        t = parse_trace(generate(seed, "migrate-full"))
        mem = {n.id: n.mem // 4096 for n in t.machine.nodes}
        cmds = [(c.name, c.args) for c in t.commands]
        fills = [a["pages"] for n, a in cmds if n == "mmap" and a["name"] == "A"]
        if not fills:                       # one node with memory: mode migrate instead
            continue
        pols = [line.split() for line in generate(seed, "migrate-full").splitlines()
                if line.startswith("set_mempolicy preferred")]
        target = int(pols[0][2])
        assert fills[0] > mem[target] and target != 0
        text = generate(seed, "migrate-full")
        into = [line for line in text.splitlines()
                if (line.startswith("move_pages") and line.split()[4] == str(target))
                or (line.startswith("migrate_pages") and line.split()[2] == str(target))
                or (line.startswith("mbind") and " move" in line and str(target) in line.split()[5])]
        aimed += bool(into)
    assert aimed > len(SEEDS) * 0.8
