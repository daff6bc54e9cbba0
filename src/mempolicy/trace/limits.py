"""The limits of a trace, shared by the Python parser and the C runner.

Defined once here: ``mempolicy.trace.parser`` checks them, and the oracle
compiles ``runner.c`` with ``-DNAME=VALUE`` for each (:func:`c_defines`), so
both refuse the same traces with the same message.  The runner's static
buffers are sized from them; changing one can change how many page-table
pages a ``fork`` copies (see ``KernelVersion.runner_fork_allocs``), so keep them.
"""

from __future__ import annotations

MAX_TEXT = 1 << 20        # bytes of trace text (UTF-8), exclusive: at most MAX_TEXT - 1
MAX_TOKENS = 1 << 18      # words in all command lines together
MAX_CMDS = 1 << 16        # command lines
MAX_NAMES = 4096          # mmap and memfd lines together
MAX_FORK_DEPTH = 4096     # forks open at once (nested)
MAX_PAGES = 65536         # pages of one where or move_pages
MAX_WORD = 255            # characters of one word (a name, a node list, at=NAME+OFF)

LIMITS = {
    "MAX_TEXT": MAX_TEXT,
    "MAX_TOKENS": MAX_TOKENS,
    "MAX_CMDS": MAX_CMDS,
    "MAX_NAMES": MAX_NAMES,
    "MAX_FORK_DEPTH": MAX_FORK_DEPTH,
    "MAX_PAGES": MAX_PAGES,
    "MAX_WORD": MAX_WORD,
}


def c_defines() -> list[str]:
    """gcc ``-D`` flags that give runner.c these limits.

    >>> c_defines()[0]
    '-DMAX_TEXT=1048576'
    """
    return [f"-D{k}={v}" for k, v in LIMITS.items()]
