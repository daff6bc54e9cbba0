"""A scenario's machine: named processes, threads, mappings and memfds on a model kernel.

``World`` builds the start state of a scenario with the ordinary (correct)
model kernel, gives every object a name for the timeline, turns the
operations of a task's program into the kernel's entry points, and at the
end of a schedule checks the invariants of the refcount protocol and tears
everything down to find leaks.

Operations of a program (tuples):

    ("fault", MAP, PAGE, WRITE)          a user page fault (mmap_read_lock)
    ("mbind", MAP, OFF, PAGES, MODE, NODES[, FLAGS[, MODE_FLAGS]])
    ("mmap", MAP, PAGES[, MEMFD])        a new mapping (registered under MAP)
    ("munmap", MAP, OFF, PAGES)
    ("mprotect", MAP, OFF, PAGES, WRITABLE)
    ("migrate_pages", TASK, FROM, TO)    migrate_pages(2) of TASK's pages (node lists)
    ("move_pages", MAP, PAGE, NODE)      move_pages(2) of one page of the caller
    ("expect", MAP, PAGE, TEXT)          get_mempolicy(MPOL_F_ADDR) must print TEXT
    ("expect", None, None, TEXT)         the task policy must print TEXT ("default": none)
    ("home_node", MAP, OFF, PAGES, NODE)
    ("set_mempolicy", MODE, NODES)
    ("get_mempolicy",)                   the task policy
    ("get_mempolicy", MAP, PAGE)         MPOL_F_ADDR
    ("get_node", MAP, PAGE)              MPOL_F_NODE | MPOL_F_ADDR
    ("numa_maps", TASK)                  read another task's /proc/PID/numa_maps
    ("fork", CHILD, OPS)                 copy_process; CHILD runs OPS as a new task
    ("thread", CHILD, OPS)               clone(CLONE_VM) (copy_thread): CHILD, a thread of the
                                         caller's process, runs OPS
    ("madvise", MAP, OFF, PAGES, HUGE)   MADV_HUGEPAGE (HUGE) or MADV_NOHUGEPAGE
    ("exit",)                            a thread's exit, or the process's last one
    ("cpuset", TASKS, NODES)             write the cpuset's mems: rebind TASKS
"""

from __future__ import annotations

import threading

from mempolicy.alloc.fault import FaultSignal, OutOfMemory, do_user_addr_fault
from mempolicy.alloc.topology import Topology
from mempolicy.cgroup.cpuset import cpuset_update_tasks_nodemask
from mempolicy.core.mempolicy import FreedMempolicy, KernelError, Mempolicy, mpol_dup
from mempolicy.core.nodemask import Nodemask
from mempolicy.core.slab import SanitizerError
from mempolicy.kernel import Kernel
from mempolicy.proc.task_mmu import numa_maps
from mempolicy.scopes.mm import MM
from mempolicy.scopes.task import Task
from mempolicy.syscalls import mman, process
from mempolicy.syscalls.migrate import kernel_migrate_pages, kernel_move_pages
from mempolicy.syscalls.mempolicy import (
    kernel_get_mempolicy,
    kernel_mbind,
    kernel_set_mempolicy,
    sys_set_mempolicy_home_node,
)
from mempolicy.uapi import (
    MODE_NAMES,
    MPOL_F_ADDR,
    MPOL_F_NODE,
    MPOL_F_SHARED,
    MPOL_MF_MOVE,
    MPOL_MF_MOVE_ALL,
    MPOL_MF_STRICT,
    PAGE_SIZE,
)

from .sched import ADD, READ, WRITE, CheckFailure, Finding

MAXNODE = 1025
BASE = 0x40000000            # every mapping lies in one 2 MiB page-table range
SLOT_PAGES = 16


def _mask(nodes) -> int:
    return sum(1 << n for n in nodes)


def mode_name(mode: int) -> str:
    return MODE_NAMES.get(mode, str(mode))


class World:
    """The named state of one scenario run."""

    def __init__(self, protocol: str = "current", nodes: int = 2, cpus_per_node: int = 1,
                 track_sites: bool = True) -> None:
        self.protocol = protocol
        self.kernel, self._boot_task = Kernel.boot(Topology.simple(nodes, cpus_per_node=cpus_per_node),
                                                   protocol, track_sites)
        self.tasks: dict[str, Task] = {}
        self.names: dict[int, str] = {}          # id(task) -> name
        self.proc_of: dict[int, str] = {}        # id(mm) -> process name
        self.maps: dict[str, tuple] = {}         # name -> (mm, addr, pages)
        self.map_files: dict[str, str] = {}      # mapping name -> memfd name (file mappings)
        self.memfds: dict[str, object] = {}      # name -> ShmemFile
        self.sp_names: dict[int, str] = {}       # id(SharedPolicy) -> memfd name
        self.lock_names: dict[int, str] = {}
        self.slots: dict[int, int] = {}          # id(mm) -> next mapping slot
        self.programs: list[tuple[str, list]] = []
        self.start_active = 0
        self._exit_lock = threading.Lock()
        self._exiting: set[int] = set()

    # -- building the start state (plain model, no scheduler) -----------------
    def process(self, name: str, cpu: int = 0) -> Task:
        """A new single-threaded process (the first one is the boot task)."""
        if self._boot_task is not None:
            t, self._boot_task = self._boot_task, None
            t.cpu = cpu
        else:
            t = Task(self.kernel, self.kernel.alloc_pid(), MM(self.kernel), cpu=cpu)
            self.kernel.tasks[t.pid] = t
        self._register(name, t, new_mm=True)
        # a stack page: populates the page tables every later mapping uses
        self.mmap(name, name + ".stack", 1)
        do_user_addr_fault(self.kernel, t, self.maps[name + ".stack"][1], write=False)
        return t

    def thread(self, name: str, of: str, cpu: int = 0) -> Task:
        """A thread of process ``of`` (clone(CLONE_VM)): same mm, a copy of the task policy."""
        parent = self.tasks[of]
        t = Task(self.kernel, self.kernel.alloc_pid(), parent.mm, cpu=cpu)
        t.mempolicy = mpol_dup(parent.mempolicy, self.kernel.policy_cache)
        t.il_prev, t.il_weight = parent.il_prev, parent.il_weight
        t.mems_allowed = parent.mems_allowed
        self.kernel.tasks[t.pid] = t
        self._register(name, t, new_mm=False)
        return t

    def _register(self, name: str, t: Task, new_mm: bool) -> None:
        self.tasks[name] = t
        self.names[id(t)] = name
        self.lock_names[id(t.alloc_lock)] = f"task_lock({name})"
        if new_mm:
            self.proc_of[id(t.mm)] = name
            self.lock_names[id(t.mm.mmap_lock)] = f"mmap_lock of {name}"
            self.slots.setdefault(id(t.mm), 0)

    def memfd(self, name: str, pages: int) -> None:
        creator = next(iter(self.tasks.values()), None) or self._boot_task
        f = mman.memfd_create(self.kernel, creator, name, pages)
        self.memfds[name] = f
        self.sp_names[id(f.inode.policy)] = name
        self.lock_names[id(f.inode.policy.lock)] = f"sp->lock of memfd {name}"

    def mmap(self, task: str, name: str, pages: int, memfd: str | None = None,
             shared: bool = False, off: int = 0, private: bool = False) -> None:
        t = self.tasks[task]
        slot = self.slots[id(t.mm)]
        self.slots[id(t.mm)] = slot + max(1, -(-pages // SLOT_PAGES))
        addr = BASE + slot * SLOT_PAGES * PAGE_SIZE
        file = self.memfds[memfd] if memfd else None
        shared = (shared or file is not None) and not private
        mman.sys_mmap(self.kernel, t, addr, pages * PAGE_SIZE, shared, file, off)
        self.maps[name] = (t.mm, addr, pages)
        if memfd:
            self.map_files[name] = memfd

    def mmap_at(self, task: str, name: str, after: str, pages: int, memfd: str | None = None) -> None:
        """Map right after mapping ``after`` (for one mbind across both)."""
        t = self.tasks[task]
        _, a, p = self.maps[after]
        file = self.memfds[memfd] if memfd else None
        mman.sys_mmap(self.kernel, t, a + p * PAGE_SIZE, pages * PAGE_SIZE, file is not None, file, 0)
        self.maps[name] = (t.mm, a + p * PAGE_SIZE, pages)
        if memfd:
            self.map_files[name] = memfd
        end = a + (p + pages) * PAGE_SIZE
        self.slots[id(t.mm)] = max(self.slots[id(t.mm)],
                                   -(-(end - BASE) // (SLOT_PAGES * PAGE_SIZE)))

    def addr(self, name: str, page: int = 0) -> int:
        return self.maps[name][1] + page * PAGE_SIZE

    def program(self, task: str, ops: list) -> None:
        self.programs.append((task, ops))

    def do(self, task: str, op: tuple) -> None:
        """Run one operation now (start state); errors propagate."""
        self._op(self.tasks[task], None, op)

    def started(self) -> None:
        """The start state is complete: remember the cache count teardown must return to."""
        self.start_active = self.kernel.policy_cache.stats.active

    # -- operations ------------------------------------------------------------
    def runner(self, name: str, ops: list):
        """The program of task ``name`` as the scheduler runs it."""
        def run(st) -> None:
            task = self.tasks[name]
            for op in ops:
                if task.exited:
                    break
                sched = st.sched
                sched.note_op(st, self.op_text(op) if sched.verbose else "",
                              self.op_keys(name, op) if sched.fp_on else ((), ()))
                try:
                    self._op(task, st, op)
                except KernelError as e:
                    import errno
                    st.sched.log("error", errno.errorcode.get(e.errno, str(e.errno)))
                except (FaultSignal, OutOfMemory) as e:
                    st.sched.log("error", type(e).__name__ if isinstance(e, OutOfMemory) else e.signame)
        return run

    def op_keys(self, name: str, op: tuple) -> tuple[set, set]:
        """What operation ``op`` of task ``name`` touches outside the schedule points, as
        (key, mode) pairs for the partial-order reduction (``check/dpor.py``): the keys
        of its steps that hold or take a lock (a third item names the lock: only its
        steps under that one), and the keys of all its steps.

        The points see locks and policy pointers; pages, page tables, the page cache,
        ``mems_allowed`` and the world's own exit bookkeeping are not behind a point.  The
        kernel touches the first four only under ``mmap_lock`` or ``task_lock``, so every
        step of the operation that holds a lock carries them; the exit bookkeeping runs
        outside any lock, so every step carries it.  Two steps that share a key (not
        both reading or both adding) are never taken as independent.  Coarse on purpose:
        ``("pages", PROCESS)`` stands for the placement of every page a process maps
        (numa_maps, MPOL_F_NODE, strict mbind and migration read or change it), and
        ``("file pages", MEMFD)`` for a memfd's page cache.
        """
        def proc(task: str) -> str:
            return self.proc_of.get(id(self.tasks[task].mm), task)

        me = proc(name)
        keys = {(("mems", name), READ)}
        always: set = set()

        def pages(who: str, mode: int, mapping: str | None = None) -> None:
            """The placement of ``who``'s pages: one mapping's file pages, or all of them."""
            keys.add((("pages", who), mode))
            files = ([self.map_files[mapping]] if mapping in self.map_files else []) \
                if mapping is not None else list(self.memfds)
            for m in files:
                keys.add((("file pages", m), mode))
                keys.add((("shared", m), READ))    # mpol_shared_policy_lookup's unlocked check

        def at(mapping: str, mode: int = READ) -> None:
            """A policy looked up (or set) at a mapping: a file's shared tree too (sp_delete
            changes the tree with no store point)."""
            m = self.map_files.get(mapping)
            if m is not None:                  # a change only under the tree's own lock
                keys.add((("shared", m), mode) if mode == READ else
                         (("shared", m), mode, f"sp->lock of memfd {m}"))

        k = op[0]
        if k == "fault":       # adds one page (faults of other pages commute with it)
            pages(me, ADD, op[1])
            keys.add((("page", me, op[1], op[2]), WRITE))
            if op[1] in self.map_files:
                keys.add((("file page", self.map_files[op[1]], op[2]), WRITE))
        elif k == "mbind":     # looks at pages only to check (strict) or move them
            at(op[1], WRITE)
            flags = op[6] if len(op) > 6 else 0
            if flags & (MPOL_MF_MOVE | MPOL_MF_MOVE_ALL):
                pages(me, WRITE, op[1])
            elif flags & MPOL_MF_STRICT:
                pages(me, READ, op[1])
        elif k in ("get_node", "move_pages"):
            pages(me, WRITE if k == "move_pages" else READ, op[1])
        elif k in ("get_mempolicy", "expect") and len(op) > 2 and op[1] is not None:
            at(op[1])
        elif k in ("munmap", "madvise"):   # madvise splits a huge pmd it cuts through
            pages(me, WRITE, op[1])
        elif k == "migrate_pages":
            pages(proc(op[1]), WRITE)
            always.add((("exit", proc(op[1])), READ))
        elif k == "numa_maps":
            pages(proc(op[1]), READ)
            always.add((("exit", proc(op[1])), READ))
        elif k == "cpuset":
            for t in op[1]:
                keys.add((("mems", t), WRITE))
                pages(proc(t), WRITE)
        elif k == "fork":
            pages(me, READ)
        elif k == "thread":    # a new user of the mm: the world's exit bookkeeping
            pages(me, READ)
            always.add((("exit", me), WRITE))
        elif k == "exit":
            pages(me, WRITE)
            always.add((("exit", me), WRITE))
        return keys, always

    def op_text(self, op: tuple) -> str:
        k = op[0]
        if k == "fault":
            return f"fault {op[1]}+{op[2]} ({'write' if op[3] else 'read'})"
        if k == "mbind":
            return f"mbind {op[1]}+{op[2]}..{op[2] + op[3]} {mode_name(op[4])}:{Nodemask(op[5])}"
        if k == "home_node":
            return f"set_mempolicy_home_node {op[1]}+{op[2]}..{op[2] + op[3]} node {op[4]}"
        if k == "set_mempolicy":
            return f"set_mempolicy {mode_name(op[1])}:{Nodemask(op[2])}"
        if k == "get_mempolicy":
            return "get_mempolicy" + (f" MPOL_F_ADDR {op[1]}+{op[2]}" if len(op) > 1 else "")
        if k == "get_node":
            return f"get_mempolicy MPOL_F_NODE|MPOL_F_ADDR {op[1]}+{op[2]}"
        if k == "numa_maps":
            return f"read /proc/{op[1]}/numa_maps"
        if k == "fork":
            return f"fork -> {op[1]}"
        if k == "thread":
            return f"clone(CLONE_VM) -> {op[1]}"
        if k == "madvise":
            return f"madvise {op[1]}+{op[2]}..{op[2] + op[3]} {'' if op[4] else 'no'}hugepage"
        if k == "exit":
            return "exit"
        if k in ("mmap", "munmap", "mprotect", "migrate_pages", "move_pages", "expect"):
            return " ".join(str(x) for x in op if x is not None)
        if k == "cpuset":
            return f"cpuset.mems = {Nodemask(op[2])} for {', '.join(op[1])}"
        return str(op)

    def _op(self, task: Task, st, op: tuple) -> None:
        k = self.kernel
        kind = op[0]
        if kind == "fault":
            do_user_addr_fault(k, task, self.addr(op[1], op[2]), write=op[3])
        elif kind == "mbind":
            flags = op[6] if len(op) > 6 else 0
            mode = op[4] | (op[7] if len(op) > 7 else 0)
            kernel_mbind(k, task, self.addr(op[1], op[2]), op[3] * PAGE_SIZE, mode,
                         _mask(op[5]), MAXNODE, flags)
        elif kind == "mmap":
            self.mmap(self.task_name(task), *op[1:])
        elif kind == "munmap":
            mman.sys_munmap(k, task, self.addr(op[1], op[2]), op[3] * PAGE_SIZE)
        elif kind == "mprotect":
            mman.sys_mprotect(k, task, self.addr(op[1], op[2]), op[3] * PAGE_SIZE, op[4])
        elif kind == "migrate_pages":
            kernel_migrate_pages(k, task, self.tasks[op[1]].pid, MAXNODE, _mask(op[2]), _mask(op[3]))
        elif kind == "move_pages":
            kernel_move_pages(k, task, 0, [self.addr(op[1], op[2])], [op[3]], MPOL_MF_MOVE)
        elif kind == "expect":
            self.expect(task, op)
        elif kind == "home_node":
            sys_set_mempolicy_home_node(k, task, self.addr(op[1], op[2]), op[3] * PAGE_SIZE, op[4], 0)
        elif kind == "set_mempolicy":
            kernel_set_mempolicy(k, task, op[1], _mask(op[2]), MAXNODE)
        elif kind == "get_mempolicy":
            if len(op) > 1:
                kernel_get_mempolicy(k, task, 128, MAXNODE, self.addr(op[1], op[2]), MPOL_F_ADDR)
            else:
                kernel_get_mempolicy(k, task, 128, MAXNODE, 0, 0)
        elif kind == "get_node":
            kernel_get_mempolicy(k, task, 128, MAXNODE, self.addr(op[1], op[2]),
                                 MPOL_F_ADDR | MPOL_F_NODE)
        elif kind == "numa_maps":
            numa_maps(k, task, self.tasks[op[1]])
        elif kind == "fork":
            child = process.copy_process(k, task)
            self._register(op[1], child, new_mm=True)
            if st is not None:
                st.sched.spawn(op[1], self.runner(op[1], op[2]))
        elif kind == "thread":
            child = process.copy_thread(k, task)
            self._register(op[1], child, new_mm=False)
            if st is not None:
                st.sched.spawn(op[1], self.runner(op[1], op[2]))
        elif kind == "madvise":
            mman.sys_madvise(k, task, self.addr(op[1], op[2]), op[3] * PAGE_SIZE,
                             mman.MADV_HUGEPAGE if op[4] else mman.MADV_NOHUGEPAGE)
        elif kind == "exit":
            self.exit(task)
        elif kind == "cpuset":
            cpuset_update_tasks_nodemask(k, [self.tasks[n] for n in op[1]], Nodemask(op[2]))
        else:
            raise ValueError(f"unknown operation {kind!r}")

    def expect(self, task: Task, op: tuple) -> None:
        """The policy get_mempolicy reports (at a mapping, or the task's) must be ``op[3]``."""
        if op[1] is None:
            mode, mask = kernel_get_mempolicy(self.kernel, task, 128, MAXNODE, 0, 0)
        else:
            mode, mask = kernel_get_mempolicy(self.kernel, task, 128, MAXNODE,
                                              self.addr(op[1], op[2]), MPOL_F_ADDR)
        nodes = [i for i in range(64) if mask and mask >> i & 1]
        got = mode_name(mode & 0xff) + (f":{Nodemask(nodes)}" if nodes else "")
        if got != op[3]:
            where = f"at {op[1]}+{op[2]}" if op[1] is not None else "as its task policy"
            raise CheckFailure("wrong policy", f"{self.task_name(task)} has {got} {where},"
                                               f" expected {op[3]}")

    def exit(self, task: Task) -> None:
        """A thread exits (its policy); the last task of an mm takes the mm with it.

        The model has no mm_users count: the world keeps it (mmput's
        atomic_dec_and_test), and the last user runs exit_mmap at once.
        """
        with self._exit_lock:
            if task.exited or id(task) in self._exiting:
                return
            self._exiting.add(id(task))
            others = [t for t in list(self.tasks.values())
                      if t is not task and t.mm is task.mm and not t.exited
                      and id(t) not in self._exiting]
        if others:
            process.exit_thread(self.kernel, task)
        else:
            process.do_exit(self.kernel, task)

    # -- names for the timeline -------------------------------------------------
    def task_name(self, t) -> str:
        return self.names.get(id(t), f"pid {getattr(t, 'pid', '?')}")

    def vma_name(self, vma) -> str:
        for name, (mm, addr, pages) in self.maps.items():
            if mm is vma.mm and addr <= vma.start < addr + pages * PAGE_SIZE:
                lo = (vma.start - addr) // PAGE_SIZE
                hi = (vma.end - addr) // PAGE_SIZE
                whole = lo == 0 and hi == pages
                proc = self.proc_of.get(id(mm), "?")
                return f"{name}" + ("" if whole else f"+{lo}..{hi}") + f" of {proc}"
        return f"{vma.start:#x}"

    def label(self, kind: str, owner, node) -> str:
        if kind == "task":
            return f"task {self.task_name(owner)}"
        if kind == "vma":
            return f"VMA {self.vma_name(owner)}"
        if kind == "shared":
            name = self.sp_names.get(id(owner), "?")
            rng = f" [{node.start},{node.end})" if node is not None else ""
            return f"shared tree of memfd {name}{rng}"
        return kind

    def lock_label(self, lock) -> str:
        return self.lock_names.get(id(lock), lock.name)

    # -- the end of a schedule: invariants, teardown, leaks ---------------------
    def owners(self) -> list[tuple[str, object]]:
        """(where, policy) for every stored policy pointer of live tasks, VMAs and shared trees."""
        out = []
        mms = {}
        for name, t in self.tasks.items():
            if t.exited:
                continue
            if t.mempolicy is not None:
                out.append((f"task {name}", t.mempolicy))
            mms[id(t.mm)] = t.mm
        inodes = {}
        for mm in mms.values():
            for vma in mm.vmas:
                if vma.vm_policy is not None:
                    out.append((f"VMA {self.vma_name(vma)}", vma.vm_policy))
                if vma.vm_file is not None:
                    inodes[id(vma.vm_file.inode)] = vma.vm_file.inode
        for f in self.memfds.values():
            inodes[id(f.inode)] = f.inode
        for inode in inodes.values():
            name = self.sp_names.get(id(inode.policy), "?")
            for n in inode.policy.nodes:
                out.append((f"shared tree of memfd {name} [{n.start},{n.end})", n.policy))
        return out

    def check_invariants(self) -> Finding | None:
        """Every live policy's refcount equals its owners; nobody points to a freed one."""
        cache = self.kernel.policy_cache
        count: dict[int, list[str]] = {}
        for where, p in self.owners():
            if type(p) is FreedMempolicy:
                return Finding("use after free", f"{where} still points to freed {p.describe()}",
                               -1, None)
            if p.is_static:
                continue
            count.setdefault(id(p), []).append(where)
        for key, p in list(cache.live.items()):
            owners = count.get(key, [])
            if p.refcnt > len(owners):
                return Finding("leak", f"policy #{p._serial} ({_desc(p)}) has refcnt {p.refcnt} but"
                                       f" {len(owners)} owner(s) {owners or ''}: a reference nobody"
                                       f" will drop; allocated at {p._alloc_site}", -1, None)
            if p.refcnt < len(owners):
                return Finding("missing reference",
                               f"policy #{p._serial} ({_desc(p)}) has refcnt {p.refcnt} but"
                               f" {len(owners)} owners {owners}: it will be freed while still"
                               f" stored; allocated at {p._alloc_site}", -1, None)
            if self.protocol == "current":
                if len(owners) > 1:
                    return Finding("shared object", f"policy #{p._serial} is stored in {owners};"
                                                    " each owner must hold its own copy", -1, None)
                shared = bool(p.flags & MPOL_F_SHARED)
                if owners and shared != owners[0].startswith("shared tree"):
                    return Finding("shared flag", f"policy #{p._serial} in {owners[0]} has"
                                                  f" MPOL_F_SHARED={shared}", -1, None)
        return None

    def teardown(self) -> Finding | None:
        """Exit every task and close every memfd; the cache must be back to its start."""
        try:
            for t in list(self.tasks.values()):
                if not t.exited:
                    self.exit(t)
            for f in self.memfds.values():
                f.inode.put()
            self.memfds = {}
        except SanitizerError as e:
            from .sched import classify
            return Finding(classify(e), f"at teardown: {e}", -1, None)
        cache = self.kernel.policy_cache
        if cache.stats.active != 0:
            left = cache.leaks()
            lines = "; ".join(f"#{o._serial} ({_desc(o)}) refcnt={o._refcnt} allocated at"
                              f" {o._alloc_site}" for o in left[:5])
            return Finding("leak", f"{len(left)} policies left in the cache after every task"
                                   f" exited: {lines}", -1, None)
        return None


def _desc(p) -> str:
    from mempolicy.core.mempolicy import mpol_to_str
    try:
        return mpol_to_str(p)
    except SanitizerError:
        return "freed"


__all__ = ["World", "BASE", "Mempolicy"]
