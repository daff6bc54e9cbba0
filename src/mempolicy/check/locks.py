"""The scheduler's model of the kernel's locks, and lockdep.

``RWLock`` and ``SpinLock`` (``mempolicy.scopes.shmem``) hand every acquire
and release to the scheduler while one is active.  The scheduler keeps the
holders itself: a task that cannot take a lock is marked blocked and another
task runs.  It checks lock use as lockdep does: an unlock of a lock not
held, a lock taken twice, the model's ``lockdep_assert_held`` family
(``mempolicy.core.sched_points``), deadlock, and cycles in the order lock
classes are taken in, kept across the schedules of one exploration.
"""

from __future__ import annotations

import sys

from mempolicy.core.slab import SanitizerError

from . import sched as _s


class LockModel:
    """Lock state and lockdep for ``Scheduler`` (a mixin: it uses the scheduler's tasks,
    ``current``, ``_point``, ``_fail``, ``_wait_elsewhere`` and ``log``)."""

    # -- locks ---------------------------------------------------------------
    def _h(self, lock) -> dict:
        h = self.holders.get(id(lock))
        if h is None:
            h = self.holders[id(lock)] = {"lock": lock, "read": {}, "write": None, "spin": None}
        return h

    def _lockname(self, lock) -> str:
        return self._lock_names.get(id(lock)) or lock.name

    def _available(self, lock, mode: str) -> bool:
        if mode == "spin":
            return not lock.locked
        if mode == "read":
            return not lock.writer
        return not lock.writer and lock.readers == 0

    def lock_acquire(self, lock, mode: str) -> None:
        if self.aborting:
            raise _s.Abort
        me = self.current
        self._point()
        if self.lockdep and me.held:
            self._lock_dependency(me, lock)
        h = self._h(lock)
        if self.fp_on:
            key = self._lockkey(lock)
            self.seg.add((key, mode != "read"))
        while not self._available(lock, mode):
            if self.fp_on:                 # a failed attempt reads what any release changes
                self.seg.add((key, True))
            mine = (h["write"] == me.idx or h["spin"] == me.idx
                    or (mode == "write" and me.idx in h["read"]))
            if mine:
                self._fail(me, "deadlock", f"{me.name} takes {self._lockname(lock)} ({mode})"
                                           f" which it already holds")
                raise _s.Abort
            me.state = _s.BLOCKED
            me.blocked_on = (lock, mode)
            if self.verbose:
                self.log("block", lock, mode, self._lock_state(lock))
            self._wait_elsewhere(me)
            if self.fp_on:                 # woken: the retry belongs to this new segment
                self.seg.add((key, mode != "read"))
        if mode == "spin":
            lock.locked = True
            h["spin"] = me.idx
        elif mode == "read":
            lock.readers += 1
            h["read"][me.idx] = h["read"].get(me.idx, 0) + 1
        else:
            lock.writer = True
            h["write"] = me.idx
        me.held.append((lock, mode))
        me.locked.add(self._lockname(lock))
        self.log("lock", lock, mode, None)

    def _lock_dependency(self, me: "_s.SchedTask", lock) -> None:
        """lockdep: record "held -> lock" for every lock class ``me`` holds, and fail on a
        cycle (a possible deadlock even if this schedule does not deadlock)."""
        new = lock.name
        for held, _mode in me.held:
            old = held.name
            if old == new:                 # same class, e.g. parent and child mmap_lock: nested
                continue
            path = self._order_path(new, old)
            if path is not None:
                chain = " -> ".join(path)
                first = self.lock_order[path[0]][path[1]]
                self._fail(me, "lock order",
                           f"possible circular locking dependency: {me.name} takes {new} while"
                           f" holding {old} in {_s.kernel_function(3)}, but {chain} was taken"
                           f" earlier ({first[0]} in {first[1]})")
                raise _s.Abort
            after = self.lock_order.setdefault(old, {})
            if new not in after:
                after[new] = (me.name, _s.kernel_function(3))

    def _order_path(self, src: str, dst: str) -> list[str] | None:
        """A chain of recorded dependencies from lock class ``src`` to ``dst``."""
        stack = [[src]]
        seen = {src}
        while stack:
            path = stack.pop()
            for nxt in self.lock_order.get(path[-1], {}):
                if nxt == dst:
                    return path + [nxt]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(path + [nxt])
        return None

    def lock_release(self, lock, mode: str) -> None:
        me = self.current
        if self.fp_on:
            self.seg.add((self._lockkey(lock), mode != "read"))
        h = self._h(lock)
        ok = True
        if mode == "spin":
            ok = h["spin"] == me.idx and lock.locked
        elif mode == "read":
            ok = h["read"].get(me.idx, 0) > 0
        else:
            ok = h["write"] == me.idx and lock.writer
        if not ok:
            if self.aborting:
                return
            state = self._lock_state(lock)
            raise _s.CheckFailure("lock misuse", f"{me.name} releases {self._lockname(lock)} ({mode})"
                                              f" it does not hold ({state})")
        if mode == "spin":
            lock.locked = False
            h["spin"] = None
        elif mode == "read":
            lock.readers -= 1
            n = h["read"][me.idx] - 1
            if n:
                h["read"][me.idx] = n
            else:
                del h["read"][me.idx]
        else:
            lock.writer = False
            h["write"] = None
        for i in range(len(me.held) - 1, -1, -1):
            if me.held[i][0] is lock and me.held[i][1] == mode:
                del me.held[i]
                break
        for t in self.tasks:
            if t.state == _s.BLOCKED and t.blocked_on[0] is lock:
                t.state = _s.READY
                t.blocked_on = None
        if not self.aborting:
            exc = sys.exc_info()[1]
            if exc is not None and isinstance(exc, (SanitizerError, _s.CheckFailure)):
                self._fail(me, _s.classify(exc), str(exc), _s.raised_in(exc))     # unwinding a finding
                return
            self.log("unlock", lock, mode, None)

    def _lock_state(self, lock) -> str:
        h = self._h(lock)
        names = {t.idx: t.name for t in self.tasks}
        if h["write"] is not None:
            return f"write-held by {names[h['write']]}"
        if h["spin"] is not None:
            return f"held by {names[h['spin']]}"
        if h["read"]:
            return "read-held by " + ", ".join(names[i] for i in sorted(h["read"]))
        return "not held"

    def assert_held(self, lock, mode: str, where: str | None) -> None:
        """lockdep: the running task holds ``lock`` for ``mode`` ("read": read or write;
        "any": in any mode)."""
        if not self.lockdep or self.aborting:
            return
        me = self.current
        h = self._h(lock)
        if h["write"] == me.idx or h["spin"] == me.idx:
            return
        if mode in ("read", "any") and h["read"].get(me.idx):
            return
        if where is None:
            where = _s.kernel_function(2)
        want = "for writing" if mode == "write" else "held"
        raise _s.CheckFailure("lock misuse", f"{where} without {self._lockname(lock)} {want} by"
                                          f" {me.name} ({self._lock_state(lock)})")

    def _deadlock_text(self, blocked: list["_s.SchedTask"]) -> str:
        parts = []
        for t in blocked:
            lock, mode = t.blocked_on
            parts.append(f"{t.name} waits for {self._lockname(lock)} ({mode}), {self._lock_state(lock)}")
        return "; ".join(parts)

    def locks_in_use(self) -> list[str]:
        """Locks some task still holds (at the end of a schedule)."""
        out = []
        for h in self.holders.values():
            st = self._lock_state(h["lock"])
            if st != "not held":
                out.append(f"{self._lockname(h['lock'])} {st}")
        return out
