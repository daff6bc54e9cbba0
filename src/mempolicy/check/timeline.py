"""Readable counterexamples: the timeline of a schedule and what it says about a policy.

The timeline lists, step by step, which task did what in which kernel
function to which policy (``#3 bind:1`` is the third policy the cache handed
out, printed as numa_maps would).  The explanation follows the policy the
finding names: where it was stored, every reference taken and dropped,
drops that no lookup reference paid for, where it was freed and where it
was used afterwards.
"""

from __future__ import annotations

import re

from .explore import Run

_MODE = {"read": "read-locks", "write": "write-locks", "spin": "takes"}
_UNMODE = {"read": "read-unlocks", "write": "write-unlocks", "spin": "releases"}


def _serial(pol) -> int:
    return object.__getattribute__(pol, "_serial")


def _pol(run: Run, pol) -> str:
    if pol is None:
        return "NULL"
    s = _serial(pol)
    text = run.names.get(s)
    return f"#{s} {text}" if text else f"#{s}"


def event_text(run: Run, ev: tuple) -> str:
    """What one event did, in words."""
    _step, _t, _func, kind, a, b, c = ev
    w = run.world
    if kind == "op":
        return f"-- {a} --"
    if kind == "lock":
        return f"{_MODE[b]} {w.lock_label(a)}"
    if kind == "unlock":
        return f"{_UNMODE[b]} {w.lock_label(a)}"
    if kind == "block":
        return f"waits for {w.lock_label(a)} ({b}): {c}"
    if kind == "load":
        pol, where = c
        ref = " (no reference taken)" if a in ("vma", "task") else ""
        return f"loads {_pol(run, pol)} from {where}{ref}"
    if kind == "store":
        pol, where = c
        return f"stores {_pol(run, pol)} in {where}"
    if kind == "ref":
        before, after, note = c
        s = f"{a} {_pol(run, b)}: refcnt {before} -> {after}"
        if after == 0 and a != "mpol_get":
            s += ", freed"
        if note:
            s += f"  !! {note}"
        return s
    if kind == "alloc":
        return f"allocates {_pol(run, a)}"
    if kind == "free":
        return f"frees {_pol(run, a)}"
    if kind == "modify":
        return f"{_pol(run, b)}: {a}"
    if kind == "sleep":
        return f"may sleep ({a}) using {_pol(run, b)}"
    if kind == "error":
        return f"returns {a}"
    if kind == "finding":
        return f"FOUND {a}"
    return f"{kind} {a} {b} {c}"


def timeline(run: Run, limit: int | None = None) -> list[str]:
    """The schedule's events as table rows (``free`` events are folded into the put)."""
    rows = [f"{'step':>5}  {'task':<5} {'kernel function':<28} what"]
    evs = [e for e in run.events if e[3] != "free"]
    if limit is not None and len(evs) > limit:
        evs = evs[-limit:]
        rows.append(f"{'...':>5}")
    for ev in evs:
        step, t, func = ev[0], ev[1], ev[2]
        task = run.tasks[t] if 0 <= t < len(run.tasks) else "-"
        rows.append(f"{step:>5}  {task:<5} {func:<28} {event_text(run, ev)}")
    return rows


def _mentions(ev: tuple, serial: int) -> bool:
    kind = ev[3]
    if kind in ("ref", "modify", "sleep"):
        return ev[5] is not None and _serial(ev[5]) == serial
    if kind in ("alloc", "free"):
        return _serial(ev[4]) == serial
    if kind in ("load", "store"):
        pol = ev[6][0]
        return pol is not None and _serial(pol) == serial
    return False


def explain(run: Run) -> list[str]:
    """The history of the policy the finding is about, and what went wrong with it."""
    f = run.finding
    if f is None:
        return []
    m = re.search(r"#(\d+)", f.message)
    if not m:
        return []
    serial = int(m.group(1))
    hist = [e for e in run.events if e[3] != "free" and _mentions(e, serial)]
    if not hist:
        return [f"policy #{serial} was not touched during the schedule (start state)."]
    out = [f"history of policy #{serial}:"]
    for e in hist:
        out.append(f"  step {e[0]:>3} {run.tasks[e[1]]:<4} {e[2]:<26} {event_text(run, e)}")
    stores = [e for e in hist if e[3] == "store"]
    owners = [e[6][1] for e in stores]
    shared_mark = [e for e in hist if e[3] == "modify" and "MPOL_F_SHARED" in e[4]]
    unpaid = [e for e in hist if e[3] == "ref" and e[6][2]]
    why = []
    if len(set(owners)) > 1:
        why.append(f"one object is stored in {len(set(owners))} places: " + "; ".join(dict.fromkeys(owners)))
    if shared_mark and any(o.startswith("VMA") for o in owners):
        why.append("sp_alloc marked that same object MPOL_F_SHARED, so users of the"
                   " VMA policies now drop a reference with mpol_cond_put although"
                   " their lookup (vma->vm_policy) took none")
    for e in unpaid:
        why.append(f"step {e[0]}: {run.tasks[e[1]]} {e[4]} in {e[2]} dropped a reference"
                   f" no lookup of its own had taken (refcnt {e[6][0]} -> {e[6][1]})")
    frees = [e for e in hist if e[3] == "ref" and e[6][1] == 0 and e[4] != "mpol_get"]
    if frees:
        e = frees[-1]
        why.append(f"step {e[0]}: {run.tasks[e[1]]} freed it in {e[2]} ({e[4]})")
        if f.task is not None and f.kind in ("use after free", "double put", "refcount below zero"):
            loads = [x for x in hist if x[3] == "load" and run.tasks[x[1]] == f.task and x[0] <= e[0]]
            late = [x for x in hist if x[3] == "load" and run.tasks[x[1]] == f.task and x[0] > e[0]]
            use = f" in {f.where}" if f.where else ""
            if late:
                x = late[-1]
                why.append(f"step {x[0]}: {f.task} loaded the freed policy in {x[2]} from"
                           f" {x[6][1]}, which still points to it, and used it{use}")
            elif loads:
                x = loads[-1]
                took = any(y[3] == "ref" and y[4] == "mpol_get" and y[1] == x[1] and y[0] >= x[0]
                           for y in hist)
                why.append(f"step {x[0]}: {f.task} had loaded it in {x[2]} from {x[6][1]}"
                           + ("" if took else " without taking a reference")
                           + f", and used it{use} at step {f.step}, after the free")
    if why:
        out.append("why:")
        out.extend(f"  - {w}" for w in why)
    return out


def report(run: Run, title: str | None = None, limit: int | None = None) -> str:
    """Counterexample as a user sees it: the finding, the timeline, the explanation."""
    lines = []
    if title:
        lines.append(title)
    f = run.finding
    if f is not None:
        lines.append(f"finding: {f}")
    pre = f"{run.preemptions} preemption{'' if run.preemptions == 1 else 's'}"
    lines.append(f"schedule: {run.choices} ({pre}, {run.steps} steps,"
                 f" tasks {', '.join(run.tasks)})")
    lines.append("")
    lines.extend(timeline(run, limit))
    ex = explain(run)
    if ex:
        lines.append("")
        lines.extend(ex)
    return "\n".join(lines)
