"""``mempolicy numactl``: numactl 2.0.16 (as Debian ships it), on Linux or on the model.

    mempolicy numactl [numactl options] COMMAND [ARGS...]
    mempolicy numactl --show | --hardware
    mempolicy numactl --sim TOPOLOGY [numactl options] [--show | --hardware | memhog SIZE]

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
where its pages went as numa_maps does).

The package follows numactl's own files, in the order a user types:
:mod:`.options` (the command line, numactl.c ``main``), :mod:`.cparse` (numbers
and sizes), :mod:`.nodestrings` (node and CPU strings, libnuma), :mod:`.libnuma`
(the library state and calls), :mod:`.show` (``--show``/``--hardware``),
:mod:`.shm` (shm.c), :mod:`.execute` (exec), over :mod:`.backends` (live or
model kernel).
"""

from __future__ import annotations

import sys

from mempolicy.frontends.numactl.backends import LiveBackend, SimBackend
from mempolicy.frontends.numactl.common import Exit, Output
from mempolicy.frontends.numactl.cparse import memsize, strtoul
from mempolicy.frontends.numactl.libnuma import Bitmask, Libnuma
from mempolicy.frontends.numactl.options import Numactl

__all__ = ["Bitmask", "Exit", "Libnuma", "LiveBackend", "Numactl", "Output", "SimBackend",
           "main", "memsize", "strtoul"]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    io = Output()
    spec = None
    if argv and (argv[0] == "--sim" or argv[0].startswith("--sim=")):
        if argv[0] == "--sim":
            if len(argv) < 2:
                io.err("numactl: option '--sim' requires an argument\n")
                return 2
            spec, argv = argv[1], argv[2:]
        else:
            spec, argv = argv[0][len("--sim="):], argv[1:]
    try:
        if spec is not None:
            from mempolicy.linux.topology import TopologyError

            try:
                be = SimBackend(spec)
            except (TopologyError, ValueError, OSError) as e:
                io.err(f"numactl: --sim: {e}\n")
                return 2
        else:
            be = LiveBackend()
        try:
            return Numactl(be, io).run(argv)
        except Exit as e:
            return e.status
    finally:
        io.flush()


if __name__ == "__main__":
    sys.exit(main())
