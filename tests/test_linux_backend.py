"""mempolicy.linux: raw calls, probe, sysfs/procfs readers, topologies, placed arrays.

Kernel behaviour is checked against the host kernel itself (expected values
are the documented one-node results of conformance-cases.md, which were
observed on Linux 6.18); parsers are checked on files written here.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import threading
import xml.etree.ElementTree as ET

import pytest

from mempolicy import linux
from mempolicy.api import Mode, Policy
from mempolicy.core.nodemask import Nodemask
from mempolicy.linux import procfs, sysfs
from mempolicy.linux import syscalls as sc
from mempolicy.linux.topology import (
    TopologyError,
    load_topology,
    to_hwloc_xml,
    topology_from_shorthand,
    topology_from_sysfs,
    topology_from_synthetic,
)

PS = 4096
needs_kernel = pytest.mark.skipif(not linux.available(), reason="memory-policy calls unavailable")
one_node = pytest.mark.skipif(not linux.available() or linux.node_ids() != [0],
                              reason="needs the one-node host")


@pytest.fixture
def default_policy_after():
    yield
    if linux.available():
        sc.set_mempolicy(0, None, 0)


# -- raw calls on the host -----------------------------------------------------------------

@one_node
@pytest.mark.parametrize("mode,mask,maxnode,err", [
    (2, 1, 1, errno.EINVAL),          # maxnode 1: zero bits read, empty mask (AK2)
    (2, 1, 2, 0),
    (2, 1 << 64, 65, errno.EINVAL),   # bit 64 not read
    (2, 1 << 64, 66, errno.EINVAL),   # node 64 not allowed
    (2, 1, 32769, 0),
    (2, 1, 32770, errno.EINVAL),      # more than PAGE_SIZE * 8 bits
    (0, 1, 0, errno.EINVAL),          # maxnode 0 with a mask (A05)
    (0, None, 0, 0),
    (2, (1 << 1100) | 1, 1281, errno.EINVAL),   # bits above MAX_NUMNODES (AK3)
    (2, (1 << 1000) | 1, 1025, 0),    # offline node dropped (AK3)
    (7, 1, 64, errno.EINVAL),
    (3 | 0xC000, 1, 64, errno.EINVAL),
    (1 | 0x2000, 1, 64, errno.EINVAL),
    (5 | 0x2000, 1, 64, 0),
])
def test_set_mempolicy_maxnode_rules(mode, mask, maxnode, err, default_policy_after):
    if err:
        with pytest.raises(OSError) as ei:
            sc.set_mempolicy(mode, mask, maxnode)
        assert ei.value.errno == err
    else:
        sc.set_mempolicy(mode, mask, maxnode)


@one_node
def test_get_mempolicy_round_trip(default_policy_after):
    sc.set_mempolicy(3 | 0x8000, 1, 65)
    assert sc.get_mempolicy(64, 65) == (0x8003, 1)
    assert linux.get_mempolicy() == Policy.interleave([0], static=True)
    sc.set_mempolicy(1, None, 0)
    assert linux.get_mempolicy().mode == Mode.LOCAL     # PREFERRED with no node reads back LOCAL
    with pytest.raises(OSError) as ei:
        sc.get_mempolicy(64, 0)
    assert ei.value.errno == errno.EINVAL
    assert linux.default_system().mems_allowed() == Nodemask([0])


@needs_kernel
def test_probe():
    p = linux.probe()
    assert p.available and bool(p) and p.reason.startswith("ok")
    assert set(p.calls) == {"get_mempolicy", "set_mempolicy", "mbind", "migrate_pages", "move_pages",
                            "set_mempolicy_home_node"}


def test_probe_reports_a_blocked_call(monkeypatch):
    from mempolicy.linux import system

    def blocked(name, *args):
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr(system.sc, "syscall", blocked)
    p = system.probe(refresh=True)
    try:
        assert not p.available and "blocked" in p.reason and "EPERM" in p.reason
    finally:
        monkeypatch.undo()
        system.probe(refresh=True)


def test_probe_reports_a_missing_call(monkeypatch):
    from mempolicy.linux import system

    def missing(name, *args):
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))

    monkeypatch.setattr(system.sc, "syscall", missing)
    p = system.probe(refresh=True)
    try:
        assert not p.available and "ENOSYS" in p.reason
    finally:
        monkeypatch.undo()
        system.probe(refresh=True)


def test_syscall_numbers():
    assert sc.syscall_numbers("x86_64")["set_mempolicy_home_node"] == 450
    assert sc.syscall_numbers("x86_64")["mbind"] == 237
    assert sc.syscall_numbers("aarch64")["get_mempolicy"] == 236
    assert sc.syscall_numbers("sparc") is None
    assert sc.maxnode_for(1024) == 1025


# -- sysfs and procfs readers ------------------------------------------------------------------

def _tree(tmp_path, auto_name="auto", tier_file="nodelist"):
    node = tmp_path / "sys/devices/system/node"
    for n, (cpus, kb, dist) in enumerate([("0-1", 1048576, "10 21"), ("", 524288, "21 10")]):
        d = node / f"node{n}"
        d.mkdir(parents=True)
        (d / "cpulist").write_text(cpus + "\n")
        (d / "distance").write_text(dist + "\n")
        (d / "meminfo").write_text(f"Node {n} MemTotal:       {kb} kB\nNode {n} MemFree:        {kb // 2} kB\n"
                                   f"Node {n} HugePages_Total:     0\n")
        (d / "numastat").write_text("numa_hit 10\nnuma_miss 1\n")
    (node / "online").write_text("0-1\n")
    (node / "possible").write_text("0-1\n")
    (node / "has_cpu").write_text("0\n")
    (node / "has_memory").write_text("0-1\n")
    wi = tmp_path / "sys/kernel/mm/mempolicy/weighted_interleave"
    wi.mkdir(parents=True)
    (wi / "node0").write_text("3\n")
    (wi / "node1").write_text("1\n")
    (wi / auto_name).write_text("false\n")
    t = tmp_path / "sys/devices/virtual/memory_tiering/memory_tier4"
    t.mkdir(parents=True)
    (t / tier_file).write_text("0\n")
    t2 = tmp_path / "sys/devices/virtual/memory_tiering/memory_tier22"
    t2.mkdir(parents=True)
    (t2 / tier_file).write_text("1\n")
    return tmp_path


@pytest.mark.parametrize("auto_name,tier_file", [("auto", "nodelist"), ("__auto_type", "nodes")])
def test_sysfs_readers(tmp_path, auto_name, tier_file):
    root = _tree(tmp_path, auto_name, tier_file)
    assert sysfs.node_ids(root) == [0, 1]
    st = sysfs.node_states(root)
    assert st["online"] == Nodemask([0, 1]) and st["has_cpu"] == Nodemask([0])
    assert sysfs.node_cpus(0, root) == [0, 1] and sysfs.node_cpus(1, root) == []
    mi = sysfs.node_meminfo(0, root)
    assert mi["MemTotal"] == 1 << 30 and mi["MemFree"] == 1 << 29 and mi["HugePages_Total"] == 0
    assert sysfs.node_distance(1, root) == [21, 10]
    assert sysfs.node_numastat(0, root) == {"numa_hit": 10, "numa_miss": 1}
    assert sysfs.weighted_interleave_weights(root) == {0: 3, 1: 1}
    assert sysfs.weighted_interleave_auto(root) is False
    assert sysfs.memory_tiers(root) == {4: Nodemask([0]), 22: Nodemask([1])}
    topo = topology_from_sysfs(root)
    assert [(n.id, n.mem_bytes, list(n.cpus)) for n in topo.nodes] == [(0, 1 << 30, [0, 1]), (1, 1 << 29, [])]
    assert topo.dist == [[10, 21], [21, 10]]


def test_sysfs_absent_files(tmp_path):
    assert sysfs.weighted_interleave_weights(tmp_path) == {}
    assert sysfs.weighted_interleave_auto(tmp_path) is None
    assert sysfs.memory_tiers(tmp_path) == {}
    with pytest.raises(TopologyError):
        topology_from_sysfs(tmp_path)


def test_parse_list():
    assert sysfs.parse_list("0-3,5\n") == [0, 1, 2, 3, 5]
    assert sysfs.parse_list("") == []
    assert sysfs.format_list([5, 0, 1, 2]) == "0-2,5"
    with pytest.raises(ValueError):
        sysfs.parse_list("0-x")


@needs_kernel
def test_live_sysfs_agrees_with_numactl_hardware():
    if shutil.which("numactl") is None:
        pytest.skip("numactl is not installed")
    out = subprocess.run(["numactl", "--hardware"], capture_output=True, text=True).stdout
    topo = topology_from_sysfs()
    assert out.splitlines()[0].startswith(f"available: {len(topo.nodes)} nodes")
    for n in topo.nodes:
        assert f"node {n.id} cpus:" + "".join(f" {c}" for c in n.cpus) in out.splitlines()
        assert f"node {n.id} size: {n.mem_bytes >> 20} MB" in out
    assert sysfs.weighted_interleave_auto() in (True, False, None)
    assert all(isinstance(t, Nodemask) for t in sysfs.memory_tiers().values())
    assert sysfs.proc_status_lists()["Mems_allowed_list"] == list(topo.n_memory)


def test_numa_maps_parser():
    text = ("7f00 prefer (many)=balancing:0-2 anon=3 dirty=3 mapmax=2 N0=1 N2=2 kernelpagesize_kB=4\n"
            "7f10 weighted interleave:0\n"
            "7f20 default file=/tmp/a\\040b\\012c mapped=5 active=0 N1=5 kernelpagesize_kB=4\n"
            "7f30 bind=static:1 stack anon=1 dirty=1 N1=1 kernelpagesize_kB=4\n"
            "7f40 local heap swapcache=2 writeback=1\n")
    r = procfs.parse_numa_maps(text)
    assert [x.policy for x in r] == ["prefer (many)=balancing:0-2", "weighted interleave:0", "default",
                                    "bind=static:1", "local"]
    assert r[0].mode == "prefer (many)" and r[0].flags == ("balancing",) and r[0].pages == {0: 1, 2: 2}
    assert r[0].mapmax == 2 and r[0].total_pages == 3
    assert r[2].file == "/tmp/a b\nc" and r[2].active == 0 and r[2].mapped == 5
    assert r[3].kind == "stack" and r[3].policy_nodes == Nodemask([1]) and r[3].bytes_on(1) == 4096
    assert r[4].swapcache == 2 and r[4].writeback == 1 and r[4].kind == "heap" and r[4].extra == {}
    with pytest.raises(ValueError):
        procfs.parse_numa_maps_line("nonsense")


@needs_kernel
def test_numa_maps_of_this_process(default_policy_after):
    s = linux.default_system()
    a = s.mmap(4 * PS)
    try:
        s.mbind(a, 4 * PS, Policy.bind([0]))
        s.touch(a, 3 * PS)
        rec = [r for r in linux.read_numa_maps() if r.address == a][0]
        assert (rec.policy, rec.anon, rec.dirty, rec.pages) == ("bind:0", 3, 3, {0: 3})
        assert all(isinstance(r.address, int) for r in linux.read_numa_maps())
    finally:
        s.munmap(a, 4 * PS)


# -- topologies ---------------------------------------------------------------------------------------

def test_shorthand():
    t = topology_from_shorthand("2x1G/2+2x512M/0:21")
    assert [(n.mem_bytes, list(n.cpus)) for n in t.nodes] == \
        [(1 << 30, [0, 1]), (1 << 30, [2, 3]), (1 << 29, []), (1 << 29, [])]
    assert t.dist[0][3] == 21 and t.dist[2][2] == 10
    for bad in ("4x", "0x512M", "2x1G:300", "2x512M/0", "abc"):
        with pytest.raises(TopologyError):
            load_topology(bad)


def test_synthetic():
    t = topology_from_synthetic("node:4(memory=1GB) core:2 pu:1")     # hwloc: 1GB is 10**9 bytes
    assert [(n.mem_bytes, list(n.cpus)) for n in t.nodes] == [(10**9, [2 * i, 2 * i + 1]) for i in range(4)]
    t = topology_from_synthetic("pack:2 node:2 core:4 pu:2")
    assert len(t.nodes) == 4 and all(len(n.cpus) == 8 for n in t.nodes)
    t = topology_from_synthetic("core:4 pu:2")
    assert len(t.nodes) == 1 and len(t.nodes[0].cpus) == 8
    with pytest.raises(TopologyError):
        topology_from_synthetic("node:2 gpu:3")
    with pytest.raises(TopologyError):
        topology_from_synthetic("core:2(memory=1GB)")


def test_toml_and_trace_specs(tmp_path):
    p = tmp_path / "m.toml"
    p.write_text('[[node]]\nmem = "1G"\ncpus = 2\n[[node]]\nmem = "512M"\ncpus = 0\n[distance]\n"0-1" = 30\n')
    t = load_topology(str(p))
    assert len(t.nodes) == 2 and t.dist[0][1] == 30
    tr = tmp_path / "x.trace"
    tr.write_text("node 0 mem=512M cpus=1\nnode 1 mem=256M cpus=0\nmmap A 1\n")
    t = load_topology(str(tr))
    assert [n.mem_bytes for n in t.nodes] == [512 << 20, 256 << 20]
    with pytest.raises(TopologyError):
        load_topology(str(tmp_path / "missing.toml"))


def test_hwloc_xml_export():
    t = topology_from_shorthand("2x1G/2+1x512M/0:21")
    root = ET.fromstring(to_hwloc_xml(t).split("\n", 2)[2])
    assert root.tag == "topology" and root.get("version") == "2.0"
    numa = root.findall(".//object[@type='NUMANode']")
    assert sorted((int(n.get("os_index")), int(n.get("local_memory"))) for n in numa) == \
        [(0, 1 << 30), (1, 1 << 30), (2, 1 << 29)]
    pus = root.findall(".//object[@type='PU']")
    assert [p.get("os_index") for p in pus] == ["0", "1", "2", "3"]
    d = root.find("distances2")
    assert d.get("nbobjs") == "3" and d.get("kind") == "5"
    assert d.find("indexes").text == "0 1 2 " and d.find("indexes").get("length") == "6"
    vals = [int(x) for x in d.find("u64values").text.split()]
    assert vals == [10, 21, 21, 21, 10, 21, 21, 21, 10]
    assert len({o.get("gp_index") for o in root.iter("object")}) == len(list(root.iter("object")))


# -- NumPy arrays placed by policy, and the thread policy ------------------------------------------

@needs_kernel
def test_arrays_on_the_host(default_policy_after):
    np = pytest.importorskip("numpy")
    from mempolicy.linux import arrays

    nodes = list(topology_from_sysfs().n_memory)
    for pol in (Policy.bind(nodes[:1]), Policy.interleave(nodes), Policy.preferred(nodes[0]),
                Policy.weighted_interleave(nodes), Policy.preferred_many(nodes)):
        a = arrays.zeros((64, 1024), np.float64, policy=pol)
        where = arrays.page_nodes(a)
        assert len(where) == 128 and set(where.tolist()) <= set(pol.nodes)
        rec = [r for r in linux.read_numa_maps() if r.address == arrays.array_address(a)[0]][0]
        assert rec.mode == {"preferred": "prefer", "preferred_many": "prefer (many)",
                            "weighted_interleave": "weighted interleave"}.get(
                                pol.mode.name.lower(), pol.mode.name.lower())
        assert arrays.move_array(a, nodes[0]).tolist() == [nodes[0]] * 128
    b = arrays.empty(3000, np.int16, policy=Policy.bind(nodes[:1]))
    assert (arrays.page_nodes(b) == -errno.ENOENT).all()     # not touched yet
    b[:] = 1
    assert b.sum() == 3000 and set(arrays.page_nodes(b).tolist()) == {nodes[0]}


@needs_kernel
def test_thread_policy_is_per_thread_and_restored(default_policy_after):
    from mempolicy.linux import arrays

    linux.set_mempolicy(Policy.preferred(0))
    seen = {}
    go, done = threading.Event(), threading.Event()

    def other():                      # started before the block: keeps its own policy
        go.wait()
        seen["other"] = linux.get_mempolicy()
        done.set()

    t = threading.Thread(target=other)
    t.start()
    with arrays.thread_policy(Policy.interleave([0])) as old:
        assert old == Policy.preferred(0)
        assert linux.get_mempolicy() == Policy.interleave([0])
        go.set()
        done.wait()
        t2 = threading.Thread(target=lambda: seen.setdefault("new", linux.get_mempolicy()))
        t2.start()                    # a thread created now inherits the calling thread's policy
        t2.join()
    t.join()
    assert seen["other"] == Policy.preferred(0)
    assert seen["new"] == Policy.interleave([0])
    assert linux.get_mempolicy() == Policy.preferred(0)


# -- the array recipe on several nodes: the model, and real Linux under QEMU -------------------------

def _array_cases():
    return [(Policy.bind([2]), "4x512M"), (Policy.interleave("0-3"), "4x512M"),
            (Policy.interleave("1,3"), "4x512M"), (Policy.preferred(1), "4x512M"),
            (Policy.weighted_interleave("0-1"), "2x512M")]


def _where(out: str) -> list[int]:
    line = [x for x in out.splitlines() if " where: " in x][0]
    return [int(v) for v in line.split(": ", 1)[1].split()]


def test_array_recipe_on_the_model():
    """What zeros(policy) + page_nodes do, as a trace, on a multi-node model."""
    from mempolicy.linux import arrays
    from mempolicy.trace.run import run_trace_text

    for pol, spec in _array_cases():
        nodes = _where(run_trace_text(arrays.array_trace(16 * PS, pol, load_topology(spec))))
        assert len(nodes) == 16 and set(nodes) <= set(pol.nodes), (pol, nodes)
        if pol.mode in (Mode.INTERLEAVE, Mode.WEIGHTED_INTERLEAVE):
            assert set(nodes) == set(pol.nodes)


@pytest.mark.qemu
@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None or os.environ.get("MEMPOLICY_QEMU_TESTS") != "1",
                    reason="needs qemu-system-x86_64 and MEMPOLICY_QEMU_TESTS=1")
def test_array_recipe_on_linux_under_qemu():
    """The same recipe on Linux 7.3 with 4 (and 2) NUMA nodes: pages land on the policy's
    nodes, and exactly where the model puts them."""
    from mempolicy.linux import arrays
    from mempolicy.oracle import run_traces
    from mempolicy.trace.run import run_trace_text

    items = [(arrays.array_trace(16 * PS, pol, load_topology(spec)), f"array{i}.trace")
             for i, (pol, spec) in enumerate(_array_cases())]
    outs = run_traces(items)
    for (text, _), out, (pol, _) in zip(items, outs, _array_cases()):
        nodes = _where(out)
        assert set(nodes) <= set(pol.nodes), (pol, nodes)
        assert out == run_trace_text(text)
