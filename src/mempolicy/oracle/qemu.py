"""Boot a kernel under QEMU (TCG) with a trace header's NUMA topology."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from mempolicy.core.nodemask import Nodemask
from mempolicy.oracle.errors import OracleError
from mempolicy.oracle.initramfs import (BootOutput, build_initramfs, build_runner, find_busybox,
                                        split_results)
from mempolicy.oracle.kernels import Kernel
from mempolicy.trace.parser import TraceError

QEMU = "qemu-system-x86_64"
CMDLINE = "console=ttyS0 nokaslr transparent_hugepage=never numa_balancing=disable"
LEGACY_MACHINE = "pc-i440fx-5.0"  # the last machine type with -numa node,mem=
MIN_GUEST_MEM = 128 << 20         # a Debian kernel and the initramfs need this much
STALL_TIMEOUT = 180.0             # seconds without serial output: the guest hangs
ATTEMPTS = 3
POLL = 0.2                        # seconds between looks at a running guest
_BAD_CONSOLE = ("Kernel panic", "Oops:", "BUG:", "general protection fault")


def _size_arg(nbytes: int) -> str:
    """A size for QEMU, in the largest unit that divides it exactly."""
    for unit, suffix in ((1 << 30, "G"), (1 << 20, "M"), (1 << 10, "K")):
        if nbytes % unit == 0:
            return f"{nbytes // unit}{suffix}"
    return str(nbytes)


def check_machine(machine) -> None:
    """Refuse headers QEMU or the guest cannot run, with a clear message."""
    total = sum(n.mem for n in machine.nodes)
    if total < MIN_GUEST_MEM:
        raise OracleError(
            f"the nodes' memory adds up to {_size_arg(total)}; the oracle's guest needs "
            f"at least {_size_arg(MIN_GUEST_MEM)} to boot Linux"
        )
    for n in machine.nodes:
        if n.mem % (1 << 20):
            raise OracleError(f"node {n.id}: QEMU needs mem= in whole MiB, not {n.mem} bytes")
    if len(machine.nodes) > 128:
        raise OracleError(f"{len(machine.nodes)} nodes: QEMU supports at most 128")
    if machine.nr_cpus > 255:
        raise OracleError(f"{machine.nr_cpus} CPUs: the oracle's PC machine has at most 255")


def preflight(machines) -> None:
    """Check the tools and the machines before anything is fetched or booted."""
    if shutil.which(QEMU) is None:
        raise OracleError(f"{QEMU} not found (install the Debian package qemu-system-x86)")
    for m in machines:
        check_machine(m)
    find_busybox()
    build_runner()


def qemu_args(machine, kernel: Path, initrd: Path, console: Path, results: Path,
              single_thread: bool = False) -> list[str]:
    """The QEMU command line for a trace header's machine."""
    ncpu = machine.nr_cpus
    total = sum(n.mem for n in machine.nodes)
    legacy = any(n.mem == 0 for n in machine.nodes)
    args = [QEMU]
    if legacy:
        args += ["-M", LEGACY_MACHINE + (",hmat=on" if machine.hmat else "")]
    elif machine.hmat:
        args += ["-machine", "hmat=on"]
    args += [
        "-accel", "tcg,thread=single" if single_thread else "tcg",
        "-m", _size_arg(total),
        "-smp", f"{ncpu},sockets={ncpu},cores=1,threads=1",
        "-display", "none", "-vga", "none", "-nodefaults", "-no-user-config",
        "-monitor", "none", "-no-reboot",
        "-serial", f"file:{console}",
        "-serial", f"file:{results}",
        "-kernel", str(kernel), "-initrd", str(initrd),
        "-append", CMDLINE,
    ]
    for node, cpus in zip(machine.nodes, machine.cpu_ranges()):
        spec = f"node,nodeid={node.id}"
        if legacy:
            spec += f",mem={_size_arg(node.mem) if node.mem else '0M'}"
        else:
            args += ["-object", f"memory-backend-ram,id=mem{node.id},size={_size_arg(node.mem)}"]
            spec += f",memdev=mem{node.id}"
        if len(cpus):
            spec += f",cpus={cpus.start}" + (f"-{cpus.stop - 1}" if len(cpus) > 1 else "")
        if machine.hmat:
            spec += f",initiator={machine.hmat_initiator(node.id)}"
        args += ["-numa", spec]
    n = len(machine.nodes)
    for a in range(n):
        for b in range(a + 1, n):
            args += ["-numa", f"dist,src={a},dst={b},val={machine.distance(a, b)}"]
            args += ["-numa", f"dist,src={b},dst={a},val={machine.distance(a, b)}"]
    return args + hmat_args(machine)


def hmat_args(machine) -> list[str]:
    """``-numa hmat-lb`` options: each ``hmat`` line's numbers, from the node's initiator.

    QEMU takes bandwidths in bytes per second and writes them to the table in
    MiB/s units (hence the ``M`` suffix: the kernel reads back the header's
    number); latencies in nanoseconds.
    """
    args: list[str] = []
    for nid, spec in sorted(machine.hmat.items()):
        lb = f"hmat-lb,initiator={machine.hmat_initiator(nid)},target={nid},hierarchy=memory"
        args += ["-numa", f"{lb},data-type=access-latency,latency={spec.lat}",
                 "-numa", f"{lb},data-type=access-bandwidth,bandwidth={spec.bw}M"]
    return args


def expected_topology(machine) -> list[tuple[str, str]]:
    """(sysfs file, expected content) pairs that /init checks before each trace."""
    base = "/sys/devices/system/node"
    n = len(machine.nodes)
    out = [
        (f"{base}/online", str(Nodemask(range(n)))),
        (f"{base}/has_memory", str(Nodemask(x.id for x in machine.nodes if x.mem))),
        (f"{base}/has_cpu", str(Nodemask(x.id for x in machine.nodes if x.cpus))),
    ]
    for node, cpus in zip(machine.nodes, machine.cpu_ranges()):
        out.append((f"{base}/node{node.id}/cpulist", str(Nodemask(cpus))))
        out.append((f"{base}/node{node.id}/distance",
                    " ".join(str(machine.distance(node.id, b)) for b in range(n))))
    return out


def _watch(proc: subprocess.Popen, console: Path, results: Path,
           stop: threading.Event | None) -> None:
    """Wait for QEMU; kill a guest that panicked or whose serial ports stay silent.

    Raises KeyboardInterrupt (after killing QEMU) as soon as STOP is set.
    """
    seen, last = -1, time.monotonic()
    while True:
        try:
            proc.wait(timeout=POLL)
            return
        except subprocess.TimeoutExpired:
            pass
        if stop is not None and stop.is_set():
            proc.kill()
            raise KeyboardInterrupt
        size = console.stat().st_size + results.stat().st_size
        if size != seen:
            seen, last = size, time.monotonic()
            if "Kernel panic" in console.read_text(errors="replace"):
                proc.kill()
                return
        elif time.monotonic() - last > STALL_TIMEOUT:
            proc.kill()
            return


def _boot_once(kernel: Kernel, machine, texts: list[str], workdir: Path,
               single_thread: bool, log, stop: threading.Event | None = None
               ) -> tuple[BootOutput, str]:
    initrd = workdir / "initramfs.cpio"
    initrd.write_bytes(build_initramfs(texts, expected_topology(machine)))
    console, results = workdir / "console.log", workdir / "results.log"
    for f in (console, results):
        f.write_bytes(b"")
    args = qemu_args(machine, kernel.vmlinuz, initrd, console, results, single_thread)
    t0 = time.monotonic()
    qlog = workdir / "qemu.log"
    with open(qlog, "wb") as f:
        # Its own session: a Ctrl-C on the terminal reaches only Python, which
        # then stops QEMU itself (and does not take the dead guest for a
        # failed boot to try again).
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        _watch(proc, console, results, stop)
    finally:  # an exception here (Ctrl-C, a stop) must not leave QEMU running
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    con = console.read_text(errors="replace")
    res = split_results(results.read_text(errors="replace"))
    if log:
        log(f"  boot of {kernel.release}: {time.monotonic() - t0:.1f} s, "
            f"{len(res.outputs)}/{len(texts)} traces"
            + ("" if res.done else " (incomplete)"))
    qemu_said = qlog.read_text(errors="replace").strip()
    if not res.done and qemu_said:
        con += "\nQEMU: " + qemu_said
    return res, con


CONFIG_HINT = "docs/oracle.md, \"A kernel of your own\", lists the options"


def missing_features(res: BootOutput, console: str, kernel: Kernel) -> str | None:
    """What the booted kernel lacks, as one sentence, or None.

    The guest's ``/init`` probes the kernel before the first trace
    (``@@ORACLE MISSING`` lines); a guest that printed nothing at all on
    either serial port has no 8250 serial driver (or did not boot).
    """
    found = list(res.missing)
    for line in console.splitlines():
        if line.startswith("@@ORACLE MISSING "):
            opt, _, what = line[len("@@ORACLE MISSING "):].partition(" ")
            found.append((opt, what.strip()))
    if not found and kernel.user and res.release is None:
        if not console.strip():
            found.append(("CONFIG_SERIAL_8250_CONSOLE", "nothing on the serial console"))
        elif "VFS: Unable to mount root" in console:
            found.append(("CONFIG_BLK_DEV_INITRD", "the initramfs was not unpacked"))
        elif "Failed to execute /init" in console:  # a #! script (and a static ELF busybox)
            found.append(("CONFIG_BINFMT_SCRIPT", "/init could not be executed"))
    if not found:
        return None
    opts: dict[str, list[str]] = {}
    for opt, what in found:
        opts.setdefault(opt, []).append(what)
    said = "; ".join(f"{o} ({', '.join(w)})" for o, w in opts.items())
    return f"Linux {res.release or kernel.release} lacks what the traces need: {said}; {CONFIG_HINT}"


def _check(res: BootOutput, n: int, console: str, paths: list[str],
           kernel: Kernel | None = None) -> bool:
    """True when the boot ran every trace; OracleError for a trace that cannot run."""
    if kernel is not None:
        wrong = missing_features(res, console, kernel)
        if wrong:
            raise OracleError(wrong)
    if res.mismatch:
        i, msg = min(res.mismatch.items())
        hint = ""
        if kernel is not None and kernel.user and "/online" in msg:
            hint = " (a kernel of your own needs CONFIG_ACPI_NUMA to see QEMU's nodes)"
        raise OracleError(f"{paths[i]}: the booted machine does not match the header: {msg}{hint}")
    for i, st in sorted(res.status.items()):
        if st == 2 and i in res.stderr:  # the runner refused the trace
            msg = " ".join(res.stderr[i])
            m = re.fullmatch(r"runner: line (\d+): (.*)", msg)
            if m:  # the same words the parser uses for the same mistake
                raise TraceError(paths[i], int(m[1]), m[2])
            raise OracleError(f"{paths[i]}: {msg}")
        if st != 0 and ("Out of memory" in console or "oom-kill" in console):
            last = (res.outputs[i].splitlines() or ["its start"])[-1]
            raise OracleError(f"{paths[i]}: the kernel ran out of memory and killed the runner "
                              f"after '{last}'")
    if not res.done or any(s in console for s in _BAD_CONSOLE):
        return False
    return all(res.status.get(i) == 0 for i in range(n))


def run_boot(kernel: Kernel, machine, texts: list[str], paths: list[str],
             log=None, keep: Path | None = None, stop: threading.Event | None = None) -> list[str]:
    """Run TEXTS (all with MACHINE's header) in one boot; their outputs, in order.

    A boot that does not reach its end (an oops, a hang) is tried again, the
    later attempts with single-threaded TCG.  Setting STOP (another thread's
    Ctrl-C) kills QEMU within a fraction of a second and raises
    KeyboardInterrupt; a stopped boot is never tried again.
    """
    preflight([machine])
    with tempfile.TemporaryDirectory(prefix="mempolicy-oracle-") as tmp:
        work = Path(tmp)
        for attempt in range(ATTEMPTS):
            if stop is not None and stop.is_set():
                raise KeyboardInterrupt
            res, console = _boot_once(kernel, machine, texts, work, attempt > 0, log, stop)
            if keep is not None:
                keep.mkdir(parents=True, exist_ok=True)
                for f in ("console.log", "results.log"):
                    shutil.copy(work / f, keep / f"{attempt}-{f}")
            if _check(res, len(texts), console, paths, kernel):
                return [res.outputs[i] for i in range(len(texts))]
            if log:
                log(f"  boot incomplete (attempt {attempt + 1}/{ATTEMPTS}), trying again")
        tail = "\n".join(console.strip().splitlines()[-15:])
        print(tail, file=sys.stderr)
        raise OracleError(
            f"{ATTEMPTS} boots of Linux {kernel.release} did not run to the end "
            f"(the last console lines are above)"
        )
