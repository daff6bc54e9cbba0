"""``/proc/<pid>/numa_maps`` parsed into records (fs/proc/task_mmu.c ``show_numa_map``).

A line is ``ADDRESS POLICY [file=PATH|heap|stack|huge] [anon=N] [dirty=N]
[mapped=N] [mapmax=N] [swapcache=N] [active=N] [writeback=N] [N<node>=<pages>...]
[kernelpagesize_kB=N]``.  The policy is ``mpol_to_str``'s text, which may hold
a space (``prefer (many)``, ``weighted interleave``); ``file=`` paths have
their whitespace, ``=`` and backslash escaped as ``\\ooo``.

The same parser reads the model's numa_maps (:mod:`mempolicy.proc.task_mmu`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mempolicy.core.nodemask import Nodemask

__all__ = ["NumaMapsRecord", "parse_numa_maps", "parse_numa_maps_line", "read_numa_maps",
           "unescape_path", "POLICY_NAMES"]

# mpol_to_str's names (mm/mempolicy.c policy_modes[]).
POLICY_NAMES = ("default", "prefer (many)", "prefer", "bind", "weighted interleave",
                "interleave", "local", "unknown")

_LINE = re.compile(
    r"(?P<addr>[0-9a-fA-F]+) "
    r"(?P<mode>weighted interleave|prefer \(many\)|[a-z]+)"
    r"(?:=(?P<flags>[a-z|]+))?"
    r"(?::(?P<nodes>[0-9,-]*))?"
    r"(?: (?P<rest>.*))?$")

_COUNTERS = ("anon", "dirty", "mapped", "mapmax", "swapcache", "active", "writeback")


def unescape_path(s: str) -> str:
    """Undo seq_path's ``\\ooo`` escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


@dataclass
class NumaMapsRecord:
    """One VMA of numa_maps."""

    address: int
    policy: str                                   # as printed: "interleave=static:0-3"
    mode: str                                     # "interleave", "prefer (many)", ...
    flags: tuple[str, ...] = ()                   # ("static",), ("balancing",), ...
    policy_nodes: Nodemask = field(default_factory=Nodemask)
    file: str | None = None
    kind: str | None = None                       # "heap", "stack" or "huge"
    anon: int = 0
    dirty: int = 0
    mapped: int = 0
    mapmax: int = 0
    swapcache: int = 0
    active: int | None = None
    writeback: int = 0
    pages: dict[int, int] = field(default_factory=dict)   # node -> resident pages
    kernelpagesize_kB: int | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def total_pages(self) -> int:
        return sum(self.pages.values())

    def bytes_on(self, node: int) -> int:
        return self.pages.get(node, 0) * (self.kernelpagesize_kB or 4) * 1024


def parse_numa_maps_line(line: str) -> NumaMapsRecord:
    m = _LINE.match(line.rstrip("\n"))
    if not m:
        raise ValueError(f"not a numa_maps line: {line!r}")
    rec = NumaMapsRecord(int(m.group("addr"), 16), "", m.group("mode"))
    if m.group("flags"):
        rec.flags = tuple(m.group("flags").split("|"))
    if m.group("nodes"):
        rec.policy_nodes = Nodemask(_parse_ids(m.group("nodes")))
    rest = m.group("rest") or ""
    pol_end = m.end("nodes") if m.group("nodes") is not None else (
        m.end("flags") if m.group("flags") else m.end("mode"))
    rec.policy = line[m.end("addr") + 1: pol_end]
    for tok in rest.split():
        key, eq, val = tok.partition("=")
        if not eq:
            if key in ("heap", "stack", "huge"):
                rec.kind = key
            else:
                rec.extra[key] = ""
        elif key == "file":
            rec.file = unescape_path(val)
        elif key in _COUNTERS and val.isdigit():
            setattr(rec, key, int(val))
        elif key == "kernelpagesize_kB" and val.isdigit():
            rec.kernelpagesize_kB = int(val)
        elif re.fullmatch(r"N\d+", key) and val.isdigit():
            rec.pages[int(key[1:])] = int(val)
        else:
            rec.extra[key] = val
    return rec


def _parse_ids(text: str) -> list[int]:
    out: list[int] = []
    for item in text.split(","):
        if not item:
            continue
        a, _, b = item.partition("-")
        out.extend(range(int(a), int(b or a) + 1))
    return out


def parse_numa_maps(text: str) -> list[NumaMapsRecord]:
    """Every line of a numa_maps file."""
    return [parse_numa_maps_line(line) for line in text.splitlines() if line.strip()]


def read_numa_maps(pid: int | str = "self") -> list[NumaMapsRecord]:
    """``/proc/<pid>/numa_maps`` of a live process."""
    with open(f"/proc/{pid}/numa_maps", encoding="utf-8", errors="surrogateescape") as f:
        return parse_numa_maps(f.read())
