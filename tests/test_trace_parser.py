"""The trace parser and the ``mempolicy trace run`` command-line contract.

The rules are those of docs/trace-format.md (version 1.2): a
malformed trace is rejected before anything runs with ``FILE:LINE: message``
on standard error and exit status 2, nothing on standard output and never a
traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mempolicy.cli import main
from mempolicy.core.nodemask import Nodemask
from mempolicy.trace.parser import MMAP_BASE, MMAP_STRIDE, TraceError, load_trace, parse_trace
from mempolicy.trace.run import run_trace_text

SRC = str(Path(__file__).resolve().parent.parent / "src")


def error_of(text: str, path: str = "t.trace") -> TraceError:
    with pytest.raises(TraceError) as ei:
        parse_trace(text, path)
    return ei.value


# ---------------------------------------------------------------------------
# Parse errors: FILE:LINE: message
# ---------------------------------------------------------------------------

ERRORS = [
    # (trace, line, words the message must contain)
    ("mmap A 1\nfrobnicate 3\n", 2, ["unknown command", "frobnicate"]),
    ("\n# comment\n\n  \t\nfrob\n", 5, ["unknown command"]),        # blank/comment lines count
    ("mmap A 1x\n", 1, ["bad number", "1x"]),
    ("mmap A 0x\n", 1, ["bad number"]),
    ("mmap A -1\n", 1, ["bad number"]),
    ("cpu 18446744073709551616\n", 1, ["64 bits"]),
    ("mmap A 4503599627370496\n", 1, ["overflows"]),                 # 2^52 pages * 4096
    ("mmap A 1\ntouch B 0 1\n", 2, ["unknown mapping", "B"]),
    ("memfd F 1\nmmap A 1 file=G\n", 2, ["unknown memfd", "G"]),
    ("memfd F 1\ntouch F 0 1\n", 2, ["unknown mapping", "F"]),      # a memfd is not a mapping
    ("mmap A 1\nmmap A 2\n", 2, ["already used", "A"]),
    ("memfd A 1\nmmap A 1\n", 2, ["already used"]),                 # one namespace
    ("mmap 1A 1\n", 1, ["bad name"]),
    ("set_mempolicy bind 2,1\n", 1, ["not ascending"]),
    ("set_mempolicy bind 0-2,2\n", 1, ["not ascending"]),
    ("set_mempolicy bind 3-1\n", 1, ["not ascending"]),
    ("set_mempolicy bind 1024\n", 1, ["above 1023"]),
    ("mmap A 1\nmbind A 0 1 interleave 0-1024\n", 2, ["above 1023"]),
    ("set_mempolicy frob 0\n", 1, ["unknown mode", "frob"]),
    ("set_mempolicy\n", 1, ["missing mode"]),
    ("set_mempolicy bind\n", 1, ["missing node list"]),
    ("mmap A 1\nmbind A 0 1 bind 0 strict static\n", 2, ["mode flag", "static"]),
    ("distance 0 1 10\nmmap A 1\n", 1, ["distance 10", "11..255"]),
    ("distance 0 1 256\nmmap A 1\n", 1, ["distance 256", "11..255"]),
    ("distance 1 1 20\n", 1, ["local distance"]),
    ("node 0 mem=1G cpus=1\nnode 1 mem=1G cpus=1\ndistance 0 2 30\nmmap A 1\n", 3, ["node 2"]),
    ("mmap A 1\nnode 0 mem=1G cpus=1\n", 2, ["after the first command"]),
    ("mmap A 1\ndistance 0 1 20\n", 2, ["after the first command"]),
    ("node 1 mem=1G cpus=1\n", 1, ["out of order"]),
    ("node 0 mem=1G\n", 1, ["missing arguments"]),
    ("node 0 mem=1G cpus=1 cpus=2\n", 1, ["unexpected word"]),
    ("node 0 mem=1G cpus=0\nmmap A 1\n", 1, ["no CPU"]),
    ("mmap A 70000\nwhere A 0 65537\n", 2, ["at most 65536"]),
    ("mmap A 70000\nmove_pages A 0 65537 1\n", 2, ["at most 65536"]),
    ("exit\n", 1, ["exit without fork"]),
    ("fork\nexit\nexit\n", 3, ["exit without fork"]),
    ("fork\nmmap B 1\nexit\ntouch B 0 1\n", 4, ["unknown mapping", "B"]),
    ("fork\nmemfd F 1\nexit\nmmap A 1 file=F\n", 4, ["unknown memfd", "F"]),
    ("fork\nmmap B 1\nexit\nmmap B 1\n", 4, ["already used"]),       # never reused either
    ("fork\nfork\nmmap C 1\nexit\ntouch C 0 1\n", 5, ["unknown mapping"]),
    ("mmap A 1 @0x1000 @0x2000\n", 1, ["unexpected word"]),
    ("mmap A 1 off=2\n", 1, ["off= needs file="]),
    ("mmap A 1 shared private\n", 1, ["both shared and private"]),
    ("mmap A 1\nmprotect A 0 1 rx\n", 2, ["ro or rw"]),
    ("mmap A 1\ntouch A 0 1 read read\n", 2, ["given twice"]),
    ("mmap A 1\nmunmap A 0\n", 2, ["missing arguments"]),
    ("raw frob 1\n", 1, ["unknown raw call"]),
    ("cred\n", 1, ["needs uid=, gid= or drop="]),
    ("cred uid=1000 uid=0\n", 1, ["given twice"]),
    ("cred uid=1,2\n", 1, ["one id or three"]),
    ("cred uid=4294967295\n", 1, ["above 4294967294"]),
    ("cred gid=x\n", 1, ["bad number"]),
    ("cred drop=sys_admin\n", 1, ["unknown capability", "sys_admin"]),
    ("cred root\n", 1, ["unexpected word"]),
    ("migrate_pages 0 1 parent\n", 1, ["outside a fork"]),
    ("fork\nexit\nmmap A 1\nwhere A 0 1 parent\n", 4, ["outside a fork"]),
    ("fork\nmigrate_pages 0 1 self\n", 2, ["unexpected word"]),
    ("fork\nmmap A 1\nmove_pages A 0 1 0 parent all\n", 3, ["unexpected word"]),
]


@pytest.mark.parametrize("text, line, words", ERRORS, ids=[e[0].replace("\n", "|")[:40] for e in ERRORS])
def test_parse_error_names_file_and_line(text, line, words):
    e = error_of(text, "dir/case.trace")
    assert e.lineno == line
    assert e.path == "dir/case.trace"
    assert str(e) == f"dir/case.trace:{line}: {e.message}"
    for w in words:
        assert w in e.message


def test_error_is_the_first_problem():
    e = error_of("mmap A 1\nfrob\nmmap A 1\n")
    assert e.lineno == 2


# ---------------------------------------------------------------------------
# What a valid trace means
# ---------------------------------------------------------------------------

def test_default_machine_is_four_nodes():
    t = parse_trace("mmap A 1\n")
    assert [(n.mem, n.cpus) for n in t.machine.nodes] == [(512 << 20, 1)] * 4
    assert t.machine.distance(0, 3) == 20 and t.machine.distance(2, 2) == 10


def test_header_and_later_distance_wins():
    t = parse_trace("node 0 mem=1G cpus=2\nnode 1 mem=0 cpus=1\ndistance 0 1 30\n"
                    "distance 1 0 40\nmmap A 1\n")
    assert [(n.mem, n.cpus) for n in t.machine.nodes] == [(1 << 30, 2), (0, 1)]
    assert t.machine.distance(0, 1) == t.machine.distance(1, 0) == 40
    assert t.machine.cpu_ranges() == [range(0, 2), range(2, 3)]


def test_numbers_hex_comments_and_tabs():
    t = parse_trace("mmap\tA 0x10   # sixteen pages\nset_mempolicy bind 0,2-3 static\n")
    assert t.commands[0].args["pages"] == 16
    sm = t.commands[1].args
    assert sm["nodes"] == Nodemask([0, 2, 3]) and sm["mode_flags"] == 0x8000


def test_empty_node_list_is_dash():
    t = parse_trace("set_mempolicy default -\n")
    assert t.commands[0].args["nodes"] == Nodemask()


def test_mmap_addresses_count_every_mmap_line():
    t = parse_trace("mmap A 1\nmmap B 1 @0x7000\nfork\nmmap C 1\nexit\nmmap D 1\n")
    addrs = [c.args["addr"] for c in t.commands if c.name == "mmap"]
    assert addrs == [MMAP_BASE, 0x7000, MMAP_BASE + 2 * MMAP_STRIDE, MMAP_BASE + 3 * MMAP_STRIDE]


def test_names_from_before_a_fork_stay_known():
    t = parse_trace("mmap A 1\nfork\ntouch A 0 1\nmmap B 1\nexit\ntouch A 0 1\n")
    assert [c.name for c in t.commands] == ["mmap", "fork", "touch", "mmap", "exit", "touch"]


def test_raw_commands():
    t = parse_trace("mmap A 1\nraw mbind A 0 4096 2 0x1,0x0 129 0\nraw get_mempolicy null 0 A+8 3\n")
    assert t.commands[1].name == "raw-mbind" and t.commands[1].args["mask"] == [1, 0]
    assert t.commands[2].args["maskbits"] is None and t.commands[2].args["addr"] == ("A", 8)


def test_spec_example_output():
    # trace-format.md "Example"
    text = ("node 0 mem=512M cpus=1\nnode 1 mem=512M cpus=1\nmmap A 8\n"
            "mbind A 0 8 interleave 0-1\ntouch A 0 8\nwhere A 0 8\nnuma_maps A\n")
    assert run_trace_text(text) == (
        "3 mmap: ok\n"
        "4 mbind: ok\n"
        "5 touch: ok\n"
        "6 where: 0 1 0 1 0 1 0 1\n"
        "7 numa_maps: A+0 interleave:0-1 anon=8 dirty=8 N0=4 N1=4 kernelpagesize_kB=4\n")


def test_cred_and_parent():
    t = parse_trace("fork\ncred drop=sys_nice,sys_ptrace gid=5 uid=0,1000,0\n"
                    "migrate_pages 0 1 parent\nmmap A 1\nmove_pages A 0 1 1 all parent\nwhere A 0 1\n")
    cred, mig, _, move, where = (c.args for c in t.commands[1:])
    assert cred == {"uid": (0, 1000, 0), "gid": (5, 5, 5), "drop": (1 << 23) | (1 << 19)}
    assert mig["parent"] and move["parent"] and move["all"] and not where["parent"]
    assert parse_trace("cred drop=all\n").commands[0].args["drop"] == (1 << 41) - 1


def test_load_trace_reads_a_file(tmp_path):
    p = tmp_path / "a.trace"
    p.write_text("mmap A 1\n")
    assert load_trace(p).path == str(p)
    with pytest.raises(OSError):
        load_trace(tmp_path / "missing.trace")


def test_non_ascii_digits_are_refused():
    e = error_of("mmap A \u0663\n")
    assert (e.lineno, e.message) == (1, "non-ASCII character outside a comment")


def test_form_feed_does_not_start_a_new_line():
    # "\x0c" is a control character on line 1 (Python's str.splitlines would
    # have made it a line break); frob is on line 2
    e = error_of("mmap A 1\x0c\nfrob\n")
    assert (e.lineno, e.message) == (1, "control character 0x0c")
    assert error_of("mmap A 1\nfrob\n").lineno == 2


def test_crlf_line_ends_are_accepted():
    t = parse_trace("mmap A 1\r\ntouch A 0 1\r\n")
    assert [(c.lineno, c.name) for c in t.commands] == [(1, "mmap"), (2, "touch")]


# ---------------------------------------------------------------------------
# The command line: exit status 2, one line on stderr, nothing on stdout
# ---------------------------------------------------------------------------

def test_cli_in_process_rejects_before_running(tmp_path, capsys):
    good = tmp_path / "good.trace"
    good.write_text("mmap A 1\ntouch A 0 1\n")
    bad = tmp_path / "bad.trace"
    bad.write_text("mmap A 1\n\nfrob\n")
    assert main(["trace", "run", str(good), str(bad)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"{bad}:3: ") and "frob" in err
    assert err.count("\n") == 1 and err.endswith("\n")


def test_cli_in_process_runs_good_traces(tmp_path, capsys):
    a = tmp_path / "a.trace"
    a.write_text("mmap A 1\n")
    b = tmp_path / "b.trace"
    b.write_text("get_mempolicy\n")
    assert main(["trace", "run", str(a), str(b)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    # each trace under a header naming it, in the order given
    lines = [line for line in out.splitlines() if line]
    assert lines == [f"==> {a} <==", "1 mmap: ok", f"==> {b} <==", "1 get_mempolicy: mode=default nodes="]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "mempolicy", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def test_cli_malformed_trace_exits_2(tmp_path):
    (tmp_path / "bad.trace").write_text("node 0 mem=1G cpus=1\nmmap A 1\nmbind A 0 1 bind 7,3\n")
    r = run_cli("trace", "run", "bad.trace", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.startswith("bad.trace:3: ") and "ascending" in r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


@pytest.mark.parametrize("setup, name, expect", [
    (None, "missing.trace", "missing.trace: "),
    ("dir", "adir", "adir: "),
    ("binary", "bin.trace", "bin.trace:1: "),
])
def test_cli_unreadable_file_exits_2_cleanly(tmp_path, setup, name, expect):
    if setup == "dir":
        (tmp_path / name).mkdir()
    elif setup == "binary":
        (tmp_path / name).write_bytes(b"\xff\xfe\x00mmap\x80\n")
    r = run_cli("trace", "run", name, cwd=tmp_path)
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.startswith(expect)
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_cli_valid_trace_prints_canonical_output(tmp_path):
    (tmp_path / "ok.trace").write_text("mmap A 2\ntouch A 0 2\nwhere A 0 2\nwhere A 0 0\n")
    r = run_cli("trace", "run", "ok.trace", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert r.stdout == "1 mmap: ok\n2 touch: ok\n3 where: 0 0\n4 where:\n"
