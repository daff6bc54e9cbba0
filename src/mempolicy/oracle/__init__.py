"""The oracle: traces run on a real Linux kernel under QEMU.

``runner.c`` executes one trace in the guest; :mod:`.initramfs` packs it with
busybox and the traces; :mod:`.qemu` boots a Debian kernel (:mod:`.kernels`)
with the NUMA topology of the trace header.  Traces with the same header
share one boot.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mempolicy.oracle.errors import OracleError
from mempolicy.oracle.kernels import DEFAULT_KERNEL, get_kernel, kernel_from_path

__all__ = ["OracleError", "DEFAULT_KERNEL", "run_traces"]


def default_jobs() -> int:
    """Boots run at once by default: one per host core, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


def plan_boots(groups: list[list[int]], jobs: int, min_split: int = 8) -> list[list[int]]:
    """Split the largest groups in halves until every job has a boot.

    Each group holds traces with one header; a trace's output does not depend
    on the traces that ran before it in the same boot.
    """
    groups = [list(g) for g in groups]
    while len(groups) < jobs:
        big = max(range(len(groups)), key=lambda i: len(groups[i]))
        g = groups[big]
        if len(g) < min_split:
            break
        groups[big:big + 1] = [g[: len(g) // 2], g[len(g) // 2:]]
    return groups


def run_traces(items: list[tuple[str, str]], kernel: str = DEFAULT_KERNEL,
               log=None, keep: Path | None = None, jobs: int | None = None,
               allow_unsigned: bool = False, vmlinuz: str | os.PathLike | None = None
               ) -> list[str]:
    """Canonical kernel output of each (text, path) in ITEMS, in order.

    The kernel is Debian's Linux KERNEL, or the user's bzImage VMLINUZ.

    Traces with the same header share a boot; up to JOBS boots run at once.
    Raises ``TraceError`` for an invalid trace and ``OracleError`` for
    anything else the user must fix.
    """
    from mempolicy.oracle.qemu import preflight, run_boot
    from mempolicy.trace.parser import parse_trace

    parsed = [parse_trace(text, path) for text, path in items]
    by_header: dict[tuple, list[int]] = {}
    for i, t in enumerate(parsed):
        by_header.setdefault(t.machine.key(), []).append(i)
    preflight([parsed[idx[0]].machine for idx in by_header.values()])
    jobs = jobs or default_jobs()
    groups = plan_boots(list(by_header.values()), jobs)
    k = (kernel_from_path(vmlinuz) if vmlinuz is not None
         else get_kernel(kernel, log=log, allow_unsigned=allow_unsigned))

    def boot(n: int, idx: list[int]) -> list[str]:
        machine = parsed[idx[0]].machine
        if log:
            log(f"boot {n + 1}/{len(groups)}: {len(idx)} trace(s), {len(machine.nodes)} node(s)")
        return run_boot(k, machine, [items[i][0] for i in idx], [items[i][1] for i in idx],
                        log=log, keep=keep / f"boot{n}" if keep else None, stop=stop)

    results: list[str] = [""] * len(items)
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        # The largest boots first, so that no long boot starts last.
        order = sorted(range(len(groups)), key=lambda n: -len(groups[n]))
        futures = [(groups[n], pool.submit(boot, n, groups[n])) for n in order]
        for idx, fut in futures:
            for i, out in zip(idx, fut.result()):
                results[i] = out
    except BaseException:
        stop.set()  # Ctrl-C or a failed boot: the other boots stop too, QEMU killed
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return results
