"""TOML topologies (docs/topology.md), with ``FILE:LINE: message`` for every mistake.

::

    [[node]]            # one table per node, node ids 0, 1, ... in file order
    mem = "512M"        # a size (K, M, G, T, P or KiB...PiB: 1024s) or a number of bytes
    cpus = 2            # CPUs of the node (default 1; 0 for a memory-only node)

    [distance]          # optional; every pair not given is 20
    "0-1" = 21          # "A-B" = 11..255, the same both ways

``tomllib`` reports syntax errors with a line; it gives none for values, so
the line of a value is found by scanning the text for its key inside its
table.  The node count is checked before any node is built, the file size
before it is parsed.
"""

from __future__ import annotations

import os
import re
import tomllib

from mempolicy.alloc.topology import LOCAL_DISTANCE, REMOTE_DISTANCE, Node, Topology
from mempolicy.core.units import parse_size
from mempolicy.linux.hwloc import MAX_CPUS, MAX_NODE_MEM, MAX_NODES, TopologyError

__all__ = ["read_topology_toml", "parse_topology_toml", "MAX_TOML_BYTES"]

MAX_TOML_BYTES = 256 << 10       # 64 nodes and all 2016 distances take about 40 KiB
DEFAULT_MEM = 512 << 20


class _Lines:
    """Where tables and keys are in the text (tomllib does not say)."""

    def __init__(self, text: str) -> None:
        self.lines = text.split("\n")
        self._headers: dict[tuple[str, bool], list[int]] = {}

    def header(self, name: str, nth: int = 0, array: bool = False) -> int:
        found = self._headers.get((name, array))
        if found is None:
            pat = re.compile(r"\s*\[\[\s*" + name + r"\s*\]\]" if array else r"\s*\[\s*" + name + r"\s*\]")
            found = self._headers[(name, array)] = [i + 1 for i, line in enumerate(self.lines) if pat.match(line)]
        if nth < len(found):
            return found[nth]
        for i, line in enumerate(self.lines):          # inline forms: node = [...], distance = {...}
            if re.match(r"\s*" + name + r"\s*=", line):
                return i + 1
        return 1

    def key(self, start: int, key: str) -> int:
        """The line of ``key =`` in the table that starts on line ``start`` (1-based)."""
        pat = re.compile(r"\s*(?:" + re.escape(key) + r"|\"" + re.escape(key) + r"\"|'" + re.escape(key)
                         + r"')\s*=")
        for i in range(start, len(self.lines)):
            line = self.lines[i]
            if i >= start and re.match(r"\s*\[", line):
                break
            if pat.match(line):
                return i + 1
        # an inline table: the key on the header line or after it
        for i in range(start - 1, len(self.lines)):
            if re.search(r"(?:^|[{,\s])(?:" + re.escape(key) + r"|\"" + re.escape(key) + r"\")\s*=",
                         self.lines[i]):
                return i + 1
        return start


def _kind(v: object) -> str:
    return {bool: "a boolean", int: "a number", float: "a fractional number", str: "a string", list: "a list",
            dict: "a table"}.get(type(v), type(v).__name__)


def parse_topology_toml(text: str, path: str = "<toml>") -> Topology:
    """A model machine from TOML text (TopologyError ``FILE:LINE: message``).

    >>> parse_topology_toml('[[node]]\\nmem = "1G"\\ncpus = 2\\n').nodes[0].mem_bytes
    1073741824
    """
    if len(text) > MAX_TOML_BYTES:
        raise TopologyError(f"{path}:1: larger than {MAX_TOML_BYTES >> 10} KiB; not a topology file")
    try:
        data = tomllib.loads(text)
    except ValueError as e:
        if not isinstance(e, tomllib.TOMLDecodeError):      # an integer of thousands of digits
            big = re.search(r"\d{100}", text)
            at = text.count("\n", 0, big.start()) + 1 if big else 1
            raise TopologyError(f"{path}:{at}: a number too large to read") from None
        m = re.search(r"\(at line (\d+), column \d+\)", str(e))
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(e))
        where_line = m.group(1) if m else "1"
        if not m and "end of document" in str(e):
            where_line = str(text.count("\n") + 1)
        raise TopologyError(f"{path}:{where_line}: {msg}") from None
    where = _Lines(text)

    def fail(line: int, msg: str) -> TopologyError:
        return TopologyError(f"{path}:{line}: {msg}")

    for key in data:
        if key not in ("node", "distance"):
            raise fail(where.key(1, key), f"unknown key {key!r} (a topology has [[node]] and [distance])")
    tables = data.get("node")
    if tables is None:
        raise fail(1, "no [[node]] table")
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise fail(where.header("node", array=True), "node must be [[node]] tables")
    if not 1 <= len(tables) <= MAX_NODES:
        raise fail(where.header("node", min(len(tables), MAX_NODES + 1) - 1, array=True),
                   f"{len(tables)} nodes: the model takes 1 to {MAX_NODES}")
    nodes: list[Node] = []
    cpu = 0
    for i, t in enumerate(tables):
        start = where.header("node", i, array=True)
        for key in t:
            if key not in ("mem", "cpus"):
                raise fail(where.key(start, key), f"node {i}: unknown key {key!r} (mem, cpus)")
        raw = t.get("mem", DEFAULT_MEM)
        if isinstance(raw, str):
            try:
                mem = parse_size(raw, "model")
            except ValueError as e:
                raise fail(where.key(start, "mem"), f"node {i}: mem: {e}") from None
        elif isinstance(raw, int) and not isinstance(raw, bool):
            mem = raw
        else:
            raise fail(where.key(start, "mem"),
                       f"node {i}: mem is {_kind(raw)}; give a size such as \"512M\" or a number of bytes")
        if mem < 0:
            raise fail(where.key(start, "mem"), f"node {i}: mem is negative")
        if mem > MAX_NODE_MEM:
            raise fail(where.key(start, "mem"), f"node {i}: mem {mem} is more than the model's "
                       f"{MAX_NODE_MEM} bytes (4P) per node")
        cpus = t.get("cpus", 1)
        if not isinstance(cpus, int) or isinstance(cpus, bool):
            raise fail(where.key(start, "cpus"), f"node {i}: cpus is {_kind(cpus)}; give a number of CPUs")
        if cpus < 0:
            raise fail(where.key(start, "cpus"), f"node {i}: cpus is negative")
        if cpu + cpus > MAX_CPUS:
            raise fail(where.key(start, "cpus"), f"more than {MAX_CPUS} CPUs in all: the model's limit")
        nodes.append(Node(i, mem, range(cpu, cpu + cpus)))
        cpu += cpus
    n = len(nodes)
    dist = [[LOCAL_DISTANCE if a == b else REMOTE_DISTANCE for b in range(n)] for a in range(n)]
    table = data.get("distance", {})
    dstart = where.header("distance")
    if not isinstance(table, dict):
        raise fail(dstart, f"distance is {_kind(table)}; give a [distance] table of \"A-B\" = 11..255")
    for key, v in table.items():
        def line(key: str = key) -> int:       # scanned only for a mistake
            return where.key(dstart, key)

        m = re.fullmatch(r"([0-9]{1,9})-([0-9]{1,9})", key)
        if not m:
            raise fail(line(), f"distance key {key!r}: expected \"A-B\", two node ids")
        a, b = int(m.group(1)), int(m.group(2))
        for x in (a, b):
            if x >= n:
                raise fail(line(), f"distance {key!r} names node {x}, and there are {n} nodes (0-{n - 1})")
        if a == b:
            raise fail(line(), f"distance {key!r}: the distance of a node to itself is always 10")
        if not isinstance(v, int) or isinstance(v, bool):
            raise fail(line(), f"distance {key!r} is {_kind(v)}; give a number 11..255")
        if not LOCAL_DISTANCE < v <= 255:
            raise fail(line(), f"distance {key!r} = {v} is not in 11..255")
        dist[a][b] = dist[b][a] = v
    if not any(x.mem_bytes for x in nodes):
        raise fail(where.header("node", array=True), "no node has memory")
    if not cpu:
        raise fail(where.header("node", array=True), "no node has a CPU")
    return Topology(nodes, dist)


def read_topology_toml(path: str | os.PathLike[str]) -> Topology:
    """Read a TOML topology file (TopologyError ``FILE:LINE: message``, or ``FILE: reason``).

    Example: ``read_topology_toml("machine.toml").nodes``.
    """
    try:
        if os.path.getsize(path) > MAX_TOML_BYTES:
            raise TopologyError(f"{path}:1: larger than {MAX_TOML_BYTES >> 10} KiB; not a topology file")
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise TopologyError(f"{path}: {e.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise TopologyError(f"{path}:{line}: not UTF-8 text (byte {raw[e.start]:#04x})") from None
    return parse_topology_toml(text, str(path))
