"""Other numactl releases to compare against, from Debian packages, fetched and cached.

``mempolicy numactl`` clones 2.0.16 (Debian 12) and 2.0.19 (Debian 13).  The
machine has at most one of them installed; this module fetches the other
the way :mod:`mempolicy.oracle.kernels` fetches kernels: ``apt-get download``
with a private sources list whose mirror is the one the machine's own apt
configuration uses (``MEMPOLICY_DEBIAN_MIRROR`` overrides it), then
``dpkg-deb -x`` into ``$XDG_CACHE_HOME/mempolicy/numactl/VERSION``.  Nothing
is installed on the system.  Debian 13's numactl needs its own C library
(glibc 2.38 or later), so it is run through the dynamic loader of the
fetched ``libc6`` with its own library path::

    python3 -m mempolicy.oracle.numactl_deb 2.0.19     # fetch; print the command

From Python, :func:`cached_numactl` gives the command (a list, argv[0] being
what numactl prints as its name) or None when it has not been fetched.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from mempolicy.oracle.errors import OracleError
from mempolicy.oracle.kernels import _Apt, cache_dir, debian_mirror

__all__ = ["NUMACTL_SUITES", "cached_numactl", "get_numactl", "main"]

# numactl VERSION -> the Debian suite that carries it
NUMACTL_SUITES = {"2.0.19": "trixie"}
_PACKAGES = ("numactl", "libnuma1", "libc6")
_LIBDIR = "usr/lib/x86_64-linux-gnu"
_LOADER = "usr/lib64/ld-linux-x86-64.so.2"


def _root(version: str) -> Path:
    return cache_dir() / "numactl" / version


def _command(root: Path) -> list[str]:
    return [str(root / _LOADER), "--argv0", "numactl", "--library-path", str(root / _LIBDIR),
            str(root / "usr/bin/numactl")]


def cached_numactl(version: str = "2.0.19") -> list[str] | None:
    """The command running numactl VERSION from the cache, or None when it is not there.

    Example: ``subprocess.run([*cached_numactl("2.0.19"), "--show"])``.
    """
    root = _root(version)
    if not (root / "numactl.json").is_file():
        return None
    cmd = _command(root)
    if not all(Path(p).exists() for p in (cmd[0], cmd[-1])):
        return None
    return cmd


def get_numactl(version: str = "2.0.19", *, log=None) -> list[str]:
    """Fetch numactl VERSION (and its libnuma and C library) on first use; its command.

    Example: ``get_numactl("2.0.19")[-1]`` is the cached ``usr/bin/numactl``.
    """
    cmd = cached_numactl(version)
    if cmd is not None:
        return cmd
    if version not in NUMACTL_SUITES:
        raise OracleError(f"no Debian suite known for numactl {version!r} "
                          f"(choose from {', '.join(NUMACTL_SUITES)})")
    if shutil.which("dpkg-deb") is None:
        raise OracleError("dpkg-deb not found: numactl packages are unpacked with Debian's dpkg")
    suite = NUMACTL_SUITES[version]
    source = debian_mirror()
    if log:
        log(f"fetching numactl {version} from {source.uri} ({suite})")
    apt = _Apt(cache_dir() / "apt" / suite, source, suite, trusted=False)
    r = apt.run("apt-get", "update")
    if r.returncode != 0:
        apt = _Apt(cache_dir() / "apt" / suite, source, suite, trusted=True)
        r = apt.run("apt-get", "update")
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["apt-get update failed"])[-1]
        raise OracleError(f"cannot read the Debian mirror {source.uri} ({suite}): {last}")
    root = _root(version)
    with tempfile.TemporaryDirectory(prefix="mempolicy-deb-") as tmp:
        r = apt.run("apt-get", "download", *_PACKAGES, cwd=Path(tmp))
        debs = sorted(Path(tmp).glob("*.deb"))
        if r.returncode != 0 or len(debs) != len(_PACKAGES):
            last = (r.stderr.strip().splitlines() or ["apt-get download failed"])[-1]
            raise OracleError(f"cannot download {' '.join(_PACKAGES)} from {suite}: {last}")
        got = [d.name for d in debs if d.name.startswith("numactl_")]
        if not got or f"_{version}-" not in got[0]:
            raise OracleError(f"{suite} carries {got[0] if got else 'no numactl'}, "
                              f"not numactl {version}")
        part = root.with_name(root.name + ".part")
        shutil.rmtree(part, ignore_errors=True)
        part.mkdir(parents=True)
        for deb in debs:
            r2 = subprocess.run(["dpkg-deb", "-x", str(deb), str(part)], capture_output=True,
                                text=True)
            if r2.returncode != 0:
                raise OracleError(f"cannot unpack {deb.name}: {r2.stderr.strip()}")
        (part / "numactl.json").write_text(json.dumps({"packages": [d.name for d in debs]}) + "\n")
        shutil.rmtree(root, ignore_errors=True)
        part.rename(root)
    cmd = _command(root)
    r = subprocess.run([*cmd, "--version"], capture_output=True, text=True)
    if r.stdout.strip() != version:
        raise OracleError(f"the fetched numactl does not run here: {r.stderr.strip()[:200]}")
    return cmd


def main(argv: list[str] | None = None) -> int:
    """``python3 -m mempolicy.oracle.numactl_deb [VERSION]``: fetch, then print the command."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or (args and args[0].startswith("-")):
        print("usage: python3 -m mempolicy.oracle.numactl_deb [VERSION]", file=sys.stderr)
        return 2
    try:
        cmd = get_numactl(args[0] if args else "2.0.19",
                          log=lambda m: print(m, file=sys.stderr))
    except OracleError as e:
        print(f"mempolicy: {e}", file=sys.stderr)
        return 2
    print(" ".join(cmd))
    return 0


if __name__ == "__main__":
    sys.exit(main())
