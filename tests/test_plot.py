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
