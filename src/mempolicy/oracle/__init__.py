"""The oracle: traces run on a real Linux kernel under QEMU.

``runner.c`` executes one trace in the guest; :mod:`.initramfs` packs it with
busybox and the traces; :mod:`.qemu` boots a Debian kernel (:mod:`.kernels`)
with the NUMA topology of the trace header.  Traces with the same header
share one boot.
"""

from __future__ import annotations

from pathlib import Path

from mempolicy.oracle.errors import OracleError
from mempolicy.oracle.kernels import DEFAULT_KERNEL, get_kernel

__all__ = ["OracleError", "DEFAULT_KERNEL", "run_traces"]


def run_traces(items: list[tuple[str, str]], kernel: str = DEFAULT_KERNEL,
               log=None, keep: Path | None = None) -> list[str]:
    """Canonical kernel output of each (text, path) in ITEMS, in order.

    Raises ``TraceError`` for an invalid trace and ``OracleError`` for
    anything else the user must fix.
    """
    from mempolicy.oracle.qemu import run_boot
    from mempolicy.trace.parser import parse_trace

    parsed = [parse_trace(text, path) for text, path in items]
    k = get_kernel(kernel, log=log)
    groups: dict[tuple, list[int]] = {}
    for i, t in enumerate(parsed):
        groups.setdefault(t.machine.key(), []).append(i)
    results: list[str] = [""] * len(items)
    for n, idx in enumerate(groups.values()):
        if log:
            log(f"boot {n + 1}/{len(groups)}: {len(idx)} trace(s), "
                f"{len(parsed[idx[0]].machine.nodes)} node(s)")
        outs = run_boot(k, parsed[idx[0]].machine, [items[i][0] for i in idx],
                        [items[i][1] for i in idx], log=log,
                        keep=keep / f"boot{n}" if keep else None)
        for i, out in zip(idx, outs):
            results[i] = out
    return results
