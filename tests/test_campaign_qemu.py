"""A small fidelity campaign against real Linux 7.3: any divergence fails.

24 traces of one machine block (one header, two boots), fixed seed, every
directed mode in turn.  Boots real kernels under QEMU, so it runs only with
``qemu-system-x86_64`` installed and ``MEMPOLICY_QEMU_TESTS=1``;
``MEMPOLICY_CAMPAIGN_COUNT=N`` runs N traces instead.
"""

from __future__ import annotations

import os
import shutil

import pytest

from mempolicy.campaign import run_campaign
from mempolicy.trace.fuzz import DIRECTED_MODES

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(
        shutil.which("qemu-system-x86_64") is None or os.environ.get("MEMPOLICY_QEMU_TESTS") != "1",
        reason="needs qemu-system-x86_64 and MEMPOLICY_QEMU_TESTS=1",
    ),
]

SEED = 4800            # a whole machine block (seeds 4800..4823 share one header)


def test_small_campaign_has_no_divergence(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMPOLICY_PROGRESS", "0")
    count = int(os.environ.get("MEMPOLICY_CAMPAIGN_COUNT", "24"))
    s = run_campaign(tmp_path, SEED, count, list(DIRECTED_MODES), kernel="7.3", jobs=2)
    assert s["traces"] == count
    assert not s["errors"], s["errors"]
    found = {cmd: [g["trace"] for g in gs] for cmd, gs in s["groups"].items()}
    report = (tmp_path / "report" / "summary.md").read_text()
    assert not found, f"model and Linux differ:\n{report}"
