"""Running scenarios under the scheduler: one schedule, exhaustive search, PCT, replay.

Every schedule starts from a freshly built start state (stateless search),
runs the tasks under the scheduler with the chosen mutants switched on,
then asks the oracle: a finding raised during the run (sanitizer, lock
misuse, deadlock), else the refcount invariants, else the leak check after
every task exited.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from .mutate import applied
from .scenarios import CATALOGUE, Scenario
from .sched import Finding, Scheduler
from .dpor import SourceDPOR
from .strategy import PCT, BoundedDFS, Replay

SCHEDULE_VERSION = 1


@dataclass
class Run:
    """One schedule: what was chosen, what happened, what the oracle found."""

    scenario: str
    protocol: str
    mutants: tuple
    lockdep: bool
    choices: list[int]
    finding: Finding | None
    events: list
    tasks: list[str]
    world: object
    steps: int
    preemptions: int
    strategy: str = ""
    names: dict = field(default_factory=dict)
    scenario_text: str | None = None      # a scenario not in the catalogue travels with it
    redundant: bool = False               # abandoned by the reduction (equivalent to another)

    def schedule_json(self) -> dict:
        """The replayable schedule (``mempolicy check --replay``)."""
        extra = {} if self.scenario_text is None else {"scenario_text": self.scenario_text}
        return {**extra,
            "version": SCHEDULE_VERSION,
            "scenario": self.scenario,
            "protocol": self.protocol,
            "mutants": list(self.mutants),
            "lockdep": self.lockdep,
            "schedule": self.choices,
            "tasks": self.tasks,
            "found_by": self.strategy,
            "finding": self.finding.to_json() if self.finding else None,
        }


@dataclass
class Result:
    """A scenario explored: how many schedules, how long, and the first failing one."""

    scenario: str
    protocol: str
    mutants: tuple
    schedules: int = 0
    seconds: float = 0.0
    complete: bool = False
    strategy: str = ""
    failure: Run | None = None
    max_steps: int = 0
    notes: list[str] = field(default_factory=list)
    distinct: int = 0                     # schedules run to the end, none equivalent to another
    seen: list = field(default_factory=list)     # each schedule's choices (when collected)

    @property
    def clean(self) -> bool:
        return self.failure is None


def run_once(scenario: Scenario, strategy, protocol: str = "current", mutants=(),
             lockdep: bool = True) -> Run:
    """Build the start state, run one schedule with ``mutants`` applied, ask the oracle."""
    return _run_once(scenario, strategy, protocol, mutants, lockdep)


def _run_once(scenario: Scenario, strategy, protocol: str, mutants, lockdep: bool,
              lock_order: dict | None = None, verbose: bool = True) -> Run:
    # a quiet run records no allocation and free sites: the replay of a failure has them
    world = scenario.build(protocol, track_sites=verbose)
    sched = Scheduler(strategy, world, lockdep=lockdep, lock_order=lock_order, verbose=verbose)
    strategy.begin()
    for name, ops in world.programs:
        sched.spawn(name, world.runner(name, ops))
    # the mutants are on while the tasks run, not while the correct kernel builds the start
    # state or tears it down (there, without the scheduler, a lost unlock would hang)
    with applied(mutants):
        finding = sched.run()
    if finding is None and not sched.redundant:
        finding = world.check_invariants() or world.teardown()
        if finding is not None:
            finding.step = sched.step
    shipped = CATALOGUE.get(scenario.name)
    text = None if shipped is not None and shipped.text == scenario.text else scenario.text
    return Run(scenario.name, protocol, tuple(mutants), lockdep, sched.choices, finding,
               sched.events, [t.name for t in sched.tasks], world, sched.step, sched.preemptions,
               strategy.describe(), sched.names, text, sched.redundant)


def _with_timeline(scenario: Scenario, quiet: Run, lock_order: dict) -> Run:
    """A failing schedule found by a quiet search (no timeline), run again with its
    timeline and the allocation sites; the quiet run if the replay does not fail alike."""
    strat = Replay(quiet.choices)
    run = _run_once(scenario, strat, quiet.protocol, quiet.mutants, quiet.lockdep,
                    {k: dict(v) for k, v in lock_order.items()}, verbose=True)
    if run.finding is None or run.finding.kind != quiet.finding.kind or strat.diverged:
        return quiet
    run.strategy = quiet.strategy
    return run


REDUCTIONS = ("dpor", "none")


def explore(scenario: Scenario, protocol: str = "current", mutants=(), bound: int | None = 2,
            pct_runs: int = 0, seed: int = 1, depth: int = 3, lockdep: bool = True,
            max_schedules: int | None = None, max_seconds: float | None = None,
            reduction: str = "none", collect: bool = False) -> Result:
    """Exhaustive search within ``bound`` preemptions (None: no bound, DPOR only), then
    ``pct_runs`` PCT schedules; stops at the first failing schedule.

    ``reduction``: "none" runs every schedule (bounded DFS, the old explorer); "dpor" runs
    one schedule per equivalence class (``check/dpor.py``).  ``collect`` keeps every
    schedule's choices in ``Result.seen``.
    """
    return _explore(scenario, protocol, tuple(mutants), bound, pct_runs, seed, depth, lockdep,
                    max_schedules, max_seconds, reduction, collect)


def _explore(scenario, protocol, mutants, bound, pct_runs, seed, depth, lockdep,
             max_schedules, max_seconds=None, reduction: str = "none",
             collect: bool = False) -> Result:
    res = Result(scenario.name, protocol, tuple(mutants))
    lock_order: dict = {}
    t0 = time.perf_counter()
    if reduction == "dpor":
        dfs = SourceDPOR(bound)
        res.strategy = "DPOR" + ("" if bound is None else f", bound {bound}")
    elif reduction == "none":
        if bound is None:
            raise ValueError("an unreduced search needs a preemption bound")
        dfs = BoundedDFS(bound)
        res.strategy = f"DFS, bound {bound}"
    else:
        raise ValueError(f"unknown reduction {reduction!r} (one of {', '.join(REDUCTIONS)})")
    res.complete = True
    while True:
        run = _run_once(scenario, dfs, protocol, mutants, lockdep, lock_order, verbose=False)
        res.schedules += 1
        if reduction == "dpor":
            res.distinct += not run.redundant
        if collect:
            res.seen.append(tuple(run.choices))
        res.max_steps = max(res.max_steps, run.steps)
        if run.finding is not None:
            res.failure = _with_timeline(scenario, run, lock_order)
            res.complete = False
            break
        if not dfs.next_schedule():
            break
        if max_schedules is not None and res.schedules >= max_schedules:
            res.complete = False
            res.notes.append(f"stopped after {max_schedules} schedules")
            break
        if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
            res.complete = False
            res.notes.append(f"stopped after {max_seconds:.1f} s")
            break
    if res.failure is None and pct_runs:
        res.strategy += f" + {pct_runs} PCT d={depth}"
        for i in range(pct_runs):
            if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
                break
            run = _run_once(scenario, PCT(seed + i, depth, res.max_steps), protocol, mutants, lockdep,
                            lock_order, verbose=False)
            res.schedules += 1
            if run.finding is not None:
                res.failure = _with_timeline(scenario, run, lock_order)
                break
    res.seconds = time.perf_counter() - t0
    return res


def load_schedule(path: str) -> dict:
    """Read and validate a schedule file; ValueError with one line ``FILE:LINE: message``."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ValueError(f"{path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}:1: not a schedule file (not UTF-8 text: {e.reason})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: not a schedule file ({e.msg})") from None
    except RecursionError:
        raise ValueError(f"{path}:1: not a schedule file (nested too deeply)") from None
    return check_schedule(data, path, text)


def _line(text: str, key: str) -> int:
    """The line of ``"key"`` in the file (1 if absent)."""
    i = text.find(f'"{key}"')
    return text.count("\n", 0, i) + 1 if i >= 0 else 1


def check_schedule(data, path: str = "<schedule>", text: str = "") -> dict:
    """Validate the shape of a decoded schedule file; ValueError ``FILE:LINE: message``."""
    from .mutate import known

    def bad(key: str, msg: str):
        raise ValueError(f"{path}:{_line(text, key)}: {msg}")

    if not isinstance(data, dict):
        bad("", "not a schedule file (expected a JSON object)")
    version = data.get("version")
    if type(version) is not int or version != SCHEDULE_VERSION:
        bad("version", f"unsupported schedule version {_short(version)}")
    sc = data.get("scenario")
    src = data.get("scenario_text")
    if src is not None:
        from .scenario_file import ScenarioError, parse
        if not isinstance(src, str):
            bad("scenario_text", "'scenario_text' must be the text of a scenario file")
        try:
            parsed = parse(src, "scenario_text")
        except ScenarioError as e:
            bad("scenario_text", f"in the embedded scenario: {e}")
        if parsed.name != sc:
            bad("scenario", f"scenario {_short(sc)} but the embedded text is {parsed.name!r}")
    elif not isinstance(sc, str) or sc not in CATALOGUE:
        bad("scenario", f"unknown scenario {_short(sc)}")
    proto = data.get("protocol")
    if not isinstance(proto, str) or proto not in ("current", "2008"):
        bad("protocol", f"unknown protocol {_short(proto)}")
    muts = data.get("mutants", [])
    if not isinstance(muts, list) or any(not isinstance(m, str) or not known(m) for m in muts):
        bad("mutants", f"unknown mutant in {_short(muts)}")
    if not isinstance(data.get("lockdep", True), bool):
        bad("lockdep", "'lockdep' must be true or false")
    sch = data.get("schedule")
    if not isinstance(sch, list) or not all(type(i) is int and 0 <= i < 1 << 16 for i in sch):
        bad("schedule", "'schedule' must be a list of task indices")
    rec = data.get("finding")
    if rec is not None and not (isinstance(rec, dict) and isinstance(rec.get("kind"), str)
                                and isinstance(rec.get("message"), str)):
        bad("finding", "'finding' must be null or an object with a kind and a message")
    return data


def _short(v) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def replay(data: dict) -> tuple[Run, bool]:
    """Run a recorded schedule; returns the run and whether it followed the recording."""
    strat = Replay(data["schedule"])
    if data.get("scenario_text") is not None:
        from .scenario_file import parse
        scenario = parse(data["scenario_text"], "scenario_text")
    else:
        scenario = CATALOGUE[data["scenario"]]
    run = run_once(scenario, strat, data["protocol"],
                   tuple(data.get("mutants", [])), bool(data.get("lockdep", True)))
    followed = not strat.diverged and strat.k >= len(data["schedule"])
    return run, followed


def run_straight(scenario: Scenario, protocol: str = "current") -> Finding | None:
    """The scenario without the scheduler: each task's program in turn (a forked child's
    right after its fork), then the same end-of-run checks.  The benchmark's baseline."""
    return straight(scenario.build(protocol))


def straight(world, checks: bool = True) -> Finding | None:
    """Run a built world's programs one after the other (no scheduler), then check it
    (``checks``: the invariants and the teardown)."""
    from mempolicy.alloc.fault import FaultSignal, OutOfMemory
    from mempolicy.core.mempolicy import KernelError

    def run(name: str, ops: list) -> None:
        task = world.tasks[name]
        for op in ops:
            if task.exited:
                break
            try:
                world._op(task, None, op)
            except (KernelError, FaultSignal, OutOfMemory):
                pass
            if op[0] == "fork":
                run(op[1], op[2])

    for name, ops in world.programs:
        run(name, ops)
    if not checks:
        return None
    return world.check_invariants() or world.teardown()


DETACHED_TIMEOUT = 10.0     # seconds: a sequential run that takes longer is stuck on a lock


def detached(scenario: Scenario, protocol: str = "current", mutants=(),
             timeout: float = DETACHED_TIMEOUT) -> Finding | None:
    """The scenario run once with no checker attached, then the end-of-run checks.

    The tasks run one after another in program order (``straight``) with
    ``sched_points.sched`` unset and ``sched_points.mutated`` clear even while
    ``mutants`` are applied, so the model takes the fast paths it takes outside the
    checker (``do_anonymous_page``, the bulk path), which no explored schedule runs.
    The policy cache's sanitizer (use after free, double put) and the invariants and
    leak check of ``World`` judge it.  Nothing interleaves, so a task that waits for a
    lock waits forever: after ``timeout`` seconds that is reported as a deadlock (the
    stuck thread is left behind, a daemon)."""
    import threading

    from mempolicy.core import sched_points

    from .sched import classify, raised_in

    world = scenario.build(protocol)

    def bounded(fn, what: str) -> Finding | None:
        out: list = []

        def body() -> None:
            try:
                out.append(fn())
            except Exception as e:      # the sanitizer, a lock misused, a crash of the model
                kind = classify(e)
                out.append(Finding(kind, f"{type(e).__name__}: {e}" if kind == "crash" else str(e),
                                   -1, None, raised_in(e)))

        th = threading.Thread(target=body, name=f"detached-{scenario.name}", daemon=True)
        th.start()
        th.join(timeout)
        if th.is_alive():
            return Finding("deadlock", f"{what} still running after {timeout:.0f} s: a task"
                           " waits for a lock that it or an earlier task kept", -1, None)
        return out[0]

    # the mutants are on while the programs run, not while the correct kernel checks and
    # tears the world down (as in a scheduled run)
    with applied(mutants):
        sched_points.mutated = False
        f = bounded(lambda: straight(world, checks=False), "the programs")
    if f is None:
        f = bounded(lambda: world.check_invariants() or world.teardown(), "the teardown")
    if f is not None:
        f.message = f"detached run of {scenario.name}: {f.message}"
    return f
