"""``mempolicy numastat``: numastat (numactl 2.0.16) on Linux or on the model.

    mempolicy numastat [-c] [-m] [-n] [-p PID|PATTERN] [-s[NODE]] [-v] [-V] [-z] [PID|PATTERN...]
    mempolicy numastat --trace FILE.trace [same options]

With no argument it prints the per-node ``numastat`` counters in the old
(perl script) layout, in pages; any option switches to the ``Node N ... Total``
tables in MB, and ``-p`` shows a process's memory per node from its
``/proc/<pid>/numa_maps``, as numastat does.

``--trace FILE`` (first argument) runs the trace on the model kernel first
and reports the model: its per-node counters (numa_hit, numa_miss,
numa_foreign, interleave_hit, local_node, other_node, counted as
``zone_statistics`` does), node memory, and its processes (``-p 1``).
"""

from __future__ import annotations

import os
import re
import sys

from mempolicy.frontends.gnu_getopt import Getopt, LongOpt

MEGABYTE = 1024 * 1024
KILOBYTE = 1024

PROCESS_ROWS = [("huge", "Huge"), ("heap", "Heap"), ("stack", "Stack"), ("N", "Private")]
NUMASTAT_ROWS = [("numa_hit", "Numa_Hit"), ("numa_miss", "Numa_Miss"), ("numa_foreign", "Numa_Foreign"),
                 ("interleave_hit", "Interleave_Hit"), ("local_node", "Local_Node"),
                 ("other_node", "Other_Node")]
SYSTEM_ROWS = ["MemTotal", "MemFree", "MemUsed", "HighTotal", "HighFree", "LowTotal", "LowFree",
               "Active", "Inactive", "Active(anon)", "Inactive(anon)", "Active(file)",
               "Inactive(file)", "Unevictable", "Mlocked", "Dirty", "Writeback", "FilePages",
               "Mapped", "AnonPages", "Shmem", "KernelStack", "PageTables", "NFS_Unstable",
               "Bounce", "WritebackTmp", "Slab", "SReclaimable", "SUnreclaim", "AnonHugePages",
               "ShmemHugePages", "ShmemPmdMapped", "HugePages_Total", "HugePages_Free",
               "HugePages_Surp", "KReclaimable"]


class Exit(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


# ---------------------------------------------------------------------------
# Sources: where the numbers come from
# ---------------------------------------------------------------------------

class LiveSource:
    """The running system."""

    def node_ids(self) -> list[int] | None:
        try:
            names = os.listdir("/sys/devices/system/node")
        except OSError:
            return None
        return [int(n[4:]) for n in names if re.fullmatch(r"node\d+", n)]

    def node_file(self, node: int, name: str) -> list[str]:
        """Lines of /sys/devices/system/node/nodeN/NAME (OSError if unreadable)."""
        with open(f"/sys/devices/system/node/node{node}/{name}") as f:
            return f.readlines()

    def page_size(self) -> int:
        return os.sysconf("SC_PAGE_SIZE")

    def huge_page_size(self) -> float:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("Hugepagesize"):
                    m = re.search(r"[\d.]+", line[12:])
                    return float(m.group(0)) * KILOBYTE if m else 0.0
        return 0.0

    def command_name(self, pid: int) -> str | None:
        try:
            with open(f"/proc/{pid}/status", errors="replace") as f:
                for line in f:
                    if line.startswith("Name:"):
                        return line[5:].strip(" \t\n\v\f\r")[:127]
        except OSError:
            return None
        return None

    def numa_maps(self, pid: int) -> list[str]:
        with open(f"/proc/{pid}/numa_maps", errors="replace") as f:
            return f.readlines()

    def pids(self) -> list[int]:
        return [int(n) for n in os.listdir("/proc") if n[:1].isdigit()]

    def cmdline(self, pid: int) -> str | None:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return None

    def self_pid(self) -> int:
        return os.getpid()


class ModelSource:
    """A model kernel (a :class:`mempolicy.api.ModelSystem`, or a trace run)."""

    def __init__(self, kernel, stats, names: dict[int, str] | None = None) -> None:
        self.kernel = kernel
        self.stats = stats            # node -> {numa_hit: ...}
        self.names = names or {}

    @classmethod
    def from_system(cls, model) -> "ModelSource":
        return cls(model.kernel, model.kernel.pages.stats, {model.pid: "model"})

    def node_ids(self):
        return [n.id for n in self.kernel.topo.nodes]

    def node_file(self, node: int, name: str) -> list[str]:
        if name == "numastat":
            return [f"{k} {v}\n" for k, v in self.stats[node].items()]
        if name == "meminfo":
            total = self.kernel.topo.nodes[node].present_pages * 4
            free = self.kernel.pages.free[node] * 4
            return [f"Node {node} MemTotal:       {total:8d} kB\n",
                    f"Node {node} MemFree:        {free:8d} kB\n",
                    f"Node {node} MemUsed:        {total - free:8d} kB\n"]
        raise OSError(2, "No such file or directory")

    def page_size(self) -> int:
        return 4096

    def huge_page_size(self) -> float:
        return 2048.0 * KILOBYTE

    def command_name(self, pid: int) -> str | None:
        return self.names.get(pid, "model") if pid in self.kernel.tasks else None

    def numa_maps(self, pid: int) -> list[str]:
        from mempolicy.proc.task_mmu import numa_maps

        task = self.kernel.tasks.get(pid)
        if task is None:
            raise OSError(2, "No such file or directory")
        return [line + "\n" for line in numa_maps(self.kernel, task, task)]

    def pids(self) -> list[int]:
        return sorted(self.kernel.tasks)

    def cmdline(self, pid: int) -> str | None:
        return self.command_name(pid)

    def self_pid(self) -> int:
        return -1


# ---------------------------------------------------------------------------
# numastat's table (vtab_t) and its display
# ---------------------------------------------------------------------------

NULL, LONG, DOUBLE, STRING, REPCHAR = range(5)
JUSTIFY_LEFT, JUSTIFY_RIGHT = 1, 2
SEEN, NON_ZERO, ALWAYS = 1 << 2, 1 << 3, 1 << 4


class Table:
    def __init__(self, header_rows: int, header_cols: int, data_rows: int, data_cols: int) -> None:
        self.hr, self.hc, self.dr, self.dc = header_rows, header_cols, data_rows, data_cols
        self.rows = header_rows + data_rows
        self.cols = header_cols + data_cols
        self.cell = [[(NULL, 0) for _ in range(self.cols)] for _ in range(self.rows)]
        self.row_map = list(range(self.rows))
        self.row_flags = [0] * self.rows
        self.col_flags = [0] * self.cols
        self.col_width = [0] * self.cols
        self.places = [0] * self.cols

    def set(self, r: int, c: int, kind: int, v) -> None:
        self.cell[r][c] = (kind, v)

    def add(self, r: int, c: int, v: float) -> None:
        kind, old = self.cell[r][c]
        self.cell[r][c] = (DOUBLE, (old if kind == DOUBLE else 0.0) + v)

    def zero(self) -> None:
        for r in range(self.hr, self.rows):
            for c in range(self.hc, self.cols):
                self.cell[r][c] = (DOUBLE, 0.0)

    def width(self, c: int, w: int) -> None:
        self.col_width[c] = min(w, 127)

    def justify(self, c: int, j: int) -> None:
        self.col_flags[c] = (self.col_flags[c] & ~3) | j

    def fmt(self, r: int, c: int, max_width: int) -> str:
        kind, v = self.cell[r][c]
        if kind == NULL:
            s = ""
        elif kind == LONG:
            s = str(v)
        elif kind == DOUBLE:
            s = f"{v:.{self.places[c]}f}"
        elif kind == STRING:
            s = v
        else:
            s = v * (max_width - 1)
        return s[:max_width]

    def auto_width(self, c: int, lo: int, hi: int) -> None:
        w = lo
        for r in range(self.rows):
            if self.cell[r][c][0] == REPCHAR:
                continue
            w = max(w, len(self.fmt(r, c, hi)))
        self.col_width[c] = min(w + 1, hi)

    def sort_desc(self, start: int, stop: int, col: int) -> None:
        def val(row: int) -> float:
            kind, v = self.cell[row][col]
            return v if kind == DOUBLE else 0.0

        m = self.row_map
        for ix in range(start, stop + 1):
            big = ix
            for iy in range(ix + 1, stop + 1):
                if val(m[big]) < val(m[iy]):
                    big = iy
            if big != ix:
                m[ix], m[big] = m[big], m[ix]

    def _cell_text(self, r: int, c: int) -> str:
        w = self.col_width[c]
        p = self.fmt(r, c, w)
        just = self.col_flags[c] & 3
        if just == JUSTIFY_LEFT:
            return p.ljust(w)[:w]
        if just == JUSTIFY_RIGHT:
            return p.rjust(w)[-w:] if w else ""
        pad = (w - len(p) + 1) // 2
        return (" " * pad + p).ljust(w)[:w]

    def render(self, screen_width: int, show_zero_rows: bool, show_zero_cols: bool) -> str:
        out: list[str] = []
        seen = nonzero = False
        for r in range(self.hr, self.rows):
            for c in range(self.hc, self.cols):
                kind, v = self.cell[r][c]
                if kind not in (NULL, REPCHAR):
                    seen = True
                    self.row_flags[r] |= SEEN
                    self.col_flags[c] |= SEEN
                    if v:
                        nonzero = True
                        self.row_flags[r] |= NON_ZERO
                        self.col_flags[c] |= NON_ZERO
        if not seen:
            return "Table has no data.\n"
        if not nonzero and not show_zero_rows and not show_zero_cols:
            return "Table has no non-zero data.\n"

        def show_col(c: int) -> bool:
            f = self.col_flags[c]
            return bool(f & ALWAYS) or (bool(f & SEEN) and (show_zero_cols or bool(f & NON_ZERO)))

        col = -1
        data_col = self.hc
        while data_col < self.cols:
            if not show_col(data_col):
                data_col += 1
                continue
            if col > 0:
                out.append("\n")
            for r in self.row_map:
                if r >= self.hr and not self.row_flags[r] & ALWAYS:
                    if not self.row_flags[r] & SEEN or (not show_zero_rows and not self.row_flags[r] & NON_ZERO):
                        continue
                line = ""
                width = 0
                for col in range(self.hc):
                    line += self._cell_text(r, col)
                    width += self.col_width[col]
                col = data_col
                while True:
                    if show_col(col):
                        line += self._cell_text(r, col)
                        width += self.col_width[col]
                    col += 1
                    if col >= self.cols or width + self.col_width[col] > screen_width:
                        break
                out.append(line + "\n")
            data_col = col
        return "".join(out)


# ---------------------------------------------------------------------------
# numastat
# ---------------------------------------------------------------------------

class Numastat:
    def __init__(self, src, out, err) -> None:
        self.src = src
        self.out = out
        self.err = err
        self.verbose = False
        self.compress = False
        self.sort_table = False
        self.sort_node = -1
        self.show_zero = True
        self.compat = False
        self.pids: list[int] = []
        self.nodes: list[int] = []
        self.headers: list[str] = []
        self.page_size = 4096.0
        self.huge_page_size = 0.0
        self.screen_width = 80

    def usage(self):
        p = "numastat"
        self.err(f"Usage: {p} [-c] [-m] [-n] [-p <PID>|<pattern>] [-s[<node>]] [-v] [-V] [-z] "
                 f"[ <PID>|<pattern>... ]\n"
                 "-c to minimize column widths\n"
                 "-m to show meminfo-like system-wide memory usage\n"
                 "-n to show the numastat statistics info\n"
                 "-p <PID>|<pattern> to show process info\n"
                 "-s[<node>] to sort data by total column or <node>\n"
                 "-v to make some reports more verbose\n"
                 f"-V to show the {p} code version\n"
                 "-z to skip rows and columns of zeros\n")
        raise Exit(1)

    @staticmethod
    def _screen_width(stdout) -> int:
        w = 80
        env = os.environ.get("NUMASTAT_WIDTH")
        if env is not None:
            m = re.match(r"\s*[+-]?\d+", env)
            w = int(m.group(0)) if m else 0
            if not 1 <= w <= 10000000:
                w = 80
        elif not (hasattr(stdout, "isatty") and stdout.isatty()):
            w = 10000000
        return max(w, 32)

    def add_pattern(self, pattern: str) -> None:
        found = 0
        for pid in self.src.pids():
            text = (self.src.command_name(pid) or "")
            cmd = self.src.cmdline(pid)
            if cmd is not None:
                text += " " + cmd
            if pattern in text and pid != self.src.self_pid():
                self.pids.append(pid)
                found += 1
        if not found:
            self.out(f'Found no processes containing pattern: "{pattern}"\n')

    def init_nodes(self) -> None:
        ids = self.src.node_ids()
        if not ids:
            self.err(("sysfs not mounted or system not NUMA aware" if self.compat
                      else "Couldn't open /sys/devices/system/node") + ": No such file or directory\n")
            raise Exit(1)
        self.nodes = sorted(ids)
        self.headers = [(f"node{n}" if self.compat else f"Node {n}") for n in self.nodes] + ["Total"]

    def system_table(self, file: str, rows: list[tuple[str, str]], tok_offset: int) -> None:
        n = len(self.nodes)
        hr = 2 - int(self.compat)
        t = Table(hr, 1, len(rows), n + 1)
        total = 1 + n
        index = {}
        for i, (tok, label) in enumerate(rows):
            index[tok] = i
            t.set(hr + i, 0, STRING, tok if self.compat else label)
        t.width(0, 16)
        t.justify(0, JUSTIFY_LEFT)
        for ni in range(n + (1 - int(self.compat))):
            col = 1 + ni
            t.set(0, col, STRING, self.headers[ni])
            if not self.compat:
                t.set(1, col, REPCHAR, "-")
                t.places[col] = 0 if self.compress else 2
            t.width(col, 16)
            t.justify(col, JUSTIFY_RIGHT)
            if ni == n:
                break
            try:
                lines = self.src.node_file(self.nodes[ni], file)
            except OSError as e:
                self.err(f"cannot open /sys/devices/system/node/node{self.nodes[ni]}/{file}: "
                         f"{os.strerror(e.errno or 2)}\n")
                raise Exit(1)
            for line in lines:
                toks = [x for x in re.split(r"[ \t\r\n:]+", line[:127]) if x]
                if not toks or len(toks) <= tok_offset:
                    continue
                key = toks[tok_offset]
                if key not in index:
                    self.out(f"Token {key} not in hash table.\n")
                    continue
                m = re.match(r"\s*[+-]?\d+", toks[1 + tok_offset]) if len(toks) > 1 + tok_offset else None
                value = float(int(m.group(0))) if m else 0.0
                if not self.compat:
                    mult = 1.0
                    if len(toks) < 4:
                        mult = self.page_size
                    elif toks[2].startswith("HugePages"):
                        mult = self.huge_page_size
                    elif len(toks) > 4 and toks[4].startswith("kB"):
                        mult = KILOBYTE
                    value = value * mult / MEGABYTE
                t.set(hr + index[key], col, DOUBLE, value)
                t.add(hr + index[key], total, value)
        if self.compress:
            for c in range(n + 2):
                t.auto_width(c, 4, 16)
        if self.sort_table:
            sc = total if not 0 <= self.sort_node < n else 1 + self.nodes[self.sort_node]
            t.sort_desc(hr, hr + len(rows) - 1, sc)
        self.out(t.render(self.screen_width, self.show_zero, self.show_zero))

    def show_numastat(self) -> None:
        if not self.compat:
            self.out("\nPer-node numastat info (in MBs):\n")
        self.system_table("numastat", NUMASTAT_ROWS, 0)

    def show_system(self) -> None:
        self.out("\nPer-node system memory usage (in MBs):\n")
        self.system_table("meminfo", [(r, r) for r in SYSTEM_ROWS], 2)

    def show_processes(self) -> None:
        n = len(self.nodes)
        sub = self.verbose or len(self.pids) == 1
        data_rows = len(PROCESS_ROWS) if sub else len(self.pids)
        t = Table(2, 1, data_rows + 2, n + 1)
        total_col = 1 + n
        total_row = 2 + data_rows + 1
        t.set(total_row, 0, STRING, "Total")
        if sub:
            for i, (_, label) in enumerate(PROCESS_ROWS):
                t.set(2 + i, 0, STRING, label)
        else:
            t.set(0, 0, STRING, "PID")
            t.set(1, 0, REPCHAR, "-")
            self.out("\nPer-node process memory usage (in MBs)\n")
        t.width(0, 16)
        t.justify(0, JUSTIFY_LEFT)
        for ni in range(n + 1):
            col = 1 + ni
            t.set(0, col, STRING, self.headers[ni])
            t.set(1, col, REPCHAR, "-")
            t.width(col, 16)
            t.places[col] = 0 if self.compress else 2
            t.justify(col, JUSTIFY_RIGHT)
        t.zero()
        for pi, pid in enumerate(self.pids):
            name = self.src.command_name(pid)
            name = "(null)" if name is None else name
            if sub:
                self.out(f"\nPer-node process memory usage (in MBs) for PID {pid} ({name})\n")
                if pi > 0:
                    t.zero()
            else:
                t.set(2 + pi, 0, STRING, f"{pid} ({name})"[:63])
            try:
                lines = self.src.numa_maps(pid)
            except OSError as e:
                self.err(f"Can't read /proc/{pid}/numa_maps: {os.strerror(e.errno or 2)}\n")
                continue
            for line in lines:
                category = 3
                for tok in re.split(r"[ \t\r\n]+", line[:2047]):
                    if not tok:
                        continue
                    if category == 3:
                        for ix in range(3):
                            if tok.startswith(PROCESS_ROWS[ix][0]):
                                category = ix
                                break
                    if tok[0] == "N":
                        m = re.match(r"N([+-]?\d*)(.*)", tok)
                        node = int(m.group(1)) if m.group(1) not in ("", "+", "-") else 0
                        rest = m.group(2)
                        if not rest.startswith("="):
                            self.err("node value parse error: Success\n")
                            raise Exit(1)
                        v = re.match(r"\s*[+-]?\d+", rest[1:])
                        value = float(int(v.group(0))) if v else 0.0
                        mult = self.huge_page_size if category == 0 else self.page_size
                        value = value * mult / MEGABYTE
                        row = 2 + category if sub else 2 + pi
                        col = 1 + self.nodes.index(node) if node in self.nodes else 1 + n
                        t.add(row, col, value)
                        t.add(row, total_col, value)
                        t.add(total_row, col, value)
                        t.add(total_row, total_col, value)
            if sub or pi + 1 == len(self.pids):
                if self.compress:
                    for c in range(n + 2):
                        t.auto_width(c, 4, 16)
                else:
                    t.auto_width(0, 16, 24)
                t.row_flags[total_row - 1] |= ALWAYS
                for c in range(n + 2):
                    t.set(total_row - 1, c, REPCHAR, "-")
                if self.sort_table:
                    sc = total_col if not 0 <= self.sort_node < n else 1 + self.nodes[self.sort_node]
                    t.sort_desc(2, 2 + data_rows - 1, sc)
                self.out(t.render(self.screen_width, self.show_zero, self.show_zero))

    def run(self, argv: list[str], stdout) -> int:
        g = Getopt(argv, "cmnp:s::vVz?", [LongOpt("help", 0, "?")], "numastat", self.err)
        show_system = show_numastat = False
        while (c := g.next()) != -1:
            if c == "c":
                self.compress = True
            elif c == "m":
                show_system = True
            elif c == "n":
                show_numastat = True
            elif c == "p":
                if g.optarg and g.optarg.isdigit():
                    self.pids.append(int(g.optarg))
                else:
                    self.add_pattern(g.optarg or "")
            elif c == "s":
                self.sort_table = True
                if g.optarg and g.optarg.isdigit():
                    self.sort_node = int(g.optarg)
            elif c == "v":
                self.verbose = True
            elif c == "V":
                self.out("numastat version: 20130723: (mempolicy)\n")
                raise Exit(0)
            elif c == "z":
                self.show_zero = False
            else:
                self.usage()
        self.screen_width = self._screen_width(stdout)
        for a in g.rest:
            if a.isdigit() or a == "":
                self.pids.append(int(a) if a else 0)
            else:
                self.add_pattern(a)
        self.compat = len(argv) == 0
        self.init_nodes()
        if self.compat:
            self.show_numastat()
            return 0
        self.page_size = float(self.src.page_size())
        self.huge_page_size = self.src.huge_page_size()
        if self.pids:
            self.pids = sorted(set(self.pids))
            self.show_processes()
        if show_system:
            self.show_system()
        if show_numastat or (not self.pids and not show_system):
            self.show_numastat()
        return 0


def run(argv: list[str], source=None, stdout=None, stderr=None) -> int:
    """numastat with ``argv`` on ``source`` (LiveSource by default)."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    buf: list[str] = []

    def err(s: str) -> None:
        stderr.write(s)
        stderr.flush()

    ns = Numastat(source or LiveSource(), buf.append, err)
    try:
        status = ns.run(argv, stdout)
    except Exit as e:
        status = e.status
    stdout.write("".join(buf))
    stdout.flush()
    return status


def _trace_source(path: str):
    from mempolicy.api import _NumaStatCounter
    from mempolicy.trace.parser import load_trace
    from mempolicy.trace.run import TraceRunner

    runner = TraceRunner(load_trace(path))
    k = runner.kernel
    k.pages = _NumaStatCounter(k.pages, k.topo, lambda: runner.task.numa_node_id())
    runner.run()
    name = os.path.basename(path)[:15]
    return ModelSource(k, k.pages.stats, {pid: name for pid in k.tasks})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    source = None
    if argv and (argv[0] == "--trace" or argv[0].startswith("--trace=")):
        if argv[0] == "--trace":
            if len(argv) < 2:
                print("numastat: option '--trace' requires an argument", file=sys.stderr)
                return 2
            path, argv = argv[1], argv[2:]
        else:
            path, argv = argv[0][len("--trace="):], argv[1:]
        from mempolicy.trace.parser import TraceError

        try:
            source = _trace_source(path)
        except TraceError as e:
            print(e, file=sys.stderr)
            return 2
        except OSError as e:
            print(f"{path}: {e.strerror}", file=sys.stderr)
            return 2
    return run(argv, source)


if __name__ == "__main__":
    sys.exit(main())
