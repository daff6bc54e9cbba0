"""Input robustness: TOML topologies, --sim specs, ModelSystem.from_spec, numastat --trace,
and the one size and list parser (mempolicy.core.units).

Each mistake is one line (``FILE:LINE: message`` for files), exit 2 from a
command, ValueError from the API; never a traceback, a hang or gigabytes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mempolicy.api import ModelSystem
from mempolicy.core import units
from mempolicy.frontends import numactl, numastat
from mempolicy.linux.hwloc import TopologyError
from mempolicy.linux.topology import load_topology
from mempolicy.linux.topology_toml import parse_topology_toml

# Fixed examples in the suite (derandomized: the same 200 every run); MEMPOLICY_FUZZ_EXAMPLES=N
# explores N fresh ones.
FUZZ = settings(max_examples=int(os.environ.get("MEMPOLICY_FUZZ_EXAMPLES", "200")), deadline=None,
                derandomize=not os.environ.get("MEMPOLICY_FUZZ_EXAMPLES"),
                suppress_health_check=[HealthCheck.too_slow])
SRC = str(Path(__file__).resolve().parents[1] / "src")


# -- sizes and lists ----------------------------------------------------------------------------

@pytest.mark.parametrize("text,grammar,value", [
    ("512M", "model", 512 << 20), ("1G", "model", 1 << 30), ("1GiB", "model", 1 << 30),
    ("3KiB", "model", 3 << 10), ("2T", "model", 2 << 40), ("4096", "model", 4096), ("7B", "model", 7),
    ("1GB", "hwloc", 10 ** 9), ("1GiB", "hwloc", 1 << 30), ("5kB", "hwloc", 5000), ("5KiB", "hwloc", 5120),
    ("2MB", "hwloc", 2 * 10 ** 6), ("2mib", "hwloc", 2 << 20), ("3TB", "hwloc", 3 * 10 ** 12),
    ("0x10", "hwloc", 16), ("010", "hwloc", 8), ("-1", "hwloc", (1 << 64) - 1),
    ("0x10M", "trace", 16 << 20), ("4k", "trace", 4096), ("1g", "numactl", 1 << 30),
    ("0x10k", "numactl", 16 << 10),
])
def test_parse_size(text, grammar, value):
    assert units.parse_size(text, grammar) == value


@pytest.mark.parametrize("text,grammar", [
    ("1GB", "model"), ("-1G", "model"), ("1.5G", "model"), ("G", "model"), ("1X", "model"),
    ("１G", "model"), ("1Gx", "hwloc"), ("abc", "trace"), ("99999999999999999999G", "trace"),
])
def test_parse_size_refuses(text, grammar):
    with pytest.raises(ValueError):
        units.parse_size(text, grammar)


def test_parse_list_bounds_before_expanding():
    assert units.parse_list("0-3,5") == [0, 1, 2, 3, 5]
    with pytest.raises(ValueError, match="above"):
        units.parse_list("0-999999999999999")
    with pytest.raises(ValueError, match="ascending"):
        units.parse_list("3,1", ascending=True)


@FUZZ
@given(st.text(max_size=30), st.sampled_from(["model", "hwloc", "trace", "numactl"]))
def test_fuzz_parse_size(text, grammar):
    try:
        v = units.parse_size(text, grammar)
    except ValueError:
        return
    assert isinstance(v, int) and (v >= 0 or grammar == "numactl")


# -- TOML ------------------------------------------------------------------------------------------

GOOD = '[[node]]\nmem = "1G"\ncpus = 2\n\n[[node]]\nmem = 536870912\ncpus = 0\n\n[distance]\n"0-1" = 30\n'


def test_toml_good():
    t = parse_topology_toml(GOOD, "m.toml")
    assert [(n.mem_bytes, len(n.cpus)) for n in t.nodes] == [(1 << 30, 2), (512 << 20, 0)]
    assert t.dist == [[10, 30], [30, 10]]


@pytest.mark.parametrize("text,line,msg", [
    ('[[node]]\nmem = [1, 2]\n', 2, "mem is a list"),
    ('[[node]]\nmem = "lots"\n', 2, "bad size"),
    ('[[node]]\nmem = "1GB"\n', 2, "ambiguous"),
    ('[[node]]\nmem = -1\n', 2, "negative"),
    ('[[node]]\nmem = "-1G"\n', 2, "bad size"),
    ('[[node]]\nmem = "99999999P"\n', 2, "more than"),
    ('[[node]]\ncpus = 1\nmem = 99999999999999999999\n', 3, ""),
    ('[[node]]\nmem = "1G"\ncpus = [1]\n', 3, "cpus is a list"),
    ('[[node]]\nmem = "1G"\ncpus = "2"\n', 3, "cpus is a string"),
    ('[[node]]\nmem = "1G"\ncpus = -2\n', 3, "negative"),
    ('[[node]]\nmem = "1G"\ncpus = 99999\n', 3, "8192"),
    ('[[node]]\nmem = "1G"\nmemory = "1G"\n', 3, "unknown key"),
    ('[[node]]\nmem = "1G"\n[distance]\n"0-1" = 20\n', 4, "names node 1"),
    ('[[node]]\n[[node]]\n[distance]\n"0-1" = "far"\n', 4, "is a string"),
    ('[[node]]\n[[node]]\n[distance]\n"0-1" = 300\n', 4, "11..255"),
    ('[[node]]\n[[node]]\n[distance]\n"1-1" = 20\n', 4, "itself"),
    ('[[node]]\n[[node]]\n[distance]\n"a" = 20\n', 4, "A-B"),
    ('distance = 20\n[[node]]\n[[node]]\n', 1, "distance is a number"),
    ('[[node]]\n[[node]]\ndistance = 20\n', 3, "node 1: unknown key 'distance'"),
    ('[[node]]\nmem = 0\n', 1, "no node has memory"),
    ('[[node]]\ncpus = 0\n', 1, "no node has a CPU"),
    ('nodes = 3\n', 1, "unknown key"),
    ('', 1, "no [[node]]"),
    ('[[node]]\nmem = "1G"\ncpus = \n', 3, ""),
    ("[[node]]\n" * 65, 65, "65 nodes"),
])
def test_toml_mistakes(text, line, msg):
    with pytest.raises(TopologyError) as e:
        parse_topology_toml(text, "m.toml")
    assert str(e.value).startswith(f"m.toml:{line}: "), str(e.value)
    assert msg in str(e.value) and "\n" not in str(e.value)


def test_toml_node_limit_checked_before_building():
    text = "[[node]]\n" * 20000
    with pytest.raises(TopologyError, match="big.toml:65: 20000 nodes"):
        parse_topology_toml(text, "big.toml")
    with pytest.raises(TopologyError, match="big.toml:1: larger than 256 KiB"):
        parse_topology_toml(text * 2, "big.toml")


def test_long_inputs_are_refused_quickly():
    import time

    t0 = time.monotonic()
    for spec in ("numa:2 pu:4096(indexes=" + ":".join(["1*1"] * 5000) + ")", "numa:2 " + "[numa]" * 5000,
                 "numa:2 pu:2(indexes=" + ":".join(["1*1"] * 1000) + ":2*1)"):
        try:
            load_topology(spec)
        except TopologyError as e:
            assert "\n" not in str(e)
    assert time.monotonic() - t0 < 20


def test_toml_file_not_utf8(tmp_path):
    f = tmp_path / "m.toml"
    f.write_bytes(b'[[node]]\nmem = "\xff"\n')
    with pytest.raises(TopologyError, match=r"m.toml:2: not UTF-8"):
        load_topology(str(f))


@FUZZ
@given(st.lists(st.sampled_from([
    "[[node]]", 'mem = "1G"', "mem = 512", "mem = -5", "mem = [1]", 'mem = "x"', "cpus = 2", "cpus = 0",
    'cpus = "3"', "[distance]", '"0-1" = 21', '"0-7" = 21', '"1-0" = 5', "distance = 3", "x = 1", "[",
    'mem = "9999999999T"', "cpus = 1.5", "mem = true",
]), max_size=12))
def test_fuzz_toml(lines):
    text = "\n".join(lines) + "\n"
    try:
        t = parse_topology_toml(text, "f.toml")
    except TopologyError as e:
        assert str(e).startswith("f.toml:") and "\n" not in str(e)
        line = int(str(e).split(":")[1])
        assert 1 <= line <= len(lines) + 1
    else:
        assert 1 <= len(t.nodes) <= 64


# -- --sim and ModelSystem.from_spec ------------------------------------------------------------

BAD_SPECS = [
    "99999999999999999999999x512M",      # OverflowError / MemoryError before
    "3000000x1M",                        # millions of nodes built before the limit was checked
    "4x-512M", "-4x512M", "4x512M/-1", "4x99999999999999999999G", "4x512M/99999999999",
    "4x512M:-5", "4x512M:9999999999999999999", "numa:99999999 pu:1", "pack:4294967295 numa:2 pu:99",
    "4x1GB", "4x", "0x512M", "", "   ", "node:-1 pu:1",
]


@pytest.mark.parametrize("spec", BAD_SPECS)
def test_from_spec_refuses_with_value_error(spec):
    with pytest.raises(ValueError) as e:
        ModelSystem.from_spec(spec)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("spec", BAD_SPECS)
def test_numactl_sim_refuses_in_one_line(spec, capsys):
    assert numactl.main(["--sim", spec, "--hardware"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("numactl: --sim: ") and err.count("\n") == 1


def test_negative_memory_is_not_17_exabytes(tmp_path, capsys):
    f = tmp_path / "neg.toml"
    f.write_text('[[node]]\nmem = -1048576\ncpus = 1\n[[node]]\nmem = "1G"\n')
    assert numactl.main(["--sim", str(f), "--hardware"]) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and cap.err == f"numactl: --sim: {f}:2: node 0: mem is negative\n"
    from mempolicy.alloc.topology import Topology
    with pytest.raises(ValueError, match="negative memory"):
        ModelSystem(Topology.simple(2, -1))


def test_cli_sim_exit_2_no_traceback():
    r = subprocess.run([sys.executable, "-m", "mempolicy", "numactl", "--sim", "99999999999999999999x1G",
                        "--show"], capture_output=True, text=True, env={"PYTHONPATH": SRC}, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


@FUZZ
@given(st.text(alphabet="0123456789x+/:-KMGTPiB numapckr()", max_size=24))
def test_fuzz_sim_specs(spec):
    try:
        t = load_topology(spec)
    except TopologyError as e:
        assert "\n" not in str(e)
    else:
        assert 1 <= len(t.nodes) <= 64 and t.nr_cpus <= 8192


# -- numastat --trace ---------------------------------------------------------------------------

def test_numastat_trace_not_utf8(tmp_path, capsys):
    f = tmp_path / "bad.trace"
    f.write_bytes(b"node 0 mem=512M cpus=1\nmmap A 1 # \xff\n")
    assert numastat.main(["--trace", str(f)]) == 2
    err = capsys.readouterr().err
    assert err == f"{f}:2: not UTF-8 text (byte 0xff)\n"


@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_numastat_trace(tmp_path_factory, blob):
    f = tmp_path_factory.mktemp("t") / "f.trace"
    f.write_bytes(b"node 0 mem=64M cpus=1\n" + blob)
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = numastat.main(["--trace", str(f)])
    assert rc in (0, 2)
    if rc == 2:
        assert err.getvalue().count("\n") == 1 and err.getvalue().startswith(str(f))


@pytest.mark.parametrize("module", ["mempolicy.core.units", "mempolicy.linux.hwloc", "mempolicy.linux.hwloc_xml",
                                    "mempolicy.linux.hwloc_synthetic", "mempolicy.linux.topology_toml",
                                    "mempolicy.linux.topology"])
def test_docstring_examples(module):
    import doctest
    import importlib

    res = doctest.testmod(importlib.import_module(module))
    assert res.failed == 0 and res.attempted > 0


@pytest.mark.parametrize("spec", ["l" + "9" * 5000 + ":2 pu:1", "pack:" + "9" * 5000 + " pu:1",
                                  "numa:2(memory=" + "9" * 5000 + ") pu:1", "4x" + "9" * 5000 + "M",
                                  "9" * 5000 + "x1G", "4x512M/" + "9" * 5000])
def test_numbers_of_thousands_of_digits(spec):
    with pytest.raises(TopologyError) as e:
        load_topology(spec)
    assert "\n" not in str(e.value) and len(str(e.value)) < 300 and "set_int_max_str_digits" not in str(e.value)
    with pytest.raises(TopologyError, match="x.toml:2: a number too large"):
        parse_topology_toml("[[node]]\nmem = " + "9" * 5000 + "\n", "x.toml")


def test_trace_header_beyond_the_model(tmp_path, capsys):
    f = tmp_path / "big.trace"
    f.write_text("node 0 mem=512M cpus=1\nnode 1 mem=0xffffffffffffffff cpus=1\nmmap A 1\n")
    assert numactl.main(["--sim", str(f), "--hardware"]) == 2
    assert capsys.readouterr().err == (f"numactl: --sim: {f}:2: node 1 has 18446744073709551615 bytes, "
                                       "more than the model's 4503599627370496 (4P) per node\n")
