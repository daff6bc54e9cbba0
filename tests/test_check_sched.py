"""The controlled scheduler's own oracle: lock misuse, deadlock, findings, normal runs."""

from __future__ import annotations

from mempolicy.core import sched_points as hooks
from mempolicy.check.sched import Scheduler
from mempolicy.check.strategy import BoundedDFS
from mempolicy.scopes.shmem import RWLock, SpinLock


def _explore(make_programs, bound=2, lockdep=True):
    """Run every schedule of freshly made programs; the first finding or None, and the count."""
    dfs = BoundedDFS(bound)
    n = 0
    while True:
        s = Scheduler(dfs, lockdep=lockdep)
        dfs.begin()
        for name, prog in make_programs():
            s.spawn(name, prog)
        f = s.run()
        n += 1
        if f is not None:
            return f, n
        if not dfs.next_schedule():
            return None, n


def test_unlock_without_lock():
    def progs():
        lk = RWLock("mmap_lock")
        return [("A", lambda st: lk.read_unlock())]
    f, _ = _explore(progs)
    assert f.kind == "lock misuse" and "does not hold" in f.message


def test_returning_with_a_lock_held():
    def progs():
        lk = SpinLock("task_lock")
        return [("A", lambda st: lk.lock())]
    f, _ = _explore(progs)
    assert f.kind == "lock misuse" and "holding task_lock" in f.message


def test_abba_deadlock_is_found():
    def progs():
        a, b = SpinLock("a"), SpinLock("b")

        def one(st):
            with a:
                with b:
                    pass

        def two(st):
            with b:
                with a:
                    pass
        return [("T1", one), ("T2", two)]
    f, n = _explore(progs, lockdep=False)     # with lockdep the order report comes first
    assert f is not None and f.kind == "deadlock"
    assert "T1 waits for" in f.message or "T2 waits for" in f.message
    assert n > 1                      # the first schedule (no preemption) is fine


def test_readers_share_and_writer_excludes():
    order = []

    def progs():
        lk = RWLock("l")

        def reader(name):
            def run(st):
                lk.read_lock()
                order.append(name)
                lk.read_unlock()
            return run

        def writer(st):
            lk.write_lock()
            assert lk.readers == 0
            lk.write_unlock()
        return [("R1", reader("R1")), ("R2", reader("R2")), ("W", writer)]
    f, n = _explore(progs)
    assert f is None and n > 5


def test_locks_work_without_the_scheduler():
    assert hooks.sched is None
    lk = RWLock("x")
    lk.read_lock()
    lk.read_lock()
    assert lk.readers == 2
    lk.read_unlock()
    lk.read_unlock()
    lk.write_lock()
    assert lk.writer
    lk.write_unlock()
    s = SpinLock("t")
    with s:
        assert s.locked
    assert not s.locked


def test_lock_order_cycle_is_reported_without_a_deadlock():
    """lockdep: A->B in one task and B->A in another is a possible deadlock even in a
    schedule where the tasks never overlap (bound 0), and the report names both orders."""
    def progs():
        a, b = SpinLock("lock_a"), SpinLock("lock_b")

        def one(st):
            with a:
                with b:
                    pass

        def two(st):
            with b:
                with a:
                    pass
        return [("T1", one), ("T2", two)]
    dfs = BoundedDFS(0)
    order: dict = {}
    s = Scheduler(dfs, lock_order=order)
    dfs.begin()
    for name, prog in progs():
        s.spawn(name, prog)
    f = s.run()
    assert f is not None and f.kind == "lock order"
    assert "lock_a" in f.message and "lock_b" in f.message and "circular" in f.message


def test_consistent_lock_order_is_clean():
    def progs():
        a, b = SpinLock("lock_a"), SpinLock("lock_b")

        def one(st):
            with a:
                with b:
                    pass
        return [("T1", one), ("T2", one)]
    f, n = _explore(progs)
    assert f is None and n > 1
