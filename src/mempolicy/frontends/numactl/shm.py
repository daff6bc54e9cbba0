"""Shared-memory and file policies (numactl's shm.c): ``--shm``, ``--file``, ``--dump``,
``--dump-nodes``, ``--touch``, ``--verify``.  Live kernel only.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import re

from mempolicy.frontends.numactl.common import (
    MPOL_BIND, MPOL_DEFAULT, MPOL_F_ADDR, MPOL_F_NODE, MPOL_INTERLEAVE, MPOL_PREFERRED,
    MPOL_PREFERRED_MANY, PAGE_SIZE, POLICY_NAMES, ULONG, Exit, _hex, _pname,
)
from mempolicy.frontends.numactl.libnuma import Bitmask


class SharedMemory:
    """shm.c (a mixin of ``Numactl``)."""

    def check_shmbeyond(self, msg: str) -> None:
        if self.shmoffset >= self.shmlen:
            self.io.err(f"numactl: region offset {_hex(self.shmoffset)} beyond its length "
                        f"{_hex(self.shmlen)} at {msg}\n")
            raise Exit(1)

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
            nodes = Bitmask(sz, mask).ids()
            if self.v19:                        # a region per policy and node mask
                if pol == prevpol and nodes == prevnodes:
                    c += self.shm_pagesize
                    continue
                if prevpol != -1:
                    self._dumppol(start, c, prevpol, prevnodes)
                prevpol, prevnodes, start = pol, nodes, c
                c += self.shm_pagesize
                continue
            # 2.0.16 keeps one buffer for both masks: a region is printed with the
            # mask read last (that of the next region)
            prevnodes = nodes
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
