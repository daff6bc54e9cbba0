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


def test_privilege_traces_still_match():
    """The runner's ``cred`` and ``parent`` on a real kernel: the two-node traces of
    tests/traces/privileges (one boot) give what was recorded."""
    sample = sorted((TRACES / "privileges").glob("*-2n.trace"))
    assert len(sample) >= 3
    outs = run_traces([(p.read_text(), str(p)) for p in sample])
    for path, out in zip(sample, outs):
        assert out == path.with_suffix(".expected").read_text(), path.name
