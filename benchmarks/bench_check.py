"""Explorer speed: schedules per second under the controlled scheduler, against the same
scenarios run straight through without it (measured in the same run).

    PYTHONPATH=src python3 benchmarks/bench_check.py [--seconds S]

For each scenario: the straight run rate (start state, every task's program
one after the other, the end-of-run checks), the exhaustive search rate
(each schedule rebuilds the start state and runs the tasks in threads that
hand a baton over at every schedule point), and their ratio.  Also the cost
of a schedule point when no checker is active.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import timeit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from mempolicy.check.explore import explore, run_straight  # noqa: E402
from mempolicy.check.scenarios import CATALOGUE  # noqa: E402

SCENARIOS = ["anon-fault-vs-mbind", "shared-fault-vs-mbind", "numa-maps-vs-set-mempolicy",
             "fork-vs-mbind", "shared-mix", "process-life"]


def rate(fn, seconds: float) -> tuple[float, int]:
    n = 0
    t0 = time.perf_counter()
    while True:
        n += fn()
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return n / dt, n


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = p.parse_args()
    print(f"{'scenario':<28} {'straight runs/s':>16} {'schedules/s':>12} {'ratio':>7}")
    total_s = total_n = 0.0
    for name in SCENARIOS:
        sc = CATALOGUE[name]
        base, _ = rate(lambda: (run_straight(sc), 1)[1], args.seconds)
        bound = 2 if sc.small else 1

        def search():
            return explore(sc, bound=bound, max_schedules=2000).schedules
        t0 = time.perf_counter()
        sched_rate, n = rate(search, args.seconds)
        total_s += time.perf_counter() - t0
        total_n += n
        print(f"{name:<28} {base:>16.0f} {sched_rate:>12.0f} {sched_rate / base:>7.2f}")
    print(f"overall: {total_n / total_s:.0f} schedules/s")
    setup = "from mempolicy.core import sched_points as _chk"
    n = 2_000_000
    point = timeit.timeit("_chk.sched is not None", setup=setup, number=n) / n
    empty = timeit.timeit("pass", number=n) / n
    print(f"a schedule point with no checker: {max(point - empty, 0) * 1e9:.0f} ns"
          f" (one global and one attribute load)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
