"""libnuma 2.0.16 as numactl uses it: the state ``numa_init`` builds and the calls numactl makes.

Node and CPU strings are parsed in :mod:`.nodestrings`.
"""

from __future__ import annotations

import errno as _errno

from mempolicy.frontends.numactl.common import (
    MPOL_BIND, MPOL_DEFAULT, MPOL_F_MEMS_ALLOWED, MPOL_F_NODE, MPOL_F_NUMA_BALANCING,
    MPOL_INTERLEAVE, MPOL_LOCAL, MPOL_PREFERRED, MPOL_PREFERRED_MANY, MPOL_WEIGHTED_INTERLEAVE,
    Output, c_strerror,
)
from mempolicy.frontends.numactl.cparse import _c_int, strtoul
from mempolicy.frontends.numactl.nodestrings import NodeStrings


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


class Libnuma(NodeStrings):
    """The state libnuma's constructor builds (numa_init), and the calls numactl makes."""

    def __init__(self, be, io: Output, v19: bool = False) -> None:
        self.be = be
        self.io = io
        self.v19 = v19                          # libnuma 2.0.19 rather than 2.0.16
        self.errno = 0
        self.warned: set[str] = set()
        mems_text, cpus_text = be.status_masks()
        if v19:                                 # four bits per hex digit
            self.nodemask_sz = 4 * sum(ch in "0123456789abcdefABCDEF" for ch in mems_text or "")
        else:                                   # s2nbits(): strlen * 32 / 9
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
                if v19 or be.node_size(nd)[0] > 0:
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
        self.node_cpu_cache: dict[int, set[int]] = {}
        if v19:
            self._set_preferred_many()
            self.errno = 0                      # numa_init() clears errno
        else:
            self._set_kernel_abi()

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
            if e.errno == _errno.ENOSYS or (self.v19 and e.errno == _errno.EPERM):
                self.errno = e.errno or 0
                return False
        return True

    def _set_preferred_many(self) -> None:
        """2.0.19's probe: MPOL_PREFERRED_MANY over the allowed nodes, errno kept."""
        try:
            _, allowed = self.be.get_mempolicy(False, self.nodemask_sz, self.nodemask_sz + 1, 0,
                                               MPOL_F_MEMS_ALLOWED)
            oldp, old = self.be.get_mempolicy(True, self.nodemask_sz, self.nodemask_sz + 1)
        except OSError:
            return
        try:
            self.be.set_mempolicy(MPOL_PREFERRED_MANY, allowed, self.nodemask_sz)
        except OSError:
            return
        self.has_preferred_many = True
        try:
            self.be.set_mempolicy(oldp, old, self.nodemask_sz + 1)
        except OSError:
            pass

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

    def set_weighted_interleave_mask(self, bmp: Bitmask) -> None:
        self.setpol(MPOL_DEFAULT if bmp.bits == 0 else MPOL_WEIGHTED_INTERLEAVE, bmp)

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
        if self.v19:
            if pol == MPOL_PREFERRED and bmp.weight() > 1:
                self.errno = _errno.EINVAL
                self.error("libnuma.c")
        elif pol in (MPOL_PREFERRED, MPOL_PREFERRED_MANY, MPOL_BIND) and bmp.weight() > 1:
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

    def _bitmask(self, size: int) -> Bitmask:
        return Bitmask(size)

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
