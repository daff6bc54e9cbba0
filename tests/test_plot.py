"""``mempolicy plot``: a PNG of where a mapping's pages landed and of each node's use."""

from __future__ import annotations

import sys

import pytest

TRACE = """node 0 mem=512M cpus=1
node 1 mem=512M cpus=1
node 2 mem=256M cpus=0
mmap A 64
mbind A 0 64 interleave 0-2
touch A 0 64
mmap B 3000
set_mempolicy bind 2
touch B 0 3000
touch B 100 50 read
"""


def _trace(tmp_path):
    p = tmp_path / "t.trace"
    p.write_text(TRACE)
    return p


def test_plot_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    pytest.importorskip("numpy")
    from mempolicy.cli import main

    out = tmp_path / "out.png"
    assert main(["plot", str(_trace(tmp_path)), "--map", "A", "--map", "B", "-o", str(out)]) == 0
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert capsys.readouterr().out.strip() == str(out)


def test_plot_default_output_and_all_mappings(tmp_path):
    pytest.importorskip("matplotlib")
    from mempolicy.frontends.plot import main

    t = _trace(tmp_path)
    assert main([str(t)]) == 0
    assert (tmp_path / "t.png").exists()


def test_plot_of_a_model_state(tmp_path):
    pytest.importorskip("matplotlib")
    from mempolicy.api import ModelSystem
    from mempolicy.alloc.topology import Topology
    from mempolicy.frontends.plot import mapping_bins, plot_state

    m = ModelSystem(Topology.simple(2))
    addr = 0x200000000000
    m.mmap(100 * 4096, addr)
    m.touch(addr, 100 * 4096)
    edges, counts = mapping_bins(m.kernel, m.task, addr, 100, 10)
    assert counts.sum() == 100 and counts[:, 0].sum() == 100 and list(edges) == list(range(0, 101, 10))
    plot_state(m.kernel, m.task, {"A": (addr, 100)}, tmp_path / "m.png")
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"


def test_plot_errors(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from mempolicy.frontends.plot import main

    t = _trace(tmp_path)
    assert main([str(t), "--map", "Z"]) == 2
    assert "no mapping 'Z'" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.trace")]) == 2
    bad = tmp_path / "bad.trace"
    bad.write_text("frobnicate\n")
    assert main([str(bad)]) == 2
    assert "bad.trace:1:" in capsys.readouterr().err


def test_plot_without_matplotlib_says_so(tmp_path, monkeypatch, capsys):
    from mempolicy.frontends.plot import main

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main([str(_trace(tmp_path))]) == 2
    assert "needs matplotlib" in capsys.readouterr().err


def test_plot_default_output_is_next_to_the_trace_under_its_name(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from mempolicy.frontends.plot import main

    d = tmp_path / "a.b"
    d.mkdir()
    t = d / "noext"
    t.write_text(TRACE)
    assert main([str(t)]) == 0
    assert (d / "noext.png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "a.png").exists()
    assert capsys.readouterr().out.strip() == str(d / "noext.png")


def test_plot_output_in_a_missing_directory_is_one_line(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from mempolicy.cli import main

    out = tmp_path / "missing-dir" / "x.png"
    assert main(["plot", str(_trace(tmp_path)), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot write {out}" in err
    assert main(["plot", str(_trace(tmp_path)), "-o", str(tmp_path / "x.nope")]) == 2
    assert "unknown image format 'nope'" in capsys.readouterr().err


def test_plot_failure_keeps_the_old_file(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib.figure

    from mempolicy.frontends.plot import main

    out = tmp_path / "keep.png"
    out.write_bytes(b"old")

    def broken(self, fname, **kw):
        with open(fname, "wb") as f:
            f.write(b"\x89PNG half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", broken)
    assert main([str(_trace(tmp_path)), "-o", str(out)]) == 2
    assert out.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.png", "t.trace"]


# ---- what the drawing shows ------------------------------------------------------------

VMAS = """node 0 mem=256M cpus=1
node 1 mem=256M cpus=1
node 2 mem=256M cpus=1
node 3 mem=256M cpus=1
mmap A 64
mbind A 0 16 interleave 0-1
mbind A 16 16 bind 3
touch A 0 64
mmap S 3
mbind S 0 3 bind 1
touch S 0 3
"""


def _figure(text: str, names: list[str]):
    from mempolicy.frontends.plot import draw_state
    from mempolicy.trace.parser import parse_trace
    from mempolicy.trace.run import TraceRunner

    runner = TraceRunner(parse_trace(text, "t.trace"))
    runner.run()
    return draw_state(runner.kernel, runner.task, {n: runner.maps[n][:2] for n in names})


def test_plot_marks_each_vma_and_its_policy():
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    fig = _figure(VMAS, ["A"])
    ax = fig.axes[0]
    lines = sorted(line.get_xdata()[0] for line in ax.get_lines() if line.get_linestyle() == "--")
    assert lines == [16, 32]                    # mbind split A into three VMAs
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["interleave:0-1", "bind:3", "default"]
    assert "3 VMAs" in ax.get_title(loc="left")
    plt.close(fig)


def test_plot_page_ticks_are_whole_pages():
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    fig = _figure(VMAS, ["S"])
    fig.canvas.draw()
    ticks = [t for t in fig.axes[0].get_xticks() if 0 <= t <= 3]
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)
    plt.close(fig)


def test_plot_legend_leaves_out_empty_nodes():
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    fig = _figure(VMAS, ["S"])                  # every page of S is on node 1
    labels = [t.get_text() for lg in fig.legends for t in lg.get_texts()]
    assert labels == ["N1"]
    plt.close(fig)


def _lab(rgb) -> tuple[float, float, float]:
    """sRGB to CIELAB (D65)."""
    def lin(u: float) -> float:
        return u / 12.92 if u <= 0.04045 else ((u + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(x) for x in rgb[:3])
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116

    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


@pytest.mark.parametrize("n", [2, 4, 8, 9, 10, 12, 16])
def test_plot_node_colours_are_distinct(n):
    pytest.importorskip("matplotlib")
    import itertools
    import math

    from mempolicy.frontends.plot import node_colours

    labs = [_lab(c) for c in node_colours(n)]
    greys = [_lab((v, v, v)) for v in (0.55, 0.8, 1.0)]          # kernel, zero page, free
    assert min(math.dist(a, b) for a, b in itertools.combinations(labs, 2)) > 20
    assert min(math.dist(a, g) for a in labs for g in greys) > 15
    assert all(math.hypot(a[1], a[2]) > 15 for a in labs)        # no node is grey


@pytest.mark.parametrize("out", ["missing-dir/x.png", "x.unknownformat"])
def test_plot_unwritable_output_is_one_line_and_status_2(tmp_path, out):
    pytest.importorskip("matplotlib")
    import os
    import subprocess
    from pathlib import Path

    src = str(Path(__file__).resolve().parent.parent / "src")
    env = dict(os.environ, PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t = _trace(tmp_path)
    r = subprocess.run([sys.executable, "-m", "mempolicy", "plot", str(t), "-o", out],
                       capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"mempolicy plot: cannot write {out}")


SHM = """node 0 mem=512M cpus=1
node 1 mem=512M cpus=1
node 2 mem=256M cpus=0
memfd F 3000
mmap S 3000 file=F
mbind S 0 1000 interleave 0-2
mbind S 1000 2000 bind 1
touch S 0 2500
mmap P 3000 file=F private
touch P 2000 1000 read
"""


@pytest.mark.parametrize("name", ["S", "P"])
def test_plot_bins_count_shmem_pages_the_bulk_path_placed(name):
    """A memfd touched in one step keeps its pages compact (pte code FILE); the
    per-node bins count them as the same touch made page by page does."""
    np = pytest.importorskip("numpy")
    from mempolicy.frontends.plot import mapping_bins
    from mempolicy.trace.parser import parse_trace
    from mempolicy.trace.run import TraceRunner

    bins = {}
    for bulk in (True, False):
        runner = TraceRunner(parse_trace(SHM, "t.trace"), bulk=bulk)
        runner.run()
        addr, pages = runner.maps[name][:2]
        bins[bulk] = mapping_bins(runner.kernel, runner.task, addr, pages, 100)[1]
    assert bins[False].sum() > 0
    np.testing.assert_array_equal(bins[True], bins[False])
