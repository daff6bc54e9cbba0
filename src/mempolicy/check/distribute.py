"""One scenario's exhaustive search split by schedule prefix over worker processes.

The search tree is cut at its first ``depth`` choice points: every distinct
prefix of choices there (enumerated by running one schedule per prefix) is a
job, and a job explores every schedule below its prefix within the
preemption bound (``BoundedDFS(prefix=...)``).  Jobs run on a local process
pool by default, or on a Dask cluster (``scheduler="tcp://HOST:PORT"``;
needs the ``distributed`` package).  Workers return counts and, for a
failure, the schedule; the caller replays it to get the full run.
"""

from __future__ import annotations

import os
import time

from .explore import Result, _run_once, replay
from .strategy import BoundedDFS


def prefixes(scenario, protocol: str = "current", mutants=(), bound: int = 1, depth: int = 3,
             lockdep: bool = True) -> list[list[int]]:
    """The distinct choices at the first ``depth`` choice points (within ``bound``)."""
    out = []
    dfs = BoundedDFS(bound, split_depth=depth)
    while True:
        run = _run_once(scenario, dfs, protocol, mutants, lockdep)
        out.append(list(run.choices[:depth]))
        if not dfs.next_schedule():
            return out


def _job(args) -> dict:
    """Explore below one prefix (in a worker); a summary that pickles."""
    scenario, protocol, mutants, bound, prefix, lockdep, collect = args
    n = 0
    seen = []
    lock_order: dict = {}
    dfs = BoundedDFS(bound, prefix=prefix)
    while True:
        run = _run_once(scenario, dfs, protocol, mutants, lockdep, lock_order, verbose=False)
        n += 1
        if collect:
            seen.append(tuple(run.choices))
        if run.finding is not None:
            return {"schedules": n, "failure": run.schedule_json(), "seen": seen}
        if not dfs.next_schedule():
            return {"schedules": n, "failure": None, "seen": seen}


def explore_distributed(scenario, protocol: str = "current", mutants=(), bound: int = 1,
                        jobs: int | None = None, scheduler: str | None = None, depth: int = 3,
                        lockdep: bool = True, collect: bool = False) -> Result:
    """The bounded exhaustive search of ``scenario``, split by prefix over ``jobs`` local
    processes (default: one per CPU) or the Dask cluster at ``scheduler``."""
    t0 = time.perf_counter()
    res = Result(scenario.name, protocol, tuple(mutants))
    pre = prefixes(scenario, protocol, mutants, bound, depth, lockdep)
    work = [(scenario, protocol, tuple(mutants), bound, p, lockdep, collect) for p in pre]
    where = f"{len(work)} prefixes"
    if scheduler:
        try:
            from distributed import Client
        except ImportError:
            raise RuntimeError("--scheduler needs the Dask 'distributed' package:"
                               " pip install 'mempolicy[distributed]'") from None
        with Client(scheduler) as client:
            outs = client.gather(client.map(_job, work, pure=False))
        where += f" on {scheduler}"
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        jobs = jobs or os.cpu_count() or 1
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork")) as pool:
            outs = list(pool.map(_job, work))
        where += f" over {jobs} processes"
    res.strategy = f"DFS, bound {bound}, {where}"
    res.complete = True
    res.seen = [s for o in outs for s in o["seen"]]
    for o in outs:
        res.schedules += o["schedules"]
        if o["failure"] is not None and res.failure is None:
            run, _ = replay(o["failure"])
            res.failure = run
            res.complete = False
    res.seconds = time.perf_counter() - t0
    return res
