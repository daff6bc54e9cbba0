"""Which numactl to be: 2.0.16 (Debian 12) or 2.0.19 (Debian 13).

The version is, first to last: ``--numactl-version V`` (before the numactl
options), ``MEMPOLICY_NUMACTL_VERSION``, the version of the numactl
installed on this machine, 2.0.16.  Each is byte-identical to that numactl;
what changed between them (numactl.c, libnuma.c, shm.c):

* 2.0.19 adds ``--weighted-interleave``/``-w``, ``--cpu-compress`` and
  ``--version``; its usage text says so;
* ``--hardware`` is printed after every option is read (so ``-H -s`` shows),
  distances in columns of four, CPUs as ranges with ``--cpu-compress``;
* ``--show`` of a weighted-interleave process prints ``policy: [6]`` and an
  unfinished ``preferred node:`` line (2.0.19 names no such policy);
* ``complain`` ends its message on stderr (2.0.16: the newline went to stdout);
* libnuma: every node directory counts as a memory node, a node's free memory
  defaults to 0 (not -1), out-of-range node numbers print as ``long``,
  ``EPERM`` from get_mempolicy means no NUMA, only a multi-node *preferred*
  policy is an error in ``--show``, the preferred-many probe uses the allowed
  nodes and keeps errno;
* ``--dump`` starts a new region when the node mask changes, and prints each
  region with its own mask; ``-p`` on shared memory binds to the first node.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

__all__ = ["SUPPORTED", "DEFAULT", "VersionError", "installed_version", "parse_version",
           "select_version"]

SUPPORTED = ("2.0.16", "2.0.19")
DEFAULT = "2.0.16"
ENV = "MEMPOLICY_NUMACTL_VERSION"


class VersionError(ValueError):
    """A numactl version this clone does not model."""


def parse_version(text: str) -> tuple[int, ...]:
    """``"2.0.19"`` -> ``(2, 0, 19)``; ValueError for anything else.

    >>> parse_version("2.0.16")
    (2, 0, 16)
    """
    if not re.fullmatch(r"\d+(\.\d+){1,3}", text.strip()):
        raise VersionError(f"not a version: {text!r}")
    return tuple(int(x) for x in text.strip().split("."))


def installed_version(numactl: str | None = None) -> str | None:
    """The installed numactl's version as this clone models it, or None without one.

    numactl answers ``--version`` since 2.0.17; older ones reject the option.
    Versions between two modelled ones map to the older.
    """
    path = numactl or shutil.which("numactl")
    if path is None:
        return None
    try:
        r = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10,
                           stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    if r.returncode != 0:
        return "2.0.16" if "--version" in r.stderr else None
    try:
        have = parse_version(r.stdout)
    except VersionError:
        return None
    older = [v for v in SUPPORTED if parse_version(v) <= have]
    return older[-1] if older else SUPPORTED[0]


def select_version(requested: str | None = None) -> str:
    """The version to clone: REQUESTED, else ``$MEMPOLICY_NUMACTL_VERSION``, else the
    installed numactl's, else 2.0.16.  VersionError names an unmodelled one.

    >>> select_version("2.0.19")
    '2.0.19'
    """
    want = requested if requested is not None else os.environ.get(ENV) or None
    if want is None:
        return installed_version() or DEFAULT
    if want.strip() not in SUPPORTED:
        raise VersionError(f"numactl {want} is not modelled (choose from {', '.join(SUPPORTED)})")
    return want.strip()
