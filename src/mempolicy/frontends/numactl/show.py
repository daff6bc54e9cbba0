"""``--show`` and ``--hardware``: what numactl prints about the process and the machine."""

from __future__ import annotations

from mempolicy.frontends.numactl.common import (
    MPOL_BIND, MPOL_DEFAULT, MPOL_INTERLEAVE, MPOL_PREFERRED, MPOL_PREFERRED_MANY, POLICY_NAMES,
    Exit, _fmt_mem,
)


class Show:
    """numactl.c's show(), hardware() and print_distances() (a mixin of ``Numactl``)."""

    def printmask(self, name: str, ids) -> None:
        self.io.out(f"{name}: " + "".join(f"{i} " for i in ids) + "\n")

    # -- show / hardware ------------------------------------------------------------
    def show_physcpubind(self) -> None:
        try:
            cpus = sorted(self.be.getaffinity())
        except OSError as e:
            self.perror_exit("sched_get_affinity", e.errno)
        self.printmask("physcpubind", cpus)

    def show(self) -> None:
        numa = self.numa
        if not numa.available():
            self.show_physcpubind()
            self.io.out("No NUMA support available on this system.\n")
            raise Exit(1)
        cpubind = numa.get_run_node_mask()
        preferred = numa.preferred_many()
        interleave = numa.get_interleave_mask()
        membind = numa.get_membind()
        cur = numa.get_interleave_node()
        policy = 0
        try:
            policy, _ = self.be.get_mempolicy(True, None, 0, 0, 0)
        except OSError as e:
            numa.errno = e.errno
            numa.error("get_mempolicy")
        name = POLICY_NAMES[policy] if 0 <= policy < len(POLICY_NAMES) else f"[{policy}]"
        self.io.out(f"policy: {name}\n")
        self.io.out("preferred node: ")
        if policy == MPOL_PREFERRED:
            self.io.out(f"{preferred.first() if preferred.weight() else 0}\n")
        elif policy == MPOL_DEFAULT:
            self.io.out("current\n")
        elif policy == MPOL_INTERLEAVE:
            self.io.out(f"{cur} (interleave next)\n")
        elif policy == MPOL_BIND:
            self.io.out(f"{membind.first()}\n")
        elif policy == MPOL_PREFERRED_MANY:
            self.io.out(f"{cur} (preferred-many)\n")
        if policy == MPOL_INTERLEAVE:
            self.printmask("interleavemask", interleave.ids())
            self.io.out(f"interleavenode: {cur}\n")
        self.show_physcpubind()
        self.printmask("cpubind", cpubind.ids())
        self.printmask("nodebind", cpubind.ids())
        self.printmask("membind", membind.ids())
        self.printmask("preferred", preferred.ids())

    def hardware(self) -> None:
        numa = self.numa
        maxnode = numa.maxconfigurednode
        if not numa.available():
            self.io.out("No NUMA available on this system\n")
            raise Exit(1)
        nodes = [i for i in range(maxnode + 1) if numa.nodes_ptr.isset(i)]
        out = f"available: {len(nodes)} nodes ("
        prevnode, skip = -1, False
        for i in range(maxnode + 1):
            if not numa.nodes_ptr.isset(i):
                continue
            if prevnode == -1:
                out += f"{i}"
                prevnode = i
                continue
            if i > prevnode + 1:
                if skip:
                    out += f"{prevnode}"
                    skip = False
                out += f",{i}"
                prevnode = i
                continue
            if i == prevnode + 1:
                if not skip:
                    out += "-"
                    skip = True
                prevnode = i
            if i == maxnode and skip:
                out += f"{prevnode}"
        self.io.out(out + ")\n")
        for i in nodes:
            sz, fr = self.be.node_size(i)
            if self.v19 and fr == -1:           # 2.0.19's numa_node_size64 starts *freep at 0
                fr = 0
            self.io.out(f"node {i} cpus:")
            self.print_node_cpus(i)
            self.io.out(f"node {i} size: {_fmt_mem(sz)}\n")
            self.io.out(f"node {i} free: {_fmt_mem(fr)}\n")
        self.print_distances(maxnode)

    def print_node_cpus(self, node: int) -> None:
        numa = self.numa
        cpus = numa.node_to_cpus(node)
        if cpus is None and self.v19:           # 2.0.19 leaves the line unfinished
            return
        ids = sorted(c for c in cpus or () if c < numa.cpumask_sz)
        if not self.cpu_compress:
            self.io.out("".join(f" {c}" for c in ids) + "\n")
            return
        runs: list[list[int]] = []              # --cpu-compress: " a-b, c (count)"
        for c in ids:
            if runs and runs[-1][1] == c - 1:
                runs[-1][1] = c
            else:
                runs.append([c, c])
        self.io.out(",".join(f" {a}" if a == b else f" {a}-{b}" for a, b in runs)
                    + f" ({len(ids)})\n")

    def print_distances(self, maxnode: int) -> None:
        numa = self.numa
        fst = 0
        for i in range(maxnode + 1):
            if numa.nodes_ptr.isset(i):
                fst = i
                break
        table = numa.distance_table()
        if numa.distance(table, maxnode, fst) == 0:
            self.io.out("No distance information available.\n")
            return
        nodes = [i for i in range(maxnode + 1) if numa.nodes_ptr.isset(i)]
        self.io.out("node distances:\n")
        w = 4 if self.v19 else 3                # printf("% 4d ") from 2.0.19 on
        self.io.out(("node  " if self.v19 else "node ") + "".join(f"{i: {w}d} " for i in nodes) + "\n")
        for i in nodes:
            self.io.out(f"{i: {w}d}: " + "".join(f"{numa.distance(table, i, k): {w}d} " for k in nodes)
                        + "\n")
