"""A progress bar for long runs: drawn on a terminal (stderr is a tty), silent otherwise.

    with Progress(total, "touch A") as bar:
        ...
        bar.update(done)

Nothing is drawn for the first ``delay`` seconds, so short runs print
nothing even on a terminal; the bar is redrawn at most ten times a second
and erased at the end.  ``MEMPOLICY_PROGRESS=0`` turns it off,
``MEMPOLICY_PROGRESS=1`` draws even when stderr is not a terminal.
"""

from __future__ import annotations

import os
import sys
import time


class Progress:
    def __init__(self, total: int, label: str = "", stream=None, delay: float = 0.5,
                 width: int = 30) -> None:
        self.total = max(1, total)
        self.label = label
        self.stream = sys.stderr if stream is None else stream
        self.delay = delay
        self.width = width
        self.start = time.monotonic()
        self.last = 0.0
        self.drawn = False
        env = os.environ.get("MEMPOLICY_PROGRESS", "")
        if env == "0":
            self.enabled = False
        elif env == "1":
            self.enabled = True
        else:
            isatty = getattr(self.stream, "isatty", None)
            self.enabled = bool(isatty and isatty())

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.start < self.delay or (now - self.last < 0.1 and done < self.total):
            return
        self.last = now
        frac = min(1.0, done / self.total)
        fill = int(frac * self.width)
        rate = done / max(now - self.start, 1e-9)
        self.stream.write(f"\r{self.label} [{'#' * fill}{'.' * (self.width - fill)}] "
                          f"{frac * 100:5.1f}% {done}/{self.total} pages {_si(rate)}pages/s ")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.drawn = False

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _si(x: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= div:
            return f"{x / div:.1f}{unit} "
    return f"{x:.0f} "
