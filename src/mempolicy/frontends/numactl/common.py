"""What every part of numactl shares: the constants it uses, exit(), stdio and strerror."""

from __future__ import annotations

import os
import sys

MPOL_DEFAULT, MPOL_PREFERRED, MPOL_BIND, MPOL_INTERLEAVE, MPOL_LOCAL, MPOL_PREFERRED_MANY = range(6)
MPOL_WEIGHTED_INTERLEAVE = 6
MPOL_F_NUMA_BALANCING = 1 << 13
MPOL_F_NODE, MPOL_F_ADDR, MPOL_F_MEMS_ALLOWED = 1, 2, 4
MPOL_MF_STRICT = 1
PAGE_SIZE = 4096
ULONG = (1 << 64) - 1

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



def _pname(pol: int) -> str:
    return POLICY_NAMES[pol] if 0 <= pol < len(POLICY_NAMES) else f"[{pol}]"


def _hex(v: int) -> str:
    """printf %#llx."""
    return f"{v:#x}" if v else "0"


def _fmt_mem(mem: int) -> str:
    if mem == -1 or mem & ULONG == ULONG:
        return "<not available>"
    return f"{(mem & ULONG) >> 20} MB"
