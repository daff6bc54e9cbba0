"""Progress bars: an ETA, the terminal's width, rich when installed, plain otherwise."""

from __future__ import annotations

import io
import re
import sys

import pytest

from mempolicy.progress import Progress, format_eta, terminal_width


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _lines(text: str) -> list[str]:
    """What is visible of each redraw: ANSI sequences removed, split at carriage returns."""
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    return [part for part in re.split(r"[\r\n]", plain) if part]


@pytest.mark.parametrize("width", [200, 100, 80, 60, 40, 30, 20, 12, 3])
def test_plain_bar_fits_the_width(width):
    p = Progress(10_000, "touch A", delay=0, width=width, backend="plain")
    p.start -= 5
    for done in (0, 1, 2500, 9999, 10_000):
        assert len(p.line(done)) <= max(width - 1, 1)
    if width >= 40:
        assert "ETA" in p.line(2500) and "[" in p.line(2500)


def test_eta_from_the_rate_so_far():
    p = Progress(1000, delay=0, backend="plain")
    p.start -= 10                               # 10 s for 250 pages: 30 s to go
    assert p.eta(250) == pytest.approx(30, abs=0.5)
    assert p.eta(0) is None and p.eta(1000) == 0
    assert "ETA 0:30" in p.line(250)
    assert (format_eta(0), format_eta(59.6), format_eta(3600), format_eta(float("inf"))) == \
        ("0:00", "1:00", "1:00:00", "--:--")


def test_the_width_follows_columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", "37")
    assert terminal_width(io.StringIO()) == 37
    p = Progress(100, "x", delay=0, backend="plain")
    assert len(p.line(50)) <= 36
    monkeypatch.delenv("COLUMNS")
    assert terminal_width(io.StringIO(), default=77) == 77     # not a terminal


def test_plain_draws_then_erases(monkeypatch):
    monkeypatch.delenv("MEMPOLICY_PROGRESS", raising=False)
    s = Tty()
    with Progress(1000, "touch A", stream=s, delay=0, width=70, backend="plain") as bar:
        bar.update(500)
    text = s.getvalue()
    assert text.endswith("\r\x1b[K")
    assert all(len(line) <= 69 for line in _lines(text))
    assert "ETA" in text


@pytest.mark.parametrize("width", [100, 60, 40])
def test_rich_draws_within_the_width(monkeypatch, width):
    pytest.importorskip("rich")
    monkeypatch.delenv("MEMPOLICY_PROGRESS", raising=False)
    s = Tty()
    bar = Progress(1000, "touch A", stream=s, delay=0, width=width, backend="rich")
    assert bar.backend == "rich"
    bar.start -= 2
    bar.update(300)
    bar.last = 0
    bar.update(600)
    drawn = s.getvalue()
    bar.close()
    lines = _lines(drawn)
    assert lines and all(len(line) <= width for line in lines)
    assert any("touch A" in line and "60%" in line and "ETA" in line for line in lines)
    assert "…" not in drawn                     # nothing cut short
    if width >= 60:
        assert any("600/1000" in line for line in lines)


def test_plain_when_rich_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "rich.progress", None)
    monkeypatch.setitem(sys.modules, "rich", None)
    assert Progress(10, stream=Tty(), backend="rich").backend == "plain"
    assert Progress(10, stream=Tty()).backend == "plain"


def test_a_stringio_is_not_a_terminal_for_rich():
    pytest.importorskip("rich")
    assert Progress(10, stream=Tty()).backend == "plain"      # no fileno: plain
