"""(3) Lookup cost with 100,000 ranges or VMAs against the cost with 100.

    python3 benchmarks/bench_lookup.py

* a shared-policy tree (memfd, ``mbind`` on every other page, inserted in
  random order): ``mpol_shared_policy_lookup`` at random page offsets, as
  every shmem fault does;
* an address space of VMAs (``mbind`` on every other page of one mapping,
  in random order): ``vma_lookup`` at random addresses, as every fault does,
  at the kernel's default ``max_map_count`` (65,530) and at 100,000;
* and, for the growth of the structures themselves, the cost of one insert
  (an ``mbind`` that splits) at each size.

Each cost is the best of several rounds of 200,000 lookups at addresses
drawn beforehand; the ratio is large over small (target: under 3).
"""

from __future__ import annotations

import random
import sys
import time

import _common

SMALL, LARGE = 100, 100_000
MAX_MAP_COUNT = 65_530          # the kernel's default limit on VMAs per process
LOOKUPS = 200_000


def shared_tree(n: int):
    from mempolicy.alloc.topology import Topology
    from mempolicy.kernel import Kernel
    from mempolicy.syscalls import mman

    k, t = Kernel.boot(Topology.simple(2, 1 << 30), track_sites=False)
    f = mman.memfd_create(k, t, "m", 2 * n)
    order = list(range(0, 2 * n, 2))
    random.Random(n).shuffle(order)
    sh = f.inode.policy
    t0 = time.perf_counter()
    for i in order:
        sh.mpol_set_shared_policy(i, 1, k.preferred_node_policy[1])
    return sh, (time.perf_counter() - t0) / n


def vma_space(n: int):
    from mempolicy.alloc.topology import Topology
    from mempolicy.kernel import Kernel
    from mempolicy.syscalls import mempolicy as sp
    from mempolicy.syscalls import mman
    from mempolicy.uapi import MPOL_BIND

    k, t = Kernel.boot(Topology.simple(2, 1 << 30), track_sites=False)
    base = 0x200000000000
    mman.sys_mmap(k, t, base, n * 4096, False, None)
    order = list(range(0, n, 2))
    random.Random(n).shuffle(order)
    t0 = time.perf_counter()
    for i in order:
        sp.kernel_mbind(k, t, base + i * 4096, 4096, MPOL_BIND, 0b10, 65, 0)
    return t.mm, base, (time.perf_counter() - t0) / len(order)


def cost_shared(sh, n: int) -> float:
    from mempolicy.core.mempolicy import mpol_cond_put

    rnd = random.Random(7)
    idx = [rnd.randrange(2 * n) for _ in range(LOOKUPS)]
    lookup = sh.mpol_shared_policy_lookup

    def go():
        for i in idx:
            mpol_cond_put(lookup(i))
    return _common.best_of(go, 5) / LOOKUPS


def cost_vma(mm, base: int, n: int) -> float:
    rnd = random.Random(7)
    addrs = [base + rnd.randrange(n) * 4096 for _ in range(LOOKUPS)]
    lookup = mm.vma_lookup

    def go():
        for a in addrs:
            lookup(a)
    return _common.best_of(go, 5) / LOOKUPS


def run() -> dict:
    out = {}
    print(f"{'structure':<42} {'at ' + str(SMALL):>10} {'at ' + format(LARGE, ','):>11} {'ratio':>7}")
    sh_s, ins_s = shared_tree(SMALL)
    sh_l, ins_l = shared_tree(LARGE)
    a, b = cost_shared(sh_s, SMALL), cost_shared(sh_l, LARGE)
    print(f"{'shared policy lookup (ns)':<42} {a * 1e9:>10.0f} {b * 1e9:>11.0f} {b / a:>7.2f}")
    out["shared"] = b / a
    print(f"{'shared policy insert, random order (us)':<42} {ins_s * 1e6:>10.1f} {ins_l * 1e6:>11.1f} "
          f"{ins_l / ins_s:>7.2f}")
    mm_s, base_s, vins_s = vma_space(SMALL)
    a = cost_vma(mm_s, base_s, SMALL)
    for n in (MAX_MAP_COUNT, LARGE):
        mm_l, base_l, vins_l = vma_space(n)
        b = cost_vma(mm_l, base_l, n)
        label = f"vma_lookup, {n:,} VMAs (ns)"
        print(f"{label:<42} {a * 1e9:>10.0f} {b * 1e9:>11.0f} {b / a:>7.2f}")
        out[f"vma{n}"] = b / a
        label = f"mbind splitting a VMA, {n:,} (us)"
        print(f"{label:<42} {vins_s * 1e6:>10.1f} {vins_l * 1e6:>11.1f} {vins_l / vins_s:>7.2f}")
        del mm_l
    print(f"(lookups: best of 5 rounds of {LOOKUPS:,}; target ratio under 3)")
    return out


def main() -> int:
    run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
