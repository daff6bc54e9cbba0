"""The TLB gather of an unmap (mm/mmu_gather.c): the pages it allocates for itself.

Unmapping collects the freed pages in batches: eight fit in the gather
itself, each further batch is a page of its own (510 entries, at most 19
batches before a flush reuses them); freed page tables go in a separate
batch page (since v6.14; before it x86 frees them as ordinary pages,
``KernelVersion.tlb_remove_table_batch``).  Those batch pages are kernel
allocations under the task policy with no interleave index, so they advance
the task's interleave round robin, which is all the model keeps of them (they
are freed when the unmap ends).
"""

from __future__ import annotations

from mempolicy.alloc.mpol_alloc import alloc_pages

MMU_GATHER_BUNDLE = 8
MAX_GATHER_BATCH = (4096 - 16) // 8
MAX_GATHER_BATCH_COUNT = 10000 // MAX_GATHER_BATCH


class MmuGather:
    """``struct mmu_gather`` for one unmap by ``task``."""

    def __init__(self, kernel, task) -> None:
        self.kernel = kernel
        self.task = task
        self.nr_pages = 0
        self.batches: list = []
        self.table_batch = None
        self.tables = 0

    def _get_free_page(self):
        return alloc_pages(self.kernel, self.task) if self.task is not None else None

    def remove_page(self) -> None:
        """``__tlb_remove_page``: one more page to free; may need a new batch page."""
        self.nr_pages += 1
        # the next batch is taken at once, when the page that fills one is added;
        # since v6.9 a batch is full one entry early (``batch->nr >= batch->max - 1``)
        early = 1 if self.kernel.version.mmu_gather_batch_full_early else 0
        capacity = MMU_GATHER_BUNDLE - early + (MAX_GATHER_BATCH - early) * len(self.batches)
        if self.nr_pages >= capacity and len(self.batches) < MAX_GATHER_BATCH_COUNT:
            self.batches.append(self._get_free_page())

    def may_alloc(self) -> bool:
        """Whether a further ``remove_page`` may still allocate a batch page."""
        return len(self.batches) < MAX_GATHER_BATCH_COUNT

    def remove_pages(self, n: int) -> None:
        """``n`` more pages at once (only once no batch page can be added)."""
        while n and self.may_alloc():
            self.remove_page()
            n -= 1
        self.nr_pages += n

    def remove_table(self) -> None:
        """``tlb_remove_table``: the first freed page table needs a batch page.
        Before v6.14 x86 gives the table to ``tlb_remove_page`` instead."""
        self.tables += 1
        if not self.kernel.version.tlb_remove_table_batch:
            self.remove_page()
            return
        if self.table_batch is None:
            self.table_batch = self._get_free_page()

    def finish(self) -> None:
        """``tlb_finish_mmu``: give the batch pages back."""
        for nid in self.batches + [self.table_batch]:
            if nid is not None:
                self.kernel.pages.free_page(nid)
        self.batches.clear()
        self.table_batch = None
