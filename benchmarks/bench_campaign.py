"""Campaign throughput: traces per second per core, model side and kernel side,
and the speed-up of a 2-worker Dask LocalCluster over a 1-worker one.

    python3 benchmarks/bench_campaign.py            # alone
    python3 benchmarks/run.py                       # with the other benchmarks

- model side: the 48 traces of one seed block (8 per directed mode) run on
  the model in this process; traces per second on one core;
- kernel side: 12 of those traces in one boot of Linux 7.3 under QEMU (one
  QEMU, ``-j 1``); skipped unless ``qemu-system-x86_64`` and the cached
  kernel are there (``MEMPOLICY_BENCH_QEMU=0`` skips it too);
- scale-out: the same 48-trace campaign on a LocalCluster of one worker
  process and of two (``distributed`` needed), with the ``planted`` oracle
  so that both sides are model work; the ratio of their wall times.  On a
  machine with fewer than two free cores the ratio stays near 1.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401

from mempolicy.campaign.run import run_campaign
from mempolicy.campaign.work import model_output
from mempolicy.trace.fuzz import DIRECTED_MODES, generate, plan

SEED = 9600          # one machine block: every trace shares one header


def _texts(n: int = 48) -> list[str]:
    return [generate(s, m) for s, m in plan(SEED, n, list(DIRECTED_MODES))]


def model_side(texts: list[str]) -> float:
    """Traces per second on the model, one core."""
    model_output(texts[0])                     # imports and caches
    t0 = time.perf_counter()
    for t in texts:
        model_output(t)
    return len(texts) / (time.perf_counter() - t0)


def kernel_side(texts: list[str]) -> float | None:
    """Traces per second on Linux 7.3 under QEMU (one boot, one QEMU), or None."""
    if os.environ.get("MEMPOLICY_BENCH_QEMU") == "0" or shutil.which("qemu-system-x86_64") is None:
        return None
    from mempolicy.oracle import run_traces
    from mempolicy.oracle.errors import OracleError

    try:
        t0 = time.perf_counter()
        run_traces([(t, f"b{i}.trace") for i, t in enumerate(texts)], "7.3", jobs=1)
    except OracleError as e:
        print(f"  kernel side skipped: {e}")
        return None
    return len(texts) / (time.perf_counter() - t0)


def scale_out(n: int = 48) -> dict | None:
    """Wall seconds of one campaign on 1 and on 2 LocalCluster workers, or None."""
    try:
        import distributed
    except ImportError:
        print("  scale-out skipped: the 'distributed' package is not installed")
        return None
    os.environ["MEMPOLICY_PROGRESS"] = "0"
    os.environ["PYTHONPATH"] = _common.SRC + os.pathsep + os.environ.get("PYTHONPATH", "")
    out = {}
    for workers in (1, 2):
        with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster, \
                tempfile.TemporaryDirectory() as tmp:
            with distributed.Client(cluster) as client:      # workers up and importing before timing
                client.run(lambda: __import__("mempolicy.campaign.work"))
            t0 = time.perf_counter()
            run_campaign(Path(tmp), SEED, n, list(DIRECTED_MODES), oracle="planted",
                         scheduler=cluster.scheduler_address)
            out[workers] = time.perf_counter() - t0
    return out


def run() -> dict:
    texts = _texts()
    m = model_side(texts)
    print(f"  model side: {m:.1f} traces/s on one core ({len(texts)} traces)")
    k = kernel_side(texts[:12])
    if k is not None:
        print(f"  kernel side: {k:.2f} traces/s on one core (12 traces, one boot);"
              f" the model is {m / k:.0f}x faster")
    s = scale_out()
    if s is not None:
        print(f"  LocalCluster, 48 traces: 1 worker {s[1]:.1f} s, 2 workers {s[2]:.1f} s,"
              f" speed-up {s[1] / s[2]:.2f}x ({os.cpu_count()} CPUs here)")
    return {"model": m, "kernel": k, "scale": s}


if __name__ == "__main__":
    run()
    sys.exit(0)
