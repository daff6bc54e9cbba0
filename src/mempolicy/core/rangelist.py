"""A sorted sequence of ranges keyed by their ``start``: the model's maple tree / rbtree.

The kernel keeps VMAs in a maple tree and shared-policy ranges in an rbtree:
O(log n) lookup, insert and erase.  ``RangeList`` keeps the items in blocks
of at most ``2 * BLOCK`` (a list of short sorted lists, with the first key of
each block in a list of its own), so a lookup is two bisections, an insert
or erase moves at most a block's worth of pointers, and a full walk is O(n).
Positional access (``seq[i]``, ``index``) is kept for callers that still
count, through prefix sums rebuilt lazily after a change.

Items are any objects with an integer ``start`` (0 <= start < 2**64); the
caller never changes an item's ``start`` directly once it is in the list but
calls ``rekey``.  Keys live in ``array('Q')`` blocks: the bisection inside a
block then reads contiguous memory instead of chasing int objects, which
keeps a lookup among 100,000 items within a small factor of one among 100.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from itertools import accumulate

BLOCK = 128


class RangeList:
    """Items sorted by ``start`` (distinct starts), list-like for reading."""

    __slots__ = ("_keys", "_items", "_firsts", "_len", "_offsets")

    def __init__(self, items=()) -> None:
        self._keys: list[array] = []
        self._items: list[list] = []
        self._firsts: list[int] = []
        self._len = 0
        self._offsets: list[int] | None = None
        for it in sorted(items, key=lambda x: x.start):
            self.add(it)

    # -- reading ---------------------------------------------------------------
    def __len__(self) -> int:
        return self._len

    def __bool__(self) -> bool:
        return self._len > 0

    def __iter__(self):
        for blk in self._items:
            yield from blk

    def __reversed__(self):
        for blk in reversed(self._items):
            yield from reversed(blk)

    def __eq__(self, other) -> bool:
        if isinstance(other, RangeList):
            other = list(other)
        if isinstance(other, list):
            return len(other) == self._len and all(a is b or a == b for a, b in zip(self, other))
        return NotImplemented

    def __repr__(self) -> str:
        return f"RangeList({list(self)!r})"

    def _block_of(self, key: int) -> int:
        """Index of the block holding the last item with start <= key (-1: none)."""
        return bisect_right(self._firsts, key) - 1

    def floor(self, key: int):
        """The item with the largest start <= key, or None."""
        b = bisect_right(self._firsts, key) - 1
        if b < 0:
            return None
        keys = self._keys[b]
        return self._items[b][bisect_right(keys, key) - 1]

    def after(self, key: int):
        """The item with the smallest start > key, or None."""
        b = bisect_right(self._firsts, key) - 1
        if b < 0:
            return self._items[0][0] if self._items else None
        j = bisect_right(self._keys[b], key)
        if j < len(self._keys[b]):
            return self._items[b][j]
        return self._items[b + 1][0] if b + 1 < len(self._items) else None

    def _pos(self, item) -> tuple[int, int]:
        b = bisect_right(self._firsts, item.start) - 1
        if b >= 0:
            j = bisect_left(self._keys[b], item.start)
            if j < len(self._keys[b]) and self._items[b][j] is item:
                return b, j
        raise ValueError(f"{item!r} is not in the list")

    def prev(self, item):
        """The item just below ``item``, or None."""
        b, j = self._pos(item)
        if j:
            return self._items[b][j - 1]
        return self._items[b - 1][-1] if b else None

    def next(self, item):
        """The item just above ``item``, or None."""
        b, j = self._pos(item)
        if j + 1 < len(self._items[b]):
            return self._items[b][j + 1]
        return self._items[b + 1][0] if b + 1 < len(self._items) else None

    def iter_from(self, key: int):
        """Items in order from the one with the largest start <= key (or the first)."""
        b = bisect_right(self._firsts, key) - 1
        if b < 0:
            b, j = 0, 0
        else:
            j = max(0, bisect_right(self._keys[b], key) - 1)
        items = self._items
        while b < len(items):
            blk = items[b]
            while j < len(blk):
                yield blk[j]
                j += 1
            b += 1
            j = 0

    # -- positional access (lazy prefix sums) -----------------------------------
    def _offs(self) -> list[int]:
        if self._offsets is None:
            self._offsets = [0, *accumulate(len(k) for k in self._keys)]
        return self._offsets

    def __getitem__(self, i):
        if isinstance(i, slice):
            return list(self)[i]
        if i < 0:
            i += self._len
        if not 0 <= i < self._len:
            raise IndexError("RangeList index out of range")
        offs = self._offs()
        b = bisect_right(offs, i) - 1
        return self._items[b][i - offs[b]]

    def index(self, item) -> int:
        b, j = self._pos(item)
        return self._offs()[b] + j

    def bisect_right(self, key: int) -> int:
        """Number of items with start <= key."""
        b = bisect_right(self._firsts, key) - 1
        if b < 0:
            return 0
        return self._offs()[b] + bisect_right(self._keys[b], key)

    # -- updates -----------------------------------------------------------------
    def add(self, item) -> None:
        key = item.start
        self._offsets = None
        self._len += 1
        if not self._keys:
            self._keys.append(array("Q", [key]))
            self._items.append([item])
            self._firsts.append(key)
            return
        b = max(0, bisect_right(self._firsts, key) - 1)
        keys = self._keys[b]
        j = bisect_right(keys, key)
        keys.insert(j, key)
        self._items[b].insert(j, item)
        if j == 0:
            self._firsts[b] = key
        if len(keys) > 2 * BLOCK:
            self._keys[b:b + 1] = [keys[:BLOCK], keys[BLOCK:]]
            items = self._items[b]
            self._items[b:b + 1] = [items[:BLOCK], items[BLOCK:]]
            self._firsts.insert(b + 1, keys[BLOCK])

    def remove(self, item) -> None:
        b, j = self._pos(item)
        self._del(b, j)

    def _del(self, b: int, j: int):
        self._offsets = None
        self._len -= 1
        keys = self._keys[b]
        del keys[j]
        it = self._items[b].pop(j)
        if not keys:
            del self._keys[b]
            del self._items[b]
            del self._firsts[b]
        elif j == 0:
            self._firsts[b] = keys[0]
        return it

    def pop(self, i: int = -1):
        if i < 0:
            i += self._len
        if not 0 <= i < self._len:
            raise IndexError("pop index out of range")
        if i == self._len - 1:
            b = len(self._items) - 1
            return self._del(b, len(self._items[b]) - 1)
        offs = self._offs()
        b = bisect_right(offs, i) - 1
        return self._del(b, i - offs[b])

    def __delitem__(self, i: int) -> None:
        self.pop(i)

    def rekey(self, item, start: int) -> None:
        """Set ``item.start``; the new start must keep the order."""
        b, j = self._pos(item)
        item.start = start
        self._keys[b][j] = start
        if j == 0:
            self._firsts[b] = start

    def clear(self) -> None:
        self._keys.clear()
        self._items.clear()
        self._firsts.clear()
        self._len = 0
        self._offsets = None
