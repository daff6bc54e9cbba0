"""``mempolicy numactl`` against the system's numactl (2.0.16 on Debian 12).

Every expected output here is what the installed ``numactl`` prints on this
machine for the same arguments; the tests skip when it is not installed or
when the memory-policy calls are unavailable.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mempolicy import linux

SRC = str(Path(__file__).resolve().parent.parent / "src")
NUMACTL = shutil.which("numactl")

needs_numactl = pytest.mark.skipif(NUMACTL is None, reason="numactl is not installed")
needs_kernel = pytest.mark.skipif(not linux.available(), reason="memory-policy calls unavailable")


def _version_2016() -> bool:
    if NUMACTL is None:
        return False
    r = subprocess.run([NUMACTL, "--version"], capture_output=True, text=True)
    return r.returncode == 1 and "unrecognized option '--version'" in r.stderr


pytestmark = [needs_numactl, needs_kernel,
              pytest.mark.skipif(not _version_2016(), reason="the installed numactl is not 2.0.16")]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("MEMPOLICY_NUMACTL_VERSION", None)      # the installed numactl's version
    return env


def real(args: list[str]) -> tuple[int, str, str]:
    r = subprocess.run(["numactl", *args], executable=NUMACTL, capture_output=True, text=True, cwd="/tmp")
    return r.returncode, r.stdout, r.stderr


def mine(args: list[str]) -> tuple[int, str, str]:
    r = subprocess.run([sys.executable, "-m", "mempolicy", "numactl", *args], capture_output=True,
                       text=True, env=_env(), cwd="/tmp")
    return r.returncode, r.stdout, r.stderr


# One-node machine: every node string, option order and error path numactl has.
CASES = """
-s
--show
-i 1 true
-i 010 true
--pref=0 true
-w 0 true
--version
-m '' true
-i '!0' -s
-p 0,0 -s
--membind=0 --interleave=0 true
-C 5 true
-N 1 true
-i x true
-i 0- true
-i 0, true
-i +1 true
-l -s
--inter 0 -s
-s extra

--
-- true
-i
--interleave
--show=1
--dump
-t -m 0 true
-m same true
-m 0 --cpunodebind=same -s
-i 0 -p 0 true
-H -i 0
-i 0 -H
-b -s
-m 0 -b true
-i foo:bar true
-i -1 true
-C +5 true
-C ! true
-N '' true
-a -s
-i all -a true
nonexistent-command-xyz
''
-i 0 '' x
-P 0 -s
-m 0 -s
-p 0-0 -s
-p '' true
-i 0 -N 0 -C 0-1 -s
-b -m 0 -s
--pr=0 true
--c 0 true
--=x
-x
-ix
-s -x
--length=1x true
-M 9 true
-I x true
-T
-u -s
-C 0 -a true
-i 0x0 -s
-i 4294967296 -s
-i 0-65536 -s
-i ' 0' -s
-i '0 ' -s
-i '!+0' -s
-i '+!0' -s
-i 0,all -s
-i all,0 -s
-i 0--1 true
-C '!0' -s
-C all -s
-C 1-0 -s
-N all -s
-a -N all -s
-a -i +1 true
-P 0,1 true
-m 0 numactl -s
-i all numactl -s
-l numactl -s
-p 0 numactl -s
-P 0 numactl -s
-b -m 0 numactl -s
-i 0 -- numactl -s
-i0 numactl -s
--interleave=0 numactl --show
--cpunodebind=0 numactl --show
-i pci:0:0.0 true
-d -s
--dump-nodes
--off 1k true
--shmid 3 true
-D
-V
--verify
--touch
--length=3000 --file /dev/shm/mempolicy-test-nt -D
--length=8m --file /dev/shm/mempolicy-test-nt --strict -m 0 --verify -D
--length=2m --offset=2m --file /dev/shm/mempolicy-test-nt --interleave=0 --dump
--length=8m --file /dev/shm/mempolicy-test-nt --preferred=0 --dump
--length=8m --file /dev/shm/mempolicy-test-nt -l --touch --dump-nodes
--length=8m --offset 2m --file /dev/shm/mempolicy-test-nt -i 0 --verify
--length=8m --file /dev/shm/mempolicy-test-nt true
--file /dev/shm/mempolicy-test-nt --dump
-C 0 --length=8m --file /dev/shm/mempolicy-test-nt
"""


def _cases():
    return [shlex.split(line) for line in CASES.strip("\n").split("\n")]


def _clean():
    try:
        os.unlink("/dev/shm/mempolicy-test-nt")
    except FileNotFoundError:
        pass


@pytest.mark.parametrize("args", _cases(), ids=lambda a: " ".join(a) or "(none)")
def test_same_as_numactl(args):
    _clean()
    want = real(args)
    _clean()
    got = mine(args)
    _clean()
    if got != want and " free: " in want[1]:
        # a hardware listing: each node's free memory moves between the two runs
        (t1, f1), (t2, f2) = _masked_free(want[1]), _masked_free(got[1])
        assert (want[0], want[2], t1) == (got[0], got[2], t2)
        assert len(f1) == len(f2) > 0
        assert all(abs(a - b) <= 64 for a, b in zip(f1, f2)), (f1, f2)
        return
    assert got == want


def test_cpu_range_relative_and_affinity():
    ncpu = len(os.sched_getaffinity(0))
    for args in (["-C", f"{ncpu - 1}", "-s"], ["-C", "+0", "-s"], ["-C", f"0-{ncpu - 1}", "numactl", "-s"],
                 ["--physcpubind=0", "numactl", "--show"]):
        assert mine(args) == real(args), args


def _masked_free(text: str) -> tuple[str, list[int]]:
    """(the text with each 'node N free: X MB' value blanked, the values)."""
    lines, free = [], []
    for line in text.splitlines():
        if " free: " in line and line.endswith(" MB"):
            head, _, val = line.rpartition(" free: ")
            free.append(int(val.split()[0]))
            line = head + " free: <X> MB"
        lines.append(line)
    return "\n".join(lines), free


def test_hardware_same_as_numactl():
    """``--hardware`` is byte-identical, except the free memory of each node, which
    moves between the two runs (the Python process itself holds some MB)."""
    for _ in range(10):
        rc1, out1, err1 = real(["--hardware"])
        rc2, out2, err2 = mine(["--hardware"])
        t1, f1 = _masked_free(out1)
        t2, f2 = _masked_free(out2)
        if out1 == out2 or (t1 == t2 and all(abs(a - b) <= 64 for a, b in zip(f1, f2))):
            break
    assert (rc1, err1) == (rc2, err2) == (0, "")
    assert t1 == t2
    assert len(f1) == len(f2) > 0
    assert all(abs(a - b) <= 64 for a, b in zip(f1, f2)), (f1, f2)


def test_sim_of_this_machine_shows_what_numactl_shows():
    """``--sim sysfs`` boots the model on this machine's topology; its --show and
    --hardware (sizes included) are what numactl prints here, free memory aside."""
    for args in (["-s"], ["-i", "all", "-s"], ["-m", "0", "-s"], ["-p", "0", "-s"], ["-l", "-s"],
                 ["-P", "0", "-s"], ["-b", "-m", "0", "-s"], ["-C", "0", "-s"], ["-i", "1", "true"],
                 ["--pref=0", "true"]):
        assert mine(["--sim", "sysfs", *args]) == real(args), args
    t1, _ = _masked_free(real(["-H"])[1])
    t2, _ = _masked_free(mine(["--sim", "sysfs", "-H"])[1])
    assert t1 == t2


CHILD = ("from mempolicy import linux; import os; "
         "print(linux.get_mempolicy(), sorted(os.sched_getaffinity(0)))")


@pytest.mark.parametrize("opts", [["--interleave=all"], ["--membind=0"], ["--preferred=0"],
                                  ["--localalloc"], ["--preferred-many=0"], ["-b", "-m", "0"],
                                  ["-C", "0", "-i", "0"], []])
def test_exec_runs_the_command_with_the_policy(opts):
    """The command runs with the policy in force, as under numactl."""
    argv = [*opts, "--", sys.executable, "-c", CHILD]
    r1 = subprocess.run(["numactl", *argv], executable=NUMACTL, capture_output=True, text=True, env=_env())
    r2 = subprocess.run([sys.executable, "-m", "mempolicy", "numactl", *argv], capture_output=True,
                        text=True, env=_env())
    assert (r2.returncode, r2.stdout, r2.stderr) == (r1.returncode, r1.stdout, r1.stderr)
    assert r1.returncode == 0


def test_exec_status_and_signals_pass_through():
    r = subprocess.run([sys.executable, "-m", "mempolicy", "numactl", "-i", "all", "sh", "-c", "exit 7"],
                       env=_env())
    assert r.returncode == 7
    # SIGPIPE is back to its default in the command (Python ignores it)
    r = subprocess.run([sys.executable, "-m", "mempolicy", "numactl", "-i", "all", "sh", "-c",
                        "yes | head -1 >/dev/null; grep SigIgn /proc/self/status"],
                       capture_output=True, text=True, env=_env())
    r0 = subprocess.run([NUMACTL, "-i", "all", "sh", "-c",
                         "yes | head -1 >/dev/null; grep SigIgn /proc/self/status"],
                        capture_output=True, text=True)
    assert r.stdout == r0.stdout
