"""The version tools on real kernels: a kernel given by path, and the
semantic diff of two kernels, found and shrunk.

Boots real kernels under QEMU, so it runs only with ``qemu-system-x86_64``
installed and ``MEMPOLICY_QEMU_TESTS=1``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mempolicy.oracle import run_traces
from mempolicy.oracle.kernels import cache_dir, get_kernel
from mempolicy.trace.run import run_trace_text

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(
        shutil.which("qemu-system-x86_64") is None or os.environ.get("MEMPOLICY_QEMU_TESTS") != "1",
        reason="needs qemu-system-x86_64 and MEMPOLICY_QEMU_TESTS=1",
    ),
]

SRC = str(Path(__file__).resolve().parent.parent / "src")
HEADER = "node 0 mem=512M cpus=1\nnode 1 mem=512M cpus=1\n"

# A page never touched: EFAULT on 6.1, ENOENT on 6.12 and 7.3 (all three
# measured); a page read once maps the zero page: EFAULT on all three.
UNTOUCHED = HEADER + """\
mmap A 4
mmap B 2
touch B 0 2
touch A 0 1
touch A 2 1 read
get_mempolicy
where A 0 4
where B 0 2
"""
# MPOL_WEIGHTED_INTERLEAVE arrived in 6.9: EINVAL on 6.1.
WEIGHTED = HEADER + """\
mmap A 4
touch A 0 1
set_mempolicy weighted_interleave 0-1
get_mempolicy
"""
SAME = HEADER + """\
mmap A 4
mbind A 0 4 bind 1
touch A 0 4
where A 0 4
"""


def _mempolicy(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mempolicy", *args], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": SRC}, timeout=3600)


def _write(tmp_path: Path, **texts: str) -> list[str]:
    out = []
    for name, text in texts.items():
        p = tmp_path / f"{name}.trace"
        p.write_text(text)
        out.append(str(p))
    return out


def test_vmlinuz_by_path_is_the_same_kernel(tmp_path):
    """The cached Debian 6.12 image given by path boots and prints what --kernel 6.12 prints."""
    get_kernel("6.12")
    image = cache_dir() / "kernels" / "6.12" / "vmlinuz"
    files = _write(tmp_path, untouched=UNTOUCHED, same=SAME)
    by_path = _mempolicy("trace", "oracle", "-j", "1", "--vmlinuz", str(image), *files)
    assert by_path.returncode == 0, by_path.stderr
    by_version = run_traces([(Path(f).read_text(), f) for f in files], "6.12", jobs=1)
    assert by_path.stdout == "".join(
        ("\n" if i else "") + f"==> {f} <==\n" + out for i, (f, out) in enumerate(zip(files, by_version)))
    assert "9 where: 0 ENOENT EFAULT ENOENT\n" in by_version[0]


def test_diff_61_against_612_finds_and_shrinks(tmp_path):
    """Two traces that behave differently on 6.1 and 6.12 are found and shrunk;
    one that does not is not reported."""
    files = _write(tmp_path, untouched=UNTOUCHED, weighted=WEIGHTED, same=SAME)
    r = _mempolicy("trace", "diff", "-j", "1", "--kernel", "6.1", "--against", "6.12", *files)
    assert r.returncode == 1, r.stderr
    out = r.stdout
    assert re.search(r"untouched\.trace: changed at line 9 \(where\); minimal trace of 2 command\(s\), "
                     r"from 8 <==\n" + re.escape(HEADER) + r"mmap A 4\nwhere A 0 4\n", out), out
    assert "-4 where: EFAULT EFAULT EFAULT EFAULT\n+4 where: ENOENT ENOENT ENOENT ENOENT\n" in out
    m = re.search(r"weighted\.trace: changed at line 5 \(set_mempolicy\); minimal trace of (\d) "
                  r"command\(s\), from 4 <==\n" + re.escape(HEADER) + r"((?:.+\n)+?)---", out)
    assert m and int(m[1]) < 4 and "set_mempolicy weighted_interleave 0-1\n" in m[2], out
    assert f"{files[2]}: same on both" in out
    assert "2 of 3 trace(s) changed between Linux 6.1.0" in out


# A page written on CPU 0 sits in CPU 0's LRU batch, which holds a reference.
# After fork and exit, a write on CPU 1 reuses the page on 6.12 but copies it
# on 7.3 (where: 0 against 1); measured with trace versions --oracle.
COW = HEADER + """\
mmap A 1
mmap B 1
touch A 0 1
fork
exit
cpu 1
touch B 0 1
touch A 0 1
where A 0 1
"""


def test_diff_612_against_73_finds_and_shrinks(tmp_path):
    """The copy-on-write trace changes between 6.12 and 7.3 and is shrunk; the
    never-touched page (which changed in 6.12) and SAME are not reported."""
    files = _write(tmp_path, cow=COW, untouched=UNTOUCHED, same=SAME)
    r = _mempolicy("trace", "diff", "-j", "1", "--kernel", "6.12", "--against", "7.3", *files)
    assert r.returncode == 1, r.stderr
    out = r.stdout
    m = re.search(r"cow\.trace: changed at line 11 \(where\); minimal trace of (\d) command\(s\), "
                  r"from 9 <==\n" + re.escape(HEADER) + r"((?:.+\n)+?)--- Linux 6\.12", out)
    assert m, out
    assert int(m[1]) < 9 and m[2].endswith("where A 0 1\n") and "fork\n" in m[2], out
    assert re.search(r"-\d+ where: 0\n\+\d+ where: 1\n", out), out
    assert f"{files[1]}: same on both" in out and f"{files[2]}: same on both" in out
    assert "1 of 3 trace(s) changed between Linux 6.12" in out


# Two traces with the same hmat header share a boot.  6.12 has no auto file, so
# the oracle restores the boot weights (all 1) by writing 1 to each nodeN: the
# second trace must see weights 1:1, not the first trace's 5 (trace-format 5.8).
HMAT = "node 0 mem=1G cpus=1\nnode 1 mem=1G cpus=1\nhmat 0 bw=20000\nhmat 1 bw=10000\n"
WRITES = HMAT + "weights\nweight 1 5\nweight 0 0\nweights\n"
READS = HMAT + "weights\nmmap A 6\nmbind A 0 6 weighted_interleave 0-1\ntouch A 0 6\nwhere A 0 6\n"


def test_612_weights_come_back_between_traces_of_one_boot(tmp_path):
    files = _write(tmp_path, writes=WRITES, reads=READS)
    outs = run_traces([(Path(f).read_text(), f) for f in files], "6.12", jobs=1)
    assert outs[0] == ("5 weights: auto=none N0=1 N1=1\n6 weight: ok\n7 weight: ok\n"
                       "8 weights: auto=none N0=1 N1=5\n")
    assert outs[1].startswith("5 weights: auto=none N0=1 N1=1\n"), outs[1]
    assert outs[1].endswith("9 where: 0 1 0 1 0 1\n"), outs[1]
    for f, out in zip(files, outs):
        assert run_trace_text(Path(f).read_text(), f, kernel="6.12") == out
