"""One model, three kernels: the version switch and where each kernel's output is kept.

What each kernel does is checked against its recorded outputs in
tests/test_traces.py; here: choosing the version (API and commands), its user
errors, and ``trace record --kernel V`` writing a version file only where the
output differs from Linux 7.3's.
"""

from __future__ import annotations

import pytest

from mempolicy.core.version import VERSIONS, KernelVersion
from mempolicy.frontends import numactl
from mempolicy.kernel import Kernel
from mempolicy.alloc.topology import Topology
from mempolicy.oracle import cli
from mempolicy.trace.run import run_trace_text

TRACE = "node 0 mem=512M cpus=1\nnode 1 mem=512M cpus=1\nset_mempolicy weighted_interleave 0,1\n"


def test_versions_parse_and_order():
    assert [str(KernelVersion.parse(v)) for v in VERSIONS] == list(VERSIONS)
    assert KernelVersion.parse("6.12").at_least(6, 9) and not KernelVersion.parse("6.1").at_least(6, 9)
    with pytest.raises(ValueError, match="unknown kernel version '5.4'"):
        KernelVersion.parse("5.4")
    with pytest.raises(ValueError):
        Kernel.boot(Topology.simple(2), version="6.2")


def test_the_model_knows_every_kernel_the_oracle_boots():
    from mempolicy.oracle.kernels import DEFAULT_KERNEL, KERNEL_SUITES

    assert sorted(KERNEL_SUITES) == sorted(VERSIONS) and DEFAULT_KERNEL == "7.3"


def test_default_is_7_3():
    k, _ = Kernel.boot(Topology.simple(2))
    assert str(k.version) == "7.3"
    assert run_trace_text(TRACE) == run_trace_text(TRACE, kernel="7.3")


def test_the_version_reaches_the_system_calls():
    """The same trace, two kernels: the switch is seen by set_mempolicy."""
    outs = {v: run_trace_text(TRACE, kernel=v) for v in VERSIONS}
    assert len(set(outs.values())) == 2, outs


def test_trace_run_kernel_option(tmp_path, capsys):
    from mempolicy.cli import main

    t = tmp_path / "t.trace"
    t.write_text(TRACE)
    assert main(["trace", "run", "--kernel", "6.1", str(t)]) == 0
    assert capsys.readouterr().out == run_trace_text(TRACE, str(t), kernel="6.1")
    with pytest.raises(SystemExit) as e:
        main(["trace", "run", "--kernel", "5.4", str(t)])
    assert e.value.code == 2
    assert "invalid choice: '5.4'" in capsys.readouterr().err


def test_numactl_sim_kernel_option(capsys):
    assert numactl.main(["--sim", "2x512M", "--kernel", "6.12", "--show"]) == 0
    assert "policy: default" in capsys.readouterr().out
    assert numactl.main(["--sim", "2x512M", "--kernel", "5.4", "--show"]) == 2
    assert capsys.readouterr().err == "numactl: --kernel: unknown version '5.4' (one of 6.1, 6.12, 7.3)\n"
    assert numactl.main(["--kernel", "6.1", "--show"]) == 2
    assert "only with --sim" in capsys.readouterr().err


def test_model_system_version():
    from mempolicy.api import ModelSystem

    assert str(ModelSystem.from_spec("2x512M", version="6.1").kernel.version) == "6.1"


# ---- where each kernel's output is kept -----------------------------------


def test_expected_path_per_kernel():
    assert cli.expected_path("d/foo.trace", "7.3") == cli.expected_path("d/foo.trace")
    assert str(cli.expected_path("d/foo.trace", "6.12")) == "d/foo.6.12.expected"
    assert str(cli.expected_path("foo.txt", "6.1")) == "foo.txt.6.1.expected"


def test_record_writes_a_version_file_only_where_the_output_differs(tmp_path, monkeypatch, capsys):
    t = tmp_path / "t.trace"
    t.write_text("node 0 mem=512M cpus=1\nmmap A 1\n")
    base = tmp_path / "t.expected"
    base.write_text("3 mmap: ok\n")
    own = tmp_path / "t.6.12.expected"
    outs = {"out": "3 mmap: ENOMEM\n"}
    monkeypatch.setattr(cli, "_oracle", lambda args, items: [outs["out"]] * len(items))

    assert cli.main_record(["--kernel", "6.12", str(t)]) == 0       # differs: written
    assert own.read_text() == "3 mmap: ENOMEM\n" and base.read_text() == "3 mmap: ok\n"
    assert cli.recorded_path(str(t), "6.12") == own
    assert cli.recorded_path(str(t), "6.1") == base

    outs["out"] = "3 mmap: ok\n"                                     # same again: stale file removed
    assert cli.main_record(["--kernel", "6.12", str(t)]) == 0
    assert not own.exists()
    assert "removed" in capsys.readouterr().out
    assert cli.main_record(["--kernel", "6.12", str(t)]) == 0       # and nothing written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.expected", "t.trace"]

    base.unlink()                                                    # nothing to compare with
    assert cli.main_record(["--kernel", "6.1", str(t)]) == 0
    assert (tmp_path / "t.6.1.expected").read_text() == "3 mmap: ok\n"


def test_diff_runs_the_model_as_the_chosen_kernel(tmp_path, monkeypatch, capsys):
    t = tmp_path / "t.trace"
    t.write_text(TRACE)
    monkeypatch.setattr(cli, "_oracle", lambda args, items: [run_trace_text(TRACE, str(t), kernel="6.1")])
    monkeypatch.setattr(cli, "get_kernel", lambda v, **k: type("K", (), {"release": f"{v}.0-test"}))
    assert cli.main_diff(["--kernel", "6.1", str(t)]) == 0
    assert "same as Linux 6.1.0-test" in capsys.readouterr().out
    assert cli.main_diff(["--kernel", "6.12", str(t)]) == 1


# ---- every switch is backed by a recorded difference ----------------------

SWITCHES = sorted(n for n, v in vars(KernelVersion).items() if isinstance(v, property))


def _version_files():
    """(trace, kernel, recorded output) for each version file outside tests/traces/fill."""
    from pathlib import Path

    traces = Path(__file__).parent / "traces"
    out = []
    for trace in sorted(traces.rglob("*.trace")):
        if trace.parent.name == "fill":
            continue
        for v in VERSIONS[:-1]:
            f = cli.expected_path(str(trace), v)
            if f.exists():
                out.append((trace, v, f.read_text()))
    return out


@pytest.mark.parametrize("name", SWITCHES)
def test_each_switch_is_needed_by_a_recorded_trace(name, monkeypatch):
    """With the switch set as on 7.3, some recorded trace of an older kernel no longer
    matches: no switch is there without a kernel output that needs it."""
    assert len(SWITCHES) >= 7
    cases = [(t, v, r) for t, v, r in _version_files()
             if getattr(KernelVersion.parse(v), name) != getattr(KernelVersion.parse("7.3"), name)
             and run_trace_text(t.read_text(), str(t), kernel=v) == r]
    assert cases, f"{name}: no recorded trace of a kernel where it differs matches the model"
    as_7_3 = getattr(KernelVersion.parse("7.3"), name)
    monkeypatch.setattr(KernelVersion, name, property(lambda self: as_7_3))
    for trace, v, recorded in cases:
        if run_trace_text(trace.read_text(), str(trace), kernel=v) != recorded:
            return
    pytest.fail(f"{name}: every recorded trace matches without it")
