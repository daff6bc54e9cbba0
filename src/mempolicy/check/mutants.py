"""Named mutants: the classic protocol mistakes, each a set of generated mutants.

Every mutant is generated from the model's code by ``mempolicy.check.mutate``
and applied from the outside; a *named* mutant here is only a readable name
for one or a few of them together (the mistake a person would make), with
the scenario that shows it.  ``protocol-2008`` is not a mutation but the
seed document's design (``Kernel.boot(protocol="2008")``): one policy object
shared by every VMA of an mbind and marked MPOL_F_SHARED by the shared tree.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    name: str
    parts: tuple[str, ...]    # generated mutants (mempolicy.check.mutate names)
    rule: str                 # the rule it breaks
    scenarios: tuple[str, ...]
    protocol: str = "current"
    concurrent: bool = True   # needs another task to go wrong (else any schedule shows it)


_LOOKUP = "scopes.shmem:SharedPolicy.mpol_shared_policy_lookup"
_FAULT = ("alloc.fault:vma_alloc_folio", "alloc.fault:shmem_alloc_folio")

MUTANTS: dict[str, Mutant] = {m.name: m for m in [
    Mutant("shared-lookup-noref", (f"{_LOOKUP}:drop:mpol_get",),
           "the shared lookup takes no extra reference, but its users still mpol_cond_put()",
           ("shared-fault-vs-mbind",), concurrent=False),
    Mutant("shared-noref-nocondput", (f"{_LOOKUP}:drop:mpol_get",
                                      "core.mempolicy:mpol_cond_put:drop:__mpol_put"),
           "shared policies used like VMA policies: no lookup reference and no put; mmap_lock"
           " does not cover another process replacing them (the seed's point 4)",
           ("shared-fault-vs-mbind",)),
    Mutant("shared-tree-no-lock", (f"{_LOOKUP}:unlocked:read_lock(self.lock)",),
           "the shared tree is read without sp->lock, so the node's policy can be freed"
           " between the lookup and mpol_get",
           ("shared-fault-vs-mbind",)),
    Mutant("cond-put-as-put", tuple(f"{f}:put:mpol_cond_put" for f in _FAULT),
           "mpol_put() instead of mpol_cond_put() after get_vma_policy(): drops the owner's"
           " reference of a task or VMA policy",
           ("anon-fault-vs-mbind",), concurrent=False),
    Mutant("missing-cond-put", tuple(f"{f}:drop:mpol_cond_put" for f in _FAULT),
           "no mpol_cond_put() after the allocation: the shared lookup's reference leaks",
           ("shared-fault-vs-mbind",), concurrent=False),
    Mutant("mbind-mmap-read-lock", ("syscalls.mempolicy:do_mbind:read:write_lock(mm.mmap_lock)",),
           "mbind replaces VMA policies under mmap_lock held for read, so a fault can use the"
           " old policy while it is freed",
           ("anon-fault-vs-mbind",)),
    Mutant("numa-maps-no-task-lock", ("proc.task_mmu:_numa_maps:unlocked:with(task.alloc_lock)",
                                      "proc.task_mmu:_numa_maps:drop:mpol_get",
                                      "proc.task_mmu:_numa_maps:drop:mpol_put"),
           "numa_maps reads another task's policy without task_lock and without a reference",
           ("numa-maps-vs-set-mempolicy",)),
    Mutant("set-mempolicy-put-before-publish", ("syscalls.mempolicy:do_set_mempolicy:early:mpol_put#2",),
           "the old task policy is put before the new one is published under task_lock",
           ("numa-maps-vs-set-mempolicy",)),
    Mutant("get-mempolicy-no-ref", ("syscalls.mempolicy:do_get_mempolicy:drop:mpol_get",
                                    "syscalls.mempolicy:do_get_mempolicy:drop:mpol_put"),
           "get_mempolicy(MPOL_F_NODE|MPOL_F_ADDR) drops mmap_lock without holding a"
           " reference on the VMA policy it reads afterwards",
           ("get-mempolicy-vs-mbind",)),
    Mutant("rebind-task-no-task-lock", ("cgroup.cpuset:cpuset_change_task_nodemask:unlocked:"
                                        "lock(tsk.alloc_lock)",),
           "the cpuset rebind changes a task policy without task_lock(tsk)",
           ("rebind-vs-set-mempolicy",)),
    Mutant("exit-no-task-lock", ("scopes.task:mpol_put_task_policy:unlocked:lock(task.alloc_lock)",),
           "exit detaches and drops the task policy without task_lock",
           ("exit-vs-numa-maps",)),
    Mutant("fork-no-mmap-lock", ("syscalls.process:copy_process:unlocked:write_lock(pmm.mmap_lock)",),
           "fork copies VMA policies without the parent's mmap_write_lock",
           ("fork-vs-mbind",)),
    Mutant("sp-split-copies-refcnt", ("scopes.shmem:SharedPolicy.shared_policy_replace:refcnt:mpol_dup",),
           "splitting a shared range struct-copies the policy with its refcount instead of"
           " setting it to 1 (a reference held by a concurrent lookup is copied and leaks)",
           ("shared-split-vs-fault",)),
    Mutant("protocol-2008", (),
           "the seed's 2008 design: one object shared by every VMA of an mbind and marked"
           " MPOL_F_SHARED in the shared tree; mpol_cond_put on the anonymous VMA frees it"
           " early (kernel commit 869833f2c5c6)",
           ("mbind-anon-and-shmem",), protocol="2008", concurrent=False),
]}


def switches(m: Mutant) -> tuple[str, ...]:
    """The generated mutants that make up ``m`` (none for a protocol)."""
    return m.parts
