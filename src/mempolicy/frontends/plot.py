"""``mempolicy plot``: where a mapping's pages landed, and each node's use, as a PNG.

    mempolicy plot TRACE [--map NAME]... [-o FILE] [--bins N]

runs the trace on the model (the bulk fault path included), then draws

* for each mapping named (default: every mapping of the trace, up to 6), its
  pages along the address axis, coloured by the node they are on: with a
  few hundred pages one bar per page, otherwise the share of each node in
  each slice of the range (the zero page in grey, pages not present blank);
* per node, its memory against its capacity: what the kernel keeps for
  itself (estimated, see ``page_alloc.reserved_pages``), the pages of the
  mappings drawn, everything else in use, and what is still free; each
  node's label gives its weighted-interleave weight (``w=``, auto or manual
  in the title) next to its share of the pages drawn, so a weighted
  interleave can be read off against its weights.

From Python, ``plot_state(kernel, task, {"A": (addr, pages)}, "out.png")``
draws a model state (for example ``ModelSystem``'s ``kernel`` and ``task``).
matplotlib is optional (``pip install 'mempolicy[plot]'``); without it the
command says so and exits with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import IO, Any

MAX_DEFAULT_MAPS = 6
PAGE = 4096


def _human(pages: float) -> str:
    b = pages * PAGE
    for unit, div in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if b >= div:
            return f"{b / div:.3g} {unit}"
    return f"{b:.0f} B"


# Kenneth Kelly's colours of maximum contrast (1965), without white, black and grey:
# distinct hues for up to 19 nodes, none of them grey.
_KELLY = ["#F3C300", "#875692", "#F38400", "#A1CAF1", "#BE0032", "#C2B280", "#008856",
          "#E68FAC", "#0067A5", "#F99379", "#B3446C", "#882D17", "#8DB600", "#654522",
          "#E25822", "#2B3D26",
          # the three closest to one above come last, so that 16 nodes never meet them
          "#F6A600", "#604E97", "#DCD300"]


def node_colours(n: int) -> list[tuple[float, float, float, float]]:
    """One colour per node, none of them grey (grey is the zero page and the kernel).

    Up to 9 nodes take matplotlib's ``tab10`` (its grey left out), up to 19
    Kelly's colours of maximum contrast, more an even walk around the hue circle.

    >>> len(node_colours(16))
    16
    """
    import matplotlib
    from matplotlib.colors import to_rgba

    if n <= 9:
        cmap = matplotlib.colormaps["tab10"]
        return [cmap(i if i < 7 else i + 1) for i in range(n)]
    if n <= len(_KELLY):
        return [to_rgba(c) for c in _KELLY[:n]]
    cmap = matplotlib.colormaps["hsv"]
    return [cmap(i / n) for i in range(n)]


def _axis_unit(pages: int) -> tuple[float, str]:
    """Pages per tick unit and its name for an address axis of ``pages`` pages."""
    if pages <= 20_000:
        return 1, "pages"
    for name, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20)):
        if pages * PAGE >= 4 * size:
            return size / PAGE, name
    return 256, "MiB"


def mapping_bins(kernel: Any, task: Any, addr: int, pages: int, bins: int) -> tuple[Any, Any]:
    """(edges in pages, counts array (bins, nr_nodes + 1)): pages per node in each slice
    of the range (page i falls in slice i * bins // pages), the last column zero pages."""
    import numpy as np

    nb = max(1, min(bins, pages))
    lo = addr >> 12
    counts = task.mm.ptes.node_bins(lo, lo + pages, nb, kernel.topo.nr_node_ids)
    r = np.arange(nb + 1, dtype=np.int64)
    edges = (r * pages + nb - 1) // nb          # first page of each slice
    return edges, counts


def plot_state(kernel: Any, task: Any, mappings: dict[str, tuple[int, int]],
               out: str | os.PathLike[str] | IO[bytes], bins: int = 600,
               title: str | None = None) -> None:
    """Draw ``mappings`` ({name: (address, pages)}) of ``task`` and every node's use to ``out``.

    Example: ``plot_state(m.kernel, m.task, {"A": (addr, 100)}, "a.png")``.
    """
    import matplotlib.pyplot as plt

    from mempolicy.fsutil import atomic_path

    fig = draw_state(kernel, task, mappings, bins, title)
    try:
        if isinstance(out, (str, os.PathLike)):  # a file: whole or not at all
            with atomic_path(out) as tmp:
                fig.savefig(tmp, bbox_inches="tight", format=Path(out).suffix[1:].lower() or "png")
        else:  # a file object
            fig.savefig(out, bbox_inches="tight")
    finally:
        plt.close(fig)


def vma_segments(kernel: Any, task: Any, addr: int, pages: int) -> list[tuple[int, int, str]]:
    """(first page, end page, policy) of each VMA over the mapping, offsets in pages.

    The policy is what numa_maps prints for the VMA: its own, else the task's.
    """
    from mempolicy.core.mempolicy import mpol_cond_put, mpol_to_str
    from mempolicy.scopes.mm import __get_vma_policy as vma_policy_noref

    out = []
    end = addr + pages * PAGE
    for vma in task.mm.vmas_in(addr, end):
        lo, hi = max(vma.start, addr), min(vma.end, end)
        pol, _ = vma_policy_noref(vma, lo)
        policy = mpol_to_str(pol if pol is not None else task.get_task_policy())
        mpol_cond_put(pol)
        out.append(((lo - addr) // PAGE, (hi - addr) // PAGE, policy))
    return out


def node_labels(kernel: Any, mapped_per_node: Any) -> list[str]:
    """Y labels of the per-node panel: the node, its weighted-interleave weight (the
    sysfs ``nodeN``, nodes with memory only) and its share of the pages drawn.

    >>> from mempolicy.kernel import Kernel
    >>> from mempolicy.alloc.topology import Topology
    >>> k = Kernel(Topology.simple(2)); k.wi_state.set_weight(0, 3)
    >>> node_labels(k, [30, 10])
    ['node 0  w=3  75%', 'node 1  w=1  25%']
    """
    total = sum(int(c) for c in mapped_per_node)
    weights = kernel.wi_state.weights()
    out = []
    for i, node in enumerate(kernel.topo.nodes):
        label = f"node {i}" + ("" if len(node.cpus) else " (no CPU)")
        if i in weights:
            label += f"  w={weights[i]}"
        if total:
            label += f"  {100 * int(mapped_per_node[i]) / total:.0f}%"
        out.append(label)
    return out


MAX_HUGE_HATCHES = 4096        # more huge pages than this are not hatched one by one


def _draw_huge_pages(ax: Any, task: Any, addr: int, pages: int, per: float) -> bool:
    """Hatch the ranges a huge page (or the huge zero page) backs; a split one (mapped by
    ptes, still one folio) gets a sparser hatch.  True if anything was drawn."""
    from mempolicy.alloc.huge_memory import huge_page_spans

    lo = addr >> 12
    spans = huge_page_spans(task.mm, lo, lo + pages)
    if not spans or len(spans) > MAX_HUGE_HATCHES:
        return False
    for first, end, pmd_mapped in spans:
        ax.axvspan((first - lo) / per, (end - lo) / per, ymin=0, ymax=1, fill=False,
                   hatch="///" if pmd_mapped else "/", edgecolor="0.2", linewidth=0)
    return True


def draw_state(kernel: Any, task: Any, mappings: dict[str, tuple[int, int]], bins: int = 600,
               title: str | None = None) -> Any:
    """The figure ``plot_state`` saves (a matplotlib ``Figure``; close it when done).

    Example: ``fig = draw_state(m.kernel, m.task, {"A": (addr, 100)})``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    from mempolicy.alloc.page_alloc import reserved_pages

    topo = kernel.topo
    nr = topo.nr_node_ids
    colours = node_colours(nr)
    names = list(mappings)
    nmaps = len(names)
    fig_h = 1.9 * nmaps + 0.4 * nr + 1.8
    fig = plt.figure(figsize=(11, fig_h), dpi=110, layout="constrained")
    grid = fig.add_gridspec(nmaps + 1, 1, height_ratios=[1.4] * nmaps + [0.36 * nr + 0.8])
    mapped_per_node = np.zeros(nr, dtype=np.int64)
    any_zero = any_huge = False
    for row, name in enumerate(names):
        addr, pages = mappings[name]
        ax = fig.add_subplot(grid[row])
        edges, counts = mapping_bins(kernel, task, addr, pages, bins)
        lo = addr >> 12
        per_node = task.mm.ptes.node_counts(lo, lo + pages)
        for nid, c in per_node.items():
            if nid < nr:
                mapped_per_node[nid] += c
        per, uname = _axis_unit(pages)
        width = np.diff(edges)
        slot = np.maximum(width, 1)
        x0, w = edges[:-1] / per, width / per
        bottom = np.zeros(len(width))
        for nid in range(nr):
            share = counts[:, nid] / slot
            if share.any():
                ax.bar(x0, share, width=w, bottom=bottom, align="edge",
                       color=colours[nid], linewidth=0)
                bottom += share
        zero = counts[:, nr] / slot
        if zero.any():
            any_zero = True
            ax.bar(x0, zero, width=w, bottom=bottom, align="edge", color="0.8",
                   linewidth=0)
        ax.set_xlim(0, pages / per)
        ax.set_ylim(0, 1)
        ax.set_yticks([0, 0.5, 1])
        ax.set_yticklabels(["0", "", "100%"])
        ax.set_ylabel("share", fontsize=8)
        if per == 1:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        any_huge |= _draw_huge_pages(ax, task, addr, pages, per)
        segments = vma_segments(kernel, task, addr, pages)
        for k, (first, end, pol_txt) in enumerate(segments):
            if k:                               # a VMA boundary inside the mapping
                ax.axvline(first / per, color="black", linestyle="--", linewidth=0.8)
            if (end - first) * 12 >= pages or len(segments) == 1:
                ax.text((first + end) / 2 / per, 0.97, pol_txt, ha="center", va="top",
                        fontsize=7, transform=ax.get_xaxis_transform(), clip_on=True,
                        bbox={"fc": "white", "ec": "none", "alpha": 0.7, "pad": 1})
        if len(segments) == 1:
            policy = f", policy {segments[0][2]}"
        else:
            policy = f", {len(segments)} VMAs (policies shown per VMA)"
        present = sum(per_node.values())
        counts_txt = "  ".join(f"N{n} {_human(c)}" for n, c in sorted(per_node.items()))
        ax.set_title(f"{name}: {pages:,} pages ({_human(pages)}) at {addr:#x}"
                     + (policy if segments else ", not mapped")
                     + f"\n{present:,} pages present: {counts_txt or 'none'}",
                     fontsize=9, loc="left")
        ax.set_xlabel(f"offset in the mapping ({uname})" + ("" if len(width) == pages else
                      f"; {len(width)} slices of {_human(pages / len(width))}, share of each node"),
                      fontsize=8)
        ax.tick_params(labelsize=8)
    # per-node usage against capacity
    ax = fig.add_subplot(grid[nmaps])
    ys = np.arange(nr)[::-1]
    cap = np.array([n.present_pages for n in topo.nodes], dtype=np.float64)
    res = np.array([reserved_pages(topo, i) for i in range(nr)], dtype=np.float64)
    free = np.array(kernel.pages.free, dtype=np.float64)
    other = np.maximum(cap - res - free - mapped_per_node, 0)
    scale = cap.max() or 1
    unit = 1 << 30 if scale * PAGE >= 4 << 30 else 1 << 20
    uname = "GiB" if unit == 1 << 30 else "MiB"
    conv = PAGE / unit
    left = np.zeros(nr)
    for label, vals, colour in (("kernel (estimate)", res, "0.55"),
                                ("these mappings", mapped_per_node, None),
                                ("other pages in use", other, "0.8"),
                                ("free", free, "white")):
        c = colours if colour is None else colour
        ax.barh(ys, vals * conv, left=left * conv, color=c, edgecolor="0.3", linewidth=0.5,
                label=label, height=0.7)
        left += vals
    for i in range(nr):
        used = cap[i] - free[i]
        pct = 100 * used / cap[i] if cap[i] else 0
        ax.text(cap[i] * conv + scale * conv * 0.01, ys[i], f" {used * conv:,.1f} / {cap[i] * conv:,.1f} {uname} ({pct:.0f}%)",
                va="center", fontsize=8)
    ax.set_yticks(ys)
    ax.set_yticklabels(node_labels(kernel, mapped_per_node), fontsize=8)
    ax.set_xlim(0, scale * conv * 1.35)
    ax.set_xlabel(f"{uname}", fontsize=8)
    ax.tick_params(labelsize=8)
    wi = kernel.wi_state
    ax.set_title("per node; w: weight "
                 f"({'auto' if wi.iw_table is None or wi.mode_auto else 'manual'}), %: share "
                 "of these pages", fontsize=9, loc="left")
    ax.legend(handles=[plt.Rectangle((0, 0), 1, 1, fc=c, ec="0.3", lw=0.5) for c in
                       ("0.55", colours[0], "0.8", "white")],
              labels=["kernel (estimate)", "these mappings (node colour)", "other pages in use",
                      "free"], loc="lower right", bbox_to_anchor=(1.0, 1.0),
              ncol=4, fontsize=7, frameon=False, borderaxespad=0.2)
    shown = [i for i in range(nr) if mapped_per_node[i]]      # no entry for an empty node
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[i]) for i in shown]
    labels = [f"N{i}" for i in shown]
    if any_zero:
        handles.append(plt.Rectangle((0, 0), 1, 1, color="0.8"))
        labels.append("zero page")
    if any_huge:
        handles.append(plt.Rectangle((0, 0), 1, 1, fill=False, hatch="///", ec="0.2", lw=0))
        labels.append("huge page (2 MiB)")
    if handles:
        fig.legend(handles, labels, loc="outside upper right", ncol=min(len(handles), 10),
                   fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10, x=0.01, ha="left")
    return fig


def default_output(trace: str) -> Path:
    """The PNG next to TRACE under its own name: ``a.b/t.trace`` -> ``a.b/t.png``.

    >>> default_output("a.b/noext")
    PosixPath('a.b/noext.png')
    """
    p = Path(trace)
    return p.with_suffix(".png") if p.suffix else p.with_name(p.name + ".png")


def main(argv: list[str] | None = None) -> int:
    """``mempolicy plot TRACE [--map NAME]... [-o FILE] [--bins N]``; e.g. ``main(["t.trace"])``."""
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="mempolicy plot",
                                description="Draw where a trace's mappings landed, and each node's use, to a PNG.")
    p.add_argument("trace", metavar="TRACE")
    p.add_argument("--map", action="append", dest="maps", metavar="NAME",
                   help="a mapping to draw (repeatable; default: every mapping, up to 6)")
    p.add_argument("-o", "--output", default=None, metavar="FILE",
                   help="the PNG to write (default: TRACE with .png)")
    p.add_argument("--bins", type=int, default=600, help="slices of the address axis (default 600)")
    args = p.parse_args(argv)
    try:
        import matplotlib  # noqa: F401
        import numpy  # noqa: F401
    except ImportError as e:
        print(f"mempolicy plot: needs matplotlib and numpy ({e.name} is missing): "
              "pip install 'mempolicy[plot]'", file=sys.stderr)
        return 2
    from mempolicy.trace.parser import TraceError, load_trace
    from mempolicy.trace.run import TraceRunner

    try:
        trace = load_trace(args.trace)
    except TraceError as e:
        print(e, file=sys.stderr)
        return 2
    except OSError as e:
        print(f"{args.trace}: {e.strerror}", file=sys.stderr)
        return 2
    except UnicodeDecodeError:
        print(f"{args.trace}:1: not a text file", file=sys.stderr)
        return 2
    runner = TraceRunner(trace)
    runner.run()
    names = args.maps or list(runner.maps)[:MAX_DEFAULT_MAPS]
    unknown = [n for n in names if n not in runner.maps]
    if unknown:
        print(f"mempolicy plot: {args.trace} has no mapping {unknown[0]!r}"
              f" (mappings: {', '.join(runner.maps) or 'none'})", file=sys.stderr)
        return 2
    if not names:
        print(f"mempolicy plot: {args.trace} maps nothing", file=sys.stderr)
        return 2
    if args.bins < 1:
        print("mempolicy plot: --bins must be at least 1", file=sys.stderr)
        return 2
    out = args.output or str(default_output(args.trace))
    from matplotlib.backend_bases import FigureCanvasBase

    fmt = Path(out).suffix[1:].lower() or "png"
    if fmt not in FigureCanvasBase.get_supported_filetypes():
        print(f"mempolicy plot: cannot write {out}: unknown image format {fmt!r}", file=sys.stderr)
        return 2
    if not Path(out).parent.is_dir():           # say so before drawing anything
        print(f"mempolicy plot: cannot write {out}: no directory {Path(out).parent}", file=sys.stderr)
        return 2
    maps = {n: (runner.maps[n][0], runner.maps[n][1]) for n in names}
    try:
        plot_state(runner.kernel, runner.task, maps, out, args.bins, title=args.trace)
    except OSError as e:
        print(f"mempolicy plot: cannot write {out}: {e.strerror or e}", file=sys.stderr)
        return 2
    except ValueError as e:                     # a format matplotlib cannot write
        print(f"mempolicy plot: cannot write {out}: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
