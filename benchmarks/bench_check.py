"""Explorer speed: the old explorer (every schedule within the preemption bound) against the
reduced one (DPOR, one schedule per class of equivalent interleavings), measured in the
same run, on the same scenarios, against the scenarios run straight through.

    PYTHONPATH=src python3 benchmarks/bench_check.py [--seconds S] [--scenario NAME ...]

For each scenario, three measurements:

* straight runs/s: the start state, every task's program one after the other,
  the end-of-run checks, with no scheduler (the floor of a schedule's cost);
* the old explorer: ``explore(reduction="none")``, bounded DFS within 2
  preemptions (1 on a large scenario), as ``mempolicy check`` ran before;
* the reduced search: ``explore(reduction="dpor")`` with no preemption bound on a
  small scenario (bound 1 on a large one), as ``mempolicy check`` runs now.

Each search runs to its end or for at most ``--seconds``.  Printed: schedules per
second of each, distinct (non-equivalent) interleavings per second of the reduced
one, the time each search needed to finish, and the ratios new/old.  A search
that did not finish is marked ``*``.  Also the cost of a schedule point when no
checker is active.
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
             "fork-vs-mbind", "fork-policies", "mbind-flags-vs-fault", "vma-split-merge-vs-fault",
             "shared-mix"]


def straight_rate(sc, seconds: float) -> float:
    n = 0
    t0 = time.perf_counter()
    while True:
        run_straight(sc)
        n += 1
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return n / dt


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=60.0, help="longest time per search")
    p.add_argument("--straight", type=float, default=1.0, help="time for the straight-run rate")
    p.add_argument("--scenario", action="append", help="only these scenarios")
    args = p.parse_args()
    names = args.scenario or SCENARIOS
    print(f"{'scenario':<28} {'straight/s':>10} | {'old: sched':>10} {'time':>8} {'sched/s':>8} |"
          f" {'DPOR: sched':>11} {'time':>8} {'sched/s':>8} {'distinct/s':>10} |"
          f" {'rate x':>6} {'time x':>7}")
    tot = {"old": [0, 0.0], "new": [0, 0.0, 0]}
    for name in names:
        sc = CATALOGUE[name]
        base = straight_rate(sc, args.straight)
        old = explore(sc, bound=2 if sc.small else 1, reduction="none", max_seconds=args.seconds)
        new = explore(sc, bound=None if sc.small else 1, reduction="dpor", max_seconds=args.seconds)
        r_old = old.schedules / old.seconds
        r_new = new.schedules / new.seconds
        tot["old"][0] += old.schedules
        tot["old"][1] += old.seconds
        tot["new"][0] += new.schedules
        tot["new"][1] += new.seconds
        tot["new"][2] += new.distinct
        mark_o = " " if old.complete else "*"
        mark_n = " " if new.complete else "*"
        print(f"{name:<28} {base:>10.0f} | {old.schedules:>10} {old.seconds:>7.2f}{mark_o} {r_old:>8.0f} |"
              f" {new.schedules:>11} {new.seconds:>7.2f}{mark_n} {r_new:>8.0f}"
              f" {new.distinct / new.seconds:>10.0f} | {r_new / r_old:>6.2f}"
              f" {old.seconds / new.seconds:>7.2f}", flush=True)
    o, n = tot["old"], tot["new"]
    print(f"overall, old explorer (bound 2/1, every schedule): {o[0]} schedules in {o[1]:.2f} s,"
          f" {o[0] / o[1]:.0f} schedules/s")
    print(f"overall, DPOR (no bound on the small ones): {n[0]} schedules in {n[1]:.2f} s,"
          f" {n[0] / n[1]:.0f} schedules/s, {n[2] / n[1]:.0f} distinct interleavings/s")
    print(f"ratio DPOR/old: {(n[0] / n[1]) / (o[0] / o[1]):.2f} in schedules/s,"
          f" {o[1] / n[1]:.2f} in time to finish (the DPOR search has no preemption bound)")
    setup = "from mempolicy.core import sched_points as _chk"
    k = 2_000_000
    point = timeit.timeit("_chk.sched is not None", setup=setup, number=k) / k
    empty = timeit.timeit("pass", number=k) / k
    print(f"a schedule point with no checker: {max(point - empty, 0) * 1e9:.0f} ns"
          f" (one global and one attribute load)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
