"""mempolicy: the Linux NUMA memory-policy subsystem as a runnable Python model.

Layers (one module per kernel concept):

* ``core``      -- nodemask_t, struct mempolicy, reference counting (mm/mempolicy.c, lib/bitmap.c)
* ``scopes``    -- task, mm/VMA, shared (shmem) policies
* ``alloc``     -- topology, zonelists, the page allocator and policy node selection
* ``syscalls``  -- set_mempolicy, get_mempolicy, mbind, set_mempolicy_home_node,
                   migrate_pages, move_pages, mmap and friends
* ``proc``      -- /proc/<pid>/numa_maps
* ``trace``     -- the trace format: parser, model runner
* ``oracle``    -- the same traces on a real Linux kernel under QEMU
"""

__version__ = "0.1.0"
