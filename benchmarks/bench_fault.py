"""(1) The per-page fault path in faults per second, against the host kernel's own
fault rate measured in the same run.

    python3 benchmarks/bench_fault.py [--pages N]

Model: ``do_user_addr_fault`` page by page (write faults on a fresh private
anonymous mapping, interleaved over 4 nodes, page tables included), the
path short touches use; and the same faults on the path ``mempolicy check``
takes (every schedule point, a Folio per page: the rate before the fast
path of do_anonymous_page).  Host: a small C program
compiled here with the system C compiler touches fresh anonymous memory page
by page (mmap, one store per page, munmap; best of several rounds); without
a compiler, Python stores one byte per page of a fresh ``mmap`` (which then
includes the interpreter's own cost).  Also the bulk path's pages per second
on the same touch, against the same host figure.  Both sides are timed in
CPU time of their own process (user and system: the host's faults are
system time), so that other work on a shared machine does not count.
"""

from __future__ import annotations

import argparse
import mmap
import os
import shutil
import subprocess
import sys
import tempfile
import time

import _common  # noqa: F401  (import path)

C_SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
int main(int argc, char **argv) {
    long pages = argc > 1 ? atol(argv[1]) : 65536, rounds = argc > 2 ? atol(argv[2]) : 5;
    double best = 1e30;
    for (long r = 0; r < rounds; r++) {
        volatile char *p = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) { perror("mmap"); return 1; }
        double t0 = now();
        for (long i = 0; i < pages; i++) p[i * 4096] = 1;
        double dt = now() - t0;
        if (dt < best) best = dt;
        munmap((void *)p, pages * 4096);
    }
    printf("%.1f\n", pages / best);
    return 0;
}
"""


def host_fault_rate(pages: int) -> tuple[float, str]:
    """Faults per second of the host kernel, and how it was measured."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc:
        with tempfile.TemporaryDirectory() as d:
            src, exe = os.path.join(d, "touch.c"), os.path.join(d, "touch")
            with open(src, "w") as f:
                f.write(C_SOURCE)
            if subprocess.run([cc, "-O2", "-o", exe, src], capture_output=True).returncode == 0:
                out = subprocess.run([exe, str(pages), "7"], capture_output=True, text=True, check=True)
                return float(out.stdout), f"C program ({os.path.basename(cc)} -O2), {pages} pages"
    best = float("inf")
    for _ in range(5):
        m = mmap.mmap(-1, pages * 4096)
        t0 = time.process_time()
        for off in range(0, pages * 4096, 4096):
            m[off] = 1
        best = min(best, time.process_time() - t0)
        m.close()
    return pages / best, f"Python mmap stores (no C compiler), {pages} pages"


def model_setup(pages: int):
    from mempolicy.alloc.topology import Topology
    from mempolicy.kernel import Kernel
    from mempolicy.syscalls import mempolicy as sp
    from mempolicy.syscalls import mman
    from mempolicy.uapi import MPOL_INTERLEAVE

    k, t = Kernel.boot(Topology.simple(4, 4 << 30))
    base = 0x200000000000
    mman.sys_mmap(k, t, base, pages * 4096, False, None)
    sp.kernel_mbind(k, t, base, pages * 4096, MPOL_INTERLEAVE, 0b1111, 65, 0)
    return k, t, base


def model_fault_rate(pages: int, checker_path: bool = False) -> float:
    """Faults per second of ``do_user_addr_fault``; ``checker_path``: the path the
    concurrency checker takes (every schedule point, a Folio per page), forced by a
    ``sched_points.mutated`` set as the mutation tester sets it: the rate before the fast path."""
    from mempolicy.alloc.fault import do_user_addr_fault
    from mempolicy.core import sched_points

    best = float("inf")
    saved = sched_points.mutated
    for _ in range(3):
        k, t, base = model_setup(pages)
        sched_points.mutated = checker_path or saved
        try:
            t0 = time.process_time()
            for i in range(pages):
                do_user_addr_fault(k, t, base + i * 4096, True)
            best = min(best, time.process_time() - t0)
        finally:
            sched_points.mutated = saved
    return pages / best


def model_bulk_rate(pages: int) -> float:
    from mempolicy.alloc.bulk import touch_range

    best = float("inf")
    for _ in range(3):
        k, t, base = model_setup(pages)
        t0 = time.process_time()
        touch_range(k, t, base, pages, True)
        best = min(best, time.process_time() - t0)
    return pages / best


def run(pages: int = 100_000) -> dict:
    host, how = host_fault_rate(max(pages, 65536))
    model = model_fault_rate(pages)
    slow = model_fault_rate(pages, checker_path=True)
    host2, _ = host_fault_rate(max(pages, 65536))       # again: the host rate drifts on a busy machine
    host = max(host, host2)
    bulk = model_bulk_rate(pages)
    print(f"host kernel:          {host:>14,.0f} faults/s   ({how}, best of two runs)")
    print(f"model, per page:      {model:>14,.0f} faults/s   ({pages} write faults, interleave 0-3)")
    print(f"model, checker path:  {slow:>14,.0f} faults/s   (the same faults with the checker's "
          f"schedule points: {model / slow:.2f}x slower than the fast path)")
    print(f"model, bulk path:     {bulk:>14,.0f} pages/s    (the same touch in one step)")
    print(f"ratio per-page model / host: {model / host:.4f}  (the host is {host / model:.1f}x faster)")
    print(f"ratio bulk model / host:     {bulk / host:.2f}")
    return {"host": host, "model": model, "bulk": bulk, "checker_path": slow}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pages", type=int, default=100_000)
    run(p.parse_args().pages)
    return 0


if __name__ == "__main__":
    sys.exit(main())
