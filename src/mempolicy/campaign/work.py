"""One unit of campaign work: a batch of traces with one header.

:func:`evaluate_batch` is what a local worker process or a Dask worker
runs.  It takes plain data and returns plain data (one dict per trace), so
it pickles to any worker:

1. every trace runs on the model and, in one boot, on the kernel;
2. each trace whose outputs differ runs twice more on the kernel (one more
   boot for all of them); if the three kernel outputs are not all equal the
   trace is *nondeterministic* and set aside;
3. the remaining *divergent* traces are shrunk together
   (:mod:`mempolicy.campaign.shrink`).

The kernel side is an *oracle*: ``qemu`` (the real kernel, through
:func:`mempolicy.oracle.run_traces`, one boot at a time) or ``planted``,
the model with two planted differences (:func:`planted_oracle`) that lets
the campaign machinery be tested without QEMU.
"""

from __future__ import annotations

import time
from typing import Callable

from mempolicy.campaign.shrink import first_difference, shrink_all

STATUSES = ("same", "divergent", "nondeterministic", "error", "unjudged")
ORACLES = ("qemu", "planted")

# what a trace in a batch is: (name, mode, seed, text)
Item = tuple[str, str, int, str]


def model_output(text: str, path: str = "<trace>", kernel: str = "7.3") -> str:
    """The model's canonical output (as KERNEL behaves), or one ``(the model failed: ...)`` line."""
    from mempolicy.trace.run import run_trace_text

    try:
        if kernel == "7.3":
            return run_trace_text(text, path)
        return run_trace_text(text, path, kernel=kernel)
    except Exception as e:  # noqa: BLE001 - a model crash is a divergence to report
        return f"(the model failed: {type(e).__name__}: {e})\n"


_planted_calls: dict[str, int] = {}


def planted_oracle(texts: list[str], kernel: str = "7.3") -> list[str]:
    """The model's output with two planted differences (a stand-in kernel for tests).

    - a real one: after any ``mprotect`` line, ``numa_maps`` lines lose
      their ``dirty=`` field;
    - a nondeterministic one: a trace with a ``home_node`` line gets an
      extra ``?`` on that line's output every other time it runs in a process.
    """
    outs = []
    for text in texts:
        out = model_output(text).splitlines(keepends=True)
        lines = text.splitlines()
        mprotect_at = min((i + 1 for i, line in enumerate(lines) if line.startswith("mprotect ")), default=None)
        home = [i + 1 for i, line in enumerate(lines) if line.startswith("home_node ")]
        calls = _planted_calls[text] = _planted_calls.get(text, 0) + 1
        for j, o in enumerate(out):
            num = int(o.split()[0]) if o[:1].isdigit() else 0
            if mprotect_at and num > mprotect_at and " numa_maps: " in o:
                out[j] = " ".join(w for w in o.rstrip("\n").split(" ") if not w.startswith("dirty=")) + "\n"
            if home and num == home[0] and calls % 2:
                out[j] = o.rstrip("\n") + " ?\n"
        outs.append("".join(out))
    return outs


def kernel_runner(oracle: str, kernel: str, vmlinuz: str | None = None
                  ) -> Callable[[list[str]], list[str]]:
    """TEXTS (one header) -> kernel outputs, for ORACLE ``qemu`` or ``planted``.

    With VMLINUZ, ``qemu`` boots that bzImage instead of Debian's KERNEL.
    """
    if oracle == "planted":
        return lambda texts: planted_oracle(texts, kernel)
    if oracle != "qemu":
        raise ValueError(f"unknown oracle {oracle!r}")

    def run(texts: list[str]) -> list[str]:
        from mempolicy.oracle import run_traces

        return run_traces([(t, f"t{i}.trace") for i, t in enumerate(texts)], kernel, jobs=1,
                          vmlinuz=vmlinuz)
    return run


def run_isolating(run_kernel: Callable[[list[str]], list[str]], texts: list[str]) -> list:
    """Kernel outputs of TEXTS; a boot that fails is split in halves until the
    failing trace is alone, and that trace's entry is the exception."""
    try:
        return list(run_kernel(texts))
    except Exception as e:  # noqa: BLE001 - one trace (say, an OOM kill) must not sink its batch
        if len(texts) == 1:
            return [e]
        half = len(texts) // 2
        return run_isolating(run_kernel, texts[:half]) + run_isolating(run_kernel, texts[half:])


def evaluate_batch(items: list[Item], kernel: str = "7.3", oracle: str = "qemu",
                   shrink: bool = True, stored: dict[str, str] | None = None,
                   judge: bool = True, vmlinuz: str | None = None) -> list[dict]:
    """Run ITEMS (traces of one header) on model and kernel; one result dict each.

    Each dict has ``name``, ``mode``, ``seed``, ``status`` (one of
    ``STATUSES``), ``kernel`` and ``model`` (outputs), ``model_s`` and
    ``kernel_s`` (seconds spent on this trace, the kernel's share of its boot),
    and for a divergence ``first`` (line, command) and ``minimized``,
    ``min_kernel``, ``min_model``.

    STORED maps a trace's name to a kernel output recorded earlier: that
    trace does not boot again unless it diverges.  With JUDGE false only
    the kernel runs, and every result is ``unjudged`` (a later run of the
    campaign compares it with the model of that day).

    >>> r = evaluate_batch([("t", "raw", 0, "cpu 0\\n")], oracle="planted")
    >>> r[0]["status"]
    'same'
    """
    run_kernel = kernel_runner(oracle, kernel, vmlinuz) if vmlinuz else kernel_runner(oracle, kernel)
    stored = stored or {}
    texts = [it[3] for it in items]
    results = []
    for name, mode, seed, text in items:
        r = {"name": name, "mode": mode, "seed": seed}
        if judge:
            t0 = time.perf_counter()
            r["model"] = model_output(text, f"{name}.trace", kernel)
            r["model_s"] = time.perf_counter() - t0
        results.append(r)
    fresh = [i for i, it in enumerate(items) if it[0] not in stored]
    t0 = time.perf_counter()
    kouts = run_isolating(run_kernel, [texts[i] for i in fresh]) if fresh else []
    share = (time.perf_counter() - t0) / max(1, len(fresh))
    for i, k in zip(fresh, kouts):
        r = results[i]
        if isinstance(k, Exception):   # recorded; the trace is tried again on the next run
            r.update(status="error", error=f"{type(k).__name__}: {k}", kernel="", kernel_s=0.0)
        else:
            r.update(kernel=k, kernel_s=share)
    for i, it in enumerate(items):
        if it[0] in stored:
            results[i].update(kernel=stored[it[0]], kernel_s=0.0)
    for r in results:
        if r.get("status") != "error":
            r["status"] = ("unjudged" if not judge
                           else "same" if r["kernel"] == r["model"] else "divergent")
    diverged = [i for i, r in enumerate(results) if r["status"] == "divergent"]
    if not diverged:
        return results
    again = run_isolating(run_kernel, [texts[i] for i in diverged for _ in range(2)])
    real = []
    for n, i in enumerate(diverged):
        r = results[i]
        runs = [r["kernel"], again[2 * n], again[2 * n + 1]]
        failed = [x for x in runs if isinstance(x, Exception)]
        if failed:
            r.update(status="error", error=f"rerun: {type(failed[0]).__name__}: {failed[0]}")
        elif len(set(runs)) > 1:
            r["status"] = "nondeterministic"
            r["kernel_runs"] = runs
        else:
            r["first"] = list(first_difference(r["kernel"], r["model"]) or (0, "?"))
            real.append(i)
    if real and shrink:
        def model_of(text: str, path: str = "<trace>") -> str:
            return model_output(text, path, kernel)
        try:
            states = shrink_all([(texts[i], results[i]["kernel"], results[i]["model"]) for i in real],
                                run_kernel, model_of)
        except Exception as e:  # noqa: BLE001 - a failed boot while shrinking keeps the whole trace
            for i in real:
                results[i].update(minimized=texts[i], min_kernel=results[i]["kernel"],
                                  min_model=results[i]["model"], shrink_error=f"{type(e).__name__}: {e}")
            return results
        for i, s in zip(real, states):
            results[i].update(minimized=s.text, min_kernel=s.kernel, min_model=s.model,
                              shrink_rounds=s.rounds)
    return results
