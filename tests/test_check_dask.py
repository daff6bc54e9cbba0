"""A large scenario's search split by prefix runs on a real Dask cluster on loopback
(``mempolicy check --scheduler ADDRESS``) and covers exactly the local search's schedules."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

pytest.importorskip("distributed")

from mempolicy.check.distribute import explore_distributed  # noqa: E402
from mempolicy.check.explore import explore  # noqa: E402
from mempolicy.check.scenarios import CATALOGUE  # noqa: E402


def _wait_for(proc, pattern: str, seconds: float = 120.0) -> str:
    """Read ``proc``'s stderr until a line matches ``pattern``; the match's first group."""
    deadline = time.monotonic() + seconds
    seen = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        m = re.search(pattern, line)
        if m:
            return m.group(1)
    raise RuntimeError(f"no {pattern!r} from {proc.args[:3]}: {''.join(seen[-10:])}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A Dask scheduler and one worker process, both on 127.0.0.1."""
    tmp = tmp_path_factory.mktemp("dask")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    procs = []

    def start(*argv):
        p = subprocess.Popen([sys.executable, "-m", *argv], cwd=tmp, env=env, text=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(p)
        return p

    try:
        sched = start("distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                      "--no-dashboard")
        addr = _wait_for(sched, r"Scheduler at:\s+(tcp://127\.0\.0\.1:\d+)")
        worker = start("distributed.cli.dask_worker", addr, "--nworkers", "1", "--nthreads", "1",
                       "--no-dashboard", "--host", "127.0.0.1", "--local-directory", str(tmp))
        _wait_for(worker, r"(Registered to)")
        yield addr
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_a_dask_run_covers_the_same_schedules_as_the_local_one(cluster):
    sc = CATALOGUE["fork-vs-mbind"]
    local = explore(sc, bound=1, collect=True)
    r = explore_distributed(sc, bound=1, scheduler=cluster, depth=2, collect=True)
    assert sorted(r.seen) == sorted(local.seen)
    assert r.schedules == local.schedules and r.failure is None and r.complete
    assert cluster in r.strategy


def test_a_failure_found_on_dask_is_replayed_here(cluster):
    sc = CATALOGUE["numa-maps-vs-set-mempolicy"]
    r = explore_distributed(sc, mutants=("numa-maps-no-task-lock",), bound=2, scheduler=cluster,
                            lockdep=False)
    assert r.failure is not None and r.failure.finding.kind == "use after free"
