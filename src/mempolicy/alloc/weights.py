"""Weighted-interleave weights: ``wi_state`` and its sysfs files (mm/mempolicy.c).

The kernel keeps one ``struct weighted_interleave_state`` for the machine:
``mode_auto`` and ``iw_table[nr_node_ids]`` (u8 weights), published by RCU.
A NULL state means "auto, every weight 1": that is how a machine without
firmware bandwidth data boots.  Three writers replace it:

* ``mempolicy_set_node_perf`` (from the HMAT driver through
  ``node_set_perf_attrs``, for the CPU access class): records the node's
  bandwidth, min(read, write) in MB/s, in ``node_bw_table``, and in auto
  mode recomputes every weight with ``reduce_interleave_weights``;
* ``node_store`` (``weighted_interleave/nodeN``): one weight, 1..255 as
  ``kstrtou8(buf, 0)`` reads it, and the state turns manual;
* ``weighted_interleave_auto_store`` (``weighted_interleave/auto``): a
  ``kstrtobool`` value; false keeps the weights and turns manual, true
  recomputes them from the bandwidths (``ENODEV`` when there are none).

A ``nodeN`` file exists for each node with memory (``N_MEMORY``).  Older
kernels differ (``KernelVersion``): before 6.16 there is no ``auto`` file,
firmware bandwidths change nothing, a ``nodeN`` file exists for every
possible node and 0 is a valid write meaning "the default, 1"
(``weighted_interleave_auto``, ``weight_files_for_memory_nodes``); before
6.9 there is no ``/sys/kernel/mm/mempolicy`` at all
(``has_weighted_interleave``).

The model differs in one way: no RCU, a writer replaces the state in place.
A task's current run (``il_prev``/``il_weight``) is its own and is not
touched by a new weight, as in the kernel.
"""

from __future__ import annotations

import errno
from math import gcd

from mempolicy.core.nodemask import Nodemask
from mempolicy.core.version import DEFAULT, KernelVersion

WEIGHTINESS = 32    # reduce_interleave_weights() scales bandwidths to 1..32
U32 = (1 << 32) - 1


def reduce_interleave_weights(bw: list[int], n_memory: Nodemask) -> list[int]:
    """Weights for the nodes with memory from their bandwidths (MB/s).

    Each node gets ``32 * bw / sum(bw)`` rounded down, or 1 when its
    bandwidth is unknown (0) or its share rounds to 0; then all are divided
    by their greatest common divisor.  Nodes without memory keep 1.  Like
    the kernel, ``32 * bw`` is an unsigned 32-bit product.
    """
    new_iw = [1] * len(bw)
    sum_bw = sum(bw[nid] for nid in n_memory)
    iw_gcd = 0
    for nid in n_memory:
        scaling_factor = (WEIGHTINESS * bw[nid]) & U32
        if bw[nid] and sum_bw < scaling_factor:
            new_iw[nid] = (scaling_factor // (sum_bw & U32)) & 0xFF
        else:
            new_iw[nid] = 1
        iw_gcd = gcd(iw_gcd or new_iw[nid], new_iw[nid])
    for nid in n_memory:
        new_iw[nid] //= iw_gcd
    return new_iw


def _kstrtoull(s: str) -> int | None:
    """``kstrtoull(s, 0)``: an optional '+', 0x hex, 0 octal or decimal, one optional
    trailing newline.  None for what the kernel refuses (EINVAL or ERANGE)."""
    if s.startswith("+"):
        s = s[1:]
    base = 10
    if s.startswith("0"):
        if s[1:2] in ("x", "X") and s[2:3] and s[2] in "0123456789abcdefABCDEF":
            base, s = 16, s[2:]
        else:
            base = 8
    digits = "0123456789abcdef"[:base]
    n = 0
    while n < len(s) and s[n].lower() in digits:
        n += 1
    if n == 0 or s[n:] not in ("", "\n"):
        return None
    v = int(s[:n], base)
    return v if v < 1 << 64 else None


def kstrtobool(s: str) -> bool | None:
    """``kstrtobool``: the first character (or two for on/off) decides; None: EINVAL."""
    c = s[:1].lower()
    if c and c in "ety1":
        return True
    if c and c in "dfn0":
        return False
    if c == "o" and s[1:2].lower() in ("n", "f"):
        return s[1].lower() == "n"
    return None


class WeightedInterleaveState:
    """``wi_state`` with ``node_bw_table``; ``iw_table`` None is the NULL state."""

    def __init__(self, nr_node_ids: int, n_memory: Nodemask | None = None,
                 version: KernelVersion = DEFAULT) -> None:
        self.nr_node_ids = nr_node_ids
        self.n_memory = Nodemask(range(nr_node_ids)) if n_memory is None else n_memory
        self.version = version
        self.iw_table: list[int] | None = None
        self.mode_auto = True
        self.node_bw_table: list[int] | None = None

    @property
    def sysfs_nodes(self) -> Nodemask:
        """The nodes that have a ``weighted_interleave/nodeN`` file."""
        if not self.version.has_weighted_interleave:
            return Nodemask()                      # no /sys/kernel/mm/mempolicy
        if self.version.weight_files_for_memory_nodes:
            return self.n_memory
        return Nodemask(range(self.nr_node_ids))   # N_POSSIBLE

    def get_il_weight(self, node: int) -> int:
        return 1 if self.iw_table is None else self.iw_table[node]

    def weights(self) -> dict[int, int]:
        """What the ``nodeN`` files read: node -> weight, for each node that has one."""
        return {n: self.get_il_weight(n) for n in self.sysfs_nodes}

    def auto_show(self) -> str | None:
        """What ``auto`` reads ("true" or "false"), None where the file does not exist."""
        if not self.version.weighted_interleave_auto:
            return None
        return "true" if self.iw_table is None or self.mode_auto else "false"

    def mempolicy_set_node_perf(self, node: int, bandwidth: int) -> None:
        """The node's bandwidth (MB/s) from firmware; recompute the weights unless manual.
        Before 6.16 ``node_set_perf_attrs`` has no such call: nothing changes."""
        if not self.version.weighted_interleave_auto:
            return
        bw = list(self.node_bw_table or [0] * self.nr_node_ids)
        bw[node] = bandwidth
        self.node_bw_table = bw
        if self.iw_table is not None and not self.mode_auto:
            return
        self.iw_table = reduce_interleave_weights(bw, self.n_memory)
        self.mode_auto = True

    def node_store(self, node: int, buf: str) -> int:
        """Write ``buf`` to ``nodeN``: 0, or the errno (ENOENT: no such file).

        Before 6.16 an empty write or 0 stores 0, which every reader of the
        table (``get_il_weight``, ``weighted_interleave_nid``) takes as 1: the
        model stores the 1."""
        if node >= self.nr_node_ids or node not in self.sysfs_nodes:
            return errno.ENOENT
        old_kernel = not self.version.weighted_interleave_auto
        if not buf or buf == "\n":
            weight = 0 if old_kernel else None
        else:
            weight = _kstrtoull(buf)
        if weight == 0 and old_kernel:
            weight = 1
        if weight is None or not 1 <= weight <= 255:
            return errno.EINVAL
        table = list(self.iw_table or [1] * self.nr_node_ids)
        table[node] = weight
        self.iw_table, self.mode_auto = table, False
        return 0

    def auto_store(self, buf: str) -> int:
        """Write ``buf`` to ``auto``: 0 or the errno (ENOENT before 6.16: no such file)."""
        if not self.version.weighted_interleave_auto:
            return errno.ENOENT
        value = kstrtobool(buf)
        if value is None:
            return errno.EINVAL
        if self.iw_table is not None and value == self.mode_auto:
            return 0
        if not value:
            self.iw_table = list(self.iw_table or [1] * self.nr_node_ids)
            self.mode_auto = False
            return 0
        if self.node_bw_table is None:
            return errno.ENODEV
        self.iw_table = reduce_interleave_weights(self.node_bw_table, self.n_memory)
        self.mode_auto = True
        return 0

    def set_weight(self, node: int, weight: int) -> None:
        """Write a weight (1..255) as an integer; ValueError otherwise."""
        if not 1 <= weight <= 255:
            raise ValueError("weight must be 1..255")
        if node >= self.nr_node_ids or node not in self.sysfs_nodes:
            raise ValueError(f"node {node} has no weight file on Linux {self.version}")
        self.node_store(node, str(weight))
