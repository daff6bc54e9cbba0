"""Directed mode ``weights`` (group ``envelope``): weighted-interleave weights.

Machines are those of :func:`~mempolicy.trace.fuzz.directed.campaign_machine`,
half of them with ``hmat`` lines (firmware bandwidths for some of the nodes
with memory, so auto weights differ from 1).  The program writes weights
(valid values and the kernel's refusals), switches ``auto``, reads
``weights``, and places pages with ``weighted_interleave`` VMA and task
policies between the writes, so that a change of weights mid-trace meets
faults, migration and a task's round robin.  Its mappings are private
(:class:`PrivateProgram`).
"""

from __future__ import annotations

import random

from mempolicy.trace.fuzz.directed import MACHINE_BLOCK, _nodes_with_memory, campaign_machine
from mempolicy.trace.fuzz.program import Program
from mempolicy.trace.parser import MMAP_BASE, MMAP_STRIDE

VALUES = ("1", "2", "3", "4", "5", "8", "16", "31", "255", "0x10", "07", "+2")
REFUSED = ("0", "256", "-1", "x", "3x", "0x", "08", "1000")
AUTO = ("0", "1", "y", "n", "on", "off", "true", "false", "maybe")
BANDWIDTHS = (1000, 2500, 5000, 10000, 12000, 20000, 30000, 40000, 64000, 100000)


def hmat_lines(rng: random.Random, header: list[str]) -> list[str]:
    """``hmat`` lines for some of the header's nodes with memory (none a quarter of the time).

    Drawn once per block of seeds like the machine: the traces of a block share
    a boot when there are bandwidths (the runner restores the auto weights
    after each trace), and boot one by one when there are none.
    """
    if rng.random() < 0.25:
        return []
    mem = sorted(_nodes_with_memory(header))
    chosen = [n for n in mem if rng.random() < 0.85] or mem[:1]
    return [f"hmat {n} bw={rng.choice(BANDWIDTHS)}" + (f" lat={rng.choice((80, 150, 300))}"
                                                        if rng.random() < 0.5 else "")
            for n in chosen]


class PrivateProgram(Program):
    """The general program with private anonymous mappings only.

    Shared memory interleaves by its inode number plus the page index, and
    the oracle only aligns inode numbers to a multiple of 2520: under weights
    whose sum does not divide 2520 its placement changes from run to run
    (trace-format.md 5.8), so this mode leaves it to the recorded traces.
    """

    def mmap(self) -> None:
        rng = self.rng
        name = self.name("M")
        pages = rng.choice((1, 2, 4, 8, 16, 32))
        addr = MMAP_BASE + self.nmmap * MMAP_STRIDE
        self.placed[name] = (addr, pages)
        self.nmmap += 1
        self.cmds.append(f"mmap {name} {pages}")
        self.maps[name] = pages
        self.scopes[-1].append(name)


def _weight(p: Program) -> None:
    rng = p.rng
    if rng.random() < 0.15:
        p.cmds.append(f"weight auto {rng.choice(AUTO)}")
        return
    node = rng.randint(0, p.n)          # node n has no file
    value = rng.choice(VALUES) if rng.random() < 0.85 else rng.choice(REFUSED)
    p.cmds.append(f"weight {node} {value}")


def _weighted_map(p: Program) -> str:
    """A new mapping with a weighted_interleave policy over some nodes."""
    p.mmap()
    m = list(p.maps)[-1]
    p.cmds.append(f"mbind {m} 0 {p.maps[m]} weighted_interleave {p.nodes(False)}")
    return m


def mode_weights(p: Program, header: list[str]) -> None:
    rng = p.rng
    if rng.random() < 0.3:
        p.set_mempolicy("weighted_interleave", p.nodes(False))
    for _ in range(rng.randint(12, 36)):
        r = rng.random()
        if r < 0.22:
            _weight(p)
        elif r < 0.30:
            p.cmds.append("weights")
        elif r < 0.45:
            m = _weighted_map(p)
            p.cmds.append(f"touch {m} 0 {p.maps[m]}")
        elif r < 0.52 and p.maps:
            m = rng.choice(list(p.maps))
            p.cmds.append(f"mbind {m} 0 {p.maps[m]} weighted_interleave {p.nodes(False)} move")
        elif r < 0.56:
            p.set_mempolicy("weighted_interleave", p.nodes(False))
        else:
            p.step()
    p.cmds.append("weights")


def generate_weights(seed: int) -> str:
    """The text of trace ``seed`` of mode ``weights``.

    >>> "weight" in generate_weights(3)
    True
    """
    header, n, ncpu = campaign_machine(random.Random(seed // MACHINE_BLOCK * 104729 + 17))
    header = header + hmat_lines(random.Random(f"weights-hmat:{seed // MACHINE_BLOCK}"), header)
    rng = random.Random(f"weights:{seed}")
    prog = PrivateProgram(rng, n, ncpu)
    mode_weights(prog, header)
    return "\n".join(header) + "\n" + prog.close() + "\n"
