"""The page cache of a shmem inode: page index -> resident page, compactly.

The kernel keeps the pages of a shmem/tmpfs file in an xarray of ``struct
folio``s (``mapping->i_pages``).  Most pages of a large memfd are placed by
the bulk fault path and are mapped by at most one pte; for those the model
keeps one byte per page, the way ``scopes.pagetable`` keeps private pages:
the node, whether one pte maps the page compactly (that pte's code is
``FILE``: "the page-cache page of my VMA's inode at my linear index"), and
the folio's dirty flag.  A compact page becomes a ``Folio`` object the first
time code asks for it (``get``), with its mapcount and dirty flag, and stays
one, so identity (a second mapping, migration) is exact.

Code byte: 0 no page; ``nid + 1`` (1..62) a compact page on ``nid``, plus
``MAPPED`` (0x40) when one compact pte maps it and ``DIRTY`` (0x80) when the
folio is dirty; ``OBJ`` (0x3F) a ``Folio`` in the chunk's dict.  Node ids
above ``MAX_CACHE_NID`` are always objects.

Callers hold the inode's ``i_pages_lock`` where the kernel holds the xa_lock;
the cache itself takes no lock.
"""

from __future__ import annotations

from mempolicy.alloc.page_alloc import Folio
from mempolicy.scopes.pagetable import _numpy

CHUNK_SHIFT = 20                   # 4 GiB of file per chunk; a small file gets a small array
CHUNK_PAGES = 1 << CHUNK_SHIFT

NID_MASK = 0x3F
OBJ = 0x3F
MAPPED = 0x40
DIRTY = 0x80
MAX_CACHE_NID = OBJ - 2            # 61: nid + 1 must stay below OBJ


class _Chunk:
    __slots__ = ("codes", "objs", "n")

    def __init__(self, size: int) -> None:
        self.codes = bytearray(size)
        self.objs: dict[int, Folio] = {}
        self.n = 0


class PageCache:
    """index -> Folio with dict-like reads (``get``, ``in``, ``len``, ``values``);
    compact for pages the bulk fault path placed."""

    def __init__(self, inode) -> None:
        self.inode = inode
        self._chunks: dict[int, _Chunk] = {}
        self._n = 0

    # -- helpers ---------------------------------------------------------------------
    def _chunk(self, index: int, create: bool) -> _Chunk | None:
        key = index >> CHUNK_SHIFT
        c = self._chunks.get(key)
        i = index & (CHUNK_PAGES - 1)
        if c is None:
            if not create:
                return None
            size = self.inode.size_pages - (key << CHUNK_SHIFT)
            c = self._chunks[key] = _Chunk(min(CHUNK_PAGES, max(size, i + 1)))
        elif i >= len(c.codes):
            if not create:
                return None
            c.codes += bytearray(i + 1 - len(c.codes))
        return c

    def code(self, index: int) -> int:
        c = self._chunk(index, False)
        return 0 if c is None else c.codes[index & (CHUNK_PAGES - 1)]

    # -- dict-like ------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._n

    def __contains__(self, index) -> bool:
        return self.code(index) != 0

    def get(self, index: int, default=None):
        """The page at ``index``: a compact page becomes a Folio object here."""
        c = self._chunk(index, False)
        if c is None:
            return default
        i = index & (CHUNK_PAGES - 1)
        code = c.codes[i]
        if not code:
            return default
        if code == OBJ:
            return c.objs[index]
        folio = Folio((code & NID_MASK) - 1, anon=False, mapping=self.inode, index=index)
        folio.dirty = bool(code & DIRTY)
        folio.mapcount = 1 if code & MAPPED else 0
        c.objs[index] = folio
        c.codes[i] = OBJ
        return folio

    def __getitem__(self, index: int) -> Folio:
        f = self.get(index)
        if f is None:
            raise KeyError(index)
        return f

    def __setitem__(self, index: int, folio: Folio) -> None:
        c = self._chunk(index, True)
        i = index & (CHUNK_PAGES - 1)
        if not c.codes[i]:
            c.n += 1
            self._n += 1
        c.codes[i] = OBJ
        c.objs[index] = folio

    def nid(self, index: int) -> int | None:
        """The node of the page at ``index`` without making an object (None: no page)."""
        c = self._chunk(index, False)
        if c is None:
            return None
        code = c.codes[index & (CHUNK_PAGES - 1)]
        if not code:
            return None
        if code == OBJ:
            return c.objs[index].nid
        return (code & NID_MASK) - 1

    def values(self):
        """Every page, as objects (promotes compact pages: use ``node_counts`` to count)."""
        for key in sorted(self._chunks):
            c = self._chunks[key]
            base = key << CHUNK_SHIFT
            for i, code in enumerate(c.codes):
                if code:
                    yield self.get(base + i)

    def node_counts(self) -> dict[int, int]:
        """Pages per node, without making objects."""
        out: dict[int, int] = {}
        np = _numpy()
        for c in self._chunks.values():
            if np is not None:
                cnt = np.bincount(np.frombuffer(c.codes, np.uint8) & NID_MASK, minlength=64)
                pairs = [(x, k) for x, k in enumerate(cnt.tolist()) if k and x not in (0, OBJ)]
            else:
                seg = bytes(x & NID_MASK for x in c.codes)
                pairs = [(x, seg.count(x)) for x in set(seg) - {0, OBJ}]
            for x, k in pairs:
                out[x - 1] = out.get(x - 1, 0) + k
            for f in c.objs.values():
                out[f.nid] = out.get(f.nid, 0) + 1
        return out

    def clear(self) -> None:
        self._chunks.clear()
        self._n = 0

    # -- the compact mapping (pte code FILE) ----------------------------------------------
    def unmap_compact(self, index: int, dirty: bool = False) -> None:
        """A FILE pte of this page went away: clear MAPPED, or drop the object's mapping;
        a dirty pte dirties the folio (zap_present_folio_ptes)."""
        c = self._chunk(index, False)
        i = index & (CHUNK_PAGES - 1)
        code = c.codes[i]
        if code == OBJ:
            f = c.objs[index]
            f.mapcount -= 1
            if dirty:
                f.dirty = True
        else:
            c.codes[i] = (code & ~MAPPED) | (DIRTY if dirty else 0)

    def compact_info(self, index: int) -> tuple[int, bool, int]:
        """(node, dirty, mapcount) of a page mapped by a FILE pte, without making an object."""
        c = self._chunk(index, False)
        code = c.codes[index & (CHUNK_PAGES - 1)]
        if code == OBJ:
            f = c.objs[index]
            return f.nid, f.dirty, f.mapcount
        return (code & NID_MASK) - 1, bool(code & DIRTY), 1

    def set_dirty_compact(self, index: int) -> None:
        """folio_mark_dirty() on a page mapped by a FILE pte."""
        c = self._chunk(index, False)
        i = index & (CHUNK_PAGES - 1)
        if c.codes[i] == OBJ:
            c.objs[index].dirty = True
        else:
            c.codes[i] |= DIRTY

    # -- ranges (NumPy; the bulk fault path) ----------------------------------------------
    def segments(self, lo: int, hi: int):
        """(start, end, chunk, offset) pieces of [lo, hi) by chunk; chunk None where none."""
        v = lo
        while v < hi:
            key = v >> CHUNK_SHIFT
            whi = min(hi, (key + 1) << CHUNK_SHIFT)
            yield v, whi, self._chunks.get(key), v - (key << CHUNK_SHIFT)
            v = whi

    def codes_range(self, lo: int, hi: int):
        """The code bytes of [lo, hi) as a NumPy uint8 array (a copy)."""
        np = _numpy()
        out = np.zeros(hi - lo, dtype=np.uint8)
        for a, b, c, off in self.segments(lo, hi):
            if c is None:
                continue
            have = max(0, min(b - a, len(c.codes) - off))
            if have:
                out[a - lo:a - lo + have] = np.frombuffer(c.codes, np.uint8)[off:off + have]
        return out

    def fill(self, lo: int, hi: int, pattern, phase: int) -> None:
        """Store compact pages: the code of index v is ``pattern[(phase + v - lo) % P]``
        (NumPy uint8, non-zero, never OBJ) over [lo, hi), where there is no page yet."""
        np = _numpy()
        P = len(pattern)
        tile = np.tile(pattern, (min(hi - lo, CHUNK_PAGES) + 2 * P) // P + 1)
        for a, b, c, off in self.segments(lo, hi):
            ph = (phase + a - lo) % P
            if c is None and off == 0:                   # a new chunk: its codes at once
                key = a >> CHUNK_SHIFT
                size = max(b - a, min(CHUNK_PAGES, self.inode.size_pages - a))
                c = self._chunks[key] = _Chunk(size)
                np.frombuffer(c.codes, np.uint8)[:b - a] = tile[ph:ph + (b - a)]
                c.n = b - a
                self._n += b - a
                continue
            if c is None or len(c.codes) < off + (b - a):
                c = self._chunk(b - 1, True)
            arr = np.frombuffer(c.codes, np.uint8)
            added = (b - a) - int(np.count_nonzero(arr[off:off + (b - a)]))
            arr[off:off + (b - a)] = tile[ph:ph + (b - a)]
            c.n += added
            self._n += added

    def busy_and_absent(self, lo: int, hi: int):
        """For the bulk fault path: (first offset in [lo, hi) whose page is an object or
        mapped already, or hi - lo; offsets where "no page yet" changes, below that)."""
        np = _numpy()
        cuts: list[int] = []
        prev_absent = None
        for a, b, c, off in self.segments(lo, hi):
            if c is None or off >= len(c.codes):
                if prev_absent is False:
                    cuts.append(a - lo)
                prev_absent = True
                continue
            cc = self.codes_range(a, b)
            busy = np.flatnonzero((cc == OBJ) | ((cc & MAPPED) != 0))
            end = int(busy[0]) if busy.size else b - a
            absent = cc[:end] == 0
            if end:
                if prev_absent is not None and prev_absent != bool(absent[0]):
                    cuts.append(a - lo)
                cuts.extend((np.flatnonzero(absent[1:] != absent[:-1]) + 1 + (a - lo)).tolist())
                prev_absent = bool(absent[-1])
            if end < b - a:
                return a - lo + end, cuts
        return hi - lo, cuts

    def or_flags(self, lo: int, hi: int, flags: int) -> None:
        """Set ``flags`` (MAPPED, DIRTY) on the compact pages of [lo, hi) (all present,
        none an object)."""
        np = _numpy()
        for a, b, c, off in self.segments(lo, hi):
            arr = np.frombuffer(c.codes, np.uint8)
            arr[off:off + (b - a)] |= flags

    def memory_bytes(self) -> int:
        return sum(len(c.codes) for c in self._chunks.values())
