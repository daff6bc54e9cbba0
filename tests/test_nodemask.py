"""nodemask_t and the lib/bitmap.c helpers (mempolicy.core.nodemask).

Expected values come from the kernel's definitions: the ``%*pbl`` printer
(lib/vsprintf.c bitmap_list_string), the walkers of include/linux/nodemask.h
(first_node, next_node, next_node_in) and the worked examples in the comments
of lib/bitmap.c (__bitmap_remap, bitmap_bitremap, bitmap_onto, bitmap_fold).
The reference implementations below are written from those definitions on
plain Python sets, independently of the model.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mempolicy.core.nodemask import (
    NODE_MASK_NONE,
    Nodemask,
    bitmap_bitremap,
    bitmap_fold,
    bitmap_onto,
    bitmap_remap,
    mpol_relative_nodemask,
    nodelist_parse,
)
from mempolicy.uapi import MAX_NUMNODES

# ---------------------------------------------------------------------------
# Reference implementations (from the kernel's definitions, on sorted lists)
# ---------------------------------------------------------------------------


def ref_bitremap(oldbit: int, old: set[int], new: set[int]) -> int:
    """lib/bitmap.c bitmap_bitremap: n = pos_to_ord(old, oldbit); identity if n < 0 or w == 0."""
    w = len(new)
    if oldbit not in old or w == 0:
        return oldbit
    n = sorted(old).index(oldbit)
    return sorted(new)[n % w]


def ref_remap(src: set[int], old: set[int], new: set[int]) -> set[int]:
    """lib/bitmap.c bitmap_remap: each bit of src through bitmap_bitremap."""
    return {ref_bitremap(b, old, new) for b in src}


def ref_onto(orig: set[int], relmap: set[int]) -> set[int]:
    """lib/bitmap.c bitmap_onto: the n-th bit of relmap is set iff bit m = ord(n) of orig is set."""
    r = sorted(relmap)
    return {r[m] for m in orig if m < len(r)}


def ref_fold(orig: set[int], sz: int) -> set[int]:
    """lib/bitmap.c bitmap_fold: bit oldbit % sz for each oldbit."""
    return {b % sz for b in orig}


def ref_list(nodes: set[int]) -> str:
    """lib/vsprintf.c bitmap_list_string: runs as 'a-b', single bits as 'a', comma separated."""
    out = []
    s = sorted(nodes)
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[j] + 1:
            j += 1
        out.append(str(s[i]) if i == j else f"{s[i]}-{s[j]}")
        i = j + 1
    return ",".join(out)


node_ids = st.integers(min_value=0, max_value=MAX_NUMNODES - 1)
small_ids = st.integers(min_value=0, max_value=70)      # crosses a 64-bit word
node_sets = st.sets(st.one_of(small_ids, node_ids), max_size=24)
small_sets = st.sets(small_ids, max_size=16)


# ---------------------------------------------------------------------------
# The list syntax (%*pbl and bitmap_parselist)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("nodes, text", [
    ((), ""),
    ((0,), "0"),
    ((0, 1), "0-1"),                 # a run of two is printed as a range
    ((0, 1, 2, 5), "0-2,5"),
    ((0, 2, 3), "0,2-3"),
    ((0, 1, 2, 3, 5, 7, 8), "0-3,5,7-8"),   # kernel-spec.md section 8.1
    ((63, 64), "63-64"),             # across a word boundary
    ((1023,), "1023"),
    (tuple(range(1024)), "0-1023"),
    ((1, 3, 5), "1,3,5"),
])
def test_str_is_kernel_list_syntax(nodes, text):
    assert str(Nodemask(nodes)) == text


@pytest.mark.parametrize("text, nodes", [
    ("", ()),
    ("3", (3,)),
    ("0-2,5", (0, 1, 2, 5)),
    ("0,2-3", (0, 2, 3)),
    ("7-7", (7,)),
    ("1023", (1023,)),
    ("0-1023", tuple(range(1024))),
    ("5,1", (1, 5)),                 # bitmap_parselist ORs items in any order
])
def test_nodelist_parse(text, nodes):
    assert nodelist_parse(text) == Nodemask(nodes)


@pytest.mark.parametrize("text", [
    "a", "1,", ",1", "-1", "1-", "1--2", "3-1", "1024", "0-1024", "1 2", "0x1", "1.5",
])
def test_nodelist_parse_rejects(text):
    with pytest.raises(ValueError):
        nodelist_parse(text)


@given(node_sets)
def test_str_matches_reference_and_round_trips(nodes):
    m = Nodemask(nodes)
    assert str(m) == ref_list(nodes)
    assert nodelist_parse(str(m)) == m


@given(st.lists(st.tuples(node_ids, st.integers(0, 40)), max_size=8))
def test_parse_then_print_is_canonical(items):
    text = ",".join(str(a) if d == 0 else f"{a}-{min(a + d, MAX_NUMNODES - 1)}" for a, d in items)
    expected = set()
    for a, d in items:
        expected |= set(range(a, min(a + d, MAX_NUMNODES - 1) + 1))
    m = nodelist_parse(text)
    assert set(m) == expected
    assert str(m) == ref_list(expected)


# ---------------------------------------------------------------------------
# The value type
# ---------------------------------------------------------------------------

def test_nodemask_is_immutable_and_hashable():
    m = Nodemask([1, 2])
    with pytest.raises(AttributeError):
        m.bits = 0
    assert {m: 1}[Nodemask([2, 1])] == 1
    assert Nodemask(0b110) == m
    assert Nodemask(m) == m


def test_nodemask_rejects_negative():
    with pytest.raises(ValueError):
        Nodemask([-1])
    with pytest.raises(ValueError):
        Nodemask(-5)


def test_range_constructor():
    assert Nodemask.range(2, 5) == Nodemask([2, 3, 4, 5])
    assert Nodemask.range(3, 3) == Nodemask([3])
    assert Nodemask.range(4, 3) == NODE_MASK_NONE


def test_words_lowest_first():
    m = Nodemask([0, 63, 64, 130])
    assert m.words(3) == [1 | (1 << 63), 1, 1 << 2]
    assert m.words(1) == [1 | (1 << 63)]


@given(node_sets, node_sets)
def test_set_operations_match_python_sets(a, b):
    ma, mb = Nodemask(a), Nodemask(b)
    assert set(ma & mb) == a & b
    assert set(ma | mb) == a | b
    assert set(ma - mb) == a - b
    assert set(ma ^ mb) == a ^ b
    assert ma.issubset(mb) == (a <= b)
    assert ma.intersects(mb) == bool(a & b)
    assert len(ma) == ma.weight() == len(a)
    assert bool(ma) == bool(a)
    assert list(ma) == sorted(a)
    for n in list(a)[:3]:
        assert n in ma
        assert ma.without_node(n) == Nodemask(a - {n})
    assert ma.with_node(7) == Nodemask(a | {7})
    assert "x" not in ma and -1 not in ma


# ---------------------------------------------------------------------------
# Walkers (include/linux/nodemask.h)
# ---------------------------------------------------------------------------

def test_walkers_examples():
    m = Nodemask([0, 2, 5])
    assert m.first() == 0
    assert m.next(0) == 2
    assert m.next(2) == 5
    assert m.next(5) == MAX_NUMNODES          # next_node: no wrap
    assert m.next(-1) == 0
    assert m.next_in(5) == 0                   # next_node_in wraps to first_node
    assert m.next_in(MAX_NUMNODES - 1) == 0    # il_prev after set_mempolicy
    assert m.next_in(1) == 2
    assert [m.nth(k) for k in range(4)] == [0, 2, 5, MAX_NUMNODES]
    assert m.last() == 5


def test_walkers_on_empty_mask():
    assert NODE_MASK_NONE.first() == MAX_NUMNODES
    assert NODE_MASK_NONE.next(0) == MAX_NUMNODES
    assert NODE_MASK_NONE.next_in(3) == MAX_NUMNODES
    assert NODE_MASK_NONE.nth(0) == MAX_NUMNODES
    assert NODE_MASK_NONE.last() == -1
    assert NODE_MASK_NONE.weight() == 0


@given(node_sets, st.integers(-1, MAX_NUMNODES - 1))
def test_walkers_against_reference(nodes, n):
    m = Nodemask(nodes)
    s = sorted(nodes)
    assert m.first() == (s[0] if s else MAX_NUMNODES)
    above = [x for x in s if x > n]
    assert m.next(n) == (above[0] if above else MAX_NUMNODES)
    assert m.next_in(n) == (above[0] if above else (s[0] if s else MAX_NUMNODES))
    for k in range(len(s) + 2):
        assert m.nth(k) == (s[k] if k < len(s) else MAX_NUMNODES)
    if n >= 0:
        assert m.ord_of(n) == len([x for x in s if x < n])


# ---------------------------------------------------------------------------
# lib/bitmap.c: remap, bitremap, onto, fold
# ---------------------------------------------------------------------------

def test_remap_kernel_example():
    # lib/bitmap.c bitmap_remap comment: old 4-7, new 12-15, src {1,5,7} -> {1,13,15}
    old, new = Nodemask.range(4, 7), Nodemask.range(12, 15)
    assert bitmap_remap(Nodemask([1, 5, 7]), old, new) == Nodemask([1, 13, 15])
    # bitmap_bitremap comment: oldbit 5 -> 13, other positions unchanged
    assert bitmap_bitremap(5, old, new) == 13
    assert bitmap_bitremap(1, old, new) == 1


def test_remap_wraps_modulo_weight_of_new():
    # n-th bit of old -> (n % w)-th bit of new
    old, new = Nodemask.range(0, 7), Nodemask([3, 4, 5])
    assert [bitmap_bitremap(b, old, new) for b in range(8)] == [3, 4, 5, 3, 4, 5, 3, 4]


def test_remap_with_empty_maps_is_identity():
    src = Nodemask([1, 9])
    assert bitmap_remap(src, NODE_MASK_NONE, Nodemask([2])) == src
    assert bitmap_remap(src, Nodemask([1, 9]), NODE_MASK_NONE) == src
    assert bitmap_bitremap(9, Nodemask([1, 9]), NODE_MASK_NONE) == 9


def test_onto_kernel_example_1():
    # lib/bitmap.c bitmap_onto comment, example [1]
    relmap = Nodemask.range(30, 39)
    assert bitmap_onto(Nodemask([1, 3, 5, 7, 9, 11]), relmap) == Nodemask([31, 33, 35, 37, 39])


FIB_RELMAP = Nodemask([40, 41, 42, 43, 45, 48, 53, 61, 74, 95])


@pytest.mark.parametrize("orig, tmp, dst", [
    # lib/bitmap.c bitmap_onto comment, example [2]: fold mod 10, then onto
    ((0,), (0,), (40,)),
    ((1,), (1,), (41,)),
    ((9,), (9,), (95,)),
    ((10,), (0,), (40,)),
    ((1, 3, 5, 7), (1, 3, 5, 7), (41, 43, 48, 61)),
    ((0, 1, 2, 3, 4), (0, 1, 2, 3, 4), (40, 41, 42, 43, 45)),
    ((0, 9, 18, 27), (0, 9, 8, 7), (40, 61, 74, 95)),
    ((0, 10, 20, 30), (0,), (40,)),
    ((0, 11, 22, 33), (0, 1, 2, 3), (40, 41, 42, 43)),
    ((0, 12, 24, 36), (0, 2, 4, 6), (40, 42, 45, 53)),
    ((78, 102, 211), (1, 2, 8), (41, 42, 74)),
])
def test_fold_onto_kernel_table(orig, tmp, dst):
    folded = bitmap_fold(Nodemask(orig), FIB_RELMAP.weight())
    assert folded == Nodemask(tmp)
    assert bitmap_onto(folded, FIB_RELMAP) == Nodemask(dst)
    assert mpol_relative_nodemask(Nodemask(orig), FIB_RELMAP) == Nodemask(dst)


def test_onto_without_fold_loses_high_bits():
    # the [#f1] rows of the kernel table: without the fold the result is empty
    assert bitmap_onto(Nodemask([10]), FIB_RELMAP) == NODE_MASK_NONE
    assert bitmap_onto(Nodemask([78, 102, 211]), FIB_RELMAP) == NODE_MASK_NONE


@pytest.mark.parametrize("orig, rel, expected", [
    # kernel-spec.md section 5.3 (RELATIVE examples)
    ((2, 3, 4, 5), (2, 3, 4, 5), (2, 3, 4, 5)),
    ((2, 3, 4, 5), (3, 4, 5, 6, 7), (3, 5, 6, 7)),
    ((2, 3, 4, 5), (0, 2, 3, 5), (0, 2, 3, 5)),
    ((0, 2, 4), (2, 3, 4, 5, 6), (2, 4, 6)),
    ((0, 2, 4), (10, 11), (10,)),
    ((0,), (1, 2), (1,)),
])
def test_relative_nodemask_spec_examples(orig, rel, expected):
    assert mpol_relative_nodemask(Nodemask(orig), Nodemask(rel)) == Nodemask(expected)


def test_relative_nodemask_with_empty_rel_is_empty():
    assert mpol_relative_nodemask(Nodemask([0, 1]), NODE_MASK_NONE) == NODE_MASK_NONE


@given(small_sets, small_sets, small_sets)
def test_remap_against_reference(src, old, new):
    assert set(bitmap_remap(Nodemask(src), Nodemask(old), Nodemask(new))) == ref_remap(src, old, new)


@given(small_ids, small_sets, small_sets)
def test_bitremap_against_reference(b, old, new):
    assert bitmap_bitremap(b, Nodemask(old), Nodemask(new)) == ref_bitremap(b, old, new)


@given(node_sets, node_sets)
def test_onto_against_reference(orig, rel):
    assert set(bitmap_onto(Nodemask(orig), Nodemask(rel))) == ref_onto(orig, rel)


@given(node_sets, st.integers(1, 80))
def test_fold_against_reference(orig, sz):
    assert set(bitmap_fold(Nodemask(orig), sz)) == ref_fold(orig, sz)


@given(node_sets, node_sets)
def test_relative_against_reference(orig, rel):
    expected = ref_onto(ref_fold(orig, len(rel)), rel) if rel else set()
    assert set(mpol_relative_nodemask(Nodemask(orig), Nodemask(rel))) == expected


# -- identities -------------------------------------------------------------

@given(node_sets, node_sets)
def test_remap_of_old_onto_itself_is_identity(src, old):
    m = Nodemask(src)
    assert bitmap_remap(m, Nodemask(old), Nodemask(old)) == m


@given(small_sets.filter(bool), small_sets.filter(bool))
def test_remap_old_through_old_new_covers_new_when_old_is_larger(old, new):
    result = bitmap_remap(Nodemask(old), Nodemask(old), Nodemask(new))
    assert result.issubset(Nodemask(new))
    if len(old) >= len(new):
        assert result == Nodemask(new)
    else:
        assert result.weight() == len(old)


@given(node_sets, node_sets.filter(bool), node_sets.filter(bool))
def test_remap_sends_old_bits_into_new(src, old, new):
    out = bitmap_remap(Nodemask(src), Nodemask(old), Nodemask(new))
    for b in src:
        d = bitmap_bitremap(b, Nodemask(old), Nodemask(new))
        assert d in out
        assert (d in new) if b in old else (d == b)


@given(node_sets, st.integers(1, 80))
def test_fold_identities(orig, sz):
    folded = bitmap_fold(Nodemask(orig), sz)
    assert all(b < sz for b in folded)
    assert bool(folded) == bool(orig)
    assert bitmap_fold(folded, sz) == folded               # idempotent
    if all(b < sz for b in orig):
        assert folded == Nodemask(orig)


@given(node_sets, st.integers(0, 80))
def test_onto_identity_relmap_is_intersection(orig, k):
    # relmap {0..k-1}: the m-th set bit is m itself
    assert bitmap_onto(Nodemask(orig), Nodemask.range(0, k - 1)) == Nodemask({b for b in orig if b < k})


@given(node_sets)
def test_onto_of_first_w_bits_is_relmap(rel):
    assert bitmap_onto(Nodemask.range(0, len(rel) - 1), Nodemask(rel)) == Nodemask(rel)


@given(node_sets.filter(bool), node_sets.filter(bool))
def test_relative_result_is_nonempty_subset_of_rel(orig, rel):
    out = mpol_relative_nodemask(Nodemask(orig), Nodemask(rel))
    assert out and out.issubset(Nodemask(rel))


def test_fold_by_zero_is_an_error():
    with pytest.raises(ZeroDivisionError):
        bitmap_fold(Nodemask([1]), 0)
