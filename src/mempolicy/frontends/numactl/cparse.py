"""Numbers as numactl reads them: C ``strtoul`` and numactl's ``memsize`` (sizes with K/M/G).

These are the only number and size parsers of ``mempolicy numactl``; node and
CPU strings are read by :mod:`.nodestrings`.
"""

from __future__ import annotations

from mempolicy.frontends.numactl.common import ULONG

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
