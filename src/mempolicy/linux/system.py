"""The live-kernel backend: :class:`LinuxSystem` and the availability probe.

A memory policy set with ``set_mempolicy`` belongs to the calling *thread*;
``mbind`` policies belong to the address range, so to every thread of the
process.  :class:`LinuxSystem` has the methods of
:class:`mempolicy.api.MemorySystem`, on the thread that calls them.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Sequence

from mempolicy.api import PAGE_SIZE, MemorySystem
from mempolicy.linux import syscalls as sc
from mempolicy.linux import sysfs
from mempolicy.linux.procfs import NumaMapsRecord, read_numa_maps

if TYPE_CHECKING:
    from mempolicy.alloc.topology import Topology

__all__ = ["LinuxSystem", "LinuxFile", "Probe", "probe", "available"]


@dataclass(frozen=True)
class Probe:
    """Whether the memory-policy calls work here, and why not when they do not."""

    available: bool
    reason: str
    calls: dict[str, bool] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.available


_probe_cache: Probe | None = None


def probe(refresh: bool = False) -> Probe:
    """Try each call in a way that changes nothing.

    A call that fails with ENOSYS is not there (no CONFIG_NUMA, an old kernel,
    an unknown architecture); EPERM means a sandbox (seccomp, gVisor...)
    blocks it.  ``available`` is true when get_mempolicy, set_mempolicy and
    mbind all work.
    """
    global _probe_cache
    if _probe_cache is not None and not refresh:
        return _probe_cache
    if sc.syscall_numbers() is None:
        _probe_cache = Probe(False, f"no system call numbers for {os.uname().machine}")
        return _probe_cache
    tries = {
        # each returns 0, or EINVAL from argument checks, when the call is implemented
        "get_mempolicy": (0, 0, 0, 0, 0),
        "set_mempolicy": (7, 0, 0),                     # MPOL_MAX: EINVAL
        "mbind": (0, 0, 0, 0, 0, 0),                    # len 0: a no-op
        "migrate_pages": (0, 0, 0, 0),                  # empty new mask: EINVAL
        "move_pages": (0, 0, 0, 0, 0, 0),               # no pages
        "set_mempolicy_home_node": (0, 0, 0, 1),        # flags != 0: EINVAL
    }
    calls: dict[str, bool] = {}
    why: dict[str, str] = {}
    for name, args in tries.items():
        try:
            sc.syscall(name, *args)
            calls[name] = True
        except OSError as e:
            calls[name] = e.errno not in (_errno.ENOSYS, _errno.EPERM, _errno.EACCES)
            if not calls[name]:
                why[name] = _errno.errorcode.get(e.errno or 0, str(e.errno))
    core = ("get_mempolicy", "set_mempolicy", "mbind")
    ok = all(calls[c] for c in core)
    if ok:
        reason = "ok" if all(calls.values()) else \
            "ok; not available: " + ", ".join(f"{k} ({v})" for k, v in why.items())
    elif any(why.get(c) == "ENOSYS" for c in core):
        reason = "the kernel has no NUMA memory-policy calls (ENOSYS): " + \
            ", ".join(f"{k} ({v})" for k, v in why.items())
    else:
        reason = "the memory-policy calls are blocked (a sandbox or seccomp filter): " + \
            ", ".join(f"{k} ({v})" for k, v in why.items())
    _probe_cache = Probe(ok, reason, calls)
    return _probe_cache


def available() -> bool:
    """True when set_mempolicy, get_mempolicy and mbind work on this machine."""
    return probe().available


class LinuxFile:
    """A memfd (memfd_create + ftruncate), for :meth:`LinuxSystem.mmap`."""

    def __init__(self, fd: int, name: str) -> None:
        self.fd = fd
        self.name = name

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        try:
            self.close()
        except OSError:
            pass


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


_IOV_MAX = 1024


class LinuxSystem(MemorySystem):
    """The live kernel, for the calling thread (task policy) and this process."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._guard: int | None = None

    # -- raw calls --------------------------------------------------------------
    def raw_set_mempolicy(self, mode: int, mask: int | None, maxnode: int) -> int:
        sc.set_mempolicy(mode, mask, maxnode)
        return 0

    def _guarded(self) -> int:
        """Two writable pages followed by an inaccessible one, for output buffers."""
        if self._guard is None:
            base = sc.mmap(0, 3 * PAGE_SIZE, sc.PROT_READ | sc.PROT_WRITE,
                           sc.MAP_PRIVATE | sc.MAP_ANONYMOUS)
            sc.mprotect(base + 2 * PAGE_SIZE, PAGE_SIZE, sc.PROT_NONE)
            self._guard = base
        return self._guard

    def raw_get_mempolicy(self, want_mode: bool, mask_bytes: int | None, maxnode: int,
                          addr: int, flags: int) -> tuple[int | None, int | None]:
        """``mask_bytes``: the size of the mask buffer; it ends at an inaccessible page,
        so the kernel writing past it gives EFAULT as with a short user buffer."""
        mode = ctypes.c_int(0)
        mptr = ctypes.addressof(mode) if want_mode else 0
        buf = None
        if mask_bytes is None:
            bptr = 0
        elif mask_bytes <= 2 * PAGE_SIZE:
            end = self._guarded() + 2 * PAGE_SIZE
            bptr = end - mask_bytes
            ctypes.memset(bptr, 0, mask_bytes)
        else:
            buf = ctypes.create_string_buffer(mask_bytes)
            bptr = ctypes.addressof(buf)
        sc.syscall("get_mempolicy", mptr, bptr, maxnode, addr, flags)
        mask = None
        if mask_bytes is not None:
            mask = int.from_bytes(ctypes.string_at(bptr, mask_bytes), "little")
        return (mode.value if want_mode else None), mask

    def raw_mbind(self, addr: int, length: int, mode: int, mask: int | None, maxnode: int,
                  flags: int) -> int:
        sc.mbind(addr, length, mode, mask, maxnode, flags)
        return 0

    def raw_set_mempolicy_home_node(self, start: int, length: int, home_node: int,
                                    flags: int) -> int:
        sc.set_mempolicy_home_node(start, length, home_node, flags)
        return 0

    def raw_migrate_pages(self, pid: int, maxnode: int, old: int | None, new: int | None) -> int:
        return sc.migrate_pages(pid, maxnode, old, new)

    def raw_move_pages(self, pid: int, pages: Sequence[int], nodes: Sequence[int] | None,
                       flags: int) -> tuple[int, list[int | None]]:
        fill = -(1 << 31)
        r, status = sc.move_pages(pid, list(pages), None if nodes is None else list(nodes), flags, fill)
        return r, [None if s == fill else s for s in status]

    # -- address space ------------------------------------------------------------
    def mmap(self, length: int, addr: int | None = None, *, shared: bool = False,
             writable: bool = True, file: LinuxFile | int | None = None, offset: int = 0) -> int:
        """An anonymous (or memfd-backed) mapping; with ``addr``, exactly there or EEXIST."""
        prot = sc.PROT_READ | (sc.PROT_WRITE if writable else 0)
        flags = sc.MAP_SHARED if (shared or (file is not None)) else sc.MAP_PRIVATE
        if file is None:
            flags |= sc.MAP_ANONYMOUS
            fd = -1
        else:
            fd = file.fd if isinstance(file, LinuxFile) else int(file)
            if not shared:
                flags = (flags & ~sc.MAP_SHARED) | sc.MAP_PRIVATE
        if addr is not None:
            flags |= sc.MAP_FIXED_NOREPLACE
        return sc.mmap(addr or 0, length, prot, flags, fd, offset)

    def memfd_create(self, name: str, size: int) -> LinuxFile:
        fd = os.memfd_create(name)
        try:
            os.ftruncate(fd, size)
        except OSError:
            os.close(fd)
            raise
        return LinuxFile(fd, name)

    def munmap(self, addr: int, length: int) -> None:
        sc.munmap(addr, length)

    def mprotect(self, addr: int, length: int, writable: bool) -> None:
        sc.mprotect(addr, length, sc.PROT_READ | (sc.PROT_WRITE if writable else 0))

    def _vm_io(self, write: bool, addrs: list[int], data: "ctypes.Array[ctypes.c_char]") -> int:
        """process_vm_readv/writev of one byte at each address on this process; the
        number of bytes moved (the kernel stops at the first it cannot reach)."""
        lib = ctypes.CDLL(None, use_errno=True)
        fn = lib.process_vm_writev if write else lib.process_vm_readv
        fn.restype = ctypes.c_ssize_t
        done = 0
        for i in range(0, len(addrs), _IOV_MAX):
            chunk = addrs[i:i + _IOV_MAX]
            local = _Iovec(ctypes.addressof(data) + i, len(chunk))
            remote = (_Iovec * len(chunk))(*[_Iovec(a, 1) for a in chunk])
            ctypes.set_errno(0)
            r = int(fn(self.pid, ctypes.byref(local), 1, remote, len(chunk), 0))
            if r < 0:
                e = ctypes.get_errno()
                if e != _errno.EFAULT:
                    raise OSError(e, os.strerror(e))
                return done
            done += r
            if r < len(chunk):
                return done
        return done

    def touch(self, addr: int, length: int, write: bool = True, preserve: bool = True) -> None:
        """Fault in each page of the range by a read or a write of its first byte.

        Writes keep each byte's value (read, then written back) unless
        ``preserve`` is false, which writes zeros.  A page the process cannot
        access raises EFAULT instead of a signal.
        """
        first = addr & ~(PAGE_SIZE - 1)
        addrs = [max(a, addr) for a in range(first, addr + length, PAGE_SIZE)]
        data = (ctypes.c_char * max(len(addrs), 1))()
        if not write or preserve:
            if self._vm_io(False, addrs, data) < len(addrs):
                raise OSError(_errno.EFAULT, os.strerror(_errno.EFAULT))
        if write and self._vm_io(True, addrs, data) < len(addrs):
            raise OSError(_errno.EFAULT, os.strerror(_errno.EFAULT))

    def numa_maps(self, pid: int | None = None) -> list[NumaMapsRecord]:
        return read_numa_maps("self" if pid in (None, 0) else pid)

    def numa_maps_text(self, pid: int | None = None) -> str:
        with open(f"/proc/{'self' if pid in (None, 0) else pid}/numa_maps") as f:
            return f.read()

    # -- machine ------------------------------------------------------------------
    def topology(self) -> Topology:
        from mempolicy.linux.topology import topology_from_sysfs

        return topology_from_sysfs()

    def set_system_weight(self, node: int, weight: int) -> None:
        """Write ``/sys/kernel/mm/mempolicy/weighted_interleave/nodeN``: machine-wide, for
        every process (root only).  ``set_weight`` is its deprecated old name.

        Example: ``LinuxSystem().set_system_weight(0, 3)``.
        """
        sysfs.set_weighted_interleave_weight(node, weight)

    def weights(self) -> dict[int, int]:
        return sysfs.weighted_interleave_weights()

    @property
    def weights_auto(self) -> bool | None:
        """The ``weighted_interleave/auto`` switch (None: this kernel has none)."""
        return sysfs.weighted_interleave_auto()

    @weights_auto.setter
    def weights_auto(self, value: bool) -> None:
        """Write it (root only); ``ENODEV`` when the firmware gave no bandwidths."""
        sysfs.set_weighted_interleave_auto(value)

    def numastat(self) -> dict[int, dict[str, int]]:
        return {n: sysfs.node_numastat(n) for n in sysfs.node_ids()}

    def meminfo(self, node: int) -> dict[str, int]:
        return sysfs.node_meminfo(node)

    def sched_setaffinity(self, cpus: Iterable[int]) -> None:
        os.sched_setaffinity(0, set(cpus))

    def sched_getaffinity(self) -> set[int]:
        return set(os.sched_getaffinity(0))
