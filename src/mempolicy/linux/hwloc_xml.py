"""hwloc XML: import what ``lstopo --of xml`` writes, export what hwloc 2.x loads.

Import (:func:`read_hwloc_xml`) reads the hwloc 2.x format (``<topology
version="2.0">``, as hwloc 2.x and 3.x write it): every ``NUMANode`` object
(``os_index``, ``local_memory``, ``cpuset``), every ``PU`` and the
``distances2`` matrix named ``NUMALatency`` with OS indexing (its values may
be split over several ``indexes``/``u64values`` elements, as hwloc writes
them ten at a time).  Mistakes are one line, ``FILE:LINE: message``; the
file is read with expat, at most 64 MiB, and entity declarations are refused
(no entity expansion).  hwloc 1.x files (no ``version``, as hwloc 1.x or
``lstopo --export-xml-flags v1`` write them) are read as hwloc 2.x imports
them: NUMA nodes in document order, the first ``distances`` matrix over all
of them (``latency`` times ``latency_base``, rounded when every value is a
whole number, else times 1000), and a machine without NUMANode objects has
one node with the Machine's ``local_memory`` and every PU.

Export (:func:`to_hwloc_xml`) writes ``version="2.0"`` (hwloc 2.9, Debian 12's,
refuses a version above 2): a Machine, one Package per node with CPUs
holding its NUMANode, Cores and PUs, the CPU-less nodes attached to the
Machine, and the NUMALatency matrix, so ``lstopo --input FILE`` draws a
simulated machine with the same nodes, memory and distances.
"""

from __future__ import annotations

import os
import xml.parsers.expat
from typing import Any, Iterable
from xml.sax.saxutils import quoteattr

from mempolicy.alloc.topology import Topology
from mempolicy.core.units import decimal
from mempolicy.linux.hwloc import MAX_CPUS, MAX_NODES, HwlocMachine, HwlocNode, TopologyError

__all__ = ["read_hwloc_xml", "parse_hwloc_xml", "to_hwloc_xml", "parse_bitmap", "format_bitmap"]

MAX_XML_BYTES = 64 << 20
_MAX_BITMAP_BIT = 1 << 16


class _XmlError(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def parse_bitmap(text: str) -> frozenset[int]:
    """hwloc's bitmap text (32-bit hex words, most significant first, a zero word
    may be empty: ``0xf,,0x0``) -> the set bits.

    >>> sorted(parse_bitmap("0x00000001,0x80000000"))
    [31, 32]
    """
    if text.strip().startswith("0xf...f"):
        raise ValueError(f"infinite bitmap {text[:40]!r} where a set of CPUs belongs")
    words = text.strip().split(",")
    out: set[int] = set()
    if len(words) * 32 > _MAX_BITMAP_BIT:
        raise ValueError(f"bitmap {text[:40]!r} is too long")
    for k, w in enumerate(reversed(words)):
        w = w.strip()
        if w[:2].lower() == "0x":
            w = w[2:]
        if not w:               # hwloc writes a zero word as nothing between two commas
            continue
        if len(w) > 8 or any(c not in "0123456789abcdefABCDEF" for c in w):
            raise ValueError(f"bad bitmap {text[:40]!r}")
        v = int(w, 16)
        out.update(32 * k + i for i in range(32) if v >> i & 1)
    return frozenset(out)


def format_bitmap(ids: Iterable[int]) -> str:
    """The set bits -> hwloc's bitmap text.

    >>> format_bitmap([31, 32])
    '0x00000001,0x80000000'
    """
    bits = 0
    for i in ids:
        bits |= 1 << i
    words = []
    while True:
        words.append(bits & 0xFFFFFFFF)
        bits >>= 32
        if not bits:
            break
    return ",".join(f"0x{w:08x}" for w in reversed(words))


def _float32(text: str, line: int) -> float:
    """C ``(float) atof(text)``: a float rounded to single precision (NaN and infinities refused)."""
    import math
    import struct

    try:
        v = float(text)
    except ValueError:
        raise _XmlError(line, f"{text[:20]!r} is not a number") from None
    if not math.isfinite(v) or abs(v) > 3.4e38:
        raise _XmlError(line, f"{text[:20]!r} is not a finite number")
    return float(struct.unpack("f", struct.pack("f", v))[0])


def _uint(attrs: dict[str, str], key: str, line: int, default: int | None = None) -> int:
    v = attrs.get(key)
    if v is None:
        if default is None:
            raise _XmlError(line, f"{attrs.get('type', 'element')} without {key}=")
        return default
    if not (v.isascii() and v.isdigit()):
        raise _XmlError(line, f"{key}={v[:20]!r} is not a number")
    try:
        return decimal(v)
    except ValueError as e:
        raise _XmlError(line, f"{key}: {e}") from None


def parse_hwloc_xml(data: bytes | str, path: str = "<xml>") -> HwlocMachine:
    """The NUMA nodes, PUs and NUMA latencies of an hwloc XML document (2.x format, or 1.x).

    Raises TopologyError ``FILE:LINE: message``.

    >>> parse_hwloc_xml('<topology version="2.0"><object type="NUMANode" os_index="0" '
    ...                 'cpuset="0x3" local_memory="4096"/></topology>').summary()
    [(0, 4096, (0, 1))]
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > MAX_XML_BYTES:
        raise TopologyError(f"{path}:1: larger than {MAX_XML_BYTES >> 20} MiB; not an lstopo XML file")
    p = xml.parsers.expat.ParserCreate()
    nodes: list[HwlocNode] = []
    node_lines: dict[int, int] = {}
    pus: list[int] = []
    stack: list[str] = []
    dist: dict[str, Any] = {}
    text: list[str] = []
    state: dict[str, Any] = {"version": None, "in_dist": False, "done_dist": False, "v1": False, "root_memory": 0}
    v1dists: list[dict[str, Any]] = []

    def start(name: str, attrs: dict[str, str]) -> None:
        line = p.CurrentLineNumber
        if not stack:
            if name != "topology":
                raise _XmlError(line, f"<{name}> where hwloc's <topology> belongs")
            ver = attrs.get("version", "1.0")
            major = ver.split(".")[0]
            if not (major.isascii() and major.isdigit()) or not 1 <= int(major) <= 3:
                raise _XmlError(line, f"hwloc XML version {ver!r}: this reads versions 1 to 3")
            state["version"] = ver
            state["v1"] = int(major) == 1
        stack.append(name)
        if name == "object":
            typ = attrs.get("type")
            if typ == "NUMANode":
                idx = _uint(attrs, "os_index", line)
                if idx in node_lines:
                    raise _XmlError(line, f"a second NUMANode with os_index {idx} (first on line {node_lines[idx]})")
                if len(nodes) >= MAX_NODES:
                    raise _XmlError(line, f"more than {MAX_NODES} NUMA nodes: the model takes 1 to {MAX_NODES}")
                try:
                    cpus = parse_bitmap(attrs.get("cpuset", "0x0"))
                except ValueError as e:
                    raise _XmlError(line, str(e)) from None
                node_lines[idx] = line
                nodes.append(HwlocNode(idx, _uint(attrs, "local_memory", line, 0), cpus))
            elif state["v1"] and len(stack) == 2 and "local_memory" in attrs:
                state["root_memory"] = _uint(attrs, "local_memory", line)
            if typ == "PU":
                if len(pus) >= MAX_CPUS:
                    raise _XmlError(line, f"more than {MAX_CPUS} PUs: the model takes at most {MAX_CPUS}")
                pus.append(_uint(attrs, "os_index", line))
        elif name == "distances2" and not state["done_dist"] and attrs.get("type") == "NUMANode" \
                and attrs.get("name", "NUMALatency") == "NUMALatency":
            if attrs.get("indexing") != "os":
                raise _XmlError(line, "distances2 with indexing other than os")
            n = _uint(attrs, "nbobjs", line)
            if not 1 <= n <= MAX_NODES:
                raise _XmlError(line, f"distances2 nbobjs={n}: the model takes 1 to {MAX_NODES} nodes")
            state["in_dist"] = True
            dist.update(n=n, line=line, indexes=[], values=[])
        elif name in ("indexes", "u64values") and state["in_dist"]:
            text.clear()
        elif name == "distances" and state["v1"]:
            n = _uint(attrs, "nbobjs", line)
            if n > MAX_CPUS:
                raise _XmlError(line, f"distances nbobjs={n}: more objects than the model takes")
            v1dists.append(dict(n=n, line=line, base=_float32(attrs.get("latency_base", "0"), line), values=[]))
        elif name == "latency" and v1dists and len(stack) >= 2 and stack[-2] == "distances":
            d = v1dists[-1]
            if len(d["values"]) >= d["n"] ** 2:
                raise _XmlError(line, f"distances with more than nbobjs={d['n']} squared values")
            d["values"].append(_float32(str(_float32(attrs.get("value", "0"), line) * d["base"]), line))

    def end(name: str) -> None:
        stack.pop()
        if name in ("indexes", "u64values") and state["in_dist"]:
            words = "".join(text).split()
            if not all(w.isascii() and w.isdigit() for w in words):
                raise _XmlError(p.CurrentLineNumber, f"<{name}> holds something other than numbers")
            try:
                dist[name if name == "indexes" else "values"].extend(decimal(w) for w in words)
            except ValueError as e:
                raise _XmlError(p.CurrentLineNumber, f"<{name}>: {e}") from None
            n = dist["n"]
            if len(dist["indexes"]) > n or len(dist["values"]) > n * n:
                raise _XmlError(p.CurrentLineNumber, f"distances2 with more than nbobjs={n} values")
        elif name == "distances2" and state["in_dist"]:
            state["in_dist"] = False
            state["done_dist"] = True

    def chars(s: str) -> None:
        if state["in_dist"]:
            text.append(s)

    def entity(*_args: object) -> None:
        raise _XmlError(p.CurrentLineNumber, "entity declarations are not read")

    p.StartElementHandler = start
    p.EndElementHandler = end
    p.CharacterDataHandler = chars
    p.EntityDeclHandler = entity
    try:
        p.Parse(data, True)
    except _XmlError as e:
        raise TopologyError(f"{path}:{e.line}: {e.message}") from None
    except xml.parsers.expat.ExpatError as e:
        raise TopologyError(f"{path}:{e.lineno}: {xml.parsers.expat.ErrorString(e.code)}") from None
    except (LookupError, ValueError) as e:          # an unknown encoding= in the XML declaration
        raise TopologyError(f"{path}:{p.CurrentLineNumber}: {e}") from None
    if state["version"] is None:
        raise TopologyError(f"{path}:1: no <topology> element")
    distances: dict[tuple[int, int], int] = {}
    if not nodes and state["v1"] and pus:      # a hwloc 1.x machine without NUMA: one node
        node_lines[0] = 1
        nodes.append(HwlocNode(0, state["root_memory"], frozenset(pus)))
    if not nodes:
        raise TopologyError(f"{path}:1: no NUMANode object")
    v1dist = next((d for d in v1dists if d["n"] == len(nodes) and d["n"] >= 2), None)
    if v1dist is not None:
        n, vals = v1dist["n"], v1dist["values"]
        if len(vals) != n * n:
            raise TopologyError(f"{path}:{v1dist['line']}: distances needs {n * n} latency values, has {len(vals)}")
        if all(v >= 0 and not .001 < v % 1 < .999 for v in vals):
            ints = [int(v + .5) for v in vals]
        else:
            ints = [int(1000 * v) for v in vals]
        for a in range(n):
            for b in range(n):
                distances[(nodes[a].os_index, nodes[b].os_index)] = ints[a * n + b]
        return HwlocMachine(nodes, pus, distances)
    if dist:
        n, idx, vals = dist["n"], dist["indexes"], dist["values"]
        if len(idx) != n or len(vals) != n * n:
            raise TopologyError(f"{path}:{dist['line']}: distances2 needs {n} indexes and {n * n} values, "
                                f"has {len(idx)} and {len(vals)}")
        if sorted(idx) != sorted(node_lines):
            raise TopologyError(f"{path}:{dist['line']}: distances2 indexes {idx} are not the NUMA nodes "
                                f"{sorted(node_lines)}")
        for a in range(n):
            for b in range(n):
                distances[(idx[a], idx[b])] = vals[a * n + b]
    return HwlocMachine(nodes, pus, distances)


def read_hwloc_xml(path: str | os.PathLike[str]) -> HwlocMachine:
    """Read an hwloc XML file (``lstopo --of xml``); TopologyError ``FILE:LINE: message``.

    Example: ``read_hwloc_xml("box.xml").to_topology()``.
    """
    try:
        size = os.path.getsize(path)
        if size > MAX_XML_BYTES:
            raise TopologyError(f"{path}:1: larger than {MAX_XML_BYTES >> 20} MiB; not an lstopo XML file")
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise TopologyError(f"{path}: {e.strerror}") from None
    return parse_hwloc_xml(data, str(path))


def to_hwloc_xml(topo: Topology) -> str:
    """hwloc XML (version 2.0) of a model machine, loadable by hwloc 2.x and 3.x.

    >>> from mempolicy.alloc.topology import Topology
    >>> to_hwloc_xml(Topology.simple(2)).count('<object type="NUMANode"')
    2
    """
    gp = [0]
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<!DOCTYPE topology SYSTEM "hwloc2.dtd">',
             '<topology version="2.0">']

    def obj(indent: int, typ: str, os_index: int | None, cpus: Iterable[int], nodes: Iterable[int], extra: str = "",
            close: bool = True) -> None:
        gp[0] += 1
        attrs = f'type="{typ}"'
        if os_index is not None:
            attrs += f' os_index="{os_index}"'
        cs, ns = format_bitmap(cpus), format_bitmap(nodes)
        attrs += f' cpuset="{cs}" complete_cpuset="{cs}"'
        if typ == "Machine":
            attrs += f' allowed_cpuset="{cs}"'
        attrs += f' nodeset="{ns}" complete_nodeset="{ns}"'
        if typ == "Machine":
            attrs += f' allowed_nodeset="{ns}"'
        attrs += f' gp_index="{gp[0]}"{extra}'
        lines.append("  " * indent + f"<object {attrs}{'/' if close else ''}>")

    all_cpus = [c for n in topo.nodes for c in n.cpus]
    all_nodes = [n.id for n in topo.nodes]
    obj(1, "Machine", 0, all_cpus, all_nodes, close=False)
    for n in topo.nodes:
        if not len(n.cpus):
            obj(2, "NUMANode", n.id, all_cpus, [n.id], f' local_memory="{n.mem_bytes}"')
    pkg = 0
    for n in topo.nodes:
        if not len(n.cpus):
            continue
        obj(2, "Package", pkg, n.cpus, [n.id], close=False)
        pkg += 1
        obj(3, "NUMANode", n.id, n.cpus, [n.id], f' local_memory="{n.mem_bytes}"')
        for c in n.cpus:
            obj(3, "Core", c, [c], [n.id], close=False)
            obj(4, "PU", c, [c], [n.id])
            lines.append("      </object>")
        lines.append("    </object>")
    lines.append("  </object>")
    k = len(all_nodes)
    lines.append(f'  <distances2 type="NUMANode" nbobjs="{k}" kind="5" '
                 f'name={quoteattr("NUMALatency")} indexing="os">')
    vals = [topo.dist[a][b] for a in range(k) for b in range(k)]
    for tag, seq in (("indexes", all_nodes), ("u64values", vals)):
        for i in range(0, len(seq), 10):
            chunk = " ".join(str(v) for v in seq[i:i + 10]) + " "
            lines.append(f'    <{tag} length="{len(chunk)}">{chunk}</{tag}>')
    lines.append("  </distances2>")
    lines.append("</topology>")
    return "\n".join(lines) + "\n"
