"""Generated hwloc synthetic strings, read by the model and by hwloc's own lstopo.

Used by tests/test_hwloc_inputs.py, and runnable for the figures::

    PYTHONPATH=src python3 tests/hwloc_agreement.py --count 1000 --seed 1

A string is *agreed* when both refuse it, or both accept it with the same
NUMA nodes (OS index, memory, cpuset) and the same PUs.  hwloc accepting a
string the model refuses is allowed only for the model's documented limits
(its message says "the model takes"); those are counted apart.
"""

from __future__ import annotations

import random
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from mempolicy.linux.hwloc import TopologyError  # noqa: E402
from mempolicy.linux.hwloc_synthetic import parse_synthetic  # noqa: E402
from mempolicy.linux.hwloc_xml import parse_bitmap  # noqa: E402

_TYPES = {
    "package": ["pack", "package", "Package", "socket", "PACK", "pa"],
    "numa": ["numa", "NUMANode", "node", "nu", "Numa"],
    "die": ["die", "Die"],
    "core": ["core", "Core", "co"],
    "cache": ["l1", "l2", "l3", "L3Cache", "l1i", "l2d", "L2u", "l1cache", "l4", "l5"],
    "group": ["group", "group1", "Group0", "gr", "Tile", "Module"],
}
_UNITS = ["", "kB", "KiB", "kiB", "MB", "MiB", "mb", "GB", "GiB", "gib", "TB", "TiB", "Kb"]
_BAD_TYPES = ["gpu", "misc", "machine", "bridge", "pcidev", "os", "memcache", "tile", "x", "l6", "l4i",
              "packages", "n", "system", "cores"]


def _count(rng: random.Random, n: int) -> str:
    r = rng.random()
    if r < 0.08:
        return hex(n)
    if r < 0.12 and n >= 8:
        return "0" + oct(n)[2:]
    return str(n)


def _size(rng: random.Random) -> str:
    v = rng.choice([0, 1, 3, 4, 16, 64, 100, 512, 1000, 4096, 2 ** 20, 123456789])
    unit = rng.choice(_UNITS)
    num = hex(v) if rng.random() < 0.1 else str(v)
    return num + unit


def _indexes(rng: random.Random, width: int, above: list[str]) -> str:
    r = rng.random()
    if r < 0.5:
        ids = list(range(width))
        rng.shuffle(ids)
        return ",".join(map(str, ids))
    if r < 0.7 and above:
        types = above[:]
        rng.shuffle(types)
        return ":".join(types[:rng.randint(1, len(types))])
    if r < 0.85:
        a = rng.choice([d for d in range(1, width + 1) if width % d == 0])
        return f"{width // a}*{a}:1*{width // a}" if rng.random() < 0.7 else f"{a}*{width // a}"
    return ",".join(str(rng.randrange(width * 2)) for _ in range(rng.randint(1, width + 1)))


def generate(rng: random.Random) -> str:
    """One synthetic string: mostly well formed, sometimes mutated into a mistake."""
    kinds = ["package", "numa", "die", "core", "cache", "group"]
    depth = rng.randint(0, 4)
    chosen = sorted(rng.sample(kinds, depth), key=kinds.index) if rng.random() < 0.85 else \
        [rng.choice(kinds) for _ in range(depth)]
    bare = rng.random() < 0.12
    attached = not bare and "numa" not in chosen and rng.random() < 0.35
    parts: list[str] = []
    width = 1
    above: list[str] = []
    budget = 64
    for k in chosen + ["pu"]:
        n = rng.randint(1, max(1, min(4, budget // max(width, 1))))
        width *= n
        name = "pu" if k == "pu" else rng.choice(_TYPES[k])
        tok = _count(rng, n) if bare else f"{name}:{_count(rng, n)}"
        attrs = []
        if rng.random() < 0.3:
            attrs.append(("size=" if k == "cache" else "memory=") + _size(rng))
        if rng.random() < 0.2:
            attrs.append("indexes=" + _indexes(rng, width, above))
        if attrs and not bare:
            tok += "(" + " ".join(attrs) + ")"
        parts.append(tok)
        if k != "pu" and not bare:
            above.append(name)
        if attached and k != "pu" and rng.random() < 0.5:
            for _ in range(rng.randint(1, 2)):
                parts.append("[numa(memory=" + _size(rng) + ")]" if rng.random() < 0.5 else "[numa]")
    text = " ".join(parts)
    if rng.random() < 0.3:
        text = _mutate(rng, text)
    return text


def _mutate(rng: random.Random, text: str) -> str:
    r = rng.random()
    if r < 0.2:
        i = rng.randrange(len(text) + 1)
        return text[:i] + rng.choice(" :()[],=x0-*9") + text[i:]
    if r < 0.35 and text:
        i = rng.randrange(len(text))
        return text[:i] + text[i + 1:]
    if r < 0.5:
        return rng.choice(_BAD_TYPES) + ":2 " + text
    if r < 0.6:
        return text.replace(":", ":0", 1)
    if r < 0.7:
        return text + " " + rng.choice(["pu:2", "core:2", "2", "numa:2", "[numa]", "(memory=1)", "{1 2}"])
    if r < 0.8:
        return text.replace(")", "", 1)
    if r < 0.9:
        return text.replace("memory=", rng.choice(["memory=-", "memory= ", "mem=", "size=", "memory=1e3"]), 1)
    return text.replace(" ", "  ", 1).replace("pu:", rng.choice(["pu: ", "pu:-", "pu:+", "PU:"]), 1)


def hwloc_reads(spec: str) -> tuple[list, list[int]] | None:
    """What lstopo makes of ``spec``: (sorted (os_index, memory, cpus) per NUMA node, PUs), or None."""
    r = subprocess.run(["lstopo", "--if", "synthetic", "--input", spec, "--of", "xml", "-"],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0 or "<topology" not in r.stdout:
        return None
    root = ET.fromstring(r.stdout[r.stdout.index("<topology"):])
    nodes, pus = [], []
    for o in root.iter("object"):
        if o.get("type") == "NUMANode":
            nodes.append((int(o.get("os_index")), int(o.get("local_memory", "0")),
                          tuple(sorted(parse_bitmap(o.get("cpuset"))))))
        elif o.get("type") == "PU":
            pus.append(int(o.get("os_index")))
    return sorted(nodes), sorted(pus)


@dataclass
class Figures:
    total: int = 0
    both_accept: int = 0
    both_refuse: int = 0
    model_limit: int = 0
    disagree: list[tuple[str, object, object]] = field(default_factory=list)
    kinds: Counter = field(default_factory=Counter)

    def line(self) -> str:
        agreed = self.both_accept + self.both_refuse
        return (f"{self.total} strings: {agreed} agree ({self.both_accept} accepted with the same nodes, "
                f"memory and PUs, {self.both_refuse} refused by both), {self.model_limit} beyond the "
                f"model's limits, {len(self.disagree)} disagree")


def compare(specs: list[str]) -> Figures:
    from concurrent.futures import ThreadPoolExecutor

    specs = [s for s in specs if s.strip()]
    with ThreadPoolExecutor(2) as pool:
        hwloc = list(pool.map(hwloc_reads, specs))
    fig = Figures()
    for spec, theirs in zip(specs, hwloc):
        fig.total += 1
        try:
            m = parse_synthetic(spec)
            mine = (m.summary(), sorted(m.pus))
        except TopologyError as e:
            mine = None
            why = str(e)
        if mine is None and theirs is None:
            fig.both_refuse += 1
        elif mine is not None and mine == theirs:
            fig.both_accept += 1
        elif mine is None and theirs is not None and "the model takes" in why:
            fig.model_limit += 1
        else:
            fig.disagree.append((spec, mine, theirs))
    return fig


def main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    rng = random.Random(a.seed)
    fig = compare([generate(rng) for _ in range(a.count)])
    print(fig.line())
    for spec, mine, theirs in fig.disagree[:20]:
        print(f"  {spec!r}: model {mine} hwloc {theirs}")
    return 1 if fig.disagree else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
