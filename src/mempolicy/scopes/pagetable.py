"""The page table of an address space: virtual page number -> resident page, compactly.

The kernel's ptes point at ``struct page``s; most of the pages a process
touches are private anonymous pages that only this pte maps (mapcount 1,
index = virtual page number).  For those the model keeps no object at all,
one byte per page: the node the page lives on and the pte's dirty bit.
Only pages whose identity matters are ``Folio`` objects: shmem page-cache
pages, pages mapped by more than one pte (after fork), copies of file pages.
A compact page becomes a ``Folio`` (``get``) the first time code asks for it
as an object, and stays one, so identity (mapcount, migration moving a page
for every mapper) is exact; readers that only need the node, the counts of
numa_maps or a per-node histogram use ``nid``/``kind``/``stats`` and never
create objects.

Layout: the address space is cut into aligned windows of ``CHUNK_PAGES``
pages (128 MiB).  A window that holds a pte has a ``_Chunk``: a ``bytearray``
of page codes covering the part of the window in use (it grows by doubling,
so a sparse mapping costs a few bytes, a full window 32 KiB), the ``Folio``
objects of that window, a count of its entries and a cached histogram of its
codes.  A code byte is 0 (no pte), ``ZERO`` (the shared zero page),
``ANON0 + nid`` (a compact private page on ``nid``) or ``OBJ`` (an object in
the chunk's dict), with bit 7 set when the pte is dirty.

Where the model differs: the kernel has one pte per page in a tree of
page-table pages; those pages are modelled only as the allocations they cost
(``MM.pgtables``).
"""

from __future__ import annotations

import threading

from mempolicy.alloc.page_alloc import Folio, ZeroPage
from mempolicy.uapi import PAGE_SHIFT

CHUNK_SHIFT = 15
CHUNK_PAGES = 1 << CHUNK_SHIFT
CHUNK_MASK = CHUNK_PAGES - 1
FILE_STEP = 1 << 20                       # pages of FILE ptes read at once (numa_maps, unmap)

DIRTY = 0x80
KIND_MASK = 0x7F
ZERO = 1
ANON0 = 2
OBJ = 0x7F
FILE = 0x7E                               # the page-cache page of the VMA's inode (pagecache.py)
MAX_COMPACT_NID = FILE - ANON0 - 1        # 123: higher node ids are kept as objects

# kinds returned by ``kind``
ABSENT, KIND_ZERO, KIND_ANON, KIND_OBJ, KIND_FILE = 0, 1, 2, 3, 4

_np = None


def _numpy():
    """NumPy, imported on first use; None when it is not installed."""
    global _np
    if _np is None:
        try:
            import numpy
        except ImportError:
            _np = False
        else:
            _np = numpy
    return _np or None


def kind_of(code: int) -> int:
    c = code & KIND_MASK
    if c == 0:
        return ABSENT
    if c == ZERO:
        return KIND_ZERO
    if c == OBJ:
        return KIND_OBJ
    if c == FILE:
        return KIND_FILE
    return KIND_ANON


class _Chunk:
    """One window: codes of pages [lo, lo + len(codes)), objects, entry count, histogram."""

    __slots__ = ("lo", "codes", "objs", "n", "hist")

    def __init__(self, lo: int, size: int) -> None:
        self.lo = lo
        self.codes = bytearray(size)
        self.objs: dict[int, object] | None = None
        self.n = 0
        self.hist: dict[int, int] | None = {}


class DirtyView:
    """``mm.dirty_ptes``: the set of vpns whose pte is dirty, read from the code bytes."""

    __slots__ = ("pt",)

    def __init__(self, pt: "PageTable") -> None:
        self.pt = pt

    def __contains__(self, vpn) -> bool:
        return bool(self.pt.code(vpn) & DIRTY)

    def add(self, vpn: int) -> None:
        self.pt.set_dirty(vpn, True)

    def discard(self, vpn: int) -> None:
        self.pt.set_dirty(vpn, False)

    def __iter__(self):
        pt = self.pt
        return (v for v in pt if pt.code(v) & DIRTY)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class PageTable:
    """vpn -> Folio | ZeroPage with dict-like reads, compact for private pages."""

    def __init__(self, kernel=None) -> None:
        self._chunks: dict[int, _Chunk] = {}
        self._n = 0
        self._zero: ZeroPage | None = None
        if kernel is not None:
            self._zero = kernel.pages.zero_page
        self.dirty = DirtyView(self)
        self.owner = None                  # the MM: resolves FILE ptes through its VMAs
        # the pte lock: faults of several threads of one process update the table at once
        self._lock = threading.Lock()

    # -- codes -----------------------------------------------------------------
    def code(self, vpn: int) -> int:
        """The raw code byte of ``vpn`` (0: no pte)."""
        c = self._chunks.get(vpn >> CHUNK_SHIFT)
        if c is None:
            return 0
        i = vpn - c.lo
        if 0 <= i < len(c.codes):
            return c.codes[i]
        return 0

    def _file_slot(self, vpn: int):
        """(page cache, index) of the page a FILE pte at ``vpn`` maps."""
        vma = self.owner.vma_lookup(vpn << PAGE_SHIFT)
        return vma.inode.pages, vma.linear_page_index(vpn << PAGE_SHIFT)

    def _file_segments(self, lo: int, hi: int):
        """(vpn lo, vpn hi, page cache, index of lo) for each shmem VMA piece of [lo, hi)."""
        for vma in self.owner.vmas_in(lo << PAGE_SHIFT, hi << PAGE_SHIFT):
            if vma.inode is None:
                continue
            a = max(lo, vma.start >> PAGE_SHIFT)
            b = min(hi, vma.end >> PAGE_SHIFT)
            if a < b:
                yield a, b, vma.inode.pages, vma.linear_page_index(a << PAGE_SHIFT)

    def _slot(self, vpn: int) -> tuple[_Chunk, int]:
        """The chunk of ``vpn`` and its index there, growing the chunk to cover it."""
        key = vpn >> CHUNK_SHIFT
        c = self._chunks.get(key)
        if c is None:
            c = _Chunk(vpn, 1)
            self._chunks[key] = c
            return c, 0
        i = vpn - c.lo
        size = len(c.codes)
        if 0 <= i < size:
            return c, i
        wlo = key << CHUNK_SHIFT
        whi = wlo + CHUNK_PAGES
        hi = c.lo + size
        want = max(2 * size, 16)
        if vpn >= hi:
            new_lo = c.lo
            new_hi = min(whi, max(vpn + 1, c.lo + want))
        else:
            new_hi = hi
            new_lo = max(wlo, min(vpn, hi - want))
        c.codes = bytearray(c.lo - new_lo) + c.codes + bytearray(new_hi - hi)
        c.lo = new_lo
        return c, vpn - new_lo

    def _cover(self, lo: int, hi: int) -> None:
        """Make the chunks cover [lo, hi) entirely (hi <= end of lo's window)."""
        key = lo >> CHUNK_SHIFT
        c = self._chunks.get(key)
        if c is None:
            wlo = key << CHUNK_SHIFT
            self._chunks[key] = c = _Chunk(lo, hi - lo)
            if hi - lo >= CHUNK_PAGES // 2:         # a big write: take the whole window
                c.lo = wlo
                c.codes = bytearray(CHUNK_PAGES)
            return
        if c.lo <= lo and hi <= c.lo + len(c.codes):
            return
        new_lo = min(c.lo, lo)
        new_hi = max(c.lo + len(c.codes), hi)
        c.codes = bytearray(c.lo - new_lo) + c.codes + bytearray(new_hi - c.lo - len(c.codes))
        c.lo = new_lo

    def _set_code(self, c: _Chunk, i: int, new: int) -> None:
        old = c.codes[i]
        if old == new:
            return
        c.codes[i] = new
        h = c.hist
        if h is not None:
            if old:
                k = h[old] - 1
                if k:
                    h[old] = k
                else:
                    del h[old]
            if new:
                h[new] = h.get(new, 0) + 1
        if not old:
            c.n += 1
            self._n += 1
        elif not new:
            c.n -= 1
            self._n -= 1
            if c.objs is not None:
                c.objs.pop(c.lo + i, None)
            if not c.n:
                del self._chunks[(c.lo + i) >> CHUNK_SHIFT]

    # -- dict-like reads -----------------------------------------------------------
    def __len__(self) -> int:
        return self._n

    def __contains__(self, vpn) -> bool:
        return self.code(vpn) != 0

    def __iter__(self):
        """Present vpns in ascending order."""
        for key in sorted(list(self._chunks)):
            c = self._chunks.get(key)
            if c is not None:
                yield from self._present_in(c, c.lo, c.lo + len(c.codes))

    def keys(self):
        return iter(self)

    def _present_in(self, c: _Chunk, lo: int, hi: int):
        with self._lock:                   # a snapshot: other threads may fault meanwhile
            base = max(lo, c.lo)
            end = min(hi, c.lo + len(c.codes))
            if base >= end:
                return
            seg = c.codes[base - c.lo:end - c.lo]
        np = _numpy()
        if np is not None and len(seg) > 256:
            for i in np.flatnonzero(np.frombuffer(seg, np.uint8)).tolist():
                yield base + i
            return
        for i, x in enumerate(seg):
            if x:
                yield base + i

    def present(self, lo: int, hi: int):
        """The vpns in [lo, hi) that have a pte, ascending."""
        if lo >= hi:
            return
        for key in self._chunk_keys(lo, hi):
            c = self._chunks.get(key)
            if c is not None:
                yield from self._present_in(c, lo, hi)

    def _chunk_keys(self, lo: int, hi: int) -> list[int]:
        k0, k1 = lo >> CHUNK_SHIFT, (hi - 1) >> CHUNK_SHIFT
        chunks = self._chunks
        if k1 - k0 + 1 <= len(chunks):
            return [k for k in range(k0, k1 + 1) if k in chunks]
        return sorted(k for k in list(chunks) if k0 <= k <= k1)

    def get(self, vpn: int, default=None):
        """The page mapped at ``vpn``: a compact page becomes a Folio object here."""
        with self._lock:
            return self._get(vpn, default)

    def _get(self, vpn: int, default=None):
        key = vpn >> CHUNK_SHIFT
        c = self._chunks.get(key)
        if c is None:
            return default
        i = vpn - c.lo
        if not 0 <= i < len(c.codes):
            return default
        code = c.codes[i]
        k = code & KIND_MASK
        if k == 0:
            return default
        if k == OBJ:
            return c.objs[vpn]
        if k == ZERO:
            return self._zero
        if k == FILE:                                     # its mapcount counts this pte already
            cache, index = self._file_slot(vpn)
            folio = cache.get(index)
            if c.objs is None:
                c.objs = {}
            c.objs[vpn] = folio
            self._set_code(c, i, OBJ | (code & DIRTY))
            return folio
        folio = Folio(k - ANON0, anon=True, index=vpn)   # promote: identity from now on
        folio.mapcount = 1
        if c.objs is None:
            c.objs = {}
        c.objs[vpn] = folio
        self._set_code(c, i, OBJ | (code & DIRTY))
        return folio

    def __getitem__(self, vpn: int):
        page = self.get(vpn)
        if page is None:
            raise KeyError(vpn)
        return page

    def kind(self, vpn: int) -> int:
        """ABSENT, KIND_ZERO, KIND_ANON (a compact private page) or KIND_OBJ."""
        return kind_of(self.code(vpn))

    def nid(self, vpn: int) -> int | None:
        """The node of the page mapped at ``vpn`` (the zero page's too), None if none."""
        code = self.code(vpn)
        k = code & KIND_MASK
        if k == 0:
            return None
        if k == OBJ:
            return self._chunks[vpn >> CHUNK_SHIFT].objs[vpn].nid
        if k == ZERO:
            return self._zero.nid
        if k == FILE:
            cache, index = self._file_slot(vpn)
            return cache.nid(index)
        return k - ANON0

    # -- writes ------------------------------------------------------------------------
    def _store(self, vpn: int, page, dirty: bool | None) -> None:
        with self._lock:
            self._store_locked(vpn, page, dirty)

    def _store_locked(self, vpn: int, page, dirty: bool | None) -> None:
        c, i = self._slot(vpn)
        old = c.codes[i]
        d = (old & DIRTY) if dirty is None else (DIRTY if dirty else 0)
        if isinstance(page, ZeroPage):
            self._zero = page
            if c.objs is not None:
                c.objs.pop(vpn, None)
            self._set_code(c, i, ZERO | d)
            return
        if c.objs is None:
            c.objs = {}
        c.objs[vpn] = page
        self._set_code(c, i, OBJ | d)

    def __setitem__(self, vpn: int, page) -> None:
        """Store ``page`` as an object (no mapcount change; the dirty bit stays)."""
        self._store(vpn, page, None)

    def map(self, vpn: int, page, dirty: bool) -> None:
        """Install a pte (``set_pte_at``): a new private anonymous page only this pte
        maps is kept compact; any other Folio gains a mapping.  ``dirty`` sets the
        pte's dirty bit for a Folio (the zero page is never dirty)."""
        if isinstance(page, Folio):
            if (page.anon and page.mapcount == 0 and page.mapping is None and not page.dirty
                    and page.index == vpn and 0 <= page.nid <= MAX_COMPACT_NID):
                with self._lock:
                    c, i = self._slot(vpn)
                    if c.objs is not None:
                        c.objs.pop(vpn, None)
                    self._set_code(c, i, (ANON0 + page.nid) | (DIRTY if dirty else 0))
                return
            page.mapcount += 1
            self._store(vpn, page, bool(dirty))
            return
        self._store(vpn, page, False)

    def map_new_anon(self, vpn: int, nid: int, lru=None, cpu: int = 0) -> bool:
        """Install a new private anonymous page on ``nid`` with a dirty pte where there is
        no pte (``map`` of a fresh anonymous Folio, without making one); False when a
        pte is there already.  With ``lru`` (the ``LruBatches``) the page also joins
        ``cpu``'s batch, as do_anonymous_page calls folio_add_lru_vma under the pte
        lock (the model takes the batch lock after the pte lock)."""
        lock = self._lock
        lock.acquire()
        try:
            c = self._chunks.get(vpn >> CHUNK_SHIFT)    # _slot's common case inline
            i = vpn - c.lo if c is not None else -1
            if i < 0 or i >= len(c.codes):
                c, i = self._slot(vpn)
            if c.codes[i]:
                return False
            if nid > MAX_COMPACT_NID:
                folio = Folio(nid, anon=True, index=vpn)
                folio.mapcount = 1
                if c.objs is None:
                    c.objs = {}
                c.objs[vpn] = folio
                self._set_code(c, i, OBJ | DIRTY)
            else:                                       # _set_code of an absent pte, inline
                code = (ANON0 + nid) | DIRTY
                c.codes[i] = code
                h = c.hist
                if h is not None:
                    h[code] = h.get(code, 0) + 1
                c.n += 1
                self._n += 1
        finally:
            lock.release()
        if lru is not None:
            lru.folio_add_lru(cpu, (self.owner, vpn))
        return True

    def unmap(self, kernel, vpn: int) -> bool:
        """Remove a pte and free an anonymous page nobody maps any more.  True when the
        pte mapped a Folio (what the TLB gather counts)."""
        with self._lock:
            nid = self._unmap(vpn)
        if nid is None:
            return False
        if nid >= 0:
            kernel.pages.free_page(nid)
        return True

    def _unmap(self, vpn: int) -> int | None:
        """Remove the pte: None (nothing or the zero page), -1 (a Folio still in use)
        or the node of a page to free."""
        c = self._chunks.get(vpn >> CHUNK_SHIFT)
        if c is None:
            return False
        if c is None:
            return None
        i = vpn - c.lo
        if not 0 <= i < len(c.codes) or not c.codes[i]:
            return None
        code = c.codes[i]
        k = code & KIND_MASK
        page = c.objs.get(vpn) if k == OBJ else None
        if k == FILE:
            cache, index = self._file_slot(vpn)
            cache.unmap_compact(index, bool(code & DIRTY))
            self._set_code(c, i, 0)
            return -1
        self._set_code(c, i, 0)
        if k == ZERO:
            return None
        if k != OBJ:
            return k - ANON0
        if isinstance(page, Folio):
            if code & DIRTY and not page.anon:      # zap_present_folio_ptes: pte dirty -> folio
                page.dirty = True
            page.mapcount -= 1
            if page.mapcount == 0 and page.anon:
                return page.nid
            return -1
        return None

    def pop(self, vpn: int, default=None):
        """Remove the pte and return its page (a compact page comes back as a Folio
        with mapcount 1, not yet unmapped)."""
        with self._lock:
            page = self._get(vpn)
            if page is None:
                return default
            c, i = self._slot(vpn)
            self._set_code(c, i, 0)
            return page

    def set_dirty(self, vpn: int, dirty: bool = True) -> None:
        with self._lock:
            c = self._chunks.get(vpn >> CHUNK_SHIFT)
            if c is None:
                return
            i = vpn - c.lo
            if 0 <= i < len(c.codes) and c.codes[i]:
                code = c.codes[i]
                self._set_code(c, i, (code | DIRTY) if dirty else (code & ~DIRTY))

    def is_dirty(self, vpn: int) -> bool:
        return bool(self.code(vpn) & DIRTY)

    # -- ranges ------------------------------------------------------------------------
    def runs(self, lo: int, hi: int) -> list[tuple[int, int, int]]:
        """[lo, hi) cut into maximal runs of one kind: (start, end, kind), ascending."""
        with self._lock:
            return self._runs(lo, hi)

    def _runs(self, lo: int, hi: int) -> list[tuple[int, int, int]]:
        out: list[list[int]] = []

        def add(a: int, b: int, k: int) -> None:
            if a >= b:
                return
            if out and out[-1][2] == k and out[-1][1] == a:
                out[-1][1] = b
            else:
                out.append([a, b, k])

        np = _numpy()
        v = lo
        keys = self._chunk_keys(lo, hi) if lo < hi else []
        ki = 0
        while v < hi:
            key = v >> CHUNK_SHIFT
            while ki < len(keys) and keys[ki] < key:
                ki += 1
            if ki == len(keys) or keys[ki] > key:       # no window until the next key
                nxt = hi if ki == len(keys) else min(hi, keys[ki] << CHUNK_SHIFT)
                add(v, nxt, ABSENT)
                v = nxt
                continue
            whi = min(hi, (key + 1) << CHUNK_SHIFT)
            c = self._chunks[key]
            a, b = max(v, c.lo), min(whi, c.lo + len(c.codes))
            if a >= b:
                add(v, whi, ABSENT)
                v = whi
                continue
            add(v, a, ABSENT)
            if np is not None and b - a > 64:
                codes = np.frombuffer(c.codes, np.uint8)[a - c.lo:b - c.lo] & KIND_MASK
                kinds = np.where(codes >= ANON0, KIND_ANON, codes)
                kinds[codes == OBJ] = KIND_OBJ
                kinds[codes == FILE] = KIND_FILE
                cuts = (np.flatnonzero(kinds[1:] != kinds[:-1]) + 1).tolist()
                starts = [0, *cuts]
                ends = [*cuts, b - a]
                kl = kinds[starts].tolist()
                for s, e, k in zip(starts, ends, kl):
                    add(a + s, a + e, k)
            else:
                codes = c.codes
                for u in range(a, b):
                    add(u, u + 1, kind_of(codes[u - c.lo]))
            add(b, whi, ABSENT)
            v = whi
        return [tuple(r) for r in out]

    def _slice_hist(self, c: _Chunk, a: int, b: int) -> dict[int, int]:
        """Counts of each non-zero code in chunk indexes [a, b)."""
        codes = c.codes
        if a <= 0 and b >= len(codes):
            if c.hist is None:
                c.hist = self._count(codes, 0, len(codes))
            return c.hist
        a, b = max(a, 0), min(b, len(codes))
        if a >= b:
            return {}
        return self._count(codes, a, b)

    @staticmethod
    def _count(codes: bytearray, a: int, b: int) -> dict[int, int]:
        h: dict[int, int] = {}
        if b - a <= 512:
            for x in codes[a:b]:
                if x:
                    h[x] = h.get(x, 0) + 1
            return h
        np = _numpy()
        if np is not None:
            cnt = np.bincount(np.frombuffer(codes, np.uint8)[a:b], minlength=256)
            nz = np.flatnonzero(cnt)
            for x, k in zip(nz.tolist(), cnt[nz].tolist()):
                if x:
                    h[x] = k
            return h
        seg = bytes(codes[a:b])
        for x in set(seg) - {0}:
            h[x] = seg.count(x)
        return h

    def stats(self, lo: int, hi: int, n_memory) -> tuple[int, int, int, int, dict[int, int]]:
        """What numa_maps counts over [lo, hi): (pages, anon, dirty, mapmax, {nid: pages}).

        The zero page is not counted, nor pages on a node without memory.
        """
        with self._lock:
            return self._stats(lo, hi, n_memory)

    def _stats(self, lo: int, hi: int, n_memory):
        pages = anon = dirty = mapmax = 0
        nodes: dict[int, int] = {}
        has_file = False
        for key in self._chunk_keys(lo, hi) if lo < hi else ():
            c = self._chunks[key]
            a, b = lo - c.lo, hi - c.lo
            for code, cnt in self._slice_hist(c, a, b).items():
                k = code & KIND_MASK
                if k == FILE:
                    has_file = True
                    continue
                if k == ZERO or k == OBJ:
                    continue
                nid = k - ANON0
                if nid not in n_memory:
                    continue
                pages += cnt
                anon += cnt
                if code & DIRTY:
                    dirty += cnt
                mapmax = max(mapmax, 1)
                nodes[nid] = nodes.get(nid, 0) + cnt
            if c.objs:
                for vpn, folio in c.objs.items():
                    if not lo <= vpn < hi or not isinstance(folio, Folio) \
                            or folio.nid not in n_memory:
                        continue
                    pages += 1
                    if c.codes[vpn - c.lo] & DIRTY or folio.dirty:
                        dirty += 1
                    if folio.anon:
                        anon += 1
                    mapmax = max(mapmax, folio.mapcount)
                    nodes[folio.nid] = nodes.get(folio.nid, 0) + 1
        if has_file:
            for nid, cnt, d, mm_ in self._file_stats(lo, hi):
                if nid in n_memory:
                    pages += cnt
                    dirty += d
                    mapmax = max(mapmax, mm_)
                    nodes[nid] = nodes.get(nid, 0) + cnt
        return pages, anon, dirty, mapmax, nodes

    def _codes(self, lo: int, hi: int):
        """The code bytes of [lo, hi) as a NumPy uint8 array (a copy)."""
        np = _numpy()
        out = np.zeros(hi - lo, dtype=np.uint8)
        for key in self._chunk_keys(lo, hi):
            c = self._chunks[key]
            a, b = max(lo, c.lo), min(hi, c.lo + len(c.codes))
            if a < b:
                out[a - lo:b - lo] = np.frombuffer(c.codes, np.uint8)[a - c.lo:b - c.lo]
        return out

    def _file_stats(self, lo: int, hi: int):
        """(nid, pages, dirty, mapmax) groups over the FILE ptes of [lo, hi)."""
        np = _numpy()
        from mempolicy.scopes.pagecache import DIRTY as CDIRTY, NID_MASK, OBJ as COBJ
        out = []
        for a, b, cache, ia in self._file_segments(lo, hi):
            v = a
            while v < b:
                w = min(b, v + FILE_STEP)
                pte = self._codes(v, w)
                sel = (pte & KIND_MASK) == FILE
                if sel.any():
                    i0 = ia + (v - a)
                    cc = cache.codes_range(i0, i0 + (w - v))
                    # one byte per page: nid + 1, and bit 7 when the pte or the folio is dirty
                    key = (cc & NID_MASK) | ((cc | pte) & CDIRTY)
                    if not sel.all():
                        key[~sel] = 0
                    cnt = np.bincount(key, minlength=256).tolist()
                    for x in range(1, COBJ):
                        if cnt[x] or cnt[x | CDIRTY]:
                            out.append((x - 1, cnt[x] + cnt[x | CDIRTY], cnt[x | CDIRTY], 1))
                    if cnt[COBJ] or cnt[COBJ | CDIRTY]:
                        for p in np.flatnonzero((key & NID_MASK) == COBJ).tolist():
                            n_, fd, mc = cache.compact_info(i0 + p)
                            out.append((n_, 1, 1 if fd or pte[p] & DIRTY else 0, mc))
                v = w
        return out

    def node_counts(self, lo: int, hi: int) -> dict[int, int]:
        """Pages (Folios, compact or not) per node in [lo, hi); the zero page excluded."""
        return self.stats(lo, hi, _AllNodes())[4]

    def node_bins(self, lo: int, hi: int, bins: int, nr_nodes: int):
        """A (bins, nr_nodes + 1) NumPy array: for each of ``bins`` equal slices of
        [lo, hi), its pages per node; the last column counts zero pages.  For pictures."""
        with self._lock:
            return self._node_bins(lo, hi, bins, nr_nodes)

    def _node_bins(self, lo: int, hi: int, bins: int, nr_nodes: int):
        np = _numpy()
        width = nr_nodes + 1
        out = np.zeros(bins * width, dtype=np.int64)
        span = hi - lo
        if span <= 0:
            return out.reshape(bins, width)
        lut = np.full(256, nr_nodes + 1, dtype=np.int64)          # nr_nodes + 1: not counted
        for nid in range(min(nr_nodes, MAX_COMPACT_NID + 1)):
            lut[ANON0 + nid] = lut[(ANON0 + nid) | DIRTY] = nid
        lut[ZERO] = lut[ZERO | DIRTY] = nr_nodes
        for key in self._chunk_keys(lo, hi):
            c = self._chunks[key]
            a, b = max(lo, c.lo), min(hi, c.lo + len(c.codes))
            if a >= b:
                continue
            r0, r1 = (a - lo) * bins // span, (b - 1 - lo) * bins // span
            if r0 == r1:                        # the slice falls in one bin: its histogram
                for code, cnt in self._slice_hist(c, a - c.lo, b - c.lo).items():
                    col = int(lut[code])
                    if col <= nr_nodes:
                        out[r0 * width + col] += cnt
            else:
                col = lut[np.frombuffer(c.codes, np.uint8)[a - c.lo:b - c.lo]]
                rows = (np.arange(a - lo, b - lo, dtype=np.int64) * bins) // span
                ok = col <= nr_nodes
                out += np.bincount(rows[ok] * width + col[ok], minlength=bins * width)
            if c.objs:
                for vpn, f in c.objs.items():
                    if a <= vpn < b and isinstance(f, Folio) and f.nid < nr_nodes:
                        out[((vpn - lo) * bins // span) * width + f.nid] += 1
        for vpns, nids in self._file_nids(lo, hi):      # FILE ptes: the page cache's node
            ok = nids < nr_nodes
            rows = ((vpns[ok] - lo) * bins) // span
            out += np.bincount(rows * width + nids[ok], minlength=bins * width)
        return out.reshape(bins, width)

    def _file_nids(self, lo: int, hi: int):
        """(vpns, nodes) NumPy arrays for the FILE ptes of [lo, hi): each pte's vpn and
        the node of the page-cache page it maps."""
        np = _numpy()
        from mempolicy.scopes.pagecache import NID_MASK, OBJ as COBJ
        for a, b, cache, ia in self._file_segments(lo, hi):
            for v in range(a, b, FILE_STEP):
                w = min(b, v + FILE_STEP)
                sel = np.flatnonzero((self._codes(v, w) & KIND_MASK) == FILE)
                if not len(sel):
                    continue
                i0 = ia + (v - a)
                cc = cache.codes_range(i0, i0 + (w - v))[sel] & NID_MASK
                nids = cc.astype(np.int64) - 1
                for p in np.flatnonzero(cc == COBJ).tolist():
                    nids[p] = cache.compact_info(i0 + int(sel[p]))[0]
                yield v + sel, nids

    # -- bulk writes (the bulk fault path; NumPy) -----------------------------------------
    def fill_pattern(self, lo: int, hi: int, pattern, phase: int) -> None:
        """Set the codes of [lo, hi) to ``pattern[(phase + v - lo) % len(pattern)]`` (a
        NumPy uint8 array of non-zero codes), replacing absent or zero-page ptes."""
        with self._lock:
            self._fill_pattern(lo, hi, pattern, phase)

    def _fill_pattern(self, lo: int, hi: int, pattern, phase: int) -> None:
        np = _numpy()
        P = len(pattern)
        reps = (CHUNK_PAGES + 2 * P) // P + 1
        tile = np.tile(pattern, reps)
        full = np.bincount(pattern, minlength=256)
        v = lo
        while v < hi:
            key = v >> CHUNK_SHIFT
            whi = min(hi, (key + 1) << CHUNK_SHIFT)
            self._cover(v, whi)
            c = self._chunks[key]
            arr = np.frombuffer(c.codes, np.uint8)
            a, b = v - c.lo, whi - c.lo
            old = arr[a:b]
            k_absent = int(b - a - np.count_nonzero(old))
            if c.objs:
                for u in [u for u in c.objs if v <= u < whi]:
                    del c.objs[u]
            ph = (phase + v - lo) % P
            old_hist = None
            if c.hist is not None and k_absent != b - a:
                old_hist = self._count(c.codes, a, b)
            arr[a:b] = tile[ph:ph + (b - a)]
            if c.hist is not None:
                h = c.hist
                for code, cnt in (old_hist or {}).items():
                    left = h.get(code, 0) - cnt
                    if left:
                        h[code] = left
                    else:
                        h.pop(code, None)
                n = b - a
                cnt = full * (n // P)
                r = n % P
                if r:
                    seg = tile[ph:ph + r]
                    cnt = cnt + np.bincount(seg, minlength=256)
                nz = np.flatnonzero(cnt)
                for code, k in zip(nz.tolist(), cnt[nz].tolist()):
                    h[code] = h.get(code, 0) + k
            c.n += k_absent
            self._n += k_absent
            v = whi

    def set_dirty_range(self, lo: int, hi: int) -> None:
        """Set the dirty bit of every pte in [lo, hi) (all compact private pages)."""
        with self._lock:
            self._set_dirty_range(lo, hi)

    def _set_dirty_range(self, lo: int, hi: int) -> None:
        np = _numpy()
        for key in self._chunk_keys(lo, hi):
            c = self._chunks[key]
            a, b = max(lo, c.lo) - c.lo, min(hi, c.lo + len(c.codes)) - c.lo
            if a >= b:
                continue
            arr = np.frombuffer(c.codes, np.uint8)
            arr[a:b] |= np.where(arr[a:b] != 0, DIRTY, 0).astype(np.uint8)
            c.hist = None

    def unmap_range(self, kernel, lo: int, hi: int) -> int:
        """Remove every pte of [lo, hi) at once (zap_pte_range without the TLB gather's
        allocations): compact pages go back to their nodes, objects lose a mapping.
        Returns the number of Folios unmapped."""
        with self._lock:
            folios, freed = self._unmap_range(lo, hi)
        pages = kernel.pages
        for nid, cnt in freed.items():
            free_pages = getattr(pages, "free_pages", None)
            if free_pages is not None:
                free_pages(nid, cnt)
            else:
                for _ in range(cnt):
                    pages.free_page(nid)
        return folios

    def _unmap_range(self, lo: int, hi: int) -> tuple[int, dict[int, int]]:
        folios = 0
        freed: dict[int, int] = {}
        if self.owner is not None and any(vma.inode is not None for vma in
                                          self.owner.vmas_in(lo << PAGE_SHIFT, hi << PAGE_SHIFT)):
            self._unmap_file(lo, hi)
        for key in self._chunk_keys(lo, hi) if lo < hi else ():
            c = self._chunks[key]
            a, b = max(lo, c.lo) - c.lo, min(hi, c.lo + len(c.codes)) - c.lo
            if a >= b:
                continue
            h = self._count(c.codes, a, b)
            for code, cnt in h.items():
                k = code & KIND_MASK
                if k == FILE:
                    folios += cnt
                elif k not in (ZERO, OBJ):
                    freed[k - ANON0] = freed.get(k - ANON0, 0) + cnt
                    folios += cnt
            if c.objs:
                for vpn in [u for u in c.objs if lo <= u < hi]:
                    page = c.objs.pop(vpn)
                    if isinstance(page, Folio):
                        if c.codes[vpn - c.lo] & DIRTY and not page.anon:
                            page.dirty = True       # zap_present_folio_ptes: pte dirty -> folio
                        folios += 1
                        page.mapcount -= 1
                        if page.mapcount == 0 and page.anon:
                            freed[page.nid] = freed.get(page.nid, 0) + 1
            removed = sum(h.values())
            if c.hist is not None:
                if a == 0 and b == len(c.codes):
                    c.hist = {}
                else:
                    for code, cnt in h.items():
                        left = c.hist.get(code, 0) - cnt
                        if left:
                            c.hist[code] = left
                        else:
                            c.hist.pop(code, None)
            c.codes[a:b] = bytes(b - a)
            c.n -= removed
            self._n -= removed
            if not c.n:
                del self._chunks[key]
        return folios, freed

    def _unmap_file(self, lo: int, hi: int) -> None:
        """The page-cache side of dropping the FILE ptes of [lo, hi) (one window):
        compact pages lose MAPPED, objects a mapping."""
        np = _numpy()
        from mempolicy.scopes.pagecache import MAPPED, OBJ as COBJ
        for a0, b0, cache, ia0 in self._file_segments(lo, hi):
            if b0 - a0 <= 512:                 # a few pages: one by one, NumPy would cost more
                for v in range(a0, b0):
                    pte = self.code(v)
                    if pte & KIND_MASK == FILE:
                        cache.unmap_compact(ia0 + v - a0, bool(pte & DIRTY))
                continue
            for a in range(a0, b0, FILE_STEP):
                b = min(b0, a + FILE_STEP)
                ia = ia0 + (a - a0)
                pte = self._codes(a, b)
                sel = (pte & KIND_MASK) == FILE
                if not sel.any():
                    continue
                cc = cache.codes_range(ia, ia + (b - a))
                for p in np.flatnonzero(sel & (cc == COBJ)).tolist():
                    cache.unmap_compact(ia + p, bool(pte[p] & DIRTY))
                comp = sel & (cc != COBJ)
                # a dirty pte dirties the folio (zap_present_folio_ptes)
                new = ((cc & (~MAPPED & 0xFF)) | (pte & DIRTY)).astype(np.uint8)
                for x, y, ch, off in cache.segments(ia, ia + (b - a)):
                    arr = np.frombuffer(ch.codes, np.uint8)[off:off + (y - x)]
                    m = comp[x - ia:y - ia]
                    if m.all():
                        arr[:] = new[x - ia:y - ia]
                    else:
                        arr[m] = new[x - ia:y - ia][m]

    def memory_bytes(self) -> int:
        """Bytes held by the code arrays (the compact state, without objects)."""
        return sum(len(c.codes) for c in self._chunks.values())


class _AllNodes:
    def __contains__(self, nid) -> bool:
        return True
