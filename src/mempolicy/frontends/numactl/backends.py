"""What libnuma reads and calls: the running kernel (``LiveBackend``) or a model process (``SimBackend``)."""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import re

from mempolicy.frontends.numactl.cparse import strtoul

class LiveBackend:
    """The running kernel and this process."""

    sim = False

    def __init__(self) -> None:
        from mempolicy.linux import syscalls

        self.sc = syscalls

    def syscall_ok(self) -> bool:
        return self.sc.syscall_numbers() is not None

    def get_mempolicy(self, want_mode: bool, mask_bits, maxnode, addr=0, flags=0):
        return self.sc.get_mempolicy(mask_bits, maxnode, addr, flags, want_mode)

    def set_mempolicy(self, mode, mask, maxnode):
        self.sc.set_mempolicy(mode, mask, maxnode)

    def mbind(self, addr, length, mode, mask, maxnode, flags):
        self.sc.mbind(addr, length, mode, mask, maxnode, flags)

    def getaffinity(self) -> set[int]:
        return set(os.sched_getaffinity(0))

    def setaffinity(self, cpus: set[int]) -> None:
        os.sched_setaffinity(0, cpus)

    def node_dirs(self) -> list[int] | None:
        try:
            names = os.listdir("/sys/devices/system/node")
        except OSError:
            return None
        out = []
        for n in names:
            if n.startswith("node"):
                out.append(strtoul(n, 4, 0)[0] & 0xFFFFFFFF)
        return out

    def node_size(self, node: int) -> tuple[int, int]:
        """numa_node_size64: MemTotal and MemFree of nodeN/meminfo, or -1."""
        try:
            with open(f"/sys/devices/system/node/node{node}/meminfo") as f:
                text = f.read()
        except OSError:
            return -1, -1
        size = free = -1
        for line in text.splitlines():
            m = re.search(r"(\d+)\s*kB", line, re.I)
            if not m:
                continue
            if "MemTotal" in line:
                size = int(m.group(1)) << 10
            if "MemFree" in line:
                free = int(m.group(1)) << 10
        return size, free

    def node_cpus(self, node: int) -> set[int] | None:
        try:
            with open(f"/sys/devices/system/node/node{node}/cpumap") as f:
                text = f.read().strip()
            v = int(text.replace(",", ""), 16)
        except (OSError, ValueError):
            return None
        return {i for i in range(v.bit_length()) if v >> i & 1}

    def distance_row(self, node: int) -> list[int] | None:
        try:
            with open(f"/sys/devices/system/node/node{node}/distance") as f:
                line = f.readline()
        except FileNotFoundError:
            return None
        except OSError:
            return []
        return line.split()

    def status_masks(self):
        """(Mems_allowed text, Cpus_allowed text) of /proc/self/status."""
        mems = cpus = None
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("Mems_allowed:\t"):
                        mems = line[len("Mems_allowed:\t"):]
                    elif line.startswith("Cpus_allowed:"):
                        cpus = line.rsplit("\t", 1)[-1]
        except OSError:
            pass
        return mems, cpus

    def nprocs_conf(self) -> int:
        return os.sysconf("SC_NPROCESSORS_CONF")

    def cpumask_bits(self) -> int:
        """The kernel's cpumask size: what sched_getaffinity returns, in bits."""
        nr = {"x86_64": 204, "aarch64": 123, "riscv64": 123, "loongarch64": 123,
              "ppc64le": 223, "s390x": 240}.get(os.uname().machine)
        if nr is not None:
            lib = ctypes.CDLL(None, use_errno=True)
            lib.syscall.restype = ctypes.c_long
            n = 4096
            while n <= 1024 * 1024:
                buf = ctypes.create_string_buffer(n // 8)
                r = lib.syscall(ctypes.c_long(nr), ctypes.c_long(0), ctypes.c_ulong(n // 8), buf)
                if r > 0:
                    return r * 8
                if ctypes.get_errno() != _errno.EINVAL:
                    break
                n *= 2
        try:
            with open("/sys/devices/system/cpu/possible") as f:
                last = int(re.split(r"[-,]", f.read().strip())[-1])
        except (OSError, ValueError):
            last = os.cpu_count() or 1
        return (last + 64) // 64 * 64


class SimBackend:
    """A process of the model kernel (``--sim``)."""

    sim = True

    def __init__(self, spec: str, kernel: str = "7.3") -> None:
        from mempolicy.api import ModelSystem
        from mempolicy.scopes.cred import Cred

        self.model = ModelSystem.from_spec(spec, cred=Cred.of_caller(),   # as privileged as the caller
                                           version=kernel)
        self.topo = self.model.topology

        self.threads = 1

    def envelope(self, opts: dict[str, str]) -> str | None:
        """``--cpuset-mems``/``--cpuset-cpus``: start in a cpuset; ``--threads N``
        for memhog.  An error text, or None."""
        from mempolicy.core.nodemask import Nodemask
        from mempolicy.core.units import parse_list_bits

        try:
            if "threads" in opts:
                self.threads = int(opts["threads"], 10)
                if not 1 <= self.threads <= 32:
                    return f"--threads: {opts['threads']} is not 1 to 32"
            mems = cpus = None
            if "cpuset-mems" in opts:
                mems = Nodemask(parse_list_bits(opts["cpuset-mems"], 1024, ascending=True))
            if "cpuset-cpus" in opts:
                bits = parse_list_bits(opts["cpuset-cpus"], 1024, ascending=True)
                cpus = {c for c in range(1024) if bits >> c & 1}
        except ValueError as e:
            return f"--cpuset: {e}"
        if mems is not None or cpus is not None:
            try:
                self.model.cpuset(mems=mems, cpus=cpus)
            except OSError as e:
                return f"--cpuset: {os.strerror(e.errno or 0)}"
        return None

    def syscall_ok(self) -> bool:
        return True

    def get_mempolicy(self, want_mode, mask_bits, maxnode, addr=0, flags=0):
        nbytes = None if mask_bits is None else (mask_bits + 63) // 64 * 8
        return self.model.raw_get_mempolicy(want_mode, nbytes, maxnode, addr, flags)

    def set_mempolicy(self, mode, mask, maxnode):
        self.model.raw_set_mempolicy(mode, mask, maxnode)

    def mbind(self, addr, length, mode, mask, maxnode, flags):
        self.model.raw_mbind(addr, length, mode, mask, maxnode, flags)

    def getaffinity(self) -> set[int]:
        return self.model.sched_getaffinity()

    def setaffinity(self, cpus: set[int]) -> None:
        self.model.sched_setaffinity(cpus)

    def node_dirs(self):
        return [n.id for n in self.topo.nodes]

    def node_size(self, node):
        if node >= len(self.topo.nodes):
            return -1, -1
        mi = self.model.meminfo(node)
        return mi["MemTotal"], mi["MemFree"]

    def node_cpus(self, node):
        if node >= len(self.topo.nodes):
            return None
        return set(self.topo.nodes[node].cpus)

    def distance_row(self, node):
        if node >= len(self.topo.nodes):
            return None
        return [str(d) for d in self.topo.dist[node]]

    def status_masks(self):
        def text(bits: int, nbits: int) -> str:
            words = [(bits >> (32 * i)) & 0xFFFFFFFF for i in range(nbits // 32)]
            return ",".join(f"{w:08x}" for w in reversed(words)) + "\n"

        mems = text(self.model.task.mems_allowed.bits, 1024)
        cpus = sum(1 << c for c in self.model.sched_getaffinity())
        return mems, text(cpus, max(32, (self.topo.nr_cpus + 31) // 32 * 32))

    def nprocs_conf(self):
        return self.topo.nr_cpus

    def cpumask_bits(self):
        return (self.topo.nr_cpus + 63) // 64 * 64
