"""Credentials: ``struct cred`` and the checks the memory-policy calls make of it.

Follows include/linux/cred.h, kernel/cred.c (``commit_creds``), kernel/sys.c
(``setresuid``/``setresgid``), kernel/capability.c (``capset``, ``capable``),
kernel/ptrace.c (``__ptrace_may_access``) and security/commoncap.c
(``cap_ptrace_access_check``, ``cap_emulate_setxuid``).

Three calls look at credentials: ``mbind`` and ``move_pages`` refuse
``MPOL_MF_MOVE_ALL`` without CAP_SYS_NICE; ``migrate_pages`` and
``move_pages`` of another process need ``ptrace_may_access(task,
PTRACE_MODE_READ_REALCREDS)``; ``migrate_pages`` also needs CAP_SYS_NICE for
target nodes outside the target's cpuset and moves shared pages only with it.

Left out: user namespaces (everything is in the initial one), supplementary
groups, securebits (no SECURE_KEEP_CAPS), the bounding and ambient sets, LSMs
other than commoncap (Yama only restricts PTRACE_MODE_ATTACH), and
``fs.suid_dumpable`` other than its default 0.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, replace

from mempolicy.core.mempolicy import KernelError

CAP_SETGID = 6
CAP_SETUID = 7
CAP_SYS_PTRACE = 19
CAP_SYS_NICE = 23
CAP_LAST_CAP = 40
CAP_FULL_SET = (1 << (CAP_LAST_CAP + 1)) - 1

# Capability names a trace's ``cred drop=`` may use.
CAP_NAMES = {"setgid": CAP_SETGID, "setuid": CAP_SETUID, "sys_ptrace": CAP_SYS_PTRACE,
             "sys_nice": CAP_SYS_NICE}

# mm->flags dumpable values (include/linux/sched/coredump.h)
SUID_DUMP_DISABLE = 0
SUID_DUMP_USER = 1
SUID_DUMPABLE = SUID_DUMP_DISABLE        # the fs.suid_dumpable sysctl, default 0

PTRACE_MODE_READ_REALCREDS = "read-realcreds"

NOBODY = 65534


@dataclass(frozen=True)
class Cred:
    """``struct cred``: ids and the permitted and effective capability sets (bit masks).

    ``Cred.root()`` is a root process with every capability;
    ``Cred.user(1000)`` an ordinary process of uid and gid 1000 without any.
    """

    uid: int = 0
    euid: int = 0
    suid: int = 0
    fsuid: int = 0
    gid: int = 0
    egid: int = 0
    sgid: int = 0
    fsgid: int = 0
    cap_permitted: int = CAP_FULL_SET
    cap_effective: int = CAP_FULL_SET

    @classmethod
    def root(cls) -> "Cred":
        return cls()

    @classmethod
    def user(cls, uid: int = NOBODY, gid: int | None = None) -> "Cred":
        """All ids ``uid`` (gids ``gid``, default ``uid``) and no capability."""
        g = uid if gid is None else gid
        return cls(uid, uid, uid, uid, g, g, g, g, 0, 0)

    @classmethod
    def from_proc_status(cls, text: str) -> "Cred":
        """The credentials in a ``/proc/PID/status`` text (``Uid:``, ``Gid:``, ``CapPrm:``, ``CapEff:``)."""
        fields = {}
        for line in text.splitlines():
            key, _, value = line.partition(":")
            fields[key] = value.split()
        uid = [int(v) for v in fields["Uid"]]
        gid = [int(v) for v in fields["Gid"]]
        return cls(*uid, *gid, cap_permitted=int(fields["CapPrm"][0], 16),
                   cap_effective=int(fields["CapEff"][0], 16))

    @classmethod
    def of_caller(cls) -> "Cred":
        """The credentials of this Python process, for a model process that acts as its
        caller: from ``/proc/self/status``, or where there is none, its uids and gids
        with every capability for effective uid 0 and none otherwise."""
        try:
            with open("/proc/self/status", encoding="utf-8") as f:
                return cls.from_proc_status(f.read())
        except (OSError, KeyError, ValueError, IndexError):
            pass
        import os

        uid, euid, suid = os.getresuid() if hasattr(os, "getresuid") else (os.getuid(),) * 3
        gid, egid, sgid = os.getresgid() if hasattr(os, "getresgid") else (os.getgid(),) * 3
        caps = CAP_FULL_SET if euid == 0 else 0
        return cls(uid, euid, suid, euid, gid, egid, sgid, egid, caps, caps)

    def has_cap(self, cap: int) -> bool:
        """``cap`` is in the effective set."""
        return bool(self.cap_effective >> cap & 1)

    def without_caps(self, caps: int) -> "Cred":
        """The credentials with ``caps`` (a bit mask) gone from both sets."""
        return replace(self, cap_permitted=self.cap_permitted & ~caps,
                       cap_effective=self.cap_effective & ~caps)

    @property
    def privileged(self) -> bool:
        """What ``numactl`` and the model's front ends call privileged: CAP_SYS_NICE in effect."""
        return self.has_cap(CAP_SYS_NICE)


def capable(task, cap: int) -> bool:
    """``capable(cap)``: the task's effective set holds ``cap`` (in the initial namespace)."""
    return task.cred.has_cap(cap)


def ptrace_may_access(task, target, mode: str = PTRACE_MODE_READ_REALCREDS) -> bool:
    """``__ptrace_may_access(target, PTRACE_MODE_READ_REALCREDS)`` for the calling ``task``.

    The same process always may.  Otherwise the caller's real uid and gid must
    equal all three of the target's, or the caller needs CAP_SYS_PTRACE; a
    target whose mm is not dumpable needs CAP_SYS_PTRACE too; and commoncap
    wants the target's permitted set inside the caller's, or CAP_SYS_PTRACE.
    """
    assert mode == PTRACE_MODE_READ_REALCREDS
    if target is task or target.mm is task.mm:        # same_thread_group (model threads share an mm)
        return True
    cred, tcred = task.cred, target.cred
    same_ids = (cred.uid == tcred.euid == tcred.suid == tcred.uid
                and cred.gid == tcred.egid == tcred.sgid == tcred.gid)
    if not same_ids and not cred.has_cap(CAP_SYS_PTRACE):
        return False
    if target.mm is not None and target.mm.dumpable != SUID_DUMP_USER \
            and not cred.has_cap(CAP_SYS_PTRACE):
        return False
    # security_ptrace_access_check -> cap_ptrace_access_check (permitted set: REALCREDS)
    if tcred.cap_permitted & ~cred.cap_permitted == 0:
        return True
    return cred.has_cap(CAP_SYS_PTRACE)


def commit_creds(task, new: Cred) -> None:
    """Install ``new``; changing the effective or filesystem ids makes the mm non-dumpable."""
    old = task.cred
    if (old.euid != new.euid or old.egid != new.egid or old.fsuid != new.fsuid
            or old.fsgid != new.fsgid or new.cap_permitted & ~old.cap_permitted):
        if task.mm is not None:
            task.mm.dumpable = SUID_DUMPABLE
    task.cred = new


def _id_new(v: int, old: tuple[int, int, int]) -> bool:
    return v != -1 and v not in old


def cap_emulate_setxuid(new: Cred, old: Cred) -> Cred:
    """Capabilities after a uid change: leaving uid 0 everywhere drops them all; an
    effective uid leaving 0 drops the effective set, one coming back to 0 restores it."""
    if 0 in (old.uid, old.euid, old.suid) and 0 not in (new.uid, new.euid, new.suid):
        new = replace(new, cap_permitted=0, cap_effective=0)
    if old.euid == 0 and new.euid != 0:
        new = replace(new, cap_effective=0)
    if old.euid != 0 and new.euid == 0:
        new = replace(new, cap_effective=new.cap_permitted)
    return new


def sys_setresuid(task, ruid: int, euid: int, suid: int) -> int:
    """``setresuid(ruid, euid, suid)``; -1 keeps a value.  Without CAP_SETUID each new
    value must be one of the current real, effective and saved uids."""
    old = task.cred
    if ((ruid == -1 or ruid == old.uid) and (euid == -1 or euid == old.euid == old.fsuid)
            and (suid == -1 or suid == old.suid)):
        return 0
    ids = (old.uid, old.euid, old.suid)
    if (_id_new(ruid, ids) or _id_new(euid, ids) or _id_new(suid, ids)) \
            and not old.has_cap(CAP_SETUID):
        raise KernelError(errno.EPERM)
    new = replace(old, uid=old.uid if ruid == -1 else ruid,
                  euid=old.euid if euid == -1 else euid,
                  suid=old.suid if suid == -1 else suid)
    new = replace(new, fsuid=new.euid)
    commit_creds(task, cap_emulate_setxuid(new, old))
    return 0


def sys_setresgid(task, rgid: int, egid: int, sgid: int) -> int:
    """``setresgid(rgid, egid, sgid)``: as ``setresuid``, with CAP_SETGID."""
    old = task.cred
    if ((rgid == -1 or rgid == old.gid) and (egid == -1 or egid == old.egid == old.fsgid)
            and (sgid == -1 or sgid == old.sgid)):
        return 0
    ids = (old.gid, old.egid, old.sgid)
    if (_id_new(rgid, ids) or _id_new(egid, ids) or _id_new(sgid, ids)) \
            and not old.has_cap(CAP_SETGID):
        raise KernelError(errno.EPERM)
    new = replace(old, gid=old.gid if rgid == -1 else rgid,
                  egid=old.egid if egid == -1 else egid,
                  sgid=old.sgid if sgid == -1 else sgid)
    commit_creds(task, replace(new, fsgid=new.egid))
    return 0


def sys_capset_drop(task, caps: int) -> int:
    """``capset`` with the current sets minus ``caps``: dropping never needs a privilege."""
    commit_creds(task, task.cred.without_caps(caps))
    return 0


__all__ = ["Cred", "capable", "ptrace_may_access", "commit_creds", "sys_setresuid",
           "sys_setresgid", "sys_capset_drop", "CAP_SYS_NICE", "CAP_SYS_PTRACE"]
