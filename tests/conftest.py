"""Shared test set-up: import path, hypothesis profiles and small kernel fixtures."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

try:
    from hypothesis import HealthCheck, settings
except ImportError:  # pragma: no cover - hypothesis is a test dependency
    pass
else:
    # The model runs in-process and fast, but a generated syscall sequence
    # can take a few milliseconds; never fail on timing.
    settings.register_profile(
        "default",
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    settings.register_profile(
        "thorough",
        deadline=None,
        max_examples=1000,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    settings.load_profile(os.environ.get("MEMPOLICY_HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def kernel4():
    """A booted 4-node machine (512M and one CPU per node, distance 20) and its first task."""
    from mempolicy.alloc.topology import Topology
    from mempolicy.kernel import Kernel

    return Kernel.boot(Topology.simple(4))
