"""(4) /proc/<pid>/numa_maps of 65,530 VMAs (the kernel's default max_map_count).

    python3 benchmarks/bench_numa_maps.py

One mapping of 65,530 pages; ``mbind`` on every other page (in random
order) cuts it into 65,530 one-page VMAs with alternating policies, and a
write to every page gives each VMA its page.  The figure is the time one full read
of numa_maps takes (best of 3), against the target of 1 s.  For the record,
also: numa_maps and a 65,536-page ``where`` on a 1 TiB mapping placed by the
bulk path, and the time to build the 65,530 VMAs.
"""

from __future__ import annotations

import random
import sys
import time

import _common

TARGET_S = 1.0
VMAS = 65_530


def run() -> dict:
    from mempolicy.alloc.bulk import touch_range
    from mempolicy.alloc.topology import Topology
    from mempolicy.kernel import Kernel
    from mempolicy.proc.task_mmu import numa_maps
    from mempolicy.syscalls import mempolicy as sp
    from mempolicy.syscalls import mman
    from mempolicy.syscalls.migrate import kernel_move_pages
    from mempolicy.uapi import MPOL_BIND, MPOL_INTERLEAVE

    k, t = Kernel.boot(Topology.simple(2, 4 << 30), track_sites=False)
    base = 0x200000000000
    pages = VMAS
    mman.sys_mmap(k, t, base, pages * 4096, False, None)
    order = list(range(1, pages, 2))
    random.Random(1).shuffle(order)
    t0 = time.perf_counter()
    for i in order:
        sp.kernel_mbind(k, t, base + i * 4096, 4096, MPOL_BIND, 0b10, 65, 0)
    build = time.perf_counter() - t0
    touch_range(k, t, base, pages, True, bulk=False)
    assert len(t.mm.vmas) == VMAS, len(t.mm.vmas)
    lines = []

    def read():
        lines[:] = numa_maps(k, t, t)
    dt = _common.best_of(read, 3)
    assert len(lines) == VMAS
    print(f"numa_maps, {VMAS:,} VMAs:        {dt:6.3f} s   ratio to the {TARGET_S:g} s target: {dt / TARGET_S:.2f}")
    print(f"  (building them with {len(order):,} mbind calls in random order: {build:.2f} s)")

    k2, t2 = Kernel.boot(Topology.simple(8, 256 << 30, 2), track_sites=False)
    tib = 1 << 28
    mman.sys_mmap(k2, t2, 0x100000000000, tib * 4096, False, None)
    sp.kernel_mbind(k2, t2, 0x100000000000, tib * 4096, MPOL_INTERLEAVE, 0xFF, 65, 0)
    touch_range(k2, t2, 0x100000000000, tib, True)
    t0 = time.perf_counter()
    first = numa_maps(k2, t2, t2)
    cold = time.perf_counter() - t0
    warm = _common.best_of(lambda: numa_maps(k2, t2, t2), 3)
    addrs = [0x100000000000 + i * 4096 for i in range(0, tib, tib // 65536)]
    where = _common.best_of(lambda: kernel_move_pages(k2, t2, 0, addrs, None, 0), 3)
    print(f"numa_maps, one 1 TiB VMA:      {cold:6.3f} s first read, {warm:.4f} s after ({len(first)} line)")
    print(f"where, 65,536 pages of 1 TiB:  {where:6.3f} s")
    return {"numa_maps_65530": dt}


def main() -> int:
    run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
