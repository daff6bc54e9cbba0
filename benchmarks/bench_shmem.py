"""(6) A terabyte placed from every entry point: a memfd under interleave, and
``ModelSystem.touch`` (anonymous and memfd), against the per-page rate of the same run.

    python3 benchmarks/bench_shmem.py [--tib X]

The machine of bench_bulk.py (four 256 GiB nodes with CPUs, four 96 GiB
memory-only ones).  Each case runs in a fresh Python process and writes every
page of a 1 TiB mapping interleaved over 0-7 (the small nodes fill and the
rest falls back):

* ``memfd, touch_range``: a memfd mapped shared (the trace runner's touch),
* ``ModelSystem.touch, anon`` and ``ModelSystem.touch, memfd``: the Python API
  (what ``mempolicy numactl --sim ... memhog`` calls), numastat counters on.

Printed: wall and CPU seconds, peak resident memory added per page, and the
per-page path's rate on the same mapping (65,536 pages with the bulk path
off), measured in the same run: the pages per second the bulk path reaches
against it.  Target: under 2 s per terabyte.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import _common

TARGET_S = 2.0

CHILD = r"""
import json, os, sys, time
sys.path.insert(0, {src!r})
sys.path.insert(0, {here!r})
import _common
import numpy
from mempolicy.alloc.bulk import touch_range
from mempolicy.api import ModelSystem, Policy
from mempolicy.kernel import Kernel
from mempolicy.syscalls import mempolicy as sp, mman
topo = _common.terabyte_topology()
case, pages = {case!r}, {pages}

def setup(pages):
    if case == "memfd, touch_range":
        k, t = Kernel.boot(topo)
        f = mman.memfd_create(k, t, "F", pages)
        base = 0x100000000000
        mman.sys_mmap(k, t, base, pages * 4096, True, f)
        sp.kernel_mbind(k, t, base, pages * 4096, 3, 0xFF, 65, 0)
        return lambda bulk: touch_range(k, t, base, pages, True, bulk=bulk)
    m = ModelSystem(topo)
    if case.endswith("memfd"):
        a = m.mmap(pages * 4096, shared=True, file=m.memfd_create("F", pages * 4096))
    else:
        a = m.mmap(pages * 4096)
    m.mbind(a, pages * 4096, Policy.interleave("0-7"))
    def go(bulk):
        os.environ["MEMPOLICY_BULK"] = "1" if bulk else "0"
        m.touch(a, pages * 4096)
    return go

small = 65536
go = setup(small)
t0 = time.process_time()
go(False)
per_page = small / (time.process_time() - t0)
go = setup(pages)
_common.reset_peak()
before = _common.rss_kib()
w0, c0 = time.perf_counter(), time.process_time()
go(True)
wall, cpu = time.perf_counter() - w0, time.process_time() - c0
peak = _common.rss_kib("VmHWM")
print(json.dumps({{"wall": wall, "cpu": cpu, "bytes_per_page": (peak - before) * 1024 / pages,
                  "per_page_rate": per_page}}))
"""

CASES = ["memfd, touch_range", "ModelSystem.touch, anon", "ModelSystem.touch, memfd"]


def run(tib: float = 1.0) -> list[dict]:
    pages = int(tib * (1 << 28))
    here = os.path.dirname(os.path.abspath(__file__))
    out = []
    print(f"{'case':<28} {'wall s':>7} {'CPU s':>7} {'B/page':>7} {'per-page path':>16} {'bulk/per-page':>14}")
    for case in CASES:
        code = CHILD.format(src=os.path.abspath(_common.SRC), here=here, case=case, pages=pages)
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if r.returncode:
            print(f"{case:<28} failed: {r.stderr.strip().splitlines()[-1] if r.stderr else r.returncode}")
            continue
        res = json.loads(r.stdout)
        res["name"] = case
        rate = pages / res["cpu"]
        print(f"{case:<28} {res['wall']:>7.2f} {res['cpu']:>7.2f} {res['bytes_per_page']:>7.2f} "
              f"{res['per_page_rate']:>10,.0f} pg/s {rate / res['per_page_rate']:>13,.0f}x")
        out.append(res)
    print(f"({pages:,} pages of 4 KiB; target {TARGET_S:g} s; CPU seconds are this process's own, "
          f"wall seconds include whatever else the machine runs)")
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tib", type=float, default=1.0, help="size of the mapping in TiB (default 1)")
    run(p.parse_args().tib)
    return 0


if __name__ == "__main__":
    sys.exit(main())
