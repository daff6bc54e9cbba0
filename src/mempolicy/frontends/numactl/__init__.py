"""``mempolicy numactl``: numactl 2.0.16 or 2.0.19 (as Debian ships them), on Linux or on the model.

    mempolicy numactl [numactl options] COMMAND [ARGS...]
    mempolicy numactl --show | --hardware
    mempolicy numactl --sim TOPOLOGY [--kernel V] [numactl options] [--show | --hardware | memhog SIZE]
    mempolicy numactl --sim TOPOLOGY --sim-weights 0:3,1:1 -w 0-1 memhog 64M
    mempolicy numactl --sim TOPOLOGY --sim-bandwidth 0:30000,1:10000 -w 0-1 memhog 64M
    mempolicy numactl --sim TOPOLOGY --cpuset-mems NODES [--cpuset-cpus CPUS] [--threads N] ...
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
where its pages went as numa_maps does).  ``--kernel 6.1|6.12|7.3`` (with
``--sim``, among the leading options; default 7.3) says which Linux the model
behaves as.  ``--sim-weights NODE:WEIGHT,...``
writes the simulated machine's weighted-interleave weights (sysfs
``weighted_interleave/nodeN``, 1..255); ``--sim-bandwidth NODE:MBPS,...``
gives it firmware (HMAT) bandwidths, from which the kernel derives its
automatic weights.  Both come right after ``--sim``; bandwidths apply first,
so given weights win (as a sysfs write after boot does).  Before the numactl
options, ``--cpuset-mems NODES`` and ``--cpuset-cpus CPUS`` start the simulated
process inside a cgroup v2 cpuset (a container's), and ``--threads N`` makes
memhog touch its memory from N threads created after the policy is set, thread
k on the k-th allowed CPU (round robin), each writing one N-th of the range.
``--sim-thp always|madvise|never`` (with ``--sim``) sets the simulated machine's transparent huge pages
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


def _node_values(text: str, what: str) -> list[tuple[int, int]]:
    """``0:3,1:1`` -> [(0, 3), (1, 1)]; ValueError with a one-line message."""
    out = []
    for item in text.split(","):
        node, colon, value = item.partition(":")
        if not (colon and node.isascii() and node.isdigit() and value.isascii() and value.isdigit()):
            raise ValueError(f"'{item}' is not NODE:{what}")
        out.append((int(node), int(value)))
    return out


def _apply_sim_option(model, opt: str, text: str) -> None:
    """``--sim-weights`` or ``--sim-bandwidth`` on the simulated machine."""
    what = "WEIGHT" if opt == "sim-weights" else "MBPS"
    for node, value in _node_values(text, what):
        try:
            if opt == "sim-weights":
                model.set_system_weight(node, value)
            else:
                model.set_node_bandwidth(node, value)
        except OSError as e:
            version = model.kernel.version
            if opt == "sim-weights" and not version.has_weighted_interleave:
                raise ValueError(f"Linux {version} has no weighted-interleave weights") from None
            reason = ("has no memory, so no weight" if e.errno == 2 else
                      "takes a weight of 1..255" if opt == "sim-weights" else
                      "needs memory and a bandwidth of 1..134217727 MB/s")
            raise ValueError(f"node {node} {reason}") from None


def main(argv: list[str] | None = None) -> int:
    """``mempolicy numactl [--numactl-version V] [--sim TOPOLOGY [--kernel V]] [numactl options] ...``.

    Example: ``main(["--sim", "2x1G", "--hardware"])`` prints the model's hardware.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    io = Output()
    spec = version = kernel = thp = None
    sim_opts: dict[str, str] = {}
    envelope: dict[str, str] = {}               # --cpuset-mems, --cpuset-cpus, --threads (--sim only)
    while argv:                                 # our own options come first, in any order
        for opt in ("sim-weights", "sim-bandwidth"):
            if argv[0].startswith(f"--{opt}") and opt not in sim_opts:
                value, rest, err = _leading(argv, opt)
                if value is not None:
                    sim_opts[opt] = value
                break
        else:
            rest = err = None
        if rest is not None and rest is not argv:
            argv = rest
            continue
        if err:
            io.err(err)
            return 2
        if argv[0].startswith("--sim-thp") and thp is None:
            thp, rest, err = _leading(argv, "sim-thp")
        elif argv[0].startswith("--sim") and not argv[0].startswith("--sim-") and spec is None:
            spec, rest, err = _leading(argv, "sim")
        elif argv[0].startswith("--kernel") and kernel is None:
            kernel, rest, err = _leading(argv, "kernel")
        elif argv[0].startswith("--numactl-version") and version is None:
            version, rest, err = _leading(argv, "numactl-version")
        elif argv[0].split("=")[0] in SIM_ENVELOPE and argv[0].split("=")[0][2:] not in envelope:
            name = argv[0].split("=")[0][2:]
            value, rest, err = _leading(argv, name)
            if value is not None:
                envelope[name] = value
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
    if kernel is not None:
        from mempolicy.core.version import VERSIONS

        if spec is None:
            io.err("numactl: --kernel: only with --sim (the model's Linux version)\n")
            return 2
        if kernel not in VERSIONS:
            io.err(f"numactl: --kernel: unknown version '{kernel}' (one of {', '.join(VERSIONS)})\n")
            return 2
    if thp is not None and spec is None:
        io.err("numactl: --sim-thp needs --sim TOPOLOGY\n")
        return 2
    try:
        if spec is not None:
            from mempolicy.linux.topology import TopologyError

            try:
                be = SimBackend(spec, kernel or "7.3")
            except (TopologyError, ValueError, OSError) as e:
                io.err(f"numactl: --sim: {e}\n")
                return 2
            if thp is not None:
                try:
                    be.model.set_thp(thp)
                except ValueError as e:
                    io.err(f"numactl: --sim-thp: {e}\n")
                    return 2
            for opt in ("sim-bandwidth", "sim-weights"):
                if opt in sim_opts:
                    try:
                        _apply_sim_option(be.model, opt, sim_opts[opt])
                    except ValueError as e:
                        io.err(f"numactl: --{opt}: {e}\n")
                        return 2
            err = be.envelope(envelope)
            if err:
                io.err(f"numactl: {err}\n")
                return 2
        elif sim_opts:
            io.err(f"numactl: --{next(iter(sim_opts))} needs --sim\n")
            return 2
        else:
            if envelope:
                io.err(f"numactl: --{next(iter(envelope))} needs --sim\n")
                return 2
            be = LiveBackend()
        try:
            return Numactl(be, io, chosen).run(argv)
        except Exit as e:
            return e.status
    finally:
        io.flush()


SIM_ENVELOPE = ("--cpuset-mems", "--cpuset-cpus", "--threads")

if __name__ == "__main__":
    sys.exit(main())
