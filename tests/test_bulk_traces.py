"""Every recorded trace, with the bulk fault path taking every run it can (however short),
prints exactly what the per-page path prints."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("numpy")

from mempolicy.alloc import bulk  # noqa: E402
from mempolicy.trace.parser import load_trace  # noqa: E402
from mempolicy.trace.run import run_trace  # noqa: E402

TRACES = sorted((Path(__file__).parent / "traces").rglob("*.trace"))
EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.trace"))


@pytest.mark.parametrize("trace", TRACES + EXAMPLES, ids=lambda p: p.stem)
def test_bulk_and_per_page_print_the_same(trace: Path, monkeypatch):
    t = load_trace(trace)
    if any(c.name == "touch" and c.args["pages"] > 1_000_000 for c in t.commands):
        pytest.skip("too large to fault page by page (tests/test_scale.py runs it in bulk)")
    per_page = run_trace(t, bulk=False)
    monkeypatch.setattr(bulk, "BULK_MIN_PAGES", 1)
    assert run_trace(t, bulk=True) == per_page
