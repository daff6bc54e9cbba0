"""Weighted-interleave weights: wi_state, the sysfs files, HMAT auto weights,
the trace commands, the fuzzer's ``weights`` mode, the API and ``numactl --sim``."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from mempolicy.alloc.weights import (WeightedInterleaveState, _kstrtoull, kstrtobool,
                                     reduce_interleave_weights)
from mempolicy.core.nodemask import Nodemask
from mempolicy.trace.parser import TraceError, parse_trace
from mempolicy.trace.run import run_trace_text

ALL3 = Nodemask(range(3))


@pytest.mark.parametrize("bw, want", [
    ([30000, 10000], [3, 1]),                   # 24:8, gcd 8
    ([40000, 40000, 10000], [14, 14, 3]),       # rounded down, gcd 1
    ([30000, 0, 10000], [24, 1, 8]),            # no bandwidth: weight 1
    ([100000, 1000], [31, 1]),                  # a share below 1 becomes 1
    ([10000, 10000, 20000, 40000], [1, 1, 2, 4]),
    ([20000, 20000], [1, 1]),
])
def test_reduce_interleave_weights(bw, want):
    assert reduce_interleave_weights(bw, Nodemask(range(len(bw)))) == want


def test_reduce_leaves_nodes_without_memory_at_one():
    assert reduce_interleave_weights([30000, 5, 10000], Nodemask([0, 2])) == [3, 1, 1]


@pytest.mark.parametrize("text, value", [
    ("3", 3), ("0x10", 16), ("0XfF", 255), ("010", 8), ("+4", 4), ("7\n", 7), ("0", 0),
    ("4x", None), ("08", None), ("0x", None), ("", None), ("-1", None), ("1 ", None),
])
def test_kstrtoull(text, value):
    assert _kstrtoull(text) == value


@pytest.mark.parametrize("text, value", [
    ("1", True), ("y", True), ("Yes", True), ("t", True), ("e", True), ("on", True),
    ("0", False), ("n", False), ("false", False), ("d", False), ("off", False), ("OFF", False),
    ("x", None), ("o", None), ("ox", None), ("", None), ("2", None),
])
def test_kstrtobool(text, value):
    assert kstrtobool(text) == value


def test_node_store_refusals_and_manual_mode():
    wi = WeightedInterleaveState(3, Nodemask([0, 2]))
    assert wi.iw_table is None and wi.weights() == {0: 1, 2: 1}
    assert wi.node_store(1, "3\n") == errno.ENOENT          # no memory: no file
    assert wi.node_store(5, "3\n") == errno.ENOENT
    for bad in ("0\n", "256\n", "x\n", "\n"):
        assert wi.node_store(0, bad) == errno.EINVAL
    assert wi.iw_table is None                              # refusals change nothing
    assert wi.node_store(2, "0x10\n") == 0
    assert wi.weights() == {0: 1, 2: 16} and not wi.mode_auto


def test_auto_store_without_and_with_bandwidths():
    wi = WeightedInterleaveState(2)
    assert wi.auto_store("1\n") == errno.ENODEV             # NULL state, no bandwidths
    assert wi.auto_store("maybe\n") == errno.EINVAL
    assert wi.auto_store("0\n") == 0 and not wi.mode_auto and wi.weights() == {0: 1, 1: 1}
    wi.mempolicy_set_node_perf(0, 30000)                    # manual: kept, weights untouched
    wi.mempolicy_set_node_perf(1, 10000)
    assert wi.weights() == {0: 1, 1: 1}
    assert wi.auto_store("on\n") == 0 and wi.mode_auto and wi.weights() == {0: 3, 1: 1}
    assert wi.node_store(1, "5\n") == 0 and wi.weights() == {0: 3, 1: 5}
    assert wi.auto_store("n\n") == 0 and wi.weights() == {0: 3, 1: 5}
    assert wi.auto_store("y\n") == 0 and wi.weights() == {0: 3, 1: 1}


def test_set_node_perf_in_auto_mode_recomputes_each_time():
    wi = WeightedInterleaveState(2)
    wi.mempolicy_set_node_perf(0, 30000)        # node 1 not yet known: 32 and 1
    assert wi.weights() == {0: 32, 1: 1} and wi.mode_auto
    wi.mempolicy_set_node_perf(1, 10000)
    assert wi.weights() == {0: 3, 1: 1}


# -- the trace format ----------------------------------------------------------

H2 = "node 0 mem=1G cpus=1\nnode 1 mem=1G cpus=1\n"


@pytest.mark.parametrize("header, message", [
    ("hmat 0\n", "bw="),
    ("hmat 0 bw=0\n", "not in 1.."),
    ("hmat 0 bw=10 lat=0\n", "not in 1.."),
    ("hmat 0 bw=10 speed=3\n", "unexpected word"),
    ("hmat 2 bw=10\n", "no node line"),
    ("hmat 0 bw=10\nhmat 0 bw=20\n", "second hmat line"),
])
def test_hmat_header_errors(header, message):
    with pytest.raises(TraceError, match=message):
        parse_trace(H2 + header + "weights\n", "t")


def test_hmat_needs_memory_and_comes_in_the_header():
    with pytest.raises(TraceError, match="no memory"):
        parse_trace("node 0 mem=1G cpus=1\nnode 1 mem=0 cpus=1\nhmat 1 bw=10\nweights\n", "t")
    with pytest.raises(TraceError, match=":4: header line 'hmat' after the first command"):
        parse_trace(H2 + "weights\nhmat 0 bw=10\n", "t")


@pytest.mark.parametrize("line, message", [
    ("weight 0", "missing arguments"), ("weight 0 1 2", "unexpected word"),
    ("weights 0", "unexpected word"), ("weight x 1", "bad number"),
    ("weight 1024 1", "above 1023"),
])
def test_weight_command_errors(line, message):
    with pytest.raises(TraceError, match=message):
        parse_trace(H2 + line + "\n", "t")


def test_a_trace_that_writes_weights_boots_alone_unless_bandwidths_restore_them():
    a = parse_trace(H2 + "weight 0 3\n", "a").machine
    b = parse_trace(H2 + "weights\n", "b").machine
    assert a.own_boot == "a" and b.own_boot is None and a.key() != b.key()
    hm = "hmat 0 bw=20000\nhmat 1 bw=10000\n"
    c = parse_trace(H2 + hm + "weight 0 3\n", "c").machine
    d = parse_trace(H2 + hm + "weights\n", "d").machine
    assert c.own_boot is None and c.key() == d.key() != b.key()


def test_a_memoryless_node_makes_linux_ignore_the_hmat():
    text = ("node 0 mem=1G cpus=1\nnode 1 mem=0 cpus=1\nhmat 0 bw=30000\nweight 0 2\n"
            "weight auto 1\nweights\n")
    m = parse_trace(text, "t").machine
    assert m.hmat and m.firmware_bandwidths() == {} and m.own_boot == "t"
    assert run_trace_text(text, "t").splitlines()[1:] == ["5 weight: ENODEV",
                                                          "6 weights: auto=false N0=2"]


def test_hmat_initiator_is_the_nearest_node_with_cpus():
    m = parse_trace("node 0 mem=1G cpus=1\nnode 1 mem=512M cpus=1\nnode 2 mem=512M cpus=0\n"
                    "node 3 mem=512M cpus=0\ndistance 0 2 30\ndistance 1 2 25\n"
                    "distance 1 3 40\nweights\n", "t").machine
    assert [m.hmat_initiator(i) for i in range(4)] == [0, 1, 1, 0]


def test_qemu_command_line_for_hmat():
    from mempolicy.oracle.qemu import qemu_args

    text = ("node 0 mem=1G cpus=1\nnode 1 mem=0 cpus=1\nnode 2 mem=512M cpus=0\n"
            "distance 0 2 30\ndistance 1 2 12\nhmat 0 bw=20000\nhmat 2 bw=5000 lat=250\nweights\n")
    args = qemu_args(parse_trace(text, "t").machine, Path("k"), Path("i"), Path("c"), Path("r"))
    line = " ".join(args)
    assert "-M pc-i440fx-5.0,hmat=on" in line
    assert "node,nodeid=2,mem=512M,initiator=1" in line
    assert ("hmat-lb,initiator=1,target=2,hierarchy=memory,data-type=access-bandwidth,"
            "bandwidth=5000M") in line
    assert "target=2,hierarchy=memory,data-type=access-latency,latency=250" in line
    assert "target=1," not in line          # a node without memory is nobody's target
    plain = " ".join(qemu_args(parse_trace(H2 + "weights\n", "t").machine,
                               Path("k"), Path("i"), Path("c"), Path("r")))
    assert "hmat" not in plain and "initiator" not in plain


def test_trace_weights_and_placement():
    out = run_trace_text(H2 + "hmat 0 bw=30000\nhmat 1 bw=10000\nweights\nmmap A 8\n"
                         "mbind A 0 8 weighted_interleave 0-1\ntouch A 0 8\nwhere A 0 8\n"
                         "weight 1 3\nweight auto x\nweights\n", "t")
    assert out.splitlines() == [
        "5 weights: auto=true N0=3 N1=1", "6 mmap: ok", "7 mbind: ok", "8 touch: ok",
        "9 where: 0 0 0 1 0 0 0 1", "10 weight: ok", "11 weight: EINVAL",
        "12 weights: auto=false N0=3 N1=3"]


def test_a_new_weight_does_not_cut_the_current_turn_short():
    """weighted_interleave_nodes: il_weight is loaded when a node's turn begins."""
    text = (H2 + "weight 0 4\nset_mempolicy weighted_interleave 0-1\nmmap A 4096\ntouch A 0 1\n"
            "weight 0 1\n" + "".join(f"touch A {512 * k} 1\nget_mempolicy node\n" for k in (1, 2, 3, 4)))
    nodes = [line.split("=")[1] for line in run_trace_text(text, "t").splitlines() if "node=" in line]
    # three page tables at the first touch (node 0: 3 of 4 left -> 1 left after
    # the next), then the turn ends and node 1's and node 0's new turns follow
    assert nodes == ["1", "0", "1", "0"]


# -- fuzzer --------------------------------------------------------------------

def test_fuzz_mode_weights_is_in_envelope_and_not_in_all():
    from mempolicy.trace.fuzz import FUZZ_MODES, generate, parse_modes

    assert "weights" in FUZZ_MODES and "weights" in parse_modes("envelope")
    assert "weights" not in parse_modes("all")
    assert generate(900001, "weights") == generate(900001, "weights")


def test_fuzz_weights_traces_parse_and_run():
    from mempolicy.trace.fuzz import generate

    seen = set()
    for seed in range(900000, 900030):
        text = generate(seed, "weights")
        trace = parse_trace(text, f"w{seed}")
        seen |= {c.name for c in trace.commands}
        assert run_trace_text(text, f"w{seed}")
    assert {"weight", "weights", "mbind", "touch"} <= seen


def test_fuzz_weights_maps_private_memory_only():
    """Shared memory's bias is an inode number aligned to 2520 only: not repeatable
    under weights whose sum does not divide 2520."""
    from mempolicy.trace.fuzz import generate

    for seed in range(900000, 900060):
        for line in generate(seed, "weights").splitlines():
            if line.startswith("mmap "):
                assert "shared" not in line and "file=" not in line, line


def test_fuzz_weights_blocks_share_a_header():
    from mempolicy.trace.fuzz import generate

    heads = {"\n".join(l for l in generate(s, "weights").splitlines()
                       if l.split()[0] in ("node", "distance", "hmat"))
             for s in range(900000, 900024)}
    assert len(heads) == 1 and "hmat" in next(iter(heads))


# -- API and numactl --sim -----------------------------------------------------

def test_api_bandwidths_auto_and_manual_weights():
    from mempolicy.alloc.topology import Topology
    from mempolicy.api import ModelSystem

    m = ModelSystem(Topology.simple(2))
    assert m.weights_auto and m.weights() == {0: 1, 1: 1}
    with pytest.raises(OSError) as e:
        m.weights_auto = True
    assert e.value.errno == errno.ENODEV
    m.set_node_bandwidth(0, 30000)
    m.set_node_bandwidth(1, 10000)
    assert m.weights() == {0: 3, 1: 1}
    m.set_system_weight(1, 2)
    assert not m.weights_auto and m.weights() == {0: 3, 1: 2}
    m.weights_auto = True
    assert m.weights() == {0: 3, 1: 1}
    with pytest.raises(OSError) as e:
        m.set_node_bandwidth(0, 0)
    assert e.value.errno == errno.EINVAL


def test_api_weight_of_a_memoryless_node_is_enoent():
    from mempolicy.api import ModelSystem

    m = ModelSystem.from_spec("2x1G")
    m.kernel.wi_state.n_memory = Nodemask([0])      # as a node with mem=0 has
    with pytest.raises(OSError) as e:
        m.set_system_weight(1, 3)
    assert e.value.errno == errno.ENOENT


def _numactl(capsys, *argv):
    from mempolicy.frontends.numactl import main

    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_numactl_sim_weights_and_bandwidths(capsys):
    rc, out, _ = _numactl(capsys, "--numactl-version", "2.0.19", "--sim", "2x1G",
                          "--sim-weights", "0:3,1:1", "-w", "0-1", "memhog", "64M")
    assert rc == 0 and "N0=12288 N1=4096" in out
    rc, out, _ = _numactl(capsys, "--sim-bandwidth", "0:30000,1:10000", "--numactl-version",
                          "2.0.19", "--sim", "2x1G", "-w", "0-1", "memhog", "64M")
    assert rc == 0 and "N0=12288 N1=4096" in out
    rc, out, _ = _numactl(capsys, "--numactl-version", "2.0.19", "--sim", "2x1G",
                          "-w", "0-1", "memhog", "64M")
    assert rc == 0 and "N0=8192 N1=8192" in out


@pytest.mark.parametrize("argv, message", [
    (["--sim", "2x1G", "--sim-weights", "0:0", "--show"], "node 0 takes a weight of 1..255"),
    (["--sim", "2x1G", "--sim-weights", "0=3", "--show"], "'0=3' is not NODE:WEIGHT"),
    (["--sim", "2x1G", "--sim-weights", "4:3", "--show"], "node 4 has no memory"),
    (["--sim", "2x1G", "--sim-bandwidth", "0:0", "--show"], "bandwidth of 1.."),
    (["--sim-weights", "0:3", "--show"], "--sim-weights needs --sim"),
    (["--sim", "2x1G", "--kernel", "6.1", "--sim-weights", "0:3", "--show"],
     "Linux 6.1 has no weighted-interleave weights"),
])
def test_numactl_sim_weight_errors(capsys, argv, message):
    rc, _, err = _numactl(capsys, *argv)
    assert rc == 2 and message in err and "Traceback" not in err


def test_plot_labels_give_weights_and_shares():
    from mempolicy.alloc.topology import Topology
    from mempolicy.frontends.plot import node_labels
    from mempolicy.kernel import Kernel

    k = Kernel(Topology.simple(3))
    k.wi_state.mempolicy_set_node_perf(0, 40000)
    k.wi_state.mempolicy_set_node_perf(1, 40000)
    k.wi_state.mempolicy_set_node_perf(2, 10000)
    assert node_labels(k, [14, 14, 3]) == ["node 0  w=14  45%", "node 1  w=14  45%",
                                           "node 2  w=3  10%"]


def test_linux_auto_switch_on_a_fake_sysfs(tmp_path):
    from mempolicy.linux import sysfs

    d = tmp_path / "sys/kernel/mm/mempolicy/weighted_interleave"
    with pytest.raises(OSError) as e:
        sysfs.set_weighted_interleave_auto(True, tmp_path)
    assert e.value.errno == errno.ENOENT
    d.mkdir(parents=True)
    (d / "auto").write_text("true\n")
    sysfs.set_weighted_interleave_auto(False, tmp_path)
    assert (d / "auto").read_text() == "0\n"


# ---- before 6.16 (6.9 to 6.15: Debian's 6.12) and before 6.9 (6.1) ----------------

def test_6_12_weight_files_without_auto():
    """6.12: no ``auto`` file, a ``nodeN`` for every possible node, 0 means the default 1,
    and firmware bandwidths change no weight (recorded: tests/traces/weights/*.6.12.expected)."""
    from mempolicy.core.version import KernelVersion

    wi = WeightedInterleaveState(3, Nodemask([0, 2]), KernelVersion.parse("6.12"))
    wi.mempolicy_set_node_perf(0, 30000)
    wi.mempolicy_set_node_perf(2, 10000)
    assert wi.weights() == {0: 1, 1: 1, 2: 1} and wi.auto_show() is None
    assert wi.node_store(1, "2\n") == 0 and wi.weights()[1] == 2      # no memory, a file all the same
    assert wi.node_store(0, "0\n") == 0 and wi.weights()[0] == 1
    assert wi.node_store(0, "\n") == 0 and wi.node_store(0, "256\n") == errno.EINVAL
    assert wi.auto_store("1\n") == errno.ENOENT and wi.node_store(3, "1\n") == errno.ENOENT
    seven = WeightedInterleaveState(3, Nodemask([0, 2]))
    seven.mempolicy_set_node_perf(0, 30000)
    seven.mempolicy_set_node_perf(2, 10000)
    assert seven.weights() == {0: 3, 2: 1} and seven.auto_show() == "true"
    assert seven.node_store(1, "2\n") == errno.ENOENT and seven.node_store(0, "0\n") == errno.EINVAL


def test_6_1_has_no_weight_files():
    text = ("node 0 mem=512M cpus=1\nnode 1 mem=512M cpus=1\nhmat 0 bw=30000\nhmat 1 bw=10000\n"
            "weights\nweight 0 3\nweight auto 1\n")
    assert run_trace_text(text, kernel="6.1") == ("5 weights: auto=none\n6 weight: ENOENT\n"
                                                  "7 weight: ENOENT\n")
    assert run_trace_text(text, kernel="6.12") == ("5 weights: auto=none N0=1 N1=1\n6 weight: ok\n"
                                                   "7 weight: ENOENT\n")
