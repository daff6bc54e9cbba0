"""The one size parser and the one list parser of the package.

Every front end that reads a size or a node/CPU list calls this module; the
grammars that genuinely differ are explicit *modes* of one function, each
documented with the program whose reading it copies.

Sizes (:func:`parse_size`), by ``grammar``:

``"trace"``
    The trace header's ``mem=`` (docs/trace-format.md): a decimal or ``0x``
    hexadecimal number and an optional ``K``, ``M`` or ``G`` suffix
    (case-insensitive), multiples of 1024, at most 2**64 - 1.
``"model"``
    TOML topologies and the ``--sim`` shorthand (docs/topology.md): a decimal
    number, an optional ``K``, ``M``, ``G``, ``T`` or ``P`` suffix (multiples of
    1024, as the kernel's ``memparse`` reads ``mem=`` on the command line) or the
    IEC forms ``KiB``, ``MiB``, ``GiB``, ``TiB``, ``PiB``; a bare ``B`` is bytes.
    ``1GB``-style decimal units are refused there: hwloc reads ``1GB`` as 10**9
    bytes and the kernel would read ``1G`` as 2**30, so the spelling is
    ambiguous in a file that is neither.
``"hwloc"``
    ``memory=`` and ``size=`` of hwloc synthetic strings, as hwloc 2.x's
    ``hwloc_synthetic_parse_memory_attr`` reads them: C ``strtoull`` with base 0
    (leading blanks, a sign, ``0x`` hex and ``0`` octal; too large clamps to
    2**64 - 1; a minus sign negates modulo 2**64), then an optional
    case-insensitive unit: ``kB``/``MB``/``GB``/``TB`` are powers of 1000,
    ``kiB``/``MiB``/``GiB``/``TiB`` powers of 1024, the product wrapping
    modulo 2**64.  Use :func:`hwloc_size_prefix` to get where it stopped.
``"numactl"``
    numactl's ``memsize()``: ``strtoul(s, 0)`` then one ``K``/``M``/``G`` letter
    (binary), the result as a C ``long``.

Lists (:func:`parse_list`): the kernel's list format (``%*pbl``, written by
sysfs ``cpulist``, ``online``, ``Mems_allowed_list``, and read by
``bitmap_parselist``): comma-separated decimal ``N`` or ``A-B`` items.  The
``limit`` bounds every id *before* a range is expanded, so ``0-999999999999``
is an error, never a gigabyte list.  :func:`~mempolicy.core.nodemask.nodelist_parse`
and the trace format's node lists are this parser with MAX_NUMNODES as the limit.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "U64", "MAX_LIST_ID", "parse_size", "hwloc_size_prefix", "c_strtoul", "parse_list",
    "parse_list_bits", "format_size", "decimal",
]

U64 = (1 << 64) - 1
MAX_LIST_ID = 1 << 22          # above any kernel's NR_CPUS (8192 on Debian) and MAX_NUMNODES

SizeGrammar = Literal["trace", "model", "hwloc", "numactl"]

_DEC = frozenset("0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")
_BINARY = {"": 0, "K": 10, "M": 20, "G": 30, "T": 40, "P": 50}
_HWLOC_UNITS = (("TB", 1000 ** 4), ("TiB", 1 << 40), ("GB", 1000 ** 3), ("GiB", 1 << 30),
                ("MB", 1000 ** 2), ("MiB", 1 << 20), ("kB", 1000), ("kiB", 1 << 10))


def _isdec(s: str) -> bool:
    """ASCII decimal digits only (``str.isdigit`` also takes other scripts' digits)."""
    return bool(s) and set(s) <= _DEC


MAX_DIGITS = 60               # more digits than any size or count a machine has


def decimal(digits: str, base: int = 10) -> int:
    """``int(digits, base)`` for user text, refusing numbers of more than 60 digits
    (Python's own limit is 4300, with a message about ``sys.set_int_max_str_digits``).

    >>> decimal("0042")
    42
    """
    if len(digits.lstrip("0")) > MAX_DIGITS:
        raise ValueError(f"number {digits[:12]}... ({len(digits)} digits) is too large")
    return int(digits, base)


def c_strtoul(s: str, i: int = 0, base: int = 0, bits: int = 64) -> tuple[int, int]:
    """C ``strtoul``/``strtoull`` on ``s[i:]``: (value, end index).

    Skips leading blanks, takes a sign, base 0 picks ``0x`` hex, ``0`` octal or
    decimal.  Out of range clamps to 2**bits - 1; a minus sign negates modulo
    2**bits.  Nothing parsed: (0, i).

    >>> c_strtoul("0x10k")
    (16, 4)
    """
    n = len(s)
    j = i
    while j < n and s[j] in " \t\n\v\f\r":
        j += 1
    neg = False
    if j < n and s[j] in "+-":
        neg = s[j] == "-"
        j += 1
    if base in (0, 16) and s[j:j + 2] in ("0x", "0X") and j + 2 < n and s[j + 2] in _HEX:
        base, j = 16, j + 2
    elif base == 0:
        base = 8 if s[j:j + 1] == "0" else 10
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"[:base]
    k = j
    while k < n and s[k].lower() in digits and s[k].isascii():
        k += 1
    if k == j:
        return 0, i
    mod = 1 << bits
    if len(s[j:k].lstrip("0")) > 70:        # C clamps; Python would refuse to convert
        return mod - 1, k
    v = int(s[j:k], base)
    if v >= mod:
        return mod - 1, k
    return (-v % mod if neg else v), k


def hwloc_size_prefix(s: str, i: int = 0) -> tuple[int, int]:
    """hwloc's ``hwloc_synthetic_parse_memory_attr`` on ``s[i:]``: (bytes, end index).

    >>> hwloc_size_prefix("1GB)")
    (1000000000, 3)
    """
    v, end = c_strtoul(s, i, 0)
    for unit, mult in _HWLOC_UNITS:
        if s[end:end + len(unit)].lower() == unit.lower():
            return v * mult & U64, end + len(unit)
    return v, end


def parse_size(text: str, grammar: SizeGrammar = "model") -> int:
    """A size in bytes, read by one of the documented grammars (ValueError if malformed).

    >>> parse_size("512M"), parse_size("1GiB"), parse_size("1GB", "hwloc")
    (536870912, 1073741824, 1000000000)
    """
    tok = text.strip()
    if grammar == "hwloc":
        v, end = hwloc_size_prefix(tok)
        if end != len(tok):
            raise ValueError(f"bad size {text!r}")
        return v
    if grammar == "numactl":
        v, end = c_strtoul(text, 0, 0)
        shift = {"G": 30, "M": 20, "K": 10}.get(text[end:end + 1].upper(), 0)
        v = (v << shift) & U64
        return v - (1 << 64) if v >> 63 else v
    if grammar == "trace":
        mult = {"K": 10, "M": 20, "G": 30}.get(tok[-1:].upper())
        num = tok[:-1] if mult else tok
        if num[:2] in ("0x", "0X") and len(num) > 2 and set(num[2:]) <= _HEX:
            v = decimal(num[2:], 16)
        elif _isdec(num):
            v = decimal(num, 10)
        else:
            raise ValueError(f"bad size {text!r}")
        v <<= mult or 0
        if v > U64:
            raise ValueError(f"size {tok} does not fit in 64 bits")
        return v
    if grammar != "model":
        raise ValueError(f"unknown size grammar {grammar!r}")
    i = 0
    while i < len(tok) and tok[i] in _DEC:
        i += 1
    num, unit = tok[:i], tok[i:].strip()
    if not num:
        raise ValueError(f"bad size {text!r}: expected a number with K, M, G, T (1024s), e.g. 512M")
    u = unit.upper()
    if u in ("KB", "MB", "GB", "TB", "PB"):
        raise ValueError(f"ambiguous size {text!r}: write {num}{u[0]} or {num}{u[0]}iB (1024s); "
                         f"hwloc reads {u} as powers of 1000")
    if u.endswith("IB") and len(u) == 3:
        u = u[0]
    elif u == "B":
        u = ""
    if u not in _BINARY:
        raise ValueError(f"bad size {text!r}: the unit is K, M, G, T, P or KiB, MiB, GiB, TiB, PiB")
    return decimal(num) << _BINARY[u]


def format_size(nbytes: int) -> str:
    """The shortest exact ``model`` spelling: 536870912 -> ``512M``.

    >>> format_size(3 << 30)
    '3G'
    """
    for suffix, shift in (("P", 50), ("T", 40), ("G", 30), ("M", 20), ("K", 10)):
        if nbytes and nbytes % (1 << shift) == 0:
            return f"{nbytes >> shift}{suffix}"
    return str(nbytes)


def parse_list_bits(text: str, limit: int = MAX_LIST_ID, *, ascending: bool = False) -> int:
    """The kernel's list format as a bitmap int: ``0-2,5`` -> 0b100111.

    Every id must be below ``limit`` (checked before a range is expanded);
    ``ascending`` also refuses items that are not in increasing order (the
    trace format's rule).  ValueError for anything else.

    >>> bin(parse_list_bits("0-2,5"))
    '0b100111'
    """
    if text == "":
        return 0
    bits = 0
    prev = -1
    for item in text.split(","):
        lo, sep, hi = item.partition("-")
        if not _isdec(lo) or (sep and not _isdec(hi)):
            raise ValueError(f"bad list item {item!r} in {text!r}")
        a = decimal(lo)
        b = decimal(hi) if sep else a
        if ascending and (a <= prev or b < a):
            raise ValueError(f"list {text!r} is not ascending")
        if b < a:
            raise ValueError(f"descending range {item!r} in {text!r}")
        if b >= limit:
            raise ValueError(f"{b} in {text!r} is above {limit - 1}")
        prev = b
        bits |= ((1 << (b - a + 1)) - 1) << a
    return bits


def parse_list(text: str, limit: int = MAX_LIST_ID, *, ascending: bool = False) -> list[int]:
    """The kernel's list format as ascending ids: ``0-3,5`` -> [0, 1, 2, 3, 5].

    >>> parse_list("0-3,5")
    [0, 1, 2, 3, 5]
    """
    bits = parse_list_bits(text, limit, ascending=ascending)
    out = []
    while bits:
        low = bits & -bits
        out.append(low.bit_length() - 1)
        bits ^= low
    return out
