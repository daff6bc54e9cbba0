"""The controlled scheduler: model tasks in Python threads, one running at a time.

Each model task (a ``SchedTask``) runs its program in a worker thread (or a
greenlet, ``MEMPOLICY_CHECK_CARRIER=greenlet``), but only the task holding
the baton runs; every other one waits on its own semaphore.  At each schedule point the model kernel calls (a lock acquire, a
refcount operation, a load or store of a policy pointer, a sleep) the
running task asks its ``Strategy`` which task runs next and, if that is
another task, hands the baton over and waits.  Locks are modelled here, not
in the threads (``check/locks.py``): a task that cannot take a lock is
marked blocked and another task runs, so no thread ever blocks while it
holds the baton.

The scheduler is also the first half of the oracle: it records a timeline
of what each task did to which policy, checks lock use (unlock without
lock, a lock held in the wrong mode, a task returning with a lock held, the
kernel's own lockdep assertions, deadlock) and turns a ``SanitizerError``
raised anywhere in the model into a finding at the step it happened.
"""

from __future__ import annotations

import os
import sys
import threading

from mempolicy.core import sched_points as hooks
from mempolicy.core import mempolicy as _core
from mempolicy.core.slab import SanitizerError

from .locks import LockModel

READY, BLOCKED, DONE = 0, 1, 2
# how a step touches an object (footprints for check/dpor.py): two steps conflict unless
# both read it or both add to it (increments commute)
READ, WRITE, ADD = 0, 1, 2
STALL_SECONDS = 120.0


class Abort(BaseException):
    """Unwinds a task whose schedule was abandoned after a finding."""


class Nondeterminism(RuntimeError):
    """A replayed prefix met a different set of runnable tasks."""


class CheckFailure(Exception):
    """A finding of the checker's own oracle (lock misuse, deadlock, invariants)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


class Finding:
    """What went wrong in one schedule: kind, message, the step and the task."""

    __slots__ = ("kind", "message", "step", "task", "where")

    def __init__(self, kind: str, message: str, step: int, task: str | None,
                 where: str | None = None) -> None:
        self.kind = kind
        self.message = message
        self.step = step
        self.task = task
        self.where = where

    def __str__(self) -> str:
        body = self.message
        if body.startswith(self.kind + ": "):
            body = body[len(self.kind) + 2:]
        head = self.kind + (f" in {self.where}" if self.where else "")
        return f"{head}: {body}"

    def to_json(self) -> dict:
        return {"kind": self.kind, "message": self.message, "step": self.step, "task": self.task,
                "where": self.where}


def raised_in(exc: BaseException) -> str | None:
    """The innermost model-kernel function (not a carrier) an exception went through."""
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for f in reversed(frames):
        name = f.f_code.co_name
        mod = f.f_globals.get("__name__", "")
        if (name not in _CARRIERS and name not in ("__getattribute__", "__setattr__", "describe")
                and mod.startswith("mempolicy.") and not mod.startswith("mempolicy.check")):
            return name
    return None


def classify(exc: BaseException) -> str:
    """The kind of finding a sanitizer message reports."""
    msg = str(exc)
    if isinstance(exc, CheckFailure):
        return exc.kind
    if not isinstance(exc, SanitizerError):
        return "crash"
    for key, kind in (("double put", "double put"), ("double free", "double put"),
                      ("below zero", "refcount below zero"), ("after free", "use after free"),
                      ("on a freed policy", "use after free"), ("mpol_dup of a freed", "use after free"),
                      ("static policy", "static policy freed"), ("leaked", "leak")):
        if key in msg:
            return kind
    return "sanitizer"


# Model functions that only carry an operation (refcount primitives, lock methods):
# the timeline names the kernel function that called them.
_CARRIERS = frozenset({
    "mpol_get", "__mpol_put", "mpol_put", "mpol_cond_put", "read_lock", "read_unlock",
    "write_lock", "write_unlock", "lock", "unlock", "__enter__", "__exit__", "alloc", "free",
    "__init__", "__mpol_dup", "mpol_dup", "mpol_new", "_static", "lockdep_assert_held",
    "mmap_assert_locked", "mmap_assert_write_locked", "vma_assert_write_locked",
})


def kernel_function(depth: int = 2) -> str:
    """The innermost model-kernel function on the stack that is not a carrier."""
    f = sys._getframe(depth)
    while f is not None:
        name = f.f_code.co_name
        if name not in _CARRIERS:
            mod = f.f_globals.get("__name__", "")
            if mod.startswith("mempolicy.") and not mod.startswith("mempolicy.check"):
                return name
        f = f.f_back
    return "?"


def _refop_name() -> str:
    """mpol_get, mpol_put or mpol_cond_put: which primitive called the refcount hook."""
    f = sys._getframe(2)
    name = f.f_code.co_name
    if name == "__mpol_put":
        outer = f.f_back.f_code.co_name
        return outer if outer in ("mpol_put", "mpol_cond_put") else "__mpol_put"
    return name


class SchedTask:
    """One model task under the scheduler: its program, state and held locks."""

    def __init__(self, sched: "Scheduler", idx: int, name: str, program) -> None:
        self.sched = sched
        self.idx = idx
        self.name = name
        self.program = program
        self.state = READY
        self.blocked_on = None           # (lock, mode)
        self.sem = threading.Semaphore(0) if sched.carrier == "thread" else None
        self.held: list = []             # [(lock, mode)]
        self.lookup_refs: dict[int, int] = {}
        self.op = ""
        self.glet = None
        # footprints for partial-order reduction (check/dpor.py): the policies this
        # operation has seen (any later segment of it may still use them), the operation's
        # own keys (world.op_keys) and keys owed to the next segment (a child's creation)
        self.seen: set = set()                     # (("pol", ...), READ) pairs
        self.op_locked: tuple = ()                 # (key, mode): by its steps under any lock
        self.op_keys: tuple = ()                   # (key, mode, lock): by its steps under a lock
        self.op_always: frozenset = frozenset()    # carried by all its steps
        self.locked: set = set()                   # locks the running step held or took
        self.extra: set = set()

    def __repr__(self) -> str:
        return f"<{self.name} {('ready', 'blocked', 'done')[self.state]}>"


class _Worker:
    __slots__ = ("thread", "job_sem", "job")

    def __init__(self) -> None:
        self.job_sem = threading.Semaphore(0)
        self.job: SchedTask | None = None
        self.thread = threading.Thread(target=_worker_main, args=(self,), daemon=True,
                                       name="mempolicy-check-worker")
        self.thread.start()


_pool: list[_Worker] = []
_pool_lock = threading.Lock()


def _forget_workers() -> None:
    """In a forked child the parked worker threads do not exist: start afresh."""
    global _pool_lock
    _pool.clear()
    _pool_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_workers)


def _get_worker() -> _Worker:
    with _pool_lock:
        if _pool:
            return _pool.pop()
    return _Worker()


def default_carrier() -> str:
    """"thread" unless ``MEMPOLICY_CHECK_CARRIER=greenlet``: measured in CPU time on the
    small scenarios of the catalogue, a greenlet switch
    (which copies the task's stack slice) cost more here than a semaphore handoff
    between parked threads, with the timeline on (0.1 to 0.8 times) and off (0.8 to 0.9)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = os.environ.get("MEMPOLICY_CHECK_CARRIER") or "thread"
    return _DEFAULT


_DEFAULT: str | None = None


def _run_program(st: SchedTask) -> None:
    """A task's program, with what it raised recorded as a finding (either carrier)."""
    sched = st.sched
    try:
        if not sched.aborting:
            st.program(st)
    except Abort:
        pass
    except BaseException as e:                # a finding raised by the model or the oracle
        sched.record_exception(st, e)


def _task_main(st: SchedTask) -> None:
    """A task's greenlet: its program, then the end of the task."""
    try:
        _run_program(st)
    finally:
        st.sched.task_done(st)


def _worker_main(w: _Worker) -> None:
    while True:
        w.job_sem.acquire()
        st = w.job
        if st is None:
            return
        sched = st.sched
        st.sem.acquire()                      # wait for the baton
        try:
            _run_program(st)
        finally:
            w.job = None
            with _pool_lock:
                _pool.append(w)
            sched.task_done(st)


class Scheduler(LockModel):
    """Runs a set of model tasks under a strategy, one schedule point at a time.

    ``world`` supplies names for the timeline (``label(obj)``).  The model
    calls the methods below through ``mempolicy.core.sched_points.sched``.
    """

    def __init__(self, strategy, world=None, lockdep: bool = True, max_steps: int = 20000,
                 lock_order: dict | None = None, carrier: str | None = None,
                 verbose: bool = True) -> None:
        self.strategy = strategy
        # ``verbose``: keep the timeline (events, policy texts, the refcount notes); a
        # search runs without it and replays a failing schedule with it (check/explore.py)
        self.verbose = verbose
        # what carries a task: "greenlet" (a switch is a stack swap in this thread) or
        # "thread" (an OS thread per task and a semaphore handoff: the old engine)
        self.carrier = carrier or default_carrier()
        if self.carrier == "greenlet":
            import greenlet
            self._greenlet = greenlet.greenlet
            self._main_glet = greenlet.getcurrent()
            self._handoff: SchedTask | None = None
        # lockdep's dependency graph, kept across the schedules of one exploration:
        # lock class -> {lock class taken while holding it: (task, function) first seen}
        self.lock_order: dict[str, dict[str, tuple[str, str]]] = {} if lock_order is None else lock_order
        self.world = world
        self._lock_names: dict[int, str] = world.lock_names if world is not None else {}
        self.lockdep = lockdep
        self.max_steps = max_steps
        self.tasks: list[SchedTask] = []
        self.current: SchedTask | None = None
        self.events: list[tuple] = []
        self.step = 0
        self.finding: Finding | None = None
        self.aborting = False
        self.main_sem = threading.Semaphore(0) if self.carrier == "thread" else None
        self.choices: list[int] = []
        self.preemptions = 0
        self.holders: dict[int, dict] = {}    # id(lock) -> {"read": {idx: n}, "write": idx, "spin": idx}
        self.names: dict[int, str] = {}       # serial -> "bind:1" (last seen text)
        # partial-order reduction: a strategy with ``footprints`` sees every schedule point
        # with what the segment of the task that ran up to it touched (``access``)
        self.fp_on = bool(getattr(strategy, "footprints", False))
        self.seg: set = set()
        self.polkeys: dict[int, tuple] = {}   # id(policy) -> a name stable across schedules
        self.allocs: dict[int, int] = {}      # task idx -> policies it allocated so far
        self.redundant = False                # a sleep-set-blocked schedule, abandoned

    # -- tasks ---------------------------------------------------------------
    def spawn(self, name: str, program) -> SchedTask:
        """Add a task (before ``run`` or from a running task, e.g. a forked child)."""
        st = SchedTask(self, len(self.tasks), name, program)
        self.tasks.append(st)
        if self.fp_on and self.current is not None:   # a child: its first step follows its creation
            self.seg.add((("task", name), True))
            st.extra.add((("task", name), False))
        if self.carrier == "greenlet":
            st.glet = self._greenlet(lambda: _task_main(st), parent=self._main_glet)
            return st
        w = _get_worker()
        w.job = st
        w.job_sem.release()
        return st

    def run(self) -> Finding | None:
        """Run every task to its end (or to the first finding) under the strategy."""
        if not self.tasks:
            return None
        saved = hooks.sched, _core.refcount_hook
        hooks.sched = self
        _core.refcount_hook = self.refcount
        if self.carrier == "greenlet":
            try:
                found = self._run_greenlets()
            finally:
                hooks.sched, _core.refcount_hook = saved
            self._finish()
            return found
        try:
            ready = [t for t in self.tasks if t.state == READY]
            first = self._choose(ready, None)
            if first is None:
                return None
            self.current = first
            first.sem.release()
            self._wait_main()
            # after a finding: unwind the tasks still parked, one at a time
            while True:
                pending = [t for t in self.tasks if t.state != DONE]
                if not pending:
                    break
                self.aborting = True
                t = pending[0]
                self.current = t
                t.sem.release()
                self._wait_main()
        finally:
            hooks.sched, _core.refcount_hook = saved
        self._finish()
        return self.finding

    def _finish(self) -> None:
        """The run ended: hand the last segment to a reducing strategy."""
        if self.fp_on and not self.aborting:
            self.strategy.close(self._close_segment())

    def _run_greenlets(self) -> Finding | None:
        """The main loop of the greenlet carrier: run the chosen task until a task ends
        (tasks switch to each other directly), then the task its end chose."""
        ready = [t for t in self.tasks if t.state == READY]
        nxt = self._choose(ready, None)
        if nxt is None:
            return None
        while nxt is not None:
            self.current = nxt
            self._handoff = None
            nxt.glet.switch()
            nxt = self._handoff
        while True:                          # after a finding: unwind the parked tasks
            pending = [t for t in self.tasks if t.state != DONE]
            if not pending:
                return self.finding
            self.aborting = True
            self.current = pending[0]
            pending[0].glet.switch()

    def _wake(self, nxt: SchedTask | None) -> None:
        """Hand the baton to ``nxt`` (None: the main loop) from a task that ended."""
        if self.carrier == "greenlet":
            self._handoff = nxt
        elif nxt is None:
            self.main_sem.release()
        else:
            nxt.sem.release()

    def _wait_main(self) -> None:
        if not self.main_sem.acquire(timeout=STALL_SECONDS):
            self.aborting = True
            raise RuntimeError(f"scheduler stalled for {STALL_SECONDS} s (a task neither ran"
                               " nor finished); tasks: " + ", ".join(map(repr, self.tasks)))

    def task_done(self, st: SchedTask) -> None:
        """A task's program returned (or was unwound): run another one, or wake the main thread."""
        st.state = DONE
        if self.aborting:
            self._wake(None)
            return
        if st.held:
            locks = ", ".join(f"{lk.name} ({mode})" for lk, mode in st.held)
            self._fail(st, "lock misuse", f"{st.name} finished its program holding {locks}")
            self._wake(None)
            return
        ready = [t for t in self.tasks if t.state == READY]
        if ready:
            nxt = self._choose(ready, None)
            if nxt is not None:
                self.current = nxt
            self._wake(nxt)
            return
        blocked = [t for t in self.tasks if t.state == BLOCKED]
        if blocked:
            self._fail(st, "deadlock", self._deadlock_text(blocked))
        self._wake(None)

    def record_exception(self, st: SchedTask, e: BaseException) -> None:
        if self.finding is None and not self.aborting:
            self._fail(st, classify(e), str(e), raised_in(e))

    def _fail(self, st: SchedTask | None, kind: str, message: str, where: str | None = None) -> None:
        if self.finding is None:
            self.finding = Finding(kind, message, self.step, st.name if st else None, where)
            self.events.append((self.step, st.idx if st else -1, "", "finding", kind, message, None))
        self.aborting = True

    # -- choosing ------------------------------------------------------------
    def _choose(self, ready: list[SchedTask], cur: SchedTask | None) -> SchedTask | None:
        """The next task to run; None when a reducing strategy abandons the schedule."""
        if self.fp_on:
            nxt = self.strategy.step(self._close_segment(), ready, cur)
            if nxt is None:                  # every runnable task asleep: a redundant schedule
                self.redundant = True
                self.aborting = True
                return None
            if len(ready) == 1:
                return nxt
        elif len(ready) == 1:
            return ready[0]
        else:
            nxt = self.strategy.choose(self, ready, cur)
        self.choices.append(nxt.idx)
        if cur is not None and nxt is not cur:
            self.preemptions += 1
        return nxt

    def _check_inflight(self, me: SchedTask) -> None:
        """A point reached while a sanitizer error unwinds the model: that error is the finding."""
        exc = sys.exc_info()[1]
        if exc is not None and isinstance(exc, (SanitizerError, CheckFailure)):
            self._fail(me, classify(exc), str(exc), raised_in(exc))
            raise Abort

    def _point(self) -> None:
        """A schedule point of the running task: maybe let another task run first."""
        me = self.current
        if self.aborting:
            raise Abort
        self._check_inflight(me)
        self.step += 1
        if self.step > self.max_steps:
            self._fail(me, "livelock", f"more than {self.max_steps} steps")
            raise Abort
        ready = [t for t in self.tasks if t.state == READY]
        if len(ready) > 1 or self.fp_on:
            nxt = self._choose(ready, me)
            if nxt is None:
                raise Abort
            if nxt is not me:
                self._switch(me, nxt)

    def _switch(self, me: SchedTask, nxt: SchedTask) -> None:
        self.current = nxt
        if self.carrier == "greenlet":
            nxt.glet.switch()
        else:
            nxt.sem.release()
            me.sem.acquire()
        if self.aborting:
            raise Abort

    def _wait_elsewhere(self, me: SchedTask) -> None:
        """``me`` cannot run (blocked): run another task until someone wakes ``me`` and picks it."""
        ready = [t for t in self.tasks if t.state == READY]
        if not ready:
            blocked = [t for t in self.tasks if t.state == BLOCKED]
            self._fail(me, "deadlock", self._deadlock_text(blocked))
            raise Abort
        nxt = self._choose(ready, None)
        if nxt is None:
            raise Abort
        self._switch(me, nxt)

    # -- footprints (partial-order reduction) ----------------------------------
    def access(self, key, write: bool) -> None:
        """The running segment reads or writes the object named ``key``."""
        if self.fp_on:
            self.seg.add((key, write))

    def _pol(self, pol, mode: int, ref: int | None = None) -> None:
        """The running segment uses (``READ``) or changes or frees (``WRITE``) policy
        ``pol``; ``ref``: it also increments (``ADD``) or decrements (``WRITE``: the result
        decides the free) the refcount, a separate word of the policy."""
        if self.fp_on:
            key = self.polkeys.get(id(pol))
            if key is None:                  # built with the start state: same serial each time
                key = self.polkeys[id(pol)] = (pol._serial,)
            self.seg.add((("pol",) + key, mode))
            if ref is not None:
                self.seg.add((("ref",) + key, ref))
            if self.current is not None:
                self.current.seen.add((("pol",) + key, READ))

    def _owner(self, kind: str, owner) -> tuple:
        """One key per policy slot family: a task's pointer, an mm's VMAs, a shared tree."""
        w = self.world
        if w is None:
            return (kind,)
        if kind == "task":
            return ("task", w.task_name(owner))
        if kind == "vma":
            return ("vmas", w.proc_of.get(id(owner.mm), "?"))
        return ("shared", w.sp_names.get(id(owner), "?"))

    def _lockkey(self, lock) -> tuple:
        return ("lock", self._lockname(lock))

    def _close_segment(self):
        """(task index, footprint) of the segment that just ended (None before the first)."""
        me = self.current
        if me is None:
            return None
        fp = self.seg
        self.seg = set()
        fp |= me.seen
        if me.held:
            names = self._lock_names
            held = {names.get(id(lk)) or lk.name for lk, _ in me.held}
            under = me.locked | held if me.locked else held
        else:
            held = set()
            under = me.locked
        if under:
            fp.update(me.op_locked)
            for key, mode, lk in me.op_keys:
                if lk in under:
                    fp.add((key, mode))
        me.locked = held
        if me.op_always:
            fp |= me.op_always
        if me.extra:
            fp.update(me.extra)
            me.extra = set()
        return me.idx, fp

    # -- the event log -------------------------------------------------------
    def log(self, kind: str, a=None, b=None, c=None) -> None:
        if not self.verbose:
            return
        me = self.current
        self.events.append((self.step, me.idx if me else -1, kernel_function(3), kind, a, b, c))

    def note_op(self, st: SchedTask, text: str, keys=((), ())) -> None:
        """A task starts one operation of its program (``keys``: the state outside the
        schedule points it touches, see ``World.op_keys``)."""
        st.op = text
        st.seen = set()
        st.op_locked = tuple((k[0], k[1]) for k in keys[0] if len(k) < 3 or k[2] is None)
        st.op_keys = tuple(k for k in keys[0] if len(k) > 2 and k[2] is not None)
        st.op_always = frozenset(keys[1])
        if self.verbose:
            self.events.append((self.step, st.idx, "", "op", text, None, None))

    # -- refcount (mempolicy.core.mempolicy.refcount_hook) --------------------
    def refcount(self, op: str, pol) -> None:
        if self.aborting:
            raise Abort
        me = self.current
        static = pol._cache is None
        if not static:                       # static policies are never freed: no race to explore
            self._point()
            self._pol(pol, READ, ADD if op == "inc" else WRITE)
            if type(pol) is _core.FreedMempolicy:
                what = "mpol_get" if op == "inc" else _refop_name()
                raise SanitizerError(f"{what} on a freed policy: {pol.describe()}")
        if static or not self.verbose:
            return
        name = _refop_name()
        before = pol._refcnt
        after = before + (1 if op == "inc" else -1)
        note = None
        key = id(pol)
        if name == "mpol_get" and kernel_function(2) == "mpol_shared_policy_lookup":
            me.lookup_refs[key] = me.lookup_refs.get(key, 0) + 1
        elif name == "mpol_cond_put":
            n = me.lookup_refs.get(key, 0)
            if n:
                me.lookup_refs[key] = n - 1
            else:
                note = "this task's lookup took no reference to drop"
        self.events.append((self.step, me.idx, kernel_function(2), "ref", name, pol, (before, after, note)))

    # -- policy pointers -----------------------------------------------------
    def load(self, kind: str, owner, pol, node=None) -> None:
        """A policy pointer was read from a task, a VMA or a shared-tree node."""
        if self.aborting:
            raise Abort
        if pol is None or pol._cache is None:
            if self.fp_on:                   # no point, but the slot was read
                self.seg.add((self._owner(kind, owner), READ))
            return                           # NULL or static: nothing can free it
        if self.verbose:
            self._remember(pol)
            self.log("load", kind, owner, (pol, self._where(kind, owner, node)))
        if self.fp_on:
            self.seg.add((self._owner(kind, owner), False))
            self._pol(pol, READ)
        self._point()

    def store(self, kind: str, owner, pol, node=None) -> None:
        """A policy pointer was stored (or cleared) in a task, a VMA or a shared-tree node."""
        if self.aborting:
            raise Abort
        if self.verbose:
            if pol is not None:
                self._remember(pol)
            self.log("store", kind, owner, (pol, self._where(kind, owner, node)))
        if self.fp_on:
            self.seg.add((self._owner(kind, owner), True))
            if pol is not None:
                self._pol(pol, READ)
        self._point()

    def modify(self, pol, what: str) -> None:
        """A policy object is about to be changed in place (rebind, MPOL_F_SHARED)."""
        if self.aborting:
            raise Abort
        self._point()
        self._pol(pol, WRITE)
        if type(pol) is _core.FreedMempolicy:
            raise SanitizerError(f"write after free: {what} of {pol.describe()}")
        if self.verbose:
            self._remember(pol)
            self.log("modify", what, pol, None)

    def might_sleep(self, pol, why: str) -> None:
        """The task may sleep here while it uses ``pol`` (reclaim under a BIND nodemask)."""
        if self.aborting:
            raise Abort
        if pol._cache is not None:
            self.log("sleep", why, pol, None)
            self._pol(pol, READ)
            self._point()

    def slab_event(self, what: str, obj) -> None:
        """A policy was allocated or freed (logged; a footprint for the reduction)."""
        if self.fp_on and self.current is not None:
            if what == "alloc":              # named by who allocated it: stable across schedules
                n = self.allocs.get(self.current.idx, 0) + 1
                self.allocs[self.current.idx] = n
                self.polkeys[id(obj)] = (self.current.name, n)
            self._pol(obj, WRITE)
        if self.aborting or self.current is None:
            return
        self.log(what, obj, None, None)

    def _remember(self, pol) -> None:
        try:
            self.names[pol._serial] = _core.mpol_to_str(pol)
        except SanitizerError:
            pass

    def _where(self, kind: str, owner, node) -> str:
        w = self.world
        if w is None:
            return kind
        return w.label(kind, owner, node)
