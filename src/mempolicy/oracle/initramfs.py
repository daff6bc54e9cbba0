"""The guest's initramfs: busybox, the runner, the traces and an ``/init``.

``/init`` prints everything the harness reads on the second serial port
(``/dev/ttyS1``), between markers that :func:`split_results` understands::

    @@ORACLE START <uname -r>
    @@ORACLE BEGIN <i>
    <the runner's output for trace i>
    @@ORACLE END <i> <exit status>
    @@ORACLE STDERR <i> <a line the runner wrote on stderr>
    @@ORACLE MISMATCH <i> <what differs from the trace header>
    @@ORACLE MISSING <CONFIG_OPTION> <what the probe did not find>
    @@ORACLE DONE

A ``MISSING`` line (the kernel lacks something the traces use) comes before
any trace, and then no trace runs.
"""

from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from mempolicy.fsutil import atomic_path, atomic_write, locked
from mempolicy.oracle.errors import OracleError
from mempolicy.oracle.kernels import cache_dir

RUNNER_C = Path(__file__).parent / "runner.c"
BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox")
MARK = "@@ORACLE"

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
missing=
mount -t proc proc /proc || missing="$missing CONFIG_PROC_FS:proc"
mount -t sysfs sysfs /sys || missing="$missing CONFIG_SYSFS:sysfs"
# Without devtmpfs, the two serial ports' nodes are made by hand.
mount -t devtmpfs devtmpfs /dev || { mknod /dev/ttyS0 c 4 64; mknod /dev/ttyS1 c 4 65; }
echo 0 > /proc/sys/kernel/randomize_va_space
stty -F /dev/ttyS1 raw -echo 2>/dev/null
if ! (: >/dev/ttyS1) 2>/dev/null; then
    echo "@@ORACLE MISSING CONFIG_SERIAL_8250 no second serial port /dev/ttyS1" > /dev/console
    poweroff -f
fi
exec 3>/dev/ttyS1
# One long write first, so that the tty's write buffer is already as large
# as it will ever need to be when the traces run.
printf '%2100s\n' '' >&3
echo "@@ORACLE START $(uname -r)" >&3

# What the traces need of the kernel (docs/oracle.md, "A kernel of your own").
[ -d /sys/devices/system/node/node0 ] || missing="$missing CONFIG_NUMA:/sys/devices/system/node"
[ -r /proc/self/numa_maps ] || missing="$missing CONFIG_NUMA:/proc/self/numa_maps"
for m in $missing; do
    echo "@@ORACLE MISSING ${m%%:*} no ${m#*:}" >&3
done
probe=$(/oracle/runner --probe) || missing="$missing runner"
echo "$probe" | sed -n "s/^MISSING /@@ORACLE MISSING /p" >&3
if [ -n "$missing" ]; then
    echo "@@ORACLE DONE" >&3
    poweroff -f
fi

check_topology() {
    while read -r path want; do
        got=$(cat "$path" 2>/dev/null)
        if [ "$got" != "$want" ]; then
            echo "@@ORACLE MISMATCH $1 $path is '$got', the header wants '$want'" >&3
            return 1
        fi
    done < /oracle/topology
}

# A trace that uses transparent huge pages leaves /tmp/thp-dirty: the boot's
# settings come back before the next trace.
thp=/sys/kernel/mm/transparent_hugepage
thp_defrag=$(sed 's/.*\[\(.*\)\].*/\1/' $thp/defrag 2>/dev/null)
i=0
while [ -f /oracle/$i.trace ]; do
    if check_topology $i; then
        echo "@@ORACLE BEGIN $i" >&3
        /oracle/runner --commands "$(cat /oracle/$i.commands)" /oracle/$i.trace >&3 2>/tmp/stderr
        rc=$?
        echo "@@ORACLE END $i $rc" >&3
        sed "s/^/@@ORACLE STDERR $i /" /tmp/stderr >&3
        # Weights back to the boot state (recomputed from the firmware's
        # bandwidths; a machine without them gives ENODEV, and a trace that
        # wrote weights there had a boot of its own).  A kernel without the
        # auto file (before 6.16) boots with every weight 1 whatever the
        # firmware says: write 1 to each node file.
        wi=/sys/kernel/mm/mempolicy/weighted_interleave
        if [ -e $wi/auto ]; then
            echo 1 2>/dev/null > $wi/auto
        else
            for f in $wi/node*; do [ -e "$f" ] && echo 1 > "$f"; done
        fi
        if [ -f /tmp/thp-dirty ]; then
            echo never > $thp/enabled
            echo "$thp_defrag" > $thp/defrag
            echo 1 > $thp/use_zero_page
            rm -f /tmp/thp-dirty
        fi
    fi
    i=$((i + 1))
done
echo "@@ORACLE DONE" >&3
poweroff -f
"""


def _newc(name: str, data: bytes, mode: int, ino: int, rdev: tuple[int, int] = (0, 0)) -> bytes:
    """One cpio "newc" record."""
    nb = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(nb), 0)
    out = b"070701" + b"".join(b"%08X" % v for v in fields) + nb
    out += b"\0" * (-len(out) % 4) + data
    return out + b"\0" * (-len(out) % 4)


def cpio_archive(files: dict[str, tuple[bytes, int]], dirs: tuple[str, ...] = ()) -> bytes:
    """A newc archive of FILES ({path: (content, mode)}) and DIRS, with /dev/console."""
    all_dirs = set(dirs) | {"dev"}
    for path in files:
        parts = path.split("/")[:-1]
        all_dirs.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    out = []
    ino = 1
    for d in sorted(all_dirs):
        out.append(_newc(d, b"", 0o040755, ino))
        ino += 1
    out.append(_newc("dev/console", b"", 0o020600, ino, (5, 1)))
    for path, (data, mode) in sorted(files.items()):
        ino += 1
        out.append(_newc(path, data, 0o100000 | mode, ino))
    out.append(_newc("TRAILER!!!", b"", 0, 0))
    return b"".join(out)


def _is_static_elf(path: Path) -> bool:
    """True for an ELF executable without a program interpreter."""
    data = path.read_bytes()
    if data[:5] != b"\x7fELF\x02":
        return False
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        ptype, = struct.unpack_from("<I", data, phoff + i * phentsize)
        if ptype == 3:  # PT_INTERP
            return False
    return True


def find_busybox() -> Path:
    """A statically linked busybox (Debian package busybox-static)."""
    for p in BUSYBOX_PATHS:
        path = Path(p)
        if path.is_file() and _is_static_elf(path):
            return path
    raise OracleError("no static busybox found (install the Debian package busybox-static)")


def runner_cflags() -> list[str]:
    """gcc flags for runner.c: the trace limits, defined once in :mod:`mempolicy.trace.limits`."""
    from mempolicy.trace import limits

    return ["-static", "-O2", *limits.c_defines()]


def _runner_ok(out: Path) -> str | None:
    """None when OUT matches the size and sha256 recorded when it was built, else what differs."""
    stamp = out.with_name(out.name + ".sha256")
    try:
        want_sha, want_size = stamp.read_text().split()
        want = int(want_size)
        data = out.read_bytes()
    except (OSError, ValueError, UnicodeDecodeError):
        return "no record of its build"
    if len(data) != want:
        return f"{len(data)} bytes, {want} when it was built"
    if hashlib.sha256(data).hexdigest() != want_sha:
        return "its sha256 differs from the one recorded when it was built"
    return None


def build_runner() -> Path:
    """Compile runner.c (gcc -static -O2) once; cached by the source's and flags' hash.

    The build is checked on every use (size and sha256 recorded next to it)
    and rebuilt when damaged.  Processes sharing the cache build under a lock.
    """
    flags = runner_cflags()
    src = RUNNER_C.read_bytes()
    digest = hashlib.sha256(src + " ".join(flags).encode()).hexdigest()[:16]
    rdir = cache_dir() / "runner"
    out = rdir / f"runner-{digest}"
    if _runner_ok(out) is None:
        return out
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise OracleError("gcc not found: the oracle compiles its runner with gcc -static")
    try:
        rdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OracleError(f"cannot create the cache directory {rdir}: {e.strerror}") from None
    with locked(rdir / ".lock"):
        wrong = _runner_ok(out)
        if wrong is None:  # another process built it while this one waited
            return out
        if out.exists():
            print(f"mempolicy: the cached runner {out} is damaged ({wrong}); building it again "
                  f"(rm -r {rdir} clears it)", file=sys.stderr)
        with atomic_path(out, mode=0o755) as tmp:
            r = subprocess.run([gcc, *flags, "-o", str(tmp), str(RUNNER_C)],
                               capture_output=True, text=True)
            if r.returncode != 0:
                msg = (r.stderr.strip().splitlines() or ["gcc failed"])[-1]
                raise OracleError(f"cannot build the runner: {msg}")
            data = tmp.read_bytes()
        atomic_write(out.with_name(out.name + ".sha256"),
                     f"{hashlib.sha256(data).hexdigest()} {len(data)}\n")
    return out


def build_initramfs(traces: list[str], topology: list[tuple[str, str]]) -> bytes:
    """The initramfs for one boot: TRACES (texts) run in order."""
    files: dict[str, tuple[bytes, int]] = {
        "init": (INIT.encode(), 0o755),
        "bin/busybox": (find_busybox().read_bytes(), 0o755),
        "oracle/runner": (build_runner().read_bytes(), 0o755),
        "oracle/topology": ("".join(f"{p} {w}\n" for p, w in topology).encode(), 0o644),
    }
    from mempolicy.trace.parser import HEADER_WORDS, scan_text

    for i, text in enumerate(traces):
        files[f"oracle/{i}.trace"] = (text.encode("utf-8", "surrogatepass"), 0o644)
        # The runner checks that it reads as many commands as the parser did.
        lines = scan_text(text)
        header = next((n for n, (_, w) in enumerate(lines) if w[0] not in HEADER_WORDS), len(lines))
        files[f"oracle/{i}.commands"] = (f"{len(lines) - header}\n".encode(), 0o644)
    return cpio_archive(files, dirs=("proc", "sys", "dev", "tmp"))


@dataclass
class BootOutput:
    """What one boot printed, split per trace."""

    release: str | None = None
    outputs: dict[int, str] = field(default_factory=dict)
    status: dict[int, int] = field(default_factory=dict)
    stderr: dict[int, list[str]] = field(default_factory=dict)
    mismatch: dict[int, str] = field(default_factory=dict)
    missing: list[tuple[str, str]] = field(default_factory=list)   # (option, what)
    done: bool = False


def split_results(text: str) -> BootOutput:
    """Split the result port's text into one output per trace."""
    res = BootOutput()
    cur: int | None = None
    lines: list[str] = []
    for line in text.replace("\r", "").split("\n"):
        if not line.startswith(MARK + " "):
            if cur is not None:
                lines.append(line)
            continue
        word, _, rest = line[len(MARK) + 1:].partition(" ")
        if word == "START":
            res.release = rest.strip()
        elif word == "BEGIN":
            cur, lines = int(rest), []
        elif word == "END":
            idx, _, rc = rest.partition(" ")
            if cur == int(idx):
                res.outputs[cur] = "".join(ln + "\n" for ln in lines)
                res.status[cur] = int(rc) if rc.strip().lstrip("-").isdigit() else -1
            cur = None
        elif word == "STDERR":
            idx, _, msg = rest.partition(" ")
            res.stderr.setdefault(int(idx), []).append(msg)
        elif word == "MISMATCH":
            idx, _, msg = rest.partition(" ")
            res.mismatch[int(idx)] = msg
        elif word == "MISSING":
            option, _, what = rest.partition(" ")
            res.missing.append((option, what))
        elif word == "DONE":
            res.done = True
    return res
