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



BELOW_LOW = """node 0 mem=512M cpus=1
node 1 mem=64M cpus=0
mmap A 20000
set_mempolicy preferred 1
touch A 0 20000
set_mempolicy preferred_many 1
"""
BELOW_LOW_TOUCH = {"anon": "mmap B 100\ntouch B 0 100\nnuma_maps B\n",
                   "memfd": "memfd F 100\nmmap S 100 file=F\ntouch S 0 100\nnuma_maps S\n"}


@pytest.mark.parametrize("kernel", ["6.1", "7.3"])
@pytest.mark.parametrize("kind", sorted(BELOW_LOW_TOUCH))
def test_preferred_many_below_low_same_in_bulk(kernel, kind):
    """On 6.1 a preferred-many first pass takes a full node's pages between its min
    and low watermarks; the bulk path (anonymous and shmem) leaves those runs to the
    per-page path, so both print the same."""
    from mempolicy.trace.parser import parse_trace

    trace = parse_trace(BELOW_LOW + BELOW_LOW_TOUCH[kind], "below-low.trace")
    bulk, per_page = (run_trace(trace, bulk=b, kernel=kernel) for b in (True, False))
    assert bulk == per_page
    assert " N1=" in bulk[-1] if kernel == "6.1" else " N1=" not in bulk[-1]
