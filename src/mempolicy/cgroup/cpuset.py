"""Changing a cpuset's memory nodes (kernel/cgroup/cpuset.c), as far as policies go.

Writing ``cpuset.mems`` ends in ``cpuset_update_tasks_nodemask``: for each
task of the cpuset, ``cpuset_change_task_nodemask`` rebinds the task policy
under ``task_lock`` while ``mems_allowed`` briefly allows both masks; then,
for each thread-group leader, ``mpol_rebind_mm`` rebinds every VMA policy
under ``mmap_write_lock``.  Shared (shmem) policies are not rebound.

Where the model differs: there is no cgroup hierarchy, ``mems_allowed_seq``
or ``cpuset_being_rebound``; the caller names the tasks, and the first task
of each address space plays its thread-group leader.  No page migration
(``memory_migrate`` off).
"""

from __future__ import annotations

from mempolicy.core.nodemask import Nodemask
from mempolicy.scopes.mm import mpol_rebind_mm
from mempolicy.scopes.task import mpol_rebind_task


def cpuset_change_task_nodemask(tsk, newmems: Nodemask) -> None:
    """Set a task's mems_allowed and rebind its policy, under task_lock(tsk)."""
    tsk.alloc_lock.lock()
    try:
        tsk.mems_allowed = tsk.mems_allowed | newmems
        mpol_rebind_task(tsk, newmems)
        tsk.mems_allowed = newmems
    finally:
        tsk.alloc_lock.unlock()


def cpuset_update_tasks_nodemask(kernel, tasks, newmems: Nodemask) -> None:
    """Move ``tasks`` (one cpuset) to the memory nodes ``newmems``."""
    newmems = newmems & kernel.topo.n_memory          # guarantee_online_mems
    if not newmems:
        newmems = kernel.topo.n_memory
    seen = set()
    for tsk in tasks:
        if tsk.exited:
            continue
        cpuset_change_task_nodemask(tsk, newmems)
        if id(tsk.mm) in seen:                         # not the thread-group leader
            continue
        seen.add(id(tsk.mm))
        mpol_rebind_mm(tsk.mm, newmems)
