"""(5) migrate_pages and move_pages on 65,536 pages, against the model's old algorithms
measured in the same run.

    python3 benchmarks/bench_migrate.py [--pages N]

The machine: eight 4 GiB nodes; one process maps N pages (default 65,536, the
most a trace's move_pages may name) interleaved over 0-7 (for move_pages: over
0 and 2-7) and writes them.

* ``migrate_pages 4-1023 0``: the kernel's loop takes every node of 4-1023 as a
  source in turn; the model used to walk the whole address space for each
  (1,020 walks); now it walks once and keeps the pages by node.
* ``move_pages`` of every page to node 1: the model used to look for each page
  in the list of pages isolated so far (quadratic); now a set.

The old algorithms (still selectable, ``walk_once=False`` / ``isolated_set=False``)
run on fewer pages (``--old-pages``, default 4,096) so the run stays short;
rates are pages per second of CPU time.  Both give the same result (checked
here: node of every page and status of every call).
"""

from __future__ import annotations

import argparse
import sys
import time

import _common  # noqa: F401  (import path)


def _setup(pages: int, mask: int = 0xFF):
    from mempolicy.alloc.bulk import touch_range
    from mempolicy.alloc.topology import Topology
    from mempolicy.kernel import Kernel
    from mempolicy.syscalls import mempolicy as sp
    from mempolicy.syscalls import mman
    from mempolicy.uapi import MPOL_INTERLEAVE

    k, t = Kernel.boot(Topology.simple(8, 4 << 30))
    base = 0x200000000000
    mman.sys_mmap(k, t, base, pages * 4096, False, None)
    sp.kernel_mbind(k, t, base, pages * 4096, MPOL_INTERLEAVE, mask, 65, 0)
    touch_range(k, t, base, pages, True)
    return k, t, base


def _nodes(k, t, base, pages):
    from mempolicy.syscalls import migrate as mig

    return mig.kernel_move_pages(k, t, 0, [base + i * 4096 for i in range(pages)], None, 0)[1]


def migrate(pages: int, walk_once: bool):
    from mempolicy.core.nodemask import Nodemask
    from mempolicy.syscalls import migrate as mig

    k, t, base = _setup(pages)
    frm = Nodemask(((1 << 1024) - 1) & ~0xF)                 # 4-1023
    t0 = time.process_time()
    r = mig.do_migrate_pages(k, t, t.mm, frm, Nodemask(1), 4, walk_once=walk_once)
    dt = time.process_time() - t0
    return dt, (r, _nodes(k, t, base, pages))


def move(pages: int, isolated_set: bool):
    from mempolicy.syscalls import migrate as mig

    k, t, base = _setup(pages, 0xFD)                 # no page on node 1 yet: every page moves
    addrs = [base + i * 4096 for i in range(pages)]
    t0 = time.process_time()
    r = mig.do_pages_move(k, t, t.mm, t.mems_allowed, addrs, [1] * pages, 2, isolated_set=isolated_set)
    dt = time.process_time() - t0
    return dt, (r, _nodes(k, t, base, pages))


def run(pages: int = 65536, old_pages: int = 4096) -> dict:
    out = {}
    for name, fn in (("migrate_pages 4-1023 0", migrate), ("move_pages to node 1", move)):
        new_s, new_r = fn(pages, True)
        old_s, old_r = fn(old_pages, False)
        same_s, same_r = fn(old_pages, True)
        assert same_r == old_r, f"{name}: the two algorithms disagree"
        new_rate, old_rate = pages / new_s, old_pages / old_s
        print(f"{name:<24} {pages} pages: {new_s:6.3f} s  ({new_rate:>10,.0f} pages/s);  "
              f"old algorithm, {old_pages} pages: {old_s:6.3f} s ({old_rate:>8,.0f} pages/s);  "
              f"{new_rate / old_rate:,.0f}x")
        out[name] = {"seconds": new_s, "rate": new_rate, "old_rate": old_rate}
    print("(CPU seconds; the same result from both algorithms on the smaller size, checked)")
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pages", type=int, default=65536)
    p.add_argument("--old-pages", type=int, default=4096)
    a = p.parse_args()
    run(a.pages, a.old_pages)
    return 0


if __name__ == "__main__":
    sys.exit(main())
