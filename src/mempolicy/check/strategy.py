"""Which task runs next: exhaustive search with a preemption bound, PCT, replay.

A *choice point* is a schedule point where more than one task can run.  A
schedule is the list of task indices chosen at its choice points, which is
all a replay needs.  A choice is a *preemption* when the running task could
have gone on and another one is picked instead; switching away from a task
that blocked or finished is free.

* ``BoundedDFS``: stateless depth-first search over schedules with at most
  ``bound`` preemptions (iterative context bounding, as CHESS and loom do);
  each schedule is run from the start state again.
* ``PCT``: probabilistic concurrency testing (Burckhardt et al., ASPLOS
  2010): random task priorities and ``depth - 1`` random steps where the
  running task drops to the lowest priority; seeded.
* ``Replay``: follow a recorded schedule.
"""

from __future__ import annotations

import random

from .sched import Nondeterminism


class _Entry:
    __slots__ = ("ids", "cur", "chosen", "tried", "pre")

    def __init__(self, ids, cur, chosen, pre) -> None:
        self.ids = ids
        self.cur = cur
        self.chosen = chosen
        self.tried = {chosen}
        self.pre = pre


class BoundedDFS:
    """Every schedule with at most ``bound`` preemptions, one after the other."""

    def __init__(self, bound: int = 2, prefix: list[int] | None = None,
                 split_depth: int | None = None) -> None:
        self.bound = bound
        self.stack: list[_Entry] = []
        self.k = 0
        self.pre = 0
        # distribution: ``prefix`` fixes the first choices (the search stays below them);
        # ``split_depth`` only varies the first choices (enumerates the prefixes)
        self.prefix = list(prefix or [])
        self.split_depth = split_depth

    def describe(self) -> str:
        return f"exhaustive, preemption bound {self.bound}"

    def begin(self) -> None:
        self.k = 0
        self.pre = 0

    def choose(self, sched, ready, cur):
        k = self.k
        self.k += 1
        ids = tuple(t.idx for t in ready)
        curi = cur.idx if cur is not None else None
        if k < len(self.stack):
            e = self.stack[k]
            if e.ids != ids or e.cur != curi:
                raise Nondeterminism(f"choice point {k}: runnable {ids} (current {curi}),"
                                     f" recorded {e.ids} (current {e.cur})")
            chosen = e.chosen
        else:
            chosen = curi if curi is not None else ids[0]
            if k < len(self.prefix):
                chosen = self.prefix[k]
                if chosen not in ids:
                    raise Nondeterminism(f"choice point {k}: prefix task {chosen} not runnable {ids}")
            e = _Entry(ids, curi, chosen, self.pre)
            if k < len(self.prefix) or (self.split_depth is not None and k >= self.split_depth):
                e.tried = set(ids)               # no alternatives here
            self.stack.append(e)
        if curi is not None and chosen != curi:
            self.pre += 1
        return ready[ids.index(chosen)]

    def next_schedule(self) -> bool:
        """Move to the next schedule; False when every one within the bound was run."""
        del self.stack[self.k:]
        while self.stack:
            e = self.stack[-1]
            for alt in e.ids:
                if alt in e.tried:
                    continue
                cost = e.pre + (1 if e.cur is not None and alt != e.cur else 0)
                if cost > self.bound:
                    continue
                e.tried.add(alt)
                e.chosen = alt
                return True
            self.stack.pop()
        return False


class PCT:
    """One randomised schedule: priorities plus ``depth - 1`` priority change points."""

    def __init__(self, seed: int, depth: int = 3, steps: int = 100) -> None:
        self.seed = seed
        self.depth = depth
        self.rng = random.Random(seed)
        self.steps = max(steps, depth)
        self.changes = sorted(self.rng.sample(range(1, self.steps + 1), depth - 1)) if depth > 1 else []
        self.prio: dict[int, float] = {}

    def describe(self) -> str:
        return f"PCT seed {self.seed}, depth {self.depth}"

    def begin(self) -> None:
        pass

    def _p(self, idx: int) -> float:
        p = self.prio.get(idx)
        if p is None:
            p = self.prio[idx] = self.depth + self.rng.random()
        return p

    def choose(self, sched, ready, cur):
        step = sched.step
        for i, c in enumerate(self.changes):
            if c == step and cur is not None:
                self.prio[cur.idx] = i + self.rng.random() * 0.5
        return max(ready, key=lambda t: self._p(t.idx))


class Replay:
    """Follow a recorded list of choices; past its end, run without preemption."""

    def __init__(self, choices: list[int]) -> None:
        self.choices = list(choices)
        self.k = 0
        self.diverged = False

    def describe(self) -> str:
        return "replay"

    def begin(self) -> None:
        self.k = 0

    def choose(self, sched, ready, cur):
        k = self.k
        self.k += 1
        if k < len(self.choices):
            for t in ready:
                if t.idx == self.choices[k]:
                    return t
            self.diverged = True
        return cur if cur is not None else ready[0]
