"""The mutation score: every generated mutant against the scenarios that reach it.

For each mutant of ``mempolicy.check.mutate`` the scenarios whose straight
run calls the mutated function are explored (small ones first, each with a
time budget) until one fails.  A mutant that no scenario catches is a
*survivor*; a survivor listed in ``equivalent.txt`` (one name and a reason a
line) was reviewed as equivalent: no program can tell it from the kernel.
The score is caught / (generated - equivalent).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from importlib import resources

from .mutate import MODULES, Mutant, generate
from .scenarios import CATALOGUE, Scenario

EQUIVALENT_FILE = "equivalent.txt"


@dataclass
class Outcome:
    """What happened to one mutant."""

    mutant: Mutant
    scenario: str | None       # the one that caught it (or the last tried)
    schedules: int
    seconds: float
    finding: str | None        # kind [in function], None if it survived
    covered: bool
    error: str | None = None   # the checker failed on this mutant

    @property
    def caught(self) -> bool:
        return self.finding is not None


def equivalents(text: str | None = None) -> dict[str, str]:
    """name -> reason from ``equivalent.txt`` (or ``text``)."""
    if text is None:
        text = resources.files("mempolicy.check").joinpath(EQUIVALENT_FILE).read_text(encoding="utf-8")
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, reason = line.partition(" ")
        out[name] = reason.strip()
    return out


def coverage(scenarios: dict[str, Scenario] | None = None, protocol: str = "current") -> dict[tuple, list[str]]:
    """(module, line) -> the scenarios whose programs (not their start state) run that line
    of the model."""
    from .explore import straight

    scenarios = CATALOGUE if scenarios is None else scenarios
    files = {}
    for mod in MODULES:
        m = sys.modules.get("mempolicy." + mod)
        if m is None:
            import importlib
            m = importlib.import_module("mempolicy." + mod)
        files[os.path.abspath(m.__file__)] = mod
    out: dict[tuple, list[str]] = {}
    model = {f for f in files}
    for name, sc in scenarios.items():
        seen = set()

        def local(frame, event, arg):
            if event == "line":
                seen.add((frame.f_code.co_filename, frame.f_lineno))
            return local

        def glob(frame, event, arg):
            if os.path.abspath(frame.f_code.co_filename) in model:
                seen.add((frame.f_code.co_filename, frame.f_lineno))
                return local
            return None
        world = sc.build(protocol)
        sys.settrace(glob)
        try:
            straight(world, checks=False)
        finally:
            sys.settrace(None)
        for fname, line in seen:
            mod = files.get(os.path.abspath(fname))
            if mod is not None:
                out.setdefault((mod, line), []).append(name)
    return out


def _size(sc: Scenario) -> int:
    w = sc.build()
    return sum(_ops(ops) for _, ops in w.programs) * len(w.programs)


def _ops(ops) -> int:
    return sum(1 + (_ops(op[2]) if op[0] == "fork" else 0) for op in ops)


def run_mutant(m: Mutant, where: list[str], budget: float = 10.0, bound_small: int = 2,
               scenarios: dict[str, Scenario] | None = None, reduction: str = "none") -> Outcome:
    """Explore the scenarios ``where`` with ``m`` applied until one fails or time is up.

    The search deepens across scenarios: every scenario with no preemption first, then
    with one, then the small ones with ``bound_small`` (with ``reduction="dpor"``: the
    reduced search with no bound, which is complete but goes deep first), then PCT runs
    on the large ones; most mistakes show in the first round.  After the first round
    each scenario also runs once detached (``explore.detached``: no scheduler, so the
    model's fast paths run), which no schedule can reach."""
    from .explore import detached, explore

    scenarios = CATALOGUE if scenarios is None else scenarios
    t0 = time.perf_counter()
    n = 0
    last = None
    rounds: list[tuple[int | None, int]] = [(b, 0) for b in range(bound_small + 1)] + [(1, 100)]
    if reduction == "dpor":
        rounds = [(0, 0), (1, 0), (None, 0), (1, 100)]
    for k, (bound, pct) in enumerate(rounds):
        if k == 1:                      # after one schedule per scenario: the detached runs
            for sname in where:
                if budget - (time.perf_counter() - t0) <= 0:
                    return Outcome(m, last, n, time.perf_counter() - t0, None, bool(where))
                f = detached(scenarios[sname], "current", (m.name,),
                             timeout=max(1.0, budget - (time.perf_counter() - t0)))
                n += 1
                last = sname
                if f is not None:
                    text = f.kind + (f" in {f.where}" if f.where else "") + " (detached run)"
                    return Outcome(m, sname, n, time.perf_counter() - t0, text, True)
        how = "dpor" if bound is None else "none"
        for sname in where:
            sc = scenarios[sname]
            if ((bound is None or bound > 1) and not sc.small) or (pct and sc.small):
                continue
            left = budget - (time.perf_counter() - t0)
            if left <= 0:
                return Outcome(m, last, n, time.perf_counter() - t0, None, bool(where))
            try:
                r = explore(sc, "current", (m.name,), bound=bound, pct_runs=pct, max_seconds=left,
                            reduction=how)
            except Exception as e:           # the checker itself failed: not a catch
                return Outcome(m, sname, n, time.perf_counter() - t0, None, True,
                               f"{type(e).__name__}: {e}")
            n += r.schedules
            last = sname
            if r.failure is not None:
                f = r.failure.finding
                text = f.kind + (f" in {f.where}" if f.where else "")
                return Outcome(m, sname, n, time.perf_counter() - t0, text, True)
    return Outcome(m, last, n, time.perf_counter() - t0, None, bool(where))


def score(mutants=None, budget: float = 10.0, scenarios: dict[str, Scenario] | None = None,
          progress=None, skip: dict[str, str] | None = None, jobs: int = 1,
          reduction: str = "none") -> list[Outcome]:
    """Run every mutant (default: all generated ones) except those in ``skip``;
    ``progress(outcome)`` after each.  ``jobs`` > 1 spreads the mutants over a local
    process pool."""
    scenarios = CATALOGUE if scenarios is None else scenarios
    cov = coverage(scenarios)
    order = sorted(scenarios, key=lambda s: (not scenarios[s].small, _size(scenarios[s])))
    todo = [m for m in (generate() if mutants is None else mutants) if m.name not in (skip or {})]
    work = [(m, [s for s in order if s in cov.get((m.module, m.line), [])]) for m in todo]
    out = []
    if jobs > 1 and len(work) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        global _POOL_SCENARIOS
        _POOL_SCENARIOS = scenarios
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(jobs, mp_context=ctx) as pool:
            for o in pool.map(_pool_run, [(m.name, where, budget, reduction) for m, where in work]):
                out.append(o)
                if progress is not None:
                    progress(o)
        return out
    for m, where in work:
        o = run_mutant(m, where, budget, scenarios=scenarios, reduction=reduction)
        out.append(o)
        if progress is not None:
            progress(o)
    return out


_POOL_SCENARIOS: dict | None = None


def _pool_run(job) -> Outcome:
    from .mutate import by_name

    name, where, budget, reduction = job
    return run_mutant(by_name()[name], where, budget, scenarios=_POOL_SCENARIOS,
                      reduction=reduction)
