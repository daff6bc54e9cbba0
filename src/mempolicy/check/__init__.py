"""The concurrency checker of the reference-counting protocol (``mempolicy check``).

The model kernel owns its schedule points (``mempolicy.core.sched_points``)
and never imports this package; the checker plugs its scheduler into them.
Everything here (scheduler, explorer, scenarios, mutation engine, cost
model, stress mode) is imported on demand.
"""
