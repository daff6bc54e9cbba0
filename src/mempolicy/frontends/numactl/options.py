"""numactl's command line: options in order, with GNU ``getopt_long`` rules, each with
numactl's side effects and messages (numactl.c ``main``).
"""

from __future__ import annotations

from mempolicy.frontends.gnu_getopt import Getopt, LongOpt
from mempolicy.frontends.numactl.common import (
    MPOL_BIND, MPOL_INTERLEAVE, MPOL_LOCAL, MPOL_MF_STRICT, MPOL_PREFERRED, MPOL_PREFERRED_MANY,
    MPOL_WEIGHTED_INTERLEAVE, PAGE_SIZE, ULONG, Exit, Output, c_strerror,
)
from mempolicy.frontends.numactl.cparse import _c_long, memsize, strtoul
from mempolicy.frontends.numactl.execute import Execute
from mempolicy.frontends.numactl.libnuma import Bitmask, Libnuma
from mempolicy.frontends.numactl.shm import SharedMemory
from mempolicy.frontends.numactl.show import Show

OPTS = [
    LongOpt("all", 0, "a"), LongOpt("interleave", 1, "i"), LongOpt("preferred", 1, "p"),
    LongOpt("preferred-many", 1, "P"), LongOpt("cpubind", 1, "c"), LongOpt("cpunodebind", 1, "N"),
    LongOpt("physcpubind", 1, "C"), LongOpt("membind", 1, "m"), LongOpt("show", 0, "s"),
    LongOpt("localalloc", 0, "l"), LongOpt("balancing", 0, "b"), LongOpt("hardware", 0, "H"),
    LongOpt("shm", 1, "S"), LongOpt("file", 1, "f"), LongOpt("offset", 1, "o"),
    LongOpt("length", 1, "L"), LongOpt("strict", 0, "t"), LongOpt("shmmode", 1, "M"),
    LongOpt("dump", 0, "d"), LongOpt("dump-nodes", 0, "D"), LongOpt("shmid", 1, "I"),
    LongOpt("huge", 0, "u"), LongOpt("touch", 0, "T"), LongOpt("verify", 0, "V"),
]
CPU_COMPRESS, OPT_VERSION = "<cpu-compress>", "<version>"   # long-only (values >= 300 in C)
OPTS_2019 = (OPTS[:2] + [LongOpt("weighted-interleave", 1, "w")] + OPTS[2:-1]
             + [LongOpt("cpu-compress", 0, CPU_COMPRESS), OPTS[-1], LongOpt("version", 0, OPT_VERSION)])


def short_opts(opts: list[LongOpt]) -> str:
    """numactl's get_short_opts(): '+' then every printable value, ':' when it takes an argument."""
    return "+" + "".join(o.val + (":" if o.has_arg else "") for o in opts if len(o.val) == 1)


SHORTOPTS = short_opts(OPTS)

USAGE = (
    "usage: numactl [--all | -a] [--balancing | -b] [--interleave= | -i <nodes>]\n"
    "\t\t[--preferred= | -p <node>] [--preferred-many= | -P <nodes>]\n"
    "               [--physcpubind= | -C <cpus>] [--cpunodebind= | -N <nodes>]\n"
    "               [--membind= | -m <nodes>] [--localalloc | -l] command args ...\n"
    "               [--localalloc | -l] command args ...\n"
    "       numactl [--show | -s]\n"
    "       numactl [--hardware | -H]\n"
    "       numactl [--length | -L <length>] [--offset | -o <offset>] [--shmmode | -M <shmmode>]\n"
    "               [--strict | -t]\n"
    "               [--shmid | -I <id>] --shm | -S <shmkeyfile>\n"
    "               [--shmid | -I <id>] --file | -f <tmpfsfile>\n"
    "               [--huge | -u] [--touch | -T] \n"
    "               memory policy [--dump | -d] [--dump-nodes | -D]\n"
    "\n"
    "memory policy is --interleave | -i, --preferred | -p, --membind | -m, --localalloc | -l\n"
    "<nodes> is a comma delimited list of node numbers or A-B ranges or all.\n"
    "Instead of a number a node can also be:\n"
    "  netdev:DEV the node connected to network device DEV\n"
    "  file:PATH  the node the block device of path is connected to\n"
    "  ip:HOST    the node of the network device host routes through\n"
    "  block:PATH the node of block device path\n"
    "  pci:[seg:]bus:dev[:func] The node of a PCI device\n"
    "<cpus> is a comma delimited list of cpu numbers or A-B ranges or all\n"
    "all ranges can be inverted with !\n"
    "all numbers and ranges can be made cpuset-relative with +\n"
    "the old --cpubind argument is deprecated.\n"
    "use --cpunodebind or --physcpubind instead\n"
    "use --balancing | -b to enable Linux kernel NUMA balancing\n"
    "for the process if it is supported by kernel\n"
    "<length> can have g (GB), m (MB) or k (KB) suffixes\n")

USAGE_2019 = (
    "usage: numactl [--all | -a] [--balancing | -b]\n"
    "               [--interleave= | -i <nodes>] [--weighted-interleave= | -w <nodes>]\n"
    "               [--preferred= | -p <node>] [--preferred-many= | -P <nodes>]\n"
    + USAGE[USAGE.index("               [--physcpubind="):USAGE.index("       numactl [--hardware")]
    + "       numactl [--hardware | -H] [--cpu-compress]\n"
    "       numactl [--version]\n"
    + USAGE[USAGE.index("       numactl [--length"):USAGE.index("memory policy is")]
    + "memory policy is --preferred | -p, --membind | -m, --localalloc | -l,\n"
    "                 --interleave | -i, --weighted-interleave | -w\n"
    + USAGE[USAGE.index("<nodes> is"):])


class Numactl(Show, SharedMemory, Execute):
    """numactl VERSION (``"2.0.16"`` or ``"2.0.19"``) over a backend: ``Numactl(be, io).run(argv)``."""

    def __init__(self, be, io: Output, version: str = "2.0.16") -> None:
        self.be = be
        self.io = io
        self.version = version
        self.v19 = version == "2.0.19"
        self.numa = Libnuma(be, io, v19=self.v19)
        self.cpu_compress = False
        self.set_policy = -1
        self.last_nodestring: str | None = None
        self.shmattached = False
        self.did_node_cpu_parse = False
        self.shmoption: str | None = None
        self.exitcode = 0
        # shm.c state
        self.shmfd = -1
        self.shmid = 0
        self.shmptr = 0
        self.shmlen = 0
        self.shmmode = 0o600
        self.shmoffset = 0
        self.shmflags = 0
        self.shm_pagesize = PAGE_SIZE

    # -- messages ------------------------------------------------------------------
    def usage(self):
        self.io.err(USAGE_2019 if self.v19 else USAGE)
        raise Exit(1)

    def usage_msg(self, msg: str):
        self.io.err(f"numactl: {msg}")
        self.io.out("\n")
        self.usage()

    def complain(self, msg: str):
        self.io.err(f"numactl: {msg}")
        if self.v19:
            self.io.err("\n")
        else:
            self.io.out("\n")
        raise Exit(1)

    def nerror(self, msg: str, err: int):
        self.io.err(f"numactl: {msg}" + (f": {c_strerror(err)}\n" if err else "\n"))
        raise Exit(1)

    def perror_exit(self, what: str, err: int):
        self.io.err(f"{what}: {c_strerror(err)}\n")
        raise Exit(1)


    # -- option helpers ------------------------------------------------------------------
    def checkerror(self, what: str) -> None:
        if self.numa.errno:
            self.perror_exit(what, self.numa.errno)

    def checknuma(self) -> None:
        if not self.numa.available():
            self.complain("This system does not support NUMA policy")

    def setpolicy(self, pol: int) -> None:
        if self.set_policy != -1:
            self.usage_msg("Conflicting policies")
        self.set_policy = pol

    def nopolicy(self) -> None:
        if self.set_policy >= 0:
            self.usage_msg("specify policy after --shm/--file")

    def noshm(self, opt: str) -> None:
        if self.shmattached:
            self.usage_msg(f"{opt} must be before shared memory specification")
        self.shmoption = opt

    def dontshm(self, opt: str) -> None:
        if self.shmoption:
            self.usage_msg(f"{self.shmoption} shm option is not allowed before {opt}")

    def needshm(self, opt: str) -> None:
        if not self.shmattached:
            self.usage_msg(f"{opt} must be after shared memory specification")

    def check_cpubind(self, flag: bool) -> None:
        if flag:
            self.usage_msg("cannot do --cpubind on shared memory\n")

    def parse_nodes(self, s: str, parse_all: bool) -> Bitmask | None:
        if s == "same":
            if self.last_nodestring is None:
                self.usage_msg("same needs previous node specification")
            s = self.last_nodestring
        else:
            self.last_nodestring = s
        allowed = self.numa.possible_nodes if parse_all else self.numa.all_nodes
        return self.numa.parse_string(s, allowed, cpu=False)

    def invalid(self, arg: str):
        self.io.out(f"<{arg}> is invalid\n")
        self.usage()

    # -- main ------------------------------------------------------------------------------
    def run(self, argv: list[str]) -> int:
        numa = self.numa
        opts = OPTS_2019 if self.v19 else OPTS
        g = Getopt(argv, short_opts(opts), opts, "numactl", self.io.err)
        mask: Bitmask | None = None
        did_cpubind = did_strict = do_dump = False
        parse_all = numa_balancing = False
        do_hardware = weighted = False
        while (c := g.next()) != -1:
            arg = g.optarg
            if c == "s":
                self.show()
                raise Exit(0)
            elif c == "H":
                self.nopolicy()
                if self.v19:                    # printed once every option is read
                    do_hardware = True
                    continue
                self.hardware()
                raise Exit(0)
            elif c == "b":
                self.nopolicy()
                numa_balancing = True
            elif c in ("i", "w"):
                weighted = weighted or c == "w"     # 2.0.19 never clears it: -w then -i is -w
                self.checknuma()
                mask = self.parse_nodes(arg, parse_all)
                if mask is None:
                    self.invalid(arg)
                numa.errno = 0
                self.did_node_cpu_parse = True
                self.setpolicy(MPOL_WEIGHTED_INTERLEAVE if weighted else MPOL_INTERLEAVE)
                if self.shmfd >= 0:
                    numa.dombind(self.shmptr, self.shmlen, MPOL_INTERLEAVE, mask)
                elif weighted:
                    numa.set_weighted_interleave_mask(mask)
                else:
                    numa.set_interleave_mask(mask)
                self.checkerror("setting interleave mask")
            elif c in ("N", "c"):
                self.dontshm("-c/--cpubind/--cpunodebind")
                self.checknuma()
                mask = self.parse_nodes(arg, parse_all)
                if mask is None:
                    self.invalid(arg)
                numa.errno = 0
                self.check_cpubind(self.shmfd >= 0)
                did_cpubind = True
                self.did_node_cpu_parse = True
                numa.run_on_node_mask_all(mask)
                self.checkerror("sched_setaffinity")
            elif c == "C":
                self.dontshm("-C/--physcpubind")
                allowed = numa.possible_cpus if parse_all else numa.all_cpus
                cpubuf = numa.parse_string(arg, allowed, cpu=True)
                if cpubuf is None:
                    self.invalid(arg)
                numa.errno = 0
                self.check_cpubind(self.shmfd >= 0)
                did_cpubind = True
                self.did_node_cpu_parse = True
                numa.sched_setaffinity(set(cpubuf.ids()))
                self.checkerror("sched_setaffinity")
            elif c == "m":
                self.checknuma()
                self.setpolicy(MPOL_BIND)
                mask = self.parse_nodes(arg, parse_all)
                if mask is None:
                    self.invalid(arg)
                numa.errno = 0
                self.did_node_cpu_parse = True
                numa.set_bind_policy(True)
                if self.shmfd >= 0:
                    numa.dombind(self.shmptr, self.shmlen, numa.bind_policy, mask)
                elif numa_balancing:
                    numa.set_membind_balancing(mask)
                else:
                    numa.set_membind(mask)
                numa.set_bind_policy(False)
                self.checkerror("setting membind")
            elif c in ("P", "p"):
                if c == "P" and not numa.has_preferred_many:
                    self.complain("preferred-many requested without kernel support")
                self.checknuma()
                mask = self.parse_nodes(arg, parse_all)
                if mask is None:
                    self.invalid(arg)
                numa.errno = 0
                self.did_node_cpu_parse = True
                numa.set_bind_policy(False)
                if self.shmfd >= 0:
                    nodes = Bitmask(numa.nodemask_sz)
                    if self.v19:
                        nodes.set(mask.first())
                    else:
                        nodes.set(-1)                # 2.0.16 passes its unset node (-1)
                    numa.dombind(self.shmptr, self.shmlen, numa.bind_policy, nodes)
                    if self.v19:
                        self.setpolicy(MPOL_PREFERRED_MANY if numa.has_preferred_many
                                       else MPOL_PREFERRED)
                elif c == "p":
                    if mask.weight() != 1:
                        self.usage()
                    self.setpolicy(MPOL_PREFERRED)
                    numa.set_preferred(mask.first())
                else:
                    self.setpolicy(MPOL_PREFERRED_MANY)
                    numa.set_preferred_many(mask)
                self.checkerror("setting preferred node")
            elif c == "l":
                self.checknuma()
                self.setpolicy(MPOL_LOCAL)
                numa.errno = 0
                if self.shmfd >= 0:
                    numa.dombind(self.shmptr, self.shmlen, MPOL_LOCAL, None)
                else:
                    numa.set_localalloc()
                self.checkerror("local allocation")
            elif c in ("S", "f"):
                self.check_cpubind(did_cpubind)
                self.nopolicy()
                if self.be.sim:
                    self.complain(f"{'--shm' if c == 'S' else '--file'} needs the live kernel "
                                  "(not available with --sim)")
                if c == "S":
                    self.attach_sysvshm(arg, "--shm")
                else:
                    self.attach_shared(arg, "--file")
                self.shmattached = True
            elif c == "L":
                self.noshm("--length")
                self.shmlen = memsize(arg) & ULONG
            elif c == "M":
                self.noshm("--shmmode")
                v, end = strtoul(arg, 0, 8)
                if end == 0 or end != len(arg):
                    self.usage()
                self.shmmode = v & 0xFFFFFFFF
            elif c == "d":
                if self.shmfd < 0:
                    self.complain("Cannot do --dump without shared memory.\n")
                self.dump_shm()
                do_dump = True
            elif c == "D":
                if self.shmfd < 0:
                    self.complain("Cannot do --dump-nodes without shared memory.\n")
                self.dump_shm_nodes()
                do_dump = True
            elif c == "t":
                did_strict = True
                numa.mbind_flags |= MPOL_MF_STRICT
            elif c == "I":
                v, end = strtoul(arg, 0, 0)
                if end == 0 or end != len(arg):
                    self.usage()
                self.shmid = _c_long(v)
            elif c == "u":
                self.noshm("--huge")
                self.shmflags |= 0o4000          # SHM_HUGETLB
            elif c == "o":
                self.noshm("--offset")
                self.shmoffset = memsize(arg) & ULONG
            elif c == "T":
                self.needshm("--touch")
                self.check_shmbeyond("--touch")
                self.police_memory()
            elif c == "V":
                self.needshm("--verify")
                if self.set_policy < 0:
                    self.complain("Need a policy first to verify")
                self.check_shmbeyond("--verify")
                self.police_memory()
                if mask is None:
                    self.complain("Need a mask to verify")
                else:
                    self.verify_shm(self.set_policy, mask)
            elif c == "a":
                if self.did_node_cpu_parse:
                    self.usage_msg("--all/-a option must be before all cpu/node specifications")
                parse_all = True
            elif c == CPU_COMPRESS:
                self.cpu_compress = True
            elif c == OPT_VERSION:
                self.nopolicy()
                self.io.out(f"{self.version}\n")
                raise Exit(0)
            else:
                self.usage()
        if do_hardware:
            self.hardware()
            raise Exit(0)
        av = g.rest
        if self.shmfd >= 0:
            if av:
                self.usage()
            raise Exit(self.exitcode)
        if did_strict:
            self.io.err("numactl: warning. Strict flag for process ignored.\n")
        if do_dump:
            self.usage_msg("cannot do --dump|--dump-shm for process")
        if self.shmoption:
            self.usage_msg(f"shm related option {self.shmoption} for process")
        if not av:
            self.usage()
        return self.execute(av)
