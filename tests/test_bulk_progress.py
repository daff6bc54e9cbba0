"""The progress bar of long bulk runs: drawn on a terminal, silent otherwise."""

from __future__ import annotations

import io

from mempolicy.progress import Progress


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_draws_on_a_terminal_after_the_delay(monkeypatch):
    monkeypatch.delenv("MEMPOLICY_PROGRESS", raising=False)
    s = Tty()
    with Progress(1000, "touch A", stream=s, delay=0) as bar:
        bar.update(500)
        bar.update(1000)
    text = s.getvalue()
    assert "touch A [" in text and "50.0%" in text and "1000/1000 pages" in text
    assert text.endswith("\r\x1b[K")              # erased at the end


def test_silent_when_not_a_terminal_or_short(monkeypatch):
    monkeypatch.delenv("MEMPOLICY_PROGRESS", raising=False)
    s = io.StringIO()
    with Progress(1000, stream=s, delay=0) as bar:
        bar.update(500)
    assert s.getvalue() == ""
    t = Tty()
    with Progress(1000, stream=t, delay=60) as bar:  # a short run never draws
        bar.update(999)
    assert t.getvalue() == ""


def test_environment_switch(monkeypatch):
    monkeypatch.setenv("MEMPOLICY_PROGRESS", "0")
    s = Tty()
    Progress(10, stream=s, delay=0).update(5)
    assert s.getvalue() == ""
    monkeypatch.setenv("MEMPOLICY_PROGRESS", "1")
    s = io.StringIO()
    Progress(10, stream=s, delay=0).update(5)
    assert "50.0%" in s.getvalue()


def test_trace_touch_reports_progress(monkeypatch):
    """A large touch in a trace calls the bar with growing page counts."""
    import pytest

    pytest.importorskip("numpy")
    from mempolicy.trace import run as runmod

    seen = []

    class Rec(Progress):
        def update(self, done):
            seen.append(done)

    monkeypatch.setattr(runmod, "Progress", Rec)
    monkeypatch.setattr(runmod, "PROGRESS_MIN_PAGES", 10)
    out = runmod.run_trace_text("mmap A 100000\ntouch A 0 100000\n")
    assert out.splitlines()[-1] == "2 touch: ok"
    assert seen and seen == sorted(seen) and seen[-1] == 100000
