"""``mempolicy numactl`` as numactl 2.0.19 (Debian 13), against the real 2.0.19.

The real one is Debian 13's package, fetched into the cache by
``python3 -m mempolicy.oracle.numactl_deb 2.0.19`` (``.ci/run`` does it) and run
with its own libnuma and C library; the tests skip when it has not been
fetched.  Every 2.0.16 case of ``test_numactl.py`` runs again (the two
versions differ in places the cases reach: usage text, ``complain``,
``--hardware``), then the 2.0.19 additions.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from mempolicy import linux
from mempolicy.oracle.numactl_deb import cached_numactl

sys.path.insert(0, str(Path(__file__).parent))
from test_numactl import CASES, _masked_free  # noqa: E402

SRC = str(Path(__file__).resolve().parent.parent / "src")
NUMACTL_2019 = cached_numactl("2.0.19")

pytestmark = [
    pytest.mark.skipif(NUMACTL_2019 is None, reason="numactl 2.0.19 not fetched "
                       "(python3 -m mempolicy.oracle.numactl_deb 2.0.19)"),
    pytest.mark.skipif(not linux.available(), reason="memory-policy calls unavailable"),
]


def _env(version: str | None = "2.0.19") -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("MEMPOLICY_NUMACTL_VERSION", None)
    if version:
        env["MEMPOLICY_NUMACTL_VERSION"] = version
    return env


def real(args: list[str]) -> tuple[int, str, str]:
    assert NUMACTL_2019 is not None
    r = subprocess.run([*NUMACTL_2019, *args], capture_output=True, text=True, cwd="/tmp",
                       env=_env(None))
    return r.returncode, r.stdout, r.stderr


def mine(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    r = subprocess.run([sys.executable, "-m", "mempolicy", "numactl", *args], capture_output=True,
                       text=True, env=env or _env(), cwd="/tmp")
    return r.returncode, r.stdout, r.stderr


CASES_2019 = """
-w 0 -s
-w 0 true
-w all -s
--weighted-interleave=0 -s
--weighted=0 -s
--we 0 -s
-w0 -s
-w 0 -i 0 -s
-i 0 -w 0 -s
-w '' -s
-w x true
-w -1 true
-w 4294967296 true
-i 4294967296 true
-i 18446744073709551615 true
-w
-w 0 numactl -s
-w 0 -- numactl --show
-a -w all true
--version
--version extra
--vers
--ver
-i 0 --version
-H -s
-H -x
-H --bogus
-H true
-s -H
--cpu-compress -s
--cpu-compress true
--cpu-compress=1 -H
--cpu
-l -s
-m 0 -s
-P 0 -s
-p 0 -s
-m 0 -P 0 true
--length=8m --file /dev/shm/mempolicy-test-nt -w 0 --dump
--length=8m --file /dev/shm/mempolicy-test-nt -p 0 --dump
--length=8m --file /dev/shm/mempolicy-test-nt -P 0 --dump
--length=8m --file /dev/shm/mempolicy-test-nt -p 0 --verify
--length=8m --file /dev/shm/mempolicy-test-nt -w 0 --verify
--file /dev/shm/mempolicy-test-nt -D
"""


def _cases() -> list[list[str]]:
    text = CASES.strip("\n") + "\n" + CASES_2019.strip("\n")
    return [shlex.split(line) for line in text.split("\n")]


def _clean() -> None:
    try:
        os.unlink("/dev/shm/mempolicy-test-nt")
    except FileNotFoundError:
        pass


def _unaddressed(r: tuple[int, str, str]) -> tuple[int, str, str]:
    """--verify prints the mapping's address, which differs from run to run."""
    return r[0], re.sub(r"numactl verify [0-9a-f]+\(", "numactl verify <addr>(", r[1]), r[2]


def _close(want: tuple[int, str, str], got: tuple[int, str, str]) -> bool:
    """Equal, or hardware listings equal but for free memory within 64 MB."""
    if got == want:
        return True
    (t1, f1), (t2, f2) = _masked_free(want[1]), _masked_free(got[1])
    return ((want[0], want[2], t1) == (got[0], got[2], t2) and len(f1) == len(f2) > 0
            and all(abs(a - b) <= 64 for a, b in zip(f1, f2)))


@pytest.mark.parametrize("args", _cases(), ids=lambda a: " ".join(a) or "(none)")
def test_same_as_numactl_2019(args):
    for _ in range(10):         # free memory moves between the runs on a busy machine
        _clean()
        want = _unaddressed(real(args))
        _clean()
        got = _unaddressed(mine(args))
        _clean()
        if _close(want, got) or " free: " not in want[1]:
            break
    if " free: " in want[1]:
        assert _close(want, got), (want, got)
    else:
        assert got == want


@pytest.mark.parametrize("args", [["--hardware"], ["-H", "--cpu-compress"], ["--cpu-c", "-H"],
                                  ["-H", "-i", "0"], ["-H", "-b", "-w", "0"]])
def test_hardware_same_as_numactl_2019(args):
    """Byte-identical but for each node's free memory, which moves between runs."""
    for _ in range(10):
        want, got = real(args), mine(args)
        if _close(want, got):
            break
    assert " free: " in want[1] and _close(want, got), (want, got)


def test_sim_of_this_machine_as_2019():
    for args in (["-s"], ["-w", "all", "-s"], ["-i", "all", "-s"], ["-P", "0", "-s"],
                 ["--version"], ["-w", "x", "-s"], ["-H", "-s"]):
        assert mine(["--sim", "sysfs", *args]) == real(args), args
    t1, _ = _masked_free(real(["-H", "--cpu-compress"])[1])
    t2, _ = _masked_free(mine(["--sim", "sysfs", "-H", "--cpu-compress"])[1])
    assert t1 == t2


def test_version_is_chosen_by_option_then_environment():
    assert mine(["--numactl-version", "2.0.19", "--version"], env=_env("2.0.16")) == real(["--version"])
    assert mine(["--numactl-version=2.0.19", "--sim", "2x1G", "--version"],
                env=_env(None))[1] == "2.0.19\n"
    assert mine(["--version"], env=_env("2.0.19")) == real(["--version"])
    status, out, err = mine(["--numactl-version", "2.0.17", "-s"])
    assert (status, out) == (2, "") and err.count("\n") == 1 and "2.0.17" in err
    status, out, err = mine(["-s"], env=_env("banana"))
    assert (status, out) == (2, "") and err.count("\n") == 1 and "MEMPOLICY_NUMACTL_VERSION" in err
