"""The model's parser and the oracle's runner read a trace the same way.

The runner is compiled for the host and run with ``--parse-only`` (which
needs no NUMA machine): for every input, either both accept it and see the
same command lines and words, or both refuse it with the same line and
message.  The limits come from one place (``mempolicy.trace.limits``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mempolicy.oracle import initramfs
from mempolicy.trace import limits
from mempolicy.trace.fuzz import generate
from mempolicy.trace.parser import HEADER_WORDS, TraceError, parse_trace, scan_text

TRACES = Path(__file__).parent / "traces"


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    out = tmp_path_factory.mktemp("runner") / "runner"
    r = subprocess.run(["gcc", *initramfs.runner_cflags(), "-Wall", "-Werror", "-o", str(out),
                        str(initramfs.RUNNER_C)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"runner.c does not compile:\n{r.stderr}")
    return out


def runner_reads(runner: Path, data: bytes, tmp: Path) -> tuple:
    """("ok", [(line, words)...]) or ("error", line, message) from runner --parse-only."""
    f = tmp / "t.trace"
    f.write_bytes(data)
    r = subprocess.run([str(runner), "--parse-only", str(f)], capture_output=True, timeout=120)
    if r.returncode == 0:
        cmds = []
        for ln in r.stdout.decode().splitlines():
            n, *words = ln.split(" ")
            cmds.append((int(n), words))
        return ("ok", cmds)
    err = r.stderr.decode().strip()
    assert r.returncode == 2 and err.startswith("runner: line "), err
    n, _, msg = err[len("runner: line "):].partition(": ")
    return ("error", int(n), msg)


def parser_reads(text: str) -> tuple:
    """The same for the Python side (scan_text: the grammar and the limits)."""
    try:
        lines = scan_text(text, "t")
    except TraceError as e:
        return ("error", e.lineno, e.message)
    header = next((i for i, (_, w) in enumerate(lines) if w[0] not in HEADER_WORDS), len(lines))
    return ("ok", lines[header:])


def agree(runner: Path, text: str, tmp: Path) -> tuple:
    got = runner_reads(runner, text.encode("utf-8", "surrogatepass"), tmp)
    assert got == parser_reads(text), repr(text[:200])
    # The whole parser refuses at least what the runner refuses, with its words.
    try:
        t = parse_trace(text, "t")
    except TraceError as e:
        if got[0] == "error":
            assert (e.lineno, e.message) == got[1:]
    else:
        assert got[0] == "ok"
        assert [(c.lineno, list(c.words)) for c in t.commands] == got[1]
    return got


# ---- the characters that used to divide them -----------------------------


@pytest.mark.parametrize("text, line, message", [
    ("mmap A 1\ntouch A 0 1 # a\0b\nwhere A 0 1\n", 2, "NUL byte"),
    ("mmap\xa0A 1\n", 1, "non-ASCII character outside a comment"),
    ("mmap A 1\nmmap B\u20031\n", 2, "non-ASCII character outside a comment"),
    ("mmap A 1\x1c\n", 1, "control character 0x1c"),
    ("mmap A 1\x0b\n", 1, "control character 0x0b"),
    ("mmap A 1\r\r\n", 1, "control character 0x0d"),
    ("mmap A 1 # \x7f\n", 1, "control character 0x7f"),
])
def test_both_refuse(runner, tmp_path, text, line, message):
    assert agree(runner, text, tmp_path) == ("error", line, message)


def test_both_accept_utf8_comments_tabs_and_crlf(runner, tmp_path):
    text = "# caf\xe9 \u2003 \xa0\r\nnode 0 mem=512M cpus=1\nmmap\tA 1 # \u00e9\r\n\t touch A 0 1"
    assert agree(runner, text, tmp_path) == ("ok", [(3, ["mmap", "A", "1"]),
                                                    (4, ["touch", "A", "0", "1"])])


def test_runner_stops_at_nothing_the_parser_accepts(runner, tmp_path):
    """A NUL used to end the runner's text silently: the rest of the trace never ran."""
    got = runner_reads(runner, b"mmap A 1\n# \0\ntouch A 0 1\n", tmp_path)
    assert got == ("error", 2, "NUL byte")


# ---- the limits -------------------------------------------------------------


def test_runner_limits_come_from_python(tmp_path):
    """runner.c has no limits of its own: without the -D flags it does not build."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    r = subprocess.run(["gcc", "-fsyntax-only", str(initramfs.RUNNER_C)],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "mempolicy.trace.limits" in r.stderr


def _limit_cases():
    cmd = "cpu 0\n"
    yield ("text size", "# " + "x" * (limits.MAX_TEXT - 4) + "\n",
           "# " + "x" * (limits.MAX_TEXT - 3) + "\n",
           (1, f"the trace is larger than {limits.MAX_TEXT - 1} bytes"))
    yield ("commands", cmd * limits.MAX_CMDS, cmd * (limits.MAX_CMDS + 1),
           (limits.MAX_CMDS + 1, f"more than {limits.MAX_CMDS} commands"))
    words = limits.MAX_TOKENS
    yield ("words", "node 0 mem=1G cpus=1\ncpu" + " 0" * (words - 1) + "\n",
           "cpu\ncpu" + " 0" * (words - 1) + "\n",
           (2, f"more than {words} words in commands"))
    names = "".join(f"mmap M{i} 1\n" for i in range(limits.MAX_NAMES))
    yield ("names", names, names + "memfd F 1\n",
           (limits.MAX_NAMES + 1, f"more than {limits.MAX_NAMES} mmap and memfd lines"))
    w = limits.MAX_WORD
    yield ("word length", f"mmap {'N' * w} 1\n", f"mmap A 1\nmmap {'N' * (w + 1)} 1\n",
           (2, f"a word longer than {w} characters"))
    d = limits.MAX_FORK_DEPTH
    yield ("fork depth", "fork\n" * d + "exit\n" * d, "fork\n" * (d + 1),
           (d + 1, f"forks nested more than {d} deep"))


@pytest.mark.parametrize("what, fits, too_much, error", list(_limit_cases()),
                         ids=[c[0] for c in _limit_cases()])
def test_limits_are_the_same_on_both_sides(runner, tmp_path, what, fits, too_much, error):
    assert agree(runner, fits, tmp_path)[0] == "ok"
    assert agree(runner, too_much, tmp_path) == ("error", *error)


def test_runner_refuses_another_command_count(runner, tmp_path):
    """The oracle passes the parser's command count; a runner that reads fewer stops."""
    f = tmp_path / "t.trace"
    f.write_text("node 0 mem=512M cpus=1\nget_mempolicy\n")
    r = subprocess.run([str(runner), "--no-align", "--commands", "2", str(f)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip() == "runner: read 1 commands where the parser read 2"


# ---- mutation fuzzing --------------------------------------------------------

_SEEDS = [p.read_text() for p in sorted(TRACES.glob("*.trace"))[:12]] + [generate(s) for s in range(4)]
_ODD = ["N" * limits.MAX_WORD, "\0", "\xa0", "\u2003", "\x1c", "\x0b", "\x0c", "\r", "\r\n", "\t", " ", "#", "\n",
        "\xe9", "\x7f", "\x85", "\u2028", "\ufeff", "A", "0", "-", "exit", "fork", "mmap Z 1"]


@settings(max_examples=150)
@given(seed=st.sampled_from(range(len(_SEEDS))),
       edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 2),
                                st.sampled_from(_ODD)), min_size=1, max_size=6))
def test_mutated_traces_read_the_same(runner, tmp_path_factory, seed, edits):
    text = _SEEDS[seed]
    for where, how, piece in edits:
        i = int(where * (len(text) + 1))
        if how == 0:
            text = text[:i] + piece + text[i:]          # insert
        elif how == 1:
            text = text[:i] + piece + text[i + 1:]      # replace one character
        else:
            text = text[:i] + text[i + len(piece):]     # delete
    agree(runner, text, tmp_path_factory.mktemp("m"))


def test_a_child_that_stops_early_stops_the_run(runner, tmp_path):
    """The child dies on a name the parser would refuse: the parent must not exit 0."""
    f = tmp_path / "t.trace"
    f.write_text("node 0 mem=512M cpus=1\nfork\ntouch Z 0 1\nexit\nget_mempolicy\n")
    r = subprocess.run([str(runner), "--no-align", str(f)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and r.stderr.strip() == "runner: unknown name 'Z'"
    assert "get_mempolicy" not in r.stdout
