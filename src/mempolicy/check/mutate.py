"""Mutants generated from the model's code: every protocol site, every plausible slip.

The engine reads the model's source (``MODULES``), finds each *protocol
site* of each function by its syntax tree, and derives one-line mistakes of
it.  A mutant is applied from the outside: the function's tree is rewritten
in a fresh parse of its module, compiled, and swapped into the live function
object (``__code__``) for as long as the mutant is active; the model carries
no test for a mutant.

Sites and the mutants derived from each:

==========================  ==================================================
site                        mutants (``op``)
==========================  ==================================================
``mpol_get(p)``             ``drop``; ``late`` (past the next lock release or
                            schedule point)
``mpol_put(p)``,            ``drop``; ``late``; ``early`` (before the store
``__mpol_put(p)``           that unpublishes it)
``mpol_cond_put(p)``        ``drop``; ``late``; ``early``; ``put`` (mpol_put
                            instead)
``mpol_dup(p, ...)``        ``alias`` (store ``p`` itself); ``refcnt`` (a
                            struct copy that keeps ``p``'s refcount)
``L.write_lock()``          ``unlocked`` (no lock, nor its unlocks); ``read``
                            (read lock instead, and read unlocks)
``L.read_lock()``,          ``unlocked``
``L.lock()``, ``with
task.alloc_lock``
``L.*unlock()``             ``drop``
``x.mempolicy = p``,        ``drop``; ``late``
``x.vm_policy = p``,
``x.policy = p``
==========================  ==================================================

A mutant's name is ``MODULE:FUNCTION:OP:SITE``, e.g.
``scopes.shmem:SharedPolicy.mpol_shared_policy_lookup:drop:mpol_get``
(``SITE#2`` for the second site of the same kind in that function).
"""

from __future__ import annotations

import ast
import copy
import importlib
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

from mempolicy.core import sched_points

MODULES = (
    "core.mempolicy", "scopes.task", "scopes.mm", "scopes.shmem", "syscalls.mempolicy",
    "syscalls.mman", "syscalls.migrate", "syscalls.process", "alloc.fault", "alloc.mpol_alloc",
    "proc.task_mmu", "cgroup.cpuset",
)
# lock primitives themselves and constructors are not protocol sites
_SKIP_CLASSES = ("RWLock", "SpinLock")
_SKIP_FUNCS = ("__init__", "__repr__")

REF_GET = ("mpol_get",)
REF_PUT = ("mpol_put", "__mpol_put", "mpol_cond_put")
ACQUIRE = {"write_lock": "write_unlock", "read_lock": "read_unlock", "lock": "unlock"}
RELEASE = tuple(ACQUIRE.values())
POLICY_FIELDS = ("mempolicy", "vm_policy", "policy")
WITH_LOCKS = ("alloc_lock",)

OPS = {
    "drop": "the operation is left out",
    "late": "moved past the next lock release or schedule point",
    "early": "the put moved before the store that unpublishes the policy",
    "put": "mpol_put() instead of mpol_cond_put()",
    "alias": "the policy itself stored instead of an mpol_dup() copy",
    "refcnt": "mpol_dup() as a struct copy that keeps the old refcount",
    "unlocked": "the lock is not taken (nor released)",
    "read": "the lock taken for reading instead of writing",
}


@dataclass(frozen=True)
class Mutant:
    """One generated mutant: where it is and what it changes."""

    module: str          # "scopes.shmem"
    func: str            # qualified name: "SharedPolicy.mpol_shared_policy_lookup"
    op: str              # a key of OPS
    site: str            # "mpol_get", "write_lock(mm.mmap_lock)", "vm_policy=", ... plus "#n"
    line: int            # of the site in the unmodified source

    @property
    def name(self) -> str:
        return f"{self.module}:{self.func}:{self.op}:{self.site}"

    def describe(self) -> str:
        return f"{self.func} line {self.line}: {self.site.split('#')[0]} {OPS[self.op]}"


# -- finding the sites ----------------------------------------------------------

def _callee(node: ast.AST) -> str | None:
    if isinstance(node, ast.Call):
        f = node.func
        if isinstance(f, ast.Name):
            return f.id
        if isinstance(f, ast.Attribute):
            return f.attr
    return None


def _is_sched_point(stmt: ast.stmt) -> bool:
    """The statement reaches a schedule point of another site: a lock release, a refcount
    operation or a policy store (a site's own ``_chk.sched`` announcement does not count)."""
    for n in ast.walk(stmt):
        c = _callee(n)
        if c in RELEASE or c in REF_GET or c in REF_PUT:
            return True
        if _store_field(n) is not None:
            return True
    return False


def _store_field(stmt: ast.AST) -> str | None:
    if isinstance(stmt, ast.Assign):
        for t in stmt.targets:
            if isinstance(t, ast.Attribute) and t.attr in POLICY_FIELDS:
                return t.attr
    return None


def _blocks(node: ast.AST):
    """Every statement list under ``node`` with its owner, not entering nested functions."""
    for field in ("body", "orelse", "finalbody"):
        block = getattr(node, field, None)
        if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
            yield node, field, block
            for st in block:
                if not isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                    yield from _blocks(st)
    for h in getattr(node, "handlers", []) or []:
        yield from _blocks(h)


def _sites(fn: ast.FunctionDef):
    """(key, kind, block, index, stmt) for each protocol site of ``fn``, in source order."""
    out = []
    for owner, _field, block in _blocks(fn):
        for i, st in enumerate(block):
            kind = key = None
            if isinstance(st, ast.Expr):
                c = _callee(st.value)
                if c in REF_GET or c in REF_PUT:
                    kind, key = "ref", c
                elif c in ACQUIRE and isinstance(st.value.func, ast.Attribute):
                    kind, key = "acquire", f"{c}({ast.unparse(st.value.func.value)})"
                elif c in RELEASE and isinstance(st.value.func, ast.Attribute):
                    kind, key = "release", f"{c}({ast.unparse(st.value.func.value)})"
            elif isinstance(st, ast.With) and len(st.items) == 1:
                e = st.items[0].context_expr
                if isinstance(e, ast.Attribute) and e.attr in WITH_LOCKS:
                    kind, key = "with", f"with({ast.unparse(e)})"
            elif _store_field(st) is not None:
                kind, key = "store", ast.unparse(st.targets[0]) + "="
            if kind is not None:
                out.append((key, kind, owner, block, i, st))
            for n in ast.walk(st) if not isinstance(st, (ast.With, ast.If, ast.Try, ast.For,
                                                            ast.While)) else ():
                if _callee(n) == "mpol_dup":
                    out.append(("mpol_dup", "dup", owner, block, i, n))
    out.sort(key=lambda s: (s[5].lineno, s[5].col_offset))
    return out


def _functions(tree: ast.Module):
    """(qualname, node) of module-level functions and methods."""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            yield node.name, node
        elif isinstance(node, ast.ClassDef) and node.name not in _SKIP_CLASSES:
            for sub in node.body:
                if isinstance(sub, ast.FunctionDef):
                    yield f"{node.name}.{sub.name}", sub


@lru_cache(maxsize=None)
def _source(module: str) -> tuple[str, str]:
    mod = importlib.import_module("mempolicy." + module)
    path = mod.__file__
    with open(path, encoding="utf-8") as f:
        return f.read(), path


def _numbered(fn: ast.FunctionDef):
    """The sites of ``fn`` with their names (``key`` or ``key#n``)."""
    sites = _sites(fn)
    seen: dict[str, int] = {}
    for s in sites:
        seen[s[0]] = seen.get(s[0], 0) + 1
    count: dict[str, int] = {}
    for key, kind, owner, block, i, node in sites:
        count[key] = count.get(key, 0) + 1
        name = key if seen[key] == 1 else f"{key}#{count[key]}"
        yield name, kind, owner, block, i, node


def _ops(kind: str, key: str) -> tuple[str, ...]:
    if kind == "ref":
        callee = key.split("#")[0]
        if callee == "mpol_get":
            return ("drop", "late")
        return ("drop", "late", "early", "put") if callee == "mpol_cond_put" else ("drop", "late", "early")
    if kind == "dup":
        return ("alias", "refcnt")
    if kind == "acquire":
        return ("unlocked", "read") if key.startswith("write_lock") else ("unlocked",)
    if kind == "with":
        return ("unlocked",)
    if kind == "release":
        return ("drop",)
    return ("drop", "late")           # store


@lru_cache(maxsize=None)
def generate() -> tuple[Mutant, ...]:
    """Every mutant of every protocol site of ``MODULES`` that can be applied."""
    out = []
    for module in MODULES:
        src, _ = _source(module)
        tree = ast.parse(src)
        for qual, fn in _functions(tree):
            if qual.split(".")[-1] in _SKIP_FUNCS:
                continue
            for name, kind, _owner, _block, _i, node in _numbered(fn):
                for op in _ops(kind, name):
                    m = Mutant(module, qual, op, name, node.lineno)
                    if _rewrite(m) is not None:
                        out.append(m)
    return tuple(out)


def by_name() -> dict[str, Mutant]:
    return {m.name: m for m in generate()}


# -- rewriting one function ------------------------------------------------------

def _find(tree: ast.Module, qual: str) -> ast.FunctionDef:
    for q, fn in _functions(tree):
        if q == qual:
            return fn
    raise KeyError(qual)


def _parents(fn: ast.FunctionDef) -> dict[int, tuple]:
    """id(block) -> (owner statement, the block holding the owner, its index)."""
    out = {}
    for _owner, _f, block in _blocks(fn):
        for i, st in enumerate(block):
            inner = [getattr(st, f, None) for f in ("body", "orelse", "finalbody")]
            inner += [h.body for h in getattr(st, "handlers", []) or []]
            for b in inner:
                if isinstance(b, list) and b and isinstance(b[0], ast.stmt):
                    out[id(b)] = (st, block, i)
    return out


def _late(fn, block: list, i: int) -> bool:
    """Move block[i] past the next schedule point after it (climbing out of a lock's block)."""
    st = block[i]
    for j in range(i + 1, len(block)):
        if _is_sched_point(block[j]):
            del block[i]
            block.insert(j, st)
            return True
    par = _parents(fn).get(id(block))
    if par is None:
        return False
    owner, outer, k = par
    releases = isinstance(owner, ast.With) or (isinstance(owner, ast.Try) and block is owner.body
                                               and any(_is_sched_point(s) for s in owner.finalbody))
    if not releases:
        return False
    del block[i]
    if not block:
        block.append(ast.Pass())
    outer.insert(k + 1, st)
    return True


def _assigned_before(fn, names: set[str], line: int) -> bool:
    got = {a.arg for a in fn.args.args}
    for n in ast.walk(fn):
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store) and n.lineno < line:
            got.add(n.id)
    return names <= got


def _early(fn, block: list, i: int) -> bool:
    """Move a put before the last policy store above it (the old object still published),
    and out of the lock that store is made under: the put of ``old`` becomes a put of the
    field ``old`` was loaded from."""
    st = block[i]
    stores = [(b, j, s) for _o, _f, b in _blocks(fn) for j, s in enumerate(b)
              if _store_field(s) is not None and s.lineno < st.lineno]
    if not stores:
        return False
    b, _j, target = max(stores, key=lambda x: x[2].lineno)
    par = _parents(fn).get(id(b))
    if par is not None and isinstance(par[0], ast.With) and _locked_with(par[0]):
        target, b = par[0], par[1]
    arg = st.value.args[0] if st.value.args else None
    if isinstance(arg, ast.Name) and not _assigned_before(fn, {arg.id}, target.lineno):
        src = [a for a in ast.walk(fn) if isinstance(a, ast.Assign) and len(a.targets) == 1
               and isinstance(a.targets[0], ast.Name) and a.targets[0].id == arg.id]
        if len(src) != 1:
            return False
        st.value.args[0] = copy.deepcopy(src[0].value)
    used = {n.id for n in ast.walk(st) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    used -= {_callee(st.value)}
    if not _assigned_before(fn, used, target.lineno):
        return False
    del block[i]
    if not block:
        block.append(ast.Pass())
    b.insert(b.index(target), st)
    return True


def _locked_with(w: ast.With) -> bool:
    e = w.items[0].context_expr
    return isinstance(e, ast.Attribute) and e.attr in WITH_LOCKS


def _rewrite(m: Mutant) -> ast.Module | None:
    """The module's tree with ``m`` applied, or None when ``m`` does not apply."""
    return _rewrite_all([m])


def _rewrite_all(ms: list[Mutant]) -> ast.Module | None:
    """One module's tree with every mutant of ``ms`` applied (sites resolved first)."""
    src, _ = _source(ms[0].module)
    tree = ast.parse(src)
    todo = []
    for m in ms:
        try:
            fn = _find(tree, m.func)
        except KeyError:
            return None
        for name, kind, _owner, block, i, node in _numbered(fn):
            if name == m.site:
                todo.append((m, fn, kind, block, block[i], node))
                break
        else:
            return None
    for m, fn, kind, block, st, node in todo:
        if st not in block or not _apply(m.op, fn, kind, block, block.index(st), node):
            return None
    ast.fix_missing_locations(tree)
    return tree


def _apply(op: str, fn, kind: str, block: list, i: int, node) -> bool:
    if op == "drop":
        block[i] = ast.Pass()
    elif op == "late":
        return _late(fn, block, i)
    elif op == "early":
        return _early(fn, block, i)
    elif op == "put":
        node.value.func.id = "mpol_put"
    elif op == "alias":
        if not node.args:
            return False
        _replace_expr(fn, node, node.args[0])
    elif op == "refcnt":
        node.func = ast.Name(id=_DUP_KEEPS_REFCNT, ctx=ast.Load())
    elif op in ("unlocked", "read") and kind == "acquire":
        acq = node.value.func.attr
        recv = ast.dump(node.value.func.value)
        rel = ACQUIRE[acq]
        for _o, _f, b in list(_blocks(fn)):
            for j, s in enumerate(b):
                c = _callee(s.value) if isinstance(s, ast.Expr) else None
                if c in (acq, rel) and ast.dump(s.value.func.value) == recv:
                    if op == "unlocked":
                        b[j] = ast.Pass()
                    else:
                        s.value.func.attr = "read_lock" if c == acq else "read_unlock"
    elif op == "unlocked" and kind == "with":
        block[i:i + 1] = node.body
    else:
        return False
    return True


def _replace_expr(root: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for parent in ast.walk(root):
        for field, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, field, new)
            elif isinstance(value, list):
                for k, v in enumerate(value):
                    if v is old:
                        value[k] = new


# -- applying --------------------------------------------------------------------

_DUP_KEEPS_REFCNT = "_mutant_mpol_dup_keeps_refcnt"


def _dup_keeps_refcnt(old, cache, *args, **kw):
    """``*new = *old`` without ``atomic_set(&new->refcnt, 1)``."""
    from mempolicy.core.mempolicy import mpol_dup

    new = mpol_dup(old, cache, *args, **kw)
    if new is not None and old is not None and new is not old:
        new._refcnt = old._refcnt
    return new


def _code(module: str, tree: ast.Module, qual: str):
    _, path = _source(module)
    top = compile(tree, path, "exec")
    stack = [top]
    while stack:
        c = stack.pop()
        if c.co_qualname == qual:
            return c
        stack.extend(k for k in c.co_consts if hasattr(k, "co_qualname"))
    raise KeyError(qual)


def _live(module: str, qual: str):
    obj = sys.modules["mempolicy." + module]
    for part in qual.split("."):
        obj = obj.__dict__[part] if isinstance(obj, type) else getattr(obj, part)
    return obj


@lru_cache(maxsize=None)
def _compiled(names: tuple[str, ...]) -> tuple:
    """(module, qualname, code) for each function the mutants ``names`` change."""
    table = by_name()
    ms = [table[n] for n in names]
    out = []
    for module in dict.fromkeys(m.module for m in ms):
        mine = [m for m in ms if m.module == module]
        tree = _rewrite_all(mine)
        if tree is None:
            raise ValueError(f"mutants {', '.join(m.name for m in mine)} do not apply together")
        for qual in dict.fromkeys(m.func for m in mine):
            out.append((module, qual, _code(module, tree, qual)))
    return tuple(out)


def expand(names) -> tuple[str, ...]:
    """Generated mutant names for ``names``, which may also name ``mutants.MUTANTS``."""
    from .mutants import MUTANTS

    out = []
    for n in names:
        out.extend(MUTANTS[n].parts if n in MUTANTS else (n,))
    return tuple(out)


def known(name: str) -> bool:
    """Whether ``name`` is a generated or a named mutant."""
    from .mutants import MUTANTS

    return name in MUTANTS or name in by_name()


@contextmanager
def applied(names):
    """Switch the mutants ``names`` on (generated or named) for the duration of the block."""
    names = expand(names)
    if not names:
        yield
        return
    saved = []
    injected = []
    prev = sched_points.mutated
    from mempolicy.core import mempolicy as core
    try:
        for module, qual, code in _compiled(tuple(sorted(set(names)))):
            fn = _live(module, qual)
            mod = sys.modules["mempolicy." + module]
            for g, val in (("mpol_put", core.mpol_put), (_DUP_KEEPS_REFCNT, _dup_keeps_refcnt)):
                if g not in mod.__dict__:
                    mod.__dict__[g] = val
                    injected.append((mod, g))
            saved.append((fn, fn.__code__))
            fn.__code__ = code
        sched_points.mutated = True
        yield
    finally:
        for fn, code in reversed(saved):
            fn.__code__ = code
        for mod, g in injected:
            mod.__dict__.pop(g, None)
        sched_points.mutated = prev

