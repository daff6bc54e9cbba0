"""Directed mode ``migrate-full`` (in no group): migration into a node that is full.

The program fills a target node past its size under ``preferred`` (the
pages past its low watermark fall back to other nodes), sometimes unmaps a
known number of the filler's first pages to leave room, and then migrates
private pages into the target with ``move_pages`` (with and without
``all``), ``migrate_pages`` and ``mbind ... move``/``move_all``/``strict``,
from the process and from a child that shares the pages after ``fork``.
Targets are nodes with memory other than node 0 (often memory-only);
a node without memory appears as a refused destination.

How many pages a full node still takes is not exact: a migration target
page may come from below the low watermark (``__GFP_THISNODE`` allocations
reach the min watermark in the slow path), from a per-CPU list, or from
pages freed since.  The generator therefore keeps, for the target, a room
interval ``[room, room + SLACK]`` and, per page, its node when it is
certain (``OTHER``: certain and not the target; ``None``: not certain).  A
migration into the target is written only when it surely fits (every page
moves) or surely does not (the call fails with ``ENOMEM`` in mm/migrate.c
``migrate_pages_batch``, and only pages the walk never reached are asked
about); ``where`` and ``numa_maps`` ask only about pages whose node is
certain.  Mappings whose policy may allocate on the target are never written
again (a fault under ``bind`` to a full node would call the OOM killer).
Forks are never nested (docs/trace-format.md section 4).
"""

from __future__ import annotations

import random

from mempolicy.trace.fuzz.directed import (MACHINE_BLOCK, _nodes_with_memory, campaign_machine,
                                           mode_migrate)
from mempolicy.trace.fuzz.program import Program
from mempolicy.trace.parser import MMAP_BASE, MMAP_STRIDE

OTHER = -1            # a page's node is certain and is not the target
SLACK = 1024          # pages a full target may still take (watermark gap, per-CPU lists)
CHUNK = 256           # ranges are whole chunks of this many pages
MARGIN = 256          # room left unused by a migration that must fit
EXTRA_FILL = 2048     # filled this far past the target's size


class _Page:
    """A private page: its node (``OTHER``, ``None``), how many processes map it, and
    whether it is still exclusive to one (``PageAnonExclusive``, cleared by fork)."""

    __slots__ = ("node", "maps", "excl")

    def __init__(self, node: int | None) -> None:
        self.node, self.maps, self.excl = node, 1, True


class _State:
    """What the generator knows of the target, the pages and the processes."""

    def __init__(self, p: Program, target: int, sources: list[int], memoryless: list[int]) -> None:
        self.p, self.t = p, target
        self.sources, self.memoryless = sources, memoryless
        self.room, self.slack = 0, SLACK
        self.tight = True                   # at the low watermark for certain (nothing freed)
        self.views: list[dict[str, list[_Page]]] = [{}]   # parent, then the child
        self.home: dict[str, int] = {}      # mapping -> the node of its bind policy
        self.frozen: set[str] = set()       # policy may allocate on the target: no more writes
        self.order: list[str] = []          # mappings in address order

    @property
    def view(self) -> dict[str, list[_Page]]:
        return self.views[-1]

    def on_target(self, pg: _Page) -> bool | None:
        """Is the page on the target: True, False, or None (not certain)."""
        if pg.node is None:
            return None
        return pg.node == self.t

    def consume(self, lo: int, hi: int) -> str | None:
        """A migration needing between LO and HI target pages: 'fits', 'fails' or None.

        Room made by unmapping K of the target's pages does not always take K
        migrated pages on Linux 7.3 (campaign seed 960000: a move of exactly K pages
        failed in one run of three), so a move fits only well inside it."""
        if hi == 0 or hi + max(MARGIN, self.room // 2) <= self.room:
            return "fits"
        if lo > self.room + self.slack:
            return "fails"
        return None

    def moved(self, pages: list[_Page], outcome: str, node: int | None) -> None:
        """Pages queued in walk order moved (fits) or the first ones maybe moved (fails)."""
        if outcome == "fits":
            for pg in pages:
                pg.node = node
            self.room -= len(pages)
            return
        for pg in pages[:self.room + self.slack]:
            pg.node = None
        self.room = 0

    def freed(self, pg: _Page) -> None:
        """The last mapping of a page went: its node gets it back."""
        if pg.node == self.t:
            self.room += 1
            self.tight = False
        elif pg.node is None:
            self.slack += 1
            self.tight = False


def _range(p: Program, pages: int) -> tuple[int, int]:
    chunks = pages // CHUNK
    a = p.rng.randrange(chunks)
    b = p.rng.randint(a + 1, chunks)
    return a * CHUNK, (b - a) * CHUNK


def _write(s: _State, m: str, off: int, cnt: int) -> None:
    """``touch`` (write).  A page mapped twice is copied to the mapping's bind node
    (do_wp_page); one that fork shared and only this process maps any more is
    reused or copied (``wp_can_reuse_anon_folio``, the LRU batches): its node
    stays certain only when both ends are."""
    view = s.view[m]
    home = s.home[m]
    for i in range(off, off + cnt):
        pg = view[i]
        if pg.maps > 1:
            pg.maps -= 1
            view[i] = _Page(home)
        elif not pg.excl:
            if pg.node is None or pg.node == s.t:
                s.slack += 1                    # the old page may be freed on the target
                s.tight = False
                pg.node = None
            elif pg.node != home:
                pg.node = OTHER
            pg.excl = True
    s.p.cmds.append(f"touch {m} {off} {cnt}")


def _where(s: _State, m: str, rng: random.Random) -> None:
    """``where`` over a run of pages whose node is certain (at most 64 pages)."""
    view = s.view[m]
    runs, start = [], None
    for i, pg in enumerate(view + [None]):
        ok = pg is not None and pg.node is not None
        if ok and start is None:
            start = i
        elif not ok and start is not None:
            runs.append((start, i))
            start = None
    if not runs:
        return
    a, b = rng.choice(runs)
    cnt = min(b - a, rng.choice((8, 16, 64)))
    off = rng.choice((a, b - cnt))
    s.p.cmds.append(f"where {m} {off} {cnt}")


def _move_pages(s: _State, m: str, rng: random.Random) -> None:
    off, cnt = _range(s.p, len(s.view[m]))
    alls = rng.random() < 0.4
    if s.memoryless and rng.random() < 0.1:
        s.p.cmds.append(f"move_pages {m} {off} {cnt} {rng.choice(s.memoryless)}" + (" all" if alls else ""))
        return
    pages = s.view[m][off:off + cnt]
    queued = [pg for pg in pages if (alls or pg.maps == 1) and s.on_target(pg) is not True]
    lo = sum(1 for pg in queued if s.on_target(pg) is False)
    outcome = s.consume(lo, len(queued))
    if outcome is None or (outcome == "fits" and any(pg.node is None for pg in pages)):
        return                          # a page maybe on the target prints its node or EACCES
    s.p.cmds.append(f"move_pages {m} {off} {cnt} {s.t}" + (" all" if alls else ""))
    s.moved(queued, outcome, s.t)


def _migrate_pages(s: _State, rng: random.Random) -> None:
    """``migrate_pages SRC TARGET``: only when it surely fails (the runner's own pages
    and the filler's on SRC add an unknown number)."""
    if s.memoryless and rng.random() < 0.15:
        s.p.cmds.append(f"migrate_pages {rng.choice(s.sources)} {rng.choice(s.memoryless)}")
        return
    src = rng.choice(s.sources)
    walk = [pg for m in s.order if m in s.view for pg in s.view[m]
            if pg.node in (src, None, OTHER)]
    lo = sum(1 for m in s.order if m in s.view for pg in s.view[m] if pg.node == src and pg.maps == 1)
    if s.consume(lo, 1 << 40) != "fails":
        return
    s.p.cmds.append(f"migrate_pages {src} {s.t}")
    s.moved(walk, "fails", s.t)


def _mbind_move(s: _State, m: str, rng: random.Random) -> None:
    off, cnt = _range(s.p, len(s.view[m]))
    flag = rng.choice(("move", "move", "move_all", "strict move", "strict move_all"))
    alls = "move_all" in flag
    pages = s.view[m][off:off + cnt]
    other = rng.choice([n for n in s.sources])
    kind = rng.random()
    if kind < 0.55 or not s.tight:
        # bind to the target alone: no fallback, as move_pages
        queued = [pg for pg in pages if (alls or pg.maps == 1) and s.on_target(pg) is not True]
        lo = sum(1 for pg in queued if s.on_target(pg) is False)
        outcome = s.consume(lo, len(queued))
        if outcome is None:
            return
        s.p.cmds.append(f"mbind {m} {off} {cnt} bind {s.t} {flag}")
        s.moved(queued, outcome, s.t)
    else:
        # the target is at its low watermark: every page meant for it falls back
        # (the fast path of alloc_pages_mpol tries the next node of the zonelist)
        # (not preferred_many: its first try stays in the nodemask and takes pages
        # below the low watermark, as many as a run leaves there)
        pol = rng.choice((f"preferred {s.t}",
                          f"interleave {','.join(map(str, sorted({s.t, other})))}",
                          f"weighted_interleave {','.join(map(str, sorted({s.t, other})))}"))
        s.p.cmds.append(f"mbind {m} {off} {cnt} {pol} {flag}")
        for pg in pages:
            if (alls or pg.maps == 1) and pg.node is not None and pg.node != s.t:
                pg.node = OTHER
    s.frozen.add(m)


def _fork(s: _State) -> None:
    child = {}
    for m, view in s.view.items():
        for pg in view:
            pg.maps += 1
            pg.excl = False
        child[m] = list(view)
    s.views.append(child)
    s.p.fork()


def _exit(s: _State) -> None:
    for view in s.views.pop().values():
        for pg in view:
            pg.maps -= 1
            if pg.maps == 0:
                s.freed(pg)
    s.p.exit()


def mode_migrate_full(p: Program, header: list[str]) -> None:
    rng = p.rng
    mem = _nodes_with_memory(header)
    targets = [n for n in mem if n != 0]
    if not targets:
        mode_migrate(p, header)
        return
    t = rng.choice(targets)
    sources = [n for n in mem if n != t]
    memoryless = [int(w.split()[1]) for w in header if w.startswith("node ") and " mem=0 " in w]
    s = _State(p, t, sources, memoryless)
    for _ in range(rng.randint(1, 3)):
        name = p.name("M")
        pages = rng.choice((2, 4, 6, 8)) * CHUNK
        home = rng.choice(sources)
        p.cmds.append(f"mmap {name} {pages}")
        p.cmds.append(f"mbind {name} 0 {pages} bind {home}")
        p.cmds.append(f"touch {name} 0 {pages}")
        p.placed[name] = (MMAP_BASE + p.nmmap * MMAP_STRIDE, pages)
        p.nmmap += 1
        s.view[name] = [_Page(home) for _ in range(pages)]
        s.home[name] = home
        s.order.append(name)
    fill = mem[t] + EXTRA_FILL
    p.set_mempolicy("preferred", str(t))
    p.cmds.append(f"mmap A {fill}")
    p.cmds.append(f"touch A 0 {fill}")
    p.set_mempolicy("default", "-")
    p.cmds.append("where A 0 8")
    p.cmds.append(f"where A {fill - 8} 8")
    if rng.random() < 0.4:
        room = rng.choice((256, 512, 1024, 2048))
        p.cmds.append(f"munmap A 0 {room}")
        s.room, s.tight = room, False
    mappings = list(s.order)
    for _ in range(rng.randint(8, 20)):
        r = rng.random()
        m = rng.choice(mappings)
        if r < 0.12 and len(s.views) == 1:
            _fork(s)
        elif r < 0.20 and len(s.views) > 1:
            _exit(s)
        elif r < 0.30 and m not in s.frozen:
            _write(s, m, *_range(p, len(s.view[m])))
        elif r < 0.50:
            _move_pages(s, m, rng)
        elif r < 0.62:
            _migrate_pages(s, rng)
        elif r < 0.77:
            _mbind_move(s, m, rng)
        elif r < 0.92:
            _where(s, m, rng)
        elif all(pg.node is not None for pg in s.view[m]):
            p.cmds.append(f"numa_maps {m}")
    for _ in range(10):                     # at least one migration into the target
        if any(c.split()[0] in ("move_pages", "migrate_pages") or " move" in c for c in p.cmds):
            break
        _move_pages(s, rng.choice(mappings), rng)
    while len(s.views) > 1:
        _exit(s)
    for m in mappings:
        _where(s, m, rng)


def generate_migrate_full(seed: int) -> str:
    """The text of trace ``seed`` of mode ``migrate-full``.

    >>> "touch A 0" in generate_migrate_full(3)
    True
    """
    header, n, ncpu = campaign_machine(random.Random(seed // MACHINE_BLOCK * 104729 + 17))
    rng = random.Random(f"migrate-full:{seed}")
    prog = Program(rng, n, ncpu)
    mode_migrate_full(prog, header)
    return "\n".join(header) + "\n" + "\n".join(prog.cmds) + "\n"
