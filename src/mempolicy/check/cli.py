"""``mempolicy check``: the refcount protocol under concurrency.

    mempolicy check                      the scenario catalogue, current protocol
    mempolicy check FILE...              scenario files (format: docs/checker.md)
    mempolicy check --protocol 2008      the same on the seed's 2008 design
    mempolicy check --mutants            every protocol mistake must be caught
    mempolicy check --overhead           atomics and cache-line transfers per fault
    mempolicy check --replay FILE        re-run a saved failing schedule
    mempolicy check --stress             real threads, then every refcount balanced
    mempolicy check --list               scenarios and mutants

Exit status: 0 when everything is clean (for ``--mutants``: every mutant
caught), 1 otherwise, 2 for a usage mistake (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from .mutants import MUTANTS
from .scenarios import CATALOGUE


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        print(f"mempolicy check: {message}", file=sys.stderr)
        raise SystemExit(2)


class UsageError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="mempolicy check", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog="\n".join(__doc__.split("\n\n")[1:2]))
    p.add_argument("files", nargs="*", metavar="FILE", help="scenario files to explore (default: the catalogue)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--mutants", action="store_true", help="run every mutant; exit 0 only if all are caught")
    mode.add_argument("--overhead", action="store_true", help="print the cost table")
    mode.add_argument("--replay", metavar="FILE", help="replay a schedule file")
    mode.add_argument("--stress", action="store_true", help="real threads driving the model")
    mode.add_argument("--list", action="store_true", help="list scenarios and mutants")
    p.add_argument("--protocol", choices=("current", "2008"), default="current")
    p.add_argument("--scenario", action="append", metavar="NAME", help="only this scenario (repeatable)")
    p.add_argument("--mutant", action="append", metavar="NAME", help="only this mutant (repeatable)")
    p.add_argument("--bound", type=int, metavar="N",
                   help="preemption bound (default: none for small scenarios under DPOR,"
                        " 2 without reduction, 1 for large ones)")
    p.add_argument("--reduction", choices=("dpor", "none"), default="dpor",
                   help="dpor: one schedule per class of equivalent interleavings (default);"
                        " none: every schedule within the bound (the old explorer)")
    p.add_argument("--pct", type=int, metavar="N",
                   help="PCT schedules per scenario after the exhaustive search (default: 0 small, 300 large)")
    p.add_argument("--seed", type=int, default=1, help="first PCT / stress seed (default 1)")
    p.add_argument("--no-lockdep", action="store_true", help="do not check the kernel's lock assertions")
    p.add_argument("--save", metavar="DIR", help="write failing schedules to DIR (default: none are written)")
    p.add_argument("--jobs", "-j", type=int, metavar="N",
                   help="worker processes for --mutants and for large scenarios (default: one per CPU)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="explore large scenarios on this Dask scheduler (needs 'distributed')")
    p.add_argument("--budget", type=float, default=10.0, metavar="S",
                   help="--mutants: seconds of search per generated mutant (default 10)")
    p.add_argument("--verbose", "-v", action="store_true", help="print every counterexample's timeline")
    p.add_argument("--pages", type=int, default=64, metavar="N", help="--overhead: pages per task")
    p.add_argument("--processes", type=int, default=3, metavar="N", help="--stress: processes")
    p.add_argument("--threads", type=int, default=4, metavar="N", help="--stress: threads per process")
    p.add_argument("--ops", type=int, default=200_000, metavar="N", help="--stress: operations in all")
    return p


def _nonneg(name: str, v) -> None:
    if v is not None and v < 0:
        raise UsageError(f"{name} must not be negative")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    try:
        for name in ("bound", "pct", "jobs"):
            _nonneg("--" + name, getattr(args, name))
        if args.pages < 1 or args.processes < 1 or args.threads < 1 or args.ops < 1:
            raise UsageError("--pages, --processes, --threads and --ops must be at least 1")
        from .mutate import known
        for m in args.mutant or []:
            if not known(m):
                raise UsageError(f"unknown mutant {m!r} (see --list)")
        args.catalogue = dict(CATALOGUE)
        if args.files:
            from .scenario_file import ScenarioError, load
            args.catalogue = {}
            for path in args.files:
                try:
                    sc = load(path)
                except ScenarioError as e:
                    raise UsageError(str(e)) from None
                args.catalogue[sc.name] = sc
        for s in args.scenario or []:
            if s not in args.catalogue:
                raise UsageError(f"unknown scenario {s!r} (see --list)")
        if args.list:
            return _list()
        if args.overhead:
            return _overhead(args)
        if args.replay:
            return _replay(args)
        if args.stress:
            return _stress(args)     # --mutant NAME: stress a mistake instead of the kernel
        if args.mutants or args.mutant:
            return _mutants(args)
        return _catalogue(args)
    except UsageError as e:
        print(f"mempolicy check: {e}", file=sys.stderr)
        return 2


# ---------------------------------------------------------------------------

def _list() -> int:
    print("scenarios:")
    for s in CATALOGUE.values():
        first = " ".join(s.doc.split())
        print(f"  {s.name:<28} {'small' if s.small else 'large'}  {first[:90]}")
    print("mutants:")
    for m in MUTANTS.values():
        print(f"  {m.name:<34} {m.rule[:90]}")
    from .mutate import generate
    print("generated mutants (each usable with --mutant NAME):")
    for g in generate():
        print(f"  {g.name:<78} {g.describe()}")
    return 0


def _save(run, directory: str, stem: str) -> str:
    """Write a failing schedule to DIRECTORY/STEM.json atomically (temporary file, rename)."""
    import tempfile

    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, stem + ".json")
    data = run.schedule_json()
    text = json.dumps({**data, "schedule": "@"}, indent=1).replace('"@"', json.dumps(data["schedule"]))
    fd, tmp = tempfile.mkstemp(prefix="." + stem + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def _search(args, small: bool) -> tuple[int | None, int]:
    """(preemption bound, PCT runs) for a scenario: the reduced search of a small one has
    no bound; without reduction, or on a large one, the bound is 2 or 1."""
    if args.bound is not None:
        bound: int | None = args.bound
    elif small and args.reduction == "dpor":
        bound = None
    else:
        bound = 2 if small else 1
    pct = args.pct if args.pct is not None else (0 if small else 300)
    return bound, pct


def _catalogue(args) -> int:
    from .explore import detached, explore
    from .timeline import report

    names = args.scenario or list(args.catalogue)
    print(f"mempolicy check: protocol {args.protocol}, {len(names)} scenarios"
          f"{', lockdep off' if args.no_lockdep else ''}")
    print(f"{'scenario':<28} {'tasks':>5} {'schedules':>9}  {'search':<26} {'time':>7}  result")
    total = distinct = reduced = 0
    secs = rsecs = 0.0
    failures = []
    dfailures = []
    for name in names:
        sc = args.catalogue[name]
        bound, pct = _search(args, sc.small)
        jobs = args.jobs if args.jobs else (os.cpu_count() or 1)
        if not sc.small and (args.scheduler or jobs > 1):
            r = _distributed(args, sc, bound, pct, jobs)
        else:
            r = explore(sc, args.protocol, (), bound=bound, pct_runs=pct, seed=args.seed,
                        lockdep=not args.no_lockdep,
                        reduction=args.reduction if bound is None or sc.small else "none")
        dfail = None
        if r.failure is None:           # then once with no checker attached: the fast paths
            t0 = time.perf_counter()
            dfail = detached(sc, args.protocol)
            r.seconds += time.perf_counter() - t0
        total += r.schedules
        secs += r.seconds
        if r.strategy.startswith("DPOR"):
            reduced += r.schedules
            distinct += r.distinct
            rsecs += r.seconds
        ntasks = len(r.failure.tasks) if r.failure else len(sc.build(args.protocol).programs)
        result = "clean" + ("" if r.complete or pct else " (search cut short)")
        if r.failure is not None:
            result = f"FAIL {r.failure.finding.kind}" + (f" in {r.failure.finding.where}"
                                                          if r.failure.finding.where else "")
            failures.append(r)
        elif dfail is not None:
            result = f"FAIL {dfail.kind}" + (f" in {dfail.where}" if dfail.where else "") + " (detached run)"
            dfailures.append((name, dfail))
        print(f"{name:<28} {ntasks:>5} {r.schedules:>9}  {r.strategy:<26} {r.seconds:>6.2f}s  {result}",
              flush=True)
    rate = total / secs if secs else 0.0
    print("each clean scenario also ran once detached (tasks in turn, no checker attached)")
    print(f"explored {total} schedules in {secs:.2f} s: {rate:.0f} schedules/s")
    if reduced:
        print(f"reduced searches (DPOR): {reduced} schedules in {rsecs:.2f} s, {distinct} distinct"
              f" interleavings (no two equivalent): {distinct / rsecs if rsecs else 0.0:.0f}"
              f" distinct/s")
    for r in failures:
        stem = r.scenario + ("" if args.protocol == "current" else f"-{args.protocol}")
        print()
        print(report(r.failure, title=f"== counterexample: {r.scenario} (protocol {args.protocol}) =="))
        if args.save:
            path = _save(r.failure, args.save, stem)
            print(f"schedule saved to {path}; replay: mempolicy check --replay {path}")
        else:
            print("(not saved: --save DIR writes the schedule for --replay)")
    for name, f in dfailures:
        print()
        print(f"== detached run: {name} (protocol {args.protocol}) ==")
        print(f"finding: {f}")
        print("the tasks ran one after another with no checker attached (nothing to replay:"
              f" mempolicy check --scenario {name} repeats it)")
    if failures or dfailures:
        print(f"\n{len(failures) + len(dfailures)} of {len(names)} scenarios failed")
        return 1
    print("all clean")
    return 0


def _distributed(args, sc, bound: int, pct: int, jobs: int):
    """A large scenario: the bounded search split by prefix over processes (or Dask), then
    the PCT runs here."""
    from .distribute import explore_distributed
    from .explore import explore

    try:
        r = explore_distributed(sc, args.protocol, (), bound=bound, jobs=jobs,
                                scheduler=args.scheduler, lockdep=not args.no_lockdep)
    except RuntimeError as e:
        raise UsageError(str(e)) from None
    except OSError as e:                  # the Dask scheduler cannot be reached
        raise UsageError(f"--scheduler {args.scheduler}: {e}") from None
    if r.failure is None and pct:
        p = explore(sc, args.protocol, (), bound=0, pct_runs=pct, seed=args.seed,
                    lockdep=not args.no_lockdep)
        r.schedules += p.schedules
        r.seconds += p.seconds
        r.failure = p.failure
        r.strategy = f"DFS b{bound} x{jobs} + {pct} PCT"
    return r


def _mutants(args) -> int:
    named = [n for n in args.mutant or [] if n in MUTANTS]
    generated = [n for n in args.mutant or [] if n not in MUTANTS]
    if args.mutants and not args.mutant:
        named = list(MUTANTS)
        generated = None                    # all of them
    ok = True
    if named:
        ok = _named_mutants(args, named) and ok
    if generated is None or generated:
        if named:
            print()
        ok = _generated_mutants(args, generated) and ok
    return 0 if ok else 1


def _generated_mutants(args, names) -> bool:
    from .mutate import by_name, generate
    from .score import equivalents, score

    table = by_name()
    mutants = generate() if names is None else [table[n] for n in names]
    equiv = equivalents() if names is None else {}
    jobs = args.jobs if args.jobs else (os.cpu_count() or 1)
    print(f"generated mutants: {len(mutants)} from the model's protocol sites"
          f" ({len(equiv)} listed as equivalent in mempolicy/check/equivalent.txt, not run);"
          f" {jobs} worker{'s' if jobs != 1 else ''}")
    print(f"{'result':<9} {'mutant':<78} {'scenario':<26} {'sched':>6} {'time':>6}  finding")
    t0 = time.perf_counter()

    def show(o) -> None:
        res = "caught" if o.caught else ("SURVIVED" if o.covered else "UNREACHED")
        if o.caught and not args.verbose:
            return
        print(f"{res:<9} {o.mutant.name:<78} {o.scenario or '-':<26} {o.schedules:>6}"
              f" {o.seconds:>5.1f}s  {o.finding or o.error or ''}", flush=True)

    outcomes = score(mutants, budget=args.budget, progress=show, skip=equiv, jobs=jobs,
                     reduction=args.reduction)
    caught = sum(o.caught for o in outcomes)
    slow = [o for o in outcomes if o.caught and o.seconds > args.budget]
    alive = [o for o in outcomes if not o.caught]
    total = len(outcomes)
    print(f"mutation score: {caught}/{total} caught ({100.0 * caught / total if total else 100:.1f}%),"
          f" {len(equiv)} equivalent, {len(alive)} surviving; {time.perf_counter() - t0:.1f} s"
          + ("" if args.verbose else " (-v lists the caught ones too)"))
    for o in slow:
        print(f"slow: {o.mutant.name} took {o.seconds:.1f} s")
    return not alive


def _named_mutants(args, names) -> bool:
    from .explore import explore
    from .timeline import report

    print(f"mempolicy check --mutants: {len(names)} protocol mistake{'s' if len(names) != 1 else ''}"
          f"{', lockdep off' if args.no_lockdep else ''}")
    print(f"{'mutant':<34} {'scenario':<28} {'schedules':>9} {'preempt':>7} {'time':>7}  finding")
    caught = 0
    for name in names:
        m = MUTANTS[name]
        t0 = time.perf_counter()
        found = None
        n = 0
        last = m.scenarios[0]
        for sname in m.scenarios:
            sc = CATALOGUE[sname]
            bound, pct = _search(args, sc.small)
            r = explore(sc, m.protocol, (name,) if m.parts else (), bound=bound, pct_runs=max(pct, 200),
                        seed=args.seed, lockdep=not args.no_lockdep,
                        reduction=args.reduction if bound is None or sc.small else "none")
            n += r.schedules
            last = sname
            if r.failure is not None:
                found = r.failure
                break
        dt = time.perf_counter() - t0
        if found is not None:
            caught += 1
            f = found.finding
            text = f"{f.kind}" + (f" in {f.where}" if f.where else "")
        else:
            text = "NOT CAUGHT"
        pre = str(found.preemptions) if found is not None else "-"
        print(f"{name:<34} {last:<28} {n:>9} {pre:>7} {dt:>6.2f}s  {text}", flush=True)
        if found is not None and args.save:
            _save(found, args.save, f"{last}-{name}")
        if found is not None and args.verbose:
            print(report(found, title=f"== {name}: {m.rule} =="))
            print()
    if caught and not args.save:
        print("(--save DIR keeps each counterexample's schedule for --replay; -v prints its timeline)")
    print(f"mutants caught: {caught}/{len(names)}")
    return caught == len(names)


def _replay(args) -> int:
    from .explore import load_schedule, replay
    from .timeline import report

    try:
        data = load_schedule(args.replay)
    except ValueError as e:
        raise UsageError(str(e)) from None
    run, followed = replay(data)
    muts = ", ".join(data.get("mutants", [])) or "none"
    print(report(run, title=f"== replay of {args.replay}: scenario {data['scenario']},"
                            f" protocol {data['protocol']}, mutants {muts} =="))
    rec = data.get("finding")
    if not followed:
        print("note: the run left the recorded schedule (the model changed since it was saved)")
    if run.finding is None:
        print("no finding: the schedule runs clean" + (" (the recording had one)" if rec else ""))
        return 0
    if rec:
        same = rec.get("kind") == run.finding.kind and rec.get("message") == run.finding.message
        print("reproduced the recorded finding" if same else
              f"a different finding than recorded ({rec.get('kind')}: {rec.get('message')})")
    return 1


def _overhead(args) -> int:
    from .cost import format_table, overhead_table

    print("the seed's cost: atomics and refcount cache-line transfers per page fault")
    print(format_table(overhead_table(args.pages)))
    return 0


def _stress(args) -> int:
    from .stress import stress

    from .mutate import applied
    n = args.processes * args.threads
    from .mutate import expand

    switched = expand(args.mutant or [])
    protocol = args.protocol
    if any(m in MUTANTS and MUTANTS[m].protocol == "2008" for m in args.mutant or []):
        protocol = "2008"
    print(f"mempolicy check --stress: {args.processes} processes x {args.threads} threads"
          f" ({n} tasks), {args.ops} operations, seed {args.seed}, protocol {protocol}"
          + (f", mutants {', '.join(switched)}" if switched else ""), flush=True)
    with applied(switched):
        r = stress(args.processes, args.threads, args.ops, args.seed, protocol=protocol)
    print(f"ran {r.ops} operations ({r.errors} returned an error, {r.forks} forks) in"
          f" {r.seconds:.2f} s: {r.ops / r.seconds if r.seconds else 0:.0f} ops/s")
    print(f"policies allocated: {r.allocated}; in the cache at start {r.start_active},"
          f" after teardown {r.end_active}; free pages back to boot: {'yes' if r.pages_balanced else 'no'}")
    for f in r.failures:
        print(f"FAIL {f}")
    print("every refcount balanced" if r.ok else "NOT balanced")
    return 0 if r.ok else 1
