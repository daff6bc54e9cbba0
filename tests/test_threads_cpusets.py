"""Trace format 1.3, section 5.7: threads and cgroup v2 cpusets.

The placement and policy results are checked against Linux 7.3 by the
recorded traces in tests/traces/threads and tests/traces/cpusets
(test_traces.py); here: the grammar's refusals, the fuzz modes, the API and
``numactl --sim`` entry points, and model invariants the traces rely on.
"""

from __future__ import annotations

import pytest

from mempolicy.api import ModelSystem, Policy
from mempolicy.frontends.numactl import main as numactl_main
from mempolicy.trace.fuzz import DIRECTED_MODES, ENVELOPE_MODES, generate, parse_modes
from mempolicy.trace.parser import TraceError, parse_trace
from mempolicy.trace.run import run_trace_text

H2 = "node 0 mem=512M cpus=1\nnode 1 mem=512M cpus=1\n"


@pytest.mark.parametrize("body, line, message", [
    ("thread T\nfork\nexit\n", 2, "fork in a trace that creates threads"),
    ("fork\nexit\nthread T\n", 3, "thread in a trace that forks"),
    ("switch T\n", 1, "unknown thread 'T'"),
    ("thread T\nthread T\n", 2, "already used"),
    ("thread T\nthread_exit T\nthread T\n", 3, "already used"),
    ("thread T\nswitch T\nthread_exit T\n", 3, "cannot end itself"),
    ("thread T\nswitch T\nthread_exit main\n", 3, "main thread cannot end"),
    ("thread T\nthread_exit T\nswitch T\n", 3, "unknown thread"),
    ("thread 9x\n", 1, "bad thread name"),
    ("thread\n", 1, "missing arguments"),
    ("cpuset\n", 1, "needs mems= or cpus="),
    ("cpuset mems=-\n", 1, "at least one node"),
    ("cpuset mems=0 mems=1\n", 1, "given twice"),
    ("cpuset nodes=0\n", 1, "unexpected word"),
    ("mmap A 1\nfork\ncpuset mems=0\nexit\n", 3, "cpuset between fork and exit"),
])
def test_grammar_refusals(body, line, message):
    with pytest.raises(TraceError) as e:
        parse_trace(body, "t.trace")
    assert e.value.lineno == line
    assert message in e.value.message


def test_thread_limit():
    body = "".join(f"thread T{i}\n" for i in range(31))
    parse_trace(body)
    with pytest.raises(TraceError, match="more than 32 threads"):
        parse_trace(body + "thread X\n")


def test_threads_have_own_policy_and_share_vmas():
    out = run_trace_text(H2 + "mmap A 2\nthread T\nswitch T\nset_mempolicy bind 1\n"
                         "mbind A 1 1 bind 0\nswitch main\nget_mempolicy\ntouch A 0 2\n"
                         "where A 0 2\nswitch T\nget_mempolicy\nget_mempolicy at=A+1\n")
    lines = out.splitlines()
    assert "9 get_mempolicy: mode=default nodes=" in lines      # main kept its own (none)
    assert "11 where: 0 0" in lines                              # main's local node, A+1 by VMA policy
    assert "13 get_mempolicy: mode=bind nodes=1" in lines
    assert "14 get_mempolicy: mode=bind nodes=0" in lines        # the VMA policy is the process's


def test_cpuset_change_moves_every_thread():
    out = run_trace_text("mmap A 4\nthread T\ncpuset mems=1-2\nswitch T\nget_mempolicy mems_allowed\n"
                         "thread U\ncpuset mems=3\nswitch U\nget_mempolicy mems_allowed\n"
                         "switch main\nget_mempolicy mems_allowed\n")
    assert out.splitlines()[-1] == "11 get_mempolicy: nodes=3"
    assert "9 get_mempolicy: nodes=3" in out


def test_envelope_modes_stay_out_of_all():
    assert {"threads", "cpusets"} <= set(ENVELOPE_MODES)
    assert not set(ENVELOPE_MODES) & set(parse_modes("all"))
    assert parse_modes("envelope") == list(ENVELOPE_MODES)
    assert not set(ENVELOPE_MODES) & set(DIRECTED_MODES)


@pytest.mark.parametrize("mode", ["threads", "cpusets"])
def test_envelope_traces_run_and_use_their_commands(mode):
    words = set()
    for seed in range(900000, 900024):
        text = generate(seed, mode)
        run_trace_text(text)                                   # valid: runs on the model
        words |= {line.split()[0] for line in text.splitlines() if line}
    assert "thread" in words
    if mode == "cpusets":
        assert "cpuset" in words
    else:
        assert {"switch", "thread_exit"} <= words


def test_api_threads_and_cpuset():
    m = ModelSystem.from_spec("4x512M")
    a = m.mmap(8 * 4096)
    m.touch(a, 8 * 4096)
    m.set_mempolicy(Policy.interleave("0-3"))
    m.create_thread("T")
    m.switch_thread("T")
    assert str(m.get_mempolicy()) == "interleave:0-3"
    m.cpuset(mems="2-3")
    assert str(m.mems_allowed()) == "2-3"
    assert str(m.get_mempolicy()) == "interleave:2-3"          # rebound
    assert set(m.where(a, 8 * 4096)) == {2}                    # migrated, node 0 -> 2
    m.switch_thread("main")
    assert str(m.mems_allowed()) == "2-3"
    with pytest.raises(OSError):
        m.cpuset(mems="0-7")
    with pytest.raises(ValueError):
        m.exit_thread("main")
    m.exit_thread("T")
    assert m.threads() == ["main"]


def test_numactl_sim_cpuset_and_threads(capsys):
    assert numactl_main(["--sim", "4x512M", "--cpuset-mems", "2-3", "--threads", "4",
                         "--interleave=all", "memhog", "16M"]) == 0
    out = capsys.readouterr().out
    assert "interleave:2-3" in out and "N2=2048 N3=2048" in out
    assert numactl_main(["--sim", "4x512M", "--threads", "4", "--localalloc", "memhog", "1M"]) == 0
    assert "N0=64 N1=64 N2=64 N3=64" in capsys.readouterr().out
    assert numactl_main(["--cpuset-mems", "1", "--show"]) == 2
    assert "needs --sim" in capsys.readouterr().err
    assert numactl_main(["--sim", "4x512M", "--cpuset-mems", "4-5", "--show"]) == 2
