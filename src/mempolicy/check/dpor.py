"""Dynamic partial-order reduction: one schedule per Mazurkiewicz trace.

Two schedules that only reorder *independent* steps (steps of different
tasks that touch no common object, or only read it) end in the same state
and see the same values, so exploring one of them is enough.  ``SourceDPOR``
is the source-set algorithm with sleep sets of Abdulla, Aronis, Jonsson and
Sagonas ("Optimal Dynamic Partial Order Reduction", POPL 2014, Algorithm 1,
as Nidhugg implements it) over this checker's schedule points:

* A *step* is what one task does from one schedule point to its next one.
  The scheduler records its *footprint*: (key, write) pairs for each lock,
  policy and policy slot the points saw, for the policies the task's
  current operation has already seen (it may still use them), and for what
  the operation touches outside the points (``World.op_keys``: pages, the
  page cache, ``mems_allowed``, exit bookkeeping).  Two steps of different
  tasks are dependent when they share a key and one of them writes it.
* After each schedule, happens-before is computed over its steps, and each
  *race* (two dependent steps of different tasks, with no third step
  ordered between them) adds to the backtrack set of the point before the
  first step one task that can start the reversed order (an *initial* of
  the steps that do not happen after the first, followed by the second),
  unless one is already there or asleep.
* Sleep sets: a task whose alternative at a point was fully explored
  sleeps in the later schedules of that subtree until a step dependent on
  its next step runs.  A schedule where every runnable task sleeps is
  redundant and is abandoned.

Without a preemption bound the search is exhaustive up to equivalence.
With ``bound`` it only takes backtrack alternatives within that many
preemptions (a heuristic for large scenarios, not complete for the bound).

Where it differs from a real DPOR: the footprints are only as good as the
schedule points and ``op_keys``; anything the model shares between tasks
that neither sees would make two steps look independent.  The tests
compare its outcomes with the unreduced search on every catalogue scenario.
"""

from __future__ import annotations

from .sched import ADD, READ, WRITE, Nondeterminism


class _Pos:
    """One schedule point of the current schedule and the search state kept there."""

    __slots__ = ("ids", "cur", "chosen", "backtrack", "done", "sleep", "pre")

    def __init__(self, ids: tuple, cur, chosen: int, sleep: dict, pre: int) -> None:
        self.ids = ids                  # runnable task indices
        self.cur = cur                  # the task that reached this point (None: free switch)
        self.chosen = chosen
        self.backtrack = {chosen}
        self.done: set[int] = set()
        self.sleep = sleep              # task -> footprint of its next step (asleep here)
        self.pre = pre                  # preemptions before this point


def _dependent(a: dict, b: dict) -> bool:
    """Two footprints ({key: mode}) conflict on some common key."""
    if len(a) > len(b):
        a, b = b, a
    for k, m in a.items():
        mb = b.get(k)
        if mb is not None and (m != mb or m == WRITE):
            return True
    return False


class SourceDPOR:
    """Source-set DPOR with sleep sets; optionally within a preemption bound."""

    footprints = True

    def __init__(self, bound: int | None = None) -> None:
        self.bound = bound
        self.stack: list[_Pos] = []
        self.k = 0                      # next point of the running schedule
        self.pre = 0
        self.events: list[tuple[int, dict]] = []      # (task, footprint) per step
        self.fresh = 0                  # first point that differs from the previous schedule
        self.redundant = 0              # schedules abandoned (sleep-set blocked)
        self.races = 0                  # races found, over the whole search
        self._next_sleep: dict = {}     # the sleep set the step just recorded leaves
        self.n = 0                      # steps recorded in the running schedule
        # happens-before of the steps analysed so far, kept from one schedule to the next:
        # the steps before ``fresh`` are the previous schedule's, so only the rest is new
        self._hb: list[int] = []        # bit j of _hb[i]: step j happens before step i
        self._last: dict[int, int] = {}     # task -> its latest analysed step
        self._by_key: dict = {}         # key -> [last write, [reads since], [adds since]]
        self._undo: list[list] = []     # per analysed step: how to take it back

    def describe(self) -> str:
        return "DPOR (source sets)" + (f", preemption bound {self.bound}" if self.bound is not None else "")

    def begin(self) -> None:
        self.k = 0
        self.pre = 0
        self.n = 0

    # -- during a schedule -----------------------------------------------------
    def _record(self, seg) -> None:
        """The step that just ended: its footprint, and the sleep set it leaves behind."""
        if seg is None:
            return
        task, fp = seg
        i = self.n
        self.n = i + 1
        ev = self.events
        if i < self.fresh and i < len(ev):
            f = ev[i][1]               # a replayed step: the footprint it had last time
        else:
            del ev[i:]
            f = {}
            for key, m in fp:
                old = f.get(key)
                f[key] = m if old is None or old == m else WRITE      # read and add: a write
            ev.append((task, f))
        pos = self.stack[i]
        if pos.chosen != task:
            raise Nondeterminism(f"step {i}: ran task {task}, chose {pos.chosen}")
        if i + 1 < len(self.stack):
            return                     # replayed prefix: the next point keeps its own state
        asleep = {}
        for q, fq in pos.sleep.items():
            if q != task and not _dependent(fq, f):
                asleep[q] = fq
        self._next_sleep = asleep

    def step(self, seg, ready: list, cur):
        """Record the step that ended here and pick the task of the next one (None:
        every runnable task sleeps, the schedule is redundant)."""
        self._record(seg)
        k = self.k
        self.k += 1
        ids = tuple(t.idx for t in ready)
        curi = cur.idx if cur is not None else None
        if k < len(self.stack):
            pos = self.stack[k]
            if pos.ids != ids or pos.cur != curi:
                raise Nondeterminism(f"point {k}: runnable {ids} (current {curi}),"
                                     f" recorded {pos.ids} (current {pos.cur})")
            chosen = pos.chosen
        else:
            sleep = self._next_sleep if k else {}
            awake = [i for i in ids if i not in sleep]
            if not awake:
                self.redundant += 1
                return None
            chosen = curi if curi in awake else awake[0]
            pos = _Pos(ids, curi, chosen, sleep, self.pre)
            self.stack.append(pos)
        if curi is not None and chosen != curi:
            self.pre += 1
        return ready[ids.index(chosen)]

    def close(self, seg) -> None:
        """The schedule ran to its end: record its last step."""
        self._record(seg)

    # -- between schedules -----------------------------------------------------
    def _races(self) -> None:
        """Happens-before over the steps of the schedule just run; each race whose later
        step is new adds a task to a backtrack set.  The analysis of the steps before
        ``fresh`` (the previous schedule's) is kept; the later ones are taken back first."""
        ev = self.events
        n = len(ev)
        fresh = self.fresh
        hb, last, by_key, undo = self._hb, self._last, self._by_key, self._undo
        start = min(fresh, n)
        while len(hb) > start:         # take back the analysis of the steps that changed
            hb.pop()
            for act in reversed(undo.pop()):
                if act[0] == 0:        # an access appended to a list: remove it
                    act[1].pop()
                elif act[0] == 1:      # a key's state replaced (or made): restore it
                    if act[2] is None:
                        del by_key[act[1]]
                    else:
                        by_key[act[1]] = act[2]
                elif act[2] is None:   # a task's latest step
                    del last[act[1]]
                else:
                    last[act[1]] = act[2]
        # key -> [its last write, reads since, adds since]: an access before the last write
        # happens before that write (a write conflicts with every access), so a later step
        # that conflicts with it is ordered after it by the write and needs no look
        for i in range(len(hb), n):
            task, f = ev[i]
            deps = set()
            log: list = []
            for key, m in f.items():
                acc = by_key.get(key)
                if acc is not None:
                    w = acc[0]
                    if w >= 0 and ev[w][0] != task:
                        deps.add(w)
                    if m != READ:      # an add or a write conflicts with the reads since
                        for j in acc[1]:
                            if ev[j][0] != task:
                                deps.add(j)
                    if m != ADD:       # a read or a write with the adds since
                        for j in acc[2]:
                            if ev[j][0] != task:
                                deps.add(j)
                if m == WRITE:
                    log.append((1, key, acc))
                    by_key[key] = [i, [], []]
                else:
                    if acc is None:
                        log.append((1, key, None))
                        acc = by_key[key] = [-1, [], []]
                    lst = acc[1 if m == READ else 2]
                    lst.append(i)
                    log.append((0, lst))
            prev = last.get(task)
            clock = hb[prev] if prev is not None else 0
            hb.append(0)               # step i itself, while its races are reversed
            if deps:
                for j in sorted(deps, reverse=True):
                    if i >= fresh and not clock >> j & 1:
                        self._reverse(j, i, hb)
                    clock |= hb[j]
            hb[i] = clock | 1 << i
            log.append((2, task, prev))
            last[task] = i
            undo.append(log)

    def _reverse(self, j: int, i: int, hb: list[int]) -> None:
        """Race (j, i): make sure the point before step j can start the order "i first"."""
        self.races += 1
        ev = self.events
        pos = self.stack[j]
        v = [k for k in range(j + 1, i) if not hb[k] >> j & 1]
        v.append(i)
        # initials: tasks whose first step in v has no step of v before it in happens-before
        initials = []
        earlier = 0
        for k in v:
            if not hb[k] & earlier and ev[k][0] not in initials:
                initials.append(ev[k][0])
            earlier |= 1 << k
        if any(t in pos.backtrack or t in pos.sleep for t in initials):
            return
        runnable = [t for t in initials if t in pos.ids]
        if runnable:
            want = ev[i][0]
            pos.backtrack.add(want if want in runnable else runnable[0])
        else:                          # none can start there: every runnable task
            pos.backtrack.update(pos.ids)

    def next_schedule(self) -> bool:
        """Analyse the schedule just run, then move to the next one; False when done."""
        if self.k < len(self.stack):   # abandoned early: nothing past the last point reached
            del self.stack[self.k:]
        del self.events[self.n:]
        self._races()
        while self.stack:
            pos = self.stack[-1]
            pos.done.add(pos.chosen)
            for alt in sorted(pos.backtrack - pos.done):
                if alt in pos.sleep:
                    pos.done.add(alt)
                    continue
                if self.bound is not None:
                    cost = pos.pre + (1 if pos.cur is not None and alt != pos.cur else 0)
                    if cost > self.bound:
                        pos.done.add(alt)
                        continue
                # the explored alternative sleeps in the siblings still to come
                old = len(self.stack) - 1
                if old < len(self.events):
                    pos.sleep = dict(pos.sleep)
                    pos.sleep[pos.chosen] = self.events[old][1]
                pos.chosen = alt
                pos.backtrack.add(alt)
                self.fresh = old
                return True
            self.stack.pop()
        return False
