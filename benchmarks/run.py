"""The scale benchmarks, one command:

    python3 benchmarks/run.py

1. the per-page fault path against the host kernel's fault rate (bench_fault.py)
2. bulk placement of 1 TiB over 8 nodes: seconds and bytes per page (bench_bulk.py)
3. lookups at 100,000 ranges or VMAs against 100 (bench_lookup.py)
4. numa_maps of 65,530 VMAs (bench_numa_maps.py)
5. campaign throughput, model and kernel side, 2 Dask workers against 1 (bench_campaign.py)
6. migrate_pages and move_pages on 65,536 pages against the old algorithms (bench_migrate.py)
7. a terabyte from every entry point: memfd, ModelSystem.touch (bench_shmem.py)

Each prints its figures and a ratio measured in the same run; a summary
follows with the machine they came from.  Needs NumPy (the bulk path) and a
C compiler for the host's fault rate (else a Python stand-in is used).
benchmarks/bench_check.py (the concurrency checker's speed) is separate.
"""

from __future__ import annotations

import os
import platform
import sys
import time

import _common  # noqa: F401

import bench_bulk
import bench_campaign
import bench_fault
import bench_lookup
import bench_migrate
import bench_numa_maps
import bench_shmem


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / (1 << 20):.0f} GiB"
    except OSError:
        pass
    import numpy
    return (f"{cpu}, {os.cpu_count()} CPUs, {mem} RAM, Linux {platform.release()}, "
            f"Python {platform.python_version()}, NumPy {numpy.__version__}")


def main() -> int:
    t0 = time.perf_counter()
    print("== 1. per-page fault path against the host kernel ==")
    f = bench_fault.run()
    print("\n== 2. bulk placement of 1 TiB over 8 nodes ==")
    b = bench_bulk.run()
    print("\n== 3. lookup cost at 100,000 against 100 ==")
    lk = bench_lookup.run()
    print("\n== 4. numa_maps of 65,530 VMAs ==")
    nm = bench_numa_maps.run()
    print("\n== 5. campaign throughput ==")
    cp = bench_campaign.run()
    print("\n== 6. migrate_pages and move_pages on 65,536 pages ==")
    mg = bench_migrate.run()
    print("\n== 7. a terabyte from every entry point ==")
    sh = bench_shmem.run()
    print("\n== summary ==")
    print(f"machine: {machine()}")
    print(f"1. per-page faults: model {f['model']:,.0f}/s, host kernel {f['host']:,.0f}/s,"
          f" ratio {f['model'] / f['host']:.3f} (bulk path {f['bulk'] / f['host']:.0f}x the host;"
          f" the checker's path {f['checker_path']:,.0f}/s)")
    for r in b:
        print(f"2. 1 TiB, {r['name']}: {r['seconds']:.2f} s, {r['bytes_per_page']:.2f} bytes/page"
              f" (targets 2 s, 3 bytes/page)")
    print(f"3. lookups at 100,000 / at 100: shared policy {lk['shared']:.2f}x,"
          f" VMAs {lk['vma65530']:.2f}x at 65,530 and {lk['vma100000']:.2f}x at 100,000 (target < 3x)")
    print(f"4. numa_maps of 65,530 VMAs: {nm['numa_maps_65530']:.3f} s (target < 1 s)")
    print(f"5. campaign: model {cp['model']:.1f} traces/s/core"
          + (f", kernel {cp['kernel']:.2f} traces/s/core (model {cp['model'] / cp['kernel']:.0f}x)"
             if cp["kernel"] else ", kernel side skipped")
          + (f", 2 workers against 1: {cp['scale'][1] / cp['scale'][2]:.2f}x" if cp["scale"] else ""))
    for name, r in mg.items():
        print(f"6. {name}, 65,536 pages: {r['seconds']:.2f} CPU s, {r['rate'] / r['old_rate']:,.0f}x "
              f"the old algorithm's rate (target: well under 1 s)")
    for r in sh:
        print(f"7. 1 TiB, {r['name']}: {r['cpu']:.2f} CPU s ({r['wall']:.2f} s wall), "
              f"per-page path {r['per_page_rate']:,.0f} pages/s (target 2 s)")
    print(f"(all benchmarks: {time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
