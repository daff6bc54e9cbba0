"""Random valid traces, for hunting differences between the model and Linux.

``generate(seed, mode)`` writes one trace.  Mode ``random`` (the default) is
the general program of :mod:`.program`; the directed modes of
:mod:`.directed` aim at the risky parts (fork, shared memory, full nodes,
migration, raw calls, long traces); :mod:`.migrate_full` (mode
``migrate-full``, in no group) migrates into a full node.  Every trace parses, and none holds a
command whose kernel result is known not to repeat.

    mempolicy trace fuzz --seed 0 --count 48 --out DIR
    mempolicy trace fuzz --mode fork,shared --count 24 --out DIR
    mempolicy trace diff DIR/*.trace
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mempolicy.trace.fuzz.directed import DIRECTED
from mempolicy.trace.fuzz.directed import ENVELOPE as THP_TABLE
from mempolicy.trace.fuzz.directed import generate as generate_directed
from mempolicy.trace.fuzz.migrate_full import generate_migrate_full
from mempolicy.trace.fuzz.program import generate_random
from mempolicy.trace.fuzz.thp import MODES as THP_MORE_TABLE
from mempolicy.trace.fuzz.threads import ENVELOPE as THREADS_TABLE
from mempolicy.trace.fuzz.weights import generate_weights

__all__ = ["FUZZ_MODES", "DIRECTED_MODES", "ENVELOPE_MODES", "generate", "trace_name",
           "parse_modes", "main"]

DIRECTED_MODES = tuple(DIRECTED)
# The modes of trace format 1.3's new commands (issue 11's envelope: threads,
# cpusets, weights, THP): the group ``envelope``, kept out of ``all`` so that
# campaigns recorded with ``all`` keep their meaning.  Each is a generator of one seed.
ENVELOPE = {**{m: (lambda seed, m=m: generate_directed(m, seed, THREADS_TABLE)) for m in THREADS_TABLE},
            "weights": generate_weights,
            **{m: (lambda seed, m=m: generate_directed(m, seed, THP_TABLE)) for m in THP_TABLE}}
ENVELOPE_MODES = tuple(ENVELOPE)
# Modes in no group (named on their own, so that no stored campaign changes).
SINGLE = {"migrate-full": generate_migrate_full,
          **{m: (lambda seed, m=m: generate_directed(m, seed, THP_MORE_TABLE)) for m in THP_MORE_TABLE}}
FUZZ_MODES = ("random",) + DIRECTED_MODES + ENVELOPE_MODES + tuple(SINGLE)
GROUPS = {"all": DIRECTED_MODES, "envelope": ENVELOPE_MODES}


def generate(seed: int, mode: str = "random") -> str:
    """The text of trace number SEED of MODE (one of ``FUZZ_MODES``).

    >>> generate(5, "raw").count("raw ") > 0
    True
    """
    if mode == "random":
        return generate_random(seed)
    if mode in ENVELOPE:
        return ENVELOPE[mode](seed)
    if mode in SINGLE:
        return SINGLE[mode](seed)
    if mode not in DIRECTED:
        raise ValueError(f"unknown fuzz mode {mode!r} (modes: {', '.join(FUZZ_MODES)})")
    return generate_directed(mode, seed)


def trace_name(seed: int, mode: str = "random") -> str:
    """File stem of a generated trace: ``f0042`` (random) or ``fork-00042``."""
    return f"f{seed:04d}" if mode == "random" else f"{mode}-{seed:05d}"


def parse_modes(text: str) -> list[str]:
    """``fork,shared`` -> ``["fork", "shared"]``; ``all`` is every directed mode of
    trace format 1.2, ``envelope`` those of the 1.3 commands (threads, cpusets,
    weights, THP).

    >>> parse_modes("all") == list(DIRECTED_MODES)
    True
    >>> "thp" in parse_modes("envelope")
    True
    >>> "thp-fork" in parse_modes("envelope") + parse_modes("all")
    False
    """
    modes: list[str] = []
    for word in text.split(","):
        word = word.strip()
        add = list(GROUPS.get(word, [word]))
        for m in add:
            if m not in FUZZ_MODES:
                raise ValueError(f"unknown mode {m!r} (modes: {', '.join(FUZZ_MODES)}, "
                                 f"{', '.join(GROUPS)})")
            if m not in modes:
                modes.append(m)
    if not modes:
        raise ValueError("no mode given")
    return modes


def plan(seed: int, count: int, modes: list[str]) -> list[tuple[int, str]]:
    """(seed, mode) of each trace: seeds SEED.. in turn over MODES.

    >>> plan(10, 3, ["fork", "raw"])
    [(10, 'fork'), (11, 'raw'), (12, 'fork')]
    """
    return [(s, modes[(s - seed) % len(modes)]) for s in range(seed, seed + count)]


def main(argv: list[str]) -> int:
    """``mempolicy trace fuzz [--seed S] [--count N] [--mode M] [--out DIR]``."""
    p = argparse.ArgumentParser(prog="mempolicy trace fuzz",
                                description="Write random valid traces (for trace record / trace diff).")
    p.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--count", type=int, default=12, help="how many traces (default 12)")
    p.add_argument("--mode", default="random",
                   help=f"generator, or several joined by commas, taken in turn: {', '.join(FUZZ_MODES)}, "
                        "all (every directed mode) or envelope (threads, cpusets, weights, "
                        "thp); thp-fork and migrate-full (migration into a full node) are in "
                        "no group; default random")
    p.add_argument("--out", default=".", help="directory to write the .trace files into")
    args = p.parse_args(argv)
    try:
        modes = parse_modes(args.mode)
    except ValueError as e:
        print(f"mempolicy trace fuzz: {e}", file=sys.stderr)
        return 2
    if args.count < 0 or args.seed < 0:
        print("mempolicy trace fuzz: --seed and --count must not be negative", file=sys.stderr)
        return 2
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for s, mode in plan(args.seed, args.count, modes):
            (out / f"{trace_name(s, mode)}.trace").write_text(generate(s, mode))
    except OSError as e:
        print(f"mempolicy trace fuzz: {args.out}: {e.strerror}", file=sys.stderr)
        return 2
    print(f"wrote {args.count} traces to {out}")
    return 0



