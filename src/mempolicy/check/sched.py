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
        self.sem = threading.Semaphore(0)
        self.held: list = []             # [(lock, mode)]
        self.lookup_refs: dict[int, int] = {}
        self.op = ""
        self.glet = None

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
    """"thread" unless ``MEMPOLICY_CHECK_CARRIER=greenlet``: measured with
    benchmarks/bench_check.py, a greenlet switch (which copies the task's stack slice)
    cost more here than a semaphore handoff between parked threads."""
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
                 lock_order: dict | None = None, carrier: str | None = None) -> None:
        self.strategy = strategy
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
        self.lockdep = lockdep
        self.max_steps = max_steps
        self.tasks: list[SchedTask] = []
        self.current: SchedTask | None = None
        self.events: list[tuple] = []
        self.step = 0
        self.finding: Finding | None = None
        self.aborting = False
        self.main_sem = threading.Semaphore(0)
        self.choices: list[int] = []
        self.preemptions = 0
        self.holders: dict[int, dict] = {}    # id(lock) -> {"read": {idx: n}, "write": idx, "spin": idx}
        self.names: dict[int, str] = {}       # serial -> "bind:1" (last seen text)

    # -- tasks ---------------------------------------------------------------
    def spawn(self, name: str, program) -> SchedTask:
        """Add a task (before ``run`` or from a running task, e.g. a forked child)."""
        st = SchedTask(self, len(self.tasks), name, program)
        self.tasks.append(st)
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
                return self._run_greenlets()
            finally:
                hooks.sched, _core.refcount_hook = saved
        try:
            ready = [t for t in self.tasks if t.state == READY]
            first = self._choose(ready, None)
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
        return self.finding

    def _run_greenlets(self) -> Finding | None:
        """The main loop of the greenlet carrier: run the chosen task until a task ends
        (tasks switch to each other directly), then the task its end chose."""
        ready = [t for t in self.tasks if t.state == READY]
        nxt = self._choose(ready, None)
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
    def _choose(self, ready: list[SchedTask], cur: SchedTask | None) -> SchedTask:
        if len(ready) == 1:
            return ready[0]
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
        if len(ready) > 1:
            nxt = self._choose(ready, me)
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
        self._switch(me, nxt)

    # -- the event log -------------------------------------------------------
    def log(self, kind: str, a=None, b=None, c=None) -> None:
        me = self.current
        self.events.append((self.step, me.idx if me else -1, kernel_function(3), kind, a, b, c))

    def note_op(self, st: SchedTask, text: str) -> None:
        """A task starts one operation of its program."""
        st.op = text
        self.events.append((self.step, st.idx, "", "op", text, None, None))

    # -- refcount (mempolicy.core.mempolicy.refcount_hook) --------------------
    def refcount(self, op: str, pol) -> None:
        if self.aborting:
            raise Abort
        me = self.current
        static = pol._cache is None
        if not static:                       # static policies are never freed: no race to explore
            self._point()
            if type(pol) is _core.FreedMempolicy:
                what = "mpol_get" if op == "inc" else _refop_name()
                raise SanitizerError(f"{what} on a freed policy: {pol.describe()}")
        if static:
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
            return                           # NULL or static: nothing can free it
        self._remember(pol)
        self.log("load", kind, owner, (pol, self._where(kind, owner, node)))
        self._point()

    def store(self, kind: str, owner, pol, node=None) -> None:
        """A policy pointer was stored (or cleared) in a task, a VMA or a shared-tree node."""
        if self.aborting:
            raise Abort
        if pol is not None:
            self._remember(pol)
        self.log("store", kind, owner, (pol, self._where(kind, owner, node)))
        self._point()

    def modify(self, pol, what: str) -> None:
        """A policy object is about to be changed in place (rebind, MPOL_F_SHARED)."""
        if self.aborting:
            raise Abort
        self._point()
        if type(pol) is _core.FreedMempolicy:
            raise SanitizerError(f"write after free: {what} of {pol.describe()}")
        self._remember(pol)
        self.log("modify", what, pol, None)

    def might_sleep(self, pol, why: str) -> None:
        """The task may sleep here while it uses ``pol`` (reclaim under a BIND nodemask)."""
        if self.aborting:
            raise Abort
        if pol._cache is not None:
            self.log("sleep", why, pol, None)
            self._point()

    def slab_event(self, what: str, obj) -> None:
        """A policy was allocated or freed (log only)."""
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
