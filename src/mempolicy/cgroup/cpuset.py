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

import errno

from mempolicy.core.mempolicy import KernelError
from mempolicy.core.nodemask import Nodemask
from mempolicy.scopes.mm import mpol_rebind_mm
from mempolicy.scopes.task import mpol_rebind_task
from mempolicy.uapi import MPOL_MF_MOVE_ALL


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


# ---- cgroup v2 cpusets as a trace uses them (trace format 1.3, section 5.7) ----

class Cpuset:
    """One cgroup v2 cpuset below the root (``struct cpuset``).

    ``mems_allowed``/``cpus_allowed`` are what was written (empty: not
    written); the effective masks are those ANDed with the root's, or the
    root's when that leaves nothing.  On the default hierarchy
    ``cpuset_css_alloc`` sets ``CS_MEMORY_MIGRATE``, so moving a process in
    and changing ``cpuset.mems`` migrate its pages (there is no
    ``cpuset.memory_migrate`` file to turn that off).  The model has one
    level: the root cpuset is the whole machine (``top_cpuset`` after
    cpuset_init_smp: every node with memory, every CPU).  The root's
    ``old_mems_allowed`` is its ``mems_allowed`` at cpuset_init_smp, which
    cpuset_bind has set to ``node_possible_map`` on v2: a node without
    memory included (the model's possible nodes are its online nodes).
    """

    def __init__(self, kernel) -> None:
        self.kernel = kernel
        self.mems_allowed = Nodemask()
        self.cpus_allowed: frozenset[int] = frozenset()
        self.top_mems: Nodemask = kernel.topo.online        # top_cpuset.mems_allowed on v2
        self.top_effective: Nodemask = kernel.topo.n_memory # top_cpuset.effective_mems
        self.top_old_mems: Nodemask = self.top_mems        # top_cpuset.old_mems_allowed
        self.top_cpus = frozenset(range(kernel.topo.nr_cpus))
        self.effective_mems: Nodemask = self.top_effective
        self.effective_cpus = self.top_cpus
        self.old_mems_allowed = self.top_effective  # set when tasks move in
        self.tasks: list = []


def update_nodemask(kernel, cs: Cpuset, nodes: Nodemask) -> None:
    """Write ``cpuset.mems``: EINVAL for a node that is not online (a node without
    memory is accepted: on v2 the root's ``mems_allowed`` keeps every online
    node, only its ``effective_mems`` are the nodes with memory); nothing to do
    for the same mask; else rebind and migrate the group's tasks."""
    if not nodes.issubset(cs.top_mems):
        raise KernelError(errno.EINVAL)
    if nodes == cs.mems_allowed:
        return
    cs.mems_allowed = nodes
    cs.effective_mems = (nodes & cs.top_effective) or cs.top_effective
    update_tasks_nodemask(kernel, cs)


def update_tasks_nodemask(kernel, cs: Cpuset) -> None:
    """Every task gets the new ``mems_allowed`` and its task policy rebound; the
    thread-group leader's mm has its VMA policies rebound to the effective nodes
    (Linux 7.3 and 6.12 pass ``cs->effective_mems``; Debian's 6.1 passes
    ``cs->mems_allowed``, a node without memory included:
    ``cpuset_rebind_mm_to_effective_mems``) and, with
    ``CS_MEMORY_MIGRATE``, its pages moved from the old nodes to the new ones
    (``cpuset_migrate_mm``: ``do_migrate_pages`` with ``MPOL_MF_MOVE_ALL``,
    flushed before the write returns)."""
    newmems = cs.effective_mems
    leaders = []
    for tsk in cs.tasks:
        if tsk.exited:
            continue
        cpuset_change_task_nodemask(tsk, newmems)
        if all(tsk.mm is not t.mm for t in leaders):
            leaders.append(tsk)
    rebind = newmems if kernel.version.cpuset_rebind_mm_to_effective_mems else cs.mems_allowed
    for tsk in leaders:
        mpol_rebind_mm(tsk.mm, rebind)
        cpuset_migrate_mm(kernel, tsk, cs.old_mems_allowed, newmems)
    cs.old_mems_allowed = newmems


def cpuset_migrate_mm(kernel, tsk, from_: Nodemask, to: Nodemask) -> None:
    """Move the pages of ``tsk``'s mm as ``migrate_pages(from, to)`` would."""
    if from_ == to:
        return
    from mempolicy.syscalls.migrate import do_migrate_pages
    do_migrate_pages(kernel, tsk, tsk.mm, from_, to, MPOL_MF_MOVE_ALL)


def update_cpumask(kernel, cs: Cpuset, cpus: frozenset[int]) -> None:
    """Write ``cpuset.cpus``: ERANGE for a CPU beyond ``nr_cpu_ids`` (every CPU of
    the model is online); the tasks' affinity becomes the effective CPUs
    (``cpuset_update_tasks_cpumask``)."""
    if any(c >= len(cs.top_cpus) for c in cpus):
        raise KernelError(errno.ERANGE)
    if cpus == cs.cpus_allowed:
        return
    cs.cpus_allowed = cpus
    cs.effective_cpus = (cpus & cs.top_cpus) or cs.top_cpus
    for tsk in cs.tasks:
        cpuset_set_cpus_allowed(tsk, cs.effective_cpus)


def cpuset_set_cpus_allowed(tsk, cpus: frozenset[int]) -> None:
    """set_cpus_allowed_ptr: the task may run on ``cpus``.  A task on a CPU not among
    them moves where the scheduler likes; the model takes the lowest, which is where
    the oracle's runner pins it again (trace-format.md, section 5.7)."""
    tsk.cpuset_cpus = cpus
    tsk.cpus_allowed = cpus
    if tsk.cpu not in cpus:
        tsk.cpu = min(cpus)


def cpuset_attach(kernel, cs: Cpuset, tasks: list) -> None:
    """Move a whole process (``tasks``, its threads) into ``cs`` (``cgroup.procs``).

    Nothing happens to the tasks when the group's effective masks equal the
    root's; otherwise each task gets the group's CPUs and memory nodes, and
    (when the effective mems changed, or on kernels with
    ``cpuset_attach_rebinds_mm_on_cpus_change`` whenever the tasks moved)
    the leader's VMA policies are rebound and its pages migrated from the
    root's ``old_mems_allowed`` (``cpuset_attach``: ``oldcs->old_mems_allowed``,
    every possible node, so a node without memory counts in ``node_remap``
    and in the weights ``do_migrate_pages`` compares)."""
    cs.tasks.extend(tasks)
    mems = cs.effective_mems
    if cs.effective_cpus == cs.top_cpus and mems == cs.top_effective:
        cs.old_mems_allowed = mems
        return
    for tsk in tasks:
        cpuset_set_cpus_allowed(tsk, cs.effective_cpus)
        cpuset_change_task_nodemask(tsk, mems)
    if mems != cs.top_effective or kernel.version.cpuset_attach_rebinds_mm_on_cpus_change:
        # 7.3 leaves the mm alone when only the CPUs changed (recorded:
        # cpusets/21-attach-cpus-only keeps a relative policy's user nodemask)
        leader = tasks[0]
        mpol_rebind_mm(leader.mm, mems)
        cpuset_migrate_mm(kernel, leader, cs.top_old_mems, mems)
    cs.old_mems_allowed = mems
