"""A clone of glibc's ``getopt_long`` for the compatible front ends.

Python's :mod:`getopt` matches prefixes but not glibc's rules and texts.  This
one follows glibc (posix/getopt.c): short option clusters, attached or
separate arguments, optional arguments (``::``), long options with exact
match first, unique-prefix abbreviation (ambiguous only when the candidates
differ in ``has_arg`` or value), ``--name=value``, ``--`` to end options, a
leading ``+`` in the short options (or ``POSIXLY_CORRECT``) to stop at the
first non-option, and otherwise permutation of non-options to the end.
Errors print glibc's messages to ``err`` and return ``"?"``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

__all__ = ["LongOpt", "Getopt"]


@dataclass(frozen=True)
class LongOpt:
    name: str
    has_arg: int          # 0 no argument, 1 required, 2 optional
    val: str


class Getopt:
    """``while (c := g.next()) != -1`` as getopt_long is used; ``g.optarg``,
    and once done ``g.rest``: the arguments that were not options, in order."""

    def __init__(self, argv: list[str], shortopts: str, longopts: list[LongOpt], prog: str,
                 err: Callable[[str], None]) -> None:
        self.argv = list(argv)
        self.prog = prog
        self.err = err
        self.require_order = False
        if shortopts.startswith("+"):
            self.require_order = True
            shortopts = shortopts[1:]
        elif shortopts.startswith("-"):
            shortopts = shortopts[1:]
        elif os.environ.get("POSIXLY_CORRECT") is not None:
            self.require_order = True
        self.colon = shortopts.startswith(":")
        self.short = self._parse_short(shortopts)
        self.longopts = longopts
        self.optind = 0
        self.optarg: str | None = None
        self.optopt: str | None = None
        self._next = ""                 # the rest of a short-option cluster
        self._nonopts: list[str] = []
        self.rest: list[str] = []

    @staticmethod
    def _parse_short(s: str) -> dict[str, int]:
        out = {}
        i = 0
        while i < len(s):
            c = s[i]
            n = 0
            while i + 1 + n < len(s) and s[i + 1 + n] == ":" and n < 2:
                n += 1
            if c != ":":
                out[c] = n
            i += 1 + n
        return out

    def _finish(self) -> str:
        self.rest = self._nonopts + self.argv[self.optind:]
        self.optind = len(self.argv)
        return -1

    def next(self):
        """The next option character (long options return their ``val``), ``"?"`` on an
        error, or -1 at the end."""
        self.optarg = None
        if not self._next:
            while True:
                if self.optind >= len(self.argv):
                    return self._finish()
                a = self.argv[self.optind]
                if a == "--":
                    self.optind += 1
                    return self._finish()
                if a.startswith("-") and a != "-":
                    break
                if self.require_order:
                    return self._finish()
                self._nonopts.append(a)
                self.optind += 1
            a = self.argv[self.optind]
            if a.startswith("--"):
                return self._long(a[2:])
            self._next = a[1:]
        c = self._next[0]
        self._next = self._next[1:]
        if not self._next:
            self.optind += 1
        if c not in self.short or c == ":":
            self.err(f"{self.prog}: invalid option -- '{c}'\n")
            self.optopt = c
            return "?"
        kind = self.short[c]
        if kind == 1:
            if self._next:
                self.optarg = self._next
                self._next = ""
                self.optind += 1
            elif self.optind < len(self.argv):
                self.optarg = self.argv[self.optind]
                self.optind += 1
            else:
                self.err(f"{self.prog}: option requires an argument -- '{c}'\n")
                self.optopt = c
                return ":" if self.colon else "?"
        elif kind == 2:
            if self._next:
                self.optarg = self._next
                self._next = ""
                self.optind += 1
        return c

    def _long(self, body: str):
        name, eq, value = body.partition("=")
        found = None
        for o in self.longopts:
            if o.name == name:
                found = o
                break
        if found is None:
            candidates = [o for o in self.longopts if o.name.startswith(name)]
            if candidates:
                first = candidates[0]
                ambiguous = [o for o in candidates
                             if o.has_arg != first.has_arg or o.val != first.val]
                if ambiguous:
                    names = " ".join(f"'--{o.name}'" for o in candidates
                                     if o is first or o in ambiguous)
                    self.err(f"{self.prog}: option '--{body}' is ambiguous; possibilities: {names}\n")
                    self.optind += 1
                    self.optopt = None
                    return "?"
                found = first
        if found is None:
            self.err(f"{self.prog}: unrecognized option '--{body}'\n")
            self.optind += 1
            self.optopt = None
            return "?"
        self.optind += 1
        if eq:
            if found.has_arg:
                self.optarg = value
            else:
                self.err(f"{self.prog}: option '--{found.name}' doesn't allow an argument\n")
                self.optopt = found.val
                return "?"
        elif found.has_arg == 1:
            if self.optind < len(self.argv):
                self.optarg = self.argv[self.optind]
                self.optind += 1
            else:
                self.err(f"{self.prog}: option '--{found.name}' requires an argument\n")
                self.optopt = found.val
                return ":" if self.colon else "?"
        return found.val
