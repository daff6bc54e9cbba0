"""Transparent huge pages of private anonymous memory (mm/huge_memory.c, mm/khugepaged.c).

With ``/sys/kernel/mm/transparent_hugepage/enabled`` at ``always`` (or at
``madvise`` for a VMA given ``MADV_HUGEPAGE``), the first fault in an
aligned 2 MiB range whose page middle directory entry is still empty
(``pmd_none``: no PTE table there yet) maps one PMD-sized folio
(``do_huge_pmd_anonymous_page``), or, for a read, the huge zero page.

The model keeps the page table compact: a huge page is 512 ordinary entries
of the page table on one node, and ``mm.thp_folios`` (created on the first
huge fault, consulted only by THP code) records per 2 MiB range which
folio, or the huge zero page, is there.  What the records decide:

* migration moves a huge folio whole (``mbind ... move`` on one of its pages
  moves all 512; ``move_pages`` reports ``EBUSY`` for the second page of a
  folio it has just queued), as ``migrate_pages_batch`` does;
* a write to the huge zero page allocates a huge page for the whole range
  (``do_huge_zero_wp_pmd``, since 6.13; 6.12 and 6.1 split the PMD instead);
* a VMA boundary inside a range splits the PMD (``split_huge_pmd``): the
  pages stay where they are, a huge zero PMD becomes 512 zero ptes;
* a folio on the deferred split queue (partly unmapped, or migrated while
  PTE-mapped) is split by its next migration, and the split maps its
  never-written pages to the zero page (``HugeFolio.written``);
* fork shares folios and huge zero PMDs with the child (``copy_huge_pmds``).

The PTE table that every huge PMD deposits (``pte_alloc_one``) is allocated
at the fault under the task policy and recorded as the range's PTE table.

The bulk path for many ranges at once is ``alloc/huge_bulk.py``.

Where the model differs: multi-size THP (orders below 9), shmem and file
THP, khugepaged (the oracle keeps it from scanning), the deferred split
shrinker (a partly unmapped folio's unmapped pages are freed at once, and it
is split only when it migrates), and ``defrag`` beyond the
direct-reclaim bit it gives the allocation; fragmentation is not modelled, a
node can give a huge page while it has 512 pages above its reserve.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass

from mempolicy.alloc.mpol_alloc import alloc_pages, policy_nodemask
from mempolicy.alloc.page_alloc import PageAllocator
from mempolicy.alloc.swap import lru_batches
from mempolicy.core.mempolicy import mpol_cond_put
from mempolicy.scopes.mm import PGDIR_SHIFT, PMD_SHIFT, PUD_SHIFT, VMA, get_vma_policy
from mempolicy.scopes.pagetable import ABSENT, KIND_ZERO
from mempolicy.uapi import (
    MPOL_INTERLEAVE,
    MPOL_PREFERRED_MANY,
    MPOL_WEIGHTED_INTERLEAVE,
    NO_INTERLEAVE_INDEX,
    PAGE_SHIFT,
)

HPAGE_PMD_ORDER = PMD_SHIFT - PAGE_SHIFT          # 9
HPAGE_PMD_NR = 1 << HPAGE_PMD_ORDER               # 512
HPAGE_PMD_SIZE = 1 << PMD_SHIFT

VM_HUGEPAGE = 0x20000000
VM_NOHUGEPAGE = 0x40000000

ENABLED = ("always", "madvise", "never")
DEFRAG = ("always", "defer", "defer+madvise", "madvise", "never")


@dataclass
class TransparentHugepage:
    """The settings under /sys/kernel/mm/transparent_hugepage (Debian's boot defaults
    under the oracle's ``transparent_hugepage=never``)."""

    enabled: str = "never"
    defrag: str = "madvise"
    use_zero_page: bool = True


ALL_WRITTEN = (1 << HPAGE_PMD_NR) - 1


class HugeFolio:
    """A PMD-sized anonymous folio: pages ``head`` .. ``head + 511`` (vpns) on ``nid``.

    ``written``: a bit per page the task has written since the fault (the others
    still hold the zeroes ``clear_huge_page`` left); ``partially_mapped``: the folio
    waits on the deferred split queue (``folio_test_partially_mapped``).  Once a
    fork shares it, ``pages`` holds its page objects (the same in parent and
    child, so a copy-on-write copy is not one of them) and ``mms`` the mms."""

    __slots__ = ("head", "nid", "pmd_mapped", "written", "partially_mapped", "pages", "mms")

    def __init__(self, head: int, nid: int, written: int = ALL_WRITTEN) -> None:
        self.head = head
        self.nid = nid
        self.pmd_mapped = True
        self.written = written
        self.partially_mapped = False
        self.pages = None          # after a fork: the set of its 512 page objects
        self.mms = None            # after a fork: the mms that map it

    @property
    def index(self) -> int:
        """``folio->index`` of a private anonymous folio: its first virtual page."""
        return self.head


HUGE_ZERO = "huge zero page"


def thp_settings(kernel) -> TransparentHugepage:
    """The kernel's THP settings, created at their defaults on first use."""
    thp = getattr(kernel, "thp", None)
    if thp is None:
        thp = kernel.thp = TransparentHugepage()
    return thp


def set_thp(kernel, file: str, value: str) -> None:
    """A write to /sys/kernel/mm/transparent_hugepage/``file`` (enabled_store, defrag_store,
    use_zero_page_store); ``value`` has been checked by the caller."""
    thp = thp_settings(kernel)
    if file == "enabled":
        thp.enabled = value
    elif file == "defrag":
        thp.defrag = value
    elif file == "use_zero_page":
        thp.use_zero_page = value == "1"
    else:
        raise ValueError(f"unknown THP setting {file!r}")


class ThpFolios(dict):
    """``mm.thp_folios``: 2 MiB range index -> HugeFolio or HUGE_ZERO.

    The bulk path (``huge_bulk.py``) adds its ranges as blocks (first index, node
    of each range) that become HugeFolio objects on the first look at the table:
    placing a terabyte then costs no half a million objects that nothing may
    ask about.  ``len`` and truth need no objects."""

    __slots__ = ("_blocks",)

    def __init__(self) -> None:
        super().__init__()
        self._blocks: list = []

    def add_block(self, c0: int, nids) -> None:
        """Ranges ``c0``, ``c0 + 1``, ... hold new huge folios on ``nids`` (a sequence)."""
        self._blocks.append((c0, nids))

    def _materialize(self) -> None:
        blocks, self._blocks = self._blocks, []
        collect = gc.isenabled()
        gc.disable()                              # many small objects: no collection passes
        try:
            for c0, nids in blocks:
                nids = nids.tolist() if hasattr(nids, "tolist") else nids
                head = c0 << HPAGE_PMD_ORDER
                dict.update(self, zip(range(c0, c0 + len(nids)),
                                      map(HugeFolio, range(head, head + (len(nids) << HPAGE_PMD_ORDER),
                                                           HPAGE_PMD_NR), nids)))
        finally:
            if collect:
                gc.enable()

    def has_huge_zero(self) -> bool:
        """Whether some range holds the huge zero page (blocks never do)."""
        return any(f is HUGE_ZERO for f in dict.values(self))

    def __len__(self) -> int:
        return dict.__len__(self) + sum(len(n) for _, n in self._blocks)

    def __bool__(self) -> bool:
        return bool(self._blocks) or dict.__len__(self) > 0


def _materializing(name: str):
    method = getattr(dict, name)

    def call(self, *args, **kw):
        if self._blocks:
            self._materialize()
        return method(self, *args, **kw)
    call.__name__ = name
    return call


for _name in ("get", "__contains__", "__getitem__", "__setitem__", "__delitem__", "__iter__",
              "keys", "values", "items", "pop", "setdefault", "update", "copy"):
    setattr(ThpFolios, _name, _materializing(_name))


def thp_folios(mm, create: bool = False) -> ThpFolios | None:
    """``mm.thp_folios`` (a :class:`ThpFolios`), created empty with ``create``."""
    folios = getattr(mm, "thp_folios", None)
    if folios is None and create:
        folios = mm.thp_folios = ThpFolios()
    return folios


def thp_vma_allowable_order(kernel, vma: VMA, addr: int) -> bool:
    """``thp_vma_allowable_order(vma, vm_flags, TVA_PAGEFAULT, PMD_ORDER)`` plus
    ``thp_vma_suitable_order``: may a fault at ``addr`` map a PMD-sized folio?"""
    thp = getattr(kernel, "thp", None)
    if thp is None or thp.enabled == "never":
        return False
    if vma.vm_file is not None or vma.flags & VM_NOHUGEPAGE:
        return False
    if thp.enabled == "madvise" and not vma.flags & VM_HUGEPAGE:
        return False
    haddr = addr & ~(HPAGE_PMD_SIZE - 1)
    if haddr < vma.start or haddr + HPAGE_PMD_SIZE > vma.end:
        return False
    return ((vma.start >> PAGE_SHIFT) - vma.pgoff) % HPAGE_PMD_NR == 0


def vma_thp_direct_reclaim(kernel, vma: VMA) -> bool:
    """Whether ``vma_thp_gfp_mask`` has ``__GFP_DIRECT_RECLAIM`` under the ``defrag`` setting."""
    defrag = thp_settings(kernel).defrag
    madvised = bool(vma.flags & VM_HUGEPAGE)
    if defrag == "always":
        return True
    if defrag in ("defer+madvise", "madvise"):
        return madvised
    return False


def alloc_huge_page(kernel, task, preferred_nid: int, nodemask, thisnode: bool = False) -> int | None:
    """``__alloc_pages(gfp, HPAGE_PMD_ORDER, ...)``: the first node of the zonelist that
    is allowed and has 512 pages to give, or None."""
    counter = kernel.pages                       # the API's numastat wrapper, or the allocator
    pages = getattr(counter, "_inner", counter)
    if not isinstance(pages, PageAllocator):
        return None                              # the checker's allocator has no orders
    zl = pages.topo.zonelists[preferred_nid]
    if thisnode:
        zl = [preferred_nid] if preferred_nid in pages.topo.n_memory else []
    allowed = task.mems_allowed.bits if nodemask is None else task.mems_allowed.bits & nodemask.bits
    pref = None
    for nid in zl:
        if not (allowed >> nid) & 1:
            continue
        if pref is None:
            pref = nid
        with pages.lock:
            if pages.free[nid] < HPAGE_PMD_NR:
                continue
            pages.free[nid] -= HPAGE_PMD_NR
        if counter is not pages and hasattr(counter, "add_bulk"):   # zone_statistics, 512 pages
            counter.add_bulk(nid, pref, task.numa_node_id(), HPAGE_PMD_NR, 0)
        return nid
    return None


def alloc_pages_mpol_huge(kernel, task, pol, ilx: int, nid: int, direct_reclaim: bool) -> int | None:
    """``alloc_pages_mpol`` for order 9.  A huge page with an interleave index under a
    policy that is not interleave and allows ``nid`` is first tried on ``nid`` alone
    (``__GFP_THISNODE``); without direct reclaim that is all."""
    nid, nodemask = policy_nodemask(task, pol, ilx, nid, kernel.wi_state)
    if pol.mode == MPOL_PREFERRED_MANY:                  # alloc_pages_preferred_many
        node = alloc_huge_page(kernel, task, nid, nodemask)
        return node if node is not None else alloc_huge_page(kernel, task, nid, None)
    if nid >= kernel.topo.nr_node_ids:
        nid = task.numa_node_id()
    if (ilx != NO_INTERLEAVE_INDEX and pol.mode not in (MPOL_INTERLEAVE, MPOL_WEIGHTED_INTERLEAVE)
            and (nodemask is None or nid in nodemask)):
        node = alloc_huge_page(kernel, task, nid, None, thisnode=True)
        if node is not None or not direct_reclaim:
            return node
    return alloc_huge_page(kernel, task, nid, nodemask)


def vma_alloc_anon_folio_pmd(kernel, task, vma: VMA, haddr: int) -> int | None:
    """The node of a new huge folio for ``haddr`` under the VMA's policy (ilx:
    ``(vm_pgoff >> 9) + ((haddr - vm_start) >> 21)``), or None to fall back."""
    pol, ilx = get_vma_policy(task, vma, haddr, HPAGE_PMD_ORDER)
    try:
        nid = alloc_pages_mpol_huge(kernel, task, pol, ilx, task.numa_node_id(),
                                    vma_thp_direct_reclaim(kernel, vma))
        if nid is not None:
            kernel.stat_fault(pol)
    finally:
        mpol_cond_put(pol)
    return nid


def _alloc_upper_tables(kernel, task, mm, addr: int) -> bool:
    """``pud_alloc`` and ``pmd_alloc``: the tables above the PMD entry; False if out of memory."""
    for shift in (PGDIR_SHIFT, PUD_SHIFT):
        tables = mm.pgtables[shift]
        if addr >> shift not in tables:
            nid = alloc_pages(kernel, task)
            if nid is None:
                return False
            tables[addr >> shift] = nid
    return True


def _deposit_pgtable(kernel, task, mm, haddr: int) -> bool:
    """``pte_alloc_one`` + ``pgtable_trans_huge_deposit``: the PTE table a split will use."""
    nid = alloc_pages(kernel, task)
    if nid is None:
        return False
    mm.pgtables[PMD_SHIFT][haddr >> PMD_SHIFT] = nid
    return True


def _map_huge(kernel, task, mm, haddr: int, nid: int, addr: int | None) -> None:
    """``map_anon_folio_pmd``: 512 dirty anonymous entries on ``nid``; a large folio added
    to the LRU drains the CPU's batch at once (``folio_batch_add``).  ``addr``: the
    page the faulting write stores to (None for a read)."""
    pt = mm.ptes
    head = haddr >> PAGE_SHIFT
    for vpn in range(head, head + HPAGE_PMD_NR):
        pt.map_new_anon(vpn, nid)
    written = 0 if addr is None else 1 << ((addr >> PAGE_SHIFT) - head)
    thp_folios(mm, create=True)[haddr >> PMD_SHIFT] = HugeFolio(head, nid, written)
    lru_batches(kernel).lru_add_drain(task.cpu)


def do_huge_pmd_anonymous_page(kernel, task, vma: VMA, addr: int, write: bool) -> bool:
    """A fault on an empty PMD of a THP-eligible VMA.  True when handled; False to
    fall back to a small page (the caller then allocates the PTE table)."""
    if not thp_vma_allowable_order(kernel, vma, addr):
        return False
    mm = task.mm
    haddr = addr & ~(HPAGE_PMD_SIZE - 1)
    if not _alloc_upper_tables(kernel, task, mm, addr):
        return False
    if vma.anon_vma is None:
        mm.anon_vma_prepare(vma)
    if not write and thp_settings(kernel).use_zero_page:
        # the huge zero folio exists already (the oracle's runner keeps it allocated)
        if not _deposit_pgtable(kernel, task, mm, haddr):
            return False
        zero = kernel.pages.zero_page
        head = haddr >> PAGE_SHIFT
        for vpn in range(head, head + HPAGE_PMD_NR):
            mm.ptes.map(vpn, zero, False)
        thp_folios(mm, create=True)[haddr >> PMD_SHIFT] = HUGE_ZERO
        return True
    nid = vma_alloc_anon_folio_pmd(kernel, task, vma, haddr)
    if nid is None:
        return False
    if not _deposit_pgtable(kernel, task, mm, haddr):
        kernel.pages.free_pages(nid, HPAGE_PMD_NR)
        return False
    _map_huge(kernel, task, mm, haddr, nid, addr if write else None)
    return True


def do_huge_zero_wp_pmd(kernel, task, vma: VMA, addr: int) -> bool:
    """A write to a page of a huge zero PMD: a new huge folio replaces it.  False when
    ``addr`` is not under a huge zero PMD, or when the allocation fails (the PMD
    is then split into zero ptes and the write copies one small page).  Before
    6.13 the PMD is always split so (``huge_zero_wp_allocates_thp``)."""
    folios = thp_folios(task.mm)
    if not folios or folios.get(addr >> PMD_SHIFT) is not HUGE_ZERO:
        return False
    if not kernel.version.huge_zero_wp_allocates_thp:
        del folios[addr >> PMD_SHIFT]          # __split_huge_pmd: the zero ptes stay
        return False
    mm = task.mm
    haddr = addr & ~(HPAGE_PMD_SIZE - 1)
    nid = vma_alloc_anon_folio_pmd(kernel, task, vma, haddr)
    if nid is None:
        del folios[addr >> PMD_SHIFT]
        return False
    head = haddr >> PAGE_SHIFT
    for vpn in range(head, head + HPAGE_PMD_NR):
        mm.ptes.pop(vpn)
    _map_huge(kernel, task, mm, haddr, nid, addr)
    return True


def thp_write_fault(mm, vpn: int) -> None:
    """A write to the present page ``vpn`` of a huge folio (``do_huge_pmd_wp_page``):
    while another process shares the folio, the PMD is split and the write copies
    one small page (the caller's ``do_wp_page``); otherwise the page is written
    in place."""
    f = mm.thp_folios.get(vpn >> HPAGE_PMD_ORDER)
    if f is None or f is HUGE_ZERO or not _maps_folio_page(mm.ptes, vpn, f):
        return
    if f.pages is not None and mm.ptes.get(vpn).mapcount > 1:
        f.pmd_mapped = False                         # __split_huge_pmd, then the fallback
    else:
        f.written |= 1 << (vpn - f.head)


def thp_note_write(mm, lo: int, hi: int) -> None:
    """The task stored to the present pages ``lo`` .. ``hi - 1`` (vpns): mark them
    written in their huge folios (what a split later finds not to be zeroes)."""
    folios = getattr(mm, "thp_folios", None)
    if not folios:
        return
    for idx in range(lo >> HPAGE_PMD_ORDER, ((hi - 1) >> HPAGE_PMD_ORDER) + 1):
        f = folios.get(idx)
        if f is None or f is HUGE_ZERO:
            continue
        a = max(lo, f.head) - f.head
        b = min(hi, f.head + HPAGE_PMD_NR) - f.head
        f.written |= ((1 << (b - a)) - 1) << a


def copy_huge_pmds(src_mm, dst_mm, lo: int, hi: int) -> None:
    """``copy_huge_pmd`` for the pages ``lo`` .. ``hi - 1`` of a VMA whose ptes fork
    has copied: the child maps the huge zero PMDs and the huge folios too.  A
    shared folio stays one (``folio_maybe_mapped_shared``); a write in either
    process splits only its own PMD and copies one small page
    (``do_huge_pmd_wp_page``), which the page objects of ``HugeFolio.pages`` tell
    apart from the folio's own pages."""
    folios = src_mm.thp_folios
    for idx in range(lo >> HPAGE_PMD_ORDER, ((hi - 1) >> HPAGE_PMD_ORDER) + 1):
        f = folios.get(idx)
        if f is None:
            continue
        if f is not HUGE_ZERO:
            if f.pages is None:
                pt = src_mm.ptes
                f.pages = {pt[vpn] for vpn in folio_vpns(src_mm, f)}
                f.mms = [src_mm]
            if dst_mm not in f.mms:
                f.mms.append(dst_mm)
        thp_folios(dst_mm, create=True)[idx] = f


def split_huge_pmd_address(mm, addr: int) -> None:
    """``split_huge_pmd_address``: a VMA boundary at ``addr`` inside a huge PMD splits it;
    the folio stays whole (and on its node), a huge zero PMD becomes zero ptes."""
    folios = getattr(mm, "thp_folios", None)
    if not folios or not addr & (HPAGE_PMD_SIZE - 1):
        return
    f = folios.get(addr >> PMD_SHIFT)
    if f is HUGE_ZERO:
        del folios[addr >> PMD_SHIFT]
    elif f is not None:
        f.pmd_mapped = False


def thp_unmap_range(mm, start: int, end: int) -> None:
    """After [start, end) is unmapped: forget the ranges nothing maps any more."""
    folios = getattr(mm, "thp_folios", None)
    if not folios:
        return
    pt = mm.ptes
    for idx in range(start >> PMD_SHIFT, ((end - 1) >> PMD_SHIFT) + 1):
        if idx in folios:
            lo = idx << HPAGE_PMD_ORDER
            if not any(True for _ in pt.present(lo, lo + HPAGE_PMD_NR)):
                del folios[idx]
            elif folios[idx] is HUGE_ZERO:
                del folios[idx]


def huge_folio_at(mm, vpn: int) -> HugeFolio | None:
    """The huge folio that the page at ``vpn`` belongs to, or None (a small page)."""
    folios = getattr(mm, "thp_folios", None)
    if not folios:
        return None
    f = folios.get(vpn >> HPAGE_PMD_ORDER)
    if f is None or f is HUGE_ZERO:
        return None
    return f if _maps_folio_page(mm.ptes, vpn, f) else None


def _maps_folio_page(pt, vpn: int, f: HugeFolio) -> bool:
    """Whether the pte at ``vpn`` maps a page of ``f``."""
    if f.pages is not None:
        return pt.kind(vpn) not in (ABSENT, KIND_ZERO) and pt.get(vpn) in f.pages
    kind = pt.kind(vpn)
    return kind not in (ABSENT, KIND_ZERO) and pt.nid(vpn) == f.nid


def folio_vpns(mm, f: HugeFolio) -> list[int]:
    """The pages of ``f`` still mapped (by this mm)."""
    pt = mm.ptes
    return [vpn for vpn in pt.present(f.head, f.head + HPAGE_PMD_NR) if _maps_folio_page(pt, vpn, f)]


def folio_maybe_mapped_shared_huge(f: HugeFolio) -> bool:
    """``folio_maybe_mapped_shared`` of a huge folio: another process maps it (one
    of its pages is mapped twice), whichever page the caller looks at."""
    return f.pages is not None and any(p.mapcount > 1 for p in f.pages)


def _folio_partially_mapped(mm, f: HugeFolio) -> bool:
    """Some page of ``f`` is mapped by no process (it went to the deferred split
    queue when it lost its last mapping), or the flag a migration left."""
    if f.partially_mapped:
        return True
    if f.pages is not None:
        return sum(1 for p in f.pages if p.mapcount > 0) < HPAGE_PMD_NR
    return len(folio_vpns(mm, f)) < HPAGE_PMD_NR


def migrate_huge_folio(kernel, task, mm, f: HugeFolio, nid: int | None) -> bool:
    """Move the whole folio to ``nid`` (a huge page already allocated there, None: failed)."""
    if nid is None:
        return False
    if f.pages is not None:
        for page in f.pages:
            page.nid = nid
    else:
        pt = mm.ptes
        for vpn in folio_vpns(mm, f):
            pt[vpn].nid = nid
    kernel.pages.free_pages(f.nid, HPAGE_PMD_NR)
    f.nid = nid
    if not f.pmd_mapped:
        # try_to_migrate unmaps a PTE-mapped folio pte by pte, so the source is
        # partially mapped for a moment and joins the deferred split queue;
        # migrate_folio_move requeues the destination in its place (seen on 7.3)
        f.partially_mapped = True
    return True


def alloc_huge_migration_target(kernel, task, node: int) -> int | None:
    """``alloc_migration_target`` of a huge folio for ``move_pages``/``migrate_pages``:
    ``node`` only (``__GFP_THISNODE``)."""
    return alloc_huge_page(kernel, task, node, None, thisnode=True)


def alloc_huge_migration_target_by_mpol(kernel, task, pol, ilx: int) -> int | None:
    """``alloc_migration_target_by_mpol`` of a huge folio (``mbind ... move``): the new
    policy at ``ilx``, GFP_TRANSHUGE (direct reclaim allowed)."""
    return alloc_pages_mpol_huge(kernel, task, pol, ilx, task.numa_node_id(), True)


def split_huge_folio(kernel, mm, f: HugeFolio) -> list:
    """``split_folio`` of an anonymous folio: it becomes 512 small pages, and
    ``remap_page(..., RMP_USE_SHARED_ZEROPAGE)`` maps each mapped page that holds
    only zeroes (``try_to_map_unused_to_zeropage``: never written) to the shared
    zero page, in every process that maps it, and frees it.  Returns the small
    pages still mapped (page objects)."""
    zero = kernel.pages.zero_page
    kept: dict[int, object] = {}
    for m in (f.mms if f.mms is not None else [mm]):
        folios = getattr(m, "thp_folios", None)
        if folios is not None and folios.get(f.head >> HPAGE_PMD_ORDER) is f:
            del folios[f.head >> HPAGE_PMD_ORDER]
        pt = m.ptes
        for vpn in pt.present(f.head, f.head + HPAGE_PMD_NR):
            if not _maps_folio_page(pt, vpn, f):
                continue
            if f.written >> (vpn - f.head) & 1:
                page = pt[vpn]
                kept[id(page)] = page
            else:
                pt.unmap(kernel, vpn)
                pt.map(vpn, zero, False)
    return list(kept.values())


def migrate_huge_folio_or_split(kernel, task, mm, f: HugeFolio, huge_nid: int | None,
                                alloc_small) -> bool:
    """Migrate ``f`` whole to ``huge_nid``; without a huge target page, or when the folio
    waits on the deferred split queue (``folio_test_partially_mapped``: part of it is
    unmapped, or it was migrated while PTE-mapped), split it and migrate the small pages,
    each to ``alloc_small()`` (``migrate_pages_batch`` splits such folios since 6.10;
    before, the folio moves whole: ``migrate_splits_partially_mapped``)."""
    partial = _folio_partially_mapped(mm, f)
    if huge_nid is not None and (not partial or not kernel.version.migrate_splits_partially_mapped):
        return migrate_huge_folio(kernel, task, mm, f, huge_nid)
    if huge_nid is not None:
        kernel.pages.free_pages(huge_nid, HPAGE_PMD_NR)
    from mempolicy.syscalls.mempolicy import migrate_folio_to
    ok = True
    for page in split_huge_folio(kernel, mm, f):
        ok = migrate_folio_to(kernel, page, alloc_small()) and ok
    return ok


def huge_page_spans(mm, lo: int, hi: int) -> list[tuple[int, int, bool]]:
    """(first vpn, end vpn, PMD-mapped) of the huge pages and huge zero PMDs over
    [lo, hi), in address order (for ``mempolicy plot``)."""
    folios = getattr(mm, "thp_folios", None)
    if not folios:
        return []
    out = []
    for idx in sorted(i for i in folios if lo < (i + 1) << HPAGE_PMD_ORDER and i << HPAGE_PMD_ORDER < hi):
        f = folios[idx]
        first = max(lo, idx << HPAGE_PMD_ORDER)
        end = min(hi, (idx + 1) << HPAGE_PMD_ORDER)
        out.append((first, end, f is HUGE_ZERO or f.pmd_mapped))
    return out
