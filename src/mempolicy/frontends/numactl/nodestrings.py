"""Node and CPU strings as libnuma 2.0.16 reads them (``__numa_parse_nodestring``,
``__numa_parse_cpustring`` and affinity.c's ``netdev:``, ``ip:``, ``file:``,
``block:``, ``pci:``).

``NodeStrings`` is a part of :class:`~mempolicy.frontends.numactl.libnuma.Libnuma`:
it reads the library state (``maxconfiguredcpu``, ``memnode_ptr``,
``all_nodes``) and reports through ``warn``.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from mempolicy.frontends.numactl.common import ULONG
from mempolicy.frontends.numactl.cparse import _SPACE, _c_int, _c_long, strtoul

if TYPE_CHECKING:
    from mempolicy.frontends.numactl.libnuma import Bitmask


class NodeStrings:
    """libnuma's node/CPU string parser (a mixin of ``Libnuma``)."""

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

    def _c_arg(self, v: int) -> int:
        """An out-of-range node number as printed: ``%d`` in 2.0.16, ``%ld`` in 2.0.19."""
        return _c_long(v) if self.v19 else _c_int(v)

    def parse_string(self, s: str, allowed: Bitmask, cpu: bool) -> Bitmask | None:
        """__numa_parse_nodestring / __numa_parse_cpustring."""
        what = "cpu" if cpu else "node"
        kind = "cpuparse" if cpu else "nodeparse"
        mask = self._bitmask(self.cpumask_sz if cpu else self.nodemask_sz)
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
                    self.warn(kind, f"node argument {self._c_arg(arg)} is out of range\n")
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
                        self.warn(kind, f"node argument {self._c_arg(arg2)} out of range\n")
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
