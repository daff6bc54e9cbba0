"""Directed modes ``threads`` and ``cpusets`` (trace format 1.3, section 5.7).

- ``threads``: threads created before and after ``set_mempolicy``, switched
  between, pinned to CPUs, ending; each sets task and VMA policies, faults
  and moves pages; ``get_mempolicy`` per thread.
- ``cpusets``: the process (and its threads) moved into a cgroup v2 cpuset,
  ``cpuset.mems`` changed under plain, ``static`` and ``relative`` task and
  VMA policies, with pages placed before and after each change.

These modes belong to the group ``envelope``, not to ``all``.  They read the
interleave round robin (``get_mempolicy node``) only in a thread whose
``set_mempolicy`` came after its last ``thread`` or ``cpuset`` command,
since those make kernel allocations the trace does not control.
"""

from __future__ import annotations

from mempolicy.trace.fuzz.directed import _policy, _span
from mempolicy.trace.fuzz.program import Program

MAX_THREADS = 6
FLAG_CHOICES = ("", "", "", " static", " relative")


def _mmap(p: Program, pages: int, shared: bool = False) -> str:
    name = p.name("M")
    p.cmds.append(f"mmap {name} {pages}" + (" shared" if shared else ""))
    p.placed[name] = (0x200000000000 + p.nmmap * 0x40000000, pages)
    p.nmmap += 1
    p.maps[name] = pages
    p.scopes[-1].append(name)
    return name


class _Threads:
    """The live threads of a generated program, the current one and what each may read."""

    def __init__(self, p: Program) -> None:
        self.p = p
        self.live = ["main"]
        self.cur = "main"
        self.counter_ok: dict[str, bool] = {"main": False}
        self.serial = 0

    def create(self) -> None:
        if len(self.live) >= MAX_THREADS or self.serial >= 20:
            return
        self.serial += 1
        name = f"T{self.serial}"
        self.p.cmds.append(f"thread {name}")
        self.live.append(name)
        for t in self.live:                          # clone allocates under the creator's policy
            self.counter_ok[t] = False

    def switch(self) -> None:
        t = self.p.rng.choice(self.live)
        self.p.cmds.append(f"switch {t}")
        self.cur = t

    def end(self) -> None:
        others = [t for t in self.live if t not in ("main", self.cur)]
        if others:
            t = self.p.rng.choice(others)
            self.p.cmds.append(f"thread_exit {t}")
            self.live.remove(t)

    def set_policy(self) -> None:
        rng = self.p.rng
        pol = _policy(self.p)
        if pol.split()[1] != "-":
            pol += rng.choice(FLAG_CHOICES)
        self.p.cmds.append(f"set_mempolicy {pol}")
        self.counter_ok[self.cur] = pol.startswith("interleave")


def _step(p: Program, th: _Threads, nodes_ok: str | None = None) -> None:
    """One command of a thread program: policy, fault, query or move."""
    rng = p.rng
    r = rng.random()
    m = rng.choice(list(p.maps))
    off, cnt = _span(p, m)
    c = p.cmds.append
    if r < 0.10:
        th.create()
    elif r < 0.25:
        th.switch()
    elif r < 0.29:
        th.end()
    elif r < 0.38:
        th.set_policy()
    elif r < 0.46:
        c(f"mbind {m} {off} {cnt} {_policy(p)}" + (" move" if rng.random() < 0.3 else ""))
    elif r < 0.60:
        c(f"touch {m} {off} {cnt}" + (" read" if rng.random() < 0.2 else ""))
        th.counter_ok[th.cur] = False
    elif r < 0.66:
        c(f"cpu {rng.randint(0, p.ncpu - 1)}")
        th.counter_ok[th.cur] = False
    elif r < 0.74:
        c("get_mempolicy")
    elif r < 0.78:
        c("get_mempolicy node" if th.counter_ok[th.cur] else "get_mempolicy mems_allowed")
    elif r < 0.84:
        c(f"where {m} 0 {p.maps[m]}")
    elif r < 0.88:
        c(f"numa_maps {m}")
    elif r < 0.93:
        c(f"move_pages {m} {off} {cnt} {rng.randint(0, p.n - 1)}")
    else:
        c(f"get_mempolicy at={m}+{off}")


def mode_threads(p: Program, header: list[str]) -> None:
    rng = p.rng
    th = _Threads(p)
    for _ in range(rng.randint(1, 3)):
        _mmap(p, rng.choice((4, 8, 16)), shared=rng.random() < 0.2)
    for _ in range(rng.randint(1, 3)):
        if rng.random() < 0.5:
            th.set_policy()
        th.create()
    for _ in range(rng.randint(15, 45)):
        _step(p, th)


def _mems(p: Program, memory: list[int]) -> str:
    """A non-empty list of nodes with memory (rarely one without, or beyond the machine)."""
    rng = p.rng
    pool = list(memory)
    if rng.random() < 0.05:
        pool = list(range(p.n + 1))
    picked = sorted(rng.sample(pool, rng.randint(1, len(pool))))
    return ",".join(map(str, picked))


def mode_cpusets(p: Program, header: list[str]) -> None:
    from mempolicy.trace.fuzz.directed import _nodes_with_memory
    rng = p.rng
    memory = sorted(_nodes_with_memory(header))
    th = _Threads(p)
    for _ in range(rng.randint(1, 3)):
        name = _mmap(p, rng.choice((4, 8, 16)))
        if rng.random() < 0.6:
            mode = rng.choice(("bind", "interleave", "preferred", "preferred_many"))
            c_flags = rng.choice(FLAG_CHOICES)
            p.cmds.append(f"mbind {name} 0 {p.maps[name]} {mode} {p.nodes(False)}{c_flags}")
        if rng.random() < 0.7:
            p.cmds.append(f"touch {name} 0 {p.maps[name]}")
    if rng.random() < 0.6:
        th.set_policy()
    if rng.random() < 0.4:
        th.create()
    for _ in range(rng.randint(2, 5)):
        words = [f"mems={_mems(p, memory)}"]
        if rng.random() < 0.15:
            cpus = sorted(rng.sample(range(p.ncpu), rng.randint(1, p.ncpu)))
            words.append("cpus=" + ",".join(map(str, cpus)))
        p.cmds.append("cpuset " + " ".join(words))
        for t in th.live:
            th.counter_ok[t] = False
        for _ in range(rng.randint(2, 8)):
            _step(p, th)
        for m in p.maps:
            if rng.random() < 0.5:
                p.cmds.append(f"where {m} 0 {p.maps[m]}")


ENVELOPE = {
    "threads": mode_threads,
    "cpusets": mode_cpusets,
}
