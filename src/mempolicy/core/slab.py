"""The policy kmem cache (``policy_cache`` in mm/mempolicy.c) and its sanitizer.

Every ``struct mempolicy`` the model creates comes from a ``PolicyCache`` and
goes back to it when its refcount reaches zero.  The cache counts what it
handed out and took back, and it remembers, KASAN-style, where each object
was allocated and freed: a use after free, a put on a freed object or a
refcount below zero raises ``SanitizerError`` naming both places.

Where the model differs: the kernel frees with ``kfree_rcu``; the model
frees at once, which only makes use-after-free easier to see.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass

from mempolicy.core import sched_points as _chk
from mempolicy.core.version import DEFAULT, KernelVersion


class SanitizerError(RuntimeError):
    """A reference-counting bug: use after free, double put, refcount < 0, leak."""


# modules on the stack that are not the model kernel: the cache itself, the checker, the CLI
_NOT_KERNEL = ("mempolicy.core.slab", "mempolicy.check", "mempolicy.cli")


def call_site(skip: int = 2, depth: int = 4) -> str:
    """The model-kernel functions on the stack, innermost first: ``mpol_dup<-vma_replace_policy``."""
    names = []
    f = sys._getframe(skip)
    while f is not None and len(names) < depth:
        mod = f.f_globals.get("__name__", "")
        if mod.startswith("mempolicy.") and not mod.startswith(_NOT_KERNEL):
            names.append(f.f_code.co_name)
        f = f.f_back
    return "<-".join(names) or "?"


@dataclass
class CacheStats:
    allocated: int = 0   # objects handed out since the cache was made
    freed: int = 0       # objects returned

    @property
    def active(self) -> int:
        return self.allocated - self.freed


class PolicyCache:
    """kmem_cache "numa_policy": allocation, freeing, counts and the leak list."""

    def __init__(self, name: str = "numa_policy", track_sites: bool = True,
                 version: KernelVersion = DEFAULT) -> None:
        self.name = name
        self.version = version            # the kernel whose policies these are
        self.stats = CacheStats()
        self.track_sites = track_sites
        self.live: dict[int, object] = {}
        self._serial = 0
        self.lock = threading.Lock()      # the cache's own lock: callers may be real threads

    def alloc(self, obj) -> None:
        """Account a new object (kmem_cache_alloc)."""
        site = call_site(3) if self.track_sites else "?"
        with self.lock:
            self._serial += 1
            obj._serial = self._serial
            obj._alloc_site = site
            obj._free_site = None
            self.stats.allocated += 1
            self.live[id(obj)] = obj
        if _chk.sched is not None:
            _chk.sched.slab_event("alloc", obj)

    def free(self, obj) -> None:
        """Return an object (kmem_cache_free); poisons it so later use raises."""
        with self.lock:
            if self.live.pop(id(obj), None) is None:
                raise SanitizerError(
                    f"double free of policy #{getattr(obj, '_serial', '?')}"
                    f" allocated at {getattr(obj, '_alloc_site', '?')}")
            self.stats.freed += 1
        obj._free_site = call_site(3) if self.track_sites else "?"
        if _chk.sched is not None:
            _chk.sched.slab_event("free", obj)

    def leaks(self) -> list:
        """Objects still allocated, oldest first."""
        return sorted(self.live.values(), key=lambda o: o._serial)

    def check_no_leaks(self) -> None:
        """Raise SanitizerError listing every policy still allocated."""
        left = self.leaks()
        if left:
            lines = [f"{len(left)} policies leaked from {self.name}:"]
            for o in left[:20]:
                lines.append(f"  #{o._serial} {o!r} refcnt={o._refcnt} allocated at {o._alloc_site}")
            raise SanitizerError("\n".join(lines))
