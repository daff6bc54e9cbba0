"""The oracle's cache and its downloads, without QEMU or a mirror.

A fake ``apt-get`` / ``apt-cache`` on PATH serves a small .deb holding a fake
kernel image (a bzImage header that says how long the image is), so the whole
fetch path runs: the signature check, the lock, the integrity records, and
what a damaged cache entry does.  A fake ``qemu-system-x86_64`` that only
sleeps stands in for a boot to interrupt.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mempolicy.oracle import cli, initramfs, kernels, qemu
from mempolicy.oracle.errors import OracleError

SRC = str(Path(__file__).resolve().parent.parent / "src")
PKG = "linux-binary-unsigned-7.3.4+deb13-amd64"
RELEASE = "7.3.4+deb13-amd64"

FAKE_APT = r'''#!/usr/bin/env python3
"""A stand-in for apt-get and apt-cache (see tests/test_oracle_cache.py)."""
import os, shutil, sys, time
args, opts = [], {}
it = iter(sys.argv[1:])
for a in it:
    if a == "-o":
        k, _, v = next(it).partition("=")
        opts[k] = v
    else:
        args.append(a)
tool = os.path.basename(sys.argv[0])
with open(os.environ["FAKE_APT_LOG"], "a") as log:
    log.write(f"{tool} {' '.join(args)} sandbox={opts.get('APT::Sandbox::User', '-')}\n")
sources = open(opts["Dir::Etc::SourceList"]).read()
if tool == "apt-cache":
    print("linux-headers-7.3.4+deb13-amd64\n" + os.environ["FAKE_APT_PKG"])
elif args[0] == "update":
    if os.environ.get("FAKE_APT_BADSIG") and "trusted=yes" not in sources:
        sys.stderr.write(
            "W: GPG error: http://127.0.0.1:9/debian trixie-backports InRelease: The following "
            "signatures couldn't be verified because the public key is not available: "
            "NO_PUBKEY 0123456789ABCDEF\n"
            "E: The repository 'http://127.0.0.1:9/debian trixie-backports InRelease' is not signed.\n")
        sys.exit(100)
elif args[0] == "download":
    time.sleep(float(os.environ.get("FAKE_APT_SLOW", "0")))
    shutil.copy(os.environ["FAKE_APT_DEB"], f"{args[1]}_1_amd64.deb")
'''


def bzimage(size: int = 64 * 1024) -> bytes:
    """Bytes with a bzImage header that says the image is SIZE bytes long."""
    data = bytearray(os.urandom(size))
    setup_sects = 3
    data[0x1F1] = setup_sects
    data[0x202:0x206] = b"HdrS"
    syssize = (size - (setup_sects + 1) * 512) // 16
    data[0x1F4:0x1F8] = syssize.to_bytes(4, "little")
    return bytes(data[: (setup_sects + 1) * 512 + syssize * 16])


@pytest.fixture
def fake_apt(tmp_path, monkeypatch):
    """PATH with fake apt tools, a private cache; returns the log of apt calls."""
    if kernels.shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    pkgdir = tmp_path / "pkg"
    (pkgdir / "DEBIAN").mkdir(parents=True)
    (pkgdir / "DEBIAN" / "control").write_text(
        f"Package: {PKG}\nVersion: 1\nArchitecture: amd64\nMaintainer: t <t@t>\nDescription: t\n")
    (pkgdir / "boot").mkdir()
    (pkgdir / "boot" / f"vmlinuz-{RELEASE}").write_bytes(bzimage())
    deb = tmp_path / "k.deb"
    subprocess.run(["dpkg-deb", "--build", "-Znone", str(pkgdir), str(deb)], check=True,
                   capture_output=True)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("apt-get", "apt-cache"):
        (bindir / tool).write_text(FAKE_APT)
        (bindir / tool).chmod(0o755)
    log = tmp_path / "apt.log"
    log.write_text("")
    env = {
        "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "MEMPOLICY_DEBIAN_MIRROR": "http://127.0.0.1:9/debian",
        "FAKE_APT_LOG": str(log),
        "FAKE_APT_DEB": str(deb),
        "FAKE_APT_PKG": PKG,
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return log


def kdir() -> Path:
    return kernels.cache_dir() / "kernels" / "7.3"


# ---- fetch, records, damage ---------------------------------------------------


def test_fetch_records_size_and_sha256(fake_apt):
    k = kernels.get_kernel("7.3")
    assert (k.package, k.release) == (PKG, RELEASE)
    info = json.loads((kdir() / "kernel.json").read_text())
    assert info["size"] == k.vmlinuz.stat().st_size
    assert info["sha256"] == kernels._sha256(k.vmlinuz)
    assert "verified" not in info
    # The download leaves nothing but the entry and the lock.
    assert sorted(os.listdir(kdir())) == ["kernel.json", "vmlinuz"]
    kernels.get_kernel("7.3")
    assert fake_apt.read_text().count("download") == 1


def test_truncated_kernel_is_reported_and_fetched_again(fake_apt, capsys):
    k = kernels.get_kernel("7.3")
    whole = k.vmlinuz.read_bytes()
    k.vmlinuz.write_bytes(whole[: len(whole) // 2])
    kernels.get_kernel("7.3")
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"the cached Linux 7.3 in {kdir()} is damaged" in err
    assert f"rm -r {kdir()}" in err
    assert k.vmlinuz.read_bytes() == whole
    assert fake_apt.read_text().count("download") == 2


def test_a_changed_byte_is_caught_by_the_sha256(fake_apt, capsys):
    k = kernels.get_kernel("7.3")
    data = bytearray(k.vmlinuz.read_bytes())
    data[-1] ^= 1
    k.vmlinuz.write_bytes(bytes(data))
    kernels.get_kernel("7.3")
    assert "sha256 differs" in capsys.readouterr().err
    assert fake_apt.read_text().count("download") == 2


@pytest.mark.parametrize("content", ["{not json", "[]", '{"package": 1}', ""])
def test_corrupt_kernel_json_is_fetched_again_not_a_traceback(fake_apt, capsys, content):
    kernels.get_kernel("7.3")
    (kdir() / "kernel.json").write_text(content)
    k = kernels.get_kernel("7.3")
    assert k.release == RELEASE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "kernel.json is not valid" in err


def test_cache_without_sha256_is_checked_by_the_image_header(fake_apt, capsys):
    """A cache entry from before sha256 was recorded: the bzImage header tells its size."""
    k = kernels.get_kernel("7.3")
    (kdir() / "kernel.json").write_text(json.dumps({"package": PKG, "release": RELEASE}))
    assert kernels.get_kernel("7.3").release == RELEASE
    assert "sha256" in json.loads((kdir() / "kernel.json").read_text())  # recorded now
    (kdir() / "kernel.json").write_text(json.dumps({"package": PKG, "release": RELEASE}))
    k.vmlinuz.write_bytes(k.vmlinuz.read_bytes()[:-16])
    kernels.get_kernel("7.3")
    assert "not a whole kernel image" in capsys.readouterr().err
    assert fake_apt.read_text().count("download") == 2


def test_damaged_cache_through_the_command_is_one_line(fake_apt, tmp_path, capsys, monkeypatch):
    """A corrupt kernel.json and a mirror that fails: one line, status 2."""
    kernels.get_kernel("7.3")
    (kdir() / "kernel.json").write_text("\0\0\0")
    monkeypatch.setenv("FAKE_APT_BADSIG", "1")
    monkeypatch.setattr(qemu, "preflight", lambda machines: None)
    t = tmp_path / "t.trace"
    t.write_text("node 0 mem=512M cpus=1\nmmap A 1\n")
    assert cli.main_oracle([str(t)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "is damaged" in err[0] and "cannot verify" in err[1]


# ---- trust ---------------------------------------------------------------------


def test_bad_signature_fails_without_an_unverified_retry(fake_apt, monkeypatch):
    monkeypatch.setenv("FAKE_APT_BADSIG", "1")
    with pytest.raises(OracleError) as ei:
        kernels.get_kernel("7.3")
    msg = str(ei.value)
    assert "cannot verify the signature of trixie-backports" in msg
    assert "NO_PUBKEY" in msg and "--allow-unsigned" in msg and "\n" not in msg
    calls = fake_apt.read_text().splitlines()
    assert [c.split(" sandbox")[0] for c in calls] == ["apt-get update"]
    sources = kernels.cache_dir() / "apt" / "trixie-backports" / "sources.list"
    assert "trusted=yes" not in sources.read_text()
    assert not (kdir() / "kernel.json").exists()


def test_bad_signature_through_the_command(fake_apt, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FAKE_APT_BADSIG", "1")
    monkeypatch.setattr(qemu, "preflight", lambda machines: None)
    t = tmp_path / "t.trace"
    t.write_text("node 0 mem=512M cpus=1\nmmap A 1\n")
    assert cli.main_record([str(t)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mempolicy: cannot verify the signature")
    assert not (tmp_path / "t.trace.expected").exists()


def test_allow_unsigned_is_explicit_and_remembered(fake_apt, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_APT_BADSIG", "1")
    k = kernels.get_kernel("7.3", allow_unsigned=True)
    assert k.release == RELEASE
    assert "without a signature check" in capsys.readouterr().err
    assert json.loads((kdir() / "kernel.json").read_text())["verified"] is False
    # Later runs without the option refuse the unverified kernel.
    with pytest.raises(OracleError, match="fetched without a signature check"):
        kernels.get_kernel("7.3")
    assert kernels.get_kernel("7.3", allow_unsigned=True).release == RELEASE


def test_apt_drops_privileges_when_it_can(fake_apt, monkeypatch):
    kernels.get_kernel("7.3")
    calls = fake_apt.read_text().splitlines()
    uid = kernels._sandbox_uid()
    if uid is None:  # no _apt user on this machine: apt is told to stay root
        assert all(c.endswith("sandbox=root") for c in calls)
    else:
        assert all(c.endswith("sandbox=-") for c in calls)
        if uid >= 0:
            part = kernels.cache_dir() / "apt" / "trixie-backports" / "lists" / "partial"
            assert part.stat().st_uid == uid
    monkeypatch.setattr(kernels, "_sandbox_uid", lambda: None)
    (kdir() / "vmlinuz").unlink()
    kernels.get_kernel("7.3")
    assert fake_apt.read_text().splitlines()[-1].endswith("sandbox=root")


# ---- two processes on one fresh cache ------------------------------------------


def _in_process(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": SRC},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_processes_fetch_and_build_once(fake_apt, monkeypatch):
    if kernels.shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    monkeypatch.setenv("FAKE_APT_SLOW", "1")  # both surely want the kernel at once
    code = textwrap.dedent("""\
        from mempolicy.oracle.kernels import get_kernel
        from mempolicy.oracle.initramfs import build_runner
        print(get_kernel("7.3").release, build_runner())
        """)
    procs = [_in_process(code) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert outs[0][0] == outs[1][0] and outs[0][0].startswith(RELEASE)
    assert fake_apt.read_text().count("download") == 1
    runner = Path(outs[0][0].split()[1])
    assert sorted(p.name for p in runner.parent.iterdir()) == sorted(
        [".lock", runner.name, runner.name + ".sha256"])


# ---- the runner's cache --------------------------------------------------------


def test_truncated_runner_is_rebuilt(tmp_path, monkeypatch, capsys):
    if kernels.shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    r = initramfs.build_runner()
    whole = r.read_bytes()
    r.write_bytes(whole[:1000])
    assert initramfs.build_runner() == r
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"the cached runner {r} is damaged" in err and "rm -r" in err
    assert r.read_bytes()[:4] == b"\x7fELF" and len(r.read_bytes()) == len(whole)


# ---- Ctrl-C --------------------------------------------------------------------

FAKE_QEMU = """#!/bin/sh
echo $$ >> "$FAKE_QEMU_LOG"
exec sleep 600
"""


def _wait_for(path: Path, what: str) -> str:
    for _ in range(600):
        if path.exists() and path.read_text().strip():
            return path.read_text()
        time.sleep(0.1)
    pytest.fail(f"{what} never happened")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("sig, status, said", [(signal.SIGINT, 130, "interrupted"),
                                                (signal.SIGTERM, 143, "terminated")])
def test_ctrl_c_during_record_kills_qemu_and_keeps_the_old_expected(fake_apt, tmp_path,
                                                                    sig, status, said):
    if initramfs.shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    try:
        initramfs.find_busybox()
    except OracleError:
        pytest.skip("no static busybox")
    kernels.get_kernel("7.3")  # the fake kernel, cached
    bindir = Path(os.environ["PATH"].split(os.pathsep)[0])
    (bindir / "qemu-system-x86_64").write_text(FAKE_QEMU)
    (bindir / "qemu-system-x86_64").chmod(0o755)
    qlog = tmp_path / "qemu.log"
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    t = tmp_path / "t.trace"
    t.write_text("node 0 mem=512M cpus=1\nmmap A 1\n")
    exp = tmp_path / "t.expected"
    exp.write_text("old\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mempolicy", "trace", "record", "-j", "1", str(t)],
        env={**os.environ, "PYTHONPATH": SRC, "FAKE_QEMU_LOG": str(qlog), "TMPDIR": str(tmpdir)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pid = int(_wait_for(qlog, "a QEMU start").split()[0])
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == status, err
    assert out == "" and err.strip() == f"mempolicy: {said}"
    assert exp.read_text() == "old\n"
    assert not _alive(pid)
    assert len(qlog.read_text().split()) == 1  # no second boot
    assert os.listdir(tmpdir) == []
