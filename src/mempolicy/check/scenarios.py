"""The scenario catalogue: short concurrent programs on a small NUMA machine.

Each scenario is a file (``catalogue/NAME.scenario``, format in
``mempolicy.check.scenario_file`` and docs/checker.md) that builds its start
state with the correct kernel, then gives two to four model tasks a program
each.  Threads of one process share an mm (and its mmap_lock); processes
share a memfd (and its shared policy, whose tree lock is the only lock they
have in common).  Small scenarios are explored exhaustively within the
preemption bound; ``large`` ones also get seeded PCT runs.
"""

from __future__ import annotations

from .scenario_file import Scenario, catalogue, load

CATALOGUE: dict[str, Scenario] = catalogue()

__all__ = ["CATALOGUE", "Scenario", "load"]
