"""The version tools without QEMU: --vmlinuz checks, the boot probe's report,
``trace versions`` and ``trace diff --against`` on stand-in kernels."""

from __future__ import annotations

import re

import pytest

from mempolicy.campaign.shrink import split_trace
from mempolicy.campaign.work import model_output
from mempolicy.oracle import cli, initramfs, kernels, qemu, semdiff, versions
from mempolicy.oracle.errors import OracleError

UNTOUCHED = """\
node 0 mem=512M cpus=1
node 1 mem=512M cpus=1
mmap A 4
mmap B 2
touch B 0 2
set_mempolicy interleave 0-1
touch A 0 1
touch A 2 1 read
get_mempolicy
where A 0 4
where B 0 2
"""

SAME = """\
node 0 mem=512M cpus=1
node 1 mem=512M cpus=1
mmap A 4
mbind A 0 4 bind 1
touch A 0 4
where A 0 4
"""


def fake_bzimage(release: str | None = "6.99.0-test (me@here) #1 SMP", size: int = 0x1000,
                 say: int | None = None) -> bytes:
    """A file with an x86 setup header: SAY bytes long by the header, SIZE long."""
    data = bytearray(size)
    data[0x1F1] = 1                                   # setup sectors: 1 (+ the boot sector)
    total = say if say is not None else size
    data[0x1F4:0x1F8] = ((total - 2 * 512) // 16).to_bytes(4, "little")
    data[0x202:0x206] = b"HdrS"
    data[0x206:0x208] = (0x20F).to_bytes(2, "little")
    if release is not None:
        data[0x20E:0x210] = (0x300 - 0x200).to_bytes(2, "little")
        data[0x300:0x300 + len(release) + 1] = release.encode() + b"\0"
    return bytes(data)


# ---- --vmlinuz: the file is checked before anything boots ---------------------


def test_bzimage_release_and_model_version(tmp_path):
    p = tmp_path / "bzImage"
    p.write_bytes(fake_bzimage())
    k = kernels.kernel_from_path(p)
    assert (k.release, k.version, k.user) == ("6.99.0-test", "6.12", True)
    p.write_bytes(fake_bzimage("7.4.0-rc1+ (x) #2"))
    assert kernels.kernel_from_path(p).version == "7.3"
    p.write_bytes(fake_bzimage(None))                 # no version string: named by its file
    assert kernels.kernel_from_path(p).release == "bzImage"


@pytest.mark.parametrize("content, words", [
    (b"#!/bin/sh\necho not a kernel\n", "not an x86 bzImage"),
    (b"\x7fELF\x02\x01\x01" + bytes(100), "an ELF file (vmlinux?)"),
    (fake_bzimage(say=0x4000), "truncated bzImage"),
])
def test_not_a_bzimage_is_refused(tmp_path, content, words):
    p = tmp_path / "vmlinuz"
    p.write_bytes(content)
    with pytest.raises(OracleError, match=re.escape(words)):
        kernels.kernel_from_path(p)


@pytest.mark.parametrize("argv", [
    ["oracle"], ["record"], ["diff"], ["diff", "--against", "7.3"], ["versions", "--oracle"],
])
def test_vmlinuz_not_a_kernel_one_line_exit_2(tmp_path, capsys, argv):
    t = tmp_path / "t.trace"
    t.write_text(SAME)
    junk = tmp_path / "junk"
    junk.write_text("hello\n")
    rc = getattr(cli, f"main_{argv[0]}")([*argv[1:], "--vmlinuz", str(junk), str(t)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "not an x86 bzImage" in err, err
    assert not (tmp_path / "t.expected").exists()


def test_campaign_vmlinuz_not_a_kernel(tmp_path, capsys):
    from mempolicy.campaign.cli import main

    junk = tmp_path / "junk"
    junk.write_text("hello\n")
    assert main(["--vmlinuz", str(junk), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not an x86 bzImage" in err
    assert main(["--vmlinuz", str(junk), "--oracle", "planted", "--out", str(tmp_path / "c")]) == 2
    assert capsys.readouterr().err == "mempolicy trace campaign: --vmlinuz needs --oracle qemu\n"
    assert not (tmp_path / "c").exists()


def test_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main_diff(["--against", "5.4", "x.trace"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--against" in err
    assert cli.main_diff([]) == 2
    assert capsys.readouterr().err.strip() == "mempolicy: no trace files (or --campaign N)"
    assert cli.main_versions(["--kernel", "6.12,2.6", "x.trace"]) == 2
    assert "unknown kernel '2.6'" in capsys.readouterr().err


# ---- the boot probe ----------------------------------------------------------


def test_init_probes_before_the_traces():
    init = initramfs.INIT
    assert init.index("/oracle/runner --probe") < init.index('while [ -f /oracle/$i.trace ]')
    assert "/sys/devices/system/node/node0" in init and "/proc/self/numa_maps" in init


def test_missing_features_become_one_error():
    res = initramfs.split_results(
        "@@ORACLE START 6.13.0-mine\n"
        "@@ORACLE MISSING CONFIG_NUMA no /sys/devices/system/node\n"
        "@@ORACLE MISSING CONFIG_NUMA get_mempolicy: ENOSYS\n"
        "@@ORACLE MISSING CONFIG_MEMFD_CREATE memfd_create: ENOSYS\n"
        "@@ORACLE DONE\n")
    assert res.done and res.release == "6.13.0-mine" and len(res.missing) == 3
    k = kernels.Kernel("6.12", "bzImage", "6.13.0-mine", kernels.Path("bzImage"), user=True)
    with pytest.raises(OracleError) as e:
        qemu._check(res, 1, "", ["t.trace"], k)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("Linux 6.13.0-mine lacks what the traces need: CONFIG_NUMA (")
    assert "CONFIG_MEMFD_CREATE (memfd_create: ENOSYS)" in msg and "A kernel of your own" in msg


def test_silent_user_kernel_needs_a_serial_console():
    k = kernels.Kernel("6.12", "bzImage", "6.13.0", kernels.Path("bzImage"), user=True)
    said = qemu.missing_features(initramfs.split_results(""), "", k)
    assert said is not None and "CONFIG_SERIAL_8250_CONSOLE" in said
    said = qemu.missing_features(initramfs.split_results(""), "Run /init as init process\n"
                                 "Failed to execute /init (error -8)\nKernel panic", k)
    assert said is not None and "CONFIG_BINFMT_SCRIPT" in said
    debian = kernels.Kernel("6.12", "pkg", "6.12.1", kernels.Path("vmlinuz"))
    assert qemu.missing_features(initramfs.split_results(""), "", debian) is None


# ---- trace versions -----------------------------------------------------------


def test_side_by_side_marks_the_differing_rows():
    rows = versions.side_by_side(["6.1", "6.12", "7.3"], [
        "3 mmap: ok\n4 where: EFAULT\n5 numa_maps: x\n5 numa_maps: y\n",
        "3 mmap: ok\n4 where: ENOENT\n5 numa_maps: x\n5 numa_maps: y\n",
        "3 mmap: ok\n4 where: ENOENT\n5 numa_maps: x\n"])
    marks = [r[0] for r in rows]
    assert marks == [" ", " ", "!", " ", "!"]
    assert rows[2].split("|")[0].strip() == "! 4 where: EFAULT"
    assert rows[4].rstrip().endswith("|")       # the line 7.3 did not print: an empty cell


def test_versions_model_7_3(tmp_path, capsys):
    a, b = tmp_path / "a.trace", tmp_path / "b.trace"
    a.write_text(UNTOUCHED)
    b.write_text(SAME)
    assert cli.main_versions(["--kernel", "7.3", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert model_output(UNTOUCHED) .splitlines()[0] in out
    assert out.rstrip().endswith("0 of 2 trace(s) differ between model 7.3 (the same letter, "
                                 "the same output)")


# What Linux 6.1.0-50, 6.12.117 and 7.3.4 printed (trace versions --oracle).
MEASURED = {
    "node 0 mem=512M cpus=1\nnode 1 mem=512M cpus=1\nmmap A 4\ntouch A 0 1\n"
    "touch A 2 1 read\nwhere A 0 4\n": (
        "! 6 where: 0 EFAULT EFAULT EFAULT", "6 where: 0 ENOENT EFAULT ENOENT",
        "6 where: 0 ENOENT EFAULT ENOENT"),
    "node 0 mem=512M cpus=1\nnode 1 mem=512M cpus=1\nmmap A 4\n"
    "set_mempolicy weighted_interleave 0-1\nget_mempolicy\n": (
        "! 4 set_mempolicy: EINVAL", "4 set_mempolicy: ok", "4 set_mempolicy: ok"),
}


def test_versions_model_three_kernels(tmp_path, capsys):
    """The model's three versions side by side give what the three kernels gave:
    a page never touched is EFAULT before 6.12 and ENOENT since; 6.1 has no
    weighted interleave."""
    files = []
    for n, text in enumerate(MEASURED):
        files.append(tmp_path / f"t{n}.trace")
        files[-1].write_text(text)
    assert cli.main_versions([str(f) for f in files]) == 0
    out = capsys.readouterr().out
    for want in MEASURED.values():
        row = next(x for x in out.splitlines() if x.startswith(want[0].split(":")[0] + ":"))
        assert [c.strip() for c in row.split("|")] == list(want)
    assert re.search(r"t0\.trace\s+a\s+b\s+b\s+<- differs", out)
    assert re.search(r"t1\.trace\s+a\s+b\s+b\s+<- differs", out)


# ---- trace diff --against, on stand-in kernels ------------------------------------


def as_61(text: str) -> str:
    """A stand-in for Linux 6.1: never-touched pages read EFAULT, not ENOENT."""
    return "".join(re.sub(r"\bENOENT\b", "EFAULT", x) if " where: " in x else x
                   for x in model_output(text).splitlines(keepends=True))


class Counting:
    def __init__(self, fn) -> None:
        self.fn, self.calls = fn, 0

    def __call__(self, texts: list[str]) -> list[str]:
        self.calls += 1
        return [self.fn(t) for t in texts]


def test_diff_kernels_finds_and_shrinks():
    run_a, run_b = Counting(as_61), Counting(model_output)
    flaky = SAME + "get_mempolicy\n"
    calls = {"n": 0}

    def b_with_flake(t: str) -> str:
        if t == flaky:
            calls["n"] += 1
            return model_output(t) + ("?\n" if calls["n"] % 2 else "")
        return model_output(t)

    run_b.fn = b_with_flake
    changes = semdiff.diff_kernels([(UNTOUCHED, "u.trace"), (SAME, "s.trace"), (flaky, "f.trace")],
                                   run_a, run_b)
    assert [c.status for c in changes] == ["changed", "same", "nondeterministic"]
    c = changes[0]
    assert c.first == (10, "where")
    cmds = split_trace(c.minimized)[1]
    assert cmds == ["mmap A 4", "where A 0 4"]           # the minimal trace that still differs
    assert c.min_a == "3 mmap: ok\n4 where: EFAULT EFAULT EFAULT EFAULT\n"
    assert c.min_b == "3 mmap: ok\n4 where: ENOENT ENOENT ENOENT ENOENT\n"
    # B runs in batches, as often as A (plus the cut trace's run): no boot per candidate
    assert run_b.calls <= run_a.calls + 1


def test_diff_against_cli(tmp_path, capsys, monkeypatch):
    def fake_run_traces(items, kernel="7.3", vmlinuz=None, **kw):
        return [as_61(t) if kernel == "6.1" else model_output(t) for t, _ in items]

    monkeypatch.setattr(cli, "run_traces", fake_run_traces)
    monkeypatch.setattr(cli, "_label", lambda args, k, v: f"Linux {k}")
    u, s = tmp_path / "u.trace", tmp_path / "s.trace"
    u.write_text(UNTOUCHED)
    s.write_text(SAME)
    assert cli.main_diff(["--kernel", "6.1", "--against", "6.12", str(u), str(s)]) == 1
    out = capsys.readouterr().out
    assert f"==> {u}: changed at line 10 (where); minimal trace of 2 command(s), from 9 <==" in out
    assert "-4 where: EFAULT EFAULT EFAULT EFAULT\n+4 where: ENOENT ENOENT ENOENT ENOENT\n" in out
    assert f"{s}: same on both" in out
    assert out.rstrip().endswith("1 of 2 trace(s) changed between Linux 6.1 and Linux 6.12")
    assert cli.main_diff(["--kernel", "6.12", "--against", "7.3", str(s)]) == 0
    assert cli.main_diff(["--kernel", "6.1", "--against", "7.3", "--campaign", "3",
                          "--mode", "raw"]) in (0, 1)
    out = capsys.readouterr().out
    assert re.search(r"of 3 trace\(s\) changed between Linux 6.1 and Linux 7.3", out)
