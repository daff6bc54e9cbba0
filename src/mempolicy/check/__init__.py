"""The concurrency checker of the reference-counting protocol (``mempolicy check``).

The model kernel calls the checker at its schedule points through
``mempolicy.check.hooks``; everything else here (scheduler, explorer,
scenarios, mutants, cost model, stress mode) is imported on demand, so that
importing the hooks from model code costs nothing.
"""
