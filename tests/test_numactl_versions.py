"""Which numactl ``mempolicy numactl`` clones: option, environment, the installed one, 2.0.16."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mempolicy.frontends.numactl import versions


def _fake(tmp_path: Path, script: str) -> str:
    p = tmp_path / "numactl"
    p.write_text("#!/bin/sh\n" + script + "\n")
    p.chmod(p.stat().st_mode | stat.S_IXUSR)
    return str(p)


@pytest.mark.parametrize("script, want", [
    ('echo 2.0.19; exit 0', "2.0.19"),
    ('echo 2.0.20; exit 0', "2.0.19"),                 # newer: the newest modelled
    ('echo 2.0.18; exit 0', "2.0.16"),                 # between: the older
    ("echo \"numactl: unrecognized option '--version'\" >&2; exit 1", "2.0.16"),   # 2.0.16
    ('echo garbage; exit 0', None),
    ('exit 3', None),
])
def test_installed_version(tmp_path, script, want):
    assert versions.installed_version(_fake(tmp_path, script)) == want


def test_selection_order(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    _fake(tmp_path, "echo 2.0.19")
    monkeypatch.delenv(versions.ENV, raising=False)
    assert versions.select_version() == "2.0.19"          # the installed one
    monkeypatch.setenv(versions.ENV, "2.0.16")
    assert versions.select_version() == "2.0.16"          # the environment over it
    assert versions.select_version("2.0.19") == "2.0.19"  # the option over both
    os.unlink(tmp_path / "numactl")
    monkeypatch.delenv(versions.ENV)
    assert versions.select_version() == versions.DEFAULT == "2.0.16"   # none installed
    with pytest.raises(versions.VersionError, match="2.0.17"):
        versions.select_version("2.0.17")
    assert versions.parse_version("2.0.19") == (2, 0, 19)
    with pytest.raises(ValueError):
        versions.parse_version("two")
