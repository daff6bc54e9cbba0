"""Random command lines for ``mempolicy numactl`` and ``mempolicy numastat`` (hypothesis, bounded).

Each argv mixes valid options (short, long, abbreviated, ``--opt=value``),
node and CPU strings, sizes and junk.  Nothing may end in a traceback, and
where the real tool runs the same line, the exit status, stdout and stderr
are the real tool's (numactl 2.0.16 as installed; 2.0.19 when fetched), or
the exit status alone where the output moves between runs (numastat,
free memory).

No line can do harm: ``--shm``/``--file`` (which create files and SysV
segments) are never generated, no junk token starts with ``-`` (so none can
abbreviate to them) or holds a ``/``, and both tools run with an empty
``PATH`` in a scratch directory, so any command word fails to execute.
``MEMPOLICY_FUZZ_EXAMPLES`` sets the number of examples (default 15, the same ones
every run; with the variable set, new random ones).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from mempolicy import linux  # noqa: E402
from mempolicy.oracle.numactl_deb import cached_numactl  # noqa: E402

SRC = str(Path(__file__).resolve().parent.parent / "src")
NUMACTL = shutil.which("numactl")
NUMASTAT = shutil.which("numastat")
EXAMPLES = int(os.environ.get("MEMPOLICY_FUZZ_EXAMPLES", "15"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                derandomize="MEMPOLICY_FUZZ_EXAMPLES" not in os.environ,   # fixed unless asked
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _installed_numactl_version() -> str | None:
    from mempolicy.frontends.numactl.versions import installed_version

    return installed_version(NUMACTL) if NUMACTL else None


# ---- the strategies ----------------------------------------------------------------------

NODE_STRINGS = ["0", "1", "all", "!0", "+0", "0-0", "0,0", "0-1", "same", "", "x", "-1", "0x0",
                "010", "4294967296", "!", "+", "0-", "0,", " 0", "netdev:lo", "pci:0:0.0",
                "!+0", "0--1", "1-0", "all,0"]
CPU_STRINGS = ["0", "1", "0-1", "all", "!0", "+0", "99", "", "1-0", "0,1"]
SIZES = ["4k", "1m", "8M", "2g", "0", "1x", "-1", "0x1000", ""]
ARG_OPTS = {                         # option -> the values it takes
    "-i": NODE_STRINGS, "-m": NODE_STRINGS, "-p": NODE_STRINGS, "-P": NODE_STRINGS,
    "-N": NODE_STRINGS, "-c": NODE_STRINGS, "-w": NODE_STRINGS, "-C": CPU_STRINGS,
    "-L": SIZES, "-o": SIZES, "-M": ["600", "0644", "9", "x"], "-I": ["3", "x", "0x1"],
    "--interleave": NODE_STRINGS, "--membind": NODE_STRINGS, "--preferred": NODE_STRINGS,
    "--preferred-many": NODE_STRINGS, "--cpunodebind": NODE_STRINGS, "--physcpubind": CPU_STRINGS,
    "--weighted-interleave": NODE_STRINGS, "--length": SIZES, "--offset": SIZES,
    "--inter": NODE_STRINGS, "--pref": NODE_STRINGS, "--mem": NODE_STRINGS, "--p": NODE_STRINGS,
}
FLAG_OPTS = ["-s", "-H", "-l", "-a", "-b", "-t", "-d", "-D", "-T", "-V", "-u", "--show",
             "--hardware", "--localalloc", "--all", "--balancing", "--strict", "--dump",
             "--dump-nodes", "--touch", "--verify", "--huge", "--cpu-compress", "--version",
             "--ver", "--cpu", "--", "-x", "--bogus", "--=x", "-", "-sH", "-ls", "-al"]

_junk = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF,
                                       blacklist_characters="/\x00"), max_size=8) \
    .filter(lambda s: not s.startswith("-"))


@st.composite
def _numactl_token(draw: st.DrawFn) -> list[str]:
    kind = draw(st.sampled_from(["arg", "arg", "attached", "long=", "flag", "flag", "junk"]))
    if kind == "flag":
        return [draw(st.sampled_from(FLAG_OPTS))]
    if kind == "junk":
        return [draw(_junk)]
    opt = draw(st.sampled_from(sorted(ARG_OPTS)))
    val = draw(st.one_of(st.sampled_from(ARG_OPTS[opt]), _junk))
    if kind == "attached" and not opt.startswith("--"):
        return [opt + val]
    if kind == "long=" and opt.startswith("--"):
        return [f"{opt}={val}"]
    return [opt, val]


numactl_argv = st.lists(_numactl_token(), max_size=5).map(lambda ts: [t for tok in ts for t in tok])


@st.composite
def _numastat_token(draw: st.DrawFn) -> list[str]:
    kind = draw(st.sampled_from(["flag", "flag", "p", "s", "junk"]))
    if kind == "flag":
        return [draw(st.sampled_from(["-c", "-m", "-n", "-v", "-V", "-z", "-x", "--", "-cmz",
                                      "--help", "-"]))]
    if kind == "p":
        return ["-p", draw(st.sampled_from(["1", "999999999", "sleep", "x", ""]))]
    if kind == "s":
        return [draw(st.sampled_from(["-s", "-s0", "-s1", "-sx"]))]
    return [draw(_junk)]


numastat_argv = st.lists(_numastat_token(), max_size=4).map(lambda ts: [t for tok in ts for t in tok])


# ---- running ------------------------------------------------------------------------------

def _env(version: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MEMPOLICY_NUMACTL_VERSION", "COLUMNS")}
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env["PATH"] = "/nonexistent-mempolicy-fuzz"           # no command word can run
    env["LC_ALL"] = "C"
    if version:
        env["MEMPOLICY_NUMACTL_VERSION"] = version
    return env


def _run(argv: list[str], cwd: Path, env: dict[str, str], exe: str | None = None) -> tuple[int, str, str]:
    r = subprocess.run(argv, executable=exe, capture_output=True, cwd=cwd, env=env, timeout=60,
                       stdin=subprocess.DEVNULL)
    return (r.returncode, r.stdout.decode("utf-8", "replace"),
            r.stderr.decode("utf-8", "replace"))


def _mine(tool: str, args: list[str], cwd: Path, version: str | None = None) -> tuple[int, str, str]:
    got = _run([sys.executable, "-m", "mempolicy", tool, *args], cwd, _env(version))
    assert "Traceback" not in got[2], (args, got[2])
    return got


def _moves(text: str) -> bool:
    """Output that differs between two runs: free memory."""
    return " free: " in text


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _compare(args: list[str], want: tuple[int, str, str], got: tuple[int, str, str]) -> None:
    if _moves(want[1]) or _moves(got[1]):
        assert got[0] == want[0], (args, want, got)
    else:
        assert got == want, args


@pytest.mark.skipif(NUMACTL is None, reason="numactl is not installed")
@pytest.mark.skipif(not linux.available(), reason="memory-policy calls unavailable")
@FUZZ
@given(args=numactl_argv)
def test_numactl_fuzz_as_installed_numactl(scratch: Path, args: list[str]) -> None:
    want = _run(["numactl", *args], scratch, _env(), exe=NUMACTL)
    _compare(args, want, _mine("numactl", args, scratch, _installed_numactl_version()))


@pytest.mark.skipif(cached_numactl("2.0.19") is None,
                    reason="numactl 2.0.19 not fetched (python3 -m mempolicy.oracle.numactl_deb)")
@pytest.mark.skipif(not linux.available(), reason="memory-policy calls unavailable")
@FUZZ
@given(args=numactl_argv)
def test_numactl_fuzz_as_numactl_2019(scratch: Path, args: list[str]) -> None:
    cmd = cached_numactl("2.0.19")
    assert cmd is not None
    want = _run([*cmd, *args], scratch, _env())
    _compare(args, want, _mine("numactl", args, scratch, "2.0.19"))


@FUZZ
@given(args=numactl_argv, version=st.sampled_from(["2.0.16", "2.0.19"]))
def test_numactl_sim_fuzz_never_tracebacks(scratch: Path, args: list[str], version: str) -> None:
    status, _, err = _mine("numactl", ["--sim", "2x256M", *args], scratch, version)
    assert status in (0, 1, 2), (args, status, err)


@pytest.mark.skipif(NUMASTAT is None, reason="numastat is not installed")
@FUZZ
@given(args=numastat_argv)
def test_numastat_fuzz_as_numastat(scratch: Path, args: list[str]) -> None:
    want = _run(["numastat", *args], scratch, _env(), exe=NUMASTAT)
    got = _mine("numastat", args, scratch)
    assert got[0] == want[0], (args, want, got)
