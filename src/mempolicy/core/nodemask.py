"""nodemask_t: an immutable set of NUMA node ids (include/linux/nodemask.h).

The kernel keeps a fixed-size bitmap of MAX_NUMNODES bits; the model keeps a
Python int used as a bitmap, so every operation is exact and cheap.  The
bitmap helpers that policies use (lib/bitmap.c: ``bitmap_remap``,
``bitmap_bitremap``, ``bitmap_onto``, ``bitmap_fold``) are here under their
kernel names, and ``nodelist_parse``/``str`` speak the kernel's list syntax
(``%*pbl``: ``0-2,5``).
"""

from __future__ import annotations

from typing import Iterable, Iterator

from mempolicy.uapi import MAX_NUMNODES

__all__ = [
    "Nodemask",
    "NODE_MASK_NONE",
    "nodelist_parse",
    "bitmap_remap",
    "bitmap_bitremap",
    "bitmap_onto",
    "bitmap_fold",
    "mpol_relative_nodemask",
]


_NODES_OF: dict[int, tuple[int, ...]] = {}     # bits -> nodes, for nth()


class Nodemask:
    """An immutable node set; iteration is in ascending node order."""

    __slots__ = ("bits",)
    bits: int

    def __init__(self, nodes: Iterable[int] | int = ()) -> None:
        if isinstance(nodes, int):
            if nodes < 0:
                raise ValueError("negative bitmap")
            bits = nodes
        elif isinstance(nodes, Nodemask):
            bits = nodes.bits
        else:
            bits = 0
            for n in nodes:
                if n < 0:
                    raise ValueError(f"negative node id {n}")
                bits |= 1 << n
        object.__setattr__(self, "bits", bits)

    def __setattr__(self, name: str, value: object) -> None:  # immutable, as a value type
        raise AttributeError("Nodemask is immutable")

    @classmethod
    def from_bits(cls, bits: int) -> "Nodemask":
        return cls(bits)

    @classmethod
    def range(cls, first: int, last: int) -> "Nodemask":
        """Nodes first..last inclusive."""
        if last < first:
            return NODE_MASK_NONE
        return cls(((1 << (last - first + 1)) - 1) << first)

    # -- set protocol -------------------------------------------------------
    def __iter__(self) -> Iterator[int]:
        b = self.bits
        while b:
            low = b & -b
            yield low.bit_length() - 1
            b ^= low

    def __len__(self) -> int:
        return self.bits.bit_count()

    def __bool__(self) -> bool:
        return self.bits != 0

    def __contains__(self, node: object) -> bool:
        return isinstance(node, int) and node >= 0 and (self.bits >> node) & 1 == 1

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Nodemask) and other.bits == self.bits

    def __hash__(self) -> int:
        return hash(("Nodemask", self.bits))

    def __and__(self, other: "Nodemask") -> "Nodemask":
        return Nodemask(self.bits & other.bits)

    def __or__(self, other: "Nodemask") -> "Nodemask":
        return Nodemask(self.bits | other.bits)

    def __sub__(self, other: "Nodemask") -> "Nodemask":
        return Nodemask(self.bits & ~other.bits)

    def __xor__(self, other: "Nodemask") -> "Nodemask":
        return Nodemask(self.bits ^ other.bits)

    def issubset(self, other: "Nodemask") -> bool:
        """nodes_subset(self, other)."""
        return self.bits & ~other.bits == 0

    def intersects(self, other: "Nodemask") -> bool:
        """nodes_intersects()."""
        return self.bits & other.bits != 0

    def with_node(self, node: int) -> "Nodemask":
        return Nodemask(self.bits | (1 << node))

    def without_node(self, node: int) -> "Nodemask":
        return Nodemask(self.bits & ~(1 << node))

    # -- the kernel's walkers -----------------------------------------------
    def weight(self) -> int:
        """nodes_weight()."""
        return self.bits.bit_count()

    def first(self) -> int:
        """first_node(): the lowest node, or MAX_NUMNODES when empty."""
        b = self.bits
        return (b & -b).bit_length() - 1 if b else MAX_NUMNODES

    def last(self) -> int:
        """The highest node, or -1 when empty (find_last_bit analogue)."""
        return self.bits.bit_length() - 1

    def next(self, node: int) -> int:
        """next_node(n, mask): the lowest node > n, or MAX_NUMNODES."""
        b = self.bits >> (node + 1) if node >= -1 else self.bits
        if not b:
            return MAX_NUMNODES
        return (b & -b).bit_length() - 1 + node + 1

    def next_in(self, node: int) -> int:
        """next_node_in(n, mask): next_node wrapping to first_node; MAX_NUMNODES if empty."""
        n = self.next(node)
        if n >= MAX_NUMNODES:
            return self.first()
        return n

    def nth(self, k: int) -> int:
        """The k-th node in ascending order (k from 0); MAX_NUMNODES if none."""
        b = self.bits
        nodes = _NODES_OF.get(b)
        if nodes is not None:                   # the interleave fast path: a small mask seen before
            return nodes[k] if k < len(nodes) else MAX_NUMNODES
        if b.bit_length() <= 1024 and len(_NODES_OF) < 4096:
            _NODES_OF[b] = tuple(self)
        for _ in range(k):
            if not b:
                return MAX_NUMNODES
            b &= b - 1
        return (b & -b).bit_length() - 1 if b else MAX_NUMNODES

    def ord_of(self, node: int) -> int:
        """Number of nodes in the set below ``node`` (bitmap_pos_to_ord helper)."""
        return (self.bits & ((1 << node) - 1)).bit_count()

    # -- text ---------------------------------------------------------------
    def __str__(self) -> str:
        """The ``%*pbl`` list form: ``0-2,5``; empty string for the empty set."""
        parts = []
        b = self.bits
        base = 0
        while b:
            tz = (b & -b).bit_length() - 1
            b >>= tz
            base += tz
            run = (~b & (b + 1)).bit_length() - 1  # length of the run of ones
            start, end = base, base + run - 1
            parts.append(str(start) if start == end else f"{start}-{end}")
            b >>= run
            base += run
        return ",".join(parts)

    def __repr__(self) -> str:
        return f"Nodemask({str(self)!r})"

    def words(self, nwords: int) -> list[int]:
        """The bitmap as ``nwords`` unsigned longs, lowest word first."""
        return [(self.bits >> (64 * i)) & 0xFFFFFFFFFFFFFFFF for i in range(nwords)]


NODE_MASK_NONE = Nodemask(0)


def nodelist_parse(text: str) -> Nodemask:
    """bitmap_parselist() for the decimal ``N`` and ``A-B`` items of a node list.

    Raises ValueError for anything else, for descending ranges and for nodes
    at or above MAX_NUMNODES (the list grammar of :mod:`mempolicy.core.units`).

    >>> nodelist_parse("0-2,5")
    Nodemask('0-2,5')
    """
    from mempolicy.core.units import parse_list_bits

    return Nodemask(parse_list_bits(text, MAX_NUMNODES))


# ---------------------------------------------------------------------------
# lib/bitmap.c operations used by mpol_rebind_* and do_migrate_pages
# ---------------------------------------------------------------------------

def bitmap_bitremap(oldbit: int, old: Nodemask, new: Nodemask) -> int:
    """Map one bit: the n-th set bit of ``old`` goes to the (n mod w)-th of ``new``.

    A bit not in ``old``, or an empty ``new``, maps to itself.
    """
    w = new.weight()
    if oldbit not in old or w == 0:
        return oldbit
    return new.nth(old.ord_of(oldbit) % w)


def bitmap_remap(src: Nodemask, old: Nodemask, new: Nodemask) -> Nodemask:
    """nodes_remap(): apply bitmap_bitremap to every bit of ``src``."""
    if not new or not old:
        return src
    bits = 0
    for b in src:
        bits |= 1 << bitmap_bitremap(b, old, new)
    return Nodemask(bits)


def bitmap_onto(orig: Nodemask, relmap: Nodemask) -> Nodemask:
    """nodes_onto(): bit m of ``orig`` selects the m-th set bit of ``relmap``.

    Bits at or beyond weight(relmap) map nowhere.
    """
    bits = 0
    for m in orig:
        n = relmap.nth(m)
        if n < MAX_NUMNODES:
            bits |= 1 << n
    return Nodemask(bits)


def bitmap_fold(orig: Nodemask, sz: int) -> Nodemask:
    """nodes_fold(): each bit b of ``orig`` sets bit b mod sz."""
    if sz <= 0:
        raise ZeroDivisionError("bitmap_fold with sz 0")
    bits = 0
    for b in orig:
        bits |= 1 << (b % sz)
    return Nodemask(bits)


def mpol_relative_nodemask(orig: Nodemask, rel: Nodemask) -> Nodemask:
    """mpol_relative_nodemask(): fold ``orig`` to weight(rel) bits, then onto ``rel``."""
    w = rel.weight()
    if w == 0:
        return NODE_MASK_NONE
    return bitmap_onto(bitmap_fold(orig, w), rel)
