"""A closed or full stdout: every subcommand ends as numactl does, without a traceback.

numactl and numastat write through C stdio and ignore write errors: with
``>&-`` or ``>/dev/full`` they print nothing on stderr and keep their exit
status.  Where the real tool is installed, its exit status and stderr are
the expectation; for the subcommands it has no counterpart for, the
expectation is the same rule: the status of a normal run and no stderr.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mempolicy import linux

SRC = str(Path(__file__).resolve().parent.parent / "src")
TRACE = str(Path(__file__).parent / "traces" / "01-interleave-anon.trace")
NUMACTL = shutil.which("numactl")
NUMASTAT = shutil.which("numastat")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("MEMPOLICY_NUMACTL_VERSION", None)      # the installed numactl's version
    return env


def _run(argv: list[str], how: str, cwd: str = "/tmp", exe: str | None = None) -> tuple[int, str]:
    """Run ARGV with stdout closed (``closed``) or on /dev/full (``full``): (status, stderr)."""
    if how == "closed":
        r = subprocess.run(argv, executable=exe, stderr=subprocess.PIPE, text=True, env=_env(),
                           cwd=cwd, preexec_fn=lambda: os.close(1))
    else:
        with open("/dev/full", "w") as full:
            r = subprocess.run(argv, executable=exe, stdout=full, stderr=subprocess.PIPE,
                               text=True, env=_env(), cwd=cwd)
    return r.returncode, r.stderr


def mine(args: list[str], how: str, cwd: str = "/tmp") -> tuple[int, str]:
    return _run([sys.executable, "-m", "mempolicy", *args], how, cwd)


HOW = ["closed", "full"]

NUMACTL_CASES = ["-H", "--show", "-s extra", "-i 0 true", "-m 0 echo hi", "-i x true", "--bogus",
                 "-p 0,0 true", "-C 99 true"]


@pytest.mark.skipif(NUMACTL is None, reason="numactl is not installed")
@pytest.mark.skipif(not linux.available(), reason="memory-policy calls unavailable")
@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("args", NUMACTL_CASES)
def test_numactl_as_numactl(args, how):
    assert mine(["numactl", *args.split()], how) == _run(["numactl", *args.split()], how, exe=NUMACTL)


NUMASTAT_CASES = ["", "-m", "-n", "-z -m", "-x"]


@pytest.mark.skipif(NUMASTAT is None, reason="numastat is not installed")
@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("args", NUMASTAT_CASES)
def test_numastat_as_numastat(args, how):
    status, err = _run(["numastat", *args.split()], how, exe=NUMASTAT)
    mine_status, mine_err = mine(["numastat", *args.split()], how)
    assert mine_status == status
    assert (mine_err == "") == (err == "")
    assert "Traceback" not in mine_err


OTHER_CASES = [
    ["--help"], ["--version"], ["trace", "run", TRACE], ["trace", "fuzz", "--count", "1"],
    ["check", "--list"], ["numactl", "--sim", "2x1G", "-H"], ["numactl", "--sim", "2x1G", "-s"],
    ["numactl", "--sim", "2x1G", "-i", "all", "memhog", "1M"], ["numastat", "--trace", TRACE, "-m"], ["numastat", "--trace", TRACE],
]


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("args", OTHER_CASES, ids=" ".join)
def test_every_subcommand_loses_its_output_quietly(args, how, tmp_path):
    assert mine(args, how, cwd=str(tmp_path)) == (0, "")     # trace fuzz writes into cwd


@pytest.mark.parametrize("how", HOW)
def test_plot_loses_its_output_quietly(tmp_path, how):
    pytest.importorskip("matplotlib")
    out = tmp_path / "x.png"
    assert mine(["plot", TRACE, "-o", str(out)], how) == (0, "")
    assert out.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("how", HOW)
def test_a_usage_error_still_says_so(how):
    status, err = mine(["trace", "run", "/nonexistent.trace"], how)
    assert status == 2 and err.count("\n") == 1 and "Traceback" not in err


def test_a_closed_stdout_stays_closed_for_the_command():
    """numactl execs COMMAND with fd 1 as it found it: closed (the reservation is close-on-exec)."""
    if not linux.available():
        pytest.skip("memory-policy calls unavailable")
    probe = "import os,sys; sys.stderr.write(str(os.path.exists('/proc/self/fd/1')))"
    status, err = mine(["numactl", "-l", sys.executable, "-c", probe], "closed")
    assert (status, err) == (0, "False")
