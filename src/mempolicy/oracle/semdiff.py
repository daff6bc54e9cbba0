"""The semantic diff of a kernel change: the same traces on two kernels.

``mempolicy trace diff --kernel A --against B`` runs each trace on kernel A
and on kernel B (two Debian versions, or two bzImages built before and
after a patch) and reports every trace whose output changes, shrunk to a
minimal trace.  It is the campaign's procedure (:mod:`mempolicy.campaign`)
with kernel B in the model's place:

1. every trace runs once on each kernel (one boot per header and kernel);
2. each trace whose outputs differ runs twice more on each kernel; a trace
   whose three outputs on one kernel are not all equal is
   *nondeterministic* and set aside;
3. the remaining *changed* traces are shrunk by
   :func:`mempolicy.campaign.shrink.shrink_all`, each round's candidates in
   one boot of each kernel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from mempolicy.campaign.shrink import first_difference, join_trace, shrink_all, split_trace
from mempolicy.trace.parser import parse_trace

# texts (of any headers) -> outputs, in order
Runner = Callable[[list[str]], list[str]]


@dataclass
class Change:
    """One trace and what the two kernels made of it."""

    path: str
    text: str
    status: str = "same"            # same, changed or nondeterministic
    out_a: str = ""
    out_b: str = ""
    first: tuple[int, str] | None = None      # (line, command) of the first change
    minimized: str = ""
    min_a: str = ""
    min_b: str = ""
    runs_a: list[str] = field(default_factory=list)   # the three outputs of a nondeterministic trace
    runs_b: list[str] = field(default_factory=list)


class _Against:
    """Kernel B in the shrinker's "model" part, its outputs run in batches.

    The shrinker calls the oracle (kernel A) with each round's candidates and
    then the model once per candidate; the oracle call here runs the same
    candidates on B in one boot and keeps B's outputs for those calls.
    """

    def __init__(self, run_a: Runner, run_b: Runner) -> None:
        self.run_a, self.run_b = run_a, run_b
        self.b: dict[str, str] = {}

    def prefetch(self, texts: list[str]) -> None:
        todo = list(dict.fromkeys(t for t in texts if t not in self.b))
        if todo:
            self.b.update(zip(todo, self.run_b(todo)))

    def oracle(self, texts: list[str]) -> list[str]:
        self.prefetch(texts)
        return self.run_a(texts)

    def model(self, text: str, path: str = "<trace>") -> str:
        if text not in self.b:
            self.prefetch([text])
        return self.b[text]


def _cut_after_first_change(text: str, a: str, b: str) -> str | None:
    """The trace less every command after its first changed one (what
    ``Shrinking.truncate`` asks the model for), or None when nothing is cut."""
    d = first_difference(a, b)
    header, cmds = split_trace(text)
    cut = (d[0] if d else 0) - len(header)
    return join_trace(header, cmds[:cut]) if 0 < cut < len(cmds) else None


def diff_kernels(items: list[tuple[str, str]], run_a: Runner, run_b: Runner,
                 shrink: bool = True) -> list[Change]:
    """Run each (text, path) of ITEMS on kernels A and B; one :class:`Change` each, in order."""
    texts = [t for t, _ in items]
    outs_a, outs_b = run_a(texts), run_b(texts)
    changes = [Change(path, text, "same", a, b) for (text, path), a, b in zip(items, outs_a, outs_b)]
    differ = [c for c in changes if c.out_a != c.out_b]
    if not differ:
        return changes
    again = [c.text for c in differ for _ in range(2)]
    more_a, more_b = run_a(again), run_b(again)
    real = []
    for n, c in enumerate(differ):
        c.runs_a = [c.out_a, *more_a[2 * n: 2 * n + 2]]
        c.runs_b = [c.out_b, *more_b[2 * n: 2 * n + 2]]
        if len(set(c.runs_a)) > 1 or len(set(c.runs_b)) > 1:
            c.status = "nondeterministic"
            continue
        c.status, c.first = "changed", first_difference(c.out_a, c.out_b)
        c.minimized, c.min_a, c.min_b = c.text, c.out_a, c.out_b
        c.runs_a, c.runs_b = [], []
        real.append(c)
    if not (real and shrink):
        return changes
    against = _Against(run_a, run_b)
    groups: dict[tuple, list[Change]] = {}
    for c in real:
        groups.setdefault(parse_trace(c.text, c.path).machine.key(), []).append(c)
    # The traces cut after their first change, for every group in one boot of B.
    against.prefetch([t for c in real if (t := _cut_after_first_change(c.text, c.out_a, c.out_b))])
    for group in groups.values():
        states = shrink_all([(c.text, c.out_a, c.out_b) for c in group], against.oracle, against.model)
        for c, s in zip(group, states):
            c.minimized, c.min_a, c.min_b = s.text, s.kernel, s.model
    return changes
