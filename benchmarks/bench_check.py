"""Explorer speed: ``mempolicy check``'s search before and after the speed work of issue 12,
measured in the same run, in CPU time.

    PYTHONPATH=src python3 benchmarks/bench_check.py [--before REV] [--rounds N]
                                                     [--seconds S] [--scenario NAME ...]

``--before`` names the git revision whose ``src/`` is the old checker (default: the tree
before the speed work; ``git archive`` extracts it into a temporary directory).  Each
round runs the old tree and then this one, each in a fresh Python process, on the same
scenarios searched as ``mempolicy check`` searches them (DPOR with no bound on a small
scenario; bounded DFS within 1 preemption plus 300 PCT schedules on a large one, in one
process).  The figures are CPU time (``time.process_time`` of the process, which covers
its carrier threads), the best round of each side, because the machine this is run on is
shared and wall time there says more about the load than about the checker.

Printed per scenario: schedules, schedules per CPU second and distinct (non-equivalent)
interleavings per CPU second, before and after, and the ratio; then the totals; then the
floor a schedule cannot go below, the scenario run straight through with no scheduler
(``run_straight``: building the start state, each program in turn, the end-of-run
checks and the teardown); then the cost of a schedule point with no checker attached.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import timeit

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "..", "src")
sys.path.insert(0, SRC)

from mempolicy.check.explore import run_straight  # noqa: E402
from mempolicy.check.scenarios import CATALOGUE  # noqa: E402

BEFORE = "a9ebb35"          # the last commit before the speed work of issue 12

# run in a child process against one tree's src/ (old or new: only APIs both have)
CHILD = r"""
import json, sys, time
from mempolicy.check.explore import explore
from mempolicy.check.scenarios import CATALOGUE
names, seconds = json.loads(sys.argv[1])
out = {}
for name in names:
    sc = CATALOGUE[name]
    t = time.process_time()
    if sc.small:
        r = explore(sc, bound=None, reduction="dpor", max_seconds=seconds)
    else:
        r = explore(sc, bound=1, pct_runs=300, reduction="none", max_seconds=seconds)
    cpu = time.process_time() - t
    out[name] = {"schedules": r.schedules, "distinct": r.distinct, "cpu": cpu,
                 "complete": r.complete, "clean": r.failure is None,
                 "dpor": r.strategy.startswith("DPOR")}
print(json.dumps(out))
"""


def measure(src: str, names: list[str], seconds: float) -> dict:
    """One tree's search of ``names``, in a child process (CPU seconds per scenario)."""
    env = dict(os.environ, PYTHONPATH=os.path.abspath(src))
    env.pop("MEMPOLICY_CHECK_CARRIER", None)          # each tree with its own default
    p = subprocess.run([sys.executable, "-c", CHILD, json.dumps([names, seconds])], env=env,
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"bench_check: the search under {src} failed:\n{p.stderr.strip()}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def old_tree(rev: str, into: str) -> str:
    """``src/`` of ``rev``, extracted with git archive; its path."""
    root = os.path.join(HERE, "..")
    try:
        arch = subprocess.run(["git", "-C", root, "archive", rev, "src"], capture_output=True,
                              check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        err = getattr(e, "stderr", b"") or b""
        raise SystemExit(f"bench_check: cannot extract {rev} with git archive:"
                         f" {err.decode(errors='replace').strip() or e}") from None
    subprocess.run(["tar", "-x", "-C", into], input=arch, check=True)
    return os.path.join(into, "src")


def best(rounds: list[dict]) -> dict:
    """Per scenario, the round with the least CPU time."""
    return {n: min((r[n] for r in rounds), key=lambda x: x["cpu"]) for n in rounds[0]}


def straight_rate(name: str, seconds: float) -> float:
    sc = CATALOGUE[name]
    n = 0
    t0 = time.process_time()
    while True:
        run_straight(sc)
        n += 1
        dt = time.process_time() - t0
        if dt >= seconds:
            return n / dt


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--before", default=BEFORE, help="git revision of the old checker")
    p.add_argument("--rounds", type=int, default=2, help="runs of each tree (the best counts)")
    p.add_argument("--seconds", type=float, default=60.0, help="longest search per scenario")
    p.add_argument("--straight", type=float, default=0.5, help="CPU time per straight-run rate")
    p.add_argument("--scenario", action="append", help="only these scenarios")
    args = p.parse_args()
    names = args.scenario or sorted(CATALOGUE)
    bad = [n for n in names if n not in CATALOGUE]
    if bad:
        print(f"bench_check: unknown scenario {bad[0]!r}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-check-") as tmp:
        old_src = old_tree(args.before, tmp)
        olds, news = [], []
        for _ in range(max(1, args.rounds)):
            olds.append(measure(old_src, names, args.seconds))
            news.append(measure(SRC, names, args.seconds))
    old, new = best(olds), best(news)
    print(f"CPU time (time.process_time of each search's process, carrier threads included),"
          f" best of {max(1, args.rounds)} rounds; before = {args.before}, after = this tree")
    print(f"{'scenario':<28} {'search':<6} {'sched':>6} | {'before/s':>8} {'dist/s':>7} |"
          f" {'after/s':>8} {'dist/s':>7} | {'x':>5} | {'straight/s':>10}")
    tot = {"old": [0, 0, 0.0, 0, 0.0], "new": [0, 0, 0.0, 0, 0.0]}
    for n in names:
        o, w = old[n], new[n]
        for key, r in (("old", o), ("new", w)):
            t = tot[key]
            t[0] += r["schedules"]
            t[2] += r["cpu"]
            if r["dpor"]:
                t[1] += r["distinct"]
                t[3] += r["schedules"]
                t[4] += r["cpu"]
        if o["schedules"] != w["schedules"] or o["clean"] != w["clean"]:
            print(f"  {n}: the trees disagree: {o} against {w}")
        ro, rn = o["schedules"] / o["cpu"], w["schedules"] / w["cpu"]
        do = o["distinct"] / o["cpu"] if o["dpor"] else 0
        dn = w["distinct"] / w["cpu"] if w["dpor"] else 0
        mark = "" if w["complete"] else "*"
        print(f"{n:<28} {'DPOR' if w['dpor'] else 'DFS+PCT':<6} {w['schedules']:>5}{mark:1} |"
              f" {ro:>8.0f} {do:>7.0f} | {rn:>8.0f} {dn:>7.0f} | {rn / ro:>5.2f} |"
              f" {straight_rate(n, args.straight):>10.0f}", flush=True)
    o, w = tot["old"], tot["new"]
    print(f"overall before: {o[0]} schedules in {o[2]:.2f} CPU s, {o[0] / o[2]:.0f} schedules/s;"
          f" DPOR: {o[1]} distinct in {o[4]:.2f} s, {o[1] / o[4]:.0f} distinct/s")
    print(f"overall after:  {w[0]} schedules in {w[2]:.2f} CPU s, {w[0] / w[2]:.0f} schedules/s;"
          f" DPOR: {w[1]} distinct in {w[4]:.2f} s, {w[1] / w[4]:.0f} distinct/s")
    print(f"ratio after/before: {(w[0] / w[2]) / (o[0] / o[2]):.2f} in schedules/s,"
          f" {(w[1] / w[4]) / (o[1] / o[4]):.2f} in distinct interleavings/s")
    setup = "from mempolicy.core import sched_points as _chk"
    k = 2_000_000
    point = timeit.timeit("_chk.sched is not None", setup=setup, number=k) / k
    empty = timeit.timeit("pass", number=k) / k
    print(f"a schedule point with no checker: {max(point - empty, 0) * 1e9:.0f} ns"
          f" (one global and one attribute load)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
