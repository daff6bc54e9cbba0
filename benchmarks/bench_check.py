"""Explorer speed: schedules per second under the controlled scheduler, against the same
scenarios run straight through without it (measured in the same run).

    PYTHONPATH=src python3 benchmarks/bench_check.py [--seconds S]

For each scenario: the straight run rate (start state, every task's program
one after the other, the end-of-run checks) and the exhaustive search rate
with each task carrier: OS threads handing a semaphore baton over (the old
engine, the baseline) and greenlets (a stack switch in one thread); and the
ratio of the two, measured in the same run.  Also the cost of a schedule
point when no checker is active.
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
    from mempolicy.check import sched

    carriers = ["thread"]
    try:
        import greenlet  # noqa: F401
        carriers.append("greenlet")
    except ImportError:
        print("greenlet is not installed (pip install 'mempolicy[check]'): thread carrier only")
    head = "".join(f" {c + ' sched/s':>16}" for c in carriers)
    print(f"{'scenario':<28} {'straight runs/s':>16}{head} {'greenlet/thread':>16}")
    totals = {c: [0.0, 0] for c in carriers}
    for name in SCENARIOS:
        sc = CATALOGUE[name]
        base, _ = rate(lambda: (run_straight(sc), 1)[1], args.seconds)
        bound = 2 if sc.small else 1
        rates = {}
        for c in carriers:               # the old engine (threads) is the baseline, same run
            sched._DEFAULT = c

            def search():
                return explore(sc, bound=bound, max_schedules=2000).schedules
            t0 = time.perf_counter()
            rates[c], n = rate(search, args.seconds)
            totals[c][0] += time.perf_counter() - t0
            totals[c][1] += n
        sched._DEFAULT = None
        cols = "".join(f" {rates[c]:>16.0f}" for c in carriers)
        ratio = f"{rates['greenlet'] / rates['thread']:>16.2f}" if "greenlet" in rates else ""
        print(f"{name:<28} {base:>16.0f}{cols} {ratio}")
    for c in carriers:
        print(f"overall, {c} carrier: {totals[c][1] / totals[c][0]:.0f} schedules/s")
    setup = "from mempolicy.core import sched_points as _chk"
    n = 2_000_000
    point = timeit.timeit("_chk.sched is not None", setup=setup, number=n) / n
    empty = timeit.timeit("pass", number=n) / n
    print(f"a schedule point with no checker: {max(point - empty, 0) * 1e9:.0f} ns"
          f" (one global and one attribute load)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
