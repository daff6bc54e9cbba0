"""``mempolicy.fsutil``: files written whole or not at all."""

from __future__ import annotations

import os

import pytest

from mempolicy.fsutil import atomic_path, atomic_write


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path):
    dest = tmp_path / "f.expected"
    atomic_write(dest, "one\n")
    atomic_write(dest, b"two\n")
    assert dest.read_text() == "two\n"
    assert os.listdir(tmp_path) == ["f.expected"]


def test_a_failure_keeps_the_old_file(tmp_path):
    dest = tmp_path / "kernel.json"
    dest.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(dest) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert dest.read_text() == "old"
    assert os.listdir(tmp_path) == ["kernel.json"]


def test_mode_and_umask(tmp_path):
    atomic_write(tmp_path / "x", b"", mode=0o755)
    assert (tmp_path / "x").stat().st_mode & 0o777 == 0o755
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "y", b"")
    finally:
        os.umask(old)
    assert (tmp_path / "y").stat().st_mode & 0o777 == 0o644
