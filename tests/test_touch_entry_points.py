"""Every entry point places memory through the bulk fault path, with the per-page result:
``ModelSystem.touch`` on private and shared memory, and its errors; progress on a terminal."""

from __future__ import annotations

import errno
import io

import pytest

pytest.importorskip("numpy")

from mempolicy.api import ModelSystem, Policy  # noqa: E402

PAGE = 4096


def _placed(monkeypatch, bulk: bool, shared: bool, free=None):
    monkeypatch.setenv("MEMPOLICY_BULK", "1" if bulk else "0")
    m = ModelSystem.from_spec("3x1G")
    if free is not None:
        m.kernel.pages.free[:] = free
    length = 6000 * PAGE
    if shared:
        f = m.memfd_create("F", length)
        a = m.mmap(length, shared=True, file=f)
    else:
        a = m.mmap(length)
    m.set_mempolicy(Policy.weighted_interleave("0-2"))          # page tables: numastat's interleave_hit
    m.set_system_weight(1, 3)
    third = length // 3 // PAGE * PAGE
    m.mbind(a, third, Policy.interleave("0-2"))
    m.mbind(a + third, third, Policy.bind("1"))
    m.mbind(a + 2 * third, length - 2 * third, Policy.preferred_many("0-1"))
    err = None
    try:
        m.touch(a + 100, length - 300)
    except OSError as e:
        err = e.errno
    where = m.where(a, length)
    return err, m.numa_maps_text(), list(m.kernel.pages.free), where, m.numastat()


@pytest.mark.parametrize("shared", [False, True])
def test_model_touch_bulk_equals_per_page(monkeypatch, shared):
    assert _placed(monkeypatch, True, shared) == _placed(monkeypatch, False, shared)


@pytest.mark.parametrize("shared", [False, True])
def test_model_touch_out_of_memory_keeps_the_pages_before(monkeypatch, shared):
    free = [1500, 1800, 1200]
    bulk = _placed(monkeypatch, True, shared, free)
    assert bulk[0] == errno.ENOMEM
    assert bulk == _placed(monkeypatch, False, shared, free)


def test_model_touch_of_a_hole_is_efault():
    m = ModelSystem.from_spec("2x1G")
    a = m.mmap(64 * PAGE)
    with pytest.raises(OSError) as e:
        m.touch(a, 128 * PAGE)
    assert e.value.errno == errno.EFAULT


def test_model_touch_shows_progress(monkeypatch):
    import sys

    monkeypatch.setenv("MEMPOLICY_PROGRESS", "1")
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    from mempolicy import progress

    orig = progress.Progress.__init__

    def no_delay(self, total, label="", stream=None, delay=0.5, **kw):
        orig(self, total, label, stream, 0.0, **kw)
    monkeypatch.setattr(progress.Progress, "__init__", no_delay)
    m = ModelSystem.from_spec("2x4G")
    a = m.mmap(1 << 31)
    m.touch(a, 1 << 31)
    assert "touch" in err.getvalue() and "pages" in err.getvalue()


def test_without_numpy_a_large_touch_says_so_once(monkeypatch, capsys):
    from mempolicy.alloc import bulk
    from mempolicy.scopes import pagetable

    monkeypatch.setattr(pagetable, "_np", False)          # as if NumPy were not installed
    monkeypatch.setattr(bulk, "SLOW_WARN_PAGES", 100)
    monkeypatch.setattr(bulk, "_warned", False)
    m = ModelSystem.from_spec("2x1G")
    a = m.mmap(400 * PAGE)
    m.touch(a, 200 * PAGE)
    m.touch(a + 200 * PAGE, 200 * PAGE)
    err = capsys.readouterr().err
    assert err.count("NumPy is not installed") == 1


def _numactl(*args):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("MEMPOLICY_NUMACTL_VERSION", None)
    return subprocess.run([sys.executable, "-m", "mempolicy", "numactl", *args],
                          capture_output=True, text=True, env=env)


def test_memhog_places_a_terabyte_in_bulk():
    r = _numactl("--sim", "8x256G", "--interleave=all", "memhog", "1024G")
    assert r.returncode == 0, r.stderr
    assert "anon=268435456" in r.stdout and "N7=33554432" in r.stdout


def test_memhog_larger_than_the_machine_is_refused_up_front():
    r = _numactl("--sim", "2x1G", "memhog", "40960G")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "more than" in r.stderr and "Traceback" not in r.stderr
