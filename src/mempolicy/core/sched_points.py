"""The model kernel's schedule points: the one place a checker plugs into.

Like ``loom::thread`` or SimPy's ``yield env.timeout()``, the model owns
the points where another task could run and calls them itself; nothing in
the model imports the checker.  ``sched`` is None in ordinary runs, so a
point costs one global load and one attribute load::

    if sched_points.sched is not None:
        sched_points.sched.load("vma", vma, pol)

Under ``mempolicy check`` (or the cost tracer of ``--overhead``) ``sched``
is an object with these methods, called by the model at:

* ``lock_acquire(lock, mode)`` / ``lock_release(lock, mode)``: every
  ``RWLock`` (``mmap_lock``, ``sp->lock``) and ``SpinLock`` (``task_lock``)
  operation, mode ``"read"``, ``"write"`` or ``"spin"``;
* ``load(kind, owner, pol, node=None)`` and ``store(kind, owner, pol,
  node=None)``: a policy pointer read from or written to a task, a VMA or a
  shared-tree node (``kind`` is ``"task"``, ``"vma"`` or ``"shared"``);
* ``modify(pol, what)``: a policy changed in place (rebind, MPOL_F_SHARED);
* ``might_sleep(pol, why)``: the task may sleep while it uses ``pol``;
* ``slab_event(what, obj)``: a policy allocated or freed (log only);
* ``assert_held(lock, mode, where)``: the lockdep assertions below.

Atomic refcount operations reach the checker through
``mempolicy.core.mempolicy.refcount_hook``.

``mutated`` is True while a mutation tester has rewritten model functions
from the outside (``mempolicy check --mutants``); fast paths that bypass
the per-page code (``alloc.bulk``) then stay off.
"""

from __future__ import annotations

sched = None
mutated = False


# -- lockdep: what a model function needs held, stated at its top ---------------

def lockdep_assert_held(lock, mode: str = "any") -> None:
    """``lockdep_assert_held(lock)``: the running task holds ``lock`` (``mode`` "any",
    "read" or "write"; a write hold satisfies "read").

    :param lock: ``spinlock_t *`` / ``rwlock_t *`` (``SpinLock`` or ``RWLock``)

    >>> lockdep_assert_held(task.alloc_lock)       # doctest: +SKIP
    """
    if sched is not None:
        sched.assert_held(lock, mode, None)


def mmap_assert_locked(mm) -> None:
    """``mmap_assert_locked(mm)``: ``mm->mmap_lock`` held for reading or writing.

    :param mm: ``struct mm_struct *``
    """
    if sched is not None:
        sched.assert_held(mm.mmap_lock, "read", None)


def mmap_assert_write_locked(mm) -> None:
    """``mmap_assert_write_locked(mm)``: ``mm->mmap_lock`` held for writing.

    :param mm: ``struct mm_struct *``
    """
    if sched is not None:
        sched.assert_held(mm.mmap_lock, "write", None)


def vma_assert_write_locked(vma) -> None:
    """``vma_assert_write_locked(vma)``: the VMA may be changed (the model has no per-VMA
    lock, so this is ``mmap_lock`` held for writing).

    :param vma: ``struct vm_area_struct *``
    """
    if sched is not None:
        sched.assert_held(vma.mm.mmap_lock, "write", None)
