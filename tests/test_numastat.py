"""``mempolicy numastat`` against the system's numastat, and on the model.

Live expectations come from the installed ``numastat`` run on the same
process; model expectations from traces recorded on Linux 7.3.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parent.parent / "src")
NUMASTAT = shutil.which("numastat")
TRACES = Path(__file__).parent / "traces"
needs_numastat = pytest.mark.skipif(NUMASTAT is None, reason="numastat is not installed")


def _env(extra=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


def real(args, extra=None):
    r = subprocess.run(["numastat", *args], executable=NUMASTAT, capture_output=True, text=True,
                       env=_env(extra))
    return r.returncode, r.stdout, r.stderr


def mine(args, extra=None):
    r = subprocess.run([sys.executable, "-m", "mempolicy", "numastat", *args], capture_output=True,
                       text=True, env=_env(extra))
    return r.returncode, r.stdout, r.stderr


@pytest.fixture(scope="module")
def sleeper():
    """A process whose memory does not change while it is looked at."""
    p = subprocess.Popen(["sleep", "60"])
    time.sleep(0.2)
    yield p.pid
    p.kill()
    p.wait()


@needs_numastat
@pytest.mark.parametrize("opts", [[], ["-c"], ["-z"], ["-v"], ["-s"], ["-s0"], ["-c", "-z", "-v"]],
                         ids=lambda o: " ".join(o) or "plain")
def test_process_table_same_as_numastat(sleeper, opts):
    args = ["-p", str(sleeper), *opts]
    assert mine(args) == real(args)


@needs_numastat
def test_several_pids_and_width(sleeper):
    for args, extra in ((["-p", "1", "-p", str(sleeper)], None), ([str(sleeper), "1"], None),
                        (["-p", "1", "-p", str(sleeper)], {"NUMASTAT_WIDTH": "40"}),
                        (["-p", str(sleeper), "-p", str(sleeper)], None)):
        assert mine(args, extra) == real(args, extra), args


@needs_numastat
@pytest.mark.parametrize("args", [["-x"], ["--help"], ["-p"], ["--bogus"], ["-?"],
                                  ["-p", "no-such-process-pattern-xyz"]])
def test_errors_same_as_numastat(args):
    # the pattern search must not find our own command lines: run from a neutral argv
    if args[:1] == ["-p"] and len(args) == 2:
        r1 = real(args)
        r2 = mine(args)
        assert r1[0] == r2[0] == 0
        assert r2[1].startswith('Found no processes containing pattern: "no-such-process-pattern-xyz"') \
            or "Per-node process memory usage" in r2[1]
        return
    assert mine(args) == real(args)


def _numbers_masked(text: str) -> str:
    return re.sub(r" +", " ", re.sub(r"\d+(\.\d+)?", "N", text))


@needs_numastat
@pytest.mark.parametrize("args", [[], ["-n"], ["-n", "-c"], ["-m"], ["-m", "-z"]],
                         ids=lambda a: " ".join(a) or "plain")
def test_system_layouts_same_as_numastat(args):
    """Counters move between two runs (a row can even turn zero and vanish under -z);
    the layout (rows, columns, widths) must not: retried until a pair of runs agrees."""
    for _ in range(8):
        r1, r2 = real(args), mine(args)
        assert r1[0] == r2[0] == 0
        assert r1[2] == r2[2]
        l1, l2 = r1[1].splitlines(), r2[1].splitlines()
        if len(l1) == len(l2) and all(len(a) == len(b) and _numbers_masked(a) == _numbers_masked(b)
                                      for a, b in zip(l1, l2)):
            return
    assert l2 == l1


def _expected_numa_maps_pages(trace: Path) -> dict[int, int]:
    """Per-node pages of every numa_maps line the kernel printed for the trace."""
    pages: dict[int, int] = {}
    for line in trace.with_suffix(".expected").read_text().splitlines():
        if " numa_maps: " in line:
            for n, v in re.findall(r"\bN(\d+)=(\d+)", line):
                pages[int(n)] = pages.get(int(n), 0) + int(v)
    return pages


def test_model_process_table_from_a_trace():
    """``--trace``: the model's process memory per node, in numastat's layout, is what
    the kernel reported (the trace's recorded numa_maps) for a trace whose mappings
    are all shown."""
    trace = TRACES / "01-interleave-anon.trace"
    want = _expected_numa_maps_pages(trace)
    rc, out, err = mine(["--trace", str(trace), "-p", "1"])
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert lines[1] == "Per-node process memory usage (in MBs) for PID 1 (01-interleave-a)"
    assert lines[2].split() == [x for n in range(4) for x in ("Node", str(n))] + ["Total"]
    total = [line for line in lines if line.startswith("Total")][0].split()[1:]
    for i, n in enumerate(sorted(want)):
        assert float(total[i]) == pytest.approx(want[n] * 4096 / 2**20, abs=0.006)


def test_model_counters_from_a_trace():
    """``--trace`` default layout: per-node counters of the model's allocations; an
    interleaved trace counts interleave hits on each node."""
    trace = TRACES / "01-interleave-anon.trace"
    rc, out, err = mine(["--trace", str(trace)])
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == [f"node{n}" for n in range(len(lines[0].split()))]
    rows = {line.split()[0]: [int(x) for x in line.split()[1:]] for line in lines[1:]}
    assert list(rows) == ["numa_hit", "numa_miss", "numa_foreign", "interleave_hit", "local_node",
                          "other_node"]
    want = _expected_numa_maps_pages(trace)
    for n, pages in want.items():
        assert rows["interleave_hit"][n] >= pages
    assert [h + m for h, m in zip(rows["numa_hit"], rows["numa_miss"])] == \
        [a + b for a, b in zip(rows["local_node"], rows["other_node"])]


def test_trace_errors_are_one_line():
    rc, out, err = mine(["--trace", "/nonexistent.trace"])
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
