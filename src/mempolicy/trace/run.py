"""Run a trace on the model kernel and print the canonical output (docs/trace-format.md).

Each command is turned into the system call the oracle's runner makes, with
the same raw arguments, and its result is printed as ``LINE COMMAND: RESULT``.
"""

from __future__ import annotations

import errno as _errno

from mempolicy.alloc.bulk import touch_range
from mempolicy.alloc.fault import FaultSignal, OutOfMemory
from mempolicy.alloc.huge_memory import set_thp
from mempolicy.alloc.swap import lru_batches
from mempolicy.alloc.topology import Topology
from mempolicy.cgroup import cpuset
from mempolicy.core.mempolicy import KernelError
from mempolicy.kernel import Kernel
from mempolicy.progress import Progress
from mempolicy.proc.task_mmu import numa_maps
from mempolicy.scopes import cred
from mempolicy.syscalls import mempolicy as sp
from mempolicy.syscalls import migrate as mig
from mempolicy.syscalls import mman, process
from mempolicy.trace.parser import Command, Trace, parse_trace
from mempolicy.uapi import (
    MODE_NAMES,
    MPOL_F_ADDR,
    MPOL_F_MEMS_ALLOWED,
    MPOL_F_NODE,
    MPOL_F_NUMA_BALANCING,
    MPOL_F_RELATIVE_NODES,
    MPOL_F_STATIC_NODES,
    MPOL_MF_MOVE,
    MPOL_MF_MOVE_ALL,
    MPOL_MF_STRICT,
    MPOL_MODE_FLAGS,
    PAGE_SIZE,
)

U64 = (1 << 64) - 1
MAXNODE = 1025           # high-level commands pass a 1024-bit mask
MASK_BYTES = 128
PROGRESS_MIN_PAGES = 1 << 16   # touches this large may show a progress bar on a terminal


# Where Python's table names an errno by an alias, use the kernel's name.
_KERNEL_ERRNO_NAMES = {_errno.EOPNOTSUPP: "EOPNOTSUPP", _errno.EAGAIN: "EAGAIN",
                       _errno.EDEADLK: "EDEADLK"}


def errname(e: int) -> str:
    return _KERNEL_ERRNO_NAMES.get(e) or _errno.errorcode.get(e, f"E{e}")


def mode_string(pval: int) -> str:
    """``bind+static``: the mode name with the user flags the kernel returned."""
    mode = pval & ~MPOL_MODE_FLAGS & 0xFFFFFFFF
    s = MODE_NAMES.get(mode, str(mode))
    if pval & MPOL_F_STATIC_NODES:
        s += "+static"
    if pval & MPOL_F_RELATIVE_NODES:
        s += "+relative"
    if pval & MPOL_F_NUMA_BALANCING:
        s += "+balancing"
    return s


def _words_to_int(words: list[int] | None) -> int | None:
    if words is None:
        return None
    v = 0
    for i, w in enumerate(words):
        v |= w << (64 * i)
    return v


def _as_int(v: int) -> int:
    """The low 32 bits of ``v`` as a C int."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


class TraceRunner:
    """State of one trace run: the kernel, the process stack and the names."""

    def __init__(self, trace: Trace, protocol: str = "current", bulk: bool | None = None,
                 kernel: str = "7.3") -> None:
        self.trace = trace
        self.bulk = bulk                        # None: the bulk fault path where it applies
        self.kernel, task = Kernel.boot(Topology.from_machine(trace.machine), protocol,
                                        version=kernel)
        hmat_register_targets(self.kernel, trace.machine)
        self.stack = [task]                     # current process last
        self.maps: dict[str, tuple[int, int]] = {}
        self.memfds: dict[str, object] = {}
        self.fork_memfds: list[list[str]] = []
        self.out: list[str] = []
        self.threads = {"main": task}            # the threads of the trace's process
        self.cpuset: cpuset.Cpuset | None = None

    @property
    def task(self):
        return self.stack[-1]

    def emit(self, cmd: Command, result: str) -> None:
        self.out.append(f"{cmd.lineno} {cmd.name}: {result}" if result else f"{cmd.lineno} {cmd.name}:")

    def addr(self, name: str, off_pages: int = 0) -> int:
        return (self.maps[name][0] + off_pages * PAGE_SIZE) & U64

    def run(self) -> list[str]:
        for cmd in self.trace.commands:
            handler = getattr(self, "do_" + cmd.name.replace("-", "_"))
            try:
                result = handler(cmd.args)
            except KernelError as e:
                result = errname(e.errno)
            self.emit(cmd, result)
        return self.out

    # -- commands -------------------------------------------------------------
    def do_cpu(self, a) -> str:
        cpu = _as_int(a["cpu"])                 # the runner passes an int
        if cpu < 0:
            raise KernelError(_errno.EINVAL)
        process.sched_setaffinity(self.kernel, self.task, cpu)
        return "ok"

    def do_mmap(self, a) -> str:
        self.maps[a["name"]] = (a["addr"], a["pages"])
        file = self.memfds[a["file"]] if a["file"] else None
        shared = a["shared"] or (file is not None and not a["private"])
        length = (a["pages"] * PAGE_SIZE) & U64
        mman.sys_mmap(self.kernel, self.task, a["addr"], length, shared, file, a["off"])
        return "ok"

    def do_memfd(self, a) -> str:
        try:
            f = mman.memfd_create(self.kernel, self.task, a["name"], a["pages"])
            err = None
        except mman.MemfdSizeError as e:
            f, err = e.file, e.errno
        self.memfds[a["name"]] = f
        if self.fork_memfds:
            self.fork_memfds[-1].append(a["name"])
        return errname(err) if err else "ok"

    def do_munmap(self, a) -> str:
        mman.sys_munmap(self.kernel, self.task, self.addr(a["name"], a["off"]), a["pages"] * PAGE_SIZE)
        return "ok"

    def do_mprotect(self, a) -> str:
        mman.sys_mprotect(self.kernel, self.task, self.addr(a["name"], a["off"]),
                          a["pages"] * PAGE_SIZE, a["prot"] == "rw")
        return "ok"

    def do_set_mempolicy(self, a) -> str:
        sp.kernel_set_mempolicy(self.kernel, self.task, a["mode"] | a["mode_flags"],
                                a["nodes"].bits, MAXNODE)
        return "ok"

    def do_mbind(self, a) -> str:
        flags = ((MPOL_MF_STRICT if a["strict"] else 0) | (MPOL_MF_MOVE if a["move"] else 0)
                 | (MPOL_MF_MOVE_ALL if a["move_all"] else 0))
        sp.kernel_mbind(self.kernel, self.task, self.addr(a["name"], a["off"]), a["pages"] * PAGE_SIZE,
                        a["mode"] | a["mode_flags"], a["nodes"].bits, MAXNODE, flags)
        return "ok"

    def do_home_node(self, a) -> str:
        sp.sys_set_mempolicy_home_node(self.kernel, self.task, self.addr(a["name"], a["off"]),
                                       a["pages"] * PAGE_SIZE, a["node"], 0)
        return "ok"

    def do_get_mempolicy(self, a) -> str:
        flags = 0
        addr = 0
        if a["at"] is not None:
            flags |= MPOL_F_ADDR
            addr = self.addr(*a["at"])
        if a["node"]:
            flags |= MPOL_F_NODE
        if a["mems_allowed"]:
            flags |= MPOL_F_MEMS_ALLOWED
        pval, buf = sp.kernel_get_mempolicy(self.kernel, self.task, MASK_BYTES, MAXNODE, addr, flags)
        from mempolicy.core.nodemask import Nodemask
        nodes = str(Nodemask(buf))
        if a["node"]:
            return f"node={_as_int(pval)}"
        if a["mems_allowed"]:
            return f"nodes={nodes}"
        return f"mode={mode_string(pval)} nodes={nodes}"

    def do_touch(self, a) -> str:
        """Fault the pages in order; large ranges of private anonymous memory take the
        bulk path (``mempolicy.alloc.bulk``), which ends in the same state."""
        base = self.addr(a["name"], a["off"])
        pages = a["pages"]
        bar = Progress(pages, f"{a['name']}: touch") if pages >= PROGRESS_MIN_PAGES else None
        try:
            touch_range(self.kernel, self.task, base, pages, write=not a["read"],
                        bulk=self.bulk, progress=None if bar is None else bar.update)
        except FaultSignal as s:
            return s.signame
        except OutOfMemory:
            return "SIGKILL"
        finally:
            if bar is not None:
                bar.close()
        return "ok"

    def _status(self, status) -> str:
        return " ".join(str(s) if s is not None and s >= 0 else errname(-s) if s is not None else "?"
                        for s in status)

    def _pid(self, a) -> int:
        """0 (the caller), or with ``parent`` the pid of the parent process (getppid())."""
        return self.stack[-2].pid if a["parent"] else 0

    def do_where(self, a) -> str:
        base = self.addr(a["name"], a["off"])
        addrs = [(base + i * PAGE_SIZE) & U64 for i in range(a["pages"])]
        _, status = mig.kernel_move_pages(self.kernel, self.task, self._pid(a), addrs, None, 0)
        return self._status(status)

    def do_move_pages(self, a) -> str:
        base = self.addr(a["name"], a["off"])
        addrs = [(base + i * PAGE_SIZE) & U64 for i in range(a["pages"])]
        node = _as_int(a["node"])
        flags = MPOL_MF_MOVE_ALL if a["all"] else MPOL_MF_MOVE
        _, status = mig.kernel_move_pages(self.kernel, self.task, self._pid(a), addrs,
                                          [node] * len(addrs), flags)
        return self._status(status)

    def do_migrate_pages(self, a) -> str:
        r = mig.kernel_migrate_pages(self.kernel, self.task, self._pid(a), MAXNODE, a["from"].bits,
                                     a["to"].bits)
        return str(r)

    def do_cred(self, a) -> str:
        """setresgid, setresuid, then capset without the dropped capabilities, as the runner."""
        if a["gid"] is not None:
            cred.sys_setresgid(self.task, *a["gid"])
        if a["uid"] is not None:
            cred.sys_setresuid(self.task, *a["uid"])
        if a["drop"]:
            cred.sys_capset_drop(self.task, a["drop"])
        return "ok"

    # -- section 5.9: transparent huge pages ------------------------------------
    def do_thp(self, a) -> str:
        """A write to /sys/kernel/mm/transparent_hugepage/FILE."""
        set_thp(self.kernel, a["file"], a["value"])
        return "ok"

    def do_madvise(self, a) -> str:
        advice = mman.MADV_HUGEPAGE if a["advice"] == "hugepage" else mman.MADV_NOHUGEPAGE
        mman.sys_madvise(self.kernel, self.task, self.addr(a["name"], a["off"]),
                         a["pages"] * PAGE_SIZE, advice)
        return "ok"

    def do_numa_maps(self, a) -> str:
        start, pages = self.maps[a["name"]]
        end = start + pages * PAGE_SIZE
        lines = []
        # /proc/self is the thread-group leader's: a VMA without a policy shows
        # the leader's task policy (proc_maps_open), whichever thread reads
        proc = self.threads["main"] if len(self.stack) == 1 else self.task
        for line in numa_maps(self.kernel, self.task, proc):
            addr_s, _, rest = line.partition(" ")
            va = int(addr_s, 16)
            if start <= va < end:
                lines.append(f"{a['name']}+{(va - start) // PAGE_SIZE} {rest}")
        if not lines:
            return ""
        # one output line per VMA: emit all but the last here, return the last
        return "\n".join(lines)

    def do_fork(self, a) -> str:
        child = process.copy_process(self.kernel, self.task)
        self.stack.append(child)
        self.fork_memfds.append([])
        return "ok"

    def do_exit(self, a) -> str:
        child = self.stack.pop()
        for name in self.fork_memfds.pop():
            f = self.memfds.pop(name)
            f.inode.put()
        process.do_exit(self.kernel, child)
        parent = self.stack[-1]                 # the runner's waitpid returns
        lru_batches(self.kernel).runner_resume(parent.cpu, parent.pid)
        return "ok"

    # -- threads and cpusets (section 5.7) -------------------------------------
    def do_thread(self, a) -> str:
        t = self.threads[a["name"]] = process.copy_thread(self.kernel, self.task)
        if self.cpuset is not None and self.cpuset.tasks:  # cgroup_post_fork: the creator's group
            self.cpuset.tasks.append(t)
        return "ok"

    def do_switch(self, a) -> str:
        self.stack[-1] = self.threads[a["name"]]
        return "ok"

    def do_thread_exit(self, a) -> str:
        process.exit_thread(self.kernel, self.threads.pop(a["name"]))
        return "ok"

    def do_cpuset(self, a) -> str:
        """Create the group and move the process in at the first success; write
        ``cpuset.cpus`` then ``cpuset.mems``; pin every thread again, as the runner
        does, to its CPU or to the group's lowest."""
        if self.cpuset is None:
            self.cpuset = cpuset.Cpuset(self.kernel)
        cs = self.cpuset
        if a["cpus"] is not None:
            cpuset.update_cpumask(self.kernel, cs, frozenset(a["cpus"]))
        if a["mems"] is not None:
            cpuset.update_nodemask(self.kernel, cs, a["mems"])
        if not cs.tasks:
            cpuset.cpuset_attach(self.kernel, cs, [self.threads["main"]] +
                                 [t for n, t in self.threads.items() if n != "main"])
        for t in self.threads.values():
            t.cpus_allowed = frozenset((t.cpu,))
        return "ok"

    # -- weighted-interleave weights (section 5.8) -------------------------------
    def do_weight(self, a) -> str:
        wi = self.kernel.wi_state
        buf = a["value"] + "\n"
        e = wi.auto_store(buf) if a["node"] is None else wi.node_store(a["node"], buf)
        return errname(e) if e else "ok"

    def do_weights(self, a) -> str:
        wi = self.kernel.wi_state
        auto = wi.auto_show() or "none"       # the runner's word for a missing file
        return " ".join([f"auto={auto}"] + [f"N{n}={w}" for n, w in wi.weights().items()])

    def do_raw_set_mempolicy(self, a) -> str:
        sp.kernel_set_mempolicy(self.kernel, self.task, a["mode"], _words_to_int(a["mask"]), a["maxnode"])
        return "ok"

    def do_raw_mbind(self, a) -> str:
        sp.kernel_mbind(self.kernel, self.task, self.addr(a["name"]) + a["byteoff"] & U64, a["len"],
                        a["mode"], _words_to_int(a["mask"]), a["maxnode"], a["flags"])
        return "ok"

    def do_raw_get_mempolicy(self, a) -> str:
        addr = a["addr"]
        if isinstance(addr, tuple):
            addr = (self.addr(addr[0]) + addr[1]) & U64
        nbytes = None if a["maskbits"] is None else (a["maskbits"] + 63) // 64 * 8
        pval, buf = sp.kernel_get_mempolicy(self.kernel, self.task, nbytes, a["maxnode"], addr, a["flags"])
        mask = "null" if buf is None else hex(buf)
        return f"rc=0 mode={_as_int(pval)} mask={mask}"


def hmat_register_targets(kernel: Kernel, machine) -> None:
    """What the HMAT driver does at boot for each ``hmat`` line of the header.

    hmat_register_target_perf() hands each memory target's access
    coordinates from its local initiator (which has CPUs, so the CPU access
    class) to node_set_perf_attrs(), which passes them to
    mempolicy_set_node_perf(): read and write bandwidth are both the line's
    ``bw``.  Latency does not enter the weights, and a table the kernel
    refuses gives none (``Machine.firmware_bandwidths``).
    """
    for nid, bw in machine.firmware_bandwidths().items():
        kernel.wi_state.mempolicy_set_node_perf(nid, bw)


def run_trace(trace: Trace, protocol: str = "current", bulk: bool | None = None,
              kernel: str = "7.3") -> list[str]:
    """The output lines of a parsed trace as Linux ``kernel`` ("6.1", "6.12", "7.3") gives
    them (``bulk`` False: fault page by page)."""
    runner = TraceRunner(trace, protocol, bulk, kernel)
    out = runner.run()
    lines = []
    for line in out:
        if "\n" in line:
            head, _, first = line.partition(": ")
            prefix = head + ": "
            lines.extend(prefix + part for part in first.split("\n"))
        else:
            lines.append(line)
    return lines


def run_trace_text(text: str, path: str = "<trace>", protocol: str = "current",
                   kernel: str = "7.3") -> str:
    """Canonical output of a trace given as text, as Linux ``kernel`` gives it (TraceError
    if it is malformed).

    Example: ``run_trace_text(open("t.trace").read(), "t.trace", kernel="6.12")``."""
    return "".join(line + "\n" for line in run_trace(parse_trace(text, path), protocol,
                                                      kernel=kernel))
