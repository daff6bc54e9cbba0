"""The recorded outputs in tests/traces are still what Linux says.

Boots real kernels under QEMU, so it runs only with ``qemu-system-x86_64``
installed and ``MEMPOLICY_QEMU_TESTS=1``.  ``MEMPOLICY_QEMU_SAMPLE=N`` picks
how many recorded traces to re-run (default 12, ``0`` for all of them).
"""

from __future__ import annotations

import difflib
import os
import shutil
from pathlib import Path

import pytest

from mempolicy.oracle import run_traces

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(
        shutil.which("qemu-system-x86_64") is None or os.environ.get("MEMPOLICY_QEMU_TESTS") != "1",
        reason="needs qemu-system-x86_64 and MEMPOLICY_QEMU_TESTS=1",
    ),
]

TRACES = Path(__file__).parent / "traces"

# The example of the trace format specification.
EXAMPLE = """\
node 0 mem=512M cpus=1
node 1 mem=512M cpus=1
mmap A 8
mbind A 0 8 interleave 0-1
touch A 0 8
where A 0 8
numa_maps A
"""
EXAMPLE_OUT = """\
3 mmap: ok
4 mbind: ok
5 touch: ok
6 where: 0 1 0 1 0 1 0 1
7 numa_maps: A+0 interleave:0-1 anon=8 dirty=8 N0=4 N1=4 kernelpagesize_kB=4
"""


def recorded_sample() -> list[Path]:
    """An evenly spread sample of the traces that have a .expected file."""
    traces = sorted(p for p in TRACES.glob("*.trace") if p.with_suffix(".expected").is_file())
    n = int(os.environ.get("MEMPOLICY_QEMU_SAMPLE", "12"))
    if n <= 0 or n >= len(traces):
        return traces
    return [traces[i * len(traces) // n] for i in range(n)]


def test_spec_example_twice():
    """The spec's example, run twice in one boot: same, expected output."""
    outs = run_traces([(EXAMPLE, "example.trace"), (EXAMPLE, "again.trace")])
    assert outs == [EXAMPLE_OUT, EXAMPLE_OUT]


def test_recorded_traces_still_match():
    sample = recorded_sample()
    if not sample:
        pytest.skip("no recorded traces in tests/traces")
    outs = run_traces([(p.read_text(), str(p)) for p in sample])
    bad = []
    for path, out in zip(sample, outs):
        expected = path.with_suffix(".expected").read_text()
        if out != expected:
            bad.append("".join(difflib.unified_diff(
                expected.splitlines(keepends=True), out.splitlines(keepends=True),
                fromfile=f"{path.name} (recorded)", tofile=f"{path.name} (kernel now)")))
    assert not bad, "\n".join(bad)


# ---- two runs at once, and Ctrl-C ------------------------------------------------

SRC = str(Path(__file__).resolve().parent.parent / "src")


def _mempolicy(args: list[str], **env: str):
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-m", "mempolicy", *args],
                            env={**os.environ, "PYTHONPATH": SRC, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_runs_at_once_on_a_fresh_cache(tmp_path):
    """Two terminals, one new cache: both succeed, and the kernel is fetched once."""
    t = tmp_path / "example.trace"
    t.write_text(EXAMPLE)
    cache = tmp_path / "cache"
    procs = [_mempolicy(["trace", "oracle", "-v", "-j", "1", str(t)], XDG_CACHE_HOME=str(cache))
             for _ in range(2)]
    outs = [p.communicate(timeout=1200) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e for _, e in outs]
    assert [o for o, _ in outs] == [EXAMPLE_OUT, EXAMPLE_OUT]
    assert sum(e.count("mempolicy: fetching Linux 7.3") for _, e in outs) == 1
    assert sorted(os.listdir(cache / "mempolicy" / "kernels" / "7.3")) == ["kernel.json", "vmlinuz"]


def _qemu_children(pid: int) -> list[int]:
    """Processes started by PID (QEMU runs in its own session, still our child)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1: stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if ppid == pid and comm.startswith("qemu-system"):
            out.append(int(d))
    return out


def test_ctrl_c_during_a_real_boot(tmp_path):
    import signal
    import time

    t = tmp_path / "t.trace"
    t.write_text(EXAMPLE)
    exp = tmp_path / "t.expected"
    exp.write_text("old\n")
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    proc = _mempolicy(["trace", "record", "-j", "1", str(t)], TMPDIR=str(tmpdir))
    for _ in range(3000):
        qemus = _qemu_children(proc.pid)
        if qemus or proc.poll() is not None:
            break
        time.sleep(0.02)
    assert qemus, "QEMU never started"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip() == "mempolicy: interrupted"
    assert exp.read_text() == "old\n"
    assert not any(Path(f"/proc/{q}").exists() for q in qemus)
    assert os.listdir(tmpdir) == []


def test_privilege_traces_still_match():
    """The runner's ``cred`` and ``parent`` on a real kernel: the two-node traces of
    tests/traces/privileges (one boot) give what was recorded."""
    sample = sorted((TRACES / "privileges").glob("*-2n.trace"))
    assert len(sample) >= 3
    outs = run_traces([(p.read_text(), str(p)) for p in sample])
    for path, out in zip(sample, outs):
        assert out == path.with_suffix(".expected").read_text(), path.name
