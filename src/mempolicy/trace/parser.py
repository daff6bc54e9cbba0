"""Parser and validator of the trace format (docs/trace-format.md, version 1.3).

A trace is checked completely before anything runs: any violation raises
``TraceError`` whose text is ``FILE:LINE: message``.  Both the model runner
and the oracle use this parser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from mempolicy.core.nodemask import Nodemask
from mempolicy.core.units import parse_list_bits, parse_size
from mempolicy.scopes.cred import CAP_FULL_SET, CAP_NAMES
from mempolicy.trace import limits
from mempolicy.uapi import FLAG_NAMES, MAX_NUMNODES, MODE_BY_NAME, PAGE_SIZE

U64 = (1 << 64) - 1
MAX_PAGES_QUERY = limits.MAX_PAGES
MAX_CPUS_PER_NODE = 256
MAX_NODES = 64
DEFAULT_NODES = 4
DEFAULT_MEM = 512 << 20
DEFAULT_DISTANCE = 20
MMAP_BASE = 0x200000000000
MMAP_STRIDE = 0x40000000


class TraceError(Exception):
    """A malformed trace: ``FILE:LINE: message``."""

    def __init__(self, path: str, lineno: int, message: str) -> None:
        super().__init__(f"{path}:{lineno}: {message}")
        self.path = path
        self.lineno = lineno
        self.message = message


@dataclass(frozen=True)
class NodeSpec:
    """One ``node`` header line."""

    id: int
    mem: int  # bytes
    cpus: int


@dataclass(frozen=True)
class HmatSpec:
    """One ``hmat`` header line: what the firmware says about a node's memory."""

    bw: int         # access bandwidth from its initiator, MB/s
    lat: int        # access latency from its initiator, ns


@dataclass
class Machine:
    """The header: nodes (ids 0..N-1) and the distance table."""

    nodes: list[NodeSpec]
    distances: dict[tuple[int, int], int] = field(default_factory=dict)
    hmat: dict[int, HmatSpec] = field(default_factory=dict)   # node -> its HMAT numbers
    own_boot: str | None = None  # a trace that changes weights for good: it boots alone

    def distance(self, a: int, b: int) -> int:
        if a == b:
            return 10
        return self.distances.get((min(a, b), max(a, b)), DEFAULT_DISTANCE)

    def hmat_initiator(self, nid: int) -> int:
        """The node whose CPUs the HMAT names as NID's local initiator.

        A node with CPUs is its own; a memory-only node's is the nearest node
        with CPUs (the lowest id among equals).
        """
        if self.nodes[nid].cpus:
            return nid
        return min((n.id for n in self.nodes if n.cpus), key=lambda c: (self.distance(nid, c), c))

    def firmware_bandwidths(self) -> dict[int, int]:
        """Node -> MB/s that the booted kernel takes from the HMAT ({} if it takes none).

        QEMU describes every node in the HMAT, and Linux ignores the whole
        table when it names a memory domain without memory (``Memory Domain
        missing from SRAT``, hmat_parse_proximity_domain): on a machine with
        a ``mem=0`` node, ``hmat`` lines change nothing.
        """
        if any(n.mem == 0 for n in self.nodes):
            return {}
        return {nid: spec.bw for nid, spec in sorted(self.hmat.items())}

    def cpu_ranges(self) -> list[range]:
        """The CPUs of each node, numbered node by node."""
        out, first = [], 0
        for n in self.nodes:
            out.append(range(first, first + n.cpus))
            first += n.cpus
        return out

    @property
    def nr_cpus(self) -> int:
        return sum(n.cpus for n in self.nodes)

    def key(self) -> tuple:
        """Traces with equal keys run on the same machine (one oracle boot)."""
        n = len(self.nodes)
        return (
            tuple((s.mem, s.cpus) for s in self.nodes),
            tuple(self.distance(a, b) for a in range(n) for b in range(n)),
        ) + ((tuple(sorted(self.hmat.items())),) if self.hmat else ()) \
          + ((self.own_boot,) if self.own_boot else ())


@dataclass
class Command:
    """One command line.  ``name`` is the first word (``raw`` commands: ``raw-<call>``)."""

    lineno: int
    name: str
    args: dict
    words: tuple[str, ...] = ()  # the line's words, as the oracle's runner splits them


@dataclass
class Trace:
    path: str
    machine: Machine
    commands: list[Command]


def _num(tok: str, what: str) -> int:
    if tok[:2] in ("0x", "0X") and len(tok) > 2 and set(tok[2:]) <= _HEX:
        v = int(tok[2:], 16)
    elif _isdec(tok):
        v = int(tok, 10)
    else:
        raise ValueError(f"bad number {tok!r} for {what}")
    if v > U64:
        raise ValueError(f"{what} {tok} does not fit in 64 bits")
    return v


def _size(tok: str) -> int:
    return parse_size(tok, "trace")


def _nodes(tok: str) -> Nodemask:
    if tok == "-":
        return Nodemask()
    try:
        return Nodemask(parse_list_bits(tok, MAX_NUMNODES, ascending=True))
    except ValueError as e:
        if "above" in str(e) or "ascending" in str(e):
            raise
        raise ValueError(f"bad node list {tok!r}") from None


def _pages(tok: str, what: str) -> int:
    v = _num(tok, what)
    if v * PAGE_SIZE > U64:
        raise ValueError(f"{what} {tok} times 4096 overflows 64 bits")
    return v


def _mask_words(tok: str) -> list[int] | None:
    if tok == "null":
        return None
    return [_num(w, "mask word") for w in tok.split(",")]


_DEC = frozenset("0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")


def _isdec(tok: str) -> bool:
    """ASCII decimal digits only (str.isdigit() also takes other scripts' digits)."""
    return bool(tok) and set(tok) <= _DEC


_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def _is_ident(tok: str) -> bool:
    return bool(tok) and not tok[0].isdigit() and set(tok) <= _NAME_CHARS


class _Names:
    """The name space of mappings and memfds, with fork scopes."""

    def __init__(self) -> None:
        self.kind: dict[str, str] = {}
        self.ever: set[str] = set()
        self.scopes: list[list[str]] = []

    def create(self, name: str, kind: str) -> None:
        if not _is_ident(name):
            raise ValueError(f"bad name {name!r}")
        if name in self.ever:
            raise ValueError(f"name {name!r} is already used")
        self.ever.add(name)
        self.kind[name] = kind
        if self.scopes:
            self.scopes[-1].append(name)

    def need(self, name: str, kind: str) -> None:
        if self.kind.get(name) != kind:
            what = "mapping" if kind == "map" else "memfd"
            raise ValueError(f"unknown {what} {name!r}")


def _split_flags(words: list[str], allowed: dict[str, str]) -> dict[str, bool]:
    out = {v: False for v in allowed.values()}
    for w in words:
        if w not in allowed:
            raise ValueError(f"unexpected word {w!r}")
        if out[allowed[w]]:
            raise ValueError(f"{w!r} given twice")
        out[allowed[w]] = True
    return out


def _mode_and_flags(words: list[str]) -> tuple[int, int, list[str]]:
    if not words:
        raise ValueError("missing mode")
    if words[0] not in MODE_BY_NAME:
        raise ValueError(f"unknown mode {words[0]!r}")
    mode = MODE_BY_NAME[words[0]]
    flags = 0
    rest = []
    for w in words[2:]:
        if w in FLAG_NAMES:
            if rest:
                raise ValueError(f"mode flag {w!r} after {rest[-1]!r}")
            if flags & FLAG_NAMES[w]:
                raise ValueError(f"{w!r} given twice")
            flags |= FLAG_NAMES[w]
        else:
            rest.append(w)
    return mode, flags, rest


def _expect(words: list[str], lo: int, hi: int | None = None) -> None:
    hi = lo if hi is None else hi
    if len(words) < lo:
        raise ValueError("missing arguments")
    if hi >= 0 and len(words) > hi:
        raise ValueError(f"unexpected word {words[hi]!r}")


def _parent(words: list[str], names: _Names) -> bool:
    """Remove a trailing ``parent`` word from ``words``: the call then targets the parent process."""
    if not words or words[-1] != "parent":
        return False
    if not names.scopes:
        raise ValueError("'parent' outside a fork")
    words.pop()
    return True


_ID_MAX = (1 << 32) - 2                  # (uid_t)-1 means "unchanged" to setresuid


def _ids(tok: str, what: str) -> tuple[int, int, int]:
    vals = [_num(v, what) for v in tok.split(",")]
    if len(vals) not in (1, 3):
        raise ValueError(f"{what}= takes one id or three (real,effective,saved), not {tok!r}")
    if any(v > _ID_MAX for v in vals):
        raise ValueError(f"{what} {tok!r} above {_ID_MAX}")
    return (vals[0],) * 3 if len(vals) == 1 else tuple(vals)


def _cred(words: list[str]) -> dict:
    """``cred [uid=R[,E,S]] [gid=R[,E,S]] [drop=CAP,...|all]``, each at most once."""
    a: dict = {"uid": None, "gid": None, "drop": 0}
    seen: set[str] = set()
    for w in words:
        key, eq, val = w.partition("=")
        if not eq or key not in a or not val:
            raise ValueError(f"unexpected word {w!r} (cred [uid=ID] [gid=ID] [drop=CAPS])")
        if key in seen:
            raise ValueError(f"{key}= given twice")
        seen.add(key)
        if key == "drop":
            caps = 0
            for name in val.split(","):
                if name == "all":
                    caps |= CAP_FULL_SET
                elif name in CAP_NAMES:
                    caps |= 1 << CAP_NAMES[name]
                else:
                    raise ValueError(f"unknown capability {name!r} (sys_nice, sys_ptrace, setuid, "
                                     "setgid or all)")
            a["drop"] = caps
        else:
            a[key] = _ids(val, key)
    if not seen:
        raise ValueError("cred needs uid=, gid= or drop=")
    return a


# -- weighted-interleave weights (section 5.8) ---------------------------------

HMAT_MAX_BW = 1 << 24          # MB/s: far above any memory, and 32 * bw fits the kernel's u32
HMAT_MAX_LAT = 1 << 16         # ns
HMAT_DEFAULT_LAT = 100


def _hmat_line(rest: list[str]) -> tuple[int, HmatSpec]:
    """``hmat NODE bw=MBPS [lat=NS]``."""
    if len(rest) < 2:
        raise ValueError("an hmat line needs a node and bw=MBPS (hmat NODE bw=MBPS [lat=NS])")
    _expect(rest, 2, 3)
    nid = _num(rest[0], "node id")
    kv: dict[str, int] = {}
    for w in rest[1:]:
        k, eq, v = w.partition("=")
        if not eq or k not in ("bw", "lat") or k in kv:
            raise ValueError(f"unexpected word {w!r} (hmat NODE bw=MBPS [lat=NS])")
        kv[k] = _num(v, "bandwidth" if k == "bw" else "latency")
    if "bw" not in kv:
        raise ValueError("an hmat line needs bw=MBPS")
    if not 1 <= kv["bw"] <= HMAT_MAX_BW:
        raise ValueError(f"bw={kv['bw']} is not in 1..{HMAT_MAX_BW} (MB/s)")
    lat = kv.get("lat", HMAT_DEFAULT_LAT)
    if not 1 <= lat <= HMAT_MAX_LAT:
        raise ValueError(f"lat={lat} is not in 1..{HMAT_MAX_LAT} (ns)")
    return nid, HmatSpec(kv["bw"], lat)


def _weight_command(word: str, words: list[str]) -> dict:
    """``weight NODE VALUE``, ``weight auto VALUE``, ``weights``.

    VALUE is written to the sysfs file as given (plus a newline); the kernel
    parses it, so any word is allowed here.
    """
    if word == "weights":
        _expect(words, 0)
        return {}
    _expect(words, 2)
    node = None if words[0] == "auto" else _num(words[0], "node")
    if node is not None and node >= MAX_NUMNODES:
        raise ValueError(f"node {node} is above {MAX_NUMNODES - 1}")
    return {"node": node, "value": words[1]}


def _threads_cpusets(word: str, words: list[str], names: _Names, st: dict) -> dict:
    """``thread T``, ``switch T``, ``thread_exit T`` and ``cpuset mems=LIST [cpus=LIST]``
    (section 5.7).  Threads are named in their own name space; ``main`` is the
    process's first thread.  A trace that creates threads has no ``fork``, and
    ``cpuset`` is not allowed between ``fork`` and ``exit``."""
    th = st["threads"]
    if word == "cpuset":
        if names.scopes:
            raise ValueError("cpuset between fork and exit")
        a: dict = {"mems": None, "cpus": None}
        for w in words:
            key, eq, val = w.partition("=")
            if not eq or key not in a:
                raise ValueError(f"unexpected word {w!r} (cpuset mems=NODES [cpus=CPUS])")
            if a[key] is not None:
                raise ValueError(f"{key}= given twice")
            if val == "-":
                raise ValueError(f"{key}= needs at least one {'node' if key == 'mems' else 'cpu'}")
            a[key] = _nodes(val)
        if a["mems"] is None and a["cpus"] is None:
            raise ValueError("cpuset needs mems= or cpus=")
        return a
    _expect(words, 1)
    name = words[0]
    if word == "thread":
        if st["forked"]:
            raise ValueError("thread in a trace that forks (section 5.7)")
        if not _is_ident(name):
            raise ValueError(f"bad thread name {name!r}")
        if name in th["ever"]:
            raise ValueError(f"thread name {name!r} is already used")
        if len(th["ever"]) >= MAX_THREADS:
            raise ValueError(f"more than {MAX_THREADS} threads, main included")
        th["ever"].add(name)
        th["live"].add(name)
        return {"name": name}
    if name not in th["live"]:
        raise ValueError(f"unknown thread {name!r}")
    if word == "switch":
        th["current"] = name
    else:
        if name == th["current"]:
            raise ValueError(f"thread {name!r} cannot end itself (switch to another thread first)")
        if name == "main":
            raise ValueError("the main thread cannot end")
        th["live"].discard(name)
    return {"name": name}


MAX_THREADS = 32              # threads of a trace, main included (runner.c's MAX_THREADS)


# Section 5.9 (transparent huge pages): the sysfs files of ``thp`` and their values.
THP_SETTINGS = {
    "enabled": ("always", "madvise", "never"),
    "defrag": ("always", "defer", "defer+madvise", "madvise", "never"),
    "use_zero_page": ("0", "1"),
}
MADVISE_ADVICE = ("hugepage", "nohugepage")


def _thp_setting(words: list[str]) -> dict:
    """``thp FILE VALUE``: a write to /sys/kernel/mm/transparent_hugepage/FILE."""
    _expect(words, 2)
    file, value = words
    if file not in THP_SETTINGS:
        raise ValueError(f"unknown thp setting {file!r} ({', '.join(THP_SETTINGS)})")
    if value not in THP_SETTINGS[file]:
        raise ValueError(f"thp {file} takes {', '.join(THP_SETTINGS[file])}, not {value!r}")
    return {"file": file, "value": value}


def _parse_command(word: str, words: list[str], names: _Names, st: dict) -> tuple[str, dict]:
    a: dict = {}
    if word == "cpu":
        _expect(words, 1)
        a["cpu"] = _num(words[0], "cpu")
    elif word == "mmap":
        _expect(words, 2, 6)
        name = words[0]
        a["name"] = name
        a["pages"] = _pages(words[1], "page count")
        a["shared"] = a["private"] = False
        a["addr"] = None
        a["file"] = None
        a["off"] = 0
        seen_off = False
        for w in words[2:]:
            if w == "shared" and not a["shared"]:
                a["shared"] = True
            elif w == "private" and not a["private"]:
                a["private"] = True
            elif w.startswith("@") and a["addr"] is None:
                a["addr"] = _num(w[1:], "address")
            elif w.startswith("file=") and a["file"] is None:
                a["file"] = w[5:]
                names.need(a["file"], "memfd")
            elif w.startswith("off=") and not seen_off:
                a["off"] = _pages(w[4:], "offset")
                seen_off = True
            else:
                raise ValueError(f"unexpected word {w!r}")
        if seen_off and a["file"] is None:
            raise ValueError("off= needs file=")
        if a["shared"] and a["private"]:
            raise ValueError("a mapping cannot be both shared and private")
        a["index"] = st["mmaps"]
        st["mmaps"] += 1
        if a["addr"] is None:
            a["addr"] = MMAP_BASE + a["index"] * MMAP_STRIDE
        names.create(name, "map")
    elif word == "memfd":
        _expect(words, 2)
        a["name"] = words[0]
        a["pages"] = _pages(words[1], "page count")
        names.create(words[0], "memfd")
    elif word == "thp":
        a.update(_thp_setting(words))
    elif word in ("munmap", "mprotect", "touch", "where", "mbind", "home_node", "move_pages",
                  "madvise"):
        _expect(words, 3, -1)
        names.need(words[0], "map")
        a["name"] = words[0]
        a["off"] = _pages(words[1], "offset")
        a["pages"] = _pages(words[2], "page count")
        if (a["off"] + a["pages"]) * PAGE_SIZE > U64:
            raise ValueError("range overflows 64 bits")
        rest = words[3:]
        if word == "munmap":
            _expect(rest, 0)
        elif word == "where":
            a["parent"] = _parent(rest, names)
            _expect(rest, 0)
            if a["pages"] > MAX_PAGES_QUERY:
                raise ValueError(f"where takes at most {MAX_PAGES_QUERY} pages")
        elif word == "mprotect":
            _expect(rest, 1)
            if rest[0] not in ("ro", "rw"):
                raise ValueError(f"mprotect takes ro or rw, not {rest[0]!r}")
            a["prot"] = rest[0]
        elif word == "touch":
            a.update(_split_flags(rest, {"read": "read"}))
        elif word == "madvise":
            _expect(rest, 1)
            if rest[0] not in MADVISE_ADVICE:
                raise ValueError(f"madvise takes {' or '.join(MADVISE_ADVICE)}, not {rest[0]!r}")
            a["advice"] = rest[0]
        elif word == "mbind":
            mode, flags, tail = _mode_and_flags(rest)
            if len(rest) < 2:
                raise ValueError("missing node list")
            a["mode"], a["mode_flags"] = mode, flags
            a["nodes"] = _nodes(rest[1])
            a.update(_split_flags(tail, {"strict": "strict", "move": "move", "move_all": "move_all"}))
        elif word == "home_node":
            _expect(rest, 1)
            a["node"] = _num(rest[0], "node")
        elif word == "move_pages":
            a["parent"] = _parent(rest, names)
            _expect(rest, 1, 2)
            a["node"] = _num(rest[0], "node")
            a.update(_split_flags(rest[1:], {"all": "all"}))
            if a["pages"] > MAX_PAGES_QUERY:
                raise ValueError(f"move_pages takes at most {MAX_PAGES_QUERY} pages")
    elif word == "set_mempolicy":
        mode, flags, tail = _mode_and_flags(words)
        if len(words) < 2:
            raise ValueError("missing node list")
        _expect(tail, 0)
        a["mode"], a["mode_flags"] = mode, flags
        a["nodes"] = _nodes(words[1])
    elif word == "get_mempolicy":
        a["at"] = None
        a["node"] = a["mems_allowed"] = False
        for w in words:
            if w.startswith("at=") and a["at"] is None:
                name, plus, off = w[3:].partition("+")
                names.need(name, "map")
                a["at"] = (name, _pages(off, "offset") if plus else 0)
            elif w in ("node", "mems_allowed") and not a[w]:
                a[w] = True
            else:
                raise ValueError(f"unexpected word {w!r}")
    elif word == "migrate_pages":
        a["parent"] = _parent(words, names)
        _expect(words, 2)
        a["from"] = _nodes(words[0])
        a["to"] = _nodes(words[1])
    elif word == "cred":
        a.update(_cred(words))
    elif word in ("weight", "weights"):
        a.update(_weight_command(word, words))
    elif word == "numa_maps":
        _expect(words, 1)
        names.need(words[0], "map")
        a["name"] = words[0]
    elif word in ("thread", "switch", "thread_exit", "cpuset"):
        a = _threads_cpusets(word, words, names, st)
    elif word == "fork":
        _expect(words, 0)
        if st.get("threads", {}).get("ever", {"main"}) != {"main"}:
            raise ValueError("fork in a trace that creates threads (section 5.7)")
        st["forked"] = True
        names.scopes.append([])
    elif word == "exit":
        _expect(words, 0)
        if not names.scopes:
            raise ValueError("exit without fork")
        for name in names.scopes.pop():
            names.kind.pop(name, None)
    elif word == "raw":
        if not words:
            raise ValueError("raw needs a call name")
        call, w = words[0], words[1:]
        word = "raw-" + call
        if call == "set_mempolicy":
            _expect(w, 3)
            a["mode"] = _num(w[0], "mode")
            a["mask"] = _mask_words(w[1])
            a["maxnode"] = _num(w[2], "maxnode")
        elif call == "mbind":
            _expect(w, 7)
            names.need(w[0], "map")
            a["name"] = w[0]
            a["byteoff"] = _num(w[1], "byte offset")
            a["len"] = _num(w[2], "length")
            a["mode"] = _num(w[3], "mode")
            a["mask"] = _mask_words(w[4])
            a["maxnode"] = _num(w[5], "maxnode")
            a["flags"] = _num(w[6], "flags")
        elif call == "get_mempolicy":
            _expect(w, 4)
            a["maskbits"] = None if w[0] == "null" else _num(w[0], "mask bits")
            a["maxnode"] = _num(w[1], "maxnode")
            if "+" in w[2] or _is_ident(w[2]):
                name, _, off = w[2].partition("+")
                names.need(name, "map")
                a["addr"] = (name, _num(off, "byte offset") if off else 0)
            else:
                a["addr"] = _num(w[2], "address")
            a["flags"] = _num(w[3], "flags")
        else:
            raise ValueError(f"unknown raw call {call!r}")
    else:
        raise ValueError(f"unknown command {word!r}")
    return word, a


def scan_text(text: str, path: str = "<trace>") -> list[tuple[int, list[str]]]:
    """The lexical rules and limits: (line number, words) of each non-blank line.

    This is the grammar ``runner.c`` implements in C, step for step, with the
    same messages (``runner --parse-only`` prints what it read): a trace
    either passes both or fails both at the same line.  A line ends at
    ``\\n``, one ``\\r`` before it is dropped, ``#`` starts a comment; NUL
    and other control characters but tab are refused anywhere, characters
    beyond ASCII outside comments; words are separated by spaces and tabs
    only.  Limits (:mod:`mempolicy.trace.limits`) count command lines: the
    header's ``node`` and ``distance`` lines before the first command are
    not commands.

    >>> scan_text("node 0 mem=1G cpus=1\\nmmap A 1  # x\\r\\n")
    [(1, ['node', '0', 'mem=1G', 'cpus=1']), (2, ['mmap', 'A', '1'])]
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size >= limits.MAX_TEXT:
        raise TraceError(path, 1, f"the trace is larger than {limits.MAX_TEXT - 1} bytes")
    out: list[tuple[int, list[str]]] = []
    ntokens = ncmds = nnamed = depth = 0
    in_header = True
    for lineno, line in enumerate(text.split("\n"), 1):
        if line.endswith("\r"):
            line = line[:-1]
        if not _PLAIN.fullmatch(line):
            comment = False
            for ch in line:
                if ch == "#":
                    comment = True
                elif ch == "\0":
                    raise TraceError(path, lineno, "NUL byte")
                elif (ch < " " and ch != "\t") or ch == "\x7f":
                    raise TraceError(path, lineno, f"control character 0x{ord(ch):02x}")
                elif ch > "\x7f" and not comment:
                    raise TraceError(path, lineno, "non-ASCII character outside a comment")
        words = [w for w in _SEP.split(line.split("#", 1)[0]) if w]
        for k, w in enumerate(words):  # in the runner's order: count, then length
            if ntokens + k >= limits.MAX_TOKENS:
                raise TraceError(path, lineno, f"more than {limits.MAX_TOKENS} words in commands")
            if len(w) > limits.MAX_WORD:
                raise TraceError(path, lineno, f"a word longer than {limits.MAX_WORD} characters")
        if not words:
            continue
        out.append((lineno, words))
        if in_header and words[0] in HEADER_WORDS:
            continue
        in_header = False
        ntokens += len(words)
        if ncmds >= limits.MAX_CMDS:
            raise TraceError(path, lineno, f"more than {limits.MAX_CMDS} commands")
        ncmds += 1
        if words[0] in ("mmap", "memfd"):
            if nnamed >= limits.MAX_NAMES:
                raise TraceError(path, lineno, f"more than {limits.MAX_NAMES} mmap and memfd lines")
            nnamed += 1
        elif words[0] == "fork":
            if depth >= limits.MAX_FORK_DEPTH:
                raise TraceError(path, lineno, f"forks nested more than {limits.MAX_FORK_DEPTH} deep")
            depth += 1
        elif words[0] == "exit" and depth:
            depth -= 1
    return out


HEADER_WORDS = ("node", "distance", "hmat")
_PLAIN = re.compile(r"[\t\x20-\x7e]*")  # a line that needs no character check
_SEP = re.compile(r"[ \t]+")


def parse_trace(text: str, path: str = "<trace>") -> Trace:
    """Parse and validate a whole trace; raise TraceError on the first problem."""
    nodes: list[NodeSpec] = []
    dist_lines: list[tuple[int, int, int, int]] = []
    hmat_lines: list[tuple[int, tuple[int, HmatSpec]]] = []
    commands: list[Command] = []
    names = _Names()
    st: dict = {"mmaps": 0, "forked": False,
                "threads": {"ever": {"main"}, "live": {"main"}, "current": "main"}}
    in_header = True
    for lineno, words in scan_text(text, path):
        word, rest = words[0], words[1:]
        try:
            if word in HEADER_WORDS:
                if not in_header:
                    raise ValueError(f"header line {word!r} after the first command")
                if word == "node":
                    _expect(rest, 3)
                    nid = _num(rest[0], "node id")
                    if nid != len(nodes):
                        raise ValueError(f"node {nid} out of order (expected node {len(nodes)})")
                    if nid >= MAX_NODES:
                        raise ValueError(f"at most {MAX_NODES} nodes")
                    kv = {}
                    for w in rest[1:]:
                        k, eq, v = w.partition("=")
                        if not eq or k not in ("mem", "cpus") or k in kv:
                            raise ValueError(f"unexpected word {w!r} (node ID mem=SIZE cpus=COUNT)")
                        kv[k] = v
                    if "mem" not in kv or "cpus" not in kv:
                        raise ValueError("a node line needs mem=SIZE and cpus=COUNT")
                    cpus = _num(kv["cpus"], "cpu count")
                    if cpus > MAX_CPUS_PER_NODE:
                        raise ValueError(f"cpus={cpus} is more than {MAX_CPUS_PER_NODE}")
                    nodes.append(NodeSpec(nid, _size(kv["mem"]), cpus))
                elif word == "hmat":
                    hmat_lines.append((lineno, _hmat_line(rest)))
                else:
                    _expect(rest, 3)
                    x, y, v = (_num(t, "distance") for t in rest)
                    if x == y:
                        raise ValueError("the local distance is always 10")
                    if not 11 <= v <= 255:
                        raise ValueError(f"distance {v} is not in 11..255")
                    dist_lines.append((lineno, x, y, v))
                continue
            in_header = False
            name, args = _parse_command(word, rest, names, st)
        except ValueError as e:
            raise TraceError(path, lineno, str(e)) from None
        commands.append(Command(lineno, name, args, tuple(words)))

    if not nodes:
        nodes = [NodeSpec(i, DEFAULT_MEM, 1) for i in range(DEFAULT_NODES)]
    distances = {}
    for lineno, x, y, v in dist_lines:
        if x >= len(nodes) or y >= len(nodes):
            raise TraceError(path, lineno, f"distance names node {max(x, y)}, which has no node line")
        distances[(min(x, y), max(x, y))] = v
    machine = Machine(nodes, distances)
    for lineno, (nid, spec) in hmat_lines:
        if nid >= len(nodes) or not nodes[nid].mem:
            raise TraceError(path, lineno, f"hmat names node {nid}, which has no memory"
                             if nid < len(nodes) else f"hmat names node {nid}, which has no node line")
        if nid in machine.hmat:
            raise TraceError(path, lineno, f"a second hmat line for node {nid}")
        machine.hmat[nid] = spec
    if not machine.firmware_bandwidths() and any(c.name == "weight" for c in commands):
        machine.own_boot = path     # no bandwidths: the boot state cannot come back
    if machine.nr_cpus == 0:
        raise TraceError(path, 1, "the machine has no CPU")
    return Trace(path, machine, commands)


def load_trace(path: str | Path) -> Trace:
    """Read and parse a trace file (OSError for an unreadable file)."""
    with open(path, "rb") as f:
        raw = f.read(limits.MAX_TEXT)
    if len(raw) >= limits.MAX_TEXT:
        raise TraceError(str(path), 1, f"the trace is larger than {limits.MAX_TEXT - 1} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise TraceError(str(path), line, f"not UTF-8 text (byte {raw[e.start]:#04x})") from None
    return parse_trace(text, str(path))
