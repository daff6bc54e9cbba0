"""The task scope: ``struct task_struct``'s memory-policy fields (kernel/fork.c, mm/mempolicy.c).

A task has its own policy (``mempolicy``, None for MPOL_DEFAULT), the
interleave round-robin state ``il_prev``/``il_weight``, its cpuset's
``mems_allowed``, the CPU it runs on and its credentials (``cred``).  ``get_task_policy`` falls back to
``preferred_node_policy[numa_node_id()]`` as the kernel does once
numa_policy_init() has run.
"""

from __future__ import annotations

from mempolicy.core import sched_points as _chk
from mempolicy.core.mempolicy import Mempolicy, mpol_put, mpol_rebind_policy
from mempolicy.core.nodemask import Nodemask
from mempolicy.scopes.cred import Cred
from mempolicy.scopes.shmem import SpinLock
from mempolicy.uapi import MAX_NUMNODES


class Task:
    """One thread of a process."""

    def __init__(self, kernel, pid: int, mm, cpu: int = 0) -> None:
        self.kernel = kernel
        self.pid = pid
        self.mm = mm
        self.cpu = cpu
        self.cpus_allowed = frozenset(range(kernel.topo.nr_cpus))
        self.mempolicy: Mempolicy | None = None
        self.il_prev = MAX_NUMNODES - 1
        self.il_weight = 0
        self.mems_allowed: Nodemask = kernel.topo.n_memory
        self.cpuset_cpus = self.cpus_allowed     # its cpuset's effective CPUs (cgroup/cpuset.py)
        self.alloc_lock = SpinLock("task_lock")  # task_lock()
        self.exited = False
        self.runner_pgtables: list = []          # see KernelVersion.runner_fork_allocs
        self.cred: Cred = Cred.root()            # see scopes.cred

    def numa_node_id(self) -> int:
        """The node of the CPU the task runs on."""
        return self.kernel.topo.cpu_to_node(self.cpu)

    def numa_mem_id(self) -> int:
        """The nearest node with memory to the task's CPU."""
        return self.kernel.topo.numa_mem_id(self.numa_node_id())

    def get_task_policy(self) -> Mempolicy:
        """The task policy, or the static per-node preferred policy of the local node."""
        pol = self.mempolicy
        if _chk.sched is not None:
            _chk.sched.load("task", self, pol)
        if pol is not None:
            return pol
        return self.kernel.preferred_node_policy[self.numa_node_id()]

    def __repr__(self) -> str:
        return f"<task {self.pid} cpu={self.cpu}>"


def mpol_put_task_policy(task: Task) -> None:
    """At exit: detach the task policy under task_lock, then put it."""
    task.alloc_lock.lock()
    pol = task.mempolicy
    task.mempolicy = None
    if _chk.sched is not None:
        _chk.sched.store("task", task, None)
    task.alloc_lock.unlock()
    mpol_put(pol)


def mpol_rebind_task(tsk: Task, new: Nodemask) -> None:
    """Rebind the task policy to a new cpuset (caller holds task_lock(tsk))."""
    _chk.lockdep_assert_held(tsk.alloc_lock)
    pol = tsk.mempolicy
    if _chk.sched is not None:
        _chk.sched.load("task", tsk, pol)
        if pol is not None:
            _chk.sched.modify(pol, "mpol_rebind_policy")
    mpol_rebind_policy(pol, new)
