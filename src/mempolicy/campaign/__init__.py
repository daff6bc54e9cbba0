"""Fidelity campaigns: the project hunting its own differences from Linux.

    mempolicy trace campaign --kernel 7.3 --count 200 --seed 0 --mode all --out DIR

generates traces (:mod:`mempolicy.trace.fuzz`), runs each on the model and
on the kernel (:mod:`.work`, batches of one header share a boot), runs every
divergent trace twice more to set nondeterministic ones aside, shrinks each
real divergence (:mod:`.shrink`) and writes a report (:mod:`.report`).
:mod:`.run` persists each finished trace, so a stopped campaign resumes,
and farms batches out to local processes or to a Dask cluster.
"""

from __future__ import annotations

from mempolicy.campaign.run import run_campaign

__all__ = ["run_campaign"]
