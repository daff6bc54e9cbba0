"""Shrinking a divergent trace: delta debugging over its command lines.

A candidate keeps the header and a subset of the commands, in order; it is
made valid again by dropping, one at a time, each line the parser refuses
(a name whose ``mmap`` or ``memfd`` was dropped, an ``exit`` whose ``fork``
was dropped).  It is kept when model and kernel still differ and the first
differing output line still comes from the same kind of command
(:func:`first_difference`), so that shrinking does not wander to another
difference.

Candidates are judged in rounds, and the candidates of one round (of every
trace being shrunk, all with one header) run in a single oracle call, so a
round costs one boot.  First the trace is cut after its first differing
command, without a boot (nothing after it can change the lines before);
then the rounds follow ddmin: remove one of N chunks (the smallest candidate
that still differs wins), double N when none can go, up to
``MAX_PER_ROUND`` candidates a round and ``MAX_ROUNDS`` rounds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from mempolicy.trace.parser import TraceError, parse_trace

MAX_ROUNDS = 16
MAX_PER_ROUND = 24

# (texts) -> kernel outputs, in order, for texts of one header
Oracle = Callable[[list[str]], list[str]]
# text -> model output
Model = Callable[[str], str]


def split_trace(text: str) -> tuple[list[str], list[str]]:
    """(header lines, command lines) of a valid trace; comments and blanks dropped.

    >>> split_trace("node 0 mem=512M cpus=1\\n# c\\nmmap A 1\\n")
    (['node 0 mem=512M cpus=1'], ['mmap A 1'])
    """
    header, cmds = [], []
    for line in text.splitlines():
        bare = line.split("#", 1)[0].strip()
        if not bare:
            continue
        if not cmds and bare.split()[0] in ("node", "distance"):
            header.append(bare)
        else:
            cmds.append(bare)
    return header, cmds


def join_trace(header: list[str], cmds: list[str]) -> str:
    """The text of a trace made of HEADER and CMDS."""
    return "".join(line + "\n" for line in header + cmds)


def repair(header: list[str], cmds: list[str]) -> list[str] | None:
    """CMDS less every line the parser refuses; ``None`` when nothing is left.

    >>> repair([], ["touch A 0 1", "mmap B 1", "exit"])
    ['mmap B 1']
    """
    cmds = list(cmds)
    while cmds:
        try:
            parse_trace(join_trace(header, cmds), "<shrink>")
            return cmds
        except TraceError as e:
            i = e.lineno - len(header) - 1
            if not 0 <= i < len(cmds):
                return None
            del cmds[i]
    return None


def first_difference(kernel: str, model: str) -> tuple[int, str] | None:
    """(trace line, command) of the first output line that differs, or ``None``.

    A model that failed gives the command ``model-failed``.

    >>> first_difference("1 mmap: ok\\n2 where: 0\\n", "1 mmap: ok\\n2 where: 1\\n")
    (2, 'where')
    """
    if kernel == model:
        return None
    k, m = kernel.splitlines(), model.splitlines()
    if m and m[0].startswith("(the model failed"):
        return 0, "model-failed"
    for i in range(max(len(k), len(m))):
        a = k[i] if i < len(k) else None
        b = m[i] if i < len(m) else None
        if a != b:
            line = a if a is not None else b
            head = line.split(":", 1)[0].split()
            try:
                return int(head[0]), head[1] if len(head) > 1 else "?"
            except (ValueError, IndexError):
                return 0, "?"
    return 0, "?"


@dataclass
class Shrinking:
    """One trace being shrunk."""

    header: list[str]
    cmds: list[str]
    kernel: str
    model: str
    what: str                           # the command of the first difference
    chunks: int = 2
    cursor: int = 0
    rounds: int = 0
    done: bool = False
    pending: list[list[str]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return join_trace(self.header, self.cmds)

    def truncate(self, model: Model) -> None:
        """Drop the commands after the first differing one, without a kernel run.

        Output lines come in execution order, and no command changes what an
        earlier one printed, so the kernel's output of the cut trace is the
        original's lines up to that command.
        """
        line = first_difference(self.kernel, self.model)
        cut = (line[0] if line else 0) - len(self.header)
        if not 0 < cut < len(self.cmds):
            return
        kernel = "".join(x for x in self.kernel.splitlines(keepends=True)
                         if x[:1].isdigit() and int(x.split()[0]) <= line[0])
        cmds = self.cmds[:cut]
        mout = model(join_trace(self.header, cmds))
        d = first_difference(kernel, mout)
        if d is not None and d[1] == self.what:
            self.cmds, self.kernel, self.model = cmds, kernel, mout

    def propose(self, first: bool) -> list[list[str]]:
        """The candidates of the next round (already repaired, not yet judged)."""
        out: list[list[str]] = []
        n = min(self.chunks, len(self.cmds))
        size = len(self.cmds) / n
        bounds = [(round(i * size), round((i + 1) * size)) for i in range(n)]
        while len(out) < MAX_PER_ROUND and self.cursor < n:
            a, b = bounds[self.cursor]
            self.cursor += 1
            out.append(self.cmds[:a] + self.cmds[b:])
            if n == 2:
                out.append(self.cmds[a:b])
        fixed = []
        for c in out:
            r = repair(self.header, c)
            if r and len(r) < len(self.cmds) and r not in fixed:
                fixed.append(r)
        self.pending = fixed
        return fixed

    def judge(self, results: list[tuple[str, str]]) -> None:
        """Take the first pending candidate that still differs the same way."""
        self.rounds += 1
        passing = [(len(c), i) for i, (c, (kout, mout)) in enumerate(zip(self.pending, results))
                   if (d := first_difference(kout, mout)) is not None and d[1] == self.what]
        if passing:                       # the smallest candidate that still differs
            i = min(passing)[1]
            self.cmds, (self.kernel, self.model) = self.pending[i], results[i]
            self.chunks = max(2, self.chunks - 1)
            self.cursor = 0
        else:
            if self.cursor >= min(self.chunks, len(self.cmds)):
                if self.chunks >= len(self.cmds):
                    self.done = True
                else:
                    self.chunks = min(len(self.cmds), self.chunks * 2)
                    self.cursor = 0
        if self.rounds >= MAX_ROUNDS or len(self.cmds) <= 1:
            self.done = True
        self.pending = []


def shrink_all(items: list[tuple[str, str, str]], oracle: Oracle, model: Model) -> list[Shrinking]:
    """Shrink each (text, kernel output, model output) of one header together.

    Every round runs the candidates of all unfinished traces in one ORACLE call.
    """
    states = []
    for text, kout, mout in items:
        header, cmds = split_trace(text)
        d = first_difference(kout, mout)
        states.append(Shrinking(header, cmds, kout, mout, d[1] if d else "?"))
        states[-1].truncate(model)
    first = True
    while True:
        active = [s for s in states if not s.done]
        if not active:
            return states
        batch: list[tuple[Shrinking, list[str]]] = []
        for s in active:
            cands = s.propose(first)
            if not cands and s.cursor >= min(s.chunks, len(s.cmds)):
                s.judge([])
            batch.extend((s, c) for c in cands)
        first = False
        if not batch:
            continue
        texts = [join_trace(s.header, c) for s, c in batch]
        kouts = oracle(texts)
        by_state: dict[int, list[tuple[str, str]]] = {}
        for (s, _), text, kout in zip(batch, texts, kouts):
            by_state.setdefault(id(s), []).append((kout, model(text)))
        for s in active:
            if id(s) in by_state:
                s.judge(by_state[id(s)])
