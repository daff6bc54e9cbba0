"""mempolicy.api: Policy values, and the model and Linux backends behind one interface.

Kernel behaviour expected here comes from the host kernel (one node: the
same calls on ``LinuxSystem``) or from outputs recorded on Linux 7.3 (the
trace corpus), never from the model itself.
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from mempolicy import linux
from mempolicy.api import MbindFlag, Mode, ModeFlag, ModelSystem, Policy, as_nodemask
from mempolicy.core.nodemask import Nodemask
from mempolicy.linux.topology import topology_from_shorthand

PS = 4096
TRACES = Path(__file__).parent / "traces"
needs_kernel = pytest.mark.skipif(not linux.available(), reason="memory-policy calls unavailable")


# -- Policy ---------------------------------------------------------------------------

@pytest.mark.parametrize("text,mode,nodes,flags", [
    ("bind:0-1", Mode.BIND, "0-1", 0),
    ("interleave=static:0,2", Mode.INTERLEAVE, "0,2", ModeFlag.STATIC_NODES),
    ("prefer (many)=balancing:0", Mode.PREFERRED_MANY, "0", ModeFlag.NUMA_BALANCING),
    ("weighted interleave:1-3", Mode.WEIGHTED_INTERLEAVE, "1-3", 0),
    ("local", Mode.LOCAL, "", 0),
    ("default", Mode.DEFAULT, "", 0),
    ("preferred-many:0-1", Mode.PREFERRED_MANY, "0-1", 0),
    ("membind:3", Mode.BIND, "3", 0),
    ("bind=relative|balancing:1", Mode.BIND, "1", ModeFlag.RELATIVE_NODES | ModeFlag.NUMA_BALANCING),
])
def test_policy_parse(text, mode, nodes, flags):
    p = Policy.parse(text)
    assert (p.mode, str(p.nodes), p.flags) == (mode, nodes, flags)
    assert Policy.parse(str(p)) == p


@pytest.mark.parametrize("bad", ["bindx:0", "bind=foo:0", "bind:0-", "bind:x"])
def test_policy_parse_errors(bad):
    with pytest.raises(ValueError):
        Policy.parse(bad)


def test_policy_constructors_and_mode_word():
    assert Policy.bind("0-1", static=True).mode_word == 2 | 0x8000
    assert Policy.interleave([0, 2]).nodes == Nodemask([0, 2])
    assert Policy.preferred(3).nodes == Nodemask([3])
    assert Policy.preferred_many({1, 2}, balancing=True).mode_word == 5 | 0x2000
    assert Policy.from_kernel(0x8003, 0b101) == Policy.interleave([0, 2], static=True)
    assert as_nodemask(5) == Nodemask([5]) and as_nodemask(None) == Nodemask()
    with pytest.raises(ValueError):
        as_nodemask(-1)
    assert str(Policy.bind([0], home_node=1)) == "bind:0 home=1"


# -- the same calls on both backends (host: one node) -------------------------------------------

def _scenario(s):
    """A sequence of high-level calls; returns what each gave (value or errno name)."""
    out = []

    def do(fn, *a, **kw):
        try:
            r = fn(*a, **kw)
        except OSError as e:
            r = errno.errorcode[e.errno]
        out.append(r)
        return r

    # a fixed address far from the process's other mappings: a mapping placed next
    # to one of them would merge into it and share its anon_vma
    a = s.mmap(8 * PS, 0x210000000000)
    do(s.get_mempolicy)
    do(s.set_mempolicy, Policy.interleave([0]))
    do(s.get_mempolicy)
    do(s.next_interleave_node)
    do(s.mems_allowed)
    do(s.set_mempolicy, Policy.bind([1]))
    do(s.set_mempolicy, Policy.bind([0, 1]))
    do(s.get_mempolicy)
    do(s.set_mempolicy, Policy.preferred())
    do(s.get_mempolicy)
    do(s.set_mempolicy, Policy.bind([1], relative=True))
    do(s.get_mempolicy)
    do(s.set_mempolicy, Policy.interleave([0], static=True))
    do(s.set_mempolicy, None)
    do(s.mbind, a, 4 * PS, Policy.bind([0]))
    do(s.mbind, a + 4 * PS, 4 * PS, Policy.preferred_many([0], balancing=True))
    do(s.mbind, a, 8 * PS, Policy.interleave([0]), MbindFlag.MOVE_ALL | 8)
    do(s.get_mempolicy, a + PS)
    do(s.get_mempolicy, a + 5 * PS)
    do(s.set_mempolicy_home_node, a, 8 * PS, 0)
    do(s.set_mempolicy_home_node, a, 8 * PS, 1)
    do(s.where, a, 8 * PS)
    do(s.node_of, a + 2 * PS)
    do(s.touch, a, 8 * PS)
    do(s.where, a, 8 * PS)
    do(s.move_pages, [a, a + PS, a + 9 * PS], [0, 0, 0])   # the last is unmapped
    do(s.move_pages, [a], [1])
    do(s.migrate_pages, [0], [0])
    do(s.mbind, a, 8 * PS, Policy.weighted_interleave([0]), MbindFlag.MOVE | MbindFlag.STRICT)
    do(s.get_mempolicy, a)
    maps = [r for r in s.numa_maps() if a <= r.address < a + 8 * PS]
    out.append([(r.policy, r.anon, r.dirty, r.pages) for r in maps])
    s.munmap(a, 8 * PS)
    do(s.touch, a, PS)
    do(s.move_pages, [a + 9 * PS], None)
    do(s.get_mempolicy, a)
    return out


@needs_kernel
def test_model_and_host_give_the_same_results():
    live = linux.default_system()
    try:
        got_live = _scenario(live)
    finally:
        live.set_mempolicy(None)
    model = ModelSystem(linux.topology_from_sysfs())
    got_model = _scenario(model)
    assert got_model == got_live


@needs_kernel
def test_errors_are_oserror_with_the_kernel_errno():
    with pytest.raises(OSError) as ei:
        linux.set_mempolicy(Policy.bind([]))
    assert ei.value.errno == errno.EINVAL and ei.value.strerror == "Invalid argument"
    with pytest.raises(OSError) as ei:
        ModelSystem(linux.topology_from_sysfs()).set_mempolicy(Policy.bind([]))
    assert ei.value.errno == errno.EINVAL and ei.value.strerror == "Invalid argument"


# -- the model on several nodes, against outputs recorded from Linux 7.3 ---------------------------

def test_model_system_replays_a_recorded_trace():
    """tests/traces/01-interleave-anon: 8 pages interleaved over 4 nodes go 0 1 2 3 0 1 2 3
    and numa_maps says so (recorded on Linux 7.3)."""
    expected = (TRACES / "01-interleave-anon.expected").read_text().splitlines()
    where = [int(x) for x in expected[3].split(": ")[1].split()]
    maps_line = expected[4].split(": ", 1)[1].split(" ", 1)[1]
    m = ModelSystem(topology_from_shorthand("4x512M"))
    a = m.mmap(8 * PS, 0x200000000000)
    m.mbind(a, 8 * PS, Policy.interleave("0-3"))
    m.touch(a, 8 * PS)
    assert m.where(a, 8 * PS) == where
    line = [x for x in m.numa_maps_text().splitlines() if x.startswith("200000000000 ")][0]
    assert line.split(" ", 1)[1] == maps_line
    assert m.get_mempolicy(a + 5 * PS) == Policy.interleave("0-3")
    assert m.node_of(a + 5 * PS) == int(expected[6].split("node=")[1])


def test_model_mmap_without_address_and_memfd():
    m = ModelSystem.from_spec("2x512M")
    a = m.mmap(3 * PS)
    b = m.mmap(PS)
    assert b + PS == a                       # top down, like Linux's mmap
    f = m.memfd_create("x", 4 * PS)
    c = m.mmap(4 * PS, shared=True, file=f)
    m.mbind(c, 4 * PS, Policy.interleave("0-1"))
    m.touch(c, 4 * PS)
    assert sorted(m.where(c, 4 * PS)) == [0, 0, 1, 1]
    with pytest.raises(OSError) as ei:
        m.touch(c + 8 * PS, PS)
    assert ei.value.errno == errno.EFAULT
    m.set_weight(0, 3)
    assert m.weights() == {0: 3, 1: 1}
    with pytest.raises(OSError):
        m.set_weight(0, 0)


def test_model_numastat_counts_like_zone_statistics():
    m = ModelSystem.from_spec("2x512M")
    a = m.mmap(4 * PS)
    m.mbind(a, 4 * PS, Policy.bind([1]))
    before = m.numastat()
    m.touch(a, 4 * PS)
    after = m.numastat()
    assert after[1]["numa_hit"] - before[1]["numa_hit"] == 4
    assert after[1]["other_node"] - before[1]["other_node"] == 4   # the task runs on node 0


def test_model_affinity():
    m = ModelSystem.from_spec("2x512M/2")
    m.sched_setaffinity([2, 3])
    assert m.sched_getaffinity() == {2, 3} and m.task.numa_node_id() == 1
    with pytest.raises(OSError):
        m.sched_setaffinity([9])


def test_model_system_unprivileged_as_recorded():
    """``privileged=False``: the answers Linux 7.3 gave a process without CAP_SYS_NICE in
    tests/traces/privileges (move-all-2n, migrate-2n), through the Python API."""
    move_all = (TRACES / "privileges" / "move-all-2n.expected").read_text().splitlines()
    migrate = (TRACES / "privileges" / "migrate-2n.expected").read_text().splitlines()
    assert "16 mbind: EPERM" in move_all and "22 move_pages: EPERM" in move_all
    assert "9 migrate_pages: EINVAL" in migrate and "14 migrate_pages: EPERM" in migrate

    results = {}
    for privileged in (True, False):
        m = ModelSystem.from_spec("2x512M", privileged=privileged)
        assert m.privileged is privileged
        a = m.mmap(4 * PS, 0x200000000000)
        m.touch(a, 4 * PS)
        got = []
        for call in (lambda: m.mbind(a, 2 * PS, Policy.bind([1]), MbindFlag.MOVE_ALL),
                     lambda: m.move_pages([a], [1], MbindFlag.MOVE_ALL),
                     lambda: m.migrate_pages([0], [9])):
            try:
                call()
                got.append("ok")
            except OSError as e:
                got.append(errno.errorcode[e.errno])
        results[privileged] = got
    assert results[False] == ["EPERM", "EPERM", "EPERM"]
    assert results[True] == ["ok", "ok", "EINVAL"]
