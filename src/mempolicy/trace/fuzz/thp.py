"""The ``thp-fork`` fuzz mode: huge pages shared by ``fork``, split, and migrated again.

Mode ``thp`` (``directed.py``) keeps ``fork`` out and moves a huge page once
or twice; this mode aims at what it leaves: huge pages and huge zero PMDs
that a child shares (``copy_huge_pmd``), copy-on-write of one of their pages
in the child or in the parent, ``move_pages``/``migrate_pages``/``mbind``
with ``move`` or ``move_all`` on shared and on PTE-mapped huge pages (a
child acting on its parent with ``parent``), and repeated migration after
``mprotect``, ``madvise`` or ``munmap`` split a mapping (the deferred split of
``migrate_pages_batch``, which maps never-written pages to the zero page).

Not in the groups ``all`` or ``envelope`` (stored campaigns of those keep
their meaning).  No task policy is set: the interleave round robin across a
fork is exercised by mode ``fork``, and the huge pages here keep to VMA
policies.
"""

from __future__ import annotations

from mempolicy.trace.fuzz.directed import _mprotect_split, _policy, _thp_span, thp_mapping, thp_settings
from mempolicy.trace.fuzz.program import Program


def _parent(p: Program) -> str:
    """`` parent`` now and then inside a child: the call acts on the parent's memory."""
    return " parent" if len(p.scopes) > 1 and p.rng.random() < 0.4 else ""


def mode_thp_fork(p: Program, header: list[str]) -> None:
    """Huge pages faulted, then forks, writes, splits and migrations in parent and child."""
    rng = p.rng
    thp_settings(p, defrag=False)
    for _ in range(rng.randint(1, 2)):
        m = thp_mapping(p)
        if rng.random() < 0.5:                      # whole huge pages, every page written
            p.cmds.append(f"touch {m} 0 {p.maps[m]}")
        else:                                       # a few pages: the rest stays zeroes
            off, cnt = _thp_span(p, m)
            p.cmds.append(f"touch {m} {off} {min(cnt, 16)}" + (" read" if rng.random() < 0.3 else ""))
    for _ in range(rng.randint(14, 32)):
        r = rng.random()
        m = rng.choice(list(p.maps))
        off, cnt = _thp_span(p, m)
        in_child = len(p.scopes) > 1
        if r < 0.20:
            p.cmds.append(f"touch {m} {off} {min(cnt, 16)}" + (" read" if rng.random() < 0.2 else ""))
        elif r < 0.27:
            _mprotect_split(p, m, off, cnt)
        elif r < 0.31:
            p.cmds.append(f"madvise {m} {off} {cnt} {rng.choice(('hugepage', 'nohugepage'))}")
        elif r < 0.43:
            node = rng.randint(0, p.n - 1)
            flag = " all" if rng.random() < 0.4 else ""
            p.cmds.append(f"move_pages {m} {off} {min(cnt, 8)} {node}{flag}{_parent(p)}")
        elif r < 0.49:
            p.cmds.append(f"migrate_pages {p.nodes(False)} {p.nodes(False)}{_parent(p)}")
        elif r < 0.57:
            words = f"mbind {m} {off} {cnt} {_policy(p)}"
            if rng.random() < 0.7:
                words += " " + rng.choice(("move", "move_all"))
            p.cmds.append(words)
        elif r < 0.61:
            p.cmds.append(f"munmap {m} {off} {min(cnt, 8)}")
        elif r < 0.71 and not in_child:
            p.fork()
        elif r < 0.79 and in_child:
            p.exit()
        elif r < 0.90:
            p.cmds.append(f"where {m} {off} {min(cnt, 16)}{_parent(p)}")
        else:
            p.cmds.append(f"numa_maps {m}")


MODES = {
    "thp-fork": mode_thp_fork,
}
