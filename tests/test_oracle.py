"""The oracle's parts that need no QEMU: QEMU arguments, serial output
splitting, the apt mirror, kernel package choice, the initramfs, and the
runner itself on the host's (one-node) kernel."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from mempolicy.oracle import cli, initramfs, kernels, plan_boots, qemu
from mempolicy.oracle.errors import OracleError
from mempolicy.trace.parser import parse_trace

HEADER3 = """\
node 0 mem=512M cpus=2
node 1 mem=256M cpus=1
node 2 mem=1G cpus=0
distance 0 1 21
distance 1 2 40
"""


def machine(text: str):
    return parse_trace(text + "mmap A 1\n", "t.trace").machine


# ---- QEMU arguments -------------------------------------------------------


def test_qemu_args_memdev_topology():
    args = qemu.qemu_args(machine(HEADER3), Path("vmlinuz"), Path("i.cpio"),
                          Path("c.log"), Path("r.log"))
    joined = " ".join(args)
    assert args[0] == "qemu-system-x86_64"
    assert "-M" not in args
    assert "-accel tcg " in joined
    assert "-m 1792M" in joined
    assert "-smp 3,sockets=3,cores=1,threads=1" in joined
    assert "-object memory-backend-ram,id=mem0,size=512M" in joined
    assert "-object memory-backend-ram,id=mem2,size=1G" in joined
    assert "-numa node,nodeid=0,memdev=mem0,cpus=0-1" in joined
    assert "-numa node,nodeid=1,memdev=mem1,cpus=2 " in joined
    assert "-numa node,nodeid=2,memdev=mem2 " in joined  # memory only
    assert "-numa dist,src=0,dst=1,val=21" in joined
    assert "-numa dist,src=2,dst=1,val=40" in joined
    assert "-numa dist,src=0,dst=2,val=20" in joined  # the default
    assert "-serial file:c.log -serial file:r.log" in joined
    i = args.index("-append")
    assert args[i + 1] == "console=ttyS0 nokaslr transparent_hugepage=never numa_balancing=disable"


def test_qemu_args_memoryless_node_uses_legacy_machine():
    m = machine("node 0 mem=512M cpus=1\nnode 1 mem=0 cpus=1\n")
    args = qemu.qemu_args(m, Path("k"), Path("i"), Path("c"), Path("r"), single_thread=True)
    joined = " ".join(args)
    assert "-M pc-i440fx-5.0" in joined
    assert "-accel tcg,thread=single" in joined
    assert "-numa node,nodeid=0,mem=512M,cpus=0" in joined
    assert "-numa node,nodeid=1,mem=0M,cpus=1" in joined
    assert "memory-backend" not in joined


def test_default_machine_is_four_nodes():
    args = " ".join(qemu.qemu_args(machine(""), Path("k"), Path("i"), Path("c"), Path("r")))
    assert "-m 2G" in args and "-smp 4," in args
    assert "-numa node,nodeid=3,memdev=mem3,cpus=3" in args


def test_expected_topology():
    topo = dict(qemu.expected_topology(machine(HEADER3)))
    base = "/sys/devices/system/node"
    assert topo[f"{base}/online"] == "0-2"
    assert topo[f"{base}/has_memory"] == "0-2"
    assert topo[f"{base}/has_cpu"] == "0-1"
    assert topo[f"{base}/node0/cpulist"] == "0-1"
    assert topo[f"{base}/node2/cpulist"] == ""
    assert topo[f"{base}/node1/distance"] == "21 10 40"
    m = machine("node 0 mem=0 cpus=1\nnode 1 mem=512M cpus=0\n")
    assert dict(qemu.expected_topology(m))[f"{base}/has_memory"] == "1"


def test_check_machine_refuses_tiny_or_odd_memory():
    with pytest.raises(OracleError, match="at least 128M"):
        qemu.check_machine(machine("node 0 mem=32M cpus=1\nnode 1 mem=32M cpus=1\n"))
    with pytest.raises(OracleError, match="whole MiB"):
        qemu.check_machine(machine("node 0 mem=512M cpus=1\nnode 1 mem=100K cpus=0\n"))
    qemu.check_machine(machine(HEADER3))


def test_plan_boots_splits_large_groups_for_parallel_jobs():
    assert plan_boots([[0, 1, 2]], jobs=1) == [[0, 1, 2]]
    assert plan_boots([[0, 1, 2]], jobs=4) == [[0, 1, 2]]  # too small to split
    big = list(range(20))
    assert plan_boots([big, [20]], jobs=3) == [big[:10], big[10:], [20]]
    assert plan_boots([big[:10], big[10:]], jobs=2) == [big[:10], big[10:]]


# ---- serial output --------------------------------------------------------


def test_split_results():
    text = (
        " " * 2100 + "\r\n"
        "@@ORACLE START 7.3.4+deb13-amd64\r\n"
        "@@ORACLE BEGIN 0\r\n"
        "3 mmap: ok\r\n"
        "4 numa_maps:\r\n"
        "@@ORACLE END 0 0\r\n"
        "@@ORACLE BEGIN 1\r\n"
        "3 fork: ok\r\n"
        "@@ORACLE END 1 2\r\n"
        "@@ORACLE STDERR 1 runner: line 4: unknown command 'x'\r\n"
        "@@ORACLE MISMATCH 2 /sys/devices/system/node/online is '0', the header wants '0-1'\r\n"
        "@@ORACLE DONE\r\n"
    )
    res = initramfs.split_results(text)
    assert res.release == "7.3.4+deb13-amd64"
    assert res.outputs == {0: "3 mmap: ok\n4 numa_maps:\n", 1: "3 fork: ok\n"}
    assert res.status == {0: 0, 1: 2}
    assert res.stderr == {1: ["runner: line 4: unknown command 'x'"]}
    assert "online is '0'" in res.mismatch[2]
    assert res.done


def test_split_results_incomplete_boot():
    res = initramfs.split_results("@@ORACLE START x\n@@ORACLE BEGIN 0\n3 mmap: ok\n")
    assert res.outputs == {} and not res.done


def test_cpio_archive_layout():
    data = initramfs.cpio_archive({"init": (b"#!/bin/sh\n", 0o755), "a/b/c": (b"xyz", 0o644)},
                                  dirs=("proc",))
    names, off = [], 0
    while True:
        assert data[off:off + 6] == b"070701"
        fields = [int(data[off + 6 + 8 * i: off + 14 + 8 * i], 16) for i in range(13)]
        namesize, filesize = fields[11], fields[6]
        name = data[off + 110: off + 110 + namesize - 1].decode()
        off += 110 + namesize
        off += -off % 4
        body = data[off: off + filesize]
        off += filesize + (-filesize % 4)
        if name == "TRAILER!!!":
            break
        names.append((name, fields[1], body))
    assert [n for n, _, _ in names] == ["a", "a/b", "dev", "proc", "dev/console", "a/b/c", "init"]
    assert dict((n, (m, b)) for n, m, b in names)["init"] == (0o100755, b"#!/bin/sh\n")
    assert len(data) % 4 == 0


# ---- the mirror and the kernel packages -----------------------------------


def write_apt(tmp_path: Path) -> Path:
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "sources.list").write_text("# deb http://old.example/debian bookworm main\n")
    (etc / "sources.list.d" / "debian.sources").write_text(textwrap.dedent("""\
        Types: deb
        URIs: http://mirror.example/debian-security
        Suites: bookworm-security
        Components: main
        Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

        Types: deb deb-src
        # a comment
        URIs: http://mirror.example/debian/
        Suites: bookworm bookworm-updates
        Components: main contrib
        Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
        """))
    (etc / "sources.list.d" / "other.list").write_text(
        "deb [arch=amd64 signed-by=/k.gpg] https://vendor.example/apt cloud-sdk main\n")
    (etc / "sources.list.d" / "off.sources").write_text(
        "Types: deb\nURIs: http://disabled.example/debian\nSuites: trixie\n"
        "Components: main\nEnabled: no\n")
    return etc


def test_debian_mirror_from_deb822(tmp_path, monkeypatch):
    monkeypatch.delenv("MEMPOLICY_DEBIAN_MIRROR", raising=False)
    src = kernels.debian_mirror(write_apt(tmp_path))
    assert src.uri == "http://mirror.example/debian"
    assert src.signed_by == "/usr/share/keyrings/debian-archive-keyring.gpg"


def test_debian_mirror_from_one_line_list(tmp_path, monkeypatch):
    monkeypatch.delenv("MEMPOLICY_DEBIAN_MIRROR", raising=False)
    etc = tmp_path / "apt"
    etc.mkdir()
    (etc / "sources.list").write_text(
        "deb http://sec.example/debian-security bullseye-security main\n"
        "deb [trusted=yes] http://one.example/debian bullseye main non-free\n")
    assert kernels.debian_mirror(etc).uri == "http://one.example/debian"


def test_debian_mirror_missing_and_override(tmp_path, monkeypatch):
    monkeypatch.delenv("MEMPOLICY_DEBIAN_MIRROR", raising=False)
    etc = tmp_path / "apt"
    etc.mkdir()
    (etc / "sources.list").write_text("deb http://ubuntu.example/ubuntu jammy main\n")
    with pytest.raises(OracleError, match="MEMPOLICY_DEBIAN_MIRROR"):
        kernels.debian_mirror(etc)
    monkeypatch.setenv("MEMPOLICY_DEBIAN_MIRROR", "http://local.example/debian/")
    assert kernels.debian_mirror(etc).uri == "http://local.example/debian"


def test_pick_package():
    names = [
        "linux-binary-7.3.4+deb13-amd64", "linux-binary-unsigned-7.3.4+deb13-amd64",
        "linux-binary-unsigned-7.3.4+deb13-cloud-amd64", "linux-image-7.3.4+deb13-amd64",
        "linux-image-6.12.107+deb13-amd64", "linux-image-6.12.117+deb13-amd64",
        "linux-image-6.12.117+deb13-amd64-dbg", "linux-image-6.12.117+deb13-rt-amd64",
        "linux-image-6.1.0-9-amd64", "linux-image-6.1.0-41-amd64-unsigned",
        "linux-image-6.1.0-41-amd64", "linux-image-amd64",
    ]
    assert kernels.pick_package(names, "7.3") == "linux-binary-unsigned-7.3.4+deb13-amd64"
    assert kernels.pick_package(names, "6.12") == "linux-image-6.12.117+deb13-amd64"
    assert kernels.pick_package(names, "6.1") == "linux-image-6.1.0-41-amd64-unsigned"
    assert kernels.pick_package(names, "6.16") is None


def test_unknown_kernel_version():
    with pytest.raises(OracleError, match="unknown kernel"):
        kernels.get_kernel("2.6")


def test_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert kernels.cache_dir() == tmp_path / "mempolicy"


# ---- commands -------------------------------------------------------------


def test_expected_path():
    assert cli.expected_path("tests/traces/foo.trace") == Path("tests/traces/foo.expected")
    assert cli.expected_path("foo.txt") == Path("foo.txt.expected")


def test_user_errors_exit_2(tmp_path, capsys, monkeypatch):
    assert cli.main_oracle([str(tmp_path / "missing.trace")]) == 2
    assert "cannot read" in capsys.readouterr().err
    bad = tmp_path / "bad.trace"
    bad.write_text("mmap A 1\nfrobnicate\n")
    assert cli.main_record([str(bad)]) == 2
    assert capsys.readouterr().err.strip() == f"{bad}:2: unknown command 'frobnicate'"
    # A machine too small to boot is refused before anything is fetched.
    small = tmp_path / "small.trace"
    small.write_text("node 0 mem=64M cpus=1\nmmap A 1\n")
    monkeypatch.setattr(kernels, "get_kernel", lambda *a, **k: None)
    monkeypatch.setattr("mempolicy.oracle.get_kernel", lambda *a, **k: None)
    monkeypatch.setattr(qemu.shutil, "which", lambda name: "/usr/bin/" + name)
    assert cli.main_oracle([str(small)]) == 2
    assert "at least 128M" in capsys.readouterr().err


def test_missing_qemu_is_a_user_error(tmp_path, capsys, monkeypatch):
    t = tmp_path / "t.trace"
    t.write_text("node 0 mem=512M cpus=1\nmmap A 1\n")
    monkeypatch.setattr("mempolicy.oracle.get_kernel", lambda *a, **k: None)
    monkeypatch.setattr(qemu.shutil, "which", lambda name: None)
    assert cli.main_oracle([str(t)]) == 2
    assert "qemu-system-x86_64 not found" in capsys.readouterr().err


# ---- the runner on the host's kernel --------------------------------------


def _host_nodes() -> int:
    try:
        return len([d for d in os.listdir("/sys/devices/system/node") if d[4:].isdigit()])
    except OSError:
        return 0


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    if _host_nodes() != 1:
        pytest.skip("the host runner tests need a host with exactly one NUMA node")
    out = tmp_path_factory.mktemp("runner") / "runner"
    r = subprocess.run(["gcc", *initramfs.runner_cflags(), "-Wall", "-o", str(out),
                        str(initramfs.RUNNER_C)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"runner.c does not compile:\n{r.stderr}")
    return out


def _privileged() -> bool:
    from mempolicy.linux import read_cred

    return read_cred().privileged


def run_host(runner: Path, tmp_path: Path, text: str) -> str:
    t = tmp_path / "t.trace"
    t.write_text(textwrap.dedent(text))
    r = subprocess.run([str(runner), str(t)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_runner_basic_placement(runner, tmp_path):
    out = run_host(runner, tmp_path, """\
        node 0 mem=512M cpus=1
        mmap A 8            # a comment
        mbind A 0 8 interleave 0
        touch A 0 8
        where A 0 8
        numa_maps A
        where A 0 0
        get_mempolicy at=A+3
        get_mempolicy
        get_mempolicy mems_allowed
        get_mempolicy node mems_allowed
        set_mempolicy bind 0 static
        get_mempolicy
        """)
    assert out == textwrap.dedent("""\
        2 mmap: ok
        3 mbind: ok
        4 touch: ok
        5 where: 0 0 0 0 0 0 0 0
        6 numa_maps: A+0 interleave:0 anon=8 dirty=8 N0=8 kernelpagesize_kB=4
        7 where:
        8 get_mempolicy: mode=interleave nodes=0
        9 get_mempolicy: mode=default nodes=
        10 get_mempolicy: nodes=0
        11 get_mempolicy: EINVAL
        12 set_mempolicy: ok
        13 get_mempolicy: mode=bind+static nodes=0
        """)


def test_runner_crlf_and_comments(runner, tmp_path):
    out = run_host(runner, tmp_path, "# header\r\nnode 0 mem=512M cpus=1\r\n\r\n"
                   "mmap A 1  # c\r\n\tget_mempolicy   at=A\r\n")
    assert out == "4 mmap: ok\n5 get_mempolicy: mode=default nodes=\n"


def test_runner_mappings_and_signals(runner, tmp_path):
    out = run_host(runner, tmp_path, """\
        node 0 mem=512M cpus=1
        mmap A 6
        mprotect A 2 2 ro
        touch A 0 6
        touch A 0 6 read    # maps the zero page, which numa_maps does not count
        munmap A 5 1
        numa_maps A
        memfd F 2
        mmap B 4 file=F
        touch B 0 4
        mmap C 2 @0x200000000000
        mmap D 0
        mmap E 2 file=F off=1 private
        touch E 0 1
        numa_maps E
        """)
    assert out == textwrap.dedent("""\
        2 mmap: ok
        3 mprotect: ok
        4 touch: SIGSEGV
        5 touch: ok
        6 munmap: ok
        7 numa_maps: A+0 default anon=2 dirty=2 N0=2 kernelpagesize_kB=4
        7 numa_maps: A+2 default
        7 numa_maps: A+4 default
        8 memfd: ok
        9 mmap: ok
        10 touch: SIGBUS
        11 mmap: EEXIST
        12 mmap: EINVAL
        13 mmap: ok
        14 touch: ok
        15 numa_maps: E+0 default file=/memfd:F\\040(deleted) anon=1 dirty=1 N0=1 kernelpagesize_kB=4
        """)


def test_runner_fork_order_and_shared_memory(runner, tmp_path):
    out = run_host(runner, tmp_path, """\
        node 0 mem=512M cpus=1
        mmap S 2 shared
        fork
        touch S 0 2
        where S 0 2
        fork
        mmap K 1
        exit
        exit
        where S 0 2
        touch S 0 1 read    # fault-around maps page 1 as well
        where S 0 2
        numa_maps S
        """)
    assert out == textwrap.dedent("""\
        2 mmap: ok
        3 fork: ok
        4 touch: ok
        5 where: 0 0
        6 fork: ok
        7 mmap: ok
        8 exit: ok
        9 exit: ok
        10 where: ENOENT ENOENT
        11 touch: ok
        12 where: 0 0
        13 numa_maps: S+0 default file=/dev/zero\\040(deleted) dirty=2 N0=2 kernelpagesize_kB=4
        """)


def test_runner_raw_calls_and_migration(runner, tmp_path):
    # MPOL_MF_MOVE_ALL without CAP_SYS_NICE is EPERM before the node is checked (host kernel,
    # run as root and as nobody)
    move_all = "ENODEV" if _privileged() else "EPERM"
    out = run_host(runner, tmp_path, """\
        node 0 mem=512M cpus=1
        mmap A 4
        touch A 0 4
        raw set_mempolicy 0x8002 0x1 2
        raw get_mempolicy 64 2 0 0
        raw get_mempolicy 1 1025 0 0
        raw get_mempolicy null 0 0 0
        raw get_mempolicy 128 129 A+4096 2
        raw mbind A 1 4096 2 0x1 2 0
        raw mbind A 0 4096 2 null 0 0
        raw set_mempolicy 9 null 0
        raw get_mempolicy 1024 1025 0 0
        move_pages A 0 2 0
        move_pages A 0 2 1 all
        migrate_pages 0 0
        home_node A 0 1 0
        cpu 0
        cpu 4096
        """)
    assert out == textwrap.dedent("""\
        2 mmap: ok
        3 touch: ok
        4 raw-set_mempolicy: ok
        5 raw-get_mempolicy: rc=0 mode=32770 mask=0x1
        6 raw-get_mempolicy: EFAULT
        7 raw-get_mempolicy: rc=0 mode=32770 mask=null
        8 raw-get_mempolicy: rc=0 mode=0 mask=0x0
        9 raw-mbind: EINVAL
        10 raw-mbind: EINVAL
        11 raw-set_mempolicy: EINVAL
        12 raw-get_mempolicy: rc=0 mode=32770 mask=0x1
        13 move_pages: 0 0
        14 move_pages: {move_all}
        15 migrate_pages: 0
        16 home_node: ENOENT
        17 cpu: ok
        18 cpu: EINVAL
        """).format(move_all=move_all)


def test_a_runner_that_stopped_early_is_an_error_not_output():
    from mempolicy.trace.parser import TraceError

    def boot(status: int, stderr: list[str]) -> initramfs.BootOutput:
        return initramfs.BootOutput(release="r", outputs={0: "2 mmap: ok\n"}, status={0: status},
                                    stderr={0: stderr}, done=True)

    with pytest.raises(TraceError) as ei:
        qemu._check(boot(2, ["runner: line 3: NUL byte"]), 1, "", ["t.trace"])
    assert str(ei.value) == "t.trace:3: NUL byte"
    with pytest.raises(OracleError, match=r"^t.trace: runner: read 1 commands where"):
        qemu._check(boot(2, ["runner: read 1 commands where the parser read 2"]), 1, "", ["t.trace"])
    assert qemu._check(boot(139, []), 1, "", ["t.trace"]) is False  # killed: boot again
    assert qemu._check(boot(0, []), 1, "", ["t.trace"]) is True


def test_initramfs_tells_the_runner_how_many_commands(monkeypatch):
    monkeypatch.setattr(initramfs, "find_busybox", lambda: Path(initramfs.__file__))
    monkeypatch.setattr(initramfs, "build_runner", lambda: Path(initramfs.__file__))
    files: dict = {}
    monkeypatch.setattr(initramfs, "cpio_archive", lambda f, dirs=(): files.update(f) or b"")
    initramfs.build_initramfs(["node 0 mem=1G cpus=1\n# c\nmmap A 1\nfork\nexit\n", "\n"], [])
    assert files["oracle/0.commands"] == (b"3\n", 0o644)
    assert files["oracle/1.commands"] == (b"0\n", 0o644)
    assert '--commands "$(cat /oracle/$i.commands)"' in initramfs.INIT


@pytest.mark.parametrize("argv, name", [([], "t.expected"), (["--kernel", "6.12"], "t.6.12.expected")])
def test_record_writes_the_default_kernels_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                argv: list[str], name: str) -> None:
    """``trace record FILE`` without --kernel writes FILE.expected (once it wrote
    FILE.None.expected)."""
    trace = tmp_path / "t.trace"
    trace.write_text("mmap A 1\n")
    monkeypatch.setattr(cli, "_oracle", lambda args, items, *a, **k: ["1 mmap: ok\n"] * len(items))
    assert cli._record_cmd([*argv, str(trace)]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.expected")) == [name]
    assert (tmp_path / name).read_text() == "1 mmap: ok\n"
