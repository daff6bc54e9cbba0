"""Directed trace generators: programs that aim at the risky parts of the model.

Each mode is a function ``(rng, machine) -> Program`` that fills a
:class:`~mempolicy.trace.fuzz.program.Program`; :func:`generate` picks the
machine and closes the program (children exit, every live mapping is
queried with ``where`` and ``numa_maps``).

- ``fork``: VMAs split and merged (``mbind``, ``mprotect``, ``munmap``, maps
  placed next to each other) around ``fork``/``exit``, copy-on-write in the
  parent and in the child, nested forks.
- ``shared``: memfds and anonymous shared memory mapped several times, with
  offsets, privately, in children; shared policies set through one mapping
  and used through another.
- ``fill``: one node filled past its size under ``preferred`` (or a two-node
  ``bind``), then small mappings placed by every mode while it is full.
  Only pages far from the point where the node ran out are asked about,
  since how many pages fit is not exact (README, known differences).
- ``migrate``: ``mbind ... move``/``move_all``, ``move_pages`` (``all``) and
  ``migrate_pages`` on pages shared after ``fork``.
- ``raw``: the raw calls with odd lengths, masks, ``maxnode`` values, flags.
- ``long``: the general program of mode ``random``, 100 to 250 steps.

The envelope modes (group ``envelope``, not in ``all``, whose stored campaigns
must keep their meaning):

- ``thp``: transparent huge pages (``thp``, ``madvise``, faults, splits and
  migrations of 2 MiB pages).

Machines come from :func:`campaign_machine`: 2 to 8 nodes, at most four
CPUs (TCG runs a host thread per CPU, and boots slow down with each), often
memory-only nodes (always from the fifth node on) and a node without memory.  Traces whose seeds share ``seed // MACHINE_BLOCK`` share a machine
whatever their mode, so a campaign boots once per block.
"""

from __future__ import annotations

import random

from mempolicy.trace.fuzz.program import MODES, Program

MACHINE_BLOCK = 24
POLICY_MODES = MODES


def campaign_machine(rng: random.Random) -> tuple[list[str], int, int]:
    """Header lines, node count and CPU count of a campaign machine.

    >>> campaign_machine(random.Random(1))[1] >= 2
    True
    """
    n = rng.choice((2, 2, 3, 4, 4, 5, 6, 8))
    memory_only = max(rng.randint(0, min(2, n - 1)), n - 4)     # at most four nodes with CPUs
    with_cpus = n - memory_only
    memoryless = 1 if with_cpus >= 2 and rng.random() < 0.35 else 0
    cpus_left = 4
    lines = []
    ncpu = 0
    for i in range(n):
        cpus = 0
        if i < with_cpus:
            # every node with CPUs gets one; the first few get a second
            room = cpus_left - (with_cpus - i - 1)
            cpus = 1 if room <= 1 or rng.random() < 0.6 else 2
            cpus = max(1, min(cpus, room)) if room >= 1 else 0
            cpus_left -= cpus
        mem = "512M" if i == 0 else rng.choice(("128M", "128M", "192M", "256M"))
        if memoryless and i == 1:
            mem = "0"
        lines.append(f"node {i} mem={mem} cpus={cpus}")
        ncpu += cpus
    if rng.random() < 0.7:
        for a in range(n):
            for b in range(a + 1, n):
                if rng.random() < 0.6:
                    lines.append(f"distance {a} {b} {rng.choice((12, 15, 17, 20, 21, 25, 30, 32, 40))}")
    return lines, n, ncpu


def _nodes_with_memory(header: list[str]) -> dict[int, int]:
    """Node -> pages, for the nodes of HEADER that have memory."""
    out = {}
    for line in header:
        w = line.split()
        if w[0] == "node":
            mem = w[2][4:]
            pages = 0 if mem == "0" else int(mem[:-1]) << 8      # M -> pages
            if pages:
                out[int(w[1])] = pages
    return out


def _policy(p: Program, allow_empty: bool = False) -> str:
    mode = p.rng.choice(POLICY_MODES)
    if mode in ("default", "local"):
        return f"{mode} -"
    return f"{mode} {p.nodes(allow_empty)}"


def _adjacent_mmap(p: Program, pages: int, extra: str = "") -> str:
    """A mapping placed right after (or before) a live one, so that VMAs can merge."""
    rng = p.rng
    name = p.name("M")
    live = [m for m in p.maps if m in p.placed]
    if live and rng.random() < 0.7:
        a0, p0 = p.placed[rng.choice(live)]
        addr = a0 + p0 * 4096 if rng.random() < 0.7 else a0 - pages * 4096
        return _mmap_at(p, name, pages, addr, f"{extra} @{addr:#x}")
    return _mmap_at(p, name, pages, 0x200000000000 + p.nmmap * 0x40000000, extra)


def _mmap_at(p: Program, name: str, pages: int, addr: int, words: str) -> str:
    """``mmap NAME PAGES WORDS``, known to land at ADDR; the program's bookkeeping."""
    p.cmds.append(f"mmap {name} {pages}{words}")
    p.placed[name] = (addr, pages)
    p.nmmap += 1
    p.maps[name] = pages
    p.scopes[-1].append(name)
    return name


def _mprotect_split(p: Program, m: str, off: int, cnt: int) -> None:
    """A split by ``mprotect``, and often the same range made equal again (a merge attempt)."""
    p.cmds.append(f"mprotect {m} {off} {cnt} ro")
    if p.rng.random() < 0.7:
        p.cmds.append(f"mprotect {m} {off} {cnt} rw")


def _span(p: Program, m: str) -> tuple[int, int]:
    pages = p.maps[m]
    off = p.rng.randint(0, pages - 1)
    return off, p.rng.randint(1, pages - off)


def mode_fork(p: Program, header: list[str]) -> None:
    rng = p.rng
    for _ in range(rng.randint(1, 3)):
        _adjacent_mmap(p, rng.choice((2, 4, 8, 16)))
    for _ in range(rng.randint(15, 45)):
        r = rng.random()
        m = rng.choice(list(p.maps)) if p.maps else None
        if m is None or r < 0.12:
            _adjacent_mmap(p, rng.choice((1, 2, 4, 8)))
            continue
        off, cnt = _span(p, m)
        if r < 0.30:
            p.cmds.append(f"touch {m} {off} {cnt}" + (" read" if rng.random() < 0.2 else ""))
        elif r < 0.42:
            # often back to the default policy, which lets split VMAs merge again
            pol = "default -" if rng.random() < 0.4 else _policy(p)
            p.cmds.append(f"mbind {m} {off} {cnt} {pol}")
        elif r < 0.50:
            _mprotect_split(p, m, off, cnt)
        elif r < 0.55:
            p.cmds.append(f"munmap {m} {off} {cnt}")
        elif r < 0.67 and len(p.scopes) < 2:  # never inside a child (program.py)
            p.fork()
            if rng.random() < 0.5:
                # a neighbour without an anon_vma next to a VMA the child inherited
                n = _adjacent_mmap(p, rng.choice((1, 2, 4)))
                if rng.random() < 0.5:
                    p.cmds.append(f"touch {n} 0 1")
                p.cmds.append(f"numa_maps {n}")
        elif r < 0.77 and len(p.scopes) > 1:
            p.exit()
        elif r < 0.85:
            p.cmds.append(f"where {m} 0 {p.maps[m]}")
        elif r < 0.92:
            p.cmds.append(f"numa_maps {m}")
        elif r < 0.96:
            p.set_mempolicy(*_policy(p).split())
        else:
            p.cmds.append(f"get_mempolicy at={m}+{off}" + (" node" if rng.random() < 0.5 else ""))


def mode_shared(p: Program, header: list[str]) -> None:
    rng = p.rng
    files: dict[str, int] = {}
    for _ in range(rng.randint(1, 3)):
        f = p.name("F")
        files[f] = rng.choice((4, 8, 16))
        p.cmds.append(f"memfd {f} {files[f]}")
        p.memfds.append(f)
        p.scopes[-1].append(f)
    for _ in range(rng.randint(15, 40)):
        r = rng.random()
        live_files = [f for f in p.memfds if f in files]
        if not p.maps or r < 0.25:
            if live_files and rng.random() < 0.75:
                f = rng.choice(live_files)
                off = rng.randint(0, files[f] - 1)
                pages = rng.randint(1, files[f] - off)
                extra = f" file={f}" + (f" off={off}" if off else "")
                if rng.random() < 0.2:
                    extra += " private"
                name = p.name("M")
                addr = 0x200000000000 + p.nmmap * 0x40000000
                p.cmds.append(f"mmap {name} {pages}{extra}")
                p.placed[name] = (addr, pages)
                p.nmmap += 1
                p.maps[name] = pages
                p.scopes[-1].append(name)
            else:
                _adjacent_mmap(p, rng.choice((2, 4, 8)), " shared")
            continue
        m = rng.choice(list(p.maps))
        off, cnt = _span(p, m)
        if r < 0.45:
            p.cmds.append(f"touch {m} {off} {cnt}" + (" read" if rng.random() < 0.45 else ""))
        elif r < 0.58:
            words = f"mbind {m} {off} {cnt} {_policy(p)}"
            if rng.random() < 0.3:
                words += " " + rng.choice(("strict", "move", "strict move", "move_all"))
            p.cmds.append(words)
        elif r < 0.66:
            p.cmds.append(f"where {m} 0 {p.maps[m]}")
        elif r < 0.73:
            p.cmds.append(f"numa_maps {m}")
        elif r < 0.78:
            p.cmds.append(f"get_mempolicy at={m}+{off}" + (" node" if rng.random() < 0.4 else ""))
        elif r < 0.85 and len(p.scopes) < 2:  # never inside a child (program.py)
            p.fork()
        elif r < 0.92 and len(p.scopes) > 1:
            p.exit()
        elif r < 0.95:
            f = p.name("F")
            files[f] = rng.choice((2, 4, 8))
            p.cmds.append(f"memfd {f} {files[f]}")
            p.memfds.append(f)
            p.scopes[-1].append(f)
        elif r < 0.97:
            p.set_mempolicy(*_policy(p).split())
        else:
            p.cmds.append(f"munmap {m} {off} {cnt}")


def mode_fill(p: Program, header: list[str]) -> None:
    rng = p.rng
    mem = _nodes_with_memory(header)
    if len(mem) < 2:
        mode_fork(p, header)
        return
    # fill the smallest node that has memory (node 0 only when nothing else is smaller)
    target = min(mem, key=lambda n: (mem[n], -n))
    others = [n for n in mem if n != target]
    fill = mem[target] * 6 // 5                   # 20% past the node's size
    if sum(mem[n] for n in others) < mem[target] // 2:
        mode_fork(p, header)
        return
    how = rng.random()
    if how < 0.7 or not others:
        p.set_mempolicy("preferred", str(target))
    else:
        pair = sorted((target, rng.choice(others)))
        p.set_mempolicy("bind", ",".join(map(str, pair)))
    filler = p.name("A")
    p.cmds.append(f"mmap {filler} {fill}")
    p.placed[filler] = (0x200000000000 + p.nmmap * 0x40000000, fill)
    p.nmmap += 1
    p.cmds.append(f"touch {filler} 0 {fill}")
    margin = mem[target] // 10
    p.cmds.append(f"where {filler} 0 8")
    p.cmds.append(f"where {filler} {fill - 8} 8")
    if rng.random() < 0.5:
        p.set_mempolicy("default", "-")
    for _ in range(rng.randint(3, 10)):
        name = p.name("B")
        pages = rng.choice((4, 8, 16))
        p.cmds.append(f"mmap {name} {pages}")
        p.placed[name] = (0x200000000000 + p.nmmap * 0x40000000, pages)
        p.nmmap += 1
        p.maps[name] = pages
        p.scopes[-1].append(name)
        nodes = sorted(set(rng.sample(sorted(mem), rng.randint(1, len(mem)))) | {target})
        mode = rng.choice(("preferred", "bind", "interleave", "preferred_many", "weighted_interleave"))
        if mode == "preferred":
            nodes = [target]
        if mode == "bind" and nodes == [target]:
            nodes = sorted({target, rng.choice(others)})
        p.cmds.append(f"mbind {name} 0 {pages} {mode} {','.join(map(str, nodes))}")
        if rng.random() < 0.3 and p.ncpu > 1:
            p.cpu(rng.randint(0, p.ncpu - 1))
        p.cmds.append(f"touch {name} 0 {pages}")
        p.cmds.append(f"where {name} 0 {pages}")
    if rng.random() < 0.5:
        p.cmds.append(f"munmap {filler} 0 {fill - margin}")
        name = p.name("C")
        p.cmds.append(f"mmap {name} 8")
        p.nmmap += 1
        p.maps[name] = 8
        p.scopes[-1].append(name)
        p.cmds.append(f"mbind {name} 0 8 preferred {target}")
        p.cmds.append(f"touch {name} 0 8")


def mode_migrate(p: Program, header: list[str]) -> None:
    rng = p.rng
    for _ in range(rng.randint(1, 3)):
        name = p.name("M")
        pages = rng.choice((4, 8, 16))
        extra = " shared" if rng.random() < 0.25 else ""
        p.cmds.append(f"mmap {name} {pages}{extra}")
        p.placed[name] = (0x200000000000 + p.nmmap * 0x40000000, pages)
        p.nmmap += 1
        p.maps[name] = pages
        p.scopes[-1].append(name)
        if rng.random() < 0.5:
            p.cmds.append(f"mbind {name} 0 {pages} {_policy(p)}")
        p.cmds.append(f"touch {name} 0 {pages}")
    for _ in range(rng.randint(10, 30)):
        r = rng.random()
        m = rng.choice(list(p.maps))
        off, cnt = _span(p, m)
        node = rng.randint(0, p.n - 1 if rng.random() < 0.95 else p.n)
        if r < 0.15 and len(p.scopes) < 2:  # never inside a child (program.py)
            p.fork()
            if rng.random() < 0.6:
                p.cmds.append(f"touch {m} {off} {cnt}" + (" read" if rng.random() < 0.4 else ""))
        elif r < 0.25 and len(p.scopes) > 1:
            p.exit()
        elif r < 0.40:
            flags = rng.choice(("move", "move", "move_all", "strict move", "strict move_all", "strict"))
            p.cmds.append(f"mbind {m} {off} {cnt} {_policy(p)} {flags}")
        elif r < 0.55:
            p.cmds.append(f"move_pages {m} {off} {cnt} {node}" + (" all" if rng.random() < 0.4 else ""))
        elif r < 0.65:
            p.cmds.append(f"migrate_pages {p.nodes(False)} {p.nodes(False)}")
        elif r < 0.75:
            p.cmds.append(f"touch {m} {off} {cnt}" + (" read" if rng.random() < 0.3 else ""))
        elif r < 0.88:
            p.cmds.append(f"where {m} 0 {p.maps[m]}")
        elif r < 0.95:
            p.cmds.append(f"numa_maps {m}")
        else:
            p.cmds.append(f"get_mempolicy at={m}+{off}")


def mode_raw(p: Program, header: list[str]) -> None:
    rng = p.rng
    for _ in range(rng.randint(1, 2)):
        _adjacent_mmap(p, rng.choice((4, 8, 16)))
    masks = ("null", "0x0", "0x1", f"{(1 << p.n) - 1:#x}", f"{1 << p.n:#x}", "0xffffffffffffffff",
             "0x1,0x1", "0x0,0x1", f"{rng.randint(0, (1 << p.n) - 1):#x}")
    maxnodes = (0, 1, 2, p.n, p.n + 1, 63, 64, 65, 128, 1024, 1025, 1026, 4096, 4097, 40000,
                0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF)
    modes = (0, 1, 2, 3, 4, 5, 6, 7, 8, 0x8000, 0x4000, 0x2000, 0x8001, 0x8002, 0x4002, 0x8003, 0x4003,
             0xC003, 0x2001, 0x2002, 0x2003, 0x2005, 0x8005, 0x4006, 0x8006, 0xFFFF, 0x10002)
    for _ in range(rng.randint(10, 35)):
        r = rng.random()
        m = rng.choice(list(p.maps))
        pages = p.maps[m]
        if r < 0.3:
            mode = rng.choice(modes)
            p.cmds.append(f"raw set_mempolicy {mode} {rng.choice(masks)} {rng.choice(maxnodes)}")
            p.may_interleave |= mode & 0xFF in (3, 6)
        elif r < 0.6:
            start = rng.choice((0, 0, 4096, 1, 4095, pages * 4096, (pages - 1) * 4096))
            length = rng.choice((0, 1, 4096, 4097, pages * 4096, pages * 4096 + 1, (pages + 1) * 4096,
                                 0xFFFFFFFFFFFFF000, 0xFFFFFFFFFFFFFFFF))
            if start + length > 0xFFFFFFFFFFFFFFFF:
                length = pages * 4096
            flags = rng.choice((0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0x10, 0x80000000))
            p.cmds.append(f"raw mbind {m} {start} {length} {rng.choice(modes)} {rng.choice(masks)} "
                          f"{rng.choice(maxnodes)} {flags}")
        elif r < 0.85:
            bits = rng.choice(("null", 64, 128, 192, 1024, 2048))
            addr = rng.choice(("0", f"{m}+0", f"{m}+{rng.randint(0, pages * 4096 - 1)}",
                               f"{m}+{pages * 4096}"))
            flags = rng.choice((0, 1, 2, 3, 4, 5, 6, 7, 8, 0x10))
            if flags & 3 == 1 and not p.counter_ok():
                flags &= ~1
            p.cmds.append(f"raw get_mempolicy {bits} {rng.choice(maxnodes)} {addr} {flags}")
        elif r < 0.93:
            p.cmds.append(f"touch {m} 0 {pages}" + (" read" if rng.random() < 0.3 else ""))
        elif r < 0.97:
            p.cmds.append(f"get_mempolicy at={m}+0")
        else:
            p.cmds.append(f"where {m} 0 {pages}")


def mode_long(p: Program, header: list[str]) -> None:
    for _ in range(p.rng.randint(100, 250)):
        p.step()


DIRECTED = {
    "fork": mode_fork,
    "shared": mode_shared,
    "fill": mode_fill,
    "migrate": mode_migrate,
    "raw": mode_raw,
    "long": mode_long,
}


# -- the envelope modes (issue 11): not part of ``all`` -------------------------------

def _thp_mmap(p: Program) -> str:
    """A private mapping of 1 to 4 huge pages' worth, often not a multiple of 512 pages,
    sometimes starting 1 MiB into a 2 MiB range."""
    rng = p.rng
    name = p.name("H")
    pages = rng.choice((512, 1024, 1024, 1536, 2048, 700, 1300))
    addr = 0x200000000000 + p.nmmap * 0x40000000
    if rng.random() < 0.25:
        addr += 256 * 4096
        return _mmap_at(p, name, pages, addr, f" @{addr:#x}")
    return _mmap_at(p, name, pages, addr, "")


def thp_settings(p: Program, defrag: bool) -> None:
    """``thp enabled`` (mostly ``always``), sometimes ``defrag`` (with DEFRAG) and
    ``use_zero_page 0``."""
    rng = p.rng
    p.cmds.append(f"thp enabled {rng.choice(('always', 'always', 'madvise'))}")
    if defrag and rng.random() < 0.3:
        p.cmds.append(f"thp defrag {rng.choice(('always', 'defer', 'defer+madvise', 'madvise', 'never'))}")
    if rng.random() < 0.2:
        p.cmds.append("thp use_zero_page 0")


def thp_mapping(p: Program) -> str:
    """A new mapping (``_thp_mmap``), half the time with ``hugepage`` advice."""
    m = _thp_mmap(p)
    if p.rng.random() < 0.5:
        p.cmds.append(f"madvise {m} 0 {p.maps[m]} hugepage")
    return m


def _thp_span(p: Program, m: str) -> tuple[int, int]:
    """A range of ``m``: often whole 2 MiB ranges, sometimes a few pages inside one."""
    rng = p.rng
    pages = p.maps[m]
    if rng.random() < 0.5:
        off = rng.randrange(0, pages, 512) if pages > 512 else 0
        return off, min(pages - off, 512 * rng.randint(1, 2))
    off = rng.randint(0, pages - 1)
    return off, rng.randint(1, min(16, pages - off))


def mode_thp(p: Program, header: list[str]) -> None:
    """Transparent huge pages (trace format 5.9): ``thp`` settings, ``madvise``, faults in
    and around 2 MiB ranges, splits by ``mbind``/``mprotect``/``munmap``, and the
    migration of huge pages.  No ``fork`` (not modelled with huge pages) and no node
    filled.  Only a few pages are moved at a time, so the output stays short."""
    rng = p.rng
    thp_settings(p, defrag=True)
    for _ in range(rng.randint(1, 3)):
        thp_mapping(p)
    for _ in range(rng.randint(12, 30)):
        r = rng.random()
        live = list(p.maps)
        if r < 0.06 and len(live) < 4:
            _thp_mmap(p)
            continue
        m = rng.choice(live)
        off, cnt = _thp_span(p, m)
        if r < 0.30:
            p.cmds.append(f"touch {m} {off} {cnt}" + (" read" if rng.random() < 0.2 else ""))
        elif r < 0.40:
            p.cmds.append(f"madvise {m} {off} {cnt} {rng.choice(('hugepage', 'nohugepage'))}")
        elif r < 0.52:
            words = f"mbind {m} {off} {cnt} {_policy(p)}"
            if rng.random() < 0.4:
                words += " " + rng.choice(("move", "move", "strict move", "move_all"))
            p.cmds.append(words)
        elif r < 0.57:
            _mprotect_split(p, m, off, cnt)
        elif r < 0.60:
            p.cmds.append(f"munmap {m} {off} {min(cnt, 8)}")
        elif r < 0.68:
            node = rng.randint(0, p.n - 1)
            p.cmds.append(f"move_pages {m} {off} {min(cnt, 8)} {node}")
        elif r < 0.72:
            p.cmds.append(f"migrate_pages {p.nodes(False)} {p.nodes(False)}")
        elif r < 0.80:
            p.cmds.append(f"where {m} {off} {min(cnt, 8)}")
        elif r < 0.88:
            p.cmds.append(f"numa_maps {m}")
        elif r < 0.92:
            pol = _policy(p)
            p.set_mempolicy(*pol.split())
        elif r < 0.95:
            p.cmds.append(f"get_mempolicy at={m}+{off}" + (" node" if rng.random() < 0.5 else ""))
        elif r < 0.98:
            p.cmds.append(f"thp enabled {rng.choice(('always', 'madvise', 'never'))}")
        elif p.ncpu > 1:
            p.cpu(rng.randint(0, p.ncpu - 1))


ENVELOPE = {
    "thp": mode_thp,
}


def generate(mode: str, seed: int, table: dict | None = None) -> str:
    """The text of trace ``seed`` of directed mode MODE (a key of ``table``, by
    default ``DIRECTED``).

    >>> generate("fork", 3).startswith("node 0 mem=512M")
    True
    """
    header, n, ncpu = campaign_machine(random.Random(seed // MACHINE_BLOCK * 104729 + 17))
    rng = random.Random(f"{mode}:{seed}")
    prog = Program(rng, n, ncpu)
    (DIRECTED if table is None else table)[mode](prog, header)
    return "\n".join(header) + "\n" + prog.close() + "\n"
