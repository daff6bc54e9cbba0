"""hwloc synthetic topology strings, read as hwloc 2.x reads them.

Follows ``hwloc/topology-synthetic.c`` (``hwloc_backend_synthetic_init``,
``hwloc_synthetic_parse_attrs``, ``hwloc_synthetic_process_indexes``,
``hwloc__look_synthetic``) and ``hwloc_type_sscanf`` of ``hwloc/traversal.c``
in hwloc 2.9; the behaviour was written from hwloc's documentation and
checked against ``lstopo --if synthetic --input STRING --of xml``
(tests/test_hwloc_inputs.py compares a few hundred generated strings).

What that means, for a user:

* levels from the top down, ``TYPE:COUNT`` (``pack:2 numa:2 core:4 pu:2`` is
  2 packages, 4 NUMA nodes, 16 cores, 32 PUs), or bare counts only
  (``2 3 4``: hwloc names the levels itself), the last level is the PUs;
* type names are hwloc's, case-insensitive prefixes (``pack``, ``socket``,
  ``numa``, ``node``, ``die``, ``core``, ``l2``, ``L3Cache``, ``l1i``,
  ``group``, ``pu``...); a count is C ``strtoul`` base 0 (``0x10``, ``010``);
* attributes in parentheses: ``memory=SIZE`` (not on caches), ``size=SIZE``
  (caches only), ``indexes=0,2,1,3`` or an interleaving (``indexes=2*2:1*2``,
  ``indexes=core:pack``); sizes are hwloc's (``1GB`` is 10**9 bytes, ``1GiB``
  2**30, :func:`mempolicy.core.units.hwloc_size_prefix`); a NUMA level without
  ``memory=`` has 1 GiB a node (an attached ``[numa]`` without it has 0 bytes,
  as hwloc 2.9 makes it); an ``indexes=`` hwloc cannot use is ignored, as
  hwloc ignores it; one that repeats a PU or NUMA index is refused (hwloc
  then drops or merges the colliding objects, which the model does not copy);
* ``[numa]`` or ``[numa(memory=SIZE)]`` after a level attaches one NUMA
  node to each object of that level (then there is no NUMA level);
* without any NUMA node, hwloc makes one with every PU.

The machine is checked against the model's limits (nodes, CPUs) from the
counts alone, before any object is made.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mempolicy.core.units import c_strtoul, hwloc_size_prefix
from mempolicy.linux.hwloc import MAX_CPUS, MAX_NODES, HwlocMachine, HwlocNode, TopologyError, shown

__all__ = ["parse_synthetic", "type_sscanf"]

_DISALLOWED = {"osdev", "bridge", "pcidev", "misc", "machine"}
_CACHES = {"l1", "l2", "l3", "l4", "l5", "l1i", "l2i", "l3i"}
MAX_DEPTH = 128
UINT_MAX = (1 << 32) - 1
MAX_SPEC_CHARS = 16384         # 128 levels with attributes fit many times over


def _match(s: str, i: int, name: str, minmatch: int) -> int | None:
    """hwloc__type_match: ``s[i:]`` starts with a prefix of ``name`` of at least ``minmatch``
    letters, and the next character (if any) is not a letter or ``-``; the end index or None."""
    k = 0
    while True:
        c = s[i + k] if i + k < len(s) else ""
        t = name[k] if k < len(name) else ""
        if not c:
            return i + k if k >= minmatch else None
        if c != t and c != t.upper():
            if c.isascii() and (c.isalpha() or c == "-"):
                return None
            return i + k if k >= minmatch else None
        k += 1


# hwloc_type_sscanf's names in its order: (name, letters that must match), the kind
_TYPE_NAMES = (
    ((("osdev", 2), ("block", 4), ("network", 3), ("openfabrics", 7), ("dma", 3), ("gpu", 3),
      ("coproc", 5), ("co-processor", 6)), "osdev"),
    ((("machine", 2),), "machine"),
    ((("numanode", 2), ("node", 2)), "numa"),
    ((("memcache", 5), ("memory-side cache", 8)), "memcache"),
    ((("package", 2), ("socket", 2)), "package"),
    ((("die", 2),), "die"),
    ((("core", 2),), "core"),
    ((("pu", 2),), "pu"),
    ((("misc", 4),), "misc"),
    ((("bridge", 4), ("hostbridge", 6), ("pcibridge", 5)), "bridge"),
    ((("pcidev", 3),), "pcidev"),
)


def type_sscanf(s: str, i: int = 0) -> tuple[str, int | None, str | None] | None:
    """hwloc_type_sscanf at ``s[i:]``: (kind, depth, cache type) or None for an unknown type.

    Kinds: ``numa``, ``package``, ``die``, ``core``, ``pu``, ``group``, ``l1``..``l5``,
    ``l1i``..``l3i``, ``memcache`` and the kinds refused in synthetic strings
    (``osdev``, ``bridge``, ``pcidev``, ``misc``, ``machine``).

    >>> type_sscanf("pack:2"), type_sscanf("L2d:4")
    (('package', None, None), ('l2', 2, 'data'))
    """
    m = _match
    for names, kind in _TYPE_NAMES:
        if any(m(s, i, n, k) is not None for n, k in names):
            return kind, None, None
    if s[i:i + 1] in ("l", "L") and s[i + 1:i + 2].isdigit() and s[i + 1:i + 2].isascii():
        depth, j = c_strtoul(s, i + 1, 10)
        c = s[j:j + 1].lower()
        if c == "i":
            if not 1 <= depth <= 3:
                return None
            kind, ctype, j = f"l{depth}i", "instruction", j + 1
        elif 1 <= depth <= 5:
            kind = f"l{depth}"
            ctype = {"d": "data", "u": "unified"}.get(c, "unified")
            j += c in ("d", "u")
        else:
            return None
        if m(s, j, "cache", 0) is None:
            return None
        return kind, depth, ctype
    end = m(s, i, "group", 2)
    if end is not None:
        group_depth = None
        if s[end:end + 1].isascii() and s[end:end + 1].isdigit():
            group_depth, _ = c_strtoul(s, end, 10, 32)
        return "group", group_depth, None
    return None


@dataclass
class _Attached:
    memory: int = 0


@dataclass
class _Level:
    kind: str | None = None        # None: a bare count, named later
    depth: int | None = None       # caches and groups
    arity: int = 0                 # children of each object of this level
    width: int = 1                 # objects of this level in the machine
    memory: int = 0
    indexes: str | None = None
    attached: list[_Attached] = field(default_factory=list)
    array: list[int] | None = None


def _err(spec: str, pos: int, msg: str) -> TopologyError:
    return TopologyError(f"hwloc synthetic string {shown(spec)}: {msg} at offset {pos}")


def _parse_attrs(s: str, i: int, kind: str | None, spec: str) -> tuple[int, int, str | None]:
    """hwloc_synthetic_parse_attrs from ``s[i:]`` (after ``(``): (memory, next index, indexes)."""
    close = s.find(")", i)
    if close < 0:
        raise _err(spec, i, "missing ')' after the attributes")
    memory, index_string = 0, None
    iscache = kind in _CACHES
    while s[i] != ")":
        if iscache and s.startswith("size=", i):
            memory, i = hwloc_size_prefix(s, i + 5)
        elif not iscache and s.startswith("memory=", i):
            memory, i = hwloc_size_prefix(s, i + 7)
        elif s.startswith("indexes=", i):
            i += 8
            j = i
            while j < len(s) and s[j] not in " )":
                j += 1
            index_string, i = s[i:j], j
        else:
            raise _err(spec, i, "unknown attribute (memory=, size= on caches, indexes=)")
        if i < len(s) and s[i] == " ":
            i += 1
        elif i >= len(s) or s[i] != ")":
            raise _err(spec, i, "attributes are separated by one space")
    return memory, close + 1, index_string


def parse_synthetic(spec: str) -> HwlocMachine:
    """The NUMA nodes and PUs hwloc makes from a synthetic string (TopologyError if hwloc
    refuses it, or if the model cannot hold it).

    >>> m = parse_synthetic("pack:2 numa:2(memory=1GB) core:4 pu:2")
    >>> len(m.nodes), len(m.pus), m.nodes[0].memory
    (4, 32, 1000000000)
    """
    if len(spec) > MAX_SPEC_CHARS:
        raise TopologyError(f"a hwloc synthetic string of {len(spec)} characters: the model takes "
                            f"at most {MAX_SPEC_CHARS}")
    s = spec
    levels = [_Level(kind="machine")]
    pos = 0
    if s.startswith("("):
        levels[0].memory, pos, levels[0].indexes = _parse_attrs(s, 1, "machine", spec)
    attached_total = 0
    attached_indexes: str | None = None
    while pos < len(s):
        levels[-1].arity = 0
        while pos < len(s) and s[pos] in " \n":
            pos += 1
        if pos >= len(s):
            break
        if s[pos] == "[":
            pos += 1
            t = type_sscanf(s, pos)
            if t is None:
                raise _err(spec, pos, "unknown attached object type")
            if t[0] != "numa":
                raise _err(spec, pos, "only NUMA nodes can be attached ([numa])")
            attached_total += levels[-1].width
            att = _Attached()
            levels[-1].attached.append(att)
            close = s.find("]", pos)
            if close < 0:
                raise _err(spec, pos, "missing ']' after the attached object")
            paren = s.find("(", pos, close)
            if paren >= 0:
                att.memory, _, idx = _parse_attrs(s, paren + 1, "numa", spec)
                if idx is not None:
                    attached_indexes = idx
            pos = close + 1
            continue
        lv = _Level()
        if not ("0" <= s[pos] <= "9"):
            t = type_sscanf(s, pos)
            if t is None:
                if s.startswith("Tile", pos) or s.startswith("Module", pos):
                    t = ("group", None, None)
                else:
                    raise _err(spec, pos, "unknown object type")
            if t[0] in _DISALLOWED or t[0] == "memcache":
                # hwloc 2.9 aborts on memcache levels (an assertion): refused either way
                raise _err(spec, pos, f"object type {t[0]!r} is not allowed in a synthetic string")
            colon = s.find(":", pos)
            if colon < 0:
                raise _err(spec, pos, "missing ':' after the object type")
            lv.kind, lv.depth = t[0], t[1]
            pos = colon + 1
        item, end = c_strtoul(s, pos, 0)
        if end == pos:
            raise _err(spec, pos, "missing number of objects")
        if item == 0:
            raise _err(spec, pos, "0 objects")
        lv.width = levels[-1].width * item
        pos = end
        if pos < len(s) and s[pos] == "(":
            lv.memory, pos, idx = _parse_attrs(s, pos + 1, lv.kind, spec)
            lv.indexes = idx
        if len(levels) + 1 >= MAX_DEPTH:
            raise _err(spec, pos, f"more than {MAX_DEPTH - 2} levels")
        if item > UINT_MAX:
            raise _err(spec, pos, f"a count above {UINT_MAX}")
        levels[-1].arity = item
        levels.append(lv)
    _name_levels(levels, attached_total, spec)
    _check_size(levels, attached_total, spec)
    for lv in levels:
        lv.array = _indexes(levels, lv.indexes, lv.width)
    att_array = _indexes(levels, attached_indexes, attached_total)
    machine = _build(levels, att_array)
    for what, ids in (("PU", machine.pus), ("NUMA node", [n.os_index for n in machine.nodes])):
        if len(set(ids)) != len(ids):
            # hwloc drops or merges objects that collide; the model takes each index once
            raise TopologyError(f"hwloc synthetic string {shown(spec)}: indexes= repeats a {what} index; "
                                f"the model takes each {what} index once")
    return machine


def _name_levels(levels: list[_Level], attached_total: int, spec: str) -> None:
    """The checks and level naming that follow the parse in hwloc_backend_synthetic_init."""
    last = levels[-1]
    if last.kind not in (None, "pu"):
        raise _err(spec, len(spec), "the last level must be PUs (pu:N or a bare count)")
    last.kind = "pu"
    kinds = [lv.kind for lv in levels[1:]]
    if len(levels) < 2:
        raise _err(spec, len(spec), "missing the number of PUs")
    for kind, name in (("pu", "PU"), ("package", "package"), ("die", "die"), ("numa", "NUMA node"),
                       ("core", "core")):
        if kinds.count(kind) > 1:
            raise _err(spec, len(spec), f"several {name} levels")
    if "numa" in kinds and attached_total:
        raise _err(spec, len(spec), "NUMA nodes both as a level and attached")
    middle = levels[1:-1]
    unset = sum(lv.kind is None for lv in middle)
    if unset and unset != len(middle):
        raise _err(spec, len(spec), "bare counts mixed with typed levels")
    if unset:
        n = len(middle)
        neednuma = int(n >= 1 and not attached_total)
        n -= neednuma
        needpack = int(n >= 1)
        n -= needpack
        needcore = int(n >= 1)
        n -= needcore
        needcaches = min(n, 4)
        n -= needcaches
        order = ["group"] * n + ["package"] * needpack + ["numa"] * neednuma
        caches = {0: [], 1: [("l2", 2)], 2: [("l2", 2), ("l1", 1)], 3: [("l3", 3), ("l2", 2), ("l1", 1)],
                  4: [("l3", 3), ("l2", 2), ("l1", 1), ("l1i", 1)]}[needcaches]
        for lv, kind in zip(middle, order + [c[0] for c in caches] + ["core"] * needcore):
            lv.kind = kind
    if not any(lv.kind == "numa" for lv in levels) and not attached_total:
        numa = _Level(kind="numa", arity=levels[0].arity, width=1)
        levels[0].arity = 1
        levels.insert(1, numa)
    for lv in levels:
        if lv.kind == "numa" and not lv.memory:
            lv.memory = 1 << 30


def _check_size(levels: list[_Level], attached_total: int, spec: str) -> None:
    """The model's limits, from the counts alone (nothing is built yet)."""
    pus = levels[-1].width
    nodes = attached_total or next(lv.width for lv in levels if lv.kind == "numa")
    if nodes > MAX_NODES or pus > MAX_CPUS:
        raise TopologyError(f"hwloc synthetic string {shown(spec)}: {nodes} NUMA nodes and {pus} PUs; "
                            f"the model takes at most {MAX_NODES} nodes and {MAX_CPUS} CPUs")


def _indexes(levels: list[_Level], text: str | None, total: int) -> list[int] | None:
    """hwloc_synthetic_process_indexes: the OS index of each object, or None (hwloc's
    default numbering) when there is no ``indexes=`` or hwloc cannot use it."""
    if text is None or total == 0:
        return None
    if set(text) <= set("0123456789,"):
        out, i = [], 0
        for k in range(total):
            v, end = c_strtoul(text, i, 10)
            if end == i:
                return None
            out.append(v & UINT_MAX)
            if k != total - 1:
                if text[end:end + 1] != ",":
                    return None
                i = end + 1
        return out
    loops: list[tuple[int, int]] = []
    if "0" <= text[0] <= "9":
        for part in text.split(":"):
            step, end = c_strtoul(part, 0, 0)
            if end == 0 or part[end:end + 1] != "*" or step & UINT_MAX == 0:
                return None
            nb, end2 = c_strtoul(part, end + 1, 0)
            if end2 == end + 1 or end2 != len(part) or nb & UINT_MAX == 0:
                return None
            loops.append((step & UINT_MAX, nb & UINT_MAX))
    else:
        depths = []
        for part in text.split(":"):
            t = type_sscanf(part)
            if t is None or t[0] in ("misc", "bridge", "pcidev", "osdev"):
                return None
            for d, lv in enumerate(levels):
                if lv.kind == t[0] and not (t[0] == "group" and t[1] is not None and t[1] != lv.depth):
                    depths.append(d)
                    break
            else:
                return None
        if len(set(depths)) != len(depths):
            return None
        for d in depths:
            prev = max([x for x in depths if x < d], default=0)
            loops.append((total // levels[d].width, levels[d].width // levels[prev].width))
    nbs = 1
    for _, nb in loops:
        nbs *= nb
    if nbs != total:
        minstep = min([total] + [st for st, _ in loops])
        if nbs and minstep == total // nbs:
            loops.append((1, total // nbs))
        else:
            return None
    array = [0] * total
    mul = 1
    for step, nb in [lp for lp in loops if lp[1] > 1]:     # a loop of 1 adds nothing
        for j in range(total):
            array[j] += ((j // step) % nb) * mul
        mul *= nb
    if any(v >= total or (v == 0 and j) for j, v in enumerate(array)):
        return None
    return array


def _build(levels: list[_Level], att_array: list[int] | None) -> HwlocMachine:
    """hwloc__look_synthetic: objects depth first; attached nodes after their object's children."""
    nodes: list[HwlocNode] = []
    pus: list[int] = []
    nxt = [0] * len(levels)
    att_next = [0]

    def next_index(d: int) -> int:
        k = nxt[d]
        nxt[d] += 1
        arr = levels[d].array
        return arr[k] if arr is not None else k

    def attach(lv: _Level, cpus: frozenset[int]) -> None:
        for a in lv.attached:
            k = att_next[0]
            att_next[0] += 1
            nodes.append(HwlocNode(att_array[k] if att_array is not None else k, a.memory, cpus))

    def look(d: int) -> frozenset[int]:
        lv = levels[d]
        idx = next_index(d)
        if d == len(levels) - 1:
            cpus = frozenset([idx])
            pus.append(idx)
        else:
            acc: set[int] = set()
            for _ in range(lv.arity):
                acc |= look(d + 1)
            cpus = frozenset(acc)
        if lv.kind == "numa":
            nodes.append(HwlocNode(idx, lv.memory, cpus))
        attach(lv, cpus)
        return cpus

    acc: set[int] = set()
    for _ in range(levels[0].arity):
        acc |= look(1)
    attach(levels[0], frozenset(acc))
    return HwlocMachine(nodes, pus)
