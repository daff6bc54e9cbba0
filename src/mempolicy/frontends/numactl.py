"""``mempolicy numactl``: numactl 2.0.16 (as Debian ships it), on Linux or on the model.

    mempolicy numactl [numactl options] COMMAND [ARGS...]
    mempolicy numactl --show | --hardware
    mempolicy numactl --sim TOPOLOGY [numactl options] [--show | --hardware | memhog SIZE]

Options are processed in order, with GNU ``getopt_long`` rules (prefix
abbreviations, stop at the first non-option), each with numactl's side
effects and error texts; node and CPU strings are read as libnuma reads them
(``all``, ``!``, ``+``, ranges, numbers as C ``strtoul(.., 0)``, ``netdev:``,
``file:``, ``ip:``, ``block:``, ``pci:``, ``same``).  ``--show`` and
``--hardware`` print what numactl prints.  Without ``--sim`` the policy is
set on this thread with the real system calls and COMMAND is exec'd with it.

``--sim TOPOLOGY`` (first argument; a TOML file, ``4x512M``, a hwloc
synthetic string or ``sysfs``) runs the same command line against a process
of the model kernel booted on that machine: ``--show``/``--hardware``
describe the simulated process and machine, and the command may be
``memhog SIZE`` (touch SIZE of anonymous memory under the policy, then print
where its pages went as numa_maps does).
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import re
import signal
import sys

from mempolicy.frontends.gnu_getopt import Getopt, LongOpt

MPOL_DEFAULT, MPOL_PREFERRED, MPOL_BIND, MPOL_INTERLEAVE, MPOL_LOCAL, MPOL_PREFERRED_MANY = range(6)
MPOL_F_NUMA_BALANCING = 1 << 13
MPOL_F_NODE, MPOL_F_ADDR = 1, 2
MPOL_MF_STRICT = 1
PAGE_SIZE = 4096
ULONG = (1 << 64) - 1

OPTS = [
    LongOpt("all", 0, "a"), LongOpt("interleave", 1, "i"), LongOpt("preferred", 1, "p"),
    LongOpt("preferred-many", 1, "P"), LongOpt("cpubind", 1, "c"), LongOpt("cpunodebind", 1, "N"),
    LongOpt("physcpubind", 1, "C"), LongOpt("membind", 1, "m"), LongOpt("show", 0, "s"),
    LongOpt("localalloc", 0, "l"), LongOpt("balancing", 0, "b"), LongOpt("hardware", 0, "H"),
    LongOpt("shm", 1, "S"), LongOpt("file", 1, "f"), LongOpt("offset", 1, "o"),
    LongOpt("length", 1, "L"), LongOpt("strict", 0, "t"), LongOpt("shmmode", 1, "M"),
    LongOpt("dump", 0, "d"), LongOpt("dump-nodes", 0, "D"), LongOpt("shmid", 1, "I"),
    LongOpt("huge", 0, "u"), LongOpt("touch", 0, "T"), LongOpt("verify", 0, "V"),
]
SHORTOPTS = "+" + "".join(o.val + (":" if o.has_arg else "") for o in OPTS)

USAGE = (
    "usage: numactl [--all | -a] [--balancing | -b] [--interleave= | -i <nodes>]\n"
    "\t\t[--preferred= | -p <node>] [--preferred-many= | -P <nodes>]\n"
    "               [--physcpubind= | -C <cpus>] [--cpunodebind= | -N <nodes>]\n"
    "               [--membind= | -m <nodes>] [--localalloc | -l] command args ...\n"
    "               [--localalloc | -l] command args ...\n"
    "       numactl [--show | -s]\n"
    "       numactl [--hardware | -H]\n"
    "       numactl [--length | -L <length>] [--offset | -o <offset>] [--shmmode | -M <shmmode>]\n"
    "               [--strict | -t]\n"
    "               [--shmid | -I <id>] --shm | -S <shmkeyfile>\n"
    "               [--shmid | -I <id>] --file | -f <tmpfsfile>\n"
    "               [--huge | -u] [--touch | -T] \n"
    "               memory policy [--dump | -d] [--dump-nodes | -D]\n"
    "\n"
    "memory policy is --interleave | -i, --preferred | -p, --membind | -m, --localalloc | -l\n"
    "<nodes> is a comma delimited list of node numbers or A-B ranges or all.\n"
    "Instead of a number a node can also be:\n"
    "  netdev:DEV the node connected to network device DEV\n"
    "  file:PATH  the node the block device of path is connected to\n"
    "  ip:HOST    the node of the network device host routes through\n"
    "  block:PATH the node of block device path\n"
    "  pci:[seg:]bus:dev[:func] The node of a PCI device\n"
    "<cpus> is a comma delimited list of cpu numbers or A-B ranges or all\n"
    "all ranges can be inverted with !\n"
    "all numbers and ranges can be made cpuset-relative with +\n"
    "the old --cpubind argument is deprecated.\n"
    "use --cpunodebind or --physcpubind instead\n"
    "use --balancing | -b to enable Linux kernel NUMA balancing\n"
    "for the process if it is supported by kernel\n"
    "<length> can have g (GB), m (MB) or k (KB) suffixes\n")

POLICY_NAMES = ["default", "preferred", "bind", "interleave", "local", "preferred-many"]


class Exit(Exception):
    """exit(status) of the C program."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class Output:
    """stdout is buffered until exit (or exec), as C stdio does into a pipe; stderr is not."""

    def __init__(self, out=None, err=None) -> None:
        self._out = out if out is not None else sys.stdout
        self._err = err if err is not None else sys.stderr
        self.buf: list[str] = []

    def out(self, s: str) -> None:
        self.buf.append(s)

    def err(self, s: str) -> None:
        self.flush_err_only(s)

    def flush_err_only(self, s: str) -> None:
        self._err.write(s)
        self._err.flush()

    def flush(self) -> None:
        if self.buf:
            self._out.write("".join(self.buf))
            self.buf.clear()
        self._out.flush()


def c_strerror(e: int) -> str:
    return os.strerror(e) if e else "Success"


# ---------------------------------------------------------------------------
# C number parsing
# ---------------------------------------------------------------------------

_SPACE = " \t\n\v\f\r"


def strtoul(s: str, i: int = 0, base: int = 0) -> tuple[int, int]:
    """C strtoul(s + i, &end, base): (value modulo 2**64, end index; i when nothing parsed)."""
    j = i
    n = len(s)
    while j < n and s[j] in _SPACE:
        j += 1
    neg = False
    if j < n and s[j] in "+-":
        neg = s[j] == "-"
        j += 1
    if base == 0:
        if s[j:j + 2] in ("0x", "0X") and j + 2 < n and s[j + 2] in "0123456789abcdefABCDEF":
            base, j = 16, j + 2
        elif s[j:j + 1] == "0":
            base = 8
        else:
            base = 10
    elif base == 16 and s[j:j + 2] in ("0x", "0X") and j + 2 < n and s[j + 2] in "0123456789abcdefABCDEF":
        j += 2
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"[:base]
    k = j
    while k < n and s[k].lower() in digits:
        k += 1
    if k == j:
        return 0, i
    v = int(s[j:k], base)
    if v > ULONG:
        v = ULONG
    elif neg:
        v = (-v) & ULONG
    return v, k


def _c_int(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _c_long(v: int) -> int:
    v &= ULONG
    return v - (1 << 64) if v >> 63 else v


def memsize(s: str) -> int:
    """numactl's memsize(): strtoul(s, 0) then a K/M/G suffix."""
    v, end = strtoul(s, 0, 0)
    suffix = s[end:end + 1].upper()
    if suffix == "G":
        v *= 1024 * 1024 * 1024
    elif suffix == "M":
        v *= 1024 * 1024
    elif suffix == "K":
        v *= 1024
    return _c_long(v)


# ---------------------------------------------------------------------------
# Backends: what libnuma reads and calls
# ---------------------------------------------------------------------------

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

    def __init__(self, spec: str) -> None:
        from mempolicy.api import ModelSystem

        self.model = ModelSystem.from_spec(spec)
        self.topo = self.model.topology

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


# ---------------------------------------------------------------------------
# libnuma 2.0.16, as numactl uses it
# ---------------------------------------------------------------------------

class Bitmask:
    """struct bitmask: ``size`` bits."""

    __slots__ = ("size", "bits")

    def __init__(self, size: int, bits: int = 0) -> None:
        self.size = size
        self.bits = bits & ((1 << size) - 1)

    def isset(self, i: int) -> bool:
        i &= 0xFFFFFFFF
        return i < self.size and bool(self.bits >> i & 1)

    def set(self, i: int) -> None:
        i &= 0xFFFFFFFF
        if i < self.size:
            self.bits |= 1 << i

    def clear(self, i: int) -> None:
        i &= 0xFFFFFFFF
        if i < self.size:
            self.bits &= ~(1 << i)

    def weight(self) -> int:
        return self.bits.bit_count()

    def first(self) -> int:
        return (self.bits & -self.bits).bit_length() - 1 if self.bits else -1

    def ids(self) -> list[int]:
        return [i for i in range(self.bits.bit_length()) if self.bits >> i & 1]

    def copy_from(self, other: "Bitmask") -> "Bitmask":
        self.bits = other.bits & ((1 << self.size) - 1)
        return self


def _read_mask(text: str | None) -> int:
    """libnuma read_mask(): comma-separated 32-bit hex words, the first the highest."""
    if not text:
        return 0
    v = 0
    for word in text.strip().split(","):
        w, _ = strtoul(word, 0, 16)
        v = (v << 32) | (w & 0xFFFFFFFF)
    return v


class Libnuma:
    """The state libnuma's constructor builds (numa_init), and the calls numactl makes."""

    def __init__(self, be, io: Output) -> None:
        self.be = be
        self.io = io
        self.errno = 0
        self.warned: set[str] = set()
        mems_text, cpus_text = be.status_masks()
        self.nodemask_sz = len(mems_text) * 32 // 9 if mems_text else 0
        if self.nodemask_sz == 0:
            self.nodemask_sz = 1024
        dirs = be.node_dirs()
        self.nodes_ptr = Bitmask(self.nodemask_sz)
        self.memnode_ptr = Bitmask(self.nodemask_sz)
        self.maxconfigurednode = -1
        if dirs is None:
            self.maxconfigurednode = 0
        else:
            for nd in dirs:
                self.nodes_ptr.set(nd)
                if be.node_size(nd)[0] > 0:
                    self.memnode_ptr.set(nd)
                self.maxconfigurednode = max(self.maxconfigurednode, nd)
        self.cpumask_sz = be.cpumask_bits()
        self.maxconfiguredcpu = be.nprocs_conf() - 1
        hicpu = self.maxconfiguredcpu
        self.all_cpus = Bitmask(self.cpumask_sz, _read_mask(cpus_text))
        self.possible_cpus = Bitmask(self.cpumask_sz, (1 << (hicpu + 1)) - 1)
        self.all_nodes = Bitmask(self.nodemask_sz, _read_mask(mems_text))
        self.possible_nodes = Bitmask(self.cpumask_sz, (1 << (self.maxconfigurednode + 1)) - 1)
        self.no_nodes = Bitmask(self.nodemask_sz)
        if self.all_cpus.weight() <= 0:
            self.all_cpus.bits = (1 << (hicpu + 1)) - 1
        elif self.all_cpus.weight() > hicpu + 1:
            self.all_cpus.bits &= (1 << (hicpu + 1)) - 1
        if self.all_nodes.weight() <= 0:
            self.all_nodes.bits = (1 << (self.maxconfigurednode + 1)) - 1
        self.bind_policy = MPOL_BIND
        self.mbind_flags = 0
        self.has_preferred_many = False
        self._set_kernel_abi()
        self.node_cpu_cache: dict[int, set[int]] = {}

    # -- error reporting --------------------------------------------------------
    def warn(self, kind: str, msg: str) -> None:
        if kind in self.warned:
            return
        self.warned.add(kind)
        self.io.err(f"libnuma: Warning: {msg}\n")

    def error(self, where: str) -> None:
        """numa_error(): perror(where)."""
        self.io.err(f"{where}: {c_strerror(self.errno)}\n")

    def _fail(self, e: OSError) -> None:
        self.errno = e.errno or 0

    # -- system calls as libnuma makes them -------------------------------------------
    def available(self) -> bool:
        if not self.be.syscall_ok():
            return False
        try:
            self.be.get_mempolicy(False, None, 0, 0, 0)
        except OSError as e:
            if e.errno == _errno.ENOSYS:
                self.errno = e.errno
                return False
        return True

    def _set_kernel_abi(self) -> None:
        try:
            oldp, old = self.be.get_mempolicy(True, self.nodemask_sz, self.nodemask_sz + 1)
        except OSError as e:
            self._fail(e)
            return
        try:
            self.be.set_mempolicy(MPOL_PREFERRED_MANY, 1, self.nodemask_sz)
        except OSError as e:
            self._fail(e)
            return
        self.has_preferred_many = True
        self.setpol(oldp, Bitmask(self.nodemask_sz, old))

    def setpol(self, policy: int, bmp: Bitmask) -> None:
        try:
            self.be.set_mempolicy(policy, bmp.bits, bmp.size + 1)
        except OSError as e:
            self._fail(e)
            self.error("set_mempolicy")

    def getpol(self) -> tuple[int, Bitmask]:
        bmp = Bitmask(self.nodemask_sz)
        try:
            pol, mask = self.be.get_mempolicy(True, bmp.size, bmp.size + 1)
            bmp.bits = mask & ((1 << bmp.size) - 1)
        except OSError as e:
            self._fail(e)
            self.error("get_mempolicy")
            pol = 0
        return pol, bmp

    def dombind(self, addr: int, size: int, pol: int, bmp: Bitmask | None) -> None:
        try:
            self.be.mbind(addr, size, pol, bmp.bits if bmp else None, bmp.size + 1 if bmp else 0,
                          self.mbind_flags)
        except OSError as e:
            self._fail(e)
            self.error("mbind")

    # -- policies -------------------------------------------------------------------
    def set_interleave_mask(self, bmp: Bitmask) -> None:
        self.setpol(MPOL_DEFAULT if bmp.bits == 0 else MPOL_INTERLEAVE, bmp)

    def set_membind(self, bmp: Bitmask) -> None:
        self.setpol(MPOL_BIND, bmp)

    def set_membind_balancing(self, bmp: Bitmask) -> None:
        try:
            self.be.set_mempolicy(MPOL_BIND | MPOL_F_NUMA_BALANCING, bmp.bits, bmp.size + 1)
        except OSError as e:
            if e.errno == _errno.EINVAL:
                self.errno = 0
                self.set_membind(bmp)
            else:
                self._fail(e)
                self.error("set_mempolicy")

    def set_preferred(self, node: int) -> None:
        bmp = Bitmask(self.nodemask_sz)
        bmp.set(node)
        if bmp.weight() > 1:
            self.error("libnuma.c")
        self.setpol(MPOL_PREFERRED if bmp.weight() else MPOL_LOCAL, bmp)

    def set_preferred_many(self, bmp: Bitmask) -> None:
        if not self.has_preferred_many:
            self.warn("nodeparse", "Unable to handle MANY preferred nodes. Falling back to first node\n")
            self.set_preferred(bmp.first())
            return
        self.setpol(MPOL_PREFERRED_MANY, bmp)

    def set_localalloc(self) -> None:
        self.setpol(MPOL_LOCAL, self.no_nodes)

    def set_bind_policy(self, strict: bool) -> None:
        if strict:
            self.bind_policy = MPOL_BIND
        elif self.has_preferred_many:
            self.bind_policy = MPOL_PREFERRED_MANY
        else:
            self.bind_policy = MPOL_PREFERRED

    def preferred_many(self) -> Bitmask:
        pol, bmp = self.getpol()
        if pol in (MPOL_PREFERRED, MPOL_PREFERRED_MANY, MPOL_BIND) and bmp.weight() > 1:
            self.error("libnuma.c")
        return bmp

    def get_interleave_mask(self) -> Bitmask:
        pol, bmp = self.getpol()
        if pol != MPOL_INTERLEAVE:
            bmp.copy_from(self.no_nodes)
        return bmp

    def get_membind(self) -> Bitmask:
        pol, bmp = self.getpol()
        if pol != MPOL_BIND:
            bmp.copy_from(self.all_nodes)
        return bmp

    def get_interleave_node(self) -> int:
        try:
            nd, _ = self.be.get_mempolicy(True, None, 0, 0, MPOL_F_NODE)
            return nd
        except OSError as e:
            self._fail(e)
            return 0

    # -- CPUs -----------------------------------------------------------------------
    def node_to_cpus(self, node: int) -> set[int] | None:
        if node > self.maxconfigurednode:
            self.errno = _errno.ERANGE
            return None
        if node in self.node_cpu_cache:
            return self.node_cpu_cache[node]
        cpus = self.be.node_cpus(node)
        if cpus is None:
            if self.nodes_ptr.isset(node):
                self.warn("nosysfs2", "/sys not mounted or invalid. Assuming one node: "
                          f"{c_strerror(_errno.ENOENT)}")
                self.warn("nosysfs2", f"(cannot open or correctly parse "
                          f"/sys/devices/system/node/node{node}/cpumap)")
            return None
        self.node_cpu_cache[node] = cpus
        return cpus

    def sched_setaffinity(self, cpus: set[int]) -> bool:
        try:
            self.be.setaffinity(cpus)
            return True
        except OSError as e:
            self._fail(e)
            return False

    def run_on_node_mask_all(self, bmp: Bitmask) -> None:
        cpus: set[int] = set()
        for i in bmp.ids():
            if not self.possible_nodes.isset(i):
                self.warn("noderunmask", f"node {i} not allowed")
                continue
            nc = self.node_to_cpus(i)
            if nc is None:
                self.warn("noderunmask", "Cannot read node cpumask from sysfs")
                continue
            cpus |= {c for c in nc if c < self.cpumask_sz}
        if not self.sched_setaffinity(cpus):
            self.error("numa_sched_setaffinity_v2_int() failed")

    def get_run_node_mask(self) -> Bitmask:
        bmp = Bitmask(self.cpumask_sz)
        try:
            cpus = self.be.getaffinity()
        except OSError:
            return bmp
        for i in range(self.maxconfigurednode + 1):
            if not self.all_nodes.isset(i):
                continue
            nc = self.node_to_cpus(i)
            if nc is None:
                continue
            if nc & cpus:
                bmp.set(i)
        return bmp

    # -- parsing ----------------------------------------------------------------------
    def _get_nr(self, s: str, i: int, allowed: Bitmask, relative: bool) -> tuple[int, int]:
        nr, end = strtoul(s, i, 0)
        if not relative or end == i:
            return nr, end
        nr = _c_long(nr)
        k = 0
        while nr >= 0 and k <= allowed.size:
            if allowed.isset(k):
                nr -= 1
            k += 1
        return (k - 1) & ULONG, end

    def parse_string(self, s: str, allowed: Bitmask, cpu: bool) -> Bitmask | None:
        """__numa_parse_nodestring / __numa_parse_cpustring."""
        what = "cpu" if cpu else "node"
        kind = "cpuparse" if cpu else "nodeparse"
        mask = Bitmask(self.cpumask_sz if cpu else self.nodemask_sz)
        conf = (self.maxconfiguredcpu + 1) if cpu else self.memnode_ptr.weight()
        if s == "":
            return mask
        i = 0
        invert = relative = False
        if s[i:i + 1] == "!":
            invert, i = True, i + 1
        if s[i:i + 1] == "+":
            relative, i = True, i + 1
        while True:
            if s[i:] == "all" and (cpu or s[i:i + 1].isalpha()):
                mask.copy_from(allowed)
                i += 4
                break
            if not cpu and s[i:i + 1].isascii() and s[i:i + 1].isalpha():
                n = self.resolve_affinity(s[i:], mask)
                if n is not None:
                    if n < 0:
                        return None
                    i = len(s) + 1
                    break
            arg, end = self._get_nr(s, i, allowed, relative)
            if end == i:
                self.warn(kind, f"unparseable {what} description `{s[i:]}'\n")
                return None
            if not allowed.isset(arg):
                if cpu:
                    self.warn(kind, f"cpu argument {s[i:]} is out of range\n")
                else:
                    self.warn(kind, f"node argument {_c_int(arg)} is out of range\n")
                return None
            mask.set(arg)
            i = end
            if s[i:i + 1] == "-":
                i += 1
                arg2, end2 = self._get_nr(s, i, allowed, relative)
                if end2 == i:
                    self.warn(kind, f"missing {what} argument {s[i:]}\n")
                    return None
                if not allowed.isset(arg2):
                    if cpu:
                        self.warn(kind, f"cpu argument {s[i:]} out of range\n")
                    else:
                        self.warn(kind, f"node argument {_c_int(arg2)} out of range\n")
                    return None
                self._set_range(mask, allowed, arg, arg2)
                i = end2
            c = s[i:i + 1]
            i += 1
            if c != ",":
                break
        if i - 1 < len(s):            # s[-1] != '\0': trailing characters
            return None
        if invert:
            for k in range(conf):
                if mask.isset(k):
                    mask.clear(k)
                else:
                    mask.set(k)
        return mask

    @staticmethod
    def _set_range(mask: Bitmask, allowed: Bitmask, lo: int, hi: int) -> None:
        """``while (arg <= arg2) { if allowed(arg) set(arg); arg++; }`` with 32-bit bit indexes."""
        if hi < lo:
            return
        if hi - lo + 1 >= 1 << 32 or hi == ULONG:
            mask.bits |= allowed.bits & ((1 << mask.size) - 1)
            return
        for b in allowed.ids():
            first = lo + ((b - lo) % (1 << 32))
            if first <= hi:
                mask.set(b)

    def resolve_affinity(self, s: str, mask: Bitmask) -> int | None:
        """netdev:, ip:, file:, block:, pci: (affinity.c); None for anything else."""
        for prefix, fn in (("netdev:", self._aff_netdev), ("ip:", self._aff_ip),
                           ("file:", self._aff_file), ("block:", self._aff_block),
                           ("pci:", self._aff_pci)):
            if s.startswith(prefix):
                if self.be.sim:
                    self.warn("node_parse2", f"Cannot read node mask for {prefix[:-1]} device "
                              f"`{s[len(prefix):]}' (not simulated)")
                    return -1
                r = fn(s[len(prefix):], mask)
                if r == -2:
                    self.warn("nonode", f"Kernel does not know node for {s[len(prefix):]}\n")
                return r
        return None

    def _node_read(self, mask: Bitmask, path: str) -> int:
        try:
            with open(path) as f:
                text = f.read(4095)
        except OSError:
            return -1
        if not text:
            return -1
        i = 0
        while True:
            num, end = strtoul(text, i, 0)
            if end == i:
                return -1
            num = _c_int(num)
            if num < 0:
                return -2
            if num >= self.all_nodes.weight():
                return -1
            mask.set(num)
            i = end
            while i < len(text) and (text[i] in _SPACE or text[i] == ","):
                i += 1
            if not (i < len(text) and text[i].isdigit()):
                return 0

    def _parse_failure(self, ret: int, cls: str | None, dev: str) -> int:
        cls = cls or ""
        if ret == -2:
            self.warn("node_parse1", f"Kernel does not know node mask for{' ' if cls else ''}{cls} "
                      f"device `{dev}'")
        else:
            self.warn("node_parse2", f"Cannot read node mask for {cls} device `{dev}'")
        return -1

    def _aff_class(self, mask: Bitmask, cls: str, dev: str) -> int:
        dev = dev.lstrip(_SPACE)
        if "/" in dev or "." in dev:
            self.warn("badchar", f"Illegal characters in `{dev}' specification")
            return -1
        try:
            link = os.readlink(f"/sys/class/{cls}/{dev}")
        except OSError:
            link = ""
        m = re.search(r"(/devices/pci[0-9a-fA-F:/]+\.[0-9]+)/", link)
        if m:
            p = link[m.start():m.end(1) + 1]
            ret = self._node_read(mask, f"/sys/{p}/numa_node")
            if ret < 0:
                return self._parse_failure(ret, None, p)
            return ret
        ret = self._node_read(mask, f"/sys/class/{cls}/{dev}/device/numa_node")
        if ret < 0:
            return self._parse_failure(ret, cls, dev)
        return 0

    def _aff_netdev(self, dev: str, mask: Bitmask) -> int:
        return self._aff_class(mask, "net", dev)

    def _aff_block(self, dev: str, mask: Bitmask) -> int:
        return self._aff_class(mask, "block", dev)

    def _aff_file(self, path: str, mask: Bitmask) -> int:
        import stat

        try:
            st = os.stat(path)
        except OSError:
            self.warn("blockdev1", f"Cannot stat file {path}")
            return -1
        d, cls = st.st_dev, "block"
        if stat.S_ISCHR(st.st_mode):
            d, cls = st.st_rdev, "misc"
        elif stat.S_ISBLK(st.st_mode):
            d = st.st_rdev
        try:
            names = os.listdir(f"/sys/class/{cls}")
        except OSError:
            self.warn("blockdev2", f"Cannot enumerate {cls} devices in sysfs")
            return -1
        maj = mi = 0
        for name in names:
            if name.startswith("."):
                continue
            try:
                with open(f"/sys/class/block/{name}/dev") as f:
                    maj, mi = (int(x) for x in f.read().strip().split(":"))
            except (OSError, ValueError):
                self.warn("blockdev3", f"Cannot parse sysfs device {name}")
                continue
            if os.major(d) != maj or os.minor(d) != mi:
                continue
            return self._aff_class(mask, "block", name)
        self.warn("blockdev5", f"Cannot find block device {maj:x}:{mi:x} in sysfs for `{path}'")
        return -1

    def _aff_ip(self, host: str, mask: Bitmask) -> int:
        import ipaddress
        import socket

        try:
            infos = socket.getaddrinfo(host, None)
        except socket.gaierror as e:
            self.warn("net1", f"Cannot resolve {host}: {e.strerror}")
            return -1
        addr = ipaddress.ip_address(infos[0][4][0])
        if addr.version != 4:
            self.warn("netlink1", f"Cannot handle network family {infos[0][0]:x}")
            return -1
        best = None
        try:
            with open("/proc/net/route") as f:
                next(f)
                for line in f:
                    p = line.split()
                    dest = int.from_bytes(bytes.fromhex(p[1]), "little")
                    msk = int.from_bytes(bytes.fromhex(p[7]), "little")
                    if int(addr) & msk == dest and (best is None or msk.bit_count() > best[1]):
                        best = (p[0], msk.bit_count())
        except (OSError, ValueError, IndexError, StopIteration):
            best = None
        if int(addr) >> 24 == 127:
            best = ("lo", 32)
        if best is None:
            self.warn("netlink3", "rtnetlink query did not return interface")
            return -1
        return self._aff_class(mask, "net", best[0])

    def _aff_pci(self, ident: str, mask: Bitmask) -> int:
        m = re.fullmatch(r"([0-9a-fA-F]+):([0-9a-fA-F]+):([0-9a-fA-F]+)(?:\.([0-9a-fA-F]+))?.*", ident)
        if m:
            seg, bus, dev, fn = (int(x, 16) for x in (m.group(1), m.group(2), m.group(3), m.group(4) or "0"))
        else:
            m = re.fullmatch(r"([0-9a-fA-F]+):([0-9a-fA-F]+)(?:\.([0-9a-fA-F]+))?.*", ident)
            if not m:
                self.warn("pci1", f"Cannot parse PCI device `{ident}'")
                return -1
            seg = 0
            bus, dev, fn = (int(x, 16) for x in (m.group(1), m.group(2), m.group(3) or "0"))
        ret = self._node_read(mask, f"/sys/devices/pci{seg:04x}:{bus:02x}/{seg:04x}:{bus:02x}:{dev:02x}.{fn:x}/numa_node")
        if ret < 0:
            return self._parse_failure(ret, None, ident)
        return 0

    # -- distances and sizes ----------------------------------------------------------------
    def distance_table(self) -> dict[tuple[int, int], int] | None:
        maxnode = self.maxconfigurednode + 1
        table: dict[tuple[int, int], int] | None = None
        err = -1
        nd = 0
        while True:
            row = self.be.distance_row(nd)
            if row is None:
                err = 0
                if nd < maxnode:
                    nd += 1
                    continue
                break
            if not row:
                break
            if table is None:
                table = {}
            j = 0
            for tok in row[:maxnode]:
                while j <= self.maxconfigurednode and not self.nodes_ptr.isset(j):
                    j += 1
                v, end = strtoul(tok, 0, 0)
                if end == 0:
                    break
                table[(nd, j)] = _c_int(v)
                j += 1
            nd += 1
        if err:
            self.warn("distance", f"Cannot parse distance information in sysfs: {c_strerror(self.errno)}")
            return None
        return table

    def distance(self, table, a: int, b: int) -> int:
        if table is None:
            return 0
        return table.get((a, b), 0)


# ---------------------------------------------------------------------------
# numactl
# ---------------------------------------------------------------------------

class Numactl:
    def __init__(self, be, io: Output) -> None:
        self.be = be
        self.io = io
        self.numa = Libnuma(be, io)
        self.set_policy = -1
        self.last_nodestring: str | None = None
        self.shmattached = False
        self.did_node_cpu_parse = False
        self.shmoption: str | None = None
        self.exitcode = 0
        # shm.c state
        self.shmfd = -1
        self.shmid = 0
        self.shmptr = 0
        self.shmlen = 0
        self.shmmode = 0o600
        self.shmoffset = 0
        self.shmflags = 0
        self.shm_pagesize = PAGE_SIZE

    # -- messages ------------------------------------------------------------------
    def usage(self):
        self.io.err(USAGE)
        raise Exit(1)

    def usage_msg(self, msg: str):
        self.io.err(f"numactl: {msg}")
        self.io.out("\n")
        self.usage()

    def complain(self, msg: str):
        self.io.err(f"numactl: {msg}")
        self.io.out("\n")
        raise Exit(1)

    def nerror(self, msg: str, err: int):
        self.io.err(f"numactl: {msg}" + (f": {c_strerror(err)}\n" if err else "\n"))
        raise Exit(1)

    def perror_exit(self, what: str, err: int):
        self.io.err(f"{what}: {c_strerror(err)}\n")
        raise Exit(1)

    def printmask(self, name: str, ids) -> None:
        self.io.out(f"{name}: " + "".join(f"{i} " for i in ids) + "\n")

    # -- show / hardware ------------------------------------------------------------
    def show_physcpubind(self) -> None:
        try:
            cpus = sorted(self.be.getaffinity())
        except OSError as e:
            self.perror_exit("sched_get_affinity", e.errno)
        self.printmask("physcpubind", cpus)

    def show(self) -> None:
        numa = self.numa
        if not numa.available():
            self.show_physcpubind()
            self.io.out("No NUMA support available on this system.\n")
            raise Exit(1)
        cpubind = numa.get_run_node_mask()
        preferred = numa.preferred_many()
        interleave = numa.get_interleave_mask()
        membind = numa.get_membind()
        cur = numa.get_interleave_node()
        policy = 0
        try:
            policy, _ = self.be.get_mempolicy(True, None, 0, 0, 0)
        except OSError as e:
            numa.errno = e.errno
            numa.error("get_mempolicy")
        name = POLICY_NAMES[policy] if 0 <= policy < len(POLICY_NAMES) else f"[{policy}]"
        self.io.out(f"policy: {name}\n")
        self.io.out("preferred node: ")
        if policy == MPOL_PREFERRED:
            self.io.out(f"{preferred.first() if preferred.weight() else 0}\n")
        elif policy == MPOL_DEFAULT:
            self.io.out("current\n")
        elif policy == MPOL_INTERLEAVE:
            self.io.out(f"{cur} (interleave next)\n")
        elif policy == MPOL_BIND:
            self.io.out(f"{membind.first()}\n")
        elif policy == MPOL_PREFERRED_MANY:
            self.io.out(f"{cur} (preferred-many)\n")
        if policy == MPOL_INTERLEAVE:
            self.printmask("interleavemask", interleave.ids())
            self.io.out(f"interleavenode: {cur}\n")
        self.show_physcpubind()
        self.printmask("cpubind", cpubind.ids())
        self.printmask("nodebind", cpubind.ids())
        self.printmask("membind", membind.ids())
        self.printmask("preferred", preferred.ids())

    def hardware(self) -> None:
        numa = self.numa
        maxnode = numa.maxconfigurednode
        if not numa.available():
            self.io.out("No NUMA available on this system\n")
            raise Exit(1)
        nodes = [i for i in range(maxnode + 1) if numa.nodes_ptr.isset(i)]
        out = f"available: {len(nodes)} nodes ("
        prevnode, skip = -1, False
        for i in range(maxnode + 1):
            if not numa.nodes_ptr.isset(i):
                continue
            if prevnode == -1:
                out += f"{i}"
                prevnode = i
                continue
            if i > prevnode + 1:
                if skip:
                    out += f"{prevnode}"
                    skip = False
                out += f",{i}"
                prevnode = i
                continue
            if i == prevnode + 1:
                if not skip:
                    out += "-"
                    skip = True
                prevnode = i
            if i == maxnode and skip:
                out += f"{prevnode}"
        self.io.out(out + ")\n")
        for i in nodes:
            sz, fr = self.be.node_size(i)
            cpus = numa.node_to_cpus(i)
            self.io.out(f"node {i} cpus:" + "".join(f" {c}" for c in sorted(cpus or ())
                                                     if c < numa.cpumask_sz) + "\n")
            self.io.out(f"node {i} size: {_fmt_mem(sz)}\n")
            self.io.out(f"node {i} free: {_fmt_mem(fr)}\n")
        self.print_distances(maxnode)

    def print_distances(self, maxnode: int) -> None:
        numa = self.numa
        fst = 0
        for i in range(maxnode + 1):
            if numa.nodes_ptr.isset(i):
                fst = i
                break
        table = numa.distance_table()
        if numa.distance(table, maxnode, fst) == 0:
            self.io.out("No distance information available.\n")
            return
        nodes = [i for i in range(maxnode + 1) if numa.nodes_ptr.isset(i)]
        self.io.out("node distances:\n")
        self.io.out("node " + "".join(f"{i: 3d} " for i in nodes) + "\n")
        for i in nodes:
            self.io.out(f"{i: 3d}: " + "".join(f"{numa.distance(table, i, k): 3d} " for k in nodes) + "\n")

    # -- option helpers ------------------------------------------------------------------
    def checkerror(self, what: str) -> None:
        if self.numa.errno:
            self.perror_exit(what, self.numa.errno)

    def checknuma(self) -> None:
        if not self.numa.available():
            self.complain("This system does not support NUMA policy")

    def setpolicy(self, pol: int) -> None:
        if self.set_policy != -1:
            self.usage_msg("Conflicting policies")
        self.set_policy = pol

    def nopolicy(self) -> None:
        if self.set_policy >= 0:
            self.usage_msg("specify policy after --shm/--file")

    def noshm(self, opt: str) -> None:
        if self.shmattached:
            self.usage_msg(f"{opt} must be before shared memory specification")
        self.shmoption = opt

    def dontshm(self, opt: str) -> None:
        if self.shmoption:
            self.usage_msg(f"{self.shmoption} shm option is not allowed before {opt}")

    def needshm(self, opt: str) -> None:
        if not self.shmattached:
            self.usage_msg(f"{opt} must be after shared memory specification")

    def check_cpubind(self, flag: bool) -> None:
        if flag:
            self.usage_msg("cannot do --cpubind on shared memory\n")

    def parse_nodes(self, s: str, parse_all: bool) -> Bitmask | None:
        if s == "same":
            if self.last_nodestring is None:
                self.usage_msg("same needs previous node specification")
            s = self.last_nodestring
        else:
            self.last_nodestring = s
        allowed = self.numa.possible_nodes if parse_all else self.numa.all_nodes
        return self.numa.parse_string(s, allowed, cpu=False)

    def invalid(self, arg: str):
        self.io.out(f"<{arg}> is invalid\n")
        self.usage()

    def check_shmbeyond(self, msg: str) -> None:
        if self.shmoffset >= self.shmlen:
            self.io.err(f"numactl: region offset {_hex(self.shmoffset)} beyond its length "
                        f"{_hex(self.shmlen)} at {msg}\n")
            raise Exit(1)

    # -- main ------------------------------------------------------------------------------
    def run(self, argv: list[str]) -> int:
        numa = self.numa
        g = Getopt(argv, SHORTOPTS, OPTS, "numactl", self.io.err)
        mask: Bitmask | None = None
        did_cpubind = did_strict = do_dump = False
        parse_all = numa_balancing = False
        while (c := g.next()) != -1:
            arg = g.optarg
            if c == "s":
                self.show()
                raise Exit(0)
            elif c == "H":
                self.nopolicy()
                self.hardware()
                raise Exit(0)
            elif c == "b":
                self.nopolicy()
                numa_balancing = True
            elif c == "i":
                self.checknuma()
                mask = self.parse_nodes(arg, parse_all)
                if mask is None:
                    self.invalid(arg)
                numa.errno = 0
                self.did_node_cpu_parse = True
                self.setpolicy(MPOL_INTERLEAVE)
                if self.shmfd >= 0:
                    numa.dombind(self.shmptr, self.shmlen, MPOL_INTERLEAVE, mask)
                else:
                    numa.set_interleave_mask(mask)
                self.checkerror("setting interleave mask")
            elif c in ("N", "c"):
                self.dontshm("-c/--cpubind/--cpunodebind")
                self.checknuma()
                mask = self.parse_nodes(arg, parse_all)
                if mask is None:
                    self.invalid(arg)
                numa.errno = 0
                self.check_cpubind(self.shmfd >= 0)
                did_cpubind = True
                self.did_node_cpu_parse = True
                numa.run_on_node_mask_all(mask)
                self.checkerror("sched_setaffinity")
            elif c == "C":
                self.dontshm("-C/--physcpubind")
                allowed = numa.possible_cpus if parse_all else numa.all_cpus
                cpubuf = numa.parse_string(arg, allowed, cpu=True)
                if cpubuf is None:
                    self.invalid(arg)
                numa.errno = 0
                self.check_cpubind(self.shmfd >= 0)
                did_cpubind = True
                self.did_node_cpu_parse = True
                numa.sched_setaffinity(set(cpubuf.ids()))
                self.checkerror("sched_setaffinity")
            elif c == "m":
                self.checknuma()
                self.setpolicy(MPOL_BIND)
                mask = self.parse_nodes(arg, parse_all)
                if mask is None:
                    self.invalid(arg)
                numa.errno = 0
                self.did_node_cpu_parse = True
                numa.set_bind_policy(True)
                if self.shmfd >= 0:
                    numa.dombind(self.shmptr, self.shmlen, numa.bind_policy, mask)
                elif numa_balancing:
                    numa.set_membind_balancing(mask)
                else:
                    numa.set_membind(mask)
                numa.set_bind_policy(False)
                self.checkerror("setting membind")
            elif c in ("P", "p"):
                if c == "P" and not numa.has_preferred_many:
                    self.complain("preferred-many requested without kernel support")
                self.checknuma()
                mask = self.parse_nodes(arg, parse_all)
                if mask is None:
                    self.invalid(arg)
                numa.errno = 0
                self.did_node_cpu_parse = True
                numa.set_bind_policy(False)
                if self.shmfd >= 0:
                    nodes = Bitmask(numa.nodemask_sz)
                    nodes.set(-1)                    # numactl passes its unset node (-1)
                    numa.dombind(self.shmptr, self.shmlen, numa.bind_policy, nodes)
                elif c == "p":
                    if mask.weight() != 1:
                        self.usage()
                    self.setpolicy(MPOL_PREFERRED)
                    numa.set_preferred(mask.first())
                else:
                    self.setpolicy(MPOL_PREFERRED_MANY)
                    numa.set_preferred_many(mask)
                self.checkerror("setting preferred node")
            elif c == "l":
                self.checknuma()
                self.setpolicy(MPOL_LOCAL)
                numa.errno = 0
                if self.shmfd >= 0:
                    numa.dombind(self.shmptr, self.shmlen, MPOL_LOCAL, None)
                else:
                    numa.set_localalloc()
                self.checkerror("local allocation")
            elif c in ("S", "f"):
                self.check_cpubind(did_cpubind)
                self.nopolicy()
                if self.be.sim:
                    self.complain(f"{'--shm' if c == 'S' else '--file'} needs the live kernel "
                                  "(not available with --sim)")
                if c == "S":
                    self.attach_sysvshm(arg, "--shm")
                else:
                    self.attach_shared(arg, "--file")
                self.shmattached = True
            elif c == "L":
                self.noshm("--length")
                self.shmlen = memsize(arg) & ULONG
            elif c == "M":
                self.noshm("--shmmode")
                v, end = strtoul(arg, 0, 8)
                if end == 0 or end != len(arg):
                    self.usage()
                self.shmmode = v & 0xFFFFFFFF
            elif c == "d":
                if self.shmfd < 0:
                    self.complain("Cannot do --dump without shared memory.\n")
                self.dump_shm()
                do_dump = True
            elif c == "D":
                if self.shmfd < 0:
                    self.complain("Cannot do --dump-nodes without shared memory.\n")
                self.dump_shm_nodes()
                do_dump = True
            elif c == "t":
                did_strict = True
                numa.mbind_flags |= MPOL_MF_STRICT
            elif c == "I":
                v, end = strtoul(arg, 0, 0)
                if end == 0 or end != len(arg):
                    self.usage()
                self.shmid = _c_long(v)
            elif c == "u":
                self.noshm("--huge")
                self.shmflags |= 0o4000          # SHM_HUGETLB
            elif c == "o":
                self.noshm("--offset")
                self.shmoffset = memsize(arg) & ULONG
            elif c == "T":
                self.needshm("--touch")
                self.check_shmbeyond("--touch")
                self.police_memory()
            elif c == "V":
                self.needshm("--verify")
                if self.set_policy < 0:
                    self.complain("Need a policy first to verify")
                self.check_shmbeyond("--verify")
                self.police_memory()
                if mask is None:
                    self.complain("Need a mask to verify")
                else:
                    self.verify_shm(self.set_policy, mask)
            elif c == "a":
                if self.did_node_cpu_parse:
                    self.usage_msg("--all/-a option must be before all cpu/node specifications")
                parse_all = True
            else:
                self.usage()
        av = g.rest
        if self.shmfd >= 0:
            if av:
                self.usage()
            raise Exit(self.exitcode)
        if did_strict:
            self.io.err("numactl: warning. Strict flag for process ignored.\n")
        if do_dump:
            self.usage_msg("cannot do --dump|--dump-shm for process")
        if self.shmoption:
            self.usage_msg(f"shm related option {self.shmoption} for process")
        if not av:
            self.usage()
        return self.execute(av)

    # -- running the command -------------------------------------------------------------
    def execute(self, av: list[str]) -> int:
        if self.be.sim:
            return self.sim_command(av)
        self.io.flush()
        sys.stderr.flush()
        for sig in ("SIGPIPE", "SIGXFSZ"):          # Python ignores these; a C program does not
            if hasattr(signal, sig):
                signal.signal(getattr(signal, sig), signal.SIG_DFL)
        try:
            os.execvp(av[0], av)
        except OSError as e:
            err = e.errno or _errno.ENOENT
        except ValueError:
            err = _errno.EINVAL
        self.complain(f"execution of `{av[0]}': {c_strerror(err)}\n")
        return 1

    def sim_command(self, av: list[str]) -> int:
        """On the model: ``memhog SIZE`` touches SIZE of anonymous memory and prints its numa_maps."""
        if av[0] != "memhog" or len(av) != 2:
            self.complain(f"execution of `{av[0]}': the model runs no programs; "
                          "use --show, --hardware or memhog SIZE\n")
        size = memsize(av[1])
        if size <= 0:
            self.complain(f"memhog: bad size `{av[1]}'\n")
        model = self.be.model
        try:
            addr = model.mmap(size)
            model.touch(addr, size)
        except OSError as e:
            self.complain(f"memhog: {c_strerror(e.errno)}\n")
        for line in model.numa_maps_text().splitlines():
            if int(line.split(" ", 1)[0], 16) == addr:
                self.io.out(line + "\n")
        return 0

    # -- shared memory (shm.c) -----------------------------------------------------------
    def _libc(self):
        lib = ctypes.CDLL(None, use_errno=True)
        lib.shmat.restype = ctypes.c_void_p
        lib.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
        lib.ftok.argtypes = [ctypes.c_char_p, ctypes.c_int]
        lib.shmget.argtypes = [ctypes.c_int, ctypes.c_size_t, ctypes.c_int]
        return lib

    def _check_region(self, opt: str) -> None:
        if self.shmptr % self.shm_pagesize or self.shmlen % self.shm_pagesize:
            self.io.err("numactl: policy region not page aligned\n")
            raise Exit(1)
        if not self.shmlen:
            self.io.err(f"numactl: policy region length not specified before {opt}\n")
            raise Exit(1)

    def _huge_page_size(self) -> int:
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    m = re.match(r"Hugepagesize:\s*(\d+) kB", line)
                    if m:
                        return int(m.group(1)) * 1024
        except OSError:
            pass
        return PAGE_SIZE

    def attach_sysvshm(self, name: str, opt: str) -> None:
        lib = self._libc()
        key = lib.ftok(os.fsencode(name), self.shmid)
        if key == -1:
            self.io.err(f"numactl: Creating shm key file {name} mode {self.shmmode:04o}\n")
            try:
                os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, self.shmmode))
            except OSError as e:
                self.nerror(f"cannot create key for shm {name}\n", e.errno)
            key = lib.ftok(os.fsencode(name), self.shmid)
            if key == -1:
                self.nerror(f"cannot get key for newly created shm key file {name}", ctypes.get_errno())
        ctypes.set_errno(0)
        self.shmfd = lib.shmget(key, self.shmlen, self.shmflags)
        if self.shmfd < 0 and ctypes.get_errno() == _errno.ENOENT:
            if self.shmlen == 0:
                self.complain("need a --length to create a sysv shared memory segment")
            mb = (self.shmlen + self.shmoffset) / (1024 * 1024)
            self.io.err(f"numactl: Creating shared memory segment {name} id {self.shmid} mode "
                        f"{self.shmmode:04o} length {mb:.0f}MB\n")
            self.shmfd = lib.shmget(key, self.shmlen + self.shmoffset, 0o1000 | self.shmmode | self.shmflags)
            if self.shmfd < 0:
                self.nerror("cannot create shared memory segment", ctypes.get_errno())
        if self.shmlen == 0:
            buf = ctypes.create_string_buffer(256)
            if lib.shmctl(self.shmfd, 2, buf) < 0:                  # IPC_STAT
                self.perror_exit("shmctl IPC_STAT", ctypes.get_errno())
            self.shmlen = int.from_bytes(buf.raw[48:56], "little")  # shm_segsz (x86_64)
        p = lib.shmat(self.shmfd, None, 0)
        if p is None or p == ULONG:
            self.perror_exit("shmat", ctypes.get_errno())
        self.shmptr = p + self.shmoffset
        self.shm_pagesize = self._huge_page_size() if self.shmflags & 0o4000 else PAGE_SIZE
        self._check_region(opt)

    def attach_shared(self, name: str, opt: str) -> None:
        from mempolicy.linux import syscalls as sc

        try:
            self.shmfd = os.open(name, os.O_RDWR)
        except OSError:
            if self.shmlen == 0:
                self.complain("need a --length to create a shared file")
            try:
                self.shmfd = os.open(name, os.O_RDWR | os.O_CREAT, self.shmmode)
            except OSError as e:
                self.nerror(f"cannot create file {name}", e.errno)
        st = os.fstat(self.shmfd)
        if self.shmlen + self.shmoffset > st.st_size:
            try:
                os.ftruncate(self.shmfd, self.shmlen + self.shmoffset)
            except OSError as e:
                self.perror_exit("ftruncate", e.errno)
        self.shm_pagesize = st.st_blksize
        self._check_region(opt)
        try:
            self.shmptr = sc.mmap(0, self.shmlen, sc.PROT_READ | sc.PROT_WRITE, sc.MAP_SHARED,
                                  self.shmfd, self.shmoffset)
        except OSError as e:
            self.perror_exit("shm mmap", e.errno)

    def police_memory(self) -> None:
        lib = ctypes.CDLL(None)
        for off in range(0, self.shmlen, PAGE_SIZE):
            p = self.shmptr + off
            b = ctypes.c_char.from_address(p).value
            ctypes.memset(p, b[0] if b else 0, 1)
        del lib

    def _dumppol(self, start: int, end: int, pol: int, ids) -> None:
        if pol == MPOL_DEFAULT:
            return
        name = POLICY_NAMES[pol] if 0 <= pol < len(POLICY_NAMES) else f"[{pol}]"
        self.io.out(f"{self.shmoffset + start:016x}-{self.shmoffset + end:016x}: {name} ")
        self.printmask("", ids)

    def dump_shm(self) -> None:
        if self.shmlen == 0:
            self.io.out("nothing to dump\n")
            return
        sz = self.numa.nodemask_sz
        prevpol, prevnodes, start, c = -1, [], 0, 0  # noqa: F841
        while c < self.shmlen:
            try:
                pol, mask = self.be.get_mempolicy(True, sz, sz, c + self.shmptr, MPOL_F_ADDR)
            except OSError as e:
                self.perror_exit("get_mempolicy on shm", e.errno)
            # 2.0.16 keeps one buffer for both masks: a region is printed with the
            # mask read last (that of the next region)
            prevnodes = Bitmask(sz, mask).ids()
            if pol != prevpol:
                if prevpol != -1:
                    self._dumppol(start, c, prevpol, prevnodes)
                prevpol, start = pol, c
            c += self.shm_pagesize
        self._dumppol(start, c, prevpol, prevnodes)

    def dump_shm_nodes(self) -> None:
        if self.shmlen == 0:
            self.io.out("nothing to dump\n")
            return
        prevnode, start, c = -1, 0, 0
        while c < self.shmlen:
            try:
                node, _ = self.be.get_mempolicy(True, None, 0, c + self.shmptr, MPOL_F_ADDR | MPOL_F_NODE)
            except OSError as e:
                self.perror_exit("get_mempolicy on shm", e.errno)
            if node != prevnode:
                if prevnode != -1:
                    self.io.out(f"{self.shmoffset + start:016x}-{self.shmoffset + c:016x}: {prevnode}\n")
                prevnode, start = node, c
            c += self.shm_pagesize
        self.io.out(f"{self.shmoffset + start:016x}-{self.shmoffset + c:016x}: {prevnode}\n")

    def verify_shm(self, policy: int, nodes: Bitmask) -> None:
        sz = self.numa.nodemask_sz

        def vwarn(p: int, msg: str) -> None:
            self.io.out(f"numactl verify {p:x}({p - self.shmptr:x}): {msg}")
            self.exitcode = 1

        def get(addr: int, flags: int, bits):
            try:
                return self.be.get_mempolicy(True, bits, sz if bits else 0, addr, flags)
            except OSError as e:
                self.perror_exit("get_mempolicy", e.errno)

        ilnode = 0
        if policy == MPOL_INTERLEAVE:
            ilnode, _ = get(self.shmptr, MPOL_F_ADDR | MPOL_F_NODE, None)
        p = self.shmptr
        while p - self.shmptr < self.shmlen:
            pol2, m2 = get(p, MPOL_F_ADDR, sz)
            nodes2 = Bitmask(sz, m2)
            if pol2 != policy:
                vwarn(p, f"wrong policy {_pname(pol2)}, expected {_pname(policy)}\n")
                return
            if nodes2.bits != nodes.bits:
                vwarn(p, "mismatched node mask\n")
                self.printmask("expected", nodes.ids())
                self.printmask("real", nodes2.ids())
            node, _ = get(p, MPOL_F_ADDR | MPOL_F_NODE, None)
            if policy == MPOL_INTERLEAVE:
                if node < 0 or not nodes2.isset(node):
                    vwarn(p, f"interleave node out of range {node}\n")
                if node != ilnode:
                    vwarn(p, f"expected interleave node {ilnode}, got {node}\n")
                    return
                cur = ilnode + 1
                while not nodes2.isset(cur):
                    cur = (cur + 1) % sz
                ilnode = cur
            elif policy in (MPOL_PREFERRED_MANY, MPOL_PREFERRED, MPOL_BIND):
                if not nodes2.isset(node):
                    vwarn(p, f"unexpected node {node}\n")
                    self.printmask("expected", nodes2.ids())
            p += self.shm_pagesize


def _pname(pol: int) -> str:
    return POLICY_NAMES[pol] if 0 <= pol < len(POLICY_NAMES) else f"[{pol}]"


def _hex(v: int) -> str:
    """printf %#llx."""
    return f"{v:#x}" if v else "0"


def _fmt_mem(mem: int) -> str:
    if mem == -1 or mem & ULONG == ULONG:
        return "<not available>"
    return f"{(mem & ULONG) >> 20} MB"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    io = Output()
    spec = None
    if argv and (argv[0] == "--sim" or argv[0].startswith("--sim=")):
        if argv[0] == "--sim":
            if len(argv) < 2:
                io.err("numactl: option '--sim' requires an argument\n")
                return 2
            spec, argv = argv[1], argv[2:]
        else:
            spec, argv = argv[0][len("--sim="):], argv[1:]
    try:
        if spec is not None:
            from mempolicy.linux.topology import TopologyError

            try:
                be = SimBackend(spec)
            except (TopologyError, ValueError, OSError) as e:
                io.err(f"numactl: --sim: {e}\n")
                return 2
        else:
            be = LiveBackend()
        try:
            return Numactl(be, io).run(argv)
        except Exit as e:
            return e.status
    finally:
        io.flush()


if __name__ == "__main__":
    sys.exit(main())
