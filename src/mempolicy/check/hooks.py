"""What the model kernel sees of the checker: two module globals.

``sched`` is None in ordinary runs; the model tests it at each schedule
point (a lock acquire or release, a load or store of a policy pointer, a
place where the kernel may sleep holding a policy), so a point costs one
global load and one attribute load.  Under ``mempolicy check`` it is the
controlled scheduler (or the cost tracer of ``--overhead``), which decides
there which model task runs next.

``mutants`` names the protocol mistakes switched on (see
``mempolicy.check.mutants``); model code tests ``"name" in hooks.mutants``.
Atomic refcount operations reach the checker through
``mempolicy.core.mempolicy.refcount_hook``.
"""

sched = None
mutants: frozenset = frozenset()
