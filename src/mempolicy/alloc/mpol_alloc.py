"""Choosing a node by policy (mm/mempolicy.c, the allocation half).

``policy_nodemask`` turns a policy plus an interleave index into a preferred
node and an optional nodemask; ``alloc_pages_mpol`` hands both to the page
allocator (with the two passes of MPOL_PREFERRED_MANY).  Interleave comes in
two flavours, as in the kernel: by index (``interleave_nid``, used for VMA and
shared-memory faults) and by the task's round robin (``interleave_nodes``,
used when there is no index: page tables and other kernel allocations).
"""

from __future__ import annotations

from mempolicy.core import sched_points as _chk
from mempolicy.core.mempolicy import Mempolicy
from mempolicy.alloc.weights import WeightedInterleaveState
from mempolicy.core.nodemask import Nodemask
from mempolicy.uapi import (
    MAX_NUMNODES,
    MPOL_BIND,
    MPOL_INTERLEAVE,
    MPOL_PREFERRED,
    MPOL_PREFERRED_MANY,
    MPOL_WEIGHTED_INTERLEAVE,
    NO_INTERLEAVE_INDEX,
    NUMA_NO_NODE,
)


def interleave_nodes(task, pol: Mempolicy) -> int:
    """Task round robin: the node after ``il_prev`` in the policy's nodes."""
    nid = pol.nodes.next_in(task.il_prev)
    if nid < MAX_NUMNODES:
        task.il_prev = nid
    return nid


def weighted_interleave_nodes(task, pol: Mempolicy, wi: WeightedInterleaveState) -> int:
    """Weighted task round robin: spend ``il_weight`` on ``il_prev`` then move on."""
    node = task.il_prev
    if not task.il_weight or node not in pol.nodes:
        node = pol.nodes.next_in(node)
        if node == MAX_NUMNODES:
            return node
        task.il_prev = node
        task.il_weight = wi.get_il_weight(node)
    task.il_weight -= 1
    return node


def offset_il_index(kernel, ilx: int) -> int:
    """The interleave index ``interleave_nid`` divides: before v6.7 ``offset_il_node``
    took ``(unsigned int)n`` of the VMA's page offset, so only its low 32 bits
    count (``KernelVersion.interleave_index_truncated``)."""
    return ilx & 0xFFFFFFFF if kernel.version.interleave_index_truncated else ilx


def interleave_nid(pol: Mempolicy, ilx: int, local_nid: int) -> int:
    """Static interleave: the (ilx mod n)-th node of the policy."""
    nodes = pol.nodes
    n = nodes.weight()
    if not n:
        return local_nid
    return nodes.nth(ilx % n)


def weighted_interleave_nid(pol: Mempolicy, ilx: int, wi: WeightedInterleaveState,
                            local_nid: int) -> int:
    """Static weighted interleave: walk the weights until ilx mod total is used up."""
    nodes = pol.nodes
    if not nodes:
        return local_nid
    total = sum(wi.get_il_weight(n) for n in nodes)
    target = ilx % total
    nid = nodes.first()
    while target:
        w = wi.get_il_weight(nid)
        if target < w:
            break
        target -= w
        nid = nodes.next_in(nid)
    return nid


def policy_nodemask(task, pol: Mempolicy, ilx: int, nid: int,
                    wi: WeightedInterleaveState) -> tuple[int, Nodemask | None]:
    """(preferred node, nodemask or None) for an allocation under ``pol``."""
    mode = pol.mode
    nodemask = None
    if mode == MPOL_PREFERRED:
        nid = pol.nodes.first()
    elif mode == MPOL_PREFERRED_MANY:
        nodemask = pol.nodes
        if pol.home_node != NUMA_NO_NODE:
            nid = pol.home_node
    elif mode == MPOL_BIND:
        # apply_policy_zone() holds for user pages; cpuset_nodemask_valid_mems_allowed()
        if pol.nodes.intersects(task.mems_allowed):
            nodemask = pol.nodes
        if pol.home_node != NUMA_NO_NODE:
            nid = pol.home_node
    elif mode == MPOL_INTERLEAVE:
        nid = interleave_nodes(task, pol) if ilx == NO_INTERLEAVE_INDEX \
            else interleave_nid(pol, offset_il_index(task.kernel, ilx), nid)
    elif mode == MPOL_WEIGHTED_INTERLEAVE:
        nid = weighted_interleave_nodes(task, pol, wi) if ilx == NO_INTERLEAVE_INDEX \
            else weighted_interleave_nid(pol, ilx, wi, nid)
    return nid, nodemask


def alloc_pages_preferred_many(kernel, task, nid: int, nodemask: Nodemask | None) -> int | None:
    """First the preferred nodes without reclaim, then any node.  Before v6.7 the
    first pass may take a preferred node's pages below its low watermark
    (``KernelVersion.preferred_many_below_low``)."""
    node = kernel.pages.alloc_pages(nid, nodemask, task.mems_allowed)
    if node is None and kernel.version.preferred_many_below_low:
        node = kernel.pages.alloc_pages_below_low(nid, nodemask, task.mems_allowed)
    if node is None:
        node = kernel.pages.alloc_pages(nid, None, task.mems_allowed)
    return node


def alloc_pages_mpol(kernel, task, pol: Mempolicy, ilx: int, nid: int) -> int | None:
    """The node a page is allocated on under ``pol`` (None: out of memory).

    With a nodemask (BIND, PREFERRED_MANY) the allocator reads ``pol->nodes``
    by reference and may sleep in reclaim first: a schedule point, after which
    the checker makes the model read the nodemask through the policy again.
    """
    nid, nodemask = policy_nodemask(task, pol, ilx, nid, kernel.wi_state)
    if nodemask is not None and _chk.sched is not None:
        _chk.sched.might_sleep(pol, "__alloc_pages may enter reclaim")
        nodemask = pol.nodes
    if pol.mode == MPOL_PREFERRED_MANY:
        return alloc_pages_preferred_many(kernel, task, nid, nodemask)
    if nid >= kernel.topo.nr_node_ids:       # interleave over no node
        nid = task.numa_node_id()
    return kernel.pages.alloc_pages(nid, nodemask, task.mems_allowed)


def alloc_pages(kernel, task) -> int | None:
    """``alloc_pages()`` from process context: the task policy, no interleave index.

    Used for page-table pages, which is how they advance the task's
    interleave round robin.
    """
    pol = task.get_task_policy()
    return alloc_pages_mpol(kernel, task, pol, NO_INTERLEAVE_INDEX, task.numa_node_id())
