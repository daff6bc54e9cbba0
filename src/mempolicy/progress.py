"""A progress bar for long runs: drawn on a terminal (stderr is a tty), silent otherwise.

    with Progress(total, "touch A") as bar:
        ...
        bar.update(done)

The bar shows the share done, the count, the rate and an ETA, and fits the
terminal's width (narrow terminals drop the rate, then the count).  With
`rich <https://github.com/Textualize/rich>`_ installed (``pip install
'mempolicy[rich]'``) and a real terminal, rich draws it; otherwise a plain
one-line bar does.  Nothing is drawn for the first ``delay`` seconds, so
short runs print nothing even on a terminal; the bar is redrawn at most ten
times a second and erased at the end.

``MEMPOLICY_PROGRESS=0`` turns it off, ``MEMPOLICY_PROGRESS=1`` draws even
when stderr is not a terminal, ``MEMPOLICY_PROGRESS=plain`` or ``=rich``
chooses the drawing.
"""

from __future__ import annotations

import os
import sys
import time
from typing import IO, Any

__all__ = ["Progress", "format_eta", "terminal_width"]


def terminal_width(stream: IO[str] | None = None, default: int = 80) -> int:
    """Columns of the terminal ``stream`` is on, else ``$COLUMNS``, else ``default``.

    >>> terminal_width(None, 80) > 0
    True
    """
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        fd = stream.fileno() if stream is not None else sys.stderr.fileno()
        return os.get_terminal_size(fd).columns or default
    except (AttributeError, OSError, ValueError):
        return default


def format_eta(seconds: float | None) -> str:
    """``M:SS`` or ``H:MM:SS``; ``--:--`` when unknown.

    >>> format_eta(75), format_eta(3725), format_eta(None)
    ('1:15', '1:02:05', '--:--')
    """
    if seconds is None or seconds != seconds or seconds == float("inf") or seconds < 0:
        return "--:--"
    s = int(seconds + 0.5)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def _si(x: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= div:
            return f"{x / div:.1f}{unit}"
    return f"{x:.0f}"


def _is_terminal(stream: Any) -> bool:
    try:
        return os.isatty(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False


class Progress:
    """A bar over ``total`` units (pages by default), drawn on ``stream`` (stderr).

    Example::

        with Progress(1 << 20, "touch A") as bar:
            for done in range(0, 1 << 20, 4096):
                bar.update(done)

    ``backend`` is ``"plain"``, ``"rich"`` or None (rich on a real terminal when
    it is installed, else plain); ``width`` fixes the line's width (default:
    the terminal's).
    """

    def __init__(self, total: int, label: str = "", stream: IO[str] | None = None,
                 delay: float = 0.5, width: int | None = None, unit: str = "pages",
                 backend: str | None = None) -> None:
        self.total = max(1, total)
        self.label = label
        self.stream: IO[str] = sys.stderr if stream is None else stream
        self.delay = delay
        self.width = width
        self.unit = unit
        self.start = time.monotonic()
        self.last = 0.0
        self.drawn = False
        self._rich: Any = None
        self._task: Any = None
        env = os.environ.get("MEMPOLICY_PROGRESS", "")
        if env == "0":
            self.enabled = False
        elif env in ("1", "plain", "rich"):
            self.enabled = env == "1" or bool(getattr(self.stream, "isatty", lambda: False)())
            if env != "1":
                backend = backend or env
        else:
            isatty = getattr(self.stream, "isatty", None)
            self.enabled = bool(isatty and isatty())
        if backend is None:
            backend = "rich" if _is_terminal(self.stream) and _have_rich() else "plain"
        if backend == "rich" and not _have_rich():
            backend = "plain"
        self.backend = backend

    # -- what is drawn -------------------------------------------------------------
    def eta(self, done: int, now: float | None = None) -> float | None:
        """Seconds left at the rate so far; None before any progress."""
        elapsed = (time.monotonic() if now is None else now) - self.start
        if done <= 0 or elapsed <= 0:
            return None
        return (self.total - min(done, self.total)) * elapsed / done

    def line(self, done: int, now: float | None = None) -> str:
        """The plain bar for ``done`` units, at most the terminal's width less one column."""
        now = time.monotonic() if now is None else now
        cols = (self.width or terminal_width(self.stream)) - 1
        frac = min(1.0, max(done, 0) / self.total)
        rate = done / max(now - self.start, 1e-9)
        eta = f"ETA {format_eta(self.eta(done, now))}"
        pct = f"{frac * 100:5.1f}%"
        count = f"{done}/{self.total} {self.unit}"
        speed = f"{_si(rate)} {self.unit}/s"
        label = f"{self.label} " if self.label else ""
        for parts in ([pct, count, speed, eta], [pct, count, eta], [pct, eta], [pct]):
            tail = " " + " ".join(parts)
            room = cols - len(label) - len(tail) - 2
            if room >= 10:
                fill = int(frac * room)
                return f"{label}[{'#' * fill}{'.' * (room - fill)}]{tail}"
        return (label + pct)[:max(cols, 1)]

    # -- drawing -------------------------------------------------------------------
    def update(self, done: int) -> None:
        """Report ``done`` units; redrawn at most ten times a second, after ``delay``."""
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.start < self.delay or (now - self.last < 0.1 and done < self.total):
            return
        self.last = now
        if self.backend == "rich":
            self._update_rich(done)
            return
        self.stream.write("\r" + self.line(done, now) + "\x1b[K")
        self.stream.flush()
        self.drawn = True

    def _update_rich(self, done: int) -> None:
        if self._rich is None:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, TaskProgressColumn,
                                       TextColumn, TimeRemainingColumn)
            from rich.progress import Progress as RichProgress

            console = Console(file=self.stream, width=self.width,
                              force_terminal=True if self.width else None)
            columns: list[Any] = [TextColumn("{task.description}"), BarColumn(bar_width=None),
                                  TaskProgressColumn()]
            if console.width >= 60:             # the count only where it fits
                columns += [MofNCompleteColumn(), TextColumn(self.unit)]
            columns += [TextColumn("ETA"), TimeRemainingColumn()]
            self._rich = RichProgress(
                *columns, console=console, transient=True, auto_refresh=False, expand=True,
                redirect_stdout=False, redirect_stderr=False)
            self._rich.start()
            self._task = self._rich.add_task(self.label, total=self.total)
        self._rich.update(self._task, completed=min(done, self.total))
        self._rich.refresh()
        self.drawn = True

    def close(self) -> None:
        """Erase the bar."""
        if self._rich is not None:
            self._rich.stop()
            self._rich = None
            self.drawn = False
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.drawn = False

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _have_rich() -> bool:
    try:
        import rich.progress  # noqa: F401
    except ImportError:
        return False
    return True
