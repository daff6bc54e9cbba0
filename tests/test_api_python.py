"""The Python side of the API: policy strings, typing, arrays.free, the system-wide weight."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from mempolicy import linux
from mempolicy.api import ModelSystem, Mode, ModeFlag, Policy, as_policy

PS = 4096


@pytest.mark.parametrize("text, want", [
    ("interleave:0-3", Policy.interleave([0, 1, 2, 3])),
    ("bind:1", Policy.bind([1])),
    ("preferred:0", Policy.preferred(0)),
    ("local", Policy.local()),
    ("default", Policy.default()),
    ("weighted_interleave:0-1", Policy.weighted_interleave([0, 1])),
    ("preferred_many:1,3", Policy.preferred_many([1, 3])),
    ("interleave=static:0-3", Policy.interleave("0-3", static=True)),
    ("bind=relative:0", Policy.bind(0, relative=True)),
    (" membind:2 ", Policy.bind(2)),
])
def test_policy_strings(text, want):
    assert as_policy(text) == want == Policy.parse(text)


@pytest.mark.parametrize("text, part", [
    ("interleav:0", "'interleav'"), ("bind:0-x", "'0-x'"), ("bind=statik:0", "'statik'"),
    ("bind:", "no nodes"), ("interleave:3-1,", "'3-1,'"),
])
def test_bad_policy_strings_name_the_bad_part(text, part):
    with pytest.raises(ValueError) as e:
        as_policy(text)
    assert part in str(e.value) and repr(text) in str(e.value)


def test_as_policy_types():
    assert as_policy(None) == Policy.default()
    p = Policy.bind([0])
    assert as_policy(p) is p
    with pytest.raises(TypeError):
        as_policy(3)  # type: ignore[arg-type]


def test_strings_wherever_a_policy_is_taken():
    m = ModelSystem.from_spec("4x512M")
    a = m.mmap(8 * PS)
    m.mbind(a, 8 * PS, "interleave:0-3")
    m.touch(a, 8 * PS)
    assert m.where(a, 8 * PS) == [0, 1, 2, 3] * 2
    m.set_mempolicy("bind:2")
    assert m.get_mempolicy() == Policy.bind([2])
    m.set_mempolicy("preferred_many=static:1-2")
    got = m.get_mempolicy()
    assert (got.mode, got.flags, list(got.nodes)) == (Mode.PREFERRED_MANY, ModeFlag.STATIC_NODES, [1, 2])
    with pytest.raises(ValueError, match="'nope'"):
        m.set_mempolicy("nope:1")


def test_py_typed_is_shipped():
    import mempolicy

    assert (Path(mempolicy.__file__).parent / "py.typed").is_file()


def test_set_weight_is_a_deprecated_alias_of_set_system_weight():
    m = ModelSystem.from_spec("2x512M")
    m.set_system_weight(1, 3)
    assert m.weights()[1] == 3
    with pytest.warns(DeprecationWarning, match="set_system_weight"):
        m.set_weight(1, 5)
    assert m.weights()[1] == 5
    from mempolicy.linux.system import LinuxSystem

    calls = []
    s = LinuxSystem()
    s.set_system_weight = lambda n, w: calls.append((n, w))  # type: ignore[method-assign]
    with pytest.warns(DeprecationWarning):
        s.set_weight(0, 2)
    assert calls == [(0, 2)]


def _mapped(addr: int) -> bool:
    with open("/proc/self/maps") as f:
        for line in f:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            if lo <= addr < hi:
                return True
    return False


@pytest.mark.skipif(not linux.available(), reason="memory-policy calls unavailable")
def test_free_unmaps_at_once():
    np = pytest.importorskip("numpy")
    from mempolicy.linux import arrays

    a = arrays.zeros((16, 1024), np.float64, policy="bind:0")
    view = a[4:]
    addr, _ = arrays.array_address(a)
    assert _mapped(addr)
    arrays.free(view)                            # any view frees the whole mapping
    assert not _mapped(addr)
    arrays.free(a)                               # a second free does nothing
    with pytest.raises(ValueError):
        arrays.free(np.zeros(3))


@pytest.mark.skipif(not linux.available(), reason="memory-policy calls unavailable")
def test_an_array_dropped_is_unmapped():
    np = pytest.importorskip("numpy")
    import gc

    from mempolicy.linux import arrays

    b = arrays.empty(5000, np.int16, policy="interleave:0")
    addr, _ = arrays.array_address(b)
    assert _mapped(addr)
    del b
    gc.collect()
    assert not _mapped(addr)


@pytest.mark.skipif(not linux.available(), reason="memory-policy calls unavailable")
def test_thread_policy_takes_a_string():
    from mempolicy.linux import arrays

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with arrays.thread_policy("interleave:0"):
            assert linux.get_mempolicy() == Policy.interleave([0])
    assert linux.get_mempolicy().mode == Mode.DEFAULT


def test_mypy_strict_on_the_public_modules():
    """The .ci/run step: ``python3 -m mypy`` with the configuration of pyproject.toml."""
    pytest.importorskip("mypy")
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    r = subprocess.run([sys.executable, "-m", "mypy"], cwd=root, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:]
