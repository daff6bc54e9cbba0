"""Numbers as numactl reads them: C ``strtoul`` and numactl's ``memsize`` (sizes with K/M/G).

These are the only number and size parsers of ``mempolicy numactl``, and both
are the package's own (:mod:`mempolicy.core.units`: ``c_strtoul`` and the
``numactl`` size grammar); node and CPU strings are read by :mod:`.nodestrings`
as libnuma reads them.
"""

from __future__ import annotations

from mempolicy.core.units import c_strtoul, parse_size
from mempolicy.frontends.numactl.common import ULONG

_SPACE = " \t\n\v\f\r"


def strtoul(s: str, i: int = 0, base: int = 0) -> tuple[int, int]:
    """C strtoul(s + i, &end, base): (value modulo 2**64, end index; i when nothing parsed).

    The package's one C-number reader, :func:`mempolicy.core.units.c_strtoul`.

    >>> strtoul("0x10k")
    (16, 4)
    """
    return c_strtoul(s, i, base)


def _c_int(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _c_long(v: int) -> int:
    v &= ULONG
    return v - (1 << 64) if v >> 63 else v


def memsize(s: str) -> int:
    """numactl's memsize(): strtoul(s, 0) then a K/M/G suffix, as a C long (the
    ``numactl`` grammar of :func:`mempolicy.core.units.parse_size`).

    >>> memsize("1g"), memsize("16K")
    (1073741824, 16384)
    """
    return parse_size(s, "numactl")
