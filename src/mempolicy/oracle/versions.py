"""``mempolicy trace versions``: one trace's output on each kernel, side by side.

The outputs are lined up by the trace line that printed them (every output
line starts with it), one column per kernel; a row whose cells differ is
marked ``!``.  A closing table gives each trace a letter per kernel: the
same letter, the same output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from mempolicy.oracle.errors import OracleError

# texts, paths -> outputs
Runner = Callable[[list[tuple[str, str]]], list[str]]


@dataclass(frozen=True)
class Column:
    """One kernel of the comparison: its label and how its outputs are made."""

    label: str
    run: Runner


def model_has_versions() -> bool:
    """Does this tree's model take ``kernel=`` (the version switches of issue 10)?"""
    import inspect

    from mempolicy.trace.run import run_trace_text

    return "kernel" in inspect.signature(run_trace_text).parameters


def model_column(version: str, hint: str = "") -> Column:
    """The model as Linux VERSION behaves; HINT ends the error of a model without versions."""
    from mempolicy.campaign.work import model_output

    if version != "7.3" and not model_has_versions():
        raise OracleError(f"the model in this tree follows Linux 7.3 only, not {version}{hint}")
    return Column(f"model {version}",
                  lambda items: [model_output(t, p, version) for t, p in items])


def _rows(outs: list[str]) -> list[list[str]]:
    """The lines of OUTS lined up by the trace line that printed them."""
    cells: dict[tuple[int, int], list[str]] = {}
    for col, out in enumerate(outs):
        seen: dict[int, int] = {}
        for line in out.splitlines():
            head = line.split(" ", 1)[0]
            num = int(head) if head.isdigit() else 0
            k = seen[num] = seen.get(num, -1) + 1
            cells.setdefault((num, k), [""] * len(outs))[col] = line
    return [cells[key] for key in sorted(cells)]


def side_by_side(labels: list[str], outs: list[str]) -> list[str]:
    """Lines showing OUTS in columns under LABELS, differing rows marked ``!``.

    >>> for x in side_by_side(["6.1", "7.3"], ["3 mmap: ok\\n4 x: EINVAL\\n", "3 mmap: ok\\n4 x: ok\\n"]):
    ...     print(x.rstrip())
      6.1         | 7.3
      3 mmap: ok  | 3 mmap: ok
    ! 4 x: EINVAL | 4 x: ok
    """
    rows = _rows(outs)
    width = [max([len(labels[c])] + [len(r[c]) for r in rows]) for c in range(len(outs))]

    def line(mark: str, cells: list[str]) -> str:
        return f"{mark} " + " | ".join(x.ljust(w) for x, w in zip(cells, width))

    return [line(" ", labels)] + [line("!" if len(set(r)) > 1 else " ", r) for r in rows]


def classes(outs: list[str]) -> str:
    """A letter per output, the same letter for the same output.

    >>> classes(["x", "x", "y"])
    'a a b'
    """
    seen: dict[str, str] = {}
    return " ".join(seen.setdefault(o, "abcdefghijklmnopqrstuvwxyz"[len(seen) % 26]) for o in outs)


def compare(items: list[tuple[str, str]], columns: list[Column]) -> list[list[str]]:
    """Each trace's outputs, one per column: ``result[trace][column]``."""
    per_column = [c.run(items) for c in columns]
    return [list(x) for x in zip(*per_column)]


def report(items: list[tuple[str, str]], columns: list[Column], outs: list[list[str]],
           write: Callable[[str], object]) -> int:
    """Write the side-by-side outputs and the closing table; how many traces differ."""
    labels = [c.label for c in columns]
    differ = 0
    for n, ((_, path), o) in enumerate(zip(items, outs)):
        same = len(set(o)) == 1
        differ += not same
        write(("\n" if n else "") + f"==> {path} <== "
              + ("same on every kernel" if same else "differs") + "\n")
        for x in side_by_side(labels, o):
            write(x.rstrip() + "\n")
    names = [p for _, p in items]
    w = max([len("trace")] + [len(p) for p in names])
    cw = [max(len(x), 1) for x in labels]
    write("\n" + "trace".ljust(w) + "  " + "  ".join(x.ljust(c) for x, c in zip(labels, cw)) + "\n")
    for p, o in zip(names, outs):
        letters = classes(o).split()
        write(p.ljust(w) + "  " + "  ".join(x.ljust(c) for x, c in zip(letters, cw)).rstrip()
              + ("" if len(set(o)) == 1 else "   <- differs") + "\n")
    write(f"{differ} of {len(items)} trace(s) differ between {', '.join(labels)} "
          "(the same letter, the same output)\n")
    return differ
