"""The campaign report: minimized divergences and a summary table.

``write_report(out, results)`` writes, under ``OUT/report/``:

- ``summary.md`` and ``summary.json``: traces, divergences and
  nondeterministic traces per mode, divergences grouped by the command of
  their first differing output line, with a suspected class;
- ``divergences/COMMAND/NAME.trace``: each minimized trace, with
  ``NAME.kernel`` and ``NAME.model`` (their outputs) and ``NAME.orig.trace``
  (the trace as generated);
- ``nondeterministic/NAME.trace`` with the three kernel outputs.

The suspected class names the known model gaps (docs/campaign.md); it is a
guess from the trace's commands and the differing lines, for sorting.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from mempolicy.campaign.shrink import first_difference, split_trace


def _differing_lines(kernel: str, model: str) -> tuple[list[str], list[str]]:
    k, m = kernel.splitlines(), model.splitlines()
    return [x for x in k if x not in m], [x for x in m if x not in k]


def _interleaving(line: str) -> bool:
    """Does LINE set an interleaving task policy?"""
    w = line.split()
    if w[:1] == ["set_mempolicy"]:
        return len(w) > 1 and w[1] in ("interleave", "weighted_interleave")
    if w[:2] == ["raw", "set_mempolicy"] and len(w) > 2:
        try:
            return int(w[2], 0) & 0xFF in (3, 6)
        except ValueError:
            return False
    return False


def suspected_class(r: dict) -> str:
    """A guess at which known gap a divergence belongs to, or ``other``.

    >>> suspected_class({"minimized": "mmap A 1\\nmove_pages A 0 1 1\\n",
    ...                  "min_kernel": "2 move_pages: ENOMEM\\n", "min_model": "2 move_pages: ok\\n"})
    'enomem-full-target'
    """
    text = r.get("minimized") or ""
    kout, mout = r.get("min_kernel", ""), r.get("min_model", "")
    d = first_difference(kout, mout)
    if d is None:
        return "none"
    cmd = d[1]
    kd, md = _differing_lines(kout, mout)
    lines = text.splitlines()
    forked = any(line.split()[:1] == ["fork"] for line in lines)
    if cmd == "model-failed":
        return "model-crash"
    if cmd in ("move_pages", "migrate_pages", "mbind") and any("ENOMEM" in x for x in kd):
        return "enomem-full-target"
    if forked and any(_interleaving(x) for x in lines):
        return "fork-interleave-alloc"
    strip = lambda xs: [re.sub(r" dirty=\d+", "", x) for x in xs]  # noqa: E731
    if cmd == "numa_maps" and kd and strip(kd) == strip(md):
        return "dirty-shared"
    vmas = lambda xs: sum(1 for x in xs if "+" in x.split(":", 1)[-1])  # noqa: E731 - VMA lines
    if forked and cmd == "numa_maps" and vmas(kd) != vmas(md):
        return "vma-merge-after-fork"
    if forked and cmd in ("where", "numa_maps"):
        return "fork-cow"
    return "other"


def summarize(results: list[dict]) -> dict:
    """Counts per mode and status, and the divergences grouped by first differing command."""
    modes: dict[str, Counter] = {}
    groups: dict[str, list[dict]] = {}
    for r in results:
        modes.setdefault(r["mode"], Counter())[r["status"]] += 1
        modes[r["mode"]]["traces"] += 1
        if r["status"] == "divergent":
            cmd = (r.get("first") or [0, "?"])[1]
            groups.setdefault(cmd, []).append(r)
    total = Counter()
    for c in modes.values():
        total.update(c)
    return {
        "traces": len(results),
        "modes": {m: dict(c) for m, c in sorted(modes.items())},
        "total": dict(total),
        "model_s": sum(r.get("model_s", 0.0) for r in results),
        "kernel_s": sum(r.get("kernel_s", 0.0) for r in results),
        "groups": {
            cmd: [{"name": r["name"], "mode": r["mode"], "class": suspected_class(r),
                   "lines": len(split_trace(r.get("minimized") or "")[1]),
                   "trace": f"divergences/{cmd}/{r['name']}.trace"} for r in rs]
            for cmd, rs in sorted(groups.items())
        },
        "nondeterministic": sorted(r["name"] for r in results if r["status"] == "nondeterministic"),
        "errors": {r["name"]: r.get("error", "") for r in results if r["status"] == "error"},
    }


def _markdown(s: dict, label: str) -> str:
    cols = ("traces", "same", "divergent", "nondeterministic", "error")
    if s["total"].get("unjudged"):
        cols += ("unjudged",)
    out = [f"# Campaign against {label}", "",
           "| mode | " + " | ".join(cols) + " |", "|" + " --- |" * (len(cols) + 1)]
    for mode, c in list(s["modes"].items()) + [("all", s["total"])]:
        out.append(f"| {mode} | " + " | ".join(str(c.get(k, 0)) for k in cols) + " |")
    out += ["", f"Model time {s['model_s']:.1f} s, kernel time {s['kernel_s']:.1f} s "
            "(summed over traces).", ""]
    if s["groups"]:
        out += ["## Divergences by first differing command", "",
                "| command | trace | mode | commands | suspected class |", "| --- | --- | --- | --- | --- |"]
        for cmd, rs in s["groups"].items():
            for r in rs:
                out.append(f"| {cmd} | [{r['name']}]({r['trace']}) | {r['mode']} | {r['lines']} | {r['class']} |")
        classes = Counter(r["class"] for rs in s["groups"].values() for r in rs)
        out += ["", "By suspected class: " + ", ".join(f"{k} {v}" for k, v in sorted(classes.items())), ""]
    else:
        out += ["No divergence.", ""]
    if s["nondeterministic"]:
        out += ["## Set aside as nondeterministic (kernel outputs differ between runs)", "",
                ", ".join(f"[{n}](nondeterministic/{n}.trace)" for n in s["nondeterministic"]), ""]
    if s["errors"]:
        out += ["## Errors (tried again on the next run)", ""]
        out += [f"- {n}: {e}" for n, e in sorted(s["errors"].items())] + [""]
    return "\n".join(out)


def write_report(out: Path, results: list[dict], texts: dict[str, str], label: str = "Linux") -> dict:
    """Write OUT/report/ from RESULTS (TEXTS: name -> generated trace); the summary."""
    rep = out / "report"
    rep.mkdir(parents=True, exist_ok=True)
    s = summarize(results)
    for r in results:
        if r["status"] == "divergent":
            d = rep / "divergences" / (r.get("first") or [0, "?"])[1]
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{r['name']}.trace").write_text(r.get("minimized") or texts.get(r["name"], ""))
            (d / f"{r['name']}.kernel").write_text(r.get("min_kernel", r["kernel"]))
            (d / f"{r['name']}.model").write_text(r.get("min_model", r["model"]))
            (d / f"{r['name']}.orig.trace").write_text(texts.get(r["name"], ""))
        elif r["status"] == "nondeterministic":
            d = rep / "nondeterministic"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{r['name']}.trace").write_text(texts.get(r["name"], ""))
            for i, k in enumerate(r.get("kernel_runs", []), 1):
                (d / f"{r['name']}.kernel{i}").write_text(k)
            (d / f"{r['name']}.model").write_text(r["model"])
    (rep / "summary.json").write_text(json.dumps(s, indent=1) + "\n")
    (rep / "summary.md").write_text(_markdown(s, label))
    return s
