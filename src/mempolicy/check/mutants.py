"""The mutant catalogue: protocol mistakes the checker must catch, switchable by name.

Each mutant is a small deviation from the kernel's reference-counting or
locking rules, compiled into the model behind ``name in hooks.mutants`` (an
empty frozenset in ordinary runs).  ``scenarios`` lists where it is looked
for.  ``protocol-2008`` is not a switch but the seed document's design
(``Kernel.boot(protocol="2008")``): one policy object shared by every VMA of
an mbind and marked MPOL_F_SHARED by the shared tree.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    name: str
    where: str            # model function(s) holding the switch
    rule: str             # the rule it breaks
    scenarios: tuple[str, ...]
    protocol: str = "current"
    concurrent: bool = True   # needs another task to go wrong (else any schedule shows it)


MUTANTS: dict[str, Mutant] = {m.name: m for m in [
    Mutant("shared-lookup-noref", "SharedPolicy.mpol_shared_policy_lookup",
           "the shared lookup takes no extra reference, but its users still mpol_cond_put()",
           ("shared-fault-vs-mbind",), concurrent=False),
    Mutant("shared-noref-nocondput", "mpol_shared_policy_lookup, mpol_cond_put",
           "shared policies used like VMA policies: no lookup reference and no put; mmap_lock"
           " does not cover another process replacing them (the seed's point 4)",
           ("shared-fault-vs-mbind",)),
    Mutant("shared-tree-no-lock", "SharedPolicy.mpol_shared_policy_lookup",
           "the shared tree is read without sp->lock, so the node's policy can be freed"
           " between the lookup and mpol_get",
           ("shared-fault-vs-mbind",)),
    Mutant("cond-put-as-put", "vma_alloc_folio, shmem_alloc_folio",
           "mpol_put() instead of mpol_cond_put() after get_vma_policy(): drops the owner's"
           " reference of a task or VMA policy",
           ("anon-fault-vs-mbind",), concurrent=False),
    Mutant("missing-cond-put", "vma_alloc_folio, shmem_alloc_folio",
           "no mpol_cond_put() after the allocation: the shared lookup's reference leaks",
           ("shared-fault-vs-mbind",), concurrent=False),
    Mutant("mbind-mmap-read-lock", "do_mbind",
           "mbind replaces VMA policies under mmap_lock held for read, so a fault can use the"
           " old policy while it is freed",
           ("anon-fault-vs-mbind",)),
    Mutant("numa-maps-no-task-lock", "_numa_maps (hold_task_mempolicy)",
           "numa_maps reads another task's policy without task_lock and without a reference",
           ("numa-maps-vs-set-mempolicy",)),
    Mutant("set-mempolicy-put-before-publish", "do_set_mempolicy",
           "the old task policy is put before the new one is published under task_lock",
           ("numa-maps-vs-set-mempolicy",)),
    Mutant("get-mempolicy-no-ref", "do_get_mempolicy",
           "get_mempolicy(MPOL_F_NODE|MPOL_F_ADDR) drops mmap_lock without holding a"
           " reference on the VMA policy it reads afterwards",
           ("get-mempolicy-vs-mbind",)),
    Mutant("rebind-task-no-task-lock", "cpuset_change_task_nodemask",
           "the cpuset rebind changes a task policy without task_lock(tsk)",
           ("rebind-vs-set-mempolicy",)),
    Mutant("exit-no-task-lock", "mpol_put_task_policy",
           "exit detaches and drops the task policy without task_lock",
           ("exit-vs-numa-maps",)),
    Mutant("fork-no-mmap-lock", "copy_process (dup_mmap)",
           "fork copies VMA policies without the parent's mmap_write_lock",
           ("fork-vs-mbind",)),
    Mutant("sp-split-copies-refcnt", "SharedPolicy.shared_policy_replace",
           "splitting a shared range struct-copies the policy with its refcount instead of"
           " setting it to 1 (a reference held by a concurrent lookup is copied and leaks)",
           ("shared-split-vs-fault",)),
    Mutant("protocol-2008", "vma_replace_policy, sp_alloc (protocol '2008')",
           "the seed's 2008 design: one object shared by every VMA of an mbind and marked"
           " MPOL_F_SHARED in the shared tree; mpol_cond_put on the anonymous VMA frees it"
           " early (kernel commit 869833f2c5c6)",
           ("mbind-anon-and-shmem",), protocol="2008", concurrent=False),
]}


def switches(m: Mutant) -> tuple[str, ...]:
    """The names to put in ``hooks.mutants`` for ``m`` (none for a protocol)."""
    return () if m.name.startswith("protocol-") else (m.name,)
