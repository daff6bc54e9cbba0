"""Scenario files: a concurrent program for ``mempolicy check``, one file per scenario.

A scenario file declares the tasks, a start state, and a block of trace
commands per task (the commands and their syntax are the trace format's,
parsed by ``mempolicy.trace.parser``; see docs/trace-format.md), plus a few
commands only a concurrent program needs.  ``docs/checker.md`` describes it::

    about  Two threads: one faults while the other mbind()s the mapping.
    process T1 cpu=0
    thread  T2 of=T1 cpu=1

    setup T1
        mmap A 4
        mbind A 0 4 bind 0

    task T1
        touch A 0 2
    task T2
        mbind A 0 4 bind 1

A mistake in a file raises ``ScenarioError`` with ``FILE:LINE: message``.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mempolicy.trace.parser import _Names, _nodes, _parse_command  # one grammar for both
from mempolicy.uapi import MPOL_MF_MOVE, MPOL_MF_MOVE_ALL, MPOL_MF_STRICT

from .world import World

SUFFIX = ".scenario"


class ScenarioError(ValueError):
    """A mistake in a scenario file, reported as ``FILE:LINE: message``."""

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")
        self.path, self.line, self.message = path, line, message


@dataclass(frozen=True)
class Scenario:
    """A parsed scenario: its name, text (kept for replays) and what to build."""

    name: str
    doc: str
    text: str
    path: str
    small: bool = True
    nodes: int = 2

    def build(self, protocol: str = "current", track_sites: bool = True) -> World:
        """The start state on a fresh model kernel, with each task's program
        (``track_sites``: the policy cache records where each policy was allocated and
        freed, for the sanitizer's reports)."""
        w = World(protocol, nodes=self.nodes, track_sites=track_sites)
        for kind, args in _steps(self)[0]:
            getattr(w, kind)(*args)
        for task, ops in _steps(self)[1]:
            w.program(task, ops)
        w.started()
        return w


_CACHE: dict[tuple[str, str], tuple] = {}


def _steps(sc: Scenario) -> tuple:
    key = (sc.path, sc.text)
    got = _CACHE.get(key)
    if got is None:
        got = _CACHE[key] = _compile(sc.text, sc.path)[1:]
    return got


def _kv(words: list[str], allowed: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for w in words:
        k, eq, v = w.partition("=")
        if not eq or k not in allowed or k in out:
            raise ValueError(f"unexpected word {w!r}")
        out[k] = v
    return out


def _int(tok: str, what: str) -> int:
    if not tok.isdigit():
        raise ValueError(f"bad {what} {tok!r}")
    return int(tok)


def _compile(text: str, path: str):
    """(header, build steps, programs) of a scenario's text; ValueError on a mistake."""
    header = {"name": Path(path).name.removesuffix(SUFFIX), "about": [], "small": True, "nodes": 2}
    names = _Names()
    st = {"mmaps": 0}
    tasks: dict[str, str] = {}              # task -> its process (for threads) or itself
    build: list[tuple[str, tuple]] = []
    programs: dict[str, list] = {}
    forks: dict[str, list] = {}              # child -> the fork op (its ops filled in later)
    block = None                             # ("setup"|"task", name)
    for lineno, raw in enumerate(text.split("\n"), 1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        word, rest = words[0], words[1:]
        try:
            if word == "about":
                header["about"].append(" ".join(rest))
            elif word == "scenario":
                if len(rest) != 1:
                    raise ValueError("scenario takes one name")
                header["name"] = rest[0]
            elif word == "large":
                if rest:
                    raise ValueError(f"unexpected word {rest[0]!r}")
                header["small"] = False
            elif word == "machine":
                header["nodes"] = _int(_kv(rest, ("nodes",)).get("nodes", "2"), "node count")
                if not 1 <= header["nodes"] <= 8:
                    raise ValueError("machine nodes= must be 1 to 8")
            elif word == "process" or word == "thread" and block is None:
                if block is not None:
                    raise ValueError(f"{word} after the first setup or task block")
                if not rest or rest[0] in tasks:
                    raise ValueError(f"{word} needs a new task name")
                kv = _kv(rest[1:], ("cpu", "of") if word == "thread" else ("cpu",))
                cpu = _int(kv.get("cpu", "0"), "cpu")
                if cpu >= header["nodes"]:
                    raise ValueError(f"cpu {cpu}: the machine has {header['nodes']} CPUs")
                if word == "thread":
                    if kv.get("of") not in tasks:
                        raise ValueError("thread needs of=PROCESS naming an earlier task")
                    build.append(("thread", (rest[0], kv["of"], cpu)))
                    tasks[rest[0]] = tasks[kv["of"]]
                else:
                    build.append(("process", (rest[0], cpu)))
                    tasks[rest[0]] = rest[0]
            elif word in ("setup", "task"):
                if len(rest) != 1:
                    raise ValueError(f"{word} takes one task name")
                name = rest[0]
                if name not in tasks and not (word == "task" and name in forks):
                    raise ValueError(f"unknown task {name!r}")
                if word == "task" and (name in programs or (name in forks and forks[name][2])):
                    raise ValueError(f"task {name} already has a program")
                block = (word, name)
                if word == "task" and name not in forks:
                    programs[name] = []
            elif block is None:
                if word == "memfd":
                    _, a = _parse_command(word, rest, names, st)
                    build.append(("memfd", (a["name"], a["pages"])))
                else:
                    raise ValueError(f"{word!r} outside a setup or task block")
            else:
                ops = _ops(word, rest, names, st, tasks, forks, block[1])
                if block[0] == "setup":
                    for op in ops:
                        if op[0] in ("fork", "thread", "exit"):
                            raise ValueError(f"{word} in a setup block")
                        if op[0] in ("_mmap", "_mmap_at"):
                            build.append((op[0][1:], op[1:]))
                        else:
                            build.append(("do", (block[1], op)))
                elif any(op[0] == "_mmap_at" for op in ops):
                    raise ValueError("mmap after= only in a setup block")
                elif block[1] in forks:
                    forks[block[1]][2].extend(ops)
                else:
                    programs[block[1]].extend(ops)
        except ValueError as e:
            raise ScenarioError(path, lineno, str(e)) from None
    if not programs:
        raise ScenarioError(path, 1, "no task block: a scenario needs at least one task")
    progs = [(t, [(o if o[0] != "_mmap" else ("mmap",) + o[2:]) for o in ops])
             for t, ops in programs.items()]
    return header, build, progs


def _ops(word: str, rest: list[str], names, st, tasks, forks, me: str) -> list[tuple]:
    """World operations for one command of a setup or task block."""
    if word == "numa_maps" and len(rest) == 1 and rest[0] in tasks:
        return [("numa_maps", rest[0])]
    if word in ("fork", "thread"):     # in a task block: the new task's program is its own block
        if len(rest) != 1 or rest[0] in tasks or rest[0] in forks:
            raise ValueError(f"{word} takes the new {'child' if word == 'fork' else 'thread'}'s"
                             " task name")
        op = (word, rest[0], [])
        forks[rest[0]] = op
        tasks[rest[0]] = rest[0] if word == "fork" else tasks[me]
        return [op]
    if word == "exit":
        if rest:
            raise ValueError(f"unexpected word {rest[0]!r}")
        return [("exit",)]
    if word == "cpuset":
        if len(rest) < 2 or any(t not in tasks for t in rest[1:]):
            raise ValueError("cpuset takes NODES and the tasks it moves")
        return [("cpuset", rest[1:], list(_nodes(rest[0])))]
    if word == "expect":
        if len(rest) != 2:
            raise ValueError("expect takes at=MAP+OFF or task, and the policy text")
        if rest[0] == "task":
            return [("expect", None, None, rest[1])]
        if not rest[0].startswith("at="):
            raise ValueError("expect takes at=MAP+OFF or task")
        name, plus, off = rest[0][3:].partition("+")
        names.need(name, "map")
        return [("expect", name, _int(off, "offset") if plus else 0, rest[1])]
    after = None
    if word == "mmap":
        after = next((w[6:] for w in rest if w.startswith("after=")), None)
        rest = [w for w in rest if not w.startswith("after=")]
        if after is not None:
            names.need(after, "map")
    word, a = _parse_command(word, rest, names, st)
    if word == "mmap":
        if a["off"] or a["shared"] and a["file"] is None:
            raise ValueError("the checker maps anonymous memory or a whole memfd")
        if after is not None:
            if a["private"]:
                raise ValueError("after= maps shared memory only")
            return [("_mmap_at", me, a["name"], after, a["pages"], a["file"])]
        return [("_mmap", me, a["name"], a["pages"], a["file"], False, 0, a["private"])]
    if word == "touch":
        return [("fault", a["name"], a["off"] + i, not a["read"]) for i in range(a["pages"])]
    if word == "mbind":
        flags = (MPOL_MF_STRICT if a["strict"] else 0) | (MPOL_MF_MOVE if a["move"] else 0) \
            | (MPOL_MF_MOVE_ALL if a["move_all"] else 0)
        return [("mbind", a["name"], a["off"], a["pages"], a["mode"], list(a["nodes"]), flags,
                 a["mode_flags"])]
    if word == "set_mempolicy":
        return [("set_mempolicy", a["mode"] | a["mode_flags"], list(a["nodes"]))]
    if word == "get_mempolicy":
        if a["mems_allowed"]:
            raise ValueError("the checker does not run get_mempolicy mems_allowed")
        if a["at"] is None:
            if a["node"]:
                raise ValueError("get_mempolicy node needs at=MAP+OFF here")
            return [("get_mempolicy",)]
        return [("get_node" if a["node"] else "get_mempolicy",) + tuple(a["at"])]
    if word == "home_node":
        return [("home_node", a["name"], a["off"], a["pages"], a["node"])]
    if word == "munmap":
        return [("munmap", a["name"], a["off"], a["pages"])]
    if word == "madvise":
        return [("madvise", a["name"], a["off"], a["pages"], a["advice"] == "hugepage")]
    if word == "mprotect":
        return [("mprotect", a["name"], a["off"], a["pages"], a["prot"] == "rw")]
    if word == "move_pages":
        return [("move_pages", a["name"], a["off"] + i, a["node"]) for i in range(a["pages"])]
    if word == "migrate_pages":
        return [("migrate_pages", me, list(a["from"]), list(a["to"]))]
    raise ValueError(f"{word!r} is not supported in a scenario")


def parse(text: str, path: str = "<scenario>") -> Scenario:
    """Parse a scenario file's text; ScenarioError on the first mistake."""
    header, _build, _progs = _compile(text, path)
    return Scenario(header["name"], " ".join(header["about"]), text, path, header["small"],
                    header["nodes"])


def load(path: str) -> Scenario:
    """Read and parse a scenario file (ScenarioError for an unreadable file too)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ScenarioError(path, 0, e.strerror or str(e)) from None
    except UnicodeDecodeError:
        raise ScenarioError(path, 1, "not UTF-8 text") from None
    return parse(text, path)


def catalogue() -> dict[str, Scenario]:
    """The scenarios shipped with the package (``mempolicy/check/catalogue/*.scenario``)."""
    out = {}
    root = resources.files("mempolicy.check").joinpath("catalogue")
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(SUFFIX):
            sc = parse(entry.read_text(encoding="utf-8"), "catalogue/" + entry.name)
            out[sc.name] = sc
    return out
