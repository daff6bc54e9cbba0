"""The page allocator: per-node free pages and the zonelist walk (mm/page_alloc.c).

``__alloc_pages`` walks the zonelist of the preferred node and takes the
first node that is allowed (policy nodemask, cpuset) and still has pages
above its watermark.  A page is a ``Folio`` object that records its node and
the flags numa_maps reports.

Where the model differs: one zone per node; the free-page figure a node
starts with is its size less an estimate of what the booted kernel holds
(``reserved_pages``), and the low watermark is a fixed share.  Placement
decisions only depend on these figures once a node is nearly full.  The pages
between the min and low watermarks (``watermark_bands``) are kept apart: only an
allocation the kernel lets into them (``alloc_pages_below_low``) takes them.
"""

from __future__ import annotations

import threading
from math import isqrt

from mempolicy.alloc.topology import Topology
from mempolicy.core.nodemask import Nodemask


class Folio:
    """A resident page (order 0): its node and the state numa_maps counts."""

    __slots__ = ("nid", "anon", "dirty", "mapcount", "mapping", "index", "anon_exclusive")

    def __init__(self, nid: int, anon: bool, mapping=None, index: int = 0) -> None:
        self.nid = nid
        self.anon = anon
        self.dirty = False
        self.mapcount = 0
        self.mapping = mapping     # the shmem inode for page-cache pages
        self.index = index
        self.anon_exclusive = True  # PageAnonExclusive: cleared when fork shares the page

    def __repr__(self) -> str:
        return f"<folio N{self.nid} {'anon' if self.anon else 'file'} map={self.mapcount}>"


class ZeroPage:
    """The shared zero page: mapped by read faults on private anonymous memory."""

    __slots__ = ("nid",)

    def __init__(self, nid: int = 0) -> None:
        self.nid = nid


# What a booted kernel keeps on a node besides the memmap, in pages: fitted to
# the capacity Linux 7.3 showed under QEMU for nodes of 64 MiB to 1 GiB (its
# slabs, per-cpu data, hash tables and watermarks); the boot node also holds
# the kernel image and early allocations.  Accurate to a few thousand pages.
NODE_OVERHEAD_CPU = 3500
NODE_OVERHEAD_MEMORY_ONLY = 1900
BOOT_NODE_OVERHEAD = 15000


def reserved_pages(topo: Topology, nid: int) -> int:
    """Pages of node ``nid`` that user allocations cannot have (an estimate)."""
    node = topo.nodes[nid]
    present = node.present_pages
    if present == 0:
        return 0
    memmap = present * 64 // 4096              # a struct page per page
    extra = NODE_OVERHEAD_CPU if len(node.cpus) else NODE_OVERHEAD_MEMORY_ONLY
    if nid == topo.n_memory.first():
        extra += BOOT_NODE_OVERHEAD
    return min(present, memmap + extra)


def managed_pages(topo: Topology) -> list[int]:
    """Pages each node's allocator starts with: its size less ``reserved_pages``."""
    return [max(0, n.present_pages - reserved_pages(topo, n.id)) for n in topo.nodes]


def watermark_bands(managed: list[int]) -> list[int]:
    """Pages between each node's min and low watermarks (``__setup_per_zone_wmarks``),
    from the ``managed_pages`` of every node: ``min_free_kbytes``
    (``int_sqrt(lowmem_kbytes * 16)``) shared in proportion to the node's pages,
    and low = min + max(min / 4, 0.1% of the node).  An estimate, from the same
    figures as ``reserved_pages``."""
    total = sum(managed)
    if not total:
        return [0] * len(managed)
    min_free_kbytes = min(262144, max(128, isqrt(total * 4 * 16)))
    return [max((min_free_kbytes // 4) * m // total // 4, m * 10 // 10000) if m else 0
            for m in managed]


class PageAllocator:
    """Free pages per node and ``__alloc_pages``."""

    def __init__(self, topo: Topology) -> None:
        self.topo = topo
        self.free = managed_pages(topo)
        # pages between the min and low watermarks, below what ``free`` counts:
        # only ``alloc_pages_below_low`` takes them, and frees refill them first
        self.band_max = watermark_bands(self.free)
        self.band = list(self.band_max)
        self.zero_page = ZeroPage(topo.n_memory.first() if topo.n_memory else 0)
        self.lock = threading.Lock()     # zone->lock (one zone per node; one lock for all here)

    def alloc_pages(self, preferred_nid: int, nodemask: Nodemask | None,
                      mems_allowed: Nodemask, thisnode: bool = False) -> int | None:
        """``__alloc_pages``: the node the page comes from, or None when nothing is left."""
        zl = self.topo.zonelists[preferred_nid]
        if thisnode:
            zl = [preferred_nid] if preferred_nid in self.topo.n_memory else []
        allowed = mems_allowed.bits if nodemask is None else mems_allowed.bits & nodemask.bits
        free = self.free
        lock = self.lock
        for nid in zl:
            if not (allowed >> nid) & 1:
                continue
            lock.acquire()
            if free[nid] > 0:
                free[nid] -= 1
                lock.release()
                return nid
            lock.release()
        return None

    def alloc_pages_below_low(self, preferred_nid: int, nodemask: Nodemask | None,
                              mems_allowed: Nodemask) -> int | None:
        """The retry of ``__alloc_pages_slowpath`` at the min watermark, for an
        allocation that found every allowed node below its low one (the caller
        decides when the kernel gets there): a page between the two, or None."""
        allowed = mems_allowed.bits if nodemask is None else mems_allowed.bits & nodemask.bits
        with self.lock:
            for nid in self.topo.zonelists[preferred_nid]:
                if (allowed >> nid) & 1 and self.band[nid] > 0:
                    self.band[nid] -= 1
                    return nid
        return None

    def free_page(self, nid: int) -> None:
        """Give one page back to node ``nid``."""
        with self.lock:
            if self.band[nid] < self.band_max[nid]:
                self.band[nid] += 1
            else:
                self.free[nid] += 1

    def free_pages(self, nid: int, count: int) -> None:
        """Give ``count`` pages back to node ``nid`` (a bulk unmap)."""
        with self.lock:
            refill = min(count, self.band_max[nid] - self.band[nid])
            self.band[nid] += refill
            self.free[nid] += count - refill
