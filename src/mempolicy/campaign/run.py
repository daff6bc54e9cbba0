"""Running a campaign: generate, batch by header, farm out, persist, report.

The traces are written to ``OUT/traces/NAME.trace`` and each finished
trace's result to ``OUT/results/NAME.json`` (written whole, then renamed),
so a campaign stopped with Ctrl-C or killed loses only the batches that
were running; the same command again skips every trace with a result
(except the ones whose boot failed).

The kernel's outputs are kept with the results, so the comparison with the
model can be made again without booting: ``--kernel-only`` runs only the
kernel (results ``unjudged``), and every later run judges the unjudged ones
against the model of that day; ``--rejudge`` judges every stored result
again (after a model change), booting only for the reruns and shrinking of
the traces that now diverge.

Batches (up to ``BATCH`` traces with one header, one boot each plus the
reruns and shrinking rounds of their divergences) go to a local process
pool, or to a Dask distributed cluster when a scheduler address is given.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Callable

from mempolicy.campaign.archive import import_archive, read_archive, write_archive
from mempolicy.campaign.work import evaluate_batch
from mempolicy.trace.fuzz import generate, plan, trace_name
from mempolicy.trace.parser import parse_trace

BATCH = 24


def make_batches(items: list[tuple[str, str, int, str]], size: int = BATCH) -> list[list]:
    """ITEMS grouped by header, each group cut into batches of at most SIZE."""
    groups: dict[tuple, list] = {}
    for it in items:
        groups.setdefault(parse_trace(it[3], it[0]).machine.key(), []).append(it)
    out = []
    for g in groups.values():
        n = -(-len(g) // size)
        out += [g[i * len(g) // n:(i + 1) * len(g) // n] for i in range(n)]
    return sorted(out, key=len, reverse=True)


class Status:
    """Counts and an ETA on stderr: redrawn in place on a terminal, a line every 15 s elsewhere."""

    def __init__(self, total: int, done: int, stream=None) -> None:
        self.total, self.start_done, self.done = total, done, done
        self.counts = {"divergent": 0, "nondeterministic": 0, "error": 0}
        self.stream = sys.stderr if stream is None else stream
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        if os.environ.get("MEMPOLICY_PROGRESS") == "0":
            self.stream = None
        self.t0 = time.monotonic()
        self.last = 0.0

    def add(self, results: list[dict]) -> None:
        self.done += len(results)
        for r in results:
            if r["status"] in self.counts:
                self.counts[r["status"]] += 1
        self.show()

    def line(self) -> str:
        el = time.monotonic() - self.t0
        new = self.done - self.start_done
        rate = new / el if el > 0 else 0.0
        left = self.total - self.done
        eta = f"{left / rate:.0f} s" if rate > 0 else "?"
        c = self.counts
        return (f"campaign: {self.done}/{self.total} traces, {c['divergent']} divergent, "
                f"{c['nondeterministic']} nondeterministic, {c['error']} failed boots, "
                f"{rate * 60:.1f} traces/min, ETA {eta}")

    def show(self, final: bool = False) -> None:
        if self.stream is None:
            return
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r\x1b[K" + self.line() + ("\n" if final else ""))
        elif final or now - self.last >= 15:
            self.stream.write(self.line() + "\n")
            self.last = now
        self.stream.flush()


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data) + "\n")
    tmp.replace(path)


def prepare(out: Path, seed: int, count: int, modes: list[str], rejudge: bool = False
            ) -> tuple[list, list[dict], dict[str, str]]:
    """Write the traces; (items still to run, results already finished, stored kernel
    outputs of the items to judge again)."""
    (out / "traces").mkdir(parents=True, exist_ok=True)
    (out / "results").mkdir(parents=True, exist_ok=True)
    todo, done, stored = [], [], {}
    for s, mode in plan(seed, count, modes):
        name = trace_name(s, mode)
        tpath = out / "traces" / f"{name}.trace"
        rpath = out / "results" / f"{name}.json"
        text = generate(s, mode)
        if rpath.is_file() and tpath.is_file() and tpath.read_text() == text:
            # (a result for another text, from an older generator, is not used)
            try:
                r = json.loads(rpath.read_text())
                status = r.get("status")
                if status == "unjudged" or (rejudge and status in ("same", "divergent")):
                    stored[name] = r["kernel"]
                elif status != "error":
                    done.append(r)
                    continue
            except (OSError, ValueError, KeyError):
                pass
        tpath.write_text(text)
        todo.append((name, mode, s, text))
    return todo, done, stored


def _worker_init() -> None:
    """A local worker: its own process group (with the QEMUs it starts), out of
    the terminal's Ctrl-C, which the main process handles."""
    os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _stop(signum, frame) -> None:
    raise KeyboardInterrupt


def stoppable() -> list:
    """Make SIGINT and SIGTERM raise KeyboardInterrupt here (even where the shell
    started the process with SIGINT ignored, as it does for background jobs);
    the previous handlers, for ``signal.signal`` to put back."""
    old = [(signal.SIGINT, signal.signal(signal.SIGINT, signal.default_int_handler))]
    old.append((signal.SIGTERM, signal.signal(signal.SIGTERM, _stop)))
    return old


def _collect(future, on_done: Callable[[list[dict]], None]) -> None:
    """Hand a finished batch to ON_DONE; a batch that failed as a whole is reported
    and left unfinished (the next run tries it again)."""
    try:
        batch = future.result()
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # noqa: BLE001 - one batch must not end the campaign
        print(f"mempolicy trace campaign: a batch failed ({type(e).__name__}: {e}); "
              "its traces stay unfinished", file=sys.stderr)
        return
    on_done(batch)


def _stored_of(batch: list, stored: dict[str, str]) -> dict[str, str]:
    return {it[0]: stored[it[0]] for it in batch if it[0] in stored}


def run_local(batches: list[list], kernel: str, oracle: str, jobs: int,
              on_done: Callable[[list[dict]], None], stored: dict[str, str] | None = None,
              judge: bool = True, vmlinuz: str | None = None) -> None:
    """Run BATCHES on a pool of JOBS local processes, calling ON_DONE with each batch's results."""
    stored = stored or {}
    pool = ProcessPoolExecutor(max_workers=jobs, initializer=_worker_init)
    pending = {pool.submit(evaluate_batch, b, kernel, oracle, True, _stored_of(b, stored), judge,
                           vmlinuz) for b in batches}
    try:
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in finished:
                _collect(f, on_done)
    except BaseException:
        # Each worker leads its own process group with its QEMU: stop both.
        workers = list(getattr(pool, "_processes", None) or {})
        pool.shutdown(wait=False, cancel_futures=True)
        for pid in workers:
            try:
                os.killpg(pid, signal.SIGTERM)
            except OSError:
                pass
        raise
    pool.shutdown(wait=True)


def run_dask(batches: list[list], kernel: str, oracle: str, address: str,
             on_done: Callable[[list[dict]], None], stored: dict[str, str] | None = None,
             judge: bool = True, vmlinuz: str | None = None) -> None:
    """Run BATCHES on the Dask distributed cluster at ADDRESS (one task per batch)."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise RuntimeError("--scheduler needs the 'distributed' package "
                           "(pip install 'mempolicy[distributed]')") from None
    try:
        client = Client(address, timeout="5s")
    except (OSError, TimeoutError, ValueError) as e:
        raise RuntimeError(f"cannot reach the Dask scheduler at {address}: {e}") from None
    try:
        stored = stored or {}
        futures = [client.submit(evaluate_batch, b, kernel, oracle, True, _stored_of(b, stored),
                                 judge, vmlinuz, pure=False) for b in batches]
        try:
            for f in as_completed(futures):
                _collect(f, on_done)
        except BaseException:
            client.cancel(futures)
            raise
    finally:
        client.close()


def run_campaign(out: Path, seed: int, count: int, modes: list[str], kernel: str = "7.3",
                 oracle: str = "qemu", jobs: int | None = None, scheduler: str | None = None,
                 status_stream=None, kernel_only: bool = False, rejudge: bool = False,
                 vmlinuz: str | None = None, archive: Path | None = None) -> dict:
    """Run a whole campaign into OUT and write its report; the summary dict.

    KERNEL_ONLY and REJUDGE as in the module's docstring.  VMLINUZ: boot
    that bzImage (a kernel the user built), judged against the model of KERNEL.
    ARCHIVE: a file of kernel outputs (:mod:`mempolicy.campaign.archive`) read
    before the run and written back after it.

    KeyboardInterrupt propagates after every finished batch is saved.
    """
    from mempolicy.campaign.report import write_report

    out.mkdir(parents=True, exist_ok=True)
    try:
        before = json.loads((out / "campaign.json").read_text())
    except (OSError, ValueError):
        before = {}
    if isinstance(before, dict) and before.get("kernel", kernel) != kernel:
        raise RuntimeError(f"{out} holds a campaign against Linux {before['kernel']}, "
                           f"not {kernel}: give another --out")
    if isinstance(before, dict) and before.get("vmlinuz", vmlinuz) != vmlinuz:
        raise RuntimeError(f"{out} holds a campaign against the bzImage {before['vmlinuz']}, "
                           f"not {vmlinuz}: give another --out")
    info = {"seed": seed, "count": count, "modes": modes, "kernel": kernel, "oracle": oracle}
    if vmlinuz is not None:
        info["vmlinuz"] = vmlinuz
    archived = read_archive(archive, kernel, vmlinuz) if archive is not None else {}
    _write_json(out / "campaign.json", info)
    todo, results, stored = prepare(out, seed, count, modes, rejudge)
    if archived and import_archive(archived, out):
        todo, results, stored = prepare(out, seed, count, modes, rejudge)
    if kernel_only:   # what is stored waits for a run that judges it
        results += [json.loads((out / "results" / f"{it[0]}.json").read_text())
                    for it in todo if it[0] in stored]
        todo = [it for it in todo if it[0] not in stored]
    status = Status(count, len(results), status_stream)
    status.show()

    def on_done(batch: list[dict]) -> None:
        for r in batch:
            _write_json(out / "results" / f"{r['name']}.json", r)
        results.extend(batch)
        status.add(batch)

    t0 = time.monotonic()
    try:
        if todo:
            batches = make_batches(todo)
            boot = {"vmlinuz": vmlinuz} if vmlinuz else {}
            if scheduler:
                run_dask(batches, kernel, oracle, scheduler, on_done, stored, not kernel_only,
                         **boot)
            else:
                run_local(batches, kernel, oracle, jobs or os.cpu_count() or 1, on_done,
                          stored, not kernel_only, **boot)
    finally:
        status.show(final=True)
        texts = {}
        for r in results:
            p = out / "traces" / f"{r['name']}.trace"
            texts[r["name"]] = p.read_text() if p.is_file() else ""
        if archive is not None:
            write_archive(archive, archived, results, texts, kernel, vmlinuz)
        summary = write_report(out, sorted(results, key=lambda r: r["name"]), texts,
                               (f"the bzImage {vmlinuz}" if vmlinuz else f"Linux {kernel}")
                               if oracle == "qemu" else f"the {oracle} oracle")
    summary["seconds"] = time.monotonic() - t0
    return summary
