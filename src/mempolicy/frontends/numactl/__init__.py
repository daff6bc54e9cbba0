"""``mempolicy numactl``: numactl 2.0.16 or 2.0.19 (as Debian ships them), on Linux or on the model.

    mempolicy numactl [numactl options] COMMAND [ARGS...]
    mempolicy numactl --show | --hardware
    mempolicy numactl --sim TOPOLOGY [numactl options] [--show | --hardware | memhog SIZE]
    mempolicy numactl --numactl-version 2.0.19 [...]   (or MEMPOLICY_NUMACTL_VERSION=2.0.19)
    mempolicy numactl --sim TOPOLOGY --sim-thp always [...]   (transparent huge pages on)

Options are processed in order, with GNU ``getopt_long`` rules (prefix
abbreviations, stop at the first non-option), each with numactl's side
effects and error texts; node and CPU strings are read as libnuma reads them
(``all``, ``!``, ``+``, ranges, numbers as C ``strtoul(.., 0)``, ``netdev:``,
``file:``, ``ip:``, ``block:``, ``pci:``, ``same``).  ``--show`` and
``--hardware`` print what numactl prints.  Without ``--sim`` the policy is
set on this thread with the real system calls and COMMAND is exec'd with it.

``--sim TOPOLOGY`` (first argument; a TOML file, ``4x512M``, a hwloc
synthetic string or ``sysfs``) runs the same command line against a process
of the model kernel booted on that machine: ``--show``/``--hardware``
describe the simulated process and machine, and the command may be
``memhog SIZE`` (touch SIZE of anonymous memory under the policy, then print
where its pages went as numa_maps does).  ``--sim-thp always|madvise|never``
(with ``--sim``) sets the simulated machine's transparent huge pages
(``/sys/kernel/mm/transparent_hugepage/enabled``; ``never`` by default).

The package follows numactl's own files, in the order a user types:
:mod:`.options` (the command line, numactl.c ``main``), :mod:`.cparse` (numbers
and sizes), :mod:`.nodestrings` (node and CPU strings, libnuma), :mod:`.libnuma`
(the library state and calls), :mod:`.show` (``--show``/``--hardware``),
:mod:`.shm` (shm.c), :mod:`.execute` (exec), over :mod:`.backends` (live or
model kernel).  :mod:`.versions` says which numactl is cloned (by default the
installed one's version, else 2.0.16) and what differs between the two.
"""

from __future__ import annotations

import sys

from mempolicy.frontends.numactl.backends import LiveBackend, SimBackend
from mempolicy.frontends.numactl.common import Exit, Output
from mempolicy.frontends.numactl.cparse import memsize, strtoul
from mempolicy.frontends.numactl.libnuma import Bitmask, Libnuma
from mempolicy.frontends.numactl.options import Numactl
from mempolicy.frontends.numactl.versions import ENV, VersionError, select_version

__all__ = ["Bitmask", "Exit", "Libnuma", "LiveBackend", "Numactl", "Output", "SimBackend",
           "main", "memsize", "strtoul"]


def _leading(argv: list[str], name: str) -> tuple[str | None, list[str], str | None]:
    """``--NAME V`` or ``--NAME=V`` at the front of ARGV: (V, the rest, an error or None)."""
    if argv and argv[0] == f"--{name}":
        if len(argv) < 2:
            return None, argv, f"numactl: option '--{name}' requires an argument\n"
        return argv[1], argv[2:], None
    if argv and argv[0].startswith(f"--{name}="):
        return argv[0][len(name) + 3:], argv[1:], None
    return None, argv, None


def main(argv: list[str] | None = None) -> int:
    """``mempolicy numactl [--numactl-version V] [--sim TOPOLOGY] [numactl options] ...``.

    Example: ``main(["--sim", "2x1G", "--hardware"])`` prints the model's hardware.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    io = Output()
    spec = version = thp = None
    while argv:                                 # our own options come first, in any order
        if argv[0].startswith("--sim-thp") and thp is None:
            thp, rest, err = _leading(argv, "sim-thp")
        elif argv[0].startswith("--sim") and spec is None:
            spec, rest, err = _leading(argv, "sim")
        elif argv[0].startswith("--numactl-version") and version is None:
            version, rest, err = _leading(argv, "numactl-version")
        else:
            break
        if err:
            io.err(err)
            return 2
        if rest is argv:                        # "--simfoo": not ours, numactl's to reject
            break
        argv = rest
    try:
        chosen = select_version(version)
    except VersionError as e:
        io.err(f"numactl: --numactl-version: {e}\n" if version is not None
               else f"numactl: {ENV}: {e}\n")
        return 2
    if thp is not None and spec is None:
        io.err("numactl: --sim-thp needs --sim TOPOLOGY\n")
        return 2
    try:
        if spec is not None:
            from mempolicy.linux.topology import TopologyError

            try:
                be = SimBackend(spec)
            except (TopologyError, ValueError, OSError) as e:
                io.err(f"numactl: --sim: {e}\n")
                return 2
            if thp is not None:
                try:
                    be.model.set_thp(thp)
                except ValueError as e:
                    io.err(f"numactl: --sim-thp: {e}\n")
                    return 2
        else:
            be = LiveBackend()
        try:
            return Numactl(be, io, chosen).run(argv)
        except Exit as e:
            return e.status
    finally:
        io.flush()

if __name__ == "__main__":
    sys.exit(main())
