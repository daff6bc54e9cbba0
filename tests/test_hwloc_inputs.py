"""hwloc inputs against hwloc's own tools: synthetic strings, lstopo XML, XML export.

Every expectation comes from hwloc at test time (lstopo, hwloc-calc of the
Debian ``hwloc`` package); the tests skip when hwloc is not installed.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mempolicy.alloc.topology import Node, Topology
from mempolicy.linux.hwloc import TopologyError
from mempolicy.linux.hwloc_synthetic import parse_synthetic
from mempolicy.linux.hwloc_xml import parse_bitmap, parse_hwloc_xml, to_hwloc_xml
from mempolicy.linux.topology import load_topology, topology_from_sysfs

from hwloc_agreement import compare, generate, hwloc_reads

needs_hwloc = pytest.mark.skipif(shutil.which("lstopo") is None, reason="hwloc (lstopo) is not installed")
# Fixed examples in the suite (derandomized: the same 200 every run); MEMPOLICY_FUZZ_EXAMPLES=N
# explores N fresh ones.
FUZZ = settings(max_examples=int(os.environ.get("MEMPOLICY_FUZZ_EXAMPLES", "200")), deadline=None,
                derandomize=not os.environ.get("MEMPOLICY_FUZZ_EXAMPLES"),
                suppress_health_check=[HealthCheck.too_slow])


def _lstopo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["lstopo", *args], capture_output=True, text=True, timeout=60)


def _calc(args: list[str]) -> str:
    return subprocess.run(["hwloc-calc", *args], capture_output=True, text=True, timeout=60).stdout.strip()


# -- synthetic strings --------------------------------------------------------------------------

@needs_hwloc
def test_generated_synthetic_strings_agree_with_lstopo():
    rng = random.Random(20261202)
    fig = compare([generate(rng) for _ in range(300)])
    assert not fig.disagree, fig.line() + "".join(f"\n  {d[0]!r}" for d in fig.disagree[:10])
    assert fig.both_accept > 150 and fig.both_refuse > 30, fig.line()


@needs_hwloc
@pytest.mark.parametrize("spec", [
    "pack:2 numa:2 core:4 pu:2", "numa:2(memory=1GB) pu:1", "numa:2(memory=1GiB) pu:1",
    "numa:3(memory=5kB) pu:1", "numa:2(memory=3KiB) pu:1", "numa:2(memory=7MB) pu:1",
    "numa:2(memory=7MiB) pu:1", "numa:2(memory=2TB) pu:1", "numa:2(memory=2TiB) pu:1",
    "pack:2(indexes=1,0) numa:1 core:2 pu:1", "2 3 4", "pack:2 [numa] [numa(memory=16GB)] core:2 pu:2",
    "numa:4(indexes=numa:pack) pu:1", "pack:2 core:2 pu:2(indexes=2*2:1*2)", "core:4 pu:2",
    "pack:2 numa:2(indexes=3,2,1,0) pu:2", "Tile:2 pu:2", "l3:2 l2:2 l1:2 pu:1",
])
def test_accepted_forms_match_lstopo(spec):
    m = parse_synthetic(spec)
    assert (m.summary(), sorted(m.pus)) == hwloc_reads(spec)
    assert len(load_topology(spec).nodes) == len(m.nodes)


@needs_hwloc
@pytest.mark.parametrize("spec", [
    "pack:2 pack:2 pu:1", "numa:2 numa:2 pu:1", "core:2", "gpu:2 pu:1", "memcache:2 pu:1",
    "machine:2 pu:1", "pack:0 pu:1", "numa:2(memory=1GB pu:1", "numa:2(mem=1) pu:1",
    "l2:2(memory=1) pu:1", "numa:2 [numa] pu:1", "2 pack:2 2", "pu:2 pu:2", "pack:-1 pu:1",
    "numa:2 {10 20 20 10} pu:1", "numa:2(memory=1GB  indexes=1,0) pu:1",
])
def test_refused_forms_are_refused_by_lstopo(spec):
    assert hwloc_reads(spec) is None
    with pytest.raises(TopologyError):
        parse_synthetic(spec)


@needs_hwloc
def test_counts_as_hwloc_calc_counts_them():
    spec = "pack:2 numa:2 core:4 pu:2"
    topo = load_topology(spec)
    for kind, n in (("package", 2), ("numa", len(topo.nodes)), ("core", 16), ("pu", topo.nr_cpus)):
        assert _calc(["--if", "synthetic", "--input", spec, "--number-of", kind, "all"]) == str(n)
    assert topo.nr_cpus == 32 and len(topo.nodes) == 4


def test_limits_are_checked_before_building():
    for spec in ("numa:65 pu:1", "pack:4294967295 pu:4294967295", "numa:2 " + "2 " * 100, "pu:8193"):
        with pytest.raises(TopologyError, match="the model takes|bare counts|levels"):
            parse_synthetic(spec)


def test_repeated_indexes_are_refused():
    with pytest.raises(TopologyError, match="repeats a PU index"):
        parse_synthetic("numa:2 pu:2(indexes=0,1,1,3)")


@FUZZ
@given(st.text(alphabet="packnumodrel123409x:()[]{}=, *-GiBMkT\n", max_size=40))
def test_fuzz_synthetic_strings(spec):
    try:
        m = parse_synthetic(spec)
    except TopologyError as e:
        assert "\n" not in str(e).replace(repr(spec), "")
        return
    assert 1 <= len(m.nodes) <= 64 and len(m.pus) <= 8192
    try:
        m.to_topology()
    except TopologyError:
        pass


# -- XML -------------------------------------------------------------------------------------

@needs_hwloc
def test_lstopo_xml_of_this_machine(tmp_path):
    r = _lstopo("--of", "xml", "-")
    if r.returncode != 0:
        pytest.skip(f"lstopo cannot read this machine: {r.stderr.strip()[:80]}")
    f = tmp_path / "this.xml"
    f.write_text(r.stdout)
    topo = load_topology(str(f))
    assert str(len(topo.nodes)) == _calc(["--if", "xml", "--input", str(f), "--number-of", "numa", "all"])
    assert str(topo.nr_cpus) == _calc(["--if", "xml", "--input", str(f), "--number-of", "pu", "all"])
    for n in topo.nodes:
        cpus = _calc(["--if", "xml", "--input", str(f), "--intersect", "pu", f"numa:{n.id}"]) \
            if len(topo.nodes) > 1 else ",".join(map(str, n.cpus))
        assert sorted(map(int, filter(None, cpus.split(",")))) == sorted(n.cpus)
    try:
        live = topology_from_sysfs()
    except TopologyError:
        return
    assert [n.mem_bytes for n in topo.nodes] == [n.mem_bytes for n in live.nodes]
    assert [sorted(n.cpus) for n in topo.nodes] == [sorted(n.cpus) for n in live.nodes]


def _machines() -> list[Topology]:
    asym = [[10, 21, 31], [21, 10, 17], [31, 17, 10]]
    big = [[10 if a == b else 20 + (a * 7 + b * 3) % 40 for b in range(12)] for a in range(12)]
    big = [[max(big[a][b], big[b][a]) if a != b else 10 for b in range(12)] for a in range(12)]
    return [
        Topology([Node(0, 1 << 30, range(0, 2)), Node(1, 1 << 29, range(2, 4)), Node(2, 3 << 28, range(0))], asym),
        Topology([Node(i, (i + 1) << 27, range(i, i + 1) if i % 3 else range(0)) for i in range(12)], big),
        Topology.simple(4, 512 << 20, 2),
    ]


def _fix_cpus(t: Topology) -> Topology:
    # CPU ids must be 0..N-1: renumber node by node
    out, c = [], 0
    for n in t.nodes:
        out.append(Node(n.id, n.mem_bytes, range(c, c + len(n.cpus))))
        c += len(n.cpus)
    return Topology(out, t.dist)


@needs_hwloc
@pytest.mark.parametrize("k", range(3))
def test_export_loads_in_lstopo_with_same_nodes_memory_distances(tmp_path, k):
    topo = _fix_cpus(_machines()[k])
    f = tmp_path / "model.xml"
    f.write_text(to_hwloc_xml(topo))
    r = _lstopo("--if", "xml", "--input", str(f), "--of", "xml", "-")
    assert r.returncode == 0, r.stderr
    assert "NUMALatency" in r.stdout
    back = parse_hwloc_xml(r.stdout, "lstopo-output")          # XML as hwloc 2.9 writes it
    assert back.summary() == sorted((n.id, n.mem_bytes, tuple(n.cpus) if len(n.cpus) else
                                     tuple(c for m in topo.nodes for c in m.cpus)) for n in topo.nodes)
    t2 = back.to_topology()
    assert [(n.mem_bytes, list(n.cpus)) for n in t2.nodes] == [(n.mem_bytes, list(n.cpus)) for n in topo.nodes]
    assert t2.dist == topo.dist
    assert _calc(["--if", "xml", "--input", str(f), "--number-of", "numa", "all"]) == str(len(topo.nodes))


@needs_hwloc
def test_lstopo_synthetic_xml_imports_as_the_synthetic_string(tmp_path):
    for spec in ("pack:2 numa:2 core:2 pu:2", "pack:2 [numa] [numa(memory=2GB)] core:2 pu:1"):
        r = _lstopo("--if", "synthetic", "--input", spec, "--of", "xml", "-")
        f = tmp_path / "s.xml"
        f.write_text(r.stdout)
        a, b = load_topology(str(f)), load_topology(spec)
        assert [(n.mem_bytes, list(n.cpus)) for n in a.nodes] == [(n.mem_bytes, list(n.cpus)) for n in b.nodes]


def test_bitmap_round_trip():
    for ids in ([], [0], [31, 32], [5, 64, 100]):
        from mempolicy.linux.hwloc_xml import format_bitmap
        assert sorted(parse_bitmap(format_bitmap(ids))) == ids


@pytest.mark.parametrize("text,line,msg", [
    ('<topology>\n<object type="Machine"/>\n</topology>', 1, "no NUMANode"),
    ('<topology version="4.0">\n</topology>', 1, "versions 1 to 3"),
    ('<?xml version="1.0" encoding="TF-8"?>\n<topology version="2.0"/>', 1, "encoding"),
    ('<topology>\n<object type="NUMANode" os_index="0" cpuset="0x1"/><object type="NUMANode" os_index="1" '
     'cpuset="0x2"/>\n<distances nbobjs="2" latency_base="1"><latency value="10"/></distances>\n</topology>',
     3, "latency values"),
    ('<topology>\n<distances nbobjs="1" latency_base="x"/>\n</topology>', 2, "not a number"),
    ('<topology version="2.0">\n<object type="Machine">\n<object type="NUMANode" local_memory="1"/>'
     '\n</object>\n</topology>', 3, "without os_index"),
    ('<topology version="2.0">\n<object type="NUMANode" os_index="x"/>\n</topology>', 2, "not a number"),
    ('<topology version="2.0">\n<object type="NUMANode" os_index="0"\n</topology>', 3, ""),
    ('<?xml version="1.0"?>\n<!DOCTYPE t [<!ENTITY a "aaaa">]>\n<topology version="2.0"/>', 2, "entity"),
    ('<topology version="2.0">\n<object type="Machine"/>\n</topology>', 1, "no NUMANode"),
    ('<topology version="2.0"><object type="NUMANode" os_index="0" cpuset="0x1" local_memory="5"/>\n'
     '<object type="PU" os_index="0"/>\n<distances2 type="NUMANode" nbobjs="2" kind="5" '
     'name="NUMALatency" indexing="os"><indexes length="2">0 1</indexes></distances2></topology>', 3,
     "distances2"),
])
def test_xml_mistakes_are_one_line_with_the_line(text, line, msg):
    with pytest.raises(TopologyError) as e:
        parse_hwloc_xml(text, "m.xml")
    assert str(e.value).startswith(f"m.xml:{line}: ") and msg in str(e.value) and "\n" not in str(e.value)


@FUZZ
@given(st.data())
def test_fuzz_xml(data):
    base = to_hwloc_xml(_fix_cpus(_machines()[0]))
    i = data.draw(st.integers(0, len(base)))
    j = data.draw(st.integers(i, min(len(base), i + 30)))
    junk = data.draw(st.text(alphabet='<>/="x0123 abcdefNUMAode\n&;', max_size=20))
    text = base[:i] + junk + base[j:]
    try:
        parse_hwloc_xml(text, "f.xml").to_topology("f.xml")
    except TopologyError as e:
        assert str(e).startswith("f.xml") and "\n" not in str(e)


@needs_hwloc
@pytest.mark.skipif(shutil.which("hwloc-annotate") is None, reason="hwloc-annotate is not installed")
@pytest.mark.parametrize("spec", ["pack:2 numa:2 core:2 pu:1", "numa:12 pu:1",
                                  "pack:2 numa:2(indexes=3,1,2,0) pu:2", "pack:3 [numa(memory=2GiB)] pu:1"])
def test_lstopo_synthetic_xml_with_distances(tmp_path, spec):
    """XML hwloc writes for a synthetic topology with a NUMALatency matrix (hwloc-annotate)."""
    base = tmp_path / "s.xml"
    r = _lstopo("--if", "synthetic", "--input", spec, "--of", "xml", str(base), "--force")
    assert r.returncode == 0, r.stderr
    n = len(parse_synthetic(spec).nodes)
    rng = random.Random(spec)
    m = [[10] * n for _ in range(n)]
    for a in range(n):
        for b in range(a + 1, n):
            m[a][b] = m[b][a] = rng.randint(11, 255)
    dfile = tmp_path / "d.txt"
    dfile.write_text("name=NUMALatency\n5\n" + f"{n}\n" + "".join(f"numa:{i}\n" for i in range(n))
                     + "".join(f"{m[a][b]}\n" for a in range(n) for b in range(n)))
    out = tmp_path / "d.xml"
    r = subprocess.run(["hwloc-annotate", str(base), str(out), "root", "distances", str(dfile)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    # hwloc's own words: the matrix by OS index, read with ElementTree
    d = ET.parse(out).getroot().find("distances2")
    idx = [int(x) for e in d.findall("indexes") for x in e.text.split()]
    vals = [int(x) for e in d.findall("u64values") for x in e.text.split()]
    topo = load_topology(str(out))
    assert [[topo.dist[idx[a]][idx[b]] for b in range(n)] for a in range(n)] == \
        [vals[a * n:(a + 1) * n] for a in range(n)]
    mine = parse_hwloc_xml(out.read_bytes(), str(out))
    assert mine.summary() == hwloc_reads(spec)[0]


@needs_hwloc
@pytest.mark.skipif(shutil.which("numactl") is None, reason="numactl is not installed")
def test_sim_of_lstopo_xml_shows_this_machine_as_numactl_does(tmp_path, capsys):
    """The production box in one step: lstopo's XML, then --sim, against the real numactl --hardware."""
    from mempolicy.frontends import numactl

    real = subprocess.run(["numactl", "--hardware"], capture_output=True, text=True, timeout=60)
    r = _lstopo("--of", "xml", "-")
    if real.returncode != 0 or r.returncode != 0 or "available:" not in real.stdout:
        pytest.skip("numactl --hardware or lstopo does not work here")
    f = tmp_path / "box.xml"
    f.write_text(r.stdout)
    assert numactl.main(["--sim", str(f), "--hardware"]) == 0
    sim = capsys.readouterr().out

    def keep(text: str) -> list[str]:      # free memory differs: the model's process is fresh
        return [ln for ln in text.splitlines() if " free:" not in ln]

    assert keep(sim) == keep(real.stdout)


@needs_hwloc
@pytest.mark.skipif(shutil.which("hwloc-annotate") is None, reason="hwloc-annotate is not installed")
@pytest.mark.parametrize("spec", ["pack:2 numa:2 core:2 pu:1", "core:2 pu:2", "numa:11 pu:1",
                                  "pack:2 [numa] [numa(memory=3GB)] pu:2"])
def test_hwloc_1x_xml_reads_as_hwloc_2_imports_it(tmp_path, spec):
    """lstopo --export-xml-flags v1 writes hwloc 1.x XML; lstopo reads it back into 2.x: same nodes."""
    v2 = tmp_path / "v2.xml"
    assert _lstopo("--if", "synthetic", "--input", spec, "--of", "xml", str(v2), "--force").returncode == 0
    n = len(parse_synthetic(spec).nodes)
    if n > 1:
        rng = random.Random(spec)
        vals = [[10 if a == b else 0 for b in range(n)] for a in range(n)]
        for a in range(n):
            for b in range(a + 1, n):
                vals[a][b] = vals[b][a] = rng.randint(11, 99)
        d = tmp_path / "d.txt"
        d.write_text(f"name=NUMALatency\n5\n{n}\n" + "".join(f"numa:{i}\n" for i in range(n))
                     + "".join(f"{v}\n" for row in vals for v in row))
        subprocess.run(["hwloc-annotate", str(v2), str(v2), "root", "distances", str(d)], check=True,
                       capture_output=True, timeout=60)
    v1, back = tmp_path / "v1.xml", tmp_path / "back.xml"
    assert _lstopo("--if", "xml", "--input", str(v2), "--export-xml-flags", "v1", "--of", "xml", str(v1),
                   "--force").returncode == 0
    assert "version=" not in v1.read_text().split("<topology", 1)[1].split(">", 1)[0]
    assert _lstopo("--if", "xml", "--input", str(v1), "--of", "xml", str(back), "--force").returncode == 0
    from mempolicy.linux.hwloc_xml import read_hwloc_xml
    mine, theirs = read_hwloc_xml(v1), read_hwloc_xml(back)
    assert mine.summary() == theirs.summary() and sorted(mine.pus) == sorted(theirs.pus)
    assert mine.distances == theirs.distances and (n == 1 or len(mine.distances) == n * n)
