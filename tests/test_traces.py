"""The model against outputs recorded from Linux 7.3 (tests/traces/*.expected).

Each ``.expected`` file was written by ``mempolicy trace record`` from a real
kernel booted under QEMU; none comes from the model.
"""

from pathlib import Path

import pytest

from mempolicy.trace.run import run_trace_text

TRACES = Path(__file__).parent / "traces"
CASES = sorted(p for p in TRACES.rglob("*.trace") if p.with_suffix(".expected").exists())


def test_corpus_is_recorded():
    assert len(CASES) >= 60, "the corpus needs at least 60 recorded traces"
    unrecorded = [p.name for p in TRACES.rglob("*.trace") if not p.with_suffix(".expected").exists()]
    assert not unrecorded, f"traces without a recorded .expected: {unrecorded}"


@pytest.mark.parametrize("trace", CASES, ids=[str(p.relative_to(TRACES).with_suffix("")) for p in CASES])
def test_model_matches_linux(trace: Path):
    expected = trace.with_suffix(".expected").read_text()
    got = run_trace_text(trace.read_text(), str(trace))
    assert got.splitlines() == expected.splitlines()
