"""The general random program of ``mempolicy trace fuzz`` (mode ``random``).

``generate_random(seed)`` writes one trace: a random machine (2 to 8 nodes,
memory-only nodes last as Linux numbers them, sometimes a node without
memory, random distances) and a random program over every command of the
format, biased towards calls that succeed and ending with a ``where`` and a
``numa_maps`` of every mapping.  Traces whose seeds share ``seed // 12`` share
a machine, so the oracle boots once per twelve traces.

The program never fills a node and keeps every fork paired with an exit.
It never forks inside a child: a fork nested two deep advances an interleave
task policy's round robin by an amount that changes from run to run on Linux
(docs/trace-format.md, section 4), and a child forking twice drains the LRU
batches or not from one run to the next.
It never reads the task's interleave round-robin (``get_mempolicy node``
without an address, or the raw call with ``MPOL_F_NODE`` alone) once a task
policy that may interleave met a ``fork`` or a CPU change: the kernel's slab
and fork allocations move that counter by amounts no trace controls
(docs/oracle.md, "Determinism").  The directed modes build on ``Program``.
"""

from __future__ import annotations

import random

MODES = ("default", "preferred", "bind", "interleave", "local", "preferred_many",
         "weighted_interleave")
FLAGS = ("static", "relative", "balancing")
MMAP_BASE = 0x200000000000
MMAP_STRIDE = 0x40000000
TRACES_PER_MACHINE = 12


def random_machine(rng: random.Random) -> tuple[list[str], int, int]:
    """Header lines, node count and CPU count."""
    n = rng.randint(2, 8)
    memory_only = rng.randint(0, min(2, n - 1))
    no_memory = rng.random() < 0.2 and n - memory_only >= 2
    lines = []
    ncpu = 0
    for i in range(n):
        cpus = 0 if i >= n - memory_only else rng.randint(1, 2)
        mem = "512M" if i == 0 else rng.choice(("128M", "192M", "256M"))
        if no_memory and i == 1 and cpus:
            mem = "0"
        lines.append(f"node {i} mem={mem} cpus={cpus}")
        ncpu += cpus
    if rng.random() < 0.7:
        for a in range(n):
            for b in range(a + 1, n):
                if rng.random() < 0.6:
                    d = rng.choice((12, 15, 17, 20, 21, 25, 30, 32, 40))
                    lines.append(f"distance {a} {b} {d}")
    return lines, n, ncpu


class Program:
    def __init__(self, rng: random.Random, n: int, ncpu: int) -> None:
        self.rng, self.n, self.ncpu = rng, n, ncpu
        self.cmds: list[str] = []
        self.maps: dict[str, int] = {}          # live mapping names -> pages
        self.placed: dict[str, tuple[int, int]] = {}
        self.memfds: list[str] = []
        self.scopes: list[list[str]] = [[]]
        self.serial = 0
        self.nmmap = 0
        self.may_interleave = False     # a task policy that may interleave was set
        self.counter_moved = False      # a fork or CPU change since then

    def name(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}{self.serial}"

    def nodes(self, allow_empty: bool = True) -> str:
        rng = self.rng
        if allow_empty and rng.random() < 0.1:
            return "-"
        pool = range(self.n + (1 if rng.random() < 0.03 else 0))
        return ",".join(map(str, sorted(rng.sample(pool, rng.randint(1, len(pool))))))

    def flags(self, weights: list[int]) -> str:
        return " ".join(self.rng.sample(FLAGS, self.rng.choice(weights)))

    def mmap(self) -> None:
        rng = self.rng
        name = self.name("M")
        pages = rng.choice((1, 2, 4, 8, 16, 32))
        extra = ""
        kind = rng.random()
        if kind < 0.2:
            extra = " shared"
        elif kind < 0.35 and self.memfds:
            extra = f" file={rng.choice(self.memfds)}"
            if rng.random() < 0.4:
                extra += f" off={rng.randint(0, 4)}"
            if rng.random() < 0.3:
                extra += " private"
        if rng.random() < 0.25 and self.placed:
            a0, p0 = self.placed[rng.choice(list(self.placed))]
            addr = rng.choice((a0 + p0 * 4096, a0 - pages * 4096, a0 + (p0 + 1) * 4096, a0))
            extra += f" @{addr:#x}"
        else:
            addr = MMAP_BASE + self.nmmap * MMAP_STRIDE
        self.placed[name] = (addr, pages)
        self.nmmap += 1
        self.cmds.append(f"mmap {name} {pages}{extra}")
        self.maps[name] = pages
        self.scopes[-1].append(name)

    def step(self) -> None:
        rng = self.rng
        r = rng.random()
        if not self.maps or r < 0.12:
            self.mmap()
            return
        m = rng.choice(list(self.maps))
        pages = self.maps[m]
        off = rng.randint(0, pages - 1)
        cnt = rng.randint(1, pages - off)
        c = self.cmds.append
        if r < 0.18:
            name = self.name("F")
            c(f"memfd {name} {rng.choice((4, 8, 16))}")
            self.memfds.append(name)
            self.scopes[-1].append(name)
        elif r < 0.30:
            mode = rng.choice(MODES)
            nl = "-" if mode in ("default", "local") else self.nodes(False)
            self.set_mempolicy(mode, nl, self.flags([0] * 8 + [1, 1, 2]))
        elif r < 0.45:
            mode = rng.choice(MODES)
            if mode in ("default", "local"):
                mf = " ".join(rng.sample(("strict", "move"), rng.choice((0, 1))))
                c(f"mbind {m} {off} {cnt} {mode} - {mf}".rstrip())
            else:
                mf = " ".join(rng.sample(("strict", "move", "move_all"), rng.choice((0, 0, 1, 1, 2))))
                words = [f"mbind {m} {off} {cnt} {mode} {self.nodes()}", self.flags([0] * 8 + [1]), mf]
                c(" ".join(w for w in words if w))
        elif r < 0.60:
            c(f"touch {m} {off} {cnt}" + (" read" if rng.random() < 0.25 else ""))
        elif r < 0.67:
            c(f"where {m} 0 {pages}")
        elif r < 0.72:
            c(f"numa_maps {m}")
        elif r < 0.76:
            words = [f"at={m}+{off}"] if rng.random() < 0.6 else []
            if rng.random() < 0.4 and (words or self.counter_ok()):
                words.append("node")
            if rng.random() < 0.1:
                words.append("mems_allowed")
            c(" ".join(["get_mempolicy"] + words))
        elif r < 0.79:
            c(f"home_node {m} {off} {cnt} {rng.randint(0, self.n)}")
        elif r < 0.82:
            c(f"move_pages {m} {off} {cnt} {rng.randint(0, self.n)}" + (" all" if rng.random() < 0.3 else ""))
        elif r < 0.84:
            c(f"migrate_pages {self.nodes(False)} {self.nodes(False)}")
        elif r < 0.87:
            self.cpu(rng.randint(0, self.ncpu))
        elif r < 0.89:
            c(f"mprotect {m} {off} {cnt} {rng.choice(('ro', 'rw'))}")
        elif r < 0.91:
            c(f"munmap {m} {off} {cnt}")
        elif r < 0.94 and len(self.scopes) == 1:       # never inside a child (see above)
            self.fork()
        elif r < 0.97 and len(self.scopes) > 1:
            self.exit()
        else:
            self.raw(m, off, cnt)

    def raw(self, m: str, off: int, cnt: int) -> None:
        rng, n = self.rng, self.n
        which = rng.random()
        mask = f"{rng.randint(0, (1 << n) - 1):#x}"
        if which < 0.33:
            mode = rng.choice((0, 1, 2, 3, 4, 5, 6, 7, 0x8002, 0x4003, 0x2002, 0x2003, 0xC001))
            maxnode = rng.choice((0, 1, 2, 3, 4, 5, 9, 65, 1025, 2000))
            self.cmds.append(f"raw set_mempolicy {mode} {mask} {maxnode}")
            self.may_interleave |= mode & 0xFF in (3, 6)
        elif which < 0.66:
            length = cnt * 4096 + rng.choice((0, 0, 1, -1))
            self.cmds.append(f"raw mbind {m} {off * 4096} {length} {rng.randint(0, 6)} {mask} "
                             f"{rng.choice((1, 2, 3, 65, 1025))} {rng.choice((0, 1, 2, 3, 4, 7, 8))}")
        else:
            bits = rng.choice(("null", 64, 128, 1024))
            maxnode = rng.choice((0, 1, 2, 3, 8, 64, 65, 1025, 4097, 40000))
            addr = rng.choice(("0", f"{m}+{off * 4096}"))
            flags = rng.randint(0, 5)
            if flags & 3 == 1 and not self.counter_ok():
                flags &= ~1
            self.cmds.append(f"raw get_mempolicy {bits} {maxnode} {addr} {flags}")

    def counter_ok(self) -> bool:
        """May the program read the task's interleave round-robin now?"""
        return not (self.may_interleave and self.counter_moved)

    def set_mempolicy(self, mode: str, nodes: str, flags: str = "") -> None:
        self.cmds.append(f"set_mempolicy {mode} {nodes} {flags}".rstrip())
        if mode in ("interleave", "weighted_interleave"):
            self.may_interleave = True
            self.counter_moved = False

    def cpu(self, c: int) -> None:
        self.cmds.append(f"cpu {c}")
        self.counter_moved = True

    def fork(self) -> None:
        self.cmds.append("fork")
        self.scopes.append([])
        self.counter_moved = True

    def close(self) -> str:
        """End every child, query every live mapping; the program's lines."""
        while len(self.scopes) > 1:
            self.exit()
        for m, pages in self.maps.items():
            self.cmds.append(f"where {m} 0 {pages}")
            self.cmds.append(f"numa_maps {m}")
        return "\n".join(self.cmds)

    def exit(self) -> None:
        self.cmds.append("exit")
        for name in self.scopes.pop():
            self.maps.pop(name, None)
            if name in self.memfds:
                self.memfds.remove(name)


def generate_random(seed: int) -> str:
    """The text of trace number ``seed`` of mode ``random``.

    >>> generate_random(0).startswith("node 0 ")
    True
    """
    header, n, ncpu = random_machine(random.Random(seed // TRACES_PER_MACHINE * 7919))
    prog = Program(random.Random(seed), n, ncpu)
    for _ in range(prog.rng.randint(12, 40)):
        prog.step()
    return "\n".join(header) + "\n" + prog.close() + "\n"
