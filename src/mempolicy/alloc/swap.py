"""Per-CPU LRU batches (mm/swap.c ``cpu_fbatches.lru_add``): who still holds a new page.

A page the kernel allocates for user memory (an anonymous fault, a copy on
write, a shmem page-cache page) reaches the LRU lists through the faulting
CPU's ``folio_batch`` (``folio_add_lru``), which holds a reference to it until
the batch is moved to the lists (``folio_batch_move_lru``):

* when the batch is full: the ``PAGEVEC_SIZE``-th page added moves them all;
* when that CPU calls ``lru_add_drain``: ``wp_can_reuse_anon_folio`` does, for
  a page that is not on the LRU yet;
* on every CPU at ``lru_add_drain_all``, which ``lru_cache_disable`` calls:
  ``migrate_pages`` (do_migrate_pages), ``move_pages`` with nodes
  (do_pages_move) and ``mbind`` with a move flag (do_mbind).

On Linux 7.3 neither exit nor munmap drains.  While a batch holds a page, a
write fault after fork copies it even when no other process maps it any more:
``wp_can_reuse_anon_folio`` reuses a page only when its reference count is
its mapcount.

The model keeps, per CPU, the identities of the pages in the batch: the
``Folio`` for pages that are objects, ``(mm, vpn)`` for a compact private page
(``scopes.pagetable``), which ``lru_batch_adopt`` replaces by the page's
object when fork makes one.  Where the model differs: only the ``lru_add``
batch is modelled (the others hold pages already on the LRU); a batch entry
stays until the batch is drained, as the kernel's reference does.
"""

from __future__ import annotations

import threading

PAGEVEC_SIZE = 31

# The oracle runner's own pages in the batches, measured on Linux 7.3 with
# threshold traces (how many pages a trace may add before a page it faulted
# earlier is drained): the runner drains every batch before the trace starts
# and then adds one page on CPU 0; a fork and its exit add the pages the
# runner copies on write (its stack and buffers, in parent and child) on the
# forking CPU.  A fork by the trace process: 9 at its first fork; at a later
# one, 18 while the pages of its previous fork are still in a batch and 7
# (6 to 8) once they have been drained.  A fork by a child or a grandchild: 5.
RUNNER_START_LRU_PAGES = 1
RUNNER_FIRST_FORK_LRU_PAGES = 9
RUNNER_LATER_FORK_LRU_PAGES = 18
RUNNER_DRAINED_FORK_LRU_PAGES = 7
RUNNER_CHILD_FORK_LRU_PAGES = 5


def _locked(fn):
    """Run the method under the batches' lock."""
    def wrapper(self, *args):
        with self.lock:
            return fn(self, *args)
    wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
    return wrapper


class _RunnerPage:
    """A page of the runner's own memory in a batch (identity only)."""

    __slots__ = ()


class LruBatches:
    """``cpu_fbatches.lru_add`` of every CPU: lists of page identities.

    ``lock`` plays ``cpu_fbatches.lock`` (one lock for all CPUs here: the
    model's tasks are threads that may share a CPU number); every method
    takes it, once (it is not recursive: the kernel's is a local_lock).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.cpus: dict[int, list] = {0: [_RunnerPage() for _ in range(RUNNER_START_LRU_PAGES)]}
        self.forks: dict[int, list] = {}            # pid -> runner pages of its last fork
        self.born: dict[int, list] = {}             # pid -> the runner page it writes first
        self.before_fork: dict[int, tuple] = {}     # pid -> (born, last fork's) at its open fork

    def folio_add_lru(self, cpu: int, entry) -> None:
        """Add one new page on ``cpu``; a full batch moves everything to the LRU."""
        lock = self.lock                # inline, not @_locked: once per fault
        lock.acquire()
        b = self.cpus.get(cpu)
        if b is None:
            b = self.cpus[cpu] = []
        b.append(entry)
        if len(b) >= PAGEVEC_SIZE:
            b.clear()
        lock.release()

    @_locked
    def add_range(self, cpu: int, mm, vpns: list[tuple[int, int]]) -> None:
        """Add the compact private pages of the vpn ranges ``[a, b)``, in order (the
        bulk fault path); only the pages after the last drain stay."""
        b = self.cpus.setdefault(cpu, [])
        n = sum(hi - lo for lo, hi in vpns)
        if len(b) + n < PAGEVEC_SIZE:
            for lo, hi in vpns:
                b.extend((mm, v) for v in range(lo, hi))
            return
        keep = (len(b) + n) % PAGEVEC_SIZE
        b.clear()
        tail: list = []
        for lo, hi in reversed(vpns):
            if len(tail) >= keep:
                break
            start = max(lo, hi - (keep - len(tail)))
            tail[:0] = [(mm, v) for v in range(start, hi)]
        b.extend(tail)

    @_locked
    def add_others(self, cpu: int, n: int) -> None:
        """Add ``n`` new pages whose identity no later check asks for (page-cache pages
        the bulk fault path allocated): only how full the batch is matters."""
        b = self.cpus.setdefault(cpu, [])
        if len(b) + n < PAGEVEC_SIZE:
            b.extend(_RunnerPage() for _ in range(n))
            return
        keep = (len(b) + n) % PAGEVEC_SIZE
        b.clear()
        b.extend(_RunnerPage() for _ in range(keep))

    @_locked
    def runner_fork(self, cpu: int, pid: int, child: int, nested: bool) -> None:
        """The runner's own copies on write at fork (in parent and child), on the
        forking CPU; the child's become the pages it writes first when a fork of its
        own returns (its output buffer: it wrote ``fork: ok`` there)."""
        last = self.forks.get(pid)
        if nested:
            n = RUNNER_CHILD_FORK_LRU_PAGES
        elif last is None:
            n = RUNNER_FIRST_FORK_LRU_PAGES
        elif any(self._cpu_of(p) is not None for p in last):
            n = RUNNER_LATER_FORK_LRU_PAGES
        else:
            n = RUNNER_DRAINED_FORK_LRU_PAGES
        pages = [_RunnerPage() for _ in range(n)]
        self.forks[pid] = pages
        self.before_fork[pid] = (self.born.get(pid, []), last or [])
        self.born[child] = list(pages)
        b = self.cpus.setdefault(cpu, [])
        for p in pages:                             # folio_add_lru, lock held
            b.append(p)
            if len(b) >= PAGEVEC_SIZE:
                b.clear()

    @_locked
    def runner_resume(self, cpu: int, pid: int) -> None:
        """Process ``pid`` returns from waitpid after its child's exit, on ``cpu``.

        A runner that is itself a child writes its output buffer, the page it
        copied at its birth: fork shared it, and only this process maps it any
        more.  When that page is not on the LRU yet (a batch holds it),
        ``wp_can_reuse_anon_folio`` calls ``lru_add_drain``: the local batch is
        emptied, and a page another CPU's batch still holds is copied (one new
        page in the local batch) instead of reused.  The trace process's output
        buffer is the page it had at the start (drained then).  Either process
        also drains when the pages of its previous fork are still in the local
        batch (measured; which page it writes then is not identified).
        """
        born, last = self.before_fork.pop(pid, ([], []))
        held = {self._cpu_of(p) for p in born} - {None}
        if held:
            self.cpus.pop(cpu, None)                # lru_add_drain
            if held - {cpu}:                        # wp_page_copy: one new page
                page = _RunnerPage()
                self.born[pid] = [page]
                self.cpus[cpu] = [page]
        elif any(self._cpu_of(p) == cpu for p in last):
            self.cpus.pop(cpu, None)

    @_locked
    def lru_add_drain(self, cpu: int) -> None:
        """Move ``cpu``'s batch to the LRU lists."""
        self.cpus.pop(cpu, None)

    @_locked
    def lru_add_drain_all(self) -> None:
        """Move every CPU's batch to the LRU lists (``lru_cache_disable``)."""
        self.cpus.clear()

    @_locked
    def cpu_of(self, folio, mm=None, vpn: int | None = None) -> int | None:
        """The CPU whose batch holds ``folio`` (or compact page ``(mm, vpn)``), or None."""
        return self._cpu_of(folio, mm, vpn)

    def _cpu_of(self, folio, mm=None, vpn: int | None = None) -> int | None:
        for cpu, b in list(self.cpus.items()):
            for e in b:
                if e is folio or (mm is not None and type(e) is tuple and e[0] is mm and e[1] == vpn):
                    return cpu
        return None

    @_locked
    def vpns_of(self, mm, lo: int, hi: int) -> set[int]:
        """The vpns in ``[lo, hi)`` of ``mm``'s compact pages that a batch holds."""
        return {e[1] for b in list(self.cpus.values()) for e in b
                if type(e) is tuple and e[0] is mm and lo <= e[1] < hi}

    @_locked
    def adopt(self, mm, vpn: int, folio) -> None:
        """The compact page ``(mm, vpn)`` became the object ``folio`` (fork)."""
        for b in list(self.cpus.values()):
            for i, e in enumerate(b):
                if type(e) is tuple and e[0] is mm and e[1] == vpn:
                    b[i] = folio

    @_locked
    def forget(self, mm, lo: int, hi: int) -> None:
        """The compact pages of ``mm`` in ``[lo, hi)`` are unmapped: their entries keep
        their place in the batch but no longer name a mapped page."""
        for b in list(self.cpus.values()):
            for i, e in enumerate(b):
                if type(e) is tuple and e[0] is mm and lo <= e[1] < hi:
                    b[i] = _RunnerPage()


_create_lock = threading.Lock()


def lru_batches(kernel) -> LruBatches:
    """The kernel's per-CPU LRU batches (created on first use).

    >>> from types import SimpleNamespace
    >>> len(lru_batches(SimpleNamespace()).cpus[0])
    1
    """
    b = getattr(kernel, "lru_batches", None)
    if b is None:
        with _create_lock:
            b = getattr(kernel, "lru_batches", None)
            if b is None:
                b = kernel.lru_batches = LruBatches()
    return b
