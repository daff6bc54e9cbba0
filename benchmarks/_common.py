"""Helpers shared by the scale benchmarks: import path, timing, memory of this process."""

from __future__ import annotations

import os
import sys
import time

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
if SRC not in sys.path:
    sys.path.insert(0, SRC)


def best_of(fn, repeat: int = 3) -> float:
    """The shortest of ``repeat`` timings of ``fn()``, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def rss_kib(field: str = "VmRSS") -> int:
    """VmRSS or VmHWM (peak) of this process from /proc/self/status, in KiB (0 elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux: write 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def terabyte_topology():
    """The 8-node machine of the terabyte benchmarks: four 256 GiB nodes with two CPUs
    each and four 96 GiB memory-only nodes, 21 within a group and 32 across."""
    from mempolicy.alloc.topology import Node, Topology

    g = 1 << 30
    nodes = [Node(i, 256 * g, range(2 * i, 2 * i + 2)) for i in range(4)]
    nodes += [Node(4 + i, 96 * g, range(0)) for i in range(4)]
    dist = [[10 if a == b else (21 if (a < 4) == (b < 4) else 32) for b in range(8)] for a in range(8)]
    return Topology(nodes, dist)
