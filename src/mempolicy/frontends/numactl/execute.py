"""Running the command: exec it with the policy set (live), or ``memhog SIZE`` on the model (``--sim``)."""

from __future__ import annotations

import errno as _errno
import os
import signal
import sys

from mempolicy.frontends.numactl.common import Exit, c_strerror
from mempolicy.frontends.numactl.cparse import memsize


class Execute:
    """The end of numactl's main(): execvp (a mixin of ``Numactl``)."""

    def execute(self, av: list[str]) -> int:
        if self.be.sim:
            return self.sim_command(av)
        self.io.flush()
        sys.stderr.flush()
        for sig in ("SIGPIPE", "SIGXFSZ"):          # Python ignores these; a C program does not
            if hasattr(signal, sig):
                signal.signal(getattr(signal, sig), signal.SIG_DFL)
        try:
            os.execvp(av[0], av)
        except OSError as e:
            err = e.errno or _errno.ENOENT
        except ValueError:                      # Python refuses what execvp(3) tries
            err = _errno.ENOENT if av[0] == "" else _errno.EINVAL
        self.complain(f"execution of `{av[0]}': {c_strerror(err)}\n")
        return 1

    def sim_command(self, av: list[str]) -> int:
        """On the model: ``memhog SIZE`` touches SIZE of anonymous memory and prints its numa_maps."""
        if av[0] != "memhog" or len(av) != 2:
            self.complain(f"execution of `{av[0]}': the model runs no programs; "
                          "use --show, --hardware or memhog SIZE\n")
        size = memsize(av[1])
        if size <= 0:
            self.complain(f"memhog: bad size `{av[1]}'\n")
        model = self.be.model
        total = sum(n.present_pages for n in model.topology.nodes) * 4096
        if size > total:                        # refused before any page is placed
            self.io.err(f"numactl: memhog: {av[1]} is more than the {total >> 20} MiB of memory "
                        "of the simulated machine\n")
            raise Exit(2)
        try:
            addr = model.mmap(size)
            self.sim_touch(model, addr, size)
        except OSError as e:
            self.complain(f"memhog: {c_strerror(e.errno)}\n")
        for line in model.numa_maps_text().splitlines():
            if int(line.split(" ", 1)[0], 16) == addr:
                self.io.out(line + "\n")
        return 0

    def sim_touch(self, model, addr: int, size: int) -> None:
        """Touch the range from ``--threads N`` threads (one N-th each, in page units,
        the last taking the rest), thread k pinned to the k-th CPU the process may use."""
        n = getattr(self.be, "threads", 1)
        if n <= 1:
            model.touch(addr, size)
            return
        pages = (size + 4095) // 4096
        cpus = sorted(model.task.cpuset_cpus)
        share = pages // n
        for k in range(n):
            name = f"memhog{k}"
            model.create_thread(name)
            model.switch_thread(name)
            model.sched_setaffinity({cpus[k % len(cpus)]})
            first = k * share
            count = pages - first if k == n - 1 else share
            if count:
                model.touch(addr + first * 4096, min(count * 4096, size - first * 4096))
            model.switch_thread("main")
